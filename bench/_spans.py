"""Span generation for ``bench/ingest.py``: LLM-shaped ``ReadableSpan`` batches and fresh request bodies.

Not a benchmark itself. ``bench/ingest.py`` imports it as ``_spans`` (like ``_common``); it runs in
every sender process, and in the driver for the in-process references.
"""

from __future__ import annotations

import json
import os
import random
import time
from typing import TYPE_CHECKING, Any

import _common as common

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

SPANS_PER_TRACE = 4
MODELS = (
    ("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
    ("openai", "gpt-4o", "gpt-4o-2024-08-06"),
    ("anthropic", "claude-sonnet-4", "claude-sonnet-4-20250514"),
    ("gcp.gemini", "gemini-2.0-flash", "gemini-2.0-flash"),
)
_WORDS = (
    "the model should answer using the retrieved context only and cite each source it used when the",
    "customer asks about refunds shipping delays invoices or account security explain the policy",
    "step by step keep the tone friendly and concise never invent order numbers",
)

_VOCABULARY = tuple(" ".join(_WORDS).split(" "))


# --- span generation (runs in every sender process) --------------------------------------------------


def _text(rng: random.Random, chars: int) -> str:
    return common.filler_text(rng, chars, _VOCABULARY)


def attribute_pool(rng: random.Random, size: int = 256) -> list[dict[str, Any]]:
    """Span attribute dicts (shared between spans: the exporter only reads them)."""
    from loopwise import semconv as sc

    pool = []
    for i in range(size):
        provider, request_model, response_model = MODELS[i % len(MODELS)]
        # ~2 KB each once JSON-encoded: the message envelope plus ~1,950 characters of text.
        prompt = json.dumps([{"role": "user", "parts": [{"type": "text", "content": _text(rng, 1950)}]}])
        completion = json.dumps(
            [
                {
                    "role": "assistant",
                    "parts": [{"type": "text", "content": _text(rng, 1930)}],
                    "finish_reason": "stop",
                }
            ]
        )
        pool.append(
            {
                sc.GEN_AI_OPERATION_NAME: "chat",
                sc.GEN_AI_PROVIDER_NAME: provider,
                sc.GEN_AI_REQUEST_MODEL: request_model,
                sc.GEN_AI_RESPONSE_MODEL: response_model,
                sc.GEN_AI_USAGE_INPUT_TOKENS: rng.randint(300, 700),
                sc.GEN_AI_USAGE_OUTPUT_TOKENS: rng.randint(200, 600),
                sc.GEN_AI_INPUT_MESSAGES: prompt,
                sc.GEN_AI_OUTPUT_MESSAGES: completion,
                sc.LOOPWISE_USER_ID: f"user-{rng.randrange(500):04d}",
                sc.LOOPWISE_SESSION_ID: f"session-{rng.randrange(5000):05d}",
            }
        )
    return pool


def make_batches(rng: random.Random, n_batches: int, batch_size: int, label: str) -> list[list[ReadableSpan]]:
    """``n_batches`` lists of ``batch_size`` distinct LLM spans, 4 spans per trace, random ids.

    Built directly as ``ReadableSpan`` (what the SDK hands to exporters) instead of through a
    tracer, which would cost ~40 us/span of sender CPU before the timed phase even starts.
    """
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

    resource = Resource({"service.name": "bench-ingest", "service.instance.id": label})
    scope = InstrumentationScope("loopwise.bench.ingest", "0.1.0")
    pool = attribute_pool(rng)
    ok, error = Status(StatusCode.UNSET), Status(StatusCode.ERROR, "upstream rate limit")
    flags = TraceFlags(TraceFlags.SAMPLED)
    bits, rand = rng.getrandbits, rng.random
    now = time.time_ns()
    spans: list[ReadableSpan] = []
    total = n_batches * batch_size
    while len(spans) < total:
        trace_id = bits(128) | 1  # never zero
        attrs = pool[bits(8)]
        start = now - int(rand() * 5e9)
        root = SpanContext(trace_id, bits(64) | 1, False, flags)
        for i in range(SPANS_PER_TRACE):
            ctx = root if i == 0 else SpanContext(trace_id, bits(64) | 1, False, flags)
            begin = start + i * 10_000_000
            spans.append(
                ReadableSpan(
                    name=f"chat {attrs['gen_ai.request.model']}",
                    context=ctx,
                    parent=None if i == 0 else root,
                    resource=resource,
                    attributes=attrs,
                    kind=SpanKind.CLIENT,
                    status=error if rand() < 0.02 else ok,
                    start_time=begin,
                    end_time=begin + 300_000_000 + int(rand() * 2.7e9),
                    instrumentation_scope=scope,
                )
            )
    del spans[total:]
    return [spans[i : i + batch_size] for i in range(0, total, batch_size)]


# --- pre-encoded bodies (the reference phase) --------------------------------------------------------


def id_offsets(body: bytes, batch: list[ReadableSpan]) -> list[tuple[int, list[int]]]:
    """Where each trace and span id of ``batch`` sits in its encoded ``body`` (parent ids included)."""
    ids: dict[bytes, int] = {}
    for span in batch:
        ctx = span.context
        assert ctx is not None
        ids[ctx.trace_id.to_bytes(16, "big")] = 16
        ids[ctx.span_id.to_bytes(8, "big")] = 8
    out = []
    for raw, size in ids.items():
        offsets, at = [], body.find(raw)
        while at >= 0:
            offsets.append(at)
            at = body.find(raw, at + size)
        out.append((size, offsets))
    return out


def fresh_body(template: bytes, offsets: list[tuple[int, list[int]]]) -> bytes:
    """``template`` with every trace and span id replaced by a new random one (consistently)."""
    buf = bytearray(template)
    fresh = os.urandom(sum(size for size, _ in offsets))
    pos = 0
    for size, places in offsets:
        new = fresh[pos : pos + size]
        pos += size
        for at in places:
            buf[at : at + size] = new
    return bytes(buf)
