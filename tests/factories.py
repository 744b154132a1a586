"""Builders for realistic test data."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Any

from loopwise_collector.store import SpanRecord


def new_trace_id() -> str:
    return os.urandom(16).hex()


def new_span_id() -> str:
    return os.urandom(8).hex()


def llm_trace(
    project_id: str = "demo",
    *,
    start_ns: int | None = None,
    model: str = "gpt-4o",
    user_id: str = "",
    session_id: str = "",
    tags: tuple[str, ...] = (),
    variant: str = "",
    error: bool = False,
    name: str = "agent",
    retention_days: int = 30,
    **llm_fields: Any,
) -> list[SpanRecord]:
    """A root span and one LLM child: the smallest realistic trace."""
    start = start_ns if start_ns is not None else time.time_ns()
    trace_id = new_trace_id()
    root = SpanRecord(
        project_id=project_id, trace_id=trace_id, span_id=new_span_id(), name=name, start_time_ns=start,
        end_time_ns=start + 120_000_000, user_id=user_id, session_id=session_id, tags=tags, variant=variant,
        retention_days=retention_days, version=1,
    )  # fmt: skip
    child = SpanRecord(
        project_id=project_id, trace_id=trace_id, span_id=new_span_id(), parent_span_id=root.span_id,
        name=f"chat {model}", start_time_ns=start + 5_000_000, end_time_ns=start + 100_000_000,
        span_type="llm", operation="chat", provider="openai", request_model=model, input_tokens=100,
        output_tokens=20, input='[{"role":"user","content":"hi"}]', output='[{"role":"assistant","content":"yo"}]',
        status_code="error" if error else "ok", user_id=user_id, session_id=session_id, tags=tags,
        variant=variant, retention_days=retention_days, version=1, attributes={"http.status": "200"},
    )  # fmt: skip
    return [root, replace(child, **llm_fields)]
