"""OTLP decoding: requests built by the real OpenTelemetry SDK and the stock OTLP encoder.

Spans are recorded with ``TracerProvider`` into an in-memory exporter and encoded with the same
``encode_spans`` the stock OTLP/HTTP exporter uses, so the bytes are what a real application
sends. The JSON bodies are that request through ``MessageToDict``, with ids turned into hex as the
OTLP/JSON encoding requires.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from loopwise import semconv as sc
from loopwise_collector.errors import InvalidPayloadError
from loopwise_collector.ingest.otlp import decode_json, decode_protobuf
from loopwise_collector.store.records import SpanRecord

pytestmark = pytest.mark.unit

PROJECT = "proj-1"
PROMPT = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "What is OTLP?"}]}])
COMPLETION = json.dumps(
    [{"role": "assistant", "parts": [{"type": "text", "content": "A protocol."}], "finish_reason": "stop"}]
)


# --- helpers -----------------------------------------------------------------------------------


def record_spans(build: Callable[[Tracer], None], *, service: str = "svc-a") -> Sequence[ReadableSpan]:
    """Run ``build`` against a real SDK tracer and return the finished spans."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({sc.SERVICE_NAME: service, "deployment.env": "test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    build(provider.get_tracer("test.scope", "1.2.3"))
    provider.shutdown()
    return exporter.get_finished_spans()


def pb_body(spans: Sequence[ReadableSpan]) -> bytes:
    body: bytes = encode_spans(spans).SerializeToString()
    return body


def _b64_to_hex(d: dict[str, Any], *keys: str) -> None:
    for key in keys:
        if key in d:
            d[key] = base64.b64decode(d[key]).hex()


def to_otlp_json(request: ExportTraceServiceRequest, **options: Any) -> dict[str, Any]:
    """The OTLP/JSON form: protobuf's JSON mapping, but with hex ids."""
    doc: dict[str, Any] = MessageToDict(request, **options)
    for rs in doc.get("resourceSpans", doc.get("resource_spans", [])):
        for ss in rs.get("scopeSpans", rs.get("scope_spans", [])):
            for span in ss.get("spans", []):
                _b64_to_hex(span, "traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")
                for link in span.get("links", []):
                    _b64_to_hex(link, "traceId", "spanId", "trace_id", "span_id")
    return doc


def json_body(spans: Sequence[ReadableSpan], **options: Any) -> bytes:
    options.setdefault("use_integers_for_enums", True)
    return json.dumps(to_otlp_json(encode_spans(spans), **options)).encode()


def decode(body: bytes) -> list[SpanRecord]:
    return decode_protobuf(body, project_id=PROJECT, retention_days=7, version=42)


def decode_one(build: Callable[[Tracer], None]) -> SpanRecord:
    [record] = decode(pb_body(record_spans(build)))
    return record


def by_name(records: list[SpanRecord]) -> dict[str, SpanRecord]:
    return {r.name: r for r in records}


def raw_request(attributes: list[KeyValue], **span_fields: Any) -> bytes:
    """A hand-built request, for value types the SDK cannot produce (bytes, kvlists)."""
    req = ExportTraceServiceRequest()
    span_fields.setdefault("start_time_unix_nano", 1_700_000_000_000_000_000)
    span_fields.setdefault("end_time_unix_nano", 1_700_000_000_100_000_000)
    span = (
        req.resource_spans.add()
        .scope_spans.add()
        .spans.add(trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9)), name="raw", **span_fields)
    )
    span.attributes.extend(attributes)
    body: bytes = req.SerializeToString()
    return body


def kv(key: str, **value: Any) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(**value))


# --- span builders -----------------------------------------------------------------------------


def genai_chat(tracer: Tracer) -> None:
    with tracer.start_as_current_span("invoke_agent", kind=SpanKind.INTERNAL) as agent:
        agent.set_attribute(sc.GEN_AI_OPERATION_NAME, "invoke_agent")
        with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as span:
            span.set_attributes(
                {
                    sc.GEN_AI_OPERATION_NAME: "chat",
                    sc.GEN_AI_PROVIDER_NAME: "openai",
                    sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
                    sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06",
                    sc.GEN_AI_USAGE_INPUT_TOKENS: 120,
                    sc.GEN_AI_USAGE_OUTPUT_TOKENS: 30,
                    sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 100,
                    sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 12,
                    sc.GEN_AI_INPUT_MESSAGES: PROMPT,
                    sc.GEN_AI_OUTPUT_MESSAGES: COMPLETION,
                    sc.GEN_AI_SYSTEM_INSTRUCTIONS: "Be brief.",
                    "gen_ai.request.temperature": 0.2,
                    "gen_ai.response.finish_reasons": ["stop"],
                    "app.custom": "kept",
                }
            )


