"""The dashboard in a real browser: `loopwise up` (collector, runner and dashboard), `loopwise demo` data, and
headless Chromium opening every page, waiting for its content, checking the text against the API, and saving a
screenshot. Set LOOPWISE_SCREENSHOT_DIR=docs/img to refresh the README's pictures.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import processes
from tests.support.browser import Browser, chromium_available
from tests.support.clickhouse_http import free_port

pytestmark = pytest.mark.e2e


@dataclass
class Stack:
    collector: str
    dashboard: str
    key: str

    def api(self, path: str, **params: Any) -> Any:
        r = httpx.get(f"{self.collector}{path}", params=params, headers={"Authorization": f"Bearer {self.key}"})
        r.raise_for_status()
        return r.json()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    reason = chromium_available()
    if reason:
        pytest.fail(reason)  # `make test` installs them: a missing browser is a setup error, not a skip
    data = tmp_path_factory.mktemp("up")
    port, dashboard_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPWISE_")}
    env |= {"LOOPWISE_DATA_DIR": str(data), "LOOPWISE_PORT": str(port), "LOOPWISE_DASHBOARD_PORT": str(dashboard_port),
            "LOOPWISE_SPOOL_DIR": str(data / "sdk-spool")}  # fmt: skip
    log = (data / "up.log").open("wb")
    up = subprocess.Popen([sys.executable, "-m", "loopwise_collector.cli", "up"], env=env, stdout=log, stderr=log)
    try:
        collector = f"http://127.0.0.1:{port}"
        processes.wait_http(f"{collector}/healthz", timeout=120, process=up)
        processes.wait_http(f"http://127.0.0.1:{dashboard_port}/_stcore/health", timeout=120, process=up)
        demo = subprocess.run(
            [sys.executable, "-m", "loopwise_collector.cli", "demo", "--traces", "60", "--seed", "11"],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert demo.returncode == 0, demo.stderr
        key = re.search(r'"api_key": "([^"]+)"', (data / "credentials.json").read_text())
        assert key is not None
        stack = Stack(collector, f"http://127.0.0.1:{dashboard_port}", key.group(1))
        # The runner `up` started scores the demo traffic and records a first drift check: wait for both, so
        # the Evaluations and Drift pages have something to show.
        deadline = time.monotonic() + 180
        while not (stack.api("/api/v1/scores", name="hallucination")["data"] and stack.api("/api/v1/drift")["data"]):
            assert time.monotonic() < deadline, "the runner scored nothing:\n" + (data / "up.log").read_text()[-3000:]
            time.sleep(1)
        yield stack
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser(width=1440, height=1100) as b:
        yield b


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = os.environ.get("LOOPWISE_SCREENSHOT_DIR")
    return Path(target) if target else tmp_path_factory.mktemp("screenshots")


def visit(browser: Browser, url: str, *needles: str) -> tuple[float, str]:
    browser.open(url)
    seconds = browser.wait_for_text(*needles, timeout=60)
    time.sleep(1.0)  # let the charts draw before the screenshot
    return seconds, browser.text()


def test_overview_shows_the_api_totals(stack: Stack, browser: Browser, shots: Path) -> None:
    total = stack.api("/api/v1/metrics/summary")["data"][0]
    assert total["trace_count"] == 60
    seconds, text = visit(browser, f"{stack.dashboard}/", "Overview", "Per model")
    assert re.search(r"Traces\s+60\b", text), text[:800]
    assert re.search(rf"Spans\s+{total['span_count']:,}\b", text), text[:800]
    browser.screenshot(shots / "overview.png")
    print(f"overview rendered in {seconds:.2f} s")


def test_traces_lists_the_newest_trace(stack: Stack, browser: Browser, shots: Path) -> None:
    newest = stack.api("/api/v1/traces", limit=50)["data"][0]
    seconds, text = visit(browser, f"{stack.dashboard}/traces", "Traces", "Open trace detail")
    # The table is drawn on a canvas; the trace picker under it shows the newest trace as its value.
    picked = browser.script(
        "return [...document.querySelectorAll('[data-testid=stSelectbox]')]"
        ".map(e => e.textContent + ' ' + [...e.querySelectorAll('input')].map(i => i.value).join(' '))"
    )
    assert any(newest["trace_id"] in p and newest["name"] in p for p in picked), picked
    assert re.search(r"Page 1 · 50 traces", text), text[-800:]
    browser.screenshot(shots / "traces.png")
    print(f"traces rendered in {seconds:.2f} s")


def test_trace_detail_shows_the_spans_and_chat(stack: Stack, browser: Browser, shots: Path) -> None:
    traces = stack.api("/api/v1/traces", limit=50, name="support-chat")["data"]
    trace = stack.api(f"/api/v1/traces/{traces[0]['trace_id']}")
    root = next(s for s in trace["spans"] if not s["parent_span_id"])
    seconds, text = visit(browser, f"{stack.dashboard}/trace?trace_id={trace['trace_id']}", "Trace detail",
                          root["name"], "Your feedback")  # fmt: skip
    assert trace["trace_id"] in text
    browser.screenshot(shots / "trace-detail.png")
    print(f"trace detail rendered in {seconds:.2f} s")


def test_evaluations_shows_the_runners_scores(stack: Stack, browser: Browser, shots: Path) -> None:
    summary = {r["name"]: r for r in stack.api("/api/v1/scores/summary")["data"]}
    assert "hallucination" in summary
    seconds, _ = visit(browser, f"{stack.dashboard}/evaluations", "Evaluations", "All evaluators",
                          "Worst hallucination traces")  # fmt: skip
    browser.screenshot(shots / "evaluations.png")
    print(f"evaluations rendered in {seconds:.2f} s")


def test_drift_shows_the_latest_check(stack: Stack, browser: Browser, shots: Path) -> None:
    latest = stack.api("/api/v1/drift", monitor="output_drift")["data"][0]
    needle = "The latest check was skipped" if latest["p_value"] is None else "Latest check"
    seconds, text = visit(browser, f"{stack.dashboard}/drift", "Drift", needle)
    if latest["p_value"] is None:  # demo data spans minutes, not the day-long reference window
        assert "not enough samples" in text
    browser.screenshot(shots / "drift.png")
    print(f"drift rendered in {seconds:.2f} s")


def test_feedback_queue_offers_a_trace_to_review(stack: Stack, browser: Browser, shots: Path) -> None:
    seconds, text = visit(browser, f"{stack.dashboard}/feedback", "Feedback queue", "Feedback so far")
    assert re.search(r"\b1\. ", text), text[:800]  # the first trace of the queue
    browser.screenshot(shots / "feedback-queue.png")
    print(f"feedback queue rendered in {seconds:.2f} s")


def test_settings_shows_the_connection_and_rules(stack: Stack, browser: Browser, shots: Path) -> None:
    seconds, text = visit(browser, f"{stack.dashboard}/settings", "Connection", "Evaluator rules")
    assert stack.collector in text
    assert stack.key not in text  # masked
    browser.screenshot(shots / "settings.png")
    print(f"settings rendered in {seconds:.2f} s")
