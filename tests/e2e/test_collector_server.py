"""End to end: the real collector under uvicorn, fed by the stock OpenTelemetry SDK and exporter."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from loopwise import semconv
from tests.conftest import http_dsn
from tests.support.clickhouse_http import ClickHouseHTTPServer
from tests.support.collector_process import CollectorProcess

pytestmark = pytest.mark.e2e
KEY = "e2e-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def make_app_spans(tracer_provider: TracerProvider, n_traces: int = 1) -> None:
    """What an instrumented app does: a root span and a GenAI chat span, stock SDK only."""
    tracer = tracer_provider.get_tracer("shop-assistant")
    for i in range(n_traces):
        with tracer.start_as_current_span("answer-question") as root:
            root.set_attribute(semconv.LOOPWISE_USER_ID, f"user-{i % 3}")
            with tracer.start_as_current_span("chat gpt-4o-mini") as llm:
                llm.set_attribute(semconv.GEN_AI_OPERATION_NAME, "chat")
                llm.set_attribute(semconv.GEN_AI_PROVIDER_NAME, "openai")
                llm.set_attribute(semconv.GEN_AI_REQUEST_MODEL, "gpt-4o-mini")
                llm.set_attribute(semconv.GEN_AI_USAGE_INPUT_TOKENS, 1200)
                llm.set_attribute(semconv.GEN_AI_USAGE_OUTPUT_TOKENS, 300)
                llm.set_attribute(
                    semconv.GEN_AI_INPUT_MESSAGES,
                    json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Where is my order?"}]}]),
                )
                llm.set_attribute(semconv.GEN_AI_OUTPUT_MESSAGES, json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": "It ships today."}]}]))  # fmt: skip


@pytest.fixture
def collector(tmp_path: Path):
    proc = CollectorProcess(tmp_path / "lw", env={"LOOPWISE_INIT_PROJECTS": f"shop:{KEY}",
                                                   "LOOPWISE_INGEST__MAX_DELAY_MS": "50"})  # fmt: skip
    proc.start()
    yield proc
    proc.stop()


def exporter_for(url: str) -> OTLPSpanExporter:
    return OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers=AUTH, timeout=30)


def test_stock_otel_exporter_round_trip_and_restart(collector: CollectorProcess) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(BatchSpanProcessor(exporter_for(collector.url)))
    make_app_spans(provider, n_traces=5)
    assert provider.force_flush(30_000)
    provider.shutdown()

    traces = httpx.get(f"{collector.url}/api/v1/traces", headers=AUTH).json()["data"]
    assert len(traces) == 5
    detail = httpx.get(f"{collector.url}/api/v1/traces/{traces[0]['trace_id']}", headers=AUTH).json()
    llm = next(s for s in detail["spans"] if s["parent_span_id"])
    assert (llm["model"], llm["provider"], llm["input_tokens"], llm["output_tokens"]) == (
        "gpt-4o-mini", "openai", 1200, 300)  # fmt: skip
    assert "Where is my order?" in llm["input"] and "It ships today." in llm["output"]
    # gpt-4o-mini: $0.15 in, $0.60 out per 1M tokens, priced on the server.
    assert llm["cost_usd"] == pytest.approx((1200 * 0.15 + 300 * 0.60) / 1e6)
    assert llm["cost_source"].startswith("table:")
    assert detail["spans"][0]["name"] == "answer-question" and detail["spans"][0]["service_name"] == "shop"

    collector.stop()  # graceful restart
    collector.start()
    assert len(httpx.get(f"{collector.url}/api/v1/traces", headers=AUTH).json()["data"]) == 5
    collector.kill()  # crash: chDB's lock is released and the data is intact
    collector.start()
    assert len(httpx.get(f"{collector.url}/api/v1/traces", headers=AUTH).json()["data"]) == 5


def build_batches(n_batches: int, per_batch: int) -> list[list[ReadableSpan]]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    make_app_spans(provider, n_traces=n_batches * per_batch // 2)
    spans = list(memory.get_finished_spans())
    return [spans[i : i + per_batch] for i in range(0, len(spans), per_batch)]


def test_clickhouse_outage_loses_no_acknowledged_span(tmp_path: Path) -> None:
    clickhouse = ClickHouseHTTPServer(tmp_path / "ch", log_path=tmp_path / "ch.log")
    clickhouse.start()
    dsn = http_dsn(clickhouse, "outage")
    env = {"LOOPWISE_INIT_PROJECTS": f"shop:{KEY}", "LOOPWISE_STORE": dsn, "LOOPWISE_INGEST__MAX_DELAY_MS": "50"}
    collector = CollectorProcess(tmp_path / "lw", env=env)
    collector.start()
    batches = build_batches(n_batches=60, per_batch=100)
    acked: list[ReadableSpan] = []
    failed = 0
    stop = threading.Event()

    def send() -> None:
        nonlocal failed
        exporter = exporter_for(collector.url)
        for batch in batches:
            if exporter.export(batch) is SpanExportResult.SUCCESS:
                acked.extend(batch)
            else:
                failed += 1
            time.sleep(0.05)
            if stop.is_set():
                return

    sender = threading.Thread(target=send)
    try:
        sender.start()
        time.sleep(0.8)
        clickhouse.kill()  # spans keep arriving while ClickHouse is down
        time.sleep(1.5)
        ready = httpx.get(f"{collector.url}/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "degraded"
        assert ready.json()["spool"]["batches"] >= 1
        clickhouse.restart()
        sender.join(120)
        deadline = time.monotonic() + 60
        while httpx.get(f"{collector.url}/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert httpx.get(f"{collector.url}/readyz").json()["status"] == "ready"
    finally:
        stop.set()
        sender.join(30)
        collector.stop()
    client = clickhouse.client()
    assert failed == 0 and len(acked) == 6000
    total = client.query("SELECT count() FROM outage.spans FINAL").result_rows[0][0]
    ids = {r[0] for r in client.query("SELECT DISTINCT span_id FROM outage.spans").result_rows}
    assert total == len(acked)
    assert ids == {format(s.context.span_id, "016x") for s in acked}
    clickhouse.stop()
