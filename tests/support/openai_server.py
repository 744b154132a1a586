"""A fake OpenAI REST API on loopback, for tests that drive the unmodified `openai` client. A TEST HARNESS.

Why: instrumentation of OpenAI calls must be tested through the real client (its retries, its SSE parser, its
pydantic models), without the network and without patching the client. This server answers just enough of the
protocol for that, deterministically: chat completions (plain, streamed, tool calls), legacy text completions and
embeddings, plus injected errors in OpenAI's error format.

    with OpenAIServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test")
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi there"}])
        # -> content "Echo: hi there", usage 2 prompt + 3 completion tokens (whitespace words)
        server.fail_next(1, status=429)  # the next request gets a RateLimitError
        server.requests[-1].body  # what the client sent

Token counts are whitespace-word counts (`word_count`), so tests can predict them. Knobs are plain attributes
(`reply`, `response_model`, `cached_tokens`, `reasoning_tokens`, `tool_calls`, `tool_arguments`, `chunk_delay`,
`embedding_dim`, `api_key`); `reset()` restores them and clears the request log and queued failures, so one
session-wide server can serve many tests. Uvicorn runs it in a daemon thread on a socket bound before start, so the
port is known and never raced.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

# What OpenAI itself answers for these statuses, so clients classify the errors as they would in production.
ERROR_DEFAULTS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to sample from this model.", "invalid_request_error", None),
    404: ("The model does not exist or you do not have access to it.", "invalid_request_error", "model_not_found"),
    429: ("Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


def word_count(text: str) -> int:
    """The server's token count for `text`: whitespace-separated words."""
    return len(text.split())


def embedding_for(text: str, dimensions: int) -> list[float]:
    """The unit-length vector the server returns for `text`: a SHA-256 stream, so equal inputs embed equally."""
    raw = b""
    counter = 0
    while len(raw) < dimensions:
        raw += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    values = [byte / 127.5 - 1.0 for byte in raw[:dimensions]]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


def split_pieces(text: str) -> list[str]:
    """Stream pieces of `text`: one per word, each with its leading whitespace, so they join back exactly."""
    return [piece for piece in re.split(r"(?<=\S)(?=\s)", text) if piece]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it (every request, including rejected and failed ones)."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # the parsed JSON body, or None when it was empty or not JSON


@dataclass(frozen=True)
class _Failure:
    status: int
    message: str
    type: str
    code: str | None
    headers: dict[str, str] = field(default_factory=dict)


def _error(status: int, message: str, type_: str, code: str | None, headers: dict[str, str] | None = None) -> Response:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _invalid(message: str, status: int = 400, code: str | None = None) -> Response:
    return _error(status, message, "invalid_request_error", code)


def _text_of(content: Any) -> str:
    # Chat content is a string or a list of parts; only text parts count towards the prompt.
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _inputs(value: Any) -> list[str]:
    # Prompts and embedding inputs: a string, a list of strings, a token list, or a list of token lists.
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [" ".join(map(str, value))]
    if isinstance(value, list):
        return [v if isinstance(v, str) else " ".join(map(str, v)) for v in value]
    return []