def openllmetry_chat(tracer: Tracer) -> None:
    p, c = sc.LEGACY_GEN_AI_PROMPT_PREFIX, sc.LEGACY_GEN_AI_COMPLETION_PREFIX
    with tracer.start_as_current_span("openai.chat", kind=SpanKind.CLIENT) as span:
        span.set_attributes(
            {
                sc.GEN_AI_SYSTEM: "OpenAI",
                sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
                sc.LEGACY_GEN_AI_USAGE_PROMPT_TOKENS: 55,
                sc.LEGACY_GEN_AI_USAGE_COMPLETION_TOKENS: 7,
                sc.LEGACY_GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 40,
                # Out of order, with a two-digit index, to check numeric ordering.
                f"{p}10.role": "user",
                f"{p}10.content": "third",
                f"{p}0.role": "system",
                f"{p}0.content": "first",
                f"{p}2.role": "user",
                f"{p}2.content": "second",
                f"{c}0.role": "assistant",
                f"{c}0.content": "",
                f"{c}0.finish_reason": "tool_calls",
                f"{c}0.tool_calls.0.name": "get_weather",
                f"{c}0.tool_calls.0.arguments": '{"city": "Oslo"}',
                f"{c}0.tool_calls.1.name": "get_time",
                "llm.request.type": "chat",
            }
        )


def openinference_chat(tracer: Tracer) -> None:
    i, o = sc.LLM_INPUT_MESSAGES_PREFIX, sc.LLM_OUTPUT_MESSAGES_PREFIX
    with tracer.start_as_current_span("ChatCompletion") as span:
        span.set_attributes(
            {
                sc.OPENINFERENCE_SPAN_KIND: "LLM",
                sc.LLM_MODEL_NAME: "claude-sonnet-4",
                sc.LLM_PROVIDER: "anthropic",
                sc.LLM_SYSTEM: "anthropic",
                sc.LLM_TOKEN_COUNT_PROMPT: 200,
                sc.LLM_TOKEN_COUNT_COMPLETION: 50,
                sc.LLM_TOKEN_COUNT_CACHE_READ: 150,
                sc.LLM_TOKEN_COUNT_REASONING: 20,
                f"{i}0.message.role": "user",
                f"{i}0.message.content": "hi",
                f"{o}0.message.role": "assistant",
                f"{o}0.message.content": "hello",
                sc.INPUT_VALUE: '{"messages": [{"role": "user", "content": "hi"}]}',
                sc.OUTPUT_VALUE: '{"content": "hello"}',
                sc.OPENINFERENCE_USER_ID: "user-9",
                sc.OPENINFERENCE_SESSION_ID: "sess-9",
                sc.OPENINFERENCE_TAGS: ["prod", "beta"],
            }
        )


def openinference_chain(tracer: Tracer) -> None:
    with tracer.start_as_current_span("RetrievalQA") as span:
        span.set_attributes(
            {sc.OPENINFERENCE_SPAN_KIND: "CHAIN", sc.INPUT_VALUE: "question?", sc.OUTPUT_VALUE: "answer."}
        )


def loopwise_function(tracer: Tracer) -> None:
    with tracer.start_as_current_span("lookup_user") as span:
        span.set_attributes(
            {
                sc.LOOPWISE_SPAN_TYPE: "tool",
                sc.LOOPWISE_INPUT: '{"id": 7}',
                sc.LOOPWISE_OUTPUT: '{"name": "Ada"}',
                sc.LOOPWISE_COST_USD: 0.0125,
                sc.LOOPWISE_USER_ID: "u-1",
                sc.LOOPWISE_SESSION_ID: "s-1",
                sc.LOOPWISE_TAGS: ["beta", "eu", "beta"],
                sc.LOOPWISE_VARIANT: "B",
                sc.LOOPWISE_PROMPT_NAME: "support-reply",
                sc.LOOPWISE_PROMPT_VERSION: 3,
            }
        )


def failing_span(tracer: Tracer) -> None:
    with tracer.start_as_current_span("flaky", record_exception=False, set_status_on_exception=False) as span:
        span.record_exception(ValueError("upstream timed out"))
        span.set_status(Status(StatusCode.ERROR))


def linked_span(tracer: Tracer) -> None:
    with tracer.start_as_current_span("producer") as producer:
        ctx = producer.get_span_context()
    with tracer.start_as_current_span("consumer", kind=SpanKind.CONSUMER, links=[Link(ctx, {"why": "batch"})]):
        pass


