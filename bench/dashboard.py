"""Dashboard render time with 1M spans in the store, measured in headless Chromium.

Loads the spans (and scores) of ``bench/query.py`` into a fresh embedded store, starts a collector on it and
the dashboard (``streamlit run``) against that collector, then opens every page in headless Chromium
(chromedriver's WebDriver API, as the browser tests do) and times until the page's own content is shown and
no loading skeleton or "running" indicator is left. Each page is opened ``--loads`` times: the first is cold
(the dashboard's ``st.cache_data`` is empty), the rest hit a fresh browser tab with the cache warm for up to
its TTL. Target (issue 5): every page <= 2 s.

    python bench/dashboard.py            # 1,000,000 spans
    python bench/dashboard.py --quick    # 40,000 spans
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as common
import httpx
import query

sys.path.insert(0, str(common.REPO_ROOT))  # the browser harness lives with the tests
from tests.support import processes
from tests.support.browser import Browser, chromium_available

TARGET_S = 2.0
# (page, path, text that only the rendered page shows)
PAGES: list[tuple[str, str, tuple[str, ...]]] = [
    ("Overview", "/", ("Overview", "Per model")),
    ("Traces", "/traces", ("Traces", "Page 1 ·")),
    ("Trace detail", "/trace?trace_id={trace_id}", ("Trace detail", "Your feedback")),
    ("Evaluations", "/evaluations", ("Evaluations", "All evaluators", "Worst")),
    ("Drift", "/drift", ("Drift", "What drives the shift", "Reference against current embeddings")),
    ("Feedback queue", "/feedback", ("Feedback queue", "Feedback so far")),
    ("Settings", "/settings", ("Connection", "Evaluator rules")),
]


def seed_drift(url: str, headers: dict[str, str]) -> None:
    """A drift rule with 1,000 + 1,000 stored embeddings and one recorded check, so the Drift page has work."""
    import base64

    import numpy as np

    from loopwise_collector.evaluators.embedding_drift import detect_drift

    http = httpx.Client(base_url=url, headers=headers, timeout=60)
    rule = http.post("/api/v1/evaluators", json={"evaluator": "embedding_drift", "name": "output_drift"}).json()
    rng = np.random.default_rng(0)
    now = time.time_ns()
    windows = {"reference": (now - 3 * 3600 * 10**9, 0.0), "current": (now - 1800 * 10**9, 0.6)}
    vectors = {}
    for window, (start, shift) in windows.items():
        v = rng.normal(size=(1000, 384)).astype(np.float32) + np.float32(shift)
        vectors[window] = v
        rows = [
            {"span_id": f"{i + (0 if window == 'reference' else 5000):016x}", "trace_id": f"{i:032x}",
             "start_time_unix_nano": start + i * 10**6, "text": f"{window} text {i}",
             "vector_b64": base64.b64encode(row.astype("<f4").tobytes()).decode()}
            for i, row in enumerate(v)
        ]  # fmt: skip
        body = {"rule_id": rule["id"], "field": "output", "model": "all-MiniLM-L6-v2", "embeddings": rows}
        http.post("/api/v1/evaluation/embeddings", json=body).raise_for_status()
    result = detect_drift(vectors["reference"], vectors["current"],
                          reference_texts=[f"reference text {i}" for i in range(1000)],
                          current_texts=[f"current text {i}" for i in range(1000)])  # fmt: skip
    iso = {k: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t / 1e9)) for k, t in (
        ("reference_start", now - 4 * 3600 * 10**9), ("reference_end", now - 3600 * 10**9),
        ("current_start", now - 3600 * 10**9), ("current_end", now))}  # fmt: skip
    check = {"rule_id": rule["id"], **iso, "drift": result.drift, "p_value": result.p_value,
             "n_reference": 1000, "n_current": 1000, "result": result.to_dict()}  # fmt: skip
    http.post("/api/v1/drift", json=check).raise_for_status()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--loads", type=int, default=5, help="page loads per page (the first is cold)")
    parser.add_argument("--quick", action="store_true", help="40,000 spans, 3 loads")
    args = parser.parse_args()
    if args.quick:
        args.spans, args.loads = 40_000, 3
    reason = chromium_available()
    if reason:
        raise SystemExit(reason)
    machine = common.machine_info()
    data_dir = Path(tempfile.mkdtemp(prefix="loopwise-bench-dashboard-"))
    key = "lw_bench_" + secrets.token_hex(12)
    print(f"loading {args.spans:,} spans into {data_dir} ...")
    load_args = argparse.Namespace(spans=args.spans, seed=42, requests=10, time_order="ingest")
    loaded = query.load(data_dir, key, load_args)
    print(f"  loaded {loaded['spans_loaded']:,} spans in {loaded['load_s']:.0f} s")
    results: dict[str, dict[str, Any]] = {}
    try:
        with common.collector("dashboard", key=key, data_dir=data_dir) as ep:
            newest = httpx.get(f"{ep.url}/api/v1/traces", params={"limit": 1}, headers=ep.headers, timeout=60)
            trace_id = newest.json()["data"][0]["trace_id"]
            seed_drift(ep.url, ep.headers)
            port = common.free_port()
            env = {**os.environ, "LOOPWISE_ENDPOINT": ep.url, "LOOPWISE_API_KEY": key}
            log = (data_dir / "dashboard.log").open("wb")
            app = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", str(_app_path()), "--server.headless", "true",
                 "--server.port", str(port), "--browser.gatherUsageStats", "false"],
                env=env, stdout=log, stderr=log,
            )  # fmt: skip
            try:
                processes.wait_http(f"http://127.0.0.1:{port}/_stcore/health", process=app)
                with Browser(width=1440, height=1100) as browser:
                    for name, path, needles in PAGES:
                        url = f"http://127.0.0.1:{port}{path.format(trace_id=trace_id)}"
                        times = []
                        for _ in range(args.loads):
                            browser.open("about:blank")
                            browser.open(url)
                            times.append(browser.wait_for_text(*needles, timeout=120))
                        results[name] = {"cold_s": times[0], "warm_median_s": statistics.median(times[1:] or times),
                                         "all_s": times}  # fmt: skip
                        print(f"  {name}: cold {times[0]:.2f} s, warm median {results[name]['warm_median_s']:.2f} s")
            finally:
                app.terminate()
                app.wait(30)
                log.close()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    rows = [
        [name, f"{r['cold_s']:.2f}", f"{r['warm_median_s']:.2f}", f"<= {TARGET_S:.0f} s",
         "pass" if max(r["cold_s"], r["warm_median_s"]) <= TARGET_S else "MISS"]
        for name, r in results.items()
    ]  # fmt: skip
    common.print_table(
        f"Dashboard render time in headless Chromium, {loaded['spans_loaded']:,} spans",
        ["page", "cold (s)", "warm median (s)", "target", "verdict"], rows,
    )  # fmt: skip
    path = common.write_results("dashboard", {"machine": machine, "spans": loaded["spans_loaded"], "pages": results,
                                              "target_s": TARGET_S})  # fmt: skip
    print(f"results: {path}")
    return 0


def _app_path() -> Path:
    from loopwise_dashboard import APP_PATH

    return APP_PATH


if __name__ == "__main__":
    sys.exit(main())
