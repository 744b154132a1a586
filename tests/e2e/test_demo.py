"""``loopwise demo`` against the real collector: what it prints is what the API then shows."""

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

from loopwise import semconv
from tests.support.clickhouse_http import free_port
from tests.support.collector_process import CollectorProcess

pytestmark = pytest.mark.e2e

KEY = "lw_test_key"
OTHER_KEY = "lw_other_key"


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    proc = CollectorProcess(
        tmp_path_factory.mktemp("demo") / "data",
        env={"LOOPWISE_INIT_PROJECTS": f"demo:{KEY},other:{OTHER_KEY}"},
    )
    proc.start()
    yield proc
    proc.stop()


def demo(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LOOPWISE_")}
    base.update({"LOOPWISE_SPOOL_DIR": str(tmp_path / "spool"), "LOOPWISE_DATA_DIR": str(tmp_path / "lw"), **env})
    return subprocess.run(
        [sys.executable, "-m", "loopwise_collector.cli", "demo", *args],
        env=base, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def get(collector: CollectorProcess, path: str, key: str = KEY, **params: Any) -> Any:
    resp = httpx.get(f"{collector.url}{path}", params=params, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    resp.raise_for_status()
    return resp.json()


def number(pattern: str, text: str) -> int:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in:\n{text}"
    return int(match.group(1).replace(",", ""))


def test_demo_sends_what_it_reports(collector: CollectorProcess, tmp_path: Path) -> None:
    args = ["--traces", "30", "--endpoint", collector.url, "--api-key", KEY, "--seed", "7"]
    started = time.monotonic()
    run = demo([*args, "--error-rate", "0.3", "--feedback-rate", "0.4"], tmp_path)
    took = time.monotonic() - started
    out = run.stdout
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Sent 30 traces" in out and f"to {collector.url}" in out
    assert re.search(r"delivery +all \d+ spans and \d+ scores delivered", out), out
    assert f'curl -H "Authorization: Bearer {KEY}" "{collector.url}/api/v1/traces' in out
    assert took < 60, f"30 traces took {took:.1f} s"
    spans_sent = number(r"\((\d+) spans\)", out)
    error_traces = number(r"errors +(\d+) traces with error spans", out)
    scores_sent = number(r"feedback +(\d+) human scores", out)
    input_tokens = number(r"tokens +([\d,]+) input", out)
    assert error_traces > 0 and scores_sent > 0

    traces = get(collector, "/api/v1/traces", limit=500)["data"]
    assert len(traces) == 30
    assert sum(t["span_count"] for t in traces) == spans_sent
    assert sum(t["input_tokens"] for t in traces) == input_tokens
    assert {t["name"] for t in traces} <= {"support-chat", "rag-answer", "summarize-ticket"}
    assert len({t["name"] for t in traces}) >= 2
    assert all(t["user_id"] and t["session_id"] and "demo" in t["tags"] for t in traces)
    assert len({t["session_id"] for t in traces}) < 30  # multi-turn sessions
    assert {v for t in traces for v in t["variants"]} == {"A", "B"}
    assert sum(t["has_error"] for t in traces) == error_traces
    assert len(get(collector, "/api/v1/traces", limit=500, has_error="true")["data"]) == error_traces
    assert len({m for t in traces for m in t["models"]}) >= 4
    assert any(t["cost_usd"] for t in traces)
    assert any(t["unpriced_span_count"] for t in traces)  # the self-hosted models
    assert any(t["scores"] for t in traces)

    spans = [s for t in traces for s in get(collector, f"/api/v1/traces/{t['trace_id']}")["spans"]]
    assert len(spans) == spans_sent
    assert {"openai", "anthropic", "gcp.gemini", "vllm"} <= {s["provider"] for s in spans}
    assert {"agent", "llm", "retrieval", "tool"} <= {s["span_type"] for s in spans}
    assert any(s["status"] == "error" and s["status_message"] for s in spans)
    assert len({(s["prompt_name"], s["prompt_version"]) for s in spans if s["prompt_name"]}) >= 3
    streamed = [s for s in spans if semconv.LOOPWISE_TIME_TO_FIRST_CHUNK_MS in s["attributes"]]
    assert streamed and all(s["span_type"] == "llm" for s in streamed)
    assert all(float(s["attributes"][semconv.LOOPWISE_TIME_TO_FIRST_CHUNK_MS]) > 0 for s in streamed)
    llm = [s for s in spans if s["span_type"] == "llm" and s["status"] != "error"]
    assert all(s["model"] and s["input_tokens"] and json.loads(s["input"]) for s in llm)

    scores = get(collector, "/api/v1/scores", source="human", limit=1000)["data"]
    assert len(scores) == scores_sent
    assert {s["name"] for s in scores} <= {"thumbs", "rating"}
    assert all(s["value"] in (0.0, 1.0) for s in scores if s["name"] == "thumbs")
    assert all(1 <= s["value"] <= 5 for s in scores if s["name"] == "rating")
    assert {s["trace_id"] for s in scores} <= {t["trace_id"] for t in traces}


def test_demo_uses_the_key_loopwise_up_stored(collector: CollectorProcess, tmp_path: Path) -> None:
    data_dir = tmp_path / "lw"
    data_dir.mkdir()
    (data_dir / "credentials.json").write_text(json.dumps({"project": "other", "api_key": OTHER_KEY}))
    run = demo(["--traces", "3", "--feedback-rate", "0", "--latency-scale", "0"], tmp_path,
               LOOPWISE_ENDPOINT=collector.url)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Sent 3 traces" in run.stdout
    assert len(get(collector, "/api/v1/traces", key=OTHER_KEY)["data"]) == 3


def test_demo_without_a_collector_says_so(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    run = demo(["--traces", "5", "--endpoint", url, "--api-key", KEY], tmp_path)
    assert run.returncode != 0
    assert f"cannot reach a Loopwise collector at {url}" in run.stderr
    assert "loopwise up" in run.stderr
    assert time.monotonic() - started < 30
    assert not (tmp_path / "spool").exists()  # nothing was traced, so nothing waits to be sent


def test_demo_with_a_wrong_key_says_it_was_rejected(collector: CollectorProcess, tmp_path: Path) -> None:
    run = demo(["--traces", "5", "--endpoint", collector.url, "--api-key", "lw_wrong"], tmp_path)
    assert run.returncode != 0
    assert "rejected the API key" in run.stderr
    assert "lw_wrong" not in run.stdout + run.stderr
    assert not (tmp_path / "spool").exists()


def test_demo_without_any_key_says_where_to_get_one(collector: CollectorProcess, tmp_path: Path) -> None:
    run = demo(["--traces", "5", "--endpoint", collector.url], tmp_path)
    assert run.returncode != 0
    assert "no API key" in run.stderr and "credentials.json" in run.stderr
