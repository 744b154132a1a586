"""The fake OpenAI server speaks enough of OpenAI's REST API for the unmodified `openai` client, sync and async:
chat completions (plain, streamed with and without usage, tool calls), legacy completions, embeddings, auth and
injected errors.

Why: tests of OpenAI instrumentation trust this harness to stand in for api.openai.com, so its fidelity is checked
here once, through the same client the instrumented code uses.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.support.openai_server import OpenAIServer, embedding_for, word_count

pytestmark = pytest.mark.integration

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello to the world"},
]
PROMPT_TOKENS = 3 + 5  # whitespace words of both messages
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture
def server(openai_server: OpenAIServer) -> Iterator[OpenAIServer]:
    openai_server.reset()
    yield openai_server
    openai_server.reset()


@pytest.fixture
def client(server: OpenAIServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0) as client:
        yield client


def test_chat_completion(server: OpenAIServer, client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, temperature=0)

    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    assert completion.id.startswith("chatcmpl-")
    assert completion._request_id is not None
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Echo: Say hello to the world"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (PROMPT_TOKENS, 6)
    assert completion.usage.total_tokens == PROMPT_TOKENS + 6
    assert completion.usage.prompt_tokens_details.cached_tokens == 0
    assert completion.usage.completion_tokens_details.reasoning_tokens == 0

    request = server.last_request
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.body["messages"] == MESSAGES
    assert request.body["temperature"] == 0
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.headers["content-type"] == "application/json"


def test_knobs_shape_the_reply_and_usage(server: OpenAIServer, client: openai.OpenAI) -> None:
    server.reply = "A canned reply of six words"
    server.response_model = "gpt-4o-mini-2024-07-18"
    server.cached_tokens = 4
    server.reasoning_tokens = 10

    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    assert completion.choices[0].message.content == "A canned reply of six words"
    assert completion.model == "gpt-4o-mini-2024-07-18"
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens_details.cached_tokens == 4
    assert usage.completion_tokens_details.reasoning_tokens == 10
    assert usage.completion_tokens == 6 + 10  # OpenAI counts reasoning tokens as completion tokens
    assert usage.total_tokens == PROMPT_TOKENS + 16

    truncated = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_completion_tokens=2)
    assert truncated.choices[0].message.content == "A canned"
    assert truncated.choices[0].finish_reason == "length"

    server.reset()
    assert client.chat.completions.create(model="m", messages=MESSAGES).model == "m"
    assert len(server.requests) == 1


def test_stream_without_usage(server: OpenAIServer, client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))

    assert len(chunks) >= 4
    assert all(chunk.object == "chat.completion.chunk" and chunk.model == "gpt-4o" for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(chunk.choices[0].delta.role is None for chunk in chunks[1:])
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == "Echo: Say hello to the world"
    assert [chunk.choices[0].finish_reason for chunk in chunks][-1] == "stop"
    assert all(chunk.choices[0].finish_reason is None for chunk in chunks[:-1])
    assert all(chunk.usage is None for chunk in chunks)
    assert "stream_options" not in server.last_request.body


def test_stream_with_usage(server: OpenAIServer, client: openai.OpenAI) -> None:
    server.cached_tokens = 2
    stream = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    *content, finish, usage_chunk = chunks
    assert finish.choices[0].finish_reason == "stop"
    assert all(chunk.usage is None for chunk in [*content, finish])
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert (usage_chunk.usage.prompt_tokens, usage_chunk.usage.completion_tokens) == (PROMPT_TOKENS, 6)
    assert usage_chunk.usage.prompt_tokens_details.cached_tokens == 2
    assert server.last_request.body["stream_options"] == {"include_usage": True}


def test_stream_is_incremental(server: OpenAIServer, client: openai.OpenAI) -> None:
    server.chunk_delay = 0.1
    started = time.monotonic()
    arrivals = [
        time.monotonic() - started for _ in client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    ]

    # 8 chunks at 0.1 s each: the first arrives after one delay, not after the whole stream.
    assert arrivals[0] >= 0.1
    assert arrivals[-1] - arrivals[0] >= 0.5


def test_tool_call(server: OpenAIServer, client: openai.OpenAI) -> None:
    server.tool_calls = True
    server.tool_arguments = {"city": "Paris"}
    completion = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=[WEATHER_TOOL])

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert call.function.arguments == '{"city": "Paris"}'

    chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=[WEATHER_TOOL], stream=True))
    deltas = [tc for chunk in chunks for tc in chunk.choices[0].delta.tool_calls or []]
    assert deltas[0].id and deltas[0].function and deltas[0].function.name == "get_weather"
    assert "".join(d.function.arguments or "" for d in deltas if d.function) == '{"city": "Paris"}'
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    # Without tools in the request the flag does nothing.
    assert client.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content


@pytest.mark.parametrize(
    ("status", "error"),
    [(500, openai.InternalServerError), (503, openai.InternalServerError), (429, openai.RateLimitError)],
)
def test_injected_errors(server: OpenAIServer, client: openai.OpenAI, status: int, error: type[Exception]) -> None:
    server.fail_next(1, status=status)

    with pytest.raises(error) as raised:
        client.chat.completions.create(model="m", messages=MESSAGES)

    assert isinstance(raised.value, openai.APIStatusError)
    assert raised.value.status_code == status
    assert isinstance(raised.value.body, dict)
    assert set(raised.value.body) == {"message", "type", "param", "code"}
    # Only the next request fails.
    assert client.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content


def test_custom_error_and_stream_failure(server: OpenAIServer, client: openai.OpenAI) -> None:
    server.fail_next(1, status=429, message="Slow down", error_type="tokens", code="rate_limit_exceeded")
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert raised.value.code == "rate_limit_exceeded"
    assert raised.value.type == "tokens"
    assert "Slow down" in raised.value.message


def test_client_retries_through_failures(server: OpenAIServer) -> None:
    server.fail_next(2, status=500, headers={"retry-after-ms": "1"})  # no backoff wait
    with openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=2) as client:
        completion = client.chat.completions.create(model="m", messages=MESSAGES)

    assert completion.choices[0].message.content == "Echo: Say hello to the world"
    assert len(server.requests) == 3
    assert [r.headers.get("x-stainless-retry-count") for r in server.requests] == ["0", "1", "2"]


def test_authentication(server: OpenAIServer) -> None:
    body = {"model": "m", "messages": MESSAGES}
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}):
        response = httpx.post(f"{server.base_url}/chat/completions", json=body, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"

    server.api_key = "sk-right"
    wrong = openai.OpenAI(base_url=server.base_url, api_key="sk-wrong", max_retries=0)
    with wrong, pytest.raises(openai.AuthenticationError) as raised:
        wrong.chat.completions.create(model="m", messages=MESSAGES)
    assert raised.value.type == "invalid_request_error"
    with openai.OpenAI(base_url=server.base_url, api_key="sk-right", max_retries=0) as client:
        assert client.chat.completions.create(model="m", messages=MESSAGES).choices
    assert len(server.requests) == 5  # rejected requests are logged too


def test_unknown_path(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.models.list()


def test_async_client(server: OpenAIServer) -> None:
    async def run() -> tuple[str | None, str, int | None]:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0) as client:
            completion = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            stream = await client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
            text, total = "", None
            async for chunk in stream:
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
                if chunk.usage:
                    total = chunk.usage.total_tokens
            server.fail_next(1, status=500)
            with pytest.raises(openai.InternalServerError):
                await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            return completion.choices[0].message.content, text, total

    content, streamed, total = asyncio.run(run())

    assert content == streamed == "Echo: Say hello to the world"
    assert total == PROMPT_TOKENS + 6


def test_embeddings(server: OpenAIServer, client: openai.OpenAI) -> None:
    response = client.embeddings.create(model="text-embedding-3-small", input=["hello world", "hello world", "bye"])

    vectors = [item.embedding for item in response.data]
    assert [item.index for item in response.data] == [0, 1, 2]
    assert vectors[0] == vectors[1] != vectors[2]
    # The client asks for base64 by default and decodes float32, so compare at float32 precision.
    assert server.last_request.body["encoding_format"] == "base64"
    assert vectors[2] == pytest.approx(embedding_for("bye", 8), rel=1e-6)
    assert sum(v * v for v in vectors[0]) == pytest.approx(1.0, rel=1e-5)
    assert (response.usage.prompt_tokens, response.usage.total_tokens) == (5, 5)

    floats = client.embeddings.create(model="e", input="bye", encoding_format="float", dimensions=16)
    assert floats.data[0].embedding == embedding_for("bye", 16)


def test_legacy_completions(server: OpenAIServer, client: openai.OpenAI) -> None:
    completion = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Once upon a time", max_tokens=16)

    assert completion.object == "text_completion"
    assert completion.choices[0].text == "Echo: Once upon a time"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4, 5)

    stream = client.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Once upon a time", stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(chunk.choices[0].text for chunk in chunks if chunk.choices) == "Echo: Once upon a time"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 9
    assert word_count(completion.choices[0].text) == 5


def test_lifecycle_restart_and_stop_mid_stream() -> None:
    server = OpenAIServer()
    with server:
        port = server.port
        assert server.base_url == f"http://127.0.0.1:{port}/v1"
        server.chunk_delay = 0.05
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        first = next(iter(stream))
        started = time.monotonic()
        server.stop()  # with a stream still open: cut short, not waited for
        assert time.monotonic() - started < 3  # uvicorn would wait 5 s for a stream it could not end
        rest = list(stream)
        assert first.choices[0].delta.role == "assistant"
        assert len(rest) < 7  # the stream ended early, without its finish chunk
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(model="m", messages=MESSAGES)

        server.start()  # the same port again, so clients built earlier still reach it
        assert server.port == port
        assert client.chat.completions.create(model="m", messages=MESSAGES).choices
        client.close()
    server.stop()  # idempotent