ALL_STYLES = (
    genai_chat,
    openllmetry_chat,
    openinference_chat,
    openinference_chain,
    loopwise_function,
    failing_span,
    linked_span,
)


def every_style(tracer: Tracer) -> None:
    for build in ALL_STYLES:
        build(tracer)


# --- current GenAI conventions -----------------------------------------------------------------


def test_current_genai_conventions_fill_the_columns() -> None:
    spans = record_spans(genai_chat)
    records = by_name(decode(pb_body(spans)))
    chat, agent = records["chat gpt-4o"], records["invoke_agent"]
    sdk_chat = next(s for s in spans if s.name == "chat gpt-4o")

    assert chat.project_id == PROJECT
    assert (chat.retention_days, chat.version) == (7, 42)
    assert chat.trace_id == f"{sdk_chat.context.trace_id:032x}"
    assert chat.span_id == f"{sdk_chat.context.span_id:016x}"
    assert chat.parent_span_id == agent.span_id
    assert agent.parent_span_id == ""
    assert chat.start_time_ns == sdk_chat.start_time
    assert chat.end_time_ns == sdk_chat.end_time
    assert (chat.kind, agent.kind) == ("client", "internal")
    assert chat.status_code == "unset"
    assert chat.service_name == "svc-a"
    assert chat.scope_name == "test.scope"
    assert chat.resource_attributes[sc.SERVICE_NAME] == "svc-a"
    assert chat.resource_attributes["deployment.env"] == "test"
    assert chat.resource_attributes["telemetry.sdk.language"] == "python"

    assert chat.operation == "chat"
    assert chat.span_type == "llm"
    assert chat.provider == "openai"
    assert chat.request_model == "gpt-4o"
    assert chat.response_model == "gpt-4o-2024-08-06"
    assert (chat.input_tokens, chat.output_tokens) == (120, 30)
    assert (chat.cache_read_input_tokens, chat.reasoning_output_tokens) == (100, 12)
    assert chat.input == PROMPT
    assert chat.output == COMPLETION
    assert chat.system_instructions == "Be brief."
    assert chat.cost_usd is None
    assert chat.cost_source == ""
    assert (chat.events, chat.links) == ("", "")
    # Consumed attributes are not duplicated; the rest are kept as strings.
    assert chat.attributes == {
        "gen_ai.request.temperature": "0.2",
        "gen_ai.response.finish_reasons": '["stop"]',
        "app.custom": "kept",
    }
    assert agent.operation == "invoke_agent"
    assert agent.span_type == "agent"


def test_better_spelling_wins_whatever_the_order_and_the_loser_is_kept() -> None:
    def build(tracer: Tracer) -> None:
        with tracer.start_as_current_span("a") as span:
            span.set_attribute(sc.GEN_AI_SYSTEM, "openai")
            span.set_attribute(sc.GEN_AI_PROVIDER_NAME, "azure.ai.openai")
        with tracer.start_as_current_span("b") as span:
            span.set_attribute(sc.GEN_AI_PROVIDER_NAME, "azure.ai.openai")
            span.set_attribute(sc.GEN_AI_SYSTEM, "openai")

    for record in decode(pb_body(record_spans(build))):
        assert record.provider == "azure.ai.openai"
        assert record.attributes == {sc.GEN_AI_SYSTEM: "openai"}


@pytest.mark.parametrize(
    ("operation", "span_type"),
    [("chat", "llm"), ("text_completion", "llm"), ("embeddings", "embedding"), ("execute_tool", "tool")],
)
def test_span_type_from_operation(operation: str, span_type: str) -> None:
    record = decode_one(lambda t: t.start_span("s", attributes={sc.GEN_AI_OPERATION_NAME: operation}).end())
    assert record.span_type == span_type


def test_plain_span_has_no_span_type_and_empty_fields() -> None:
    record = decode_one(lambda t: t.start_span("plain").end())
    assert (record.span_type, record.operation, record.input, record.output) == ("", "", "", "")
    assert record.input_tokens is None
    assert record.tags == ()
    assert record.attributes == {}


# --- legacy and vendor spellings ---------------------------------------------------------------


def test_openllmetry_indexed_messages_and_legacy_usage() -> None:
    record = decode_one(openllmetry_chat)
    assert record.provider == "OpenAI"
    assert record.request_model == "gpt-4o-mini"
    assert (record.input_tokens, record.output_tokens, record.cache_read_input_tokens) == (55, 7, 40)
    assert json.loads(record.input) == [
        {"role": "system", "content": "first"},
        {"role": "user", "content": "second"},
        {"role": "user", "content": "third"},
    ]
    assert json.loads(record.output) == [
        {
            "role": "assistant",
            "content": "",
            "finish_reason": "tool_calls",
            "tool_calls": [{"name": "get_weather", "arguments": '{"city": "Oslo"}'}, {"name": "get_time"}],
        }
    ]
    assert record.attributes == {"llm.request.type": "chat"}
    assert record.span_type == ""


