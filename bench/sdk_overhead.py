"""SDK overhead: app-thread cost per call of ``@loopwise.observe``, next to bare OpenTelemetry and competitors.

What it measures
    The wall time per call, on the calling thread, of a function that takes a ~2 KB prompt string and
    returns a ~2 KB completion string, traced with content capture on, while the collector is down
    (every endpoint is an unreachable loopback port, default ``http://127.0.0.1:9``). In the same run,
    each in its own subprocess (tracer providers are process-global, and the libraries conflict):

    (a)  the undecorated function, and (a2) a bare OpenTelemetry span on a provider with no processor:
         the floor for anything built on OpenTelemetry;
    (b)  a bare ``tracer.start_as_current_span`` setting ``loopwise.input``/``loopwise.output`` to the
         2 KB strings, with the stock ``BatchSpanProcessor`` + ``OTLPSpanExporter`` (proto/HTTP);
    (b2) the same bare span with the Loopwise SDK's own span processor instead (the decorator's share);
    Loopwise ``@loopwise.observe`` (``loopwise.configure(..., capture_content=True)``);
    (c)  Langfuse ``@observe`` (I/O capture on, dummy keys, ``base_url`` = the endpoint);
    (d)  Traceloop ``@workflow`` and OpenLIT ``@openlit.trace`` (no auto-instrumentation).

    Each warms up, then times ``--repeats`` x ``--calls`` back-to-back calls; the headline is the median
    over repeats of wall time / calls, which includes what background threads (exporters, spool
    writers) take from the app thread through the GIL. Also per-call p50/p95, process CPU per call (all
    threads), stock batch processors' dropped spans, and a check, on one more call, of which span
    attributes hold the 2 KB input and output. Targets (issue): Loopwise <= 1.5x (b), and below (c).
    References: (b) and Loopwise again against a local null sink answering 200 ("collector up"), and a
    paced run per variant (``--paced-calls`` at ``--paced-rate``/s, each call timed) where the export
    keeps up: the calling thread's own cost in an app whose calls are spaced out.

    Second measurement: ``--spans`` (default 100,000) Loopwise-decorated calls with the collector down:
    RSS before, peak during (sampled every 1,000 calls), after; the spool directory's size; the SDK's
    own counters (``loopwise.stats()``: queued, spooled, dropped). Target: RSS growth < 50 MB. The same
    run with the stock stack (b) is the reference (its queue holds 2,048 spans and drops the rest).

How to run (from the repository root)
    make bench-sdk                                   # .venv-bench with Langfuse, Traceloop, OpenLIT; ~2 min
    .venv-bench/bin/python bench/sdk_overhead.py --quick     # smoke test, < 30 s
    .venv/bin/python bench/sdk_overhead.py           # main venv: the competitors are skipped, and it says so

    Prints the tables and writes ``bench/results/sdk_overhead-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import _common as common

CHILD = common.BENCH_DIR / "_sdk_compare_env.py"
PER_CALL_BUDGET_S = 2e-3  # generous, for the children's timeouts
TARGET_VS_OTEL = 1.5
TARGET_RSS_GROWTH_MB = 50.0

# name -> (label, modules that must be importable)
VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "plain": ("(a) undecorated function", ()),
    "otel_bare": ("(a2) bare OTel span, no processor (floor)", ("opentelemetry.sdk",)),
    "otel": ("(b) bare OTel span + stock BatchSpanProcessor/OTLP", ("opentelemetry.exporter.otlp.proto.http",)),
    "otel_lw": ("(b2) bare OTel span + Loopwise processor", ("loopwise",)),
    "loopwise": ("Loopwise @observe", ("loopwise",)),
    "langfuse": ("(c) Langfuse @observe", ("langfuse",)),
    "traceloop": ("(d) Traceloop @workflow", ("traceloop.sdk",)),
    "openlit": ("(d) OpenLIT @openlit.trace", ("openlit",)),
}
REPORTED_DISTS = (
    "loopwise",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-http",
    "protobuf",
    "langfuse",
    "traceloop-sdk",
    "openlit",
)
NOT_INSTALLED_FILE = "bench-sdk-not-installed.txt"  # written by `make bench-sdk` into the venv
# Also timed against a local null sink that answers 200 (a collector that keeps up), as references.
UP_REFERENCES = ("otel", "loopwise")


# --- availability ----------------------------------------------------------------------------------


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for dist in REPORTED_DISTS:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _loopwise_missing() -> str | None:
    try:
        import loopwise
    except Exception as exc:
        return f"import loopwise failed: {type(exc).__name__}: {exc}"
    missing = [name for name in ("configure", "observe", "flush", "stats") if not hasattr(loopwise, name)]
    return f"loopwise has no {', '.join(missing)} yet" if missing else None


def unavailable(name: str) -> str | None:
    """Why a variant cannot run in this interpreter, or None."""
    _, modules = VARIANTS[name]
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            venv = Path(sys.prefix).name
            hint = "" if venv == ".venv-bench" else "; `make bench-sdk` installs it in .venv-bench"
            return f"not installed in {venv} ({module} not importable{hint})"
    if "loopwise" in modules:
        return _loopwise_missing()
    return None


def install_notes() -> list[str]:
    """What `make bench-sdk` could not install (one line per package), if it left a note."""
    path = Path(sys.prefix) / NOT_INSTALLED_FILE
    return [line for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def probe_endpoint(endpoint: str) -> str:
    """Say whether anything listens at the endpoint (it should not)."""
    url = urlparse(endpoint)
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=1):
            return "WARNING: something accepts connections there; the 'collector down' figures do not apply"
    except ConnectionRefusedError:
        return "unreachable (connection refused)"
    except OSError as exc:
        return f"unreachable ({type(exc).__name__}: {exc})"


# --- children --------------------------------------------------------------------------------------


def child_env() -> dict[str, str]:
    """The environment minus tracing settings and proxies, so each library sees only its arguments."""
    prefixes = ("OTEL_", "LANGFUSE_", "TRACELOOP_", "OPENLIT_", "LOOPWISE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes) and "proxy" not in k.lower()}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost,::1"
    return env


def run_child(params: dict[str, Any], workdir: Path, timeout: float, tag: str) -> dict[str, Any]:
    out, log = workdir / f"{tag}.json", workdir / f"{tag}.log"
    params = {**params, "out": str(out)}
    if params["variant"] in ("loopwise", "otel_lw"):
        params["spool_dir"] = str(workdir / f"spool-{tag}")
    started = time.monotonic()
    try:
        with open(log, "wb") as log_file:
            proc = subprocess.run(
                [sys.executable, str(CHILD), json.dumps(params)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=child_env(),
                cwd=common.REPO_ROOT,
                timeout=timeout,
                check=False,
            )
        result: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {"error": f"exit {proc.returncode}"}
    except subprocess.TimeoutExpired:
        result = {"error": f"timed out after {timeout:.0f}s"}
    result["wall_s"] = time.monotonic() - started
    if "error" in result:
        result["log_tail"] = common.log_tail(log, 15)
    return result


@contextmanager
def null_sink(workdir: Path) -> Iterator[str]:
    """A local HTTP server answering 200 to every POST (a collector that keeps up), for the references."""
    port = common.free_port()
    log = open(workdir / "sink.log", "wb")  # noqa: SIM115 - the child writes to it for its lifetime
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), json.dumps({"mode": "sink", "port": port})],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=child_env(),
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"null sink did not start:\n{common.log_tail(workdir / 'sink.log')}") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def summarize_timing(res: dict[str, Any]) -> dict[str, Any]:
    reps = res["timing"]["repeats"]
    wall = [r["us_per_call"] for r in reps]
    return {
        "median_us": common.percentile(wall, 50),
        "min_us": min(wall),
        "max_us": max(wall),
        "cpu_median_us": common.percentile([r["cpu_us_per_call"] for r in reps], 50),
        "p50_us": res["timing"]["per_call_us"]["p50"],
        "p95_us": res["timing"]["per_call_us"]["p95"],
        "other_cores_busy": res["timing"].get("other_cores_busy"),
    }


# --- run -------------------------------------------------------------------------------------------


def _time_variant(
    key: str, name: str, endpoint: str, args: argparse.Namespace, base: dict[str, Any], workdir: Path
) -> dict[str, Any]:
    params = {**base, "endpoint": endpoint, "variant": name, "mode": "time", "calls": args.calls}
    params["repeats"] = args.repeats
    if not key.endswith("@up"):
        params.update(paced_calls=args.paced_calls, paced_rate=args.paced_rate)
    timeout = 120 + PER_CALL_BUDGET_S * (args.calls * args.repeats + args.warmup) + args.paced_calls / args.paced_rate
    res = run_child(params, workdir, timeout, tag=key.replace("@", "-"))
    if "error" not in res:
        res["summary"] = summarize_timing(res)
    return res


def run(args: argparse.Namespace) -> dict[str, Any]:
    machine = common.machine_info()
    print(f"machine: {machine['cores']} cores, {machine['cpu_model']}, Python {machine['python']} ({sys.prefix})")
    machine["load_before_start"] = common.idle_check()
    endpoint_state = probe_endpoint(args.endpoint)
    print(f"endpoint {args.endpoint}: {endpoint_state}")
    workdir = Path(tempfile.mkdtemp(prefix="loopwise-bench-sdk-"))
    base = {
        "warmup": args.warmup,
        "max_content_bytes": args.max_content_bytes,
        "flush_timeout": args.flush_timeout,
        "settle_s": args.settle,
    }
    selected = [v for v in VARIANTS if not args.only or v in args.only]
    results: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    memory: dict[str, dict[str, Any]] = {}
    try:
        for name in selected:
            reason = unavailable(name)
            if reason:
                skipped[name] = reason
                print(f"  {VARIANTS[name][0]}: skipped, {reason}")
                continue
            print(f"  {VARIANTS[name][0]}: {args.repeats} x {args.calls:,} calls ...", flush=True)
            res = _time_variant(name, name, args.endpoint, args, base, workdir)
            if str(res.get("error", "")).startswith("NotImplementedError"):
                skipped[name] = res["error"]  # e.g. (b2) when configure() adds no processor to the app's provider
                print(f"    skipped: {res['error']}")
                continue
            if "error" in res:
                print(f"    failed: {res['error']}\n{res.get('log_tail', '')}")
            results[name] = res
        references = [n for n in UP_REFERENCES if n in results and "error" not in results[n]]
        if references and not args.no_sink:
            with null_sink(workdir) as sink:
                for name in references:
                    print(f"  reference, collector up ({sink}, null sink): {VARIANTS[name][0]} ...", flush=True)
                    res = _time_variant(f"{name}@up", name, sink, args, base, workdir)
                    if "error" in res:
                        print(f"    failed: {res['error']}\n{res.get('log_tail', '')}")
                    results[f"{name}@up"] = res
        if args.spans > 0:
            for name in ("loopwise", "otel"):
                if name not in results or "error" in results[name]:
                    continue
                print(f"  memory, collector down: {args.spans:,} spans via {VARIANTS[name][0]} ...", flush=True)
                params = {**base, "endpoint": args.endpoint, "variant": name, "mode": "rss", "spans": args.spans}
                timeout = 180 + PER_CALL_BUDGET_S * args.spans + args.flush_timeout
                res = run_child(params, workdir, timeout, tag=f"{name}-rss")
                if "error" in res:
                    print(f"    failed: {res['error']}\n{res.get('log_tail', '')}")
                memory[name] = res
    finally:
        if args.keep:
            print(f"kept {workdir} (children's logs and spools)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    payload: dict[str, Any] = {
        "benchmark": "sdk_overhead",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine,
        "interpreter": sys.executable,
        "versions": versions(),
        "config": {**vars(args), "payload_chars": 2048, "payload_pool": 256, "endpoint_state": endpoint_state},
        "targets": {"loopwise_vs_otel_max": TARGET_VS_OTEL, "rss_growth_mb_max": TARGET_RSS_GROWTH_MB},
        "skipped": skipped,
        "install_notes": install_notes(),
        "variants": results,
        "memory": memory,
    }
    payload["verdicts"] = verdicts(payload)
    return common.clean_nans(payload)  # type: ignore[no-any-return]


def _median(results: dict[str, dict[str, Any]], name: str) -> float | None:
    res = results.get(name)
    return res["summary"]["median_us"] if res and "summary" in res else None


def verdicts(payload: dict[str, Any]) -> dict[str, Any]:
    results, memory = payload["variants"], payload["memory"]
    lw, otel, lf = _median(results, "loopwise"), _median(results, "otel"), _median(results, "langfuse")
    out: dict[str, Any] = {}
    if lw is not None and otel is not None:
        ratio = lw / otel
        out["loopwise_vs_otel"] = {"ratio": ratio, "pass": ratio <= TARGET_VS_OTEL}
    if lw is not None and lf is not None:
        out["loopwise_vs_langfuse"] = {"ratio": lw / lf, "pass": lw < lf}
    mem = memory.get("loopwise", {}).get("memory")
    if mem is not None:
        growth_mb = mem["growth_kib"] / 1024
        out["rss_growth"] = {"mb": growth_mb, "pass": growth_mb < TARGET_RSS_GROWTH_MB}
    return out


# --- report ----------------------------------------------------------------------------------------


def _ratio(value: float | None, ref: float | None) -> str:
    return f"{value / ref:.2f}x" if value is not None and ref else "-"


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{max(value, 0.0):.2f}"


def _capture(res: dict[str, Any]) -> str:
    cap = res.get("capture") or {}
    if not cap.get("checked"):
        return "-"
    parts = [f"{k}: {cap[k]}" for k in ("input", "output") if cap.get(k)]
    spool = res.get("spool_content") or {}
    if spool.get("checked") and spool["files"]:
        in_spool = "yes" if spool["prompts_found"] and spool["completions_found"] else "NO"
        if not parts:
            return f"not on the span at end() (deferred to the export thread); in the spool: {in_spool}"
        parts.append(f"in the spool: {in_spool}")
    return "; ".join(parts) if parts else "NO 2 KB input/output on the span"


def _counters(stats: dict[str, Any], keys: tuple[str, ...] = ()) -> str:
    items = [(k, v) for k, v in stats.items() if not keys or k in keys]
    return ", ".join(f"{k}={v:,}" if isinstance(v, int) and not isinstance(v, bool) else f"{k}={v}" for k, v in items)


_SHORT = {"spans_queued": "queued", "spool_items": "in spool", "spans_delivered": "sent",
          "spans_dropped_queue_full": "dropped"}  # fmt: skip


def _loopwise_counts(stats: dict[str, Any]) -> str:
    """``loopwise.stats()`` in short, when it has the counters this bench knows; else all of them."""
    if not all(k in stats for k in _SHORT):
        return _counters(stats)
    return ", ".join(f"{label} {stats[k]:,}" for k, label in _SHORT.items())


def _spans_note(r: dict[str, Any], timed: int) -> str:
    if r.get("stats"):
        return _loopwise_counts(r["stats"])
    dropped = r.get("stock_batch_dropped")
    return f"{dropped:,} of {timed:,} dropped" if dropped is not None else "-"


def report(res: dict[str, Any]) -> None:
    m, cfg, results = res["machine"], res["config"], res["variants"]
    otel, lf = _median(results, "otel"), _median(results, "langfuse")
    timed = cfg["calls"] * cfg["repeats"]
    rows: list[list[Any]] = []
    keys = [*VARIANTS, *(f"{n}@up" for n in UP_REFERENCES)]
    for key in keys:
        name, up = key.split("@")[0], key.endswith("@up")
        label = VARIANTS[name][0] + (" [collector UP: null sink]" if up else "")
        r = results.get(key)
        if r is None:
            if key in res["skipped"]:
                rows.append([label, "skipped", "", "", "", "", "", "", res["skipped"][key], ""])
            continue
        if "summary" not in r:
            rows.append([label, "failed", "", "", "", "", "", "", r.get("error", ""), ""])
            continue
        s = r["summary"]
        rows.append(
            [label, f"{s['median_us']:,.1f}", f"{s['min_us']:,.1f}-{s['max_us']:,.1f}",
             f"{s['p50_us']:,.1f} / {s['p95_us']:,.1f}", f"{s['cpu_median_us']:,.1f}",
             _ratio(s["median_us"], otel), _ratio(s["median_us"], lf), _cores(s["other_cores_busy"]),
             _spans_note(r, timed), _capture(r)]
        )  # fmt: skip
    common.print_table(
        f"SDK overhead per call, 2 KB in / 2 KB out, collector down ({cfg['endpoint']}) | {m['cores']} cores "
        f"({m['cpu_model']}) | {cfg['repeats']} x {cfg['calls']:,} calls after {cfg['warmup']:,} warm-up",
        ["variant", "median us/call", "range", "per-call p50 / p95", "CPU us/call", "vs (b)", "vs (c)",
         "other load", "spans (timed)", "2 KB input / output captured"],
        rows,
    )  # fmt: skip
    print(
        "median us/call: wall time / calls per repeat, median of repeats; it includes what background threads take\n"
        "from the app thread through the GIL. per-call p50/p95: single calls. CPU: whole process, all threads.\n"
        "other load: cores other processes kept busy meanwhile (above ~0.1, contention inflates the wall figures)."
    )

    vrows: list[list[Any]] = []
    v = res["verdicts"]
    if "loopwise_vs_otel" in v:
        vrows.append(["Loopwise / (b) bare OTel, median", f"{v['loopwise_vs_otel']['ratio']:.2f}x",
                      f"<= {TARGET_VS_OTEL}x", "PASS" if v["loopwise_vs_otel"]["pass"] else "MISS"])  # fmt: skip
    else:
        vrows.append(["Loopwise / (b) bare OTel, median", "-", f"<= {TARGET_VS_OTEL}x", "NOT MEASURED"])
    if "loopwise_vs_langfuse" in v:
        vrows.append(["Loopwise / (c) Langfuse, median", f"{v['loopwise_vs_langfuse']['ratio']:.2f}x", "< 1.00x",
                      "PASS" if v["loopwise_vs_langfuse"]["pass"] else "MISS"])  # fmt: skip
    else:
        vrows.append(["Loopwise / (c) Langfuse, median", "-", "< 1.00x", "NOT MEASURED"])
    if "rss_growth" in v:
        vrows.append([f"RSS growth, {cfg['spans']:,} spans, collector down", f"{v['rss_growth']['mb']:,.1f} MB",
                      f"< {TARGET_RSS_GROWTH_MB:.0f} MB", "PASS" if v["rss_growth"]["pass"] else "MISS"])  # fmt: skip
    elif cfg["spans"] > 0:
        vrows.append([f"RSS growth, {cfg['spans']:,} spans, collector down", "-",
                      f"< {TARGET_RSS_GROWTH_MB:.0f} MB", "NOT MEASURED"])  # fmt: skip
    common.print_table("Targets (issue)", ["target", "measured", "target", "verdict"], vrows)

    prows: list[list[Any]] = []
    paced_otel = (results.get("otel") or {}).get("paced", {}).get("per_call_us", {}).get("p50")
    for name, (label, _) in VARIANTS.items():
        pc = (results.get(name) or {}).get("paced")
        if pc is None:
            continue
        q = pc["per_call_us"]
        prows.append(
            [label, f"{q['p50']:,.1f}", f"{q['p95']:,.1f}", f"{q['p99']:,.1f}", f"{pc['mean_us']:,.1f}",
             _ratio(q["p50"], paced_otel), f"{pc['achieved_per_s']:,.0f}"]
        )  # fmt: skip
    if prows:
        common.print_table(
            f"Paced: {cfg['paced_calls']:,} calls at {cfg['paced_rate']:,.0f}/s, before the back-to-back calls (the "
            "export keeps up), each timed on the calling thread, collector down",
            ["variant", "p50 us", "p95 us", "p99 us", "mean us", "p50 vs (b)", "calls/s"],
            prows,
        )

    mrows: list[list[Any]] = []
    for name, r in res["memory"].items():
        mem = r.get("memory")
        if mem is None:
            mrows.append([VARIANTS[name][0], "failed", "", "", "", "", "", r.get("error", "")])
            continue
        mb = 1024.0
        spool = mem["spool"]
        counters = mem.get("stats_end") or {}
        if counters:
            note = _loopwise_counts(counters)
            if counters.get("items_dropped_spool_full") or counters.get("items_dropped_internal_error"):
                note += "; " + _counters(counters, ("items_dropped_spool_full", "items_dropped_internal_error"))
            content = mem.get("spool_content") or {}
            if content.get("checked"):
                ok = content["prompts_found"] and content["completions_found"]
                note += f"; 2 KB texts in spool: {'yes' if ok else 'NO'}"
        else:
            dropped = r.get("stock_batch_dropped")
            note = f"stock queue: {dropped:,} of {mem['spans']:,} dropped" if dropped is not None else ""
        flush = mem.get("flush") or {}
        if flush:
            note += f"; flush() -> {flush['returned']} in {flush['seconds']:.1f}s"
        mrows.append(
            [VARIANTS[name][0], f"{mem['rss_base_kib'] / mb:,.1f}", f"{mem['rss_peak_during_kib'] / mb:,.1f}",
             f"{mem['rss_after_settle_kib'] / mb:,.1f}", f"{mem['growth_kib'] / mb:,.1f}",
             f"{spool['bytes'] / 2**20:,.1f} MB / {spool['files']:,}" if name == "loopwise" else "-",
             f"{mem['us_per_call']:,.1f}", note]
        )  # fmt: skip
    if mrows:
        common.print_table(
            f"Memory, {cfg['spans']:,} spans with the collector down (RSS in MB; 'after' = "
            f"{cfg['settle']:g}s after the loop and a flush)",
            ["variant", "RSS before", "peak during", "after", "growth", "spool size / files", "us/call", "counters"],
            mrows,
        )

    lines = [f"skipped {VARIANTS[k][0]}: {why}" for k, why in res["skipped"].items()]
    lines.extend(f"not installed by make bench-sdk: {note}" for note in res["install_notes"])
    for key, r in results.items():
        lines.extend(f"{key}: {note}" for note in r.get("notes") or [])
    installed = ", ".join(f"{k} {v}" for k, v in res["versions"].items() if v)
    lines.append(f"versions: {installed}")
    lines.append(f"endpoint {cfg['endpoint']}: {cfg['endpoint_state']}")
    print("\n" + "\n".join(lines))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--calls", type=int, default=20_000, help="timed calls per repeat (default 20,000)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per variant (default 5)")
    p.add_argument("--warmup", type=int, default=2_000, help="untimed calls first (default 2,000)")
    p.add_argument("--spans", type=int, default=100_000, help="spans for the memory run, 0 to skip (default 100,000)")
    p.add_argument("--endpoint", default="http://127.0.0.1:9", help="the unreachable collector (default :9)")
    p.add_argument("--max-content-bytes", type=int, help="loopwise.configure(max_content_bytes=...) (SDK default)")
    p.add_argument("--flush-timeout", type=float, default=5.0, help="loopwise.flush(timeout=...) after the memory run")
    p.add_argument("--settle", type=float, default=1.0, help="seconds to wait after the memory run before 'after'")
    p.add_argument("--only", type=lambda s: s.split(","), help=f"comma-separated subset of: {', '.join(VARIANTS)}")
    p.add_argument("--paced-calls", type=int, default=5_000, help="calls in the paced run, 0 to skip (default 5,000)")
    p.add_argument("--paced-rate", type=float, default=1_000.0, help="calls/s in the paced run (default 1,000)")
    p.add_argument("--no-sink", action="store_true", help="skip the 'collector up' references (null sink)")
    p.add_argument("--keep", action="store_true", help="keep the children's logs and spool directories")
    p.add_argument("--quick", action="store_true", help="smoke test, < 30 s (2,000 calls x 3, 5,000 spans)")
    args = p.parse_args(argv)
    if args.quick:
        args.calls, args.repeats, args.warmup = min(args.calls, 2_000), 3, 300
        args.spans, args.flush_timeout, args.settle = min(args.spans, 5_000), 0.5, 0.2
        args.paced_calls = min(args.paced_calls, 500)
    if args.only:
        unknown = set(args.only) - set(VARIANTS)
        if unknown:
            p.error(f"unknown variants: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    res = run(args)
    report(res)
    path = common.write_results("sdk_overhead", res)
    print(f"\nresults: {path.relative_to(common.REPO_ROOT)}")
    failed = [k for k, r in res["variants"].items() if "error" in r]
    failed += [k for k, r in res["memory"].items() if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
