"""Setting values on the current span: generic ones, and those of an LLM call.

These act on whatever span is current (one of ``@observe``'s, an integration's, or the app's
own) and do nothing outside a recording span. Messages and other content are snapshotted here
and serialised on the export thread, like ``@observe``'s inputs and outputs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace

from loopwise import semconv as sc
from loopwise._content import snapshot
from loopwise._context import metadata_attributes
from loopwise._export._encode import Messages
from loopwise._observe import content_of

logger = logging.getLogger("loopwise")

_UNSET: Any = object()


def _trace_id_hex(span: trace.Span) -> str | None:
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def _span_id_hex(span: trace.Span) -> str | None:
    ctx = span.get_span_context()
    return format(ctx.span_id, "016x") if ctx.is_valid else None


def get_current_trace_id() -> str | None:
    """The current trace's id as 32 hex characters, or ``None`` outside a span.

    Example:
        >>> import loopwise
        >>> loopwise.get_current_trace_id() is None
        True
        >>> @loopwise.observe
        ... def handler():
        ...     return loopwise.get_current_trace_id()
        >>> len(handler())
        32
    """
    return _trace_id_hex(trace.get_current_span())


def get_current_span_id() -> str | None:
    """The current span's id as 16 hex characters, or ``None`` outside a span.

    Example:
        >>> import loopwise
        >>> loopwise.get_current_span_id() is None
        True
    """
    return _span_id_hex(trace.get_current_span())


def update_current_span(
    *,
    input: Any = _UNSET,
    output: Any = _UNSET,
    name: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> None:
    """Set the current span's input, output, name, metadata or raw attributes.

    An ``output`` given here wins over the function's return value.

    Example:
        >>> import loopwise
        >>> @loopwise.observe
        ... def answer(question: str) -> dict:
        ...     loopwise.update_current_span(output="42", metadata={"cache": "hit"})
        ...     return {"answer": 42, "debug": "..."}
        >>> answer("meaning of life?")["answer"]
        42
    """
    span = trace.get_current_span()
    if not span.is_recording():
        return
    try:
        content = content_of(span)
        if input is not _UNSET:
            content[sc.LOOPWISE_INPUT] = snapshot(input)
        if output is not _UNSET:
            content[sc.LOOPWISE_OUTPUT] = snapshot(output)
        if name:
            span.update_name(str(name))
        if metadata:
            span.set_attributes(metadata_attributes(metadata))
        if attributes:
            span.set_attributes(dict(attributes))
    except Exception:
        logger.exception("loopwise.update_current_span: values ignored")


def _count(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    return n if n >= 0 else None


def update_current_llm(
    *,
    model: str | None = None,
    provider: str | None = None,
    operation: str | None = None,
    response_model: str | None = None,
    input_messages: Sequence[Mapping[str, Any]] | None = None,
    output_messages: Sequence[Mapping[str, Any]] | None = None,
    system_instructions: str | Sequence[Any] | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    cached_input_tokens: int | None = None,
    reasoning_tokens: int | None = None,
    cost_usd: float | None = None,
    prompt_name: str | None = None,
    prompt_version: str | int | None = None,
    response_id: str | None = None,
    finish_reasons: Sequence[str] | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> None:
    """Describe the LLM call of the current span with the GenAI semantic conventions.

    Messages may be in OpenAI's ``{"role", "content"}`` shape or already in the conventions'
    ``{"role", "parts"}`` shape. Without ``cost_usd`` the collector prices the call from its
    price table. ``parameters`` takes ``temperature``, ``max_tokens`` and ``top_p``.

    Example:
        >>> import loopwise
        >>> @loopwise.observe(as_type="llm")
        ... def complete(prompt: str) -> str:
        ...     reply = "Paris."
        ...     loopwise.update_current_llm(
        ...         model="gpt-4o-mini", provider="openai",
        ...         input_messages=[{"role": "user", "content": prompt}],
        ...         output_messages=[{"role": "assistant", "content": reply}],
        ...         input_tokens=12, output_tokens=2, prompt_name="capitals", prompt_version=3,
        ...     )
        ...     return reply
        >>> complete("Capital of France?")
        'Paris.'
    """
    set_llm_attributes(
        trace.get_current_span(),
        model=model,
        provider=provider,
        operation=operation,
        response_model=response_model,
        input_messages=input_messages,
        output_messages=output_messages,
        system_instructions=system_instructions,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=cached_input_tokens,
        reasoning_tokens=reasoning_tokens,
        cost_usd=cost_usd,
        prompt_name=prompt_name,
        prompt_version=prompt_version,
        response_id=response_id,
        finish_reasons=finish_reasons,
        parameters=parameters,
    )


def set_llm_attributes(
    span: trace.Span,
    *,
    span_type: str = "llm",
    where: str = "loopwise.update_current_llm",
    model: str | None = None,
    provider: str | None = None,
    operation: str | None = None,
    response_model: str | None = None,
    input_messages: Sequence[Mapping[str, Any]] | Messages | None = None,
    output_messages: Sequence[Mapping[str, Any]] | Messages | None = None,
    system_instructions: str | Sequence[Any] | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    cached_input_tokens: int | None = None,
    reasoning_tokens: int | None = None,
    cost_usd: float | None = None,
    prompt_name: str | None = None,
    prompt_version: str | int | None = None,
    response_id: str | None = None,
    finish_reasons: Sequence[str] | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> None:
    """:func:`update_current_llm` for a given span; integrations call it on spans they do not make current.

    ``input_messages`` and ``output_messages`` may also be ready-made :class:`Messages` (an
    integration's subclass that builds them on the export thread). ``where`` names the caller in
    log lines; ``span_type`` is the ``loopwise.span.type`` to set (``"embedding"`` for embeddings).
    """
    if not span.is_recording():
        return
    try:
        attrs: dict[str, Any] = {}
        if operation or model or input_messages is not None:
            attrs[sc.GEN_AI_OPERATION_NAME] = operation or "chat"
        for key, value in (
            (sc.GEN_AI_REQUEST_MODEL, model),
            (sc.GEN_AI_PROVIDER_NAME, provider),
            (sc.GEN_AI_RESPONSE_MODEL, response_model),
            (sc.GEN_AI_RESPONSE_ID, response_id),
            (sc.LOOPWISE_PROMPT_NAME, prompt_name),
            (sc.LOOPWISE_PROMPT_VERSION, prompt_version),
        ):
            if value is not None:
                attrs[key] = str(value)
        for key, value in (
            (sc.GEN_AI_USAGE_INPUT_TOKENS, input_tokens),
            (sc.GEN_AI_USAGE_OUTPUT_TOKENS, output_tokens),
            (sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, cached_input_tokens),
            (sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, reasoning_tokens),
        ):
            n = _count(value)
            if n is not None:
                attrs[key] = n
            elif value is not None:
                logger.warning("%s: %s=%r is not a token count; ignored", where, key, value)
        if cost_usd is not None:
            attrs[sc.LOOPWISE_COST_USD] = float(cost_usd)
        if finish_reasons:
            attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = [str(r) for r in finish_reasons]
        for pname, key in (
            ("temperature", sc.GEN_AI_REQUEST_TEMPERATURE),
            ("max_tokens", sc.GEN_AI_REQUEST_MAX_TOKENS),
            ("top_p", sc.GEN_AI_REQUEST_TOP_P),
        ):
            if parameters and parameters.get(pname) is not None:
                attrs[key] = parameters[pname]
        # A span the caller already typed as something specific (an @observe(as_type="embedding")
        # that reports its model and tokens) keeps its type; a plain span becomes an LLM span.
        current = getattr(span, "attributes", None) or {}
        if current.get(sc.LOOPWISE_SPAN_TYPE) in (None, "span"):
            attrs[sc.LOOPWISE_SPAN_TYPE] = span_type
        span.set_attributes(attrs)
        content = content_of(span)
        if input_messages is not None:
            content[sc.GEN_AI_INPUT_MESSAGES] = (
                input_messages if isinstance(input_messages, Messages) else Messages(list(input_messages))
            )
        if output_messages is not None:
            content[sc.GEN_AI_OUTPUT_MESSAGES] = (
                output_messages
                if isinstance(output_messages, Messages)
                else Messages(list(output_messages), output=True)
            )
        if system_instructions is not None:
            content[sc.GEN_AI_SYSTEM_INSTRUCTIONS] = snapshot(system_instructions)
    except Exception:
        logger.exception("%s: values ignored", where)