def test_openinference_llm_span() -> None:
    record = decode_one(openinference_chat)
    assert record.span_type == "llm"
    assert record.request_model == "claude-sonnet-4"
    assert record.provider == "anthropic"
    assert (record.input_tokens, record.output_tokens) == (200, 50)
    assert (record.cache_read_input_tokens, record.reasoning_output_tokens) == (150, 20)
    assert json.loads(record.input) == [{"role": "user", "content": "hi"}]
    assert json.loads(record.output) == [{"role": "assistant", "content": "hello"}]
    assert (record.user_id, record.session_id, record.tags) == ("user-9", "sess-9", ("prod", "beta"))
    # input.value/output.value lost to the structured messages, so they stay as attributes;
    # the span kind is kept because its mapping onto span_type is lossy.
    assert record.attributes == {
        sc.INPUT_VALUE: '{"messages": [{"role": "user", "content": "hi"}]}',
        sc.OUTPUT_VALUE: '{"content": "hello"}',
        sc.LLM_SYSTEM: "anthropic",
        sc.OPENINFERENCE_SPAN_KIND: "LLM",
    }


def test_openinference_chain_uses_input_value() -> None:
    record = decode_one(openinference_chain)
    assert (record.input, record.output, record.span_type) == ("question?", "answer.", "span")


@pytest.mark.parametrize(
    ("kind", "span_type"),
    [("TOOL", "tool"), ("RETRIEVER", "retrieval"), ("EMBEDDING", "embedding"), ("AGENT", "agent")],
)
def test_openinference_span_kinds(kind: str, span_type: str) -> None:
    record = decode_one(lambda t: t.start_span("s", attributes={sc.OPENINFERENCE_SPAN_KIND: kind}).end())
    assert record.span_type == span_type


def test_current_messages_win_over_legacy_ones() -> None:
    def build(tracer: Tracer) -> None:
        tracer.start_span(
            "s",
            attributes={
                f"{sc.LEGACY_GEN_AI_PROMPT_PREFIX}0.content": "old",
                sc.GEN_AI_INPUT_MESSAGES: PROMPT,
                sc.INPUT_VALUE: "raw",
            },
        ).end()

    record = decode_one(build)
    assert record.input == PROMPT
    assert record.attributes == {f"{sc.LEGACY_GEN_AI_PROMPT_PREFIX}0.content": "old", sc.INPUT_VALUE: "raw"}


def test_legacy_messages_displace_a_plain_input_value() -> None:
    def build(tracer: Tracer) -> None:
        tracer.start_span(
            "s",
            attributes={sc.INPUT_VALUE: "raw", f"{sc.LEGACY_GEN_AI_PROMPT_PREFIX}0.content": "structured"},
        ).end()

    record = decode_one(build)
    assert json.loads(record.input) == [{"content": "structured"}]
    assert record.attributes == {sc.INPUT_VALUE: "raw"}


# --- loopwise.* fields -------------------------------------------------------------------------


def test_loopwise_fields() -> None:
    record = decode_one(loopwise_function)
    assert record.span_type == "tool"
    assert (record.input, record.output) == ('{"id": 7}', '{"name": "Ada"}')
    assert record.cost_usd == pytest.approx(0.0125)
    assert record.cost_source == "client"
    assert (record.user_id, record.session_id, record.variant) == ("u-1", "s-1", "B")
    assert record.tags == ("beta", "eu")
    assert (record.prompt_name, record.prompt_version) == ("support-reply", "3")
    assert record.attributes == {}


@pytest.mark.parametrize(
    ("value", "expected"),
    [(["a", "b"], ("a", "b")), ('["a", "b"]', ("a", "b")), ("a, b,,", ("a", "b")), ("solo", ("solo",))],
)
def test_tags_spellings(value: Any, expected: tuple[str, ...]) -> None:
    record = decode_one(lambda t: t.start_span("s", attributes={sc.LOOPWISE_TAGS: value}).end())
    assert record.tags == expected


@pytest.mark.parametrize(("value", "expected"), [(12, 12), ("34", 34), (5.0, 5), (" 8 ", 8)])
def test_token_counts_accept_numbers_and_numeric_strings(value: Any, expected: int) -> None:
    record = decode_one(lambda t: t.start_span("s", attributes={sc.GEN_AI_USAGE_INPUT_TOKENS: value}).end())
    assert record.input_tokens == expected
    assert record.attributes == {}


