"""Read-side shapes the store returns: frozen dataclasses, turned into pydantic only at the HTTP edge."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field

from loopwise_collector.errors import InvalidQueryError


@dataclass(frozen=True, slots=True)
class Project:
    """A tenant: every row carries its ``project_id``.

    Example:
        >>> Project("demo", "Demo", 30).retention_days
        30
    """

    project_id: str
    name: str
    retention_days: int


@dataclass(frozen=True, slots=True)
class TraceCursor:
    """Keyset position in the newest-first trace list: (start time, trace id) of the last row seen.

    Example:
        >>> c = TraceCursor(1_700_000_000_000_000_000, "ab" * 16)
        >>> TraceCursor.decode(c.encode()) == c
        True
    """

    start_time_ns: int
    trace_id: str

    def encode(self) -> str:
        """Opaque, URL-safe token."""
        raw = json.dumps([self.start_time_ns, self.trace_id], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> TraceCursor:
        """Parse a token from ``encode``; anything else is an :class:`InvalidQueryError`."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            ts, trace_id = json.loads(raw)
            if not isinstance(ts, int) or not isinstance(trace_id, str) or len(trace_id) != 32:
                raise ValueError
            int(trace_id, 16)
        except (ValueError, TypeError, binascii.Error, json.JSONDecodeError) as exc:
            raise InvalidQueryError("cursor is not a token returned by this API") from exc
        return cls(ts, trace_id)


@dataclass(frozen=True, slots=True)
class TraceFilter:
    """Filters for the trace list; a trace matches when any of its spans matches each filter.

    ``q`` is a case-insensitive substring of any span's name, input or output. ``score_name`` keeps
    traces with a valued score of that name, and ``score_min`` / ``score_max`` bound the trace's mean
    of it (inclusive).

    Example:
        >>> TraceFilter(model="gpt-4o", limit=20).limit
        20
        >>> TraceFilter(q="refund", score_name="faithfulness", score_max=0.5).score_max
        0.5
    """

    from_ns: int | None = None
    to_ns: int | None = None
    name: str | None = None
    model: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    tag: str | None = None
    variant: str | None = None
    has_error: bool | None = None
    q: str | None = None
    score_name: str | None = None
    score_min: float | None = None
    score_max: float | None = None
    limit: int = 50
    cursor: TraceCursor | None = None


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """One row of the trace list: the trace's root name, timing, totals and scores."""

    trace_id: str
    name: str
    start_time_ns: int
    end_time_ns: int
    span_count: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    unpriced_span_count: int
    has_error: bool
    user_id: str
    session_id: str
    tags: tuple[str, ...]
    variants: tuple[str, ...]
    models: tuple[str, ...]
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def duration_ms(self) -> float:
        """Wall time from the first span's start to the last span's end."""
        return (self.end_time_ns - self.start_time_ns) / 1e6


@dataclass(frozen=True, slots=True)
class TracePage:
    """A page of traces and the cursor for the next one (``None`` at the end)."""

    traces: list[TraceSummary]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class MetricsRow:
    """Aggregates over the spans of one group (or all spans when ungrouped)."""

    group: str
    span_count: int
    trace_count: int
    error_count: int
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    unpriced_span_count: int

    @property
    def error_rate(self) -> float:
        """Errors over spans, 0 when there are no spans."""
        return self.error_count / self.span_count if self.span_count else 0.0
