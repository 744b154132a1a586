"""``@observe``: a span around a function, coroutine, generator or async generator.

The app's thread pays for starting and ending one span and for a shallow snapshot of the
arguments and result; binding arguments to names, JSON, redaction and truncation happen on the
export thread. Any fault of ours is logged and the function runs as if undecorated. The app's
own exceptions are recorded on the span and re-raised unchanged.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, Literal, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from loopwise import semconv as sc
from loopwise._content import Elided, snapshot
from loopwise._export._encode import Arguments
from loopwise._runtime import CONTENT, RUNTIME

logger = logging.getLogger("loopwise")

SpanType = Literal["span", "llm", "tool", "retrieval", "embedding", "agent"]
SPAN_TYPES: frozenset[str] = frozenset({"span", "llm", "tool", "retrieval", "embedding", "agent"})
# Chunks kept to assemble a stream's output; past this only the count goes on.
_MAX_CHUNKS = 10_000

F = TypeVar("F", bound=Callable[..., Any])


def content_of(span: trace.Span) -> dict[str, Any]:
    """The captured-content slot of a live span; the processor takes it when the span ends.

    Keyed by span id because the SDK hands processors a copy of the span, not the span itself.
    """
    span_id = span.get_span_context().span_id
    content = CONTENT.get(span_id)
    if content is None:
        content = CONTENT[span_id] = {}
    return content


def start_observation(name: str, as_type: str, attributes: dict[str, Any] | None = None) -> trace.Span | None:
    """Start a span of Loopwise's ``as_type`` (not made current); ``None`` when tracing is off."""
    tracer = RUNTIME.active_tracer()
    if tracer is None:
        return None
    attrs = {sc.LOOPWISE_SPAN_TYPE: as_type}
    if attributes:
        attrs.update(attributes)
    return tracer.start_span(name, attributes=attrs)


def record_error(span: trace.Span, exc: BaseException) -> None:
    """Mark ``span`` failed with ``exc``; the caller re-raises ``exc`` itself."""
    try:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    except Exception:
        logger.exception("loopwise: could not record an exception on a span")


def _set_output(span: trace.Span, value: Any) -> None:
    content = content_of(span)
    if sc.LOOPWISE_OUTPUT not in content:  # update_current_span(output=...) inside the call wins
        content[sc.LOOPWISE_OUTPUT] = snapshot(value)


def _end(span: trace.Span, token: object | None) -> None:
    try:
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]
        span.end()
    except Exception:
        logger.exception("loopwise: could not end a span")


class _Chunks:
    """A stream's chunks, kept up to the content limit, for the assembled output."""

    __slots__ = ("budget", "count", "first_ns", "items", "start_ns")

    def __init__(self, budget: int) -> None:
        self.items: list[Any] = []
        self.count = 0
        self.budget = budget
        self.start_ns = time.perf_counter_ns()
        self.first_ns = 0

    def add(self, span: trace.Span, item: Any) -> None:
        if not self.count:
            self.first_ns = time.perf_counter_ns()
            span.set_attribute(sc.LOOPWISE_TIME_TO_FIRST_CHUNK_MS, (self.first_ns - self.start_ns) / 1e6)
        self.count += 1
        if self.budget > 0 and len(self.items) < _MAX_CHUNKS:
            self.items.append(snapshot(item))
            self.budget -= len(item) if type(item) is str else 64

    def finish(self, span: trace.Span, capture: bool) -> None:
        span.set_attribute(sc.LOOPWISE_STREAM_CHUNKS, self.count)
        if not capture:
            return
        items = self.items
        if self.count > len(items):
            items = [*items, Elided(self.count - len(items))]
        if items and all(type(i) is str for i in self.items):
            _set_output(span, "".join(self.items))
        else:
            _set_output(span, items)


@overload
def observe(func: F) -> F: ...
@overload
def observe(
    func: None = None,
    *,
    name: str | None = None,
    as_type: SpanType = "span",
    capture_input: bool = True,
    capture_output: bool = True,
) -> Callable[[F], F]: ...