@pytest.mark.parametrize(
    ("value", "raw"), [(-3, "-3"), ("lots", "lots"), (2.5, "2.5"), (True, "true"), ("1e30", "1e30")]
)
def test_unusable_token_counts_stay_raw(value: Any, raw: str) -> None:
    record = decode_one(lambda t: t.start_span("s", attributes={sc.GEN_AI_USAGE_OUTPUT_TOKENS: value}).end())
    assert record.output_tokens is None
    assert record.attributes == {sc.GEN_AI_USAGE_OUTPUT_TOKENS: raw}


def test_unusable_token_count_falls_back_to_legacy_spelling() -> None:
    attrs: dict[str, AttributeValue] = {
        sc.GEN_AI_USAGE_INPUT_TOKENS: "n/a",
        sc.LEGACY_GEN_AI_USAGE_PROMPT_TOKENS: 9,
    }
    record = decode_one(lambda t: t.start_span("s", attributes=attrs).end())
    assert record.input_tokens == 9
    assert record.attributes == {sc.GEN_AI_USAGE_INPUT_TOKENS: "n/a"}


@pytest.mark.parametrize(("value", "cost"), [(0.5, 0.5), (2, 2.0), ("0.25", 0.25)])
def test_client_cost(value: Any, cost: float) -> None:
    record = decode_one(lambda t: t.start_span("s", attributes={sc.LOOPWISE_COST_USD: value}).end())
    assert (record.cost_usd, record.cost_source) == (cost, "client")


def test_unusable_cost_is_kept_raw_and_unpriced() -> None:
    record = decode_one(lambda t: t.start_span("s", attributes={sc.LOOPWISE_COST_USD: -1.0}).end())
    assert (record.cost_usd, record.cost_source) == (None, "")
    assert record.attributes == {sc.LOOPWISE_COST_USD: "-1.0"}


# --- attribute value types ---------------------------------------------------------------------


def test_non_string_attributes_are_kept_as_json() -> None:
    attrs: dict[str, AttributeValue] = {
        "flag": True,
        "off": False,
        "count": 3,
        "ratio": 0.5,
        "ints": [1, 2, 3],
        "names": ["a", "é"],
        "bools": [True, False],
        "empty": "",
    }
    record = decode_one(lambda t: t.start_span("s", attributes=attrs).end())
    assert record.attributes == {
        "flag": "true",
        "off": "false",
        "count": "3",
        "ratio": "0.5",
        "ints": "[1,2,3]",
        "names": '["a","é"]',
        "bools": "[true,false]",
        "empty": "",
    }


def test_bytes_kvlists_and_empty_values() -> None:
    nested = KeyValueList(values=[kv("k", int_value=1), kv("b", bytes_value=b"\x00\x01")])
    body = raw_request(
        [
            kv("blob", bytes_value=b"hello"),
            kv("map", kvlist_value=nested),
            kv(
                "mixed",
                array_value=ArrayValue(values=[AnyValue(string_value="x"), AnyValue(double_value=1.5)]),
            ),
            KeyValue(key="nothing"),
            kv(sc.GEN_AI_INPUT_MESSAGES, array_value=ArrayValue(values=[AnyValue(kvlist_value=nested)])),
        ]
    )
    [record] = decode(body)
    assert record.attributes == {
        "blob": "aGVsbG8=",
        "map": '{"k":1,"b":"AAE="}',
        "mixed": '["x",1.5]',
        "nothing": "",
    }
    assert json.loads(record.input) == [{"k": 1, "b": "AAE="}]


def test_non_string_values_for_text_columns_are_rendered() -> None:
    body = raw_request([kv(sc.LOOPWISE_USER_ID, int_value=1234), kv(sc.GEN_AI_REQUEST_MODEL, string_value="")])
    [record] = decode(body)
    assert record.user_id == "1234"
    assert record.request_model == ""
    assert record.attributes == {sc.GEN_AI_REQUEST_MODEL: ""}


# --- status, kind, events, links ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (SpanKind.INTERNAL, "internal"),
        (SpanKind.SERVER, "server"),
        (SpanKind.CLIENT, "client"),
        (SpanKind.PRODUCER, "producer"),
        (SpanKind.CONSUMER, "consumer"),
    ],
)
def test_kind_mapping(kind: SpanKind, expected: str) -> None:
    assert decode_one(lambda t: t.start_span("s", kind=kind).end()).kind == expected


