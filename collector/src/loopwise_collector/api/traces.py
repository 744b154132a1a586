"""``/api/v1/traces``: the trace list with filters and cursor, and one trace's spans."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool

from loopwise_collector.api.deps import Scoped
from loopwise_collector.api.schemas import SpanOut, TraceDetail, TraceList, TraceOut
from loopwise_collector.errors import InvalidQueryError
from loopwise_collector.store import TraceCursor, TraceFilter

router = APIRouter(prefix="/api/v1", tags=["traces"])

TraceId = Annotated[str, Path(pattern=r"^[0-9a-fA-F]{32}$", description="32 hex digits")]


def to_ns(value: datetime | None) -> int | None:
    """An aware or naive (taken as UTC) datetime as nanoseconds since the epoch."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1_000_000) * 1000


@router.get("/traces", response_model=TraceList, summary="List traces, newest first")
async def list_traces(
    store: Scoped,
    from_: Annotated[datetime | None, Query(alias="from", description="ISO 8601 or Unix seconds")] = None,
    to: Annotated[datetime | None, Query(description="ISO 8601 or Unix seconds")] = None,
    name: Annotated[str | None, Query(max_length=500)] = None,
    model: Annotated[str | None, Query(max_length=500)] = None,
    user_id: Annotated[str | None, Query(max_length=500)] = None,
    session_id: Annotated[str | None, Query(max_length=500)] = None,
    tag: Annotated[str | None, Query(max_length=500)] = None,
    variant: Annotated[str | None, Query(max_length=500)] = None,
    has_error: bool | None = None,
    q: Annotated[str | None, Query(max_length=200, description="Substring of a span's name, input or output")] = None,
    score_name: Annotated[str | None, Query(max_length=200, description="Traces with a score of this name")] = None,
    score_min: Annotated[float | None, Query(allow_inf_nan=False, description="Mean score at least this")] = None,
    score_max: Annotated[float | None, Query(allow_inf_nan=False, description="Mean score at most this")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> TraceList:
    lo, hi = to_ns(from_), to_ns(to)
    if lo is not None and hi is not None and lo > hi:
        raise InvalidQueryError("'from' must not be after 'to'")
    f = TraceFilter(
        from_ns=lo, to_ns=hi, name=name, model=model, user_id=user_id, session_id=session_id, tag=tag,
        variant=variant, has_error=has_error, q=q or None, score_name=score_name, score_min=score_min,
        score_max=score_max, limit=limit,
        cursor=TraceCursor.decode(cursor) if cursor else None,
    )  # fmt: skip
    page = await run_in_threadpool(store.list_traces, f)
    return TraceList(data=[TraceOut.of(t) for t in page.traces], next_cursor=page.next_cursor)


@router.get(
    "/traces/{trace_id}",
    response_model=TraceDetail,
    summary="One trace with all its spans",
    responses={404: {"description": "No such trace in this project"}},
)
async def get_trace(store: Scoped, trace_id: TraceId) -> TraceDetail:
    trace_id = trace_id.lower()
    spans = await run_in_threadpool(store.get_trace, trace_id)
    return TraceDetail(
        trace_id=trace_id, spans=[SpanOut.of(s, _json_list(s.events), _json_list(s.links)) for s in spans]
    )


def _json_list(text: str) -> list[dict[str, Any]]:
    if not text:
        return []
    value = json.loads(text)
    return value if isinstance(value, list) else []
