"""`loopwise.integrations.openai` traces the unmodified `openai` client against a real HTTP server.

Why: the integration sits inside the user's OpenAI calls, so it must record what the GenAI conventions ask for
(models, messages, tool calls, tokens incl. cached and reasoning, stream timing) and otherwise be invisible: same
results, same streams, same exceptions, no double wrapping, and a clean uninstrument.

Spans are observed where the SDK hands them to its export pipeline (`ExportPipeline.enqueue_span`), together with
their captured content, and turned into the exported attributes by the real encoder (`finish_attributes`). One
end-to-end test sends them to a real collector and reads them back through its API.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.resources import completions as legacy_resource
from openai.resources import embeddings as embeddings_resource
from openai.resources.chat import completions as chat_resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

import loopwise
import loopwise.integrations.openai as lw_openai
from loopwise import semconv as sc
from loopwise._export._encode import finish_attributes
from loopwise._export._pipeline import ExportPipeline
from loopwise._runtime import RUNTIME
from tests.support.collector_process import CollectorProcess
from tests.support.openai_server import OpenAIServer

pytestmark = pytest.mark.integration

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello to the world"},
]
PROMPT_TOKENS = 3 + 5  # the server counts whitespace words
REPLY = "Echo: Say hello to the world"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TARGETS = [
    (chat_resource.Completions, "create"),
    (chat_resource.AsyncCompletions, "create"),
    (chat_resource.Completions, "parse"),
    (chat_resource.AsyncCompletions, "parse"),
    (legacy_resource.Completions, "create"),
    (legacy_resource.AsyncCompletions, "create"),
    (embeddings_resource.Embeddings, "create"),
    (embeddings_resource.AsyncEmbeddings, "create"),
]


@dataclass
class Exported:
    """One ended span as the SDK would export it: the span, and its attributes with captured content added."""

    span: ReadableSpan
    attrs: dict[str, Any]

    def messages(self, key: str) -> Any:
        return json.loads(self.attrs[key])


class Spans:
    """The spans the SDK hands to its export pipeline during one test."""

    def __init__(self) -> None:
        self.items: list[tuple[ReadableSpan, dict[str, Any] | None]] = []

    def all(self) -> list[Exported]:
        return [Exported(span, finish_attributes(span, content, RUNTIME.config)) for span, content in self.items]

    def named(self, name: str) -> list[Exported]:
        return [e for e in self.all() if e.span.name == name]

    def one(self, name: str) -> Exported:
        found = self.named(name)
        assert len(found) == 1, [e.span.name for e in self.all()]
        return found[0]


@pytest.fixture
def server(openai_server: OpenAIServer) -> OpenAIServer:
    openai_server.reset()
    return openai_server


@pytest.fixture
def spans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Spans]:
    """Loopwise configured for this test (other tests reconfigure it), the integration on, spans recorded."""
    loopwise.configure(endpoint="http://127.0.0.1:9", api_key="x", spool_dir=tmp_path / "spool", batch_delay_s=60)
    recorder = Spans()
    enqueue = ExportPipeline.enqueue_span

    def record(self: ExportPipeline, span: ReadableSpan, content: dict[str, Any] | None = None) -> None:
        recorder.items.append((span, content))
        enqueue(self, span, content)

    monkeypatch.setattr(ExportPipeline, "enqueue_span", record)
    lw_openai.instrument()
    yield recorder
    lw_openai.uninstrument()
    loopwise.shutdown(0.1)  # nothing listens on port 9: what is left goes to this test's spool


def client(server: OpenAIServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)


def async_client(server: OpenAIServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0)


def text_parts(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["role"], p["content"]) for m in messages for p in m["parts"] if p["type"] == "text"]


def test_sync_chat_is_a_child_span_with_genai_attributes(server: OpenAIServer, spans: Spans) -> None:
    server.response_model = "gpt-4o-mini-2024-07-18"
    server.cached_tokens = 2
    server.reasoning_tokens = 4
    oa = client(server)

    @loopwise.observe
    def handler() -> openai.types.chat.ChatCompletion:
        return oa.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, temperature=0.2, max_tokens=50, top_p=0.9
        )

    reply = handler()
    assert reply.choices[0].message.content == REPLY  # the caller's result is the client's, unchanged
    root, llm = spans.one("handler"), spans.one("openai.chat")
    assert llm.span.parent is not None and llm.span.parent.span_id == root.span.context.span_id
    assert llm.span.context.trace_id == root.span.context.trace_id
    a = llm.attrs
    assert a[sc.LOOPWISE_SPAN_TYPE] == "llm"
    assert a[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert a[sc.GEN_AI_PROVIDER_NAME] == "openai"
    assert a[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert a[sc.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini-2024-07-18"
    assert a[sc.GEN_AI_RESPONSE_ID] == reply.id
    assert tuple(a[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == ("stop",)
    assert (a[sc.GEN_AI_REQUEST_TEMPERATURE], a[sc.GEN_AI_REQUEST_MAX_TOKENS], a[sc.GEN_AI_REQUEST_TOP_P]) == (
        0.2,
        50,
        0.9,
    )
    assert (a[sc.SERVER_ADDRESS], a[sc.SERVER_PORT]) == ("127.0.0.1", server.port)
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == PROMPT_TOKENS
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 6 + 4  # reply words + reasoning tokens
    assert a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 2
    assert a[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 4
    assert text_parts(llm.messages(sc.GEN_AI_INPUT_MESSAGES)) == [
        ("system", "You are terse."),
        ("user", "Say hello to the world"),
    ]
    assert llm.messages(sc.GEN_AI_OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [{"type": "text", "content": REPLY}], "finish_reason": "stop"}
    ]
    assert llm.span.status.status_code is StatusCode.UNSET


def test_tool_calls_in_output_and_client_objects_in_input(server: OpenAIServer, spans: Spans) -> None:
    server.tool_calls = True
    server.tool_arguments = {"city": "Paris"}
    oa = client(server)
    first = oa.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=[WEATHER_TOOL])
    call = first.choices[0].message.tool_calls[0]
    server.tool_calls = False
    # The usual loop: the reply's own message object goes back in, followed by the tool's result.
    followup = [*MESSAGES, first.choices[0].message, {"role": "tool", "tool_call_id": call.id, "content": "18C"}]
    oa.chat.completions.create(model="gpt-4o", messages=followup, tools=[WEATHER_TOOL])

    one, two = spans.named("openai.chat")
    out = one.messages(sc.GEN_AI_OUTPUT_MESSAGES)
    assert out == [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": call.id, "name": "get_weather", "arguments": '{"city": "Paris"}'}],
            "finish_reason": "tool_calls",
        }
    ]
    assert tuple(one.attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == ("tool_calls",)
    inputs = two.messages(sc.GEN_AI_INPUT_MESSAGES)
    assert inputs[2]["role"] == "assistant"
    assert inputs[2]["parts"] == [
        {"type": "tool_call", "id": call.id, "name": "get_weather", "arguments": '{"city": "Paris"}'}
    ]
    assert inputs[3] == {"role": "tool", "parts": [{"type": "tool_call_response", "id": call.id, "response": "18C"}]}


def test_sync_stream_with_usage(server: OpenAIServer, spans: Spans) -> None:
    server.cached_tokens = 1
    server.reasoning_tokens = 2
    server.chunk_delay = 0.02
    stream = client(server).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert isinstance(stream, openai.Stream)  # the wrapper is transparent to isinstance
    assert stream.response.status_code == 200  # attributes pass through
    assert spans.named("openai.chat") == []  # the span lives as long as the stream
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    assert chunks[-1].usage is not None and chunks[-1].choices == []

    llm = spans.one("openai.chat")
    a = llm.attrs
    assert a[sc.LOOPWISE_TIME_TO_FIRST_CHUNK_MS] >= 20  # the server waits chunk_delay before the first chunk
    assert a[sc.LOOPWISE_STREAM_CHUNKS] == len(chunks)
    assert a[sc.GEN_AI_RESPONSE_ID] == chunks[0].id
    assert a[sc.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini"
    assert tuple(a[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == ("stop",)
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == PROMPT_TOKENS
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 6 + 2
    assert a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 1
    assert a[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 2
    assert llm.messages(sc.GEN_AI_OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [{"type": "text", "content": REPLY}], "finish_reason": "stop"}
    ]
    # The span covers the whole stream, not just the request.
    assert llm.span.end_time - llm.span.start_time >= len(chunks) * 0.02 * 1e9 * 0.9


def test_sync_stream_without_usage_leaves_the_request_alone(server: OpenAIServer, spans: Spans) -> None:
    stream = client(server).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    chunks = list(stream)
    assert "stream_options" not in server.last_request.body  # include_usage is never forced on the caller
    assert all(c.usage is None for c in chunks)
    a = spans.one("openai.chat").attrs
    assert sc.GEN_AI_USAGE_INPUT_TOKENS not in a and sc.GEN_AI_USAGE_OUTPUT_TOKENS not in a
    assert tuple(a[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == ("stop",)
    assert json.loads(a[sc.GEN_AI_OUTPUT_MESSAGES])[0]["parts"] == [{"type": "text", "content": REPLY}]


def test_stream_assembles_tool_call_deltas(server: OpenAIServer, spans: Spans) -> None:
    server.tool_calls = True
    server.tool_arguments = {"city": "New York", "unit": "celsius"}
    stream = client(server).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, tools=[WEATHER_TOOL], stream=True
    )
    chunks = list(stream)
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.tool_calls) > 2  # arguments arrive in pieces
    out = spans.one("openai.chat").messages(sc.GEN_AI_OUTPUT_MESSAGES)
    assert out == [
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": chunks[0].choices[0].delta.tool_calls[0].id,
                    "name": "get_weather",
                    "arguments": json.dumps(server.tool_arguments),
                }
            ],
            "finish_reason": "tool_calls",
        }
    ]


def test_stream_with_statement_and_early_close_end_the_span(server: OpenAIServer, spans: Spans) -> None:
    oa = client(server)
    with oa.chat.completions.create(model="m", messages=MESSAGES, stream=True) as stream:
        first = next(stream)
        assert first.choices[0].delta.role == "assistant"
    assert len(spans.named("openai.chat")) == 1  # ended by __exit__, after one chunk
    assert spans.one("openai.chat").attrs[sc.LOOPWISE_STREAM_CHUNKS] == 1
    assert stream.response.is_closed

    stream = oa.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    next(stream)
    next(stream)
    stream.close()
    assert stream.response.is_closed
    ended = spans.named("openai.chat")
    assert len(ended) == 2 and ended[1].attrs[sc.LOOPWISE_STREAM_CHUNKS] == 2
    assert ended[1].span.status.status_code is StatusCode.UNSET

    # A stream the caller drops half-read still ends its span when it is collected.
    stream = oa.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    next(stream)
    del stream
    gc.collect()
    assert len(spans.named("openai.chat")) == 3


def test_stream_helper_runs_over_the_wrapped_stream(server: OpenAIServer, spans: Spans) -> None:
    with client(server).chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == REPLY
    out = spans.one("openai.chat").messages(sc.GEN_AI_OUTPUT_MESSAGES)
    assert out[0]["parts"] == [{"type": "text", "content": REPLY}]


def test_async_chat_and_async_stream(server: OpenAIServer, spans: Spans) -> None:
    server.cached_tokens = 3

    @loopwise.observe
    async def handler() -> tuple[str, str]:
        oa = async_client(server)
        reply = await oa.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        stream = await oa.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        assert isinstance(stream, openai.AsyncStream)
        pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        async with await oa.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True) as early:
            await early.__anext__()
        await oa.close()
        return reply.choices[0].message.content or "", "".join(pieces)

    assert asyncio.run(handler()) == (REPLY, REPLY)
    root = spans.one("handler")
    plain, streamed, early = spans.named("openai.chat")
    for e in (plain, streamed, early):
        assert e.span.parent is not None and e.span.parent.span_id == root.span.context.span_id
    assert plain.attrs[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 3
    assert plain.messages(sc.GEN_AI_OUTPUT_MESSAGES)[0]["parts"][0]["content"] == REPLY
    assert streamed.attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == PROMPT_TOKENS
    assert streamed.attrs[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 3
    assert sc.LOOPWISE_TIME_TO_FIRST_CHUNK_MS in streamed.attrs
    assert streamed.messages(sc.GEN_AI_OUTPUT_MESSAGES)[0]["parts"][0]["content"] == REPLY
    assert early.attrs[sc.LOOPWISE_STREAM_CHUNKS] == 1


def test_legacy_completions(server: OpenAIServer, spans: Spans) -> None:
    oa = client(server)
    done = oa.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say this is a test", max_tokens=3)
    assert done.choices[0].text == "Echo: Say this"
    pieces = [c.choices[0].text for c in oa.completions.create(model="davinci-002", prompt="one two", stream=True)]
    assert "".join(pieces) == "Echo: one two"

    plain, streamed = spans.named("openai.completions")
    assert plain.attrs[sc.GEN_AI_OPERATION_NAME] == "text_completion"
    assert plain.attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] == 3
    assert tuple(plain.attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == ("length",)
    assert (plain.attrs[sc.GEN_AI_USAGE_INPUT_TOKENS], plain.attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (5, 3)
    assert sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS not in plain.attrs  # legacy completions report no details
    assert text_parts(plain.messages(sc.GEN_AI_INPUT_MESSAGES)) == [("user", "Say this is a test")]
    assert plain.messages(sc.GEN_AI_OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Echo: Say this"}], "finish_reason": "length"}
    ]
    assert streamed.attrs[sc.GEN_AI_REQUEST_MODEL] == "davinci-002"
    assert text_parts(streamed.messages(sc.GEN_AI_OUTPUT_MESSAGES)) == [("assistant", "Echo: one two")]


def test_embeddings(server: OpenAIServer, spans: Spans) -> None:
    result = client(server).embeddings.create(model="text-embedding-3-small", input=["red apple", "green pear tree"])
    assert len(result.data) == 2

    async def run() -> None:
        async with async_client(server) as oa:
            await oa.embeddings.create(model="text-embedding-3-small", input="one")

    asyncio.run(run())
    sync_span, async_span = spans.named("openai.embeddings")
    a = sync_span.attrs
    assert a[sc.LOOPWISE_SPAN_TYPE] == "embedding"
    assert a[sc.GEN_AI_OPERATION_NAME] == "embeddings"
    assert a[sc.GEN_AI_PROVIDER_NAME] == "openai"
    assert a[sc.GEN_AI_REQUEST_MODEL] == a[sc.GEN_AI_RESPONSE_MODEL] == "text-embedding-3-small"
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 5
    assert json.loads(a[sc.LOOPWISE_INPUT]) == ["red apple", "green pear tree"]
    assert sc.GEN_AI_OUTPUT_MESSAGES not in a and sc.LOOPWISE_OUTPUT not in a  # vectors are not content
    assert async_span.attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1


def test_client_error_is_recorded_and_reraised_unchanged(
    server: OpenAIServer, spans: Spans, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Wrap the client's own method underneath the integration, to see the exact exception object it raised.
    lw_openai.uninstrument()
    raised: list[BaseException] = []
    real = chat_resource.Completions.create

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return real(self, *args, **kwargs)
        except BaseException as exc:
            raised.append(exc)
            raise

    monkeypatch.setattr(chat_resource.Completions, "create", spy)
    lw_openai.instrument()
    server.fail_next(1, status=500)
    with pytest.raises(openai.InternalServerError) as info:
        client(server).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raised and info.value is raised[0]
    assert info.value.status_code == 500

    llm = spans.one("openai.chat")
    assert llm.span.status.status_code is StatusCode.ERROR
    assert "InternalServerError" in (llm.span.status.description or "")
    (event,) = llm.span.events
    assert event.name == "exception" and event.attributes["exception.type"].endswith("InternalServerError")
    assert llm.attrs[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert sc.GEN_AI_INPUT_MESSAGES in llm.attrs


def test_async_error_is_recorded_and_reraised(server: OpenAIServer, spans: Spans) -> None:
    server.fail_next(1, status=429)

    async def run() -> None:
        async with async_client(server) as oa:
            await oa.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    with pytest.raises(openai.RateLimitError):
        asyncio.run(run())
    assert spans.one("openai.chat").span.status.status_code is StatusCode.ERROR


def test_instrument_is_idempotent_and_uninstrument_restores(server: OpenAIServer, spans: Spans) -> None:
    lw_openai.uninstrument()
    originals = {(cls, name): vars(cls)[name] for cls, name in TARGETS}
    lw_openai.instrument()
    lw_openai.instrument()
    for (cls, name), original in originals.items():
        assert vars(cls)[name] is not original
        assert vars(cls)[name].__wrapped__ is original  # one layer, not two
    client(server).chat.completions.create(model="m", messages=MESSAGES)
    assert len(spans.named("openai.chat")) == 1

    lw_openai.uninstrument()
    for (cls, name), original in originals.items():
        assert vars(cls)[name] is original
    client(server).chat.completions.create(model="m", messages=MESSAGES)
    assert len(spans.named("openai.chat")) == 1  # untraced now
    lw_openai.uninstrument()  # a second uninstrument changes nothing
    assert all(vars(cls)[name] is original for (cls, name), original in originals.items())


def test_parse_and_raw_responses_are_traced_once(server: OpenAIServer, spans: Spans) -> None:
    oa = client(server)
    parsed = oa.chat.completions.parse(model="gpt-4o-mini", messages=MESSAGES)
    assert parsed.choices[0].message.content == REPLY
    raw = oa.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raw.headers["x-request-id"]
    assert raw.parse().choices[0].message.content == REPLY

    via_parse, via_raw = spans.named("openai.chat")
    assert via_parse.attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == PROMPT_TOKENS
    assert via_parse.messages(sc.GEN_AI_OUTPUT_MESSAGES)[0]["parts"][0]["content"] == REPLY
    assert via_raw.attrs[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"  # the request side only


def test_a_fault_of_ours_never_breaks_the_call(
    server: OpenAIServer, spans: Spans, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("loopwise bug")

    monkeypatch.setattr(lw_openai, "set_llm_attributes", broken)
    oa = client(server)
    with caplog.at_level(logging.ERROR, logger="loopwise"):
        reply = oa.chat.completions.create(model="m", messages=MESSAGES)
        chunks = list(oa.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert reply.choices[0].message.content == REPLY
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == REPLY
    assert "loopwise bug" in caplog.text

    monkeypatch.setattr(lw_openai, "start_observation", broken)
    assert oa.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == REPLY


def test_disabled_tracing_calls_straight_through(server: OpenAIServer, spans: Spans, tmp_path: Path) -> None:
    loopwise.configure(enabled=False, spool_dir=tmp_path / "off")
    stream = client(server).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert type(stream) is openai.Stream  # not even wrapped
    list(stream)
    assert spans.items == []


def test_import_loopwise_does_not_import_openai() -> None:
    code = "import sys, loopwise, loopwise.integrations; print('openai' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_end_to_end_through_the_collector(tmp_path: Path, server: OpenAIServer) -> None:
    key = "lw_test_key"
    collector = CollectorProcess(
        tmp_path / "lw", env={"LOOPWISE_INIT_PROJECTS": f"demo:{key}", "LOOPWISE_INGEST__MAX_DELAY_MS": "50"}
    )
    collector.start()
    try:
        loopwise.configure(endpoint=collector.url, api_key=key, spool_dir=tmp_path / "spool", batch_delay_s=0.05)
        lw_openai.instrument()
        server.response_model = "gpt-4o-mini-2024-07-18"
        server.cached_tokens = 2
        server.reasoning_tokens = 3
        oa = client(server)

        @loopwise.observe
        def support_bot(question: str) -> str:
            reply = oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": question}])
            return reply.choices[0].message.content or ""

        support_bot("Where is my order")

        @loopwise.observe
        def streamed() -> str | None:
            stream = oa.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
            assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == REPLY
            return loopwise.get_current_trace_id()

        trace_id = streamed()
        assert loopwise.flush(10)

        auth = {"Authorization": f"Bearer {key}"}
        deadline = time.monotonic() + 20
        while True:
            res = httpx.get(f"{collector.url}/api/v1/traces/{trace_id}", headers=auth, timeout=10)
            if res.status_code == 200 and len(res.json()["spans"]) == 2:
                break
            assert time.monotonic() < deadline, res.text
            time.sleep(0.1)
        by_name = {s["name"]: s for s in res.json()["spans"]}
        root, llm = by_name["streamed"], by_name["openai.chat"]
        assert llm["parent_span_id"] == root["span_id"] and root["parent_span_id"] in (None, "")
        assert llm["span_type"] == "llm" and llm["operation"] == "chat"
        assert llm["provider"] == "openai"
        assert llm["request_model"] == "gpt-4o-mini"
        assert llm["response_model"] == "gpt-4o-mini-2024-07-18"
        assert llm["model"] in ("gpt-4o-mini-2024-07-18", "gpt-4o-mini")
        assert (llm["input_tokens"], llm["output_tokens"]) == (PROMPT_TOKENS, 6 + 3)
        assert (llm["cache_read_input_tokens"], llm["reasoning_output_tokens"]) == (2, 3)
        assert llm["cost_usd"] is not None and llm["cost_usd"] > 0  # priced by the collector's table
        assert text_parts(json.loads(llm["input"])) == [
            ("system", "You are terse."),
            ("user", "Say hello to the world"),
        ]
        assert text_parts(json.loads(llm["output"])) == [("assistant", REPLY)]
        assert llm["attributes"][sc.SERVER_ADDRESS] == "127.0.0.1"
        assert float(llm["attributes"][sc.LOOPWISE_TIME_TO_FIRST_CHUNK_MS]) >= 0
        assert llm["status"] == "unset"

        listed = httpx.get(f"{collector.url}/api/v1/traces", params={"name": "support_bot"}, headers=auth, timeout=10)
        assert listed.status_code == 200 and len(listed.json()["data"]) == 1
        assert listed.json()["data"][0]["input_tokens"] == 4  # "Where is my order"
    finally:
        lw_openai.uninstrument()
        loopwise.shutdown(1)
        collector.stop()
