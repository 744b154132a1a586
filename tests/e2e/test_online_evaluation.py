"""Online evaluation end to end, in real processes: spans arrive over OTLP at a uvicorn collector, a
`loopwise evaluate` runner (its own process, real MiniLM and a Detoxify-format checkpoint) scores
them, and the scores come back through `GET /api/v1/scores`. Mid-stream the runner is killed and
restarted, then the collector is; every span still ends with exactly one score per rule.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopwise import semconv as sc
from tests.otlp_builders import llm_trace_spans, span_id_hex, to_protobuf
from tests.support import processes
from tests.support.collector_process import CollectorProcess
from tests.support.tiny_detoxify import build_tiny_detoxify

pytestmark = pytest.mark.e2e

KEY = "key-online-e2e"
AUTH = {"Authorization": f"Bearer {KEY}"}
TRACES = 150
RATE = 6.0  # traces per second: the stream outlasts both restarts
ANSWERS = [
    "Your order shipped yesterday and should arrive on Friday.",
    "You can reset the password from the account page. The link expires after one hour.",
    "Refunds go back to the original card within five business days.",
]


class RunnerProcess:
    def __init__(self, url: str, log_path: Path) -> None:
        self.url = url
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "LOOPWISE_API_KEY": KEY, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        command = [sys.executable, "-m", "loopwise_collector.cli", "evaluate", "--endpoint", self.url,
                   "--batch-size", "16", "--lease-seconds", "10", "--poll-seconds", "0.2"]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(command, env=env, stdout=log, stderr=log)

    def kill(self) -> None:
        processes.kill(self.proc)

    def stop(self) -> None:
        processes.terminate(self.proc, 20)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[CollectorProcess, RunnerProcess]]:
    collector = CollectorProcess(
        tmp_path / "collector", env={"LOOPWISE_INIT_PROJECTS": f"demo:{KEY}", "LOOPWISE_INGEST__MAX_DELAY_MS": "50"}
    )
    collector.start()
    runner = RunnerProcess(collector.url, tmp_path / "runner.log")
    try:
        yield collector, runner
    finally:
        runner.stop()
        collector.stop()


def post_with_retry(url: str, body: bytes, deadline_s: float = 60) -> None:
    """Deliver like an exporter would: retry while the collector is down."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            r = httpx.post(f"{url}/v1/traces", content=body, timeout=5,
                           headers={**AUTH, "Content-Type": "application/x-protobuf"})  # fmt: skip
            if r.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the collector did not come back"
        time.sleep(0.2)


def scores(url: str, name: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        r = httpx.get(f"{url}/api/v1/scores", params={"name": name, "limit": 1000, "offset": len(out)}, headers=AUTH)
        r.raise_for_status()
        page = r.json()["data"]
        out.extend(page)
        if len(page) < 1000:
            return out


def test_scores_arrive_once_per_span_across_runner_and_collector_restarts(
    stack: tuple[CollectorProcess, RunnerProcess], tmp_path: Path
) -> None:
    collector, runner = stack
    checkpoint = build_tiny_detoxify(tmp_path / "tiny-detoxify")
    for body in (
        {"evaluator": "hallucination", "filter": {"span_types": ["llm"]}},
        {"evaluator": "toxicity", "params": {"checkpoint": str(checkpoint)}, "filter": {"span_types": ["llm"]}},
    ):
        r = httpx.post(f"{collector.url}/api/v1/evaluators", json=body, headers=AUTH)
        assert r.status_code == 201, r.text
    runner.start()

    sent: dict[str, int] = {}  # LLM span id -> end time (ns)
    done = threading.Event()

    def send() -> None:
        try:
            for i in range(TRACES):
                answer = ANSWERS[i % len(ANSWERS)] + f" Ticket {i}."
                spans = llm_trace_spans(extra={sc.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": answer}]}])})  # fmt: skip
                post_with_retry(collector.url, to_protobuf(spans))
                for s in spans:
                    if s.name.startswith("chat"):
                        assert s.end_time is not None
                        sent[span_id_hex(s)] = s.end_time
                time.sleep(1 / RATE)
        finally:
            done.set()

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    time.sleep(4)
    runner.kill()  # mid-batch, leases held: they must expire and be re-claimed
    before = len(scores(collector.url, "hallucination"))
    runner.start()
    deadline = time.monotonic() + 60
    while len(scores(collector.url, "hallucination")) <= before:  # the new runner is at work
        assert time.monotonic() < deadline, "the restarted runner scored nothing"
        time.sleep(0.5)
    assert not done.is_set(), "the stream ended before the collector restart; slow RATE down"
    collector.kill()  # the runner must ride out the outage, the sender retries
    time.sleep(1)
    collector.start()
    assert done.wait(120), "sending did not finish"
    assert len(sent) == TRACES

    deadline = time.monotonic() + 120
    while True:
        got = {name: scores(collector.url, name) for name in ("hallucination", "toxicity")}
        if all(len(v) >= TRACES for v in got.values()) or time.monotonic() > deadline:
            break
        time.sleep(1)
    for name, rows in got.items():
        per_span = Counter(r["span_id"] for r in rows)
        assert set(per_span) == set(sent), f"{name}: {len(set(sent) - set(per_span))} span(s) never scored"
        assert max(per_span.values()) == 1, f"{name}: some span was scored twice"
        errors = [r for r in rows if r["label"] == "error"]
        assert not errors, f"{name}: {errors[:2]}"
        assert all(r["source"] == "evaluator" and r["evaluator_version"] for r in rows)
    hallucination = got["hallucination"]
    assert all(0.0 <= r["value"] <= 1.0 for r in hallucination)
    assert {r["label"] for r in got["toxicity"]} <= {"ok", "toxic"}
    # Ingest-to-score lag, restarts included: within the one-minute target.
    lags = sorted(datetime.fromisoformat(r["created_at"]).timestamp() - sent[r["span_id"]] / 1e9 for r in hallucination)
    assert lags[int(len(lags) * 0.95)] <= 60, f"p95 lag {lags[int(len(lags) * 0.95)]:.1f} s"
    log = (tmp_path / "runner.log").read_text()
    assert "collector unavailable" in log  # it noticed the outage and carried on
