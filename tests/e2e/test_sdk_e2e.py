"""The SDK end to end: real app processes, a real collector, the query API.

Covers the issue's acceptance: the trace tree for all four function kinds across threads and
asyncio tasks; 10,000 spans emitted during an outage arriving exactly once; and spans spooled
by an app that exited during an outage delivered by the next app process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopwise import semconv as sc
from tests.support.clickhouse_http import free_port
from tests.support.collector_process import CollectorProcess

pytestmark = pytest.mark.e2e

KEY = "lw_e2e_key"
AUTH = {"Authorization": f"Bearer {KEY}"}
ROOT = Path(__file__).resolve().parents[2]


def _collector(tmp_path: Path, port: int | None = None) -> CollectorProcess:
    return CollectorProcess(tmp_path / "data", env={"LOOPWISE_INIT_PROJECTS": f"demo:{KEY}"}, port=port)


def _app_env(url: str, spool: Path) -> dict[str, str]:
    return {
        **os.environ,
        "LOOPWISE_ENDPOINT": url,
        "LOOPWISE_API_KEY": KEY,
        "LOOPWISE_SPOOL_DIR": str(spool),
        "LOOPWISE_SERVICE_NAME": "e2e-app",
        "LOOPWISE_SHUTDOWN_TIMEOUT_S": "1",
        "PYTHONPATH": str(ROOT),
    }


def _app(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.support.sdk_app", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def _last_json(stdout: str) -> dict[str, Any]:
    return dict(json.loads(stdout.strip().splitlines()[-1]))


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorProcess]:
    c = _collector(tmp_path)
    c.start()
    yield c
    c.stop()


def _spans_received(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    m = re.search(r"^loopwise_spans_received_total (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def _summary(url: str) -> dict[str, Any]:
    r = httpx.get(f"{url}/api/v1/metrics/summary", headers=AUTH, timeout=30)
    r.raise_for_status()
    return dict(r.json()["data"][0])


def test_trace_tree_across_function_kinds_threads_and_tasks(tmp_path: Path, collector: CollectorProcess) -> None:
    run = _app(["tree"], _app_env(collector.url, tmp_path / "spool"))
    assert run.returncode == 0, run.stderr
    out = _last_json(run.stdout)
    assert out["delivered"] is True
    detail = httpx.get(f"{collector.url}/api/v1/traces/{out['trace_id']}", headers=AUTH, timeout=30).json()
    spans = detail["spans"]
    by_id = {s["span_id"]: s for s in spans}
    names = sorted(s["name"] for s in spans)
    assert names == sorted(
        ["support-request", "retrieve", "retrieve", "retrieve", "retrieve", "generate", "stream_words", "agent_step",
         "lookup", "lookup", "async_tokens", "flaky_tool"]
    )  # fmt: skip
    root = next(s for s in spans if s["name"] == "support-request")
    assert root["parent_span_id"] is None
    parent_name = {s["span_id"]: by_id[s["parent_span_id"]]["name"] for s in spans if s["parent_span_id"]}
    for s in spans:
        if s["name"] == "lookup":
            assert parent_name[s["span_id"]] == "agent_step"  # asyncio tasks under the span that made them
        elif s["name"] != "support-request":
            assert parent_name[s["span_id"]] == "support-request"  # threads with a copied context too
    llm = next(s for s in spans if s["name"] == "generate")
    assert (llm["model"], llm["provider"]) == ("gpt-4o-mini", "openai")
    assert (llm["input_tokens"], llm["output_tokens"]) == (42, 9)
    question = {"role": "user", "parts": [{"type": "text", "content": "Can I get a refund?"}]}
    assert json.loads(llm["input"])[1] == question
    assert llm["cost_usd"] > 0  # priced by the collector from the table
    stream = next(s for s in spans if s["name"] == "stream_words")
    assert stream["output"] == "Refunds are accepted within 30 days. "
    assert float(stream["attributes"][sc.LOOPWISE_TIME_TO_FIRST_CHUNK_MS]) >= 0
    assert json.loads(next(s for s in spans if s["name"] == "async_tokens")["output"]) == [0, 1, 2]
    assert json.loads(next(s for s in spans if s["name"] == "lookup")["output"])["days_since_purchase"] == 12
    failed = next(s for s in spans if s["name"] == "flaky_tool")
    assert failed["status"] == "error"
    assert root["status"] != "error"  # the app caught it
    assert json.loads(root["input"]) == {"question": "Can I get a refund?"}
    listed = httpx.get(f"{collector.url}/api/v1/traces", headers=AUTH, params={"user_id": "user-7"}).json()["data"]
    assert [t["trace_id"] for t in listed] == [out["trace_id"]]
    assert listed[0]["has_error"] is True and listed[0]["tags"] == ["e2e"] and listed[0]["session_id"] == "sess-1"


def test_outage_in_the_same_process_delivers_10000_spans_exactly_once(tmp_path: Path) -> None:
    port = free_port()
    env = _app_env(f"http://127.0.0.1:{port}", tmp_path / "spool")
    app = subprocess.Popen(
        [sys.executable, "-m", "tests.support.sdk_app", "emit", "10000", "--wait", "240"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert app.stdout is not None
    emitted = json.loads(app.stdout.readline())  # all spans ended while nothing listens on the port
    assert emitted["emitted"] == 10000
    time.sleep(1.0)  # let a few retries fail
    collector = _collector(tmp_path, port=port)
    collector.start()
    try:
        out, err = app.communicate(timeout=240)
        assert app.returncode == 0, err[-3000:]
        stats = _last_json(out)
        assert stats["spans_delivered"] == 10000
        assert stats["export_errors"] >= 1  # it did go through the outage path
        assert stats["spans_dropped_queue_full"] == 0 and stats["items_dropped_spool_full"] == 0
        assert _spans_received(collector.url) == 10000  # no batch was sent twice
        summary = _summary(collector.url)
        assert (summary["span_count"], summary["trace_count"]) == (10000, 1000)
    finally:
        collector.stop()


def test_outage_spool_is_delivered_by_the_next_process(tmp_path: Path) -> None:
    port = free_port()
    env = _app_env(f"http://127.0.0.1:{port}", tmp_path / "spool")
    t0 = time.monotonic()
    first = _app(["emit", "2000"], env)
    assert first.returncode == 0, first.stderr
    assert time.monotonic() - t0 < 30  # the exit-time flush is bounded (1 s here)
    assert "stay in" in first.stderr  # it said where the undelivered spans are
    spooled = list((tmp_path / "spool").rglob("*.spans.*"))
    assert sum(int(f.name.split(".")[2]) for f in spooled) == 2000
    collector = _collector(tmp_path, port=port)
    collector.start()
    try:
        second = _app(["drain", "120"], env)
        assert second.returncode == 0, second.stderr
        assert _last_json(second.stdout)["spans_delivered"] == 2000
        assert _summary(collector.url)["span_count"] == 2000
        assert _spans_received(collector.url) == 2000
        assert not list((tmp_path / "spool").rglob("*.spans.*"))
    finally:
        collector.stop()
