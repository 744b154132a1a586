"""Ended spans to an OTLP/HTTP protobuf body, on the export thread.

This is where captured content becomes attributes: the snapshot the app's thread took is
serialised, redacted and truncated here, then the span is written in the OTLP wire format by
:mod:`loopwise._export._otlp`.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from loopwise import semconv as sc
from loopwise._config import Config
from loopwise._content import bind_arguments, finish_text, snapshot, to_genai_messages, to_text
from loopwise._export._otlp import encode_request

# Keys whose values are prompt or response text: redacted and truncated, or dropped entirely
# with capture_content=False, whichever instrumentation set them.
CONTENT_KEYS = frozenset(
    {
        sc.LOOPWISE_INPUT,
        sc.LOOPWISE_OUTPUT,
        sc.GEN_AI_INPUT_MESSAGES,
        sc.GEN_AI_OUTPUT_MESSAGES,
        sc.GEN_AI_SYSTEM_INSTRUCTIONS,
        sc.INPUT_VALUE,
        sc.OUTPUT_VALUE,
    }
)
CONTENT_PREFIXES = (
    sc.LEGACY_GEN_AI_PROMPT_PREFIX,
    sc.LEGACY_GEN_AI_COMPLETION_PREFIX,
    sc.LLM_INPUT_MESSAGES_PREFIX,
    sc.LLM_OUTPUT_MESSAGES_PREFIX,
)
# A gzip'd request stays well under the collector's 16 MiB limit on the decompressed body.
MAX_BODY_BYTES = 8 << 20


class Arguments:
    """A call's arguments, bound to parameter names on the export thread, not the app's."""

    __slots__ = ("args", "kwargs", "signature")

    def __init__(self, signature: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.signature = signature
        self.args = snapshot(args)
        self.kwargs = snapshot(kwargs) if kwargs else {}

    def resolve(self) -> Any:
        return bind_arguments(self.signature, self.args, self.kwargs)


class Messages:
    """Chat messages, converted to the GenAI ``parts`` shape on the export thread."""

    __slots__ = ("messages", "output")

    def __init__(self, messages: Any, output: bool = False) -> None:
        self.messages = snapshot(messages)
        self.output = output

    def resolve(self) -> Any:
        return to_genai_messages(self.messages, self.output)


def _content_text(value: Any, config: Config) -> tuple[str, bool]:
    if isinstance(value, Arguments | Messages):
        value = value.resolve()
    text = to_text(value, config.max_content_bytes)
    return finish_text(text, config.redact, config.max_content_bytes)


def finish_attributes(span: ReadableSpan, content: dict[str, Any] | None, config: Config) -> dict[str, Any]:
    """The attributes to export for ``span``: captured ``content`` added, redacted, truncated."""
    attrs: dict[str, Any] = dict(span.attributes or {})
    if not config.capture_content:
        for key in [k for k in attrs if k in CONTENT_KEYS or k.startswith(CONTENT_PREFIXES)]:
            del attrs[key]
        return attrs
    truncated = False
    # Text that other instrumentations put on the span gets the same redaction and limit.
    for key, value in attrs.items():
        if type(value) is str and (key in CONTENT_KEYS or key.startswith(CONTENT_PREFIXES)):
            attrs[key], cut = finish_text(value, config.redact, config.max_content_bytes)
            truncated |= cut
    if content:
        for key, value in content.items():
            text, cut = _content_text(value, config)
            attrs[key] = text
            truncated |= cut
    if truncated:
        attrs[sc.LOOPWISE_TRUNCATED] = True
    return attrs


def encode_batches(
    spans: Sequence[tuple[ReadableSpan, dict[str, Any] | None]], config: Config
) -> Iterator[tuple[int, bytes]]:
    """Gzipped OTLP bodies for ``(span, content)`` pairs: (span count, body), each under the cap."""
    pending = [[(s, finish_attributes(s, c, config)) for s, c in spans]]
    while pending:
        part = pending.pop()
        raw = encode_request(part)
        if len(raw) > MAX_BODY_BYTES and len(part) > 1:
            mid = len(part) // 2
            pending.extend((part[mid:], part[:mid]))  # first half popped first: order kept
            continue
        # Level 1: prompts compress well even so, and the export thread shares the GIL with the app.
        yield len(part), gzip.compress(raw, compresslevel=1)
