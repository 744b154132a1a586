"""OTLP request bodies made the way real applications make them: the OpenTelemetry SDK plus the
stock OTLP encoder, so tests exercise exactly what an exporter puts on the wire.

Example:
    >>> spans = llm_trace_spans(model="gpt-4o-mini", input_tokens=10, output_tokens=2)
    >>> body = to_protobuf(spans)  # what OTLPSpanExporter POSTs to /v1/traces
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from loopwise import semconv as sc

SERVICE_NAME = "checkout-bot"
INPUT_MESSAGES = [{"role": "user", "parts": [{"type": "text", "content": "Where is my order?"}]}]
OUTPUT_MESSAGES = [
    {"role": "assistant", "parts": [{"type": "text", "content": "It ships today."}], "finish_reason": "stop"}
]
_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId"})


def trace_id_hex(span: ReadableSpan) -> str:
    """The span's trace id as the API spells it: 32 lowercase hex digits."""
    assert span.context is not None
    return format(span.context.trace_id, "032x")


def span_id_hex(span: ReadableSpan) -> str:
    """The span's id as the API spells it: 16 lowercase hex digits."""
    assert span.context is not None
    return format(span.context.span_id, "016x")


def llm_trace_spans(
    *,
    model: str = "gpt-4o-mini",
    provider: str = "openai",
    input_tokens: int | None = 1000,
    output_tokens: int | None = 200,
    cost_usd: float | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    tags: Sequence[str] | None = None,
    variant: str | None = None,
    error: bool = False,
    start_ns: int | None = None,
    root_ms: int = 120,
    llm_ms: int = 100,
    extra: Mapping[str, AttributeValue] | None = None,
) -> list[ReadableSpan]:
    """A root ``agent`` span and one GenAI ``chat`` child, finished, as the SDK hands them to exporters.

    Loopwise fields (user, session, tags, variant) go on both spans, as the SDK's context
    propagation would put them. Times are explicit so durations and windows are exact.
    """
    exporter = InMemorySpanExporter()
    provider_ = TracerProvider(resource=Resource.create({sc.SERVICE_NAME: SERVICE_NAME}))
    provider_.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider_.get_tracer("loopwise.tests", "1.0")
    start = start_ns if start_ns is not None else time.time_ns()

    common: dict[str, AttributeValue] = {}
    for key, value in (
        (sc.LOOPWISE_USER_ID, user_id),
        (sc.LOOPWISE_SESSION_ID, session_id),
        (sc.LOOPWISE_VARIANT, variant),
    ):
        if value is not None:
            common[key] = value
    if tags is not None:
        common[sc.LOOPWISE_TAGS] = list(tags)

    llm: dict[str, AttributeValue] = {
        sc.GEN_AI_OPERATION_NAME: "chat",
        sc.GEN_AI_PROVIDER_NAME: provider,
        sc.GEN_AI_REQUEST_MODEL: model,
        sc.GEN_AI_INPUT_MESSAGES: json.dumps(INPUT_MESSAGES),
        sc.GEN_AI_OUTPUT_MESSAGES: json.dumps(OUTPUT_MESSAGES),
        "app.feature": "order-status",
        **common,
    }
    if input_tokens is not None:
        llm[sc.GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
    if output_tokens is not None:
        llm[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
    if cost_usd is not None:
        llm[sc.LOOPWISE_COST_USD] = cost_usd
    llm.update(extra or {})

    root = tracer.start_span("agent", start_time=start, attributes=common)
    child = tracer.start_span(
        f"chat {model}",
        context=trace.set_span_in_context(root),
        kind=SpanKind.CLIENT,
        start_time=start + 5_000_000,
        attributes=llm,
    )
    if error:
        child.set_status(Status(StatusCode.ERROR, "rate limited"))
    else:
        child.set_status(Status(StatusCode.OK))
    child.end(end_time=start + 5_000_000 + llm_ms * 1_000_000)
    root.end(end_time=start + root_ms * 1_000_000)
    provider_.shutdown()
    return list(exporter.get_finished_spans())


def to_request(spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
    """The OTLP export request the stock encoder builds for ``spans``."""
    return encode_spans(spans)


def to_protobuf(spans: Sequence[ReadableSpan]) -> bytes:
    """An ``application/x-protobuf`` body, byte for byte what the OTLP/HTTP exporter sends."""
    return to_request(spans).SerializeToString()


def _hex_ids(node: Any) -> Any:
    # Protobuf's JSON mapping writes bytes as base64; OTLP/JSON requires hex trace and span ids.
    if isinstance(node, dict):
        return {
            k: base64.b64decode(v).hex() if k in _ID_FIELDS and isinstance(v, str) else _hex_ids(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_hex_ids(v) for v in node]
    return node


def request_to_json(request: ExportTraceServiceRequest) -> bytes:
    """An ``application/json`` body per the OTLP/JSON encoding (camelCase, hex ids, enum numbers)."""
    doc = MessageToDict(request, use_integers_for_enums=True)
    return json.dumps(_hex_ids(doc)).encode()


def to_json(spans: Sequence[ReadableSpan]) -> bytes:
    """An OTLP/JSON body for ``spans``."""
    return request_to_json(to_request(spans))