def test_unspecified_and_unknown_kind_read_as_internal() -> None:
    assert decode(raw_request([], kind=0))[0].kind == "internal"
    assert decode(raw_request([], kind=17))[0].kind == "internal"


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (Status(StatusCode.UNSET), "unset", ""),
        (Status(StatusCode.OK), "ok", ""),
        (Status(StatusCode.ERROR, "rate limited"), "error", "rate limited"),
    ],
)
def test_status_mapping(status: Status, code: str, message: str) -> None:
    def build(tracer: Tracer) -> None:
        span = tracer.start_span("s")
        span.set_status(status)
        span.end()

    record = decode_one(build)
    assert (record.status_code, record.status_message, record.has_error) == (code, message, code == "error")


def test_exception_event_supplies_the_missing_status_message() -> None:
    record = decode_one(failing_span)
    assert record.status_code == "error"
    assert record.status_message == "upstream timed out"
    [event] = json.loads(record.events)
    assert event["name"] == "exception"
    assert isinstance(event["time_unix_nano"], int)
    assert event["attributes"][sc.EXCEPTION_TYPE] == "ValueError"
    assert event["attributes"][sc.EXCEPTION_MESSAGE] == "upstream timed out"


def test_sdk_exception_status_message_is_kept() -> None:
    def build(tracer: Tracer) -> None:
        with tracer.start_as_current_span("boom"):
            raise RuntimeError("kaput")

    def swallowed(tracer: Tracer) -> None:
        with contextlib.suppress(RuntimeError):
            build(tracer)

    record = decode_one(swallowed)
    assert record.status_code == "error"
    assert record.status_message == "RuntimeError: kaput"
    assert json.loads(record.events)[0]["attributes"][sc.EXCEPTION_MESSAGE] == "kaput"


def test_exception_message_not_used_without_error_status() -> None:
    def build(tracer: Tracer) -> None:
        span = tracer.start_span("s")
        span.record_exception(ValueError("handled"))
        span.end()

    record = decode_one(build)
    assert (record.status_code, record.status_message) == ("unset", "")


def test_plain_events_and_links() -> None:
    spans = record_spans(linked_span)
    records = by_name(decode(pb_body(spans)))
    producer, consumer = records["producer"], records["consumer"]
    assert json.loads(consumer.links) == [
        {"trace_id": producer.trace_id, "span_id": producer.span_id, "attributes": {"why": "batch"}}
    ]
    assert producer.links == ""

    def build(tracer: Tracer) -> None:
        span = tracer.start_span("s")
        span.add_event("retry", {"attempt": 2, "ok": False})
        span.end()

    [event] = json.loads(decode_one(build).events)
    assert event["name"] == "retry"
    assert event["attributes"] == {"attempt": 2, "ok": False}


# --- OTLP/JSON -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({}, id="spec: camelCase, enum numbers"),
        pytest.param({"use_integers_for_enums": False}, id="enum names"),
        pytest.param({"preserving_proto_field_name": True}, id="snake_case"),
    ],
)
def test_json_matches_protobuf(options: dict[str, Any]) -> None:
    spans = record_spans(every_style)
    from_pb = decode(pb_body(spans))
    from_json = decode_json(json_body(spans, **options), project_id=PROJECT, retention_days=7, version=42)
    assert len(from_pb) == 9
    assert from_json == from_pb


def test_json_accepts_int64_as_numbers() -> None:
    spans = record_spans(genai_chat)
    doc = to_otlp_json(encode_spans(spans), use_integers_for_enums=True)
    for span in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        span["startTimeUnixNano"] = int(span["startTimeUnixNano"])
        for attr in span["attributes"]:
            if "intValue" in attr["value"]:
                attr["value"]["intValue"] = int(attr["value"]["intValue"])
    records = decode_json(json.dumps(doc).encode(), project_id=PROJECT, retention_days=7, version=42)
    assert records == decode(pb_body(spans))


def test_json_uppercase_hex_ids_are_lowercased() -> None:
    body = json.dumps(
        {
            "resourceSpans": [
                {
                    "scopeSpans": [
                        {"spans": [{"traceId": "AB" * 16, "spanId": "CD" * 8, "name": "x", "startTimeUnixNano": 1}]}
                    ]
                }
            ]
        }
    ).encode()
    [record] = decode_json(body, project_id=PROJECT, retention_days=7, version=1)
    assert (record.trace_id, record.span_id) == ("ab" * 16, "cd" * 8)


def test_a_span_without_start_time_is_refused() -> None:
    with pytest.raises(InvalidPayloadError, match="start_time_unix_nano is required"):
        decode(raw_request([], start_time_unix_nano=0))
    with pytest.raises(InvalidPayloadError, match="start_time_unix_nano is required"):
        decode_json(_span_json(startTimeUnixNano="0"), project_id=PROJECT, retention_days=7, version=1)


