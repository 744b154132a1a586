"""Shared helpers for the benchmarks: a collector subprocess, Prometheus parsing, stats, tables, results.

Not a benchmark itself. ``bench/ingest.py``, ``bench/query.py`` and ``bench/_spans.py`` import it as
``_common`` (the scripts run as ``python bench/<name>.py``, so ``bench/`` is on ``sys.path``).
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
BENCH_PROJECT = "bench"


# --- machine ---------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, memory and versions, so a result says where it was measured."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    return {
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": platform.node(),
    }


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (all its threads), from ``/proc``; None if unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after its closing parenthesis are fixed.
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def system_cpu() -> dict[str, float]:
    """Machine-wide CPU seconds so far from ``/proc/stat``: busy (all non-idle states) and steal."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return {"busy_s": math.nan, "steal_s": math.nan}
    ticks = [int(x) for x in fields]
    tck = os.sysconf("SC_CLK_TCK")
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    steal = ticks[7] if len(ticks) > 7 else 0
    # guest time is already counted in user time
    return {"busy_s": (sum(ticks[:8]) - idle - steal) / tck, "steal_s": steal / tck}


def cores_busy(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Average busy and stolen cores between two :func:`system_cpu` samples."""
    return {
        "busy_cores": (after["busy_s"] - before["busy_s"]) / seconds,
        "steal_cores": (after["steal_s"] - before["steal_s"]) / seconds,
    }


def idle_check(seconds: float = 1.0, warn_above: float = 0.25) -> dict[str, float]:
    """How busy the machine is before a benchmark starts; warns when something else is running."""
    before = system_cpu()
    time.sleep(seconds)
    load = cores_busy(before, system_cpu(), seconds)
    if load["busy_cores"] > warn_above:
        print(
            f"WARNING: {load['busy_cores']:.2f} cores busy before the start: other processes share this "
            "machine and the figures will be lower than on an idle one"
        )
    return load


# --- statistics ------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation, like numpy's default; NaN if empty.

    Example:
        >>> percentile([1, 2, 3, 4], 50)
        2.5
    """
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize_ms(seconds: Sequence[float]) -> dict[str, float]:
    """Count, p50, p95, p99 and max of durations given in seconds, as milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else math.nan,
    }


# --- Prometheus text -------------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def parse_prometheus(text: str) -> dict[str, float]:
    """Prometheus exposition text as ``{"name{labels}": value}`` (comments skipped).

    Example:
        >>> parse_prometheus('# HELP x y\\nx_total 3.0\\nh_bucket{le="10.0"} 2.0\\n')
        {'x_total': 3.0, 'h_bucket{le="10.0"}': 2.0}
    """
    out: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            out[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return out


def histogram(samples: dict[str, float], name: str) -> dict[str, Any]:
    """A Prometheus histogram's buckets (upper bound -> cumulative count), sum and count."""
    buckets: dict[float, float] = {}
    prefix = f"{name}_bucket{{"
    for key, value in samples.items():
        if key.startswith(prefix):
            le = re.search(r'le="([^"]+)"', key)
            if le:
                buckets[float(le.group(1))] = value
    return {
        "buckets": dict(sorted(buckets.items())),
        "sum": samples.get(f"{name}_sum", 0.0),
        "count": samples.get(f"{name}_count", 0.0),
    }


def histogram_delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """What a histogram gained between two scrapes."""
    return {
        "buckets": {le: n - before["buckets"].get(le, 0.0) for le, n in after["buckets"].items()},
        "sum": after["sum"] - before["sum"],
        "count": after["count"] - before["count"],
    }


# --- the collector under test -----------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def collector_command() -> list[str]:
    """The installed ``loopwise`` console script next to this interpreter, else ``python -m``."""
    script = Path(sys.executable).with_name("loopwise")
    if script.exists():
        return [str(script), "collector"]
    return [sys.executable, "-m", "loopwise_collector.cli", "collector"]


def embedded_dsn(data_dir: Path) -> str:
    """The DSN the collector derives for ``LOOPWISE_DATA_DIR`` (``Settings.store_dsn()``)."""
    return f"chdb://{(data_dir / 'data').resolve()}?database=loopwise"


@dataclass
class Endpoint:
    """A collector to drive: its URL and key, plus the process when this benchmark started it."""

    url: str
    key: str
    pid: int | None = None
    data_dir: Path | None = None
    log_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def cpu_seconds(self) -> float | None:
        """The collector's CPU time so far, when it runs on this machine under our control."""
        return process_cpu_seconds(self.pid) if self.pid is not None else None

    def scrape(self, client: httpx.Client | None = None) -> dict[str, float]:
        """The collector's ``/metrics``."""
        get = client.get if client is not None else httpx.get
        response = get(f"{self.url}/metrics", timeout=10)
        response.raise_for_status()
        return parse_prometheus(response.text)

    def stored_span_count(self) -> int:
        """Spans the project holds, as ``GET /api/v1/metrics/summary`` counts them."""
        response = httpx.get(f"{self.url}/api/v1/metrics/summary", headers=self.headers, timeout=60)
        response.raise_for_status()
        return sum(int(row["span_count"]) for row in response.json()["data"])


def wait_ready(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> float:
    """Poll ``/readyz`` until it answers 200; returns the seconds waited."""
    started = time.monotonic()
    deadline = started + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"collector exited with {proc.returncode}:\n{log_tail(log)}")
        try:
            response = httpx.get(f"{url}/readyz", timeout=2)
            if response.status_code == 200:
                return time.monotonic() - started
            last = response.text
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise TimeoutError(f"collector at {url} not ready after {timeout:.0f}s ({last}):\n{log_tail(log)}")


def log_tail(path: Path | None, lines: int = 30) -> str:
    if path is None:
        return ""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextmanager
def collector(
    name: str,
    *,
    url: str | None = None,
    key: str | None = None,
    data_dir: Path | None = None,
    env: dict[str, str] | None = None,
    keep: bool = False,
    ready_timeout: float = 120.0,
) -> Iterator[Endpoint]:
    """A collector to benchmark: the one at ``url`` (with ``key``), else a fresh subprocess.

    The subprocess runs ``loopwise collector`` on the embedded store under a temporary data
    directory (or ``data_dir``), on a free loopback port, with a seeded project and key, logging to
    ``<data dir>/collector.log``; it is stopped (SIGTERM, then SIGKILL) and the directory removed
    on exit unless ``keep``.
    """
    if url is not None:
        if key is None:
            raise SystemExit("--url needs --key")
        wait_ready(url.rstrip("/"), ready_timeout)
        yield Endpoint(url=url.rstrip("/"), key=key)
        return

    owned = data_dir is None
    root = Path(tempfile.mkdtemp(prefix=f"loopwise-bench-{name}-")) if data_dir is None else data_dir
    key = key or "lw_bench_" + secrets.token_hex(12)
    port = free_port()
    log_path = root / "collector.log"
    child_env = {
        **os.environ,
        "LOOPWISE_DATA_DIR": str(root),
        "LOOPWISE_HOST": "127.0.0.1",
        "LOOPWISE_PORT": str(port),
        "LOOPWISE_INIT_PROJECTS": f"{BENCH_PROJECT}:{key}",
        **(env or {}),
    }
    child_env.pop("LOOPWISE_STORE", None)  # always the embedded store under our data dir
    log = open(log_path, "ab")  # noqa: SIM115 - the child writes to it for its lifetime
    proc = subprocess.Popen(collector_command(), env=child_env, stdout=log, stderr=log, cwd=root)
    endpoint = Endpoint(url=f"http://127.0.0.1:{port}", key=key, pid=proc.pid, data_dir=root, log_path=log_path)
    try:
        endpoint.extra["startup_s"] = wait_ready(endpoint.url, ready_timeout, proc, log_path)
        yield endpoint
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        if owned and not keep:
            shutil.rmtree(root, ignore_errors=True)
        elif keep:
            print(f"kept data dir {root} (collector log: {log_path})")


# --- output ------------------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 1) -> str:
    """A number for a table: thousands separators, fixed decimals; text as is."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.{digits}f}"
    return str(value)


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain fixed-width table; the first column left-aligned, the rest right-aligned."""
    cells = [[str(h) for h in header], *[[c if isinstance(c, str) else fmt(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        parts = [row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))]
        return "  ".join(parts).rstrip()

    print(f"\n{title}")
    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>-<UTC timestamp>.json`` and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    path.write_text(json.dumps(payload, indent=2, default=_json_default, allow_nan=False) + "\n")
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def clean_nans(value: Any) -> Any:
    """Replace NaN and infinities with None, recursively, so the JSON stays standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean_nans(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_nans(v) for v in value]
    return value


def filler_text(rng: random.Random, chars: int, vocabulary: tuple[str, ...]) -> str:
    """Prompt-like text of exactly ``chars`` characters drawn from ``vocabulary``."""
    words: list[str] = []
    size = 0
    while size < chars:
        word = rng.choice(vocabulary)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:chars]
