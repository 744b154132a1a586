"""Tracing for the official OpenAI Python client: sync and async, streaming included.

:func:`instrument` patches the client's classes once for the whole process, so every client
(``OpenAI``, ``AsyncOpenAI``, ``AzureOpenAI``, or any of them pointed at an OpenAI-compatible
``base_url`` such as vLLM, Ollama or Loopwise's own worker) is traced. Each call of
``chat.completions.create`` (and ``.parse``), the legacy ``completions.create`` and
``embeddings.create`` becomes a span under the span that is current at the call, named
``openai.chat``, ``openai.completions`` or ``openai.embeddings``, carrying the GenAI
conventions' model, provider (``openai``), request parameters, messages, finish reasons and
token usage (cached input and reasoning tokens included), plus ``server.address`` and
``server.port`` from the client's ``base_url``.

Streams (``stream=True``) come back wrapped: they iterate, close and work as (async) context
managers exactly like the client's ``Stream``/``AsyncStream`` (``isinstance`` included), and
the span ends when the stream is exhausted, fails, is closed or is garbage-collected. It
records the time to the first chunk and the output assembled from the deltas. OpenAI reports
a stream's token usage only when asked: pass ``stream_options={"include_usage": True}`` to get
tokens (and the collector's cost) on streamed spans. Loopwise never adds it for you, since it
changes the chunks your code receives.

Calls made through ``with_raw_response`` / ``with_streaming_response`` are traced with their
request side only, and their span ends when the response headers arrive. Under the
``chat.completions.stream()`` helper, the span ends when the stream is read to the end (or
dropped), since the helper closes the HTTP response directly.

The wrappers never raise on their own account: a fault of Loopwise's is logged on the
``loopwise`` logger and the call goes on untraced. The client's own exceptions (for example
``openai.APIStatusError``) are recorded on the span and re-raised unchanged.

Example:
    >>> import loopwise
    >>> import loopwise.integrations.openai as lw_openai
    >>> from openai import OpenAI
    >>> loopwise.configure(endpoint="http://127.0.0.1:4318", api_key="lw_...")  # doctest: +SKIP
    >>> lw_openai.instrument()
    >>> @loopwise.observe
    ... def ask(client: OpenAI, question: str) -> str:
    ...     reply = client.chat.completions.create(
    ...         model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
    ...     )  # traced as an "openai.chat" child span of "ask"
    ...     return reply.choices[0].message.content or ""
    >>> ask(OpenAI(), "Capital of France?")  # doctest: +SKIP
    'Paris.'
    >>> lw_openai.uninstrument()
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from openai import AsyncStream, NotGiven, Omit, Stream
from openai.resources import completions as _completions
from openai.resources import embeddings as _embeddings
from openai.resources.chat import completions as _chat
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion
from opentelemetry import context as otel_context
from opentelemetry import trace

from loopwise import semconv as sc
from loopwise._content import snapshot, to_genai_messages
from loopwise._export._encode import Messages
from loopwise._observe import content_of, record_error, start_observation
from loopwise._runtime import RUNTIME
from loopwise._span_api import set_llm_attributes

__all__ = ["instrument", "uninstrument"]

logger = logging.getLogger("loopwise")

_WHERE = "loopwise.integrations.openai"
_PROVIDER = "openai"
# Stream chunks kept (by reference) for the assembled output; past this only the count goes on.
_MAX_CHUNKS = 10_000
# kind -> (span name, gen_ai.operation.name, loopwise span type)
_KINDS: dict[str, tuple[str, str, str]] = {
    "chat": ("openai.chat", "chat", "llm"),
    "completions": ("openai.completions", "text_completion", "llm"),
    "embeddings": ("openai.embeddings", "embeddings", "embedding"),
}
# Set in the context around a traced call, so a client method that calls another traced one
# (a helper built on create) yields one span, not two.
_INSIDE = otel_context.create_key("loopwise-openai-call")

_LOCK = threading.Lock()
# (class, method name) -> our wrapper, for uninstrument() to recognise what it installed.
_PATCHED: dict[tuple[type, str], Callable[..., Any]] = {}


def _targets() -> list[tuple[type, str, str, bool]]:
    """(class, method, kind, is_async) for every client method this module traces."""
    targets = [
        (_chat.Completions, "create", "chat", False),
        (_chat.AsyncCompletions, "create", "chat", True),
        (_completions.Completions, "create", "completions", False),
        (_completions.AsyncCompletions, "create", "completions", True),
        (_embeddings.Embeddings, "create", "embeddings", False),
        (_embeddings.AsyncEmbeddings, "create", "embeddings", True),
    ]
    for cls, is_async in ((_chat.Completions, False), (_chat.AsyncCompletions, True)):
        if "parse" in vars(cls):  # structured outputs (older clients: under client.beta, untraced)
            targets.append((cls, "parse", "chat", is_async))
    return targets


def instrument() -> None:
    """Trace every OpenAI client in this process; calling it again changes nothing.

    Patches ``create`` of chat completions, legacy completions and embeddings (and chat
    completions' ``parse``), sync and async. Spans go wherever :func:`loopwise.configure` sends
    them; while tracing is disabled the patched methods just call through.

    Example:
        >>> from openai.resources.chat.completions import Completions
        >>> from loopwise.integrations.openai import instrument, uninstrument
        >>> original = Completions.create
        >>> instrument()
        >>> instrument()  # idempotent: still one layer of tracing
        >>> Completions.create is not original and Completions.create.__wrapped__ is original
        True
        >>> uninstrument()
    """
    with _LOCK:
        for cls, name, kind, is_async in _targets():
            try:
                current = vars(cls).get(name)
                # Ours, or someone's wrapper around ours (functools.wraps copies the marker).
                if current is None or getattr(current, "_loopwise_original", None) is not None:
                    continue
                wrapper = (_wrap_async if is_async else _wrap_sync)(current, kind)
                setattr(cls, name, wrapper)
                _PATCHED[(cls, name)] = wrapper
            except Exception:
                logger.exception("%s: could not patch %s.%s; it runs untraced", _WHERE, cls.__qualname__, name)


def uninstrument() -> None:
    """Put back the client methods :func:`instrument` replaced.

    A method that another library wrapped again after Loopwise is left as it is (with a
    warning), since removing the layer underneath would drop theirs too.

    Example:
        >>> import openai
        >>> from loopwise.integrations.openai import instrument, uninstrument
        >>> original = openai.resources.embeddings.Embeddings.create
        >>> instrument()
        >>> uninstrument()
        >>> openai.resources.embeddings.Embeddings.create is original
        True
    """
    with _LOCK:
        for (cls, name), wrapper in list(_PATCHED.items()):
            try:
                if vars(cls).get(name) is wrapper:
                    setattr(cls, name, getattr(wrapper, "_loopwise_original"))  # noqa: B009 - set by _mark
                else:
                    logger.warning(
                        "%s: %s.%s was wrapped again after Loopwise; left as it is", _WHERE, cls.__qualname__, name
                    )
                del _PATCHED[(cls, name)]
            except Exception:
                logger.exception("%s: could not restore %s.%s", _WHERE, cls.__qualname__, name)


def _mark(wrapper: Callable[..., Any], original: Callable[..., Any]) -> Callable[..., Any]:
    functools.update_wrapper(wrapper, original)
    wrapper._loopwise_original = original  # type: ignore[attr-defined]
    return wrapper


def _wrap_sync(original: Callable[..., Any], kind: str) -> Callable[..., Any]:
    def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = None if otel_context.get_value(_INSIDE) else _Call.begin(self, kind, kwargs)
        if call is None:
            return original(self, *args, **kwargs)
        token = call.attach()
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            otel_context.detach(token)  # logs, never raises
            call.end(exc)
            raise
        otel_context.detach(token)  # logs, never raises
        return call.finish(result)

    return _mark(traced, original)


def _wrap_async(original: Callable[..., Any], kind: str) -> Callable[..., Any]:
    async def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = None if otel_context.get_value(_INSIDE) else _Call.begin(self, kind, kwargs)
        if call is None:
            return await original(self, *args, **kwargs)
        token = call.attach()
        try:
            result = await original(self, *args, **kwargs)
        except BaseException as exc:
            otel_context.detach(token)  # logs, never raises
            call.end(exc)
            raise
        otel_context.detach(token)  # logs, never raises
        return call.finish(result)

    return _mark(traced, original)


def _given(value: Any) -> Any:
    return None if value is None or isinstance(value, NotGiven | Omit) else value


def _server_attributes(resource: Any) -> dict[str, Any]:
    try:
        url = resource._client.base_url
        host = url.host
        if not host:
            return {}
        return {sc.SERVER_ADDRESS: host, sc.SERVER_PORT: url.port or (443 if url.scheme == "https" else 80)}
    except Exception:  # a client that is not shaped like OpenAI's: skip the server
        return {}


def _usage(usage: Any) -> dict[str, Any]:
    if usage is None:
        return {}
    return {
        "input_tokens": getattr(usage, "prompt_tokens", None),
        "output_tokens": getattr(usage, "completion_tokens", None),
        "cached_input_tokens": getattr(getattr(usage, "prompt_tokens_details", None), "cached_tokens", None),
        "reasoning_tokens": getattr(getattr(usage, "completion_tokens_details", None), "reasoning_tokens", None),
    }


class _Lazy(Messages):
    """Messages built from the caller's or the client's objects on the export thread, not the app's."""

    __slots__ = ("build",)

    def __init__(self, build: Callable[[Any], Any], source: Any, output: bool = False) -> None:
        self.messages = source
        self.output = output
        self.build = build

    def resolve(self) -> Any:
        return to_genai_messages(self.build(self.messages), self.output)


def _input_messages(messages: list[Any]) -> list[Any]:
    # Messages may be the client's own objects, e.g. a previous reply's message sent back.
    return [m.model_dump(mode="json", exclude_none=True) if hasattr(m, "model_dump") else m for m in messages]


def _prompt_messages(prompt: Any) -> Any:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": "user", "content": p} for p in prompt]


def _tool_call(call: Any) -> dict[str, Any]:
    fn = getattr(call, "function", None) or getattr(call, "custom", None)  # custom tools carry `input`
    arguments = getattr(fn, "arguments", None)
    if arguments is None:
        arguments = getattr(fn, "input", None)
    return {"id": getattr(call, "id", None), "function": {"name": getattr(fn, "name", None), "arguments": arguments}}


def _response_output(response: Any) -> list[Any]:
    out: list[Any] = []
    for choice in getattr(response, "choices", None) or ():
        message = getattr(choice, "message", None)
        if message is None:  # a legacy completion
            out.append({"role": "assistant", "content": choice.text, "finish_reason": choice.finish_reason})
            continue
        content = message.content if message.content is not None else getattr(message, "refusal", None)
        entry: dict[str, Any] = {"role": message.role or "assistant", "content": content}
        entry["finish_reason"] = choice.finish_reason
        calls = [_tool_call(c) for c in message.tool_calls or ()]
        function_call = getattr(message, "function_call", None)  # the deprecated `functions` API
        if function_call is not None:
            calls.append({"id": None, "function": {"name": function_call.name, "arguments": function_call.arguments}})
        if calls:
            entry["tool_calls"] = calls
        out.append(entry)
    return out


def _stream_output(chunks: list[Any]) -> list[Any]:
    """One message per choice, assembled from the deltas of the kept chunks."""
    choices: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for choice in getattr(chunk, "choices", None) or ():
            m = choices.get(choice.index)
            if m is None:
                m = choices[choice.index] = {"role": "assistant", "text": [], "calls": {}, "finish_reason": None}
            if choice.finish_reason:
                m["finish_reason"] = choice.finish_reason
            delta = getattr(choice, "delta", None)
            if delta is None:  # a legacy completion chunk
                if choice.text:
                    m["text"].append(choice.text)
                continue
            if delta.role:
                m["role"] = delta.role
            text = delta.content if delta.content is not None else getattr(delta, "refusal", None)
            if text:
                m["text"].append(text)
            for tc in delta.tool_calls or ():
                call = m["calls"].setdefault(tc.index, {"id": None, "function": {"name": "", "arguments": ""}})
                call["id"] = tc.id or call["id"]
                if tc.function is not None:
                    call["function"]["name"] += tc.function.name or ""
                    call["function"]["arguments"] += tc.function.arguments or ""
    out: list[Any] = []
    for _, m in sorted(choices.items()):
        entry: dict[str, Any] = {"role": m["role"], "content": "".join(m["text"]) or None}
        if m["calls"]:
            entry["tool_calls"] = [m["calls"][i] for i in sorted(m["calls"])]
        entry["finish_reason"] = m["finish_reason"]
        out.append(entry)
    return out


class _Call:
    """One traced client call: its span, and for a stream what the chunks said so far."""

    __slots__ = ("capture", "chunks", "count", "dropped", "ended", "model", "reasons", "response_id", "span",
                 "span_type", "start_ns", "streaming", "usage")  # fmt: skip

    def __init__(self, span: trace.Span, span_type: str, capture: bool) -> None:
        self.span = span
        self.span_type = span_type
        self.capture = capture
        self.start_ns = time.perf_counter_ns()
        self.streaming = False
        self.ended = False
        self.count = 0
        self.dropped = 0
        self.chunks: list[Any] = []
        self.model: str | None = None
        self.response_id: str | None = None
        self.reasons: dict[int, str] = {}
        self.usage: Any = None

    @classmethod
    def begin(cls, resource: Any, kind: str, kwargs: dict[str, Any]) -> _Call | None:
        """Start the span and record the request; ``None`` (call untraced) when off or on a fault."""
        try:
            span_name, operation, span_type = _KINDS[kind]
            span = start_observation(span_name, span_type, _server_attributes(resource))
            if span is None:
                return None
            call = cls(span, span_type, RUNTIME.config.capture_content)
            params: dict[str, Any] = {}
            if kind != "embeddings":
                params = {
                    "temperature": _given(kwargs.get("temperature")),
                    "top_p": _given(kwargs.get("top_p")),
                    "max_tokens": _given(kwargs.get("max_completion_tokens")) or _given(kwargs.get("max_tokens")),
                }
            messages: Messages | None = None
            if call.capture:
                if kind == "chat":
                    given = kwargs.get("messages")
                    if type(given) is list or type(given) is tuple:  # never consume the caller's iterator
                        messages = _Lazy(_input_messages, snapshot(given))
                elif kind == "completions":
                    prompt = kwargs.get("prompt")
                    if isinstance(prompt, str) or (type(prompt) is list and prompt and type(prompt[0]) is str):
                        messages = _Lazy(_prompt_messages, snapshot(prompt))
                    elif _given(prompt) is not None:  # token ids
                        content_of(span)[sc.LOOPWISE_INPUT] = snapshot(prompt)
                elif _given(kwargs.get("input")) is not None:
                    content_of(span)[sc.LOOPWISE_INPUT] = snapshot(kwargs["input"])
            call.record(
                model=_given(kwargs.get("model")),
                provider=_PROVIDER,
                operation=operation,
                input_messages=messages,
                parameters=params,
            )
            return call
        except Exception:
            logger.exception("%s: could not start a span; the call runs untraced", _WHERE)
            return None

    def record(self, **values: Any) -> None:
        set_llm_attributes(self.span, span_type=self.span_type, where=_WHERE, **values)

    def attach(self) -> Any:
        """Make the span current (and mark the context as inside a traced call) for the request."""
        return otel_context.attach(otel_context.set_value(_INSIDE, True, trace.set_span_in_context(self.span)))

    def finish(self, result: Any) -> Any:
        """What the traced method returns: ``result``, or for a stream, ``result`` observed."""
        try:
            if isinstance(result, Stream):
                self.streaming = True
                return _TracedStream(result, self)
            if isinstance(result, AsyncStream):
                self.streaming = True
                return _TracedAsyncStream(result, self)
            if isinstance(result, ChatCompletion | Completion):
                capture = self.capture and bool(result.choices)
                self.record(
                    response_model=result.model,
                    response_id=result.id,
                    finish_reasons=[c.finish_reason for c in result.choices if c.finish_reason],
                    output_messages=_Lazy(_response_output, result, output=True) if capture else None,
                    **_usage(result.usage),
                )
            elif isinstance(result, CreateEmbeddingResponse):
                self.record(
                    response_model=result.model,
                    input_tokens=getattr(result.usage, "prompt_tokens", None),
                )
            # Anything else is a raw response (with_raw_response): the request side is all we have.
        except Exception:
            logger.exception("%s: could not record the response", _WHERE)
        self.end()
        return result

    def add(self, chunk: Any) -> None:
        """Note one stream chunk; the app's thread keeps a reference, the export thread assembles."""
        if self.ended:
            return
        try:
            if not self.count:
                ttfc = (time.perf_counter_ns() - self.start_ns) / 1e6
                self.span.set_attribute(sc.LOOPWISE_TIME_TO_FIRST_CHUNK_MS, ttfc)
            self.count += 1
            if not self.model:
                self.model = getattr(chunk, "model", None)
            if not self.response_id:
                self.response_id = getattr(chunk, "id", None)
            for choice in getattr(chunk, "choices", None) or ():  # compatible servers send odd chunks
                if choice.finish_reason:
                    self.reasons[choice.index] = choice.finish_reason
            usage = getattr(chunk, "usage", None)
            if usage is not None:  # the last chunk with include_usage; some servers send it on each
                self.usage = usage
            if self.capture:
                if len(self.chunks) < _MAX_CHUNKS:
                    self.chunks.append(chunk)
                else:
                    self.dropped += 1
        except Exception:
            logger.exception("%s: could not record a stream chunk", _WHERE)

    def end(self, exc: BaseException | None = None) -> None:
        """End the span once: record ``exc`` and, for a stream, what its chunks said."""
        if self.ended:
            return
        self.ended = True
        span = self.span
        try:
            if exc is not None:
                record_error(span, exc)
            if self.streaming:
                span.set_attribute(sc.LOOPWISE_STREAM_CHUNKS, self.count)
                if self.dropped:
                    span.set_attribute(sc.LOOPWISE_TRUNCATED, True)
                self.record(
                    response_model=self.model,
                    response_id=self.response_id,
                    finish_reasons=[r for _, r in sorted(self.reasons.items())],
                    output_messages=_Lazy(_stream_output, self.chunks, output=True) if self.chunks else None,
                    **_usage(self.usage),
                )
        except Exception:
            logger.exception("%s: could not record the stream", _WHERE)
        try:
            span.end()
        except Exception:
            logger.exception("%s: could not end a span", _WHERE)


class _Proxy:
    """A client stream, observed: chunks pass through unchanged, everything else is forwarded.

    Iteration, ``close()``, ``with`` and any other attribute (``response``, ...) behave as on
    the wrapped stream, and ``isinstance(s, openai.Stream)`` holds, as with a transparent proxy.
    """

    __slots__ = ("__weakref__", "_lw_call", "_lw_stream")

    def __init__(self, stream: Any, call: _Call) -> None:
        self._lw_stream = stream
        self._lw_call = call

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # isinstance() consults it
        return type(self._lw_stream)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_lw_"):  # not set yet (a failed __init__): no recursion
            raise AttributeError(name)
        return getattr(self._lw_stream, name)

    def __del__(self) -> None:
        # Dropped before it was read to the end or closed: the span ends with what it saw.
        call = getattr(self, "_lw_call", None)  # None on a half-built wrapper
        if call is not None:
            call.end()


class _TracedStream(_Proxy):
    __slots__ = ()

    def __iter__(self) -> _TracedStream:
        return self

    def __next__(self) -> Any:
        try:
            chunk = next(self._lw_stream)
        except StopIteration:
            self._lw_call.end()
            raise
        except BaseException as exc:
            self._lw_call.end(exc)
            raise
        self._lw_call.add(chunk)
        return chunk

    def __enter__(self) -> _TracedStream:
        self._lw_stream.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            self._lw_stream.__exit__(*exc_info)
        finally:
            self._lw_call.end()

    def close(self) -> None:
        """Close the response, as ``Stream.close`` does, and end the span."""
        try:
            self._lw_stream.close()
        finally:
            self._lw_call.end()


class _TracedAsyncStream(_Proxy):
    __slots__ = ()

    def __aiter__(self) -> _TracedAsyncStream:
        return self

    async def __anext__(self) -> Any:
        try:
            chunk = await self._lw_stream.__anext__()
        except StopAsyncIteration:
            self._lw_call.end()
            raise
        except BaseException as exc:
            self._lw_call.end(exc)
            raise
        self._lw_call.add(chunk)
        return chunk

    async def __aenter__(self) -> _TracedAsyncStream:
        await self._lw_stream.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            await self._lw_stream.__aexit__(*exc_info)
        finally:
            self._lw_call.end()

    async def close(self) -> None:
        """Close the response, as ``AsyncStream.close`` does, and end the span."""
        try:
            await self._lw_stream.close()
        finally:
            self._lw_call.end()