def test_empty_requests() -> None:
    assert decode(b"") == []
    assert decode_json(b"{}", project_id=PROJECT, retention_days=7, version=1) == []
    assert decode_json(b'{"resourceSpans": []}', project_id=PROJECT, retention_days=7, version=1) == []


# --- invalid payloads ----------------------------------------------------------------------------


def _span_json(**fields: Any) -> bytes:
    span = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "x", "startTimeUnixNano": "1700000000000000000", **fields}
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()


@pytest.mark.parametrize("body", [b"\xff\xff\xff", b"\x0a\x05\x01", b"not protobuf at all"])
def test_malformed_protobuf(body: bytes) -> None:
    with pytest.raises(InvalidPayloadError, match="malformed OTLP protobuf"):
        decode(body)


def test_protobuf_with_invalid_utf8_is_malformed() -> None:
    body = raw_request([kv("k", string_value="ZZZZ")]).replace(b"ZZZZ", b"\xff\xfe\xfd\xfc")
    with pytest.raises(InvalidPayloadError, match="bad UTF-8"):
        decode(body)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"trace_id": bytes(8)}, "trace_id must be 16 bytes, got 8"),
        ({"trace_id": b""}, "trace_id must be 16 bytes, got 0"),
        ({"trace_id": bytes(16)}, "trace_id is all zeros"),
        ({"span_id": bytes(range(1, 5))}, "span_id must be 8 bytes, got 4"),
        ({"span_id": bytes(8)}, "span_id is all zeros"),
        ({"parent_span_id": b"\x01\x02"}, "parent_span_id must be 8 bytes or empty, got 2"),
    ],
)
def test_bad_ids_in_protobuf(fields: dict[str, bytes], problem: str) -> None:
    req = ExportTraceServiceRequest()
    scope = req.resource_spans.add().scope_spans.add()
    start = {"start_time_unix_nano": 1_700_000_000_000_000_000}
    scope.spans.add(trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9)), name="fine", **start)
    span_fields = {"trace_id": bytes(range(1, 17)), "span_id": bytes(range(1, 9)), "name": "bad", **start, **fields}
    scope.spans.add(**span_fields)
    with pytest.raises(InvalidPayloadError) as info:
        decode(req.SerializeToString())
    assert problem in info.value.message
    assert "resource_spans[0].scope_spans[0].spans[1]" in info.value.message
    assert info.value.status_code == 400


def test_timestamps_past_int64_are_rejected() -> None:
    with pytest.raises(InvalidPayloadError, match="below 2"):
        decode(raw_request([], end_time_unix_nano=1 << 63))
    with pytest.raises(InvalidPayloadError, match="below 2"):
        decode_json(_span_json(startTimeUnixNano="-5"), project_id=PROJECT, retention_days=7, version=1)


def test_all_zero_parent_reads_as_root() -> None:
    [record] = decode(raw_request([], parent_span_id=bytes(8)))
    assert record.parent_span_id == ""


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{not json", "malformed OTLP JSON"),
        (b"\xff\xfe\x00", "malformed OTLP JSON"),
        (b"[]", "the body must be an object"),
        (b'{"resourceSpans": {}}', "resourceSpans must be a list"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": ["x"]}]}]}', "spans[0]"),
        (b'{"resourceSpans": [{"resource": {"attributes": [{"value": {}}]}}]}', "missing field 'key'"),
        (_span_json(traceId="zz" * 16), "traceId is not valid hex"),
        (_span_json(traceId="ab" * 8), "trace_id must be 16 bytes, got 8"),
        (_span_json(traceId="00" * 16), "trace_id is all zeros"),
        (_span_json(spanId="cd" * 4), "span_id must be 8 bytes, got 4"),
        (_span_json(traceId=base64.b64encode(bytes(range(1, 17))).decode()), "traceId is not valid hex"),
        (_span_json(parentSpanId="abc"), "parentSpanId is not valid hex"),
        (_span_json(startTimeUnixNano="soon"), "invalid literal"),
        (_span_json(kind="SPAN_KIND_SIDEWAYS"), "kind has an unknown value"),
        (_span_json(attributes=[{"key": "n", "value": {"intValue": "x1"}}]), "invalid literal"),
        (_span_json(attributes={"key": "n"}), "attributes must be a list"),
    ],
)
def test_bad_json(body: bytes, problem: str) -> None:
    with pytest.raises(InvalidPayloadError) as info:
        decode_json(body, project_id=PROJECT, retention_days=7, version=1)
    assert problem in info.value.message