class OpenAIServer:
    """Start and stop the fake OpenAI API; set knobs, inject failures and read the request log between calls."""

    reply: str | None  # canned reply text; None echoes the prompt ("Echo: <last user message>")
    response_model: str | None  # the model name responses report (e.g. a dated snapshot); None echoes the request
    cached_tokens: int  # usage.prompt_tokens_details.cached_tokens (a part of prompt_tokens, as at OpenAI)
    reasoning_tokens: int  # usage.completion_tokens_details.reasoning_tokens (added to completion_tokens)
    tool_calls: bool  # when the request offers tools, call the first one instead of answering in text
    tool_arguments: dict[str, Any]  # the arguments of that call
    chunk_delay: float  # seconds to sleep before each streamed chunk (the first one too)
    embedding_dim: int  # vector length when the request gives no `dimensions`
    api_key: str | None  # when set, the one bearer token accepted; otherwise any non-empty token is

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._failures: deque[_Failure] = deque()
        self._counter = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What to pass as the client's `base_url`: `http://127.0.0.1:PORT/v1`."""
        return f"{self.url}/v1"

    @property
    def last_request(self) -> RecordedRequest:
        with self._lock:
            return self.requests[-1]

    def reset(self) -> None:
        """Restore every knob's default and forget requests and queued failures."""
        with self._lock:
            self.reply = None
            self.response_model = None
            self.cached_tokens = 0
            self.reasoning_tokens = 0
            self.tool_calls = False
            self.tool_arguments = {}
            self.chunk_delay = 0.0
            self.embedding_dim = 8
            self.api_key = None
            self.requests.clear()
            self._failures.clear()
            self._counter = 0

    def fail_next(
        self,
        count: int = 1,
        status: int = 500,
        message: str | None = None,
        error_type: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next `count` authorised requests with `status` and an OpenAI error body.

        Unset fields take OpenAI's own values for that status. `headers` can carry `retry-after-ms` (the client
        honours it, so retry tests need not wait out its backoff) or `x-should-retry`.
        """
        default_message, default_type, default_code = ERROR_DEFAULTS.get(status, ("Error.", "api_error", None))
        failure = _Failure(
            status,
            message or default_message,
            error_type or default_type,
            code if code is not None else default_code,
            dict(headers or {}),
        )
        with self._lock:
            self._failures.extend([failure] * count)

    def start(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            raise RuntimeError(f"fake OpenAI server already running on {self.url}")
        # Bind first, so the port is ours before uvicorn starts: no free-port race.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app(), log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=5
        )
        self._server = uvicorn.Server(config)
        # Uvicorn installs signal handlers only on the main thread, so it runs cleanly in this one.
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="openai-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError(f"fake OpenAI server did not start on {self.url}")
            time.sleep(0.01)

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        self._server = self._thread = None

    def __enter__(self) -> OpenAIServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- HTTP side: everything below runs on the server thread's event loop. ---

    def _app(self) -> Starlette:
        routes = {
            "/v1/chat/completions": self._chat,
            "/v1/completions": self._completions,
            "/v1/embeddings": self._embeddings,
        }

        async def dispatch(request: Request) -> Response:
            raw = await request.body()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            headers = {name.lower(): value for name, value in request.headers.items()}
            with self._lock:
                self.requests.append(RecordedRequest(request.method, request.url.path, headers, body))
                self._counter += 1
                number = self._counter
                expected_key = self.api_key
            scheme, _, token = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip() or (expected_key and token != expected_key):
                return _error(401, *ERROR_DEFAULTS[401])
            with self._lock:
                failure = self._failures.popleft() if self._failures else None
            if failure is not None:
                return _error(failure.status, failure.message, failure.type, failure.code, failure.headers)
            handler = routes.get(request.url.path)
            if handler is None or request.method != "POST":
                return _invalid(f"Unknown request URL: {request.method} {request.url.path}.", 404, "unknown_url")
            if not isinstance(body, dict):
                return _invalid("We could not parse the JSON body of your request.")
            if not body.get("model"):
                return _invalid("You must provide a model parameter.")
            response = await handler(body, number)
            response.headers["x-request-id"] = f"req_{number:08d}"
            return response

        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        return Starlette(routes=[Route("/{path:path}", dispatch, methods=methods)])

    def _model(self, body: dict[str, Any]) -> str:
        return self.response_model or str(body["model"])

    def _usage(self, prompt_tokens: int, reply: str, *, details: bool) -> dict[str, Any]:
        completion = word_count(reply) + (self.reasoning_tokens if details else 0)
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
        }
        if details:  # chat completions report details; legacy completions never did
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens, "audio_tokens": 0}
            usage["completion_tokens_details"] = {
                "reasoning_tokens": self.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            }
        return usage

    def _limit(self, body: dict[str, Any], text: str) -> tuple[str, str]:
        # A max_tokens below the reply's word count cuts it there, with finish_reason "length" as OpenAI reports.
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        words = text.split()
        if isinstance(limit, int) and len(words) > limit:
            return " ".join(words[:limit]), "length"
        return text, "stop"

    async def _sse(self, chunks: list[dict[str, Any]]) -> AsyncIterator[bytes]:
        server = self._server
        for chunk in chunks:
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            if server is None or server.should_exit:
                # stop() cuts open streams short, without [DONE], as a dying server would; otherwise uvicorn
                # waits out its graceful-shutdown timeout for them and then cancels them with a logged traceback.
                return
            yield f"data: {json.dumps(chunk)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    def _stream(self, body: dict[str, Any], chunks: list[dict[str, Any]], usage: dict[str, Any]) -> Response:
        # As at OpenAI: with include_usage every chunk carries "usage": null and one last chunk, with no choices,
        # carries the totals; without it no chunk mentions usage at all.
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks = [{**chunk, "usage": None} for chunk in chunks]
            chunks.append({**chunks[0], "choices": [], "usage": usage})
        return StreamingResponse(self._sse(chunks), media_type="text/event-stream; charset=utf-8")

    async def _chat(self, body: dict[str, Any], number: int) -> Response:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _invalid("'messages' must be a non-empty array.")
        prompt_tokens = sum(word_count(_text_of(m.get("content"))) for m in messages if isinstance(m, dict))
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        last_user = _text_of(users[-1].get("content")) if users else ""
        tools = body.get("tools") or []
        call: dict[str, Any] | None = None
        if self.tool_calls and tools:
            name = tools[0].get("function", {}).get("name", "tool")
            arguments = json.dumps(self.tool_arguments)
            call = {"id": f"call_{number:08d}", "type": "function", "function": {"name": name, "arguments": arguments}}
            text, finish = arguments, "tool_calls"
        else:
            text, finish = self._limit(body, self.reply if self.reply is not None else f"Echo: {last_user}")
        usage = self._usage(prompt_tokens, text, details=True)
        head = {
            "id": f"chatcmpl-{number:08d}",
            "created": int(time.time()),
            "model": self._model(body),
            "service_tier": "default",
            "system_fingerprint": "fp_loopwise",
        }
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": None if call else text, "refusal": None}
            message["annotations"] = []
            if call:
                message["tool_calls"] = [call]
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            return JSONResponse({**head, "object": "chat.completion", "choices": [choice], "usage": usage})

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return {**head, "object": "chat.completion.chunk", "choices": [choice]}

        if call:
            opening = {**call, "index": 0, "function": {"name": call["function"]["name"], "arguments": ""}}
            chunks = [chunk({"role": "assistant", "content": None, "tool_calls": [opening], "refusal": None})]
            chunks += [
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}) for piece in split_pieces(text)
            ]
        else:
            # OpenAI opens with the role and an empty content, then one delta per piece of text.
            chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
            chunks += [chunk({"content": piece}) for piece in split_pieces(text)]
        chunks.append(chunk({}, finish))
        return self._stream(body, chunks, usage)

    async def _completions(self, body: dict[str, Any], number: int) -> Response:
        prompts = _inputs(body.get("prompt", ""))
        prompt = prompts[0] if prompts else ""
        text, finish = self._limit(body, self.reply if self.reply is not None else f"Echo: {prompt}")
        usage = self._usage(sum(map(word_count, prompts)), text, details=False)
        head = {
            "id": f"cmpl-{number:08d}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self._model(body),
            "system_fingerprint": "fp_loopwise",
        }

        def choice(piece: str, finish_reason: str | None) -> dict[str, Any]:
            return {"text": piece, "index": 0, "logprobs": None, "finish_reason": finish_reason}

        if not body.get("stream"):
            return JSONResponse({**head, "choices": [choice(text, finish)], "usage": usage})
        chunks = [{**head, "choices": [choice(piece, None)]} for piece in split_pieces(text)]
        chunks.append({**head, "choices": [choice("", finish)]})
        return self._stream(body, chunks, usage)

    async def _embeddings(self, body: dict[str, Any], number: int) -> Response:
        inputs = _inputs(body.get("input"))
        if not inputs or any(text == "" for text in inputs):
            return _invalid("'input' cannot be an empty string or array.")
        dimensions = body.get("dimensions") or self.embedding_dim
        data: list[dict[str, Any]] = []
        for index, text in enumerate(inputs):
            vector: Any = embedding_for(text, dimensions)
            if body.get("encoding_format") == "base64":  # little-endian float32, as OpenAI sends it
                vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": vector})
        tokens = sum(map(word_count, inputs))
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return JSONResponse({"object": "list", "data": data, "model": self._model(body), "usage": usage})