def observe(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    as_type: str = "span",
    capture_input: bool = True,
    capture_output: bool = True,
) -> Any:
    """Trace each call of a function, coroutine, generator or async generator as a span.

    The span is named after the function unless ``name`` is given, and nests under the span
    that is current when the call starts. Arguments become ``loopwise.input`` and the result
    (for streams: the chunks, joined when they are strings) becomes ``loopwise.output``.

    Example:
        >>> import loopwise
        >>> @loopwise.observe(as_type="tool")
        ... def add(a: int, b: int) -> int:
        ...     return a + b
        >>> add(2, 3)
        5
        >>> @loopwise.observe
        ... def tokens(text: str):
        ...     yield from text.split()
        >>> list(tokens("time to first chunk"))
        ['time', 'to', 'first', 'chunk']
    """
    if as_type not in SPAN_TYPES:
        logger.error("loopwise.observe: as_type=%r is not one of %s; using 'span'", as_type, sorted(SPAN_TYPES))
        as_type = "span"

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        try:
            # Class.method reads well; test_x.<locals>.handler does not, so local functions keep their own name.
            span_name = name or (getattr(fn, "__qualname__", None) or repr(fn)).rsplit("<locals>.", 1)[-1]
            return _wrap(fn, span_name, as_type, capture_input, capture_output)
        except Exception:  # an object inspect cannot handle: leave it undecorated
            logger.exception("loopwise.observe: cannot decorate %r; it runs untraced", fn)
            return fn

    return decorate(func) if func is not None else decorate


def _wrap(fn: Callable[..., Any], span_name: str, as_type: str, cap_in: bool, cap_out: bool) -> Callable[..., Any]:
    signature: Any = None

    def begin(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[trace.Span, Any, bool] | None:
        nonlocal signature
        try:
            span = start_observation(span_name, as_type)
            if span is None:
                return None
            capture = RUNTIME.config.capture_content
            if cap_in and capture:
                if signature is None:
                    signature = inspect.signature(fn)
                content_of(span)[sc.LOOPWISE_INPUT] = Arguments(signature, args, kwargs)
            token = otel_context.attach(trace.set_span_in_context(span))
            return span, token, cap_out and capture
        except Exception:
            logger.exception("loopwise: could not start a span for %s", span_name)
            return None

    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def agen_wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
            started = begin(args, kwargs)
            if started is None:
                async for item in fn(*args, **kwargs):
                    yield item
                return
            span, token, capture = started
            otel_context.detach(token)  # re-attached around each step, in whatever context iterates
            ctx = trace.set_span_in_context(span)
            chunks = _Chunks(RUNTIME.config.max_content_bytes)
            agen = fn(*args, **kwargs)
            step: Callable[[Any], Any] = agen.asend
            arg: Any = None
            try:
                while True:
                    tok = otel_context.attach(ctx)
                    try:
                        item = await step(arg)
                    except StopAsyncIteration:
                        break
                    finally:
                        otel_context.detach(tok)
                    chunks.add(span, item)
                    try:
                        arg = yield item
                        step = agen.asend
                    except GeneratorExit:
                        await agen.aclose()
                        raise
                    except BaseException as exc:
                        step, arg = agen.athrow, exc
            except GeneratorExit:
                raise
            except BaseException as exc:
                record_error(span, exc)
                raise
            finally:
                chunks.finish(span, capture)
                _end(span, None)

        return agen_wrapper

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            started = begin(args, kwargs)
            if started is None:
                return (yield from fn(*args, **kwargs))
            span, token, capture = started
            otel_context.detach(token)
            ctx = trace.set_span_in_context(span)
            chunks = _Chunks(RUNTIME.config.max_content_bytes)
            gen = fn(*args, **kwargs)
            step: Callable[[Any], Any] = gen.send
            arg: Any = None
            try:
                while True:
                    tok = otel_context.attach(ctx)
                    try:
                        item = step(arg)
                    except StopIteration as stop:
                        return stop.value
                    finally:
                        otel_context.detach(tok)
                    chunks.add(span, item)
                    try:
                        arg = yield item
                        step = gen.send
                    except GeneratorExit:
                        gen.close()
                        raise
                    except BaseException as exc:
                        step, arg = gen.throw, exc
            except GeneratorExit:
                raise
            except BaseException as exc:
                record_error(span, exc)
                raise
            finally:
                chunks.finish(span, capture)
                _end(span, None)

        return gen_wrapper

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            started = begin(args, kwargs)
            if started is None:
                return await fn(*args, **kwargs)
            span, token, capture = started
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                record_error(span, exc)
                _end(span, token)
                raise
            if capture:
                _set_output(span, result)
            _end(span, token)
            return result

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = begin(args, kwargs)
        if started is None:
            return fn(*args, **kwargs)
        span, token, capture = started
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            record_error(span, exc)
            _end(span, token)
            raise
        if capture:
            _set_output(span, result)
        _end(span, token)
        return result

    return wrapper