@pytest.mark.parametrize("depth", [50, 100_000])
def test_deeply_nested_json_values(depth: int) -> None:
    value = '{"stringValue": "leaf"}'
    text = '{"arrayValue": {"values": [' * depth + value + "]}}" * depth
    body = _span_json().replace(
        b'"name": "x"', b'"name": "x", "attributes": [{"key": "deep", "value": ' + text.encode() + b"}]"
    )
    if depth < 100:
        [record] = decode_json(body, project_id=PROJECT, retention_days=7, version=1)
        assert record.attributes["deep"] == "[" * depth + '"leaf"' + "]" * depth
    else:
        with pytest.raises(InvalidPayloadError, match="malformed OTLP JSON"):
            decode_json(body, project_id=PROJECT, retention_days=7, version=1)


# --- speed -------------------------------------------------------------------------------------


def _typical_llm_spans(count: int) -> Sequence[ReadableSpan]:
    """LLM spans as a GenAI instrumentation writes them: ~15 attributes, 2 KB prompt and answer."""
    prompt = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "q" * 2000}]}])
    answer = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "a" * 2000}]}])

    def build(tracer: Tracer) -> None:
        for i in range(count):
            with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as span:
                span.set_attributes(
                    {
                        sc.GEN_AI_OPERATION_NAME: "chat",
                        sc.GEN_AI_PROVIDER_NAME: "openai",
                        sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
                        sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06",
                        sc.GEN_AI_USAGE_INPUT_TOKENS: 512 + i,
                        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 128,
                        sc.GEN_AI_INPUT_MESSAGES: prompt,
                        sc.GEN_AI_OUTPUT_MESSAGES: answer,
                        "gen_ai.request.temperature": 0.7,
                        "gen_ai.request.max_tokens": 1024,
                        "gen_ai.response.id": f"chatcmpl-{i}",
                        "gen_ai.response.finish_reasons": ["stop"],
                        sc.LOOPWISE_USER_ID: "user-1",
                        sc.LOOPWISE_SESSION_ID: "session-1",
                        sc.LOOPWISE_TAGS: ["prod", "beta"],
                    }
                )

    return record_spans(build)


def _best_us_per_span(fn: Callable[[], list[SpanRecord]], spans: int, rounds: int = 7) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        records = fn()
        best = min(best, time.perf_counter() - start)
    assert len(records) == spans
    return best / spans * 1e6


def test_decode_speed_sanity() -> None:
    """Not a benchmark gate: a generous bound that catches an accidental per-span slow path.

    The target is about 25 µs per span for protobuf; run with ``-s`` to see the figures.
    """
    spans = _typical_llm_spans(512)
    pb = pb_body(spans)
    js = json_body(spans)
    pb_us = _best_us_per_span(lambda: decode(pb), 512)
    json_us = _best_us_per_span(lambda: decode_json(js, project_id=PROJECT, retention_days=7, version=1), 512, rounds=3)
    print(f"\ndecode_protobuf: {pb_us:.1f} µs/span, decode_json: {json_us:.1f} µs/span (512-span request)")
    assert pb_us < 200
    assert json_us < 1000


def test_decoders_price_spans_without_a_client_cost() -> None:
    from loopwise_collector.pricing import PriceTable

    def build(tracer: Tracer) -> None:
        for name, model, extra in (
            ("priced", "gpt-4o-mini", {}),
            ("client", "gpt-4o-mini", {sc.LOOPWISE_COST_USD: 0.5}),
            ("unknown", "house-model-7", {}),
        ):
            with tracer.start_as_current_span(name) as span:
                span.set_attribute(sc.GEN_AI_REQUEST_MODEL, model)
                span.set_attribute(sc.GEN_AI_USAGE_INPUT_TOKENS, 1_000_000)
                span.set_attribute(sc.GEN_AI_USAGE_OUTPUT_TOKENS, 0)
                for key, value in extra.items():
                    span.set_attribute(key, value)
        with tracer.start_as_current_span("no-tokens"):
            pass

    spans = record_spans(build)
    table = PriceTable.bundled()
    for decoder, body in ((decode_protobuf, pb_body(spans)), (decode_json, json_body(spans))):
        got = by_name(decoder(body, project_id="p", retention_days=30, version=1, prices=table))
        assert (got["priced"].cost_usd, got["priced"].cost_source) == (pytest.approx(0.15), table.source)
        assert (got["client"].cost_usd, got["client"].cost_source) == (0.5, "client")
        assert (got["unknown"].cost_usd, got["unknown"].cost_source) == (None, "unpriced")
        assert (got["no-tokens"].cost_usd, got["no-tokens"].cost_source) == (None, "")
