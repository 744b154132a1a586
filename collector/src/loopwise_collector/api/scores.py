"""``/api/v1/scores``: evaluator, API and human-feedback results."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from loopwise_collector.api.deps import CurrentProject, Scoped, State
from loopwise_collector.api.schemas import (
    ScoreIn,
    ScoreList,
    ScoreOut,
    ScoreStatsOut,
    ScoreSummaryOut,
    WorstScoreList,
    WorstScoreOut,
)
from loopwise_collector.api.traces import to_ns
from loopwise_collector.errors import InvalidQueryError, NotFoundError
from loopwise_collector.store import ScoreRecord

router = APIRouter(prefix="/api/v1", tags=["scores"])

Source = Literal["human", "api", "evaluator", "offline"]
From = Annotated[datetime | None, Query(alias="from", description="created_at at or after; ISO 8601 or Unix seconds")]
To = Annotated[datetime | None, Query(description="created_at at or before; ISO 8601 or Unix seconds")]


def _window(from_: datetime | None, to: datetime | None) -> tuple[int | None, int | None]:
    lo, hi = to_ns(from_), to_ns(to)
    if lo is not None and hi is not None and lo > hi:
        raise InvalidQueryError("'from' must not be after 'to'")
    return lo, hi


@router.post(
    "/scores",
    status_code=201,
    response_model=ScoreOut,
    summary="Record a score (human feedback: source='human')",
    responses={404: {"description": "No such trace in this project"}},
)
async def create_score(body: ScoreIn, state: State, project: CurrentProject, store: Scoped) -> ScoreOut:
    trace_id = body.trace_id.lower()
    if not await run_in_threadpool(store.trace_exists, trace_id):
        raise NotFoundError(f"trace {trace_id!r} not found; scores attach to traces already ingested")
    now = time.time_ns() // 1_000_000 * 1_000_000  # the column keeps milliseconds; answer what GET will
    record = ScoreRecord(
        project_id=project.project_id, score_id=body.id or uuid.uuid4().hex, trace_id=trace_id,
        name=body.name, source=body.source, span_id=(body.span_id or "").lower(), value=body.value,
        label=body.label, explanation=body.comment, evaluator_version=body.evaluator_version,
        metadata=body.metadata, created_at_ns=now, version=now,
    )  # fmt: skip
    await state.ingest.add_scores([record])
    return ScoreOut.of(record)


@router.get("/scores", response_model=ScoreList, summary="List scores, newest first")
async def list_scores(
    store: Scoped,
    trace_id: Annotated[str | None, Query(pattern=r"^[0-9a-fA-F]{32}$")] = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
    source: Literal["human", "api", "evaluator", "offline"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> ScoreList:
    rows = await run_in_threadpool(
        lambda: store.list_scores(
            trace_id=trace_id.lower() if trace_id else None,
            name=name,
            source=source,
            limit=limit,
            offset=offset,
        )
    )
    return ScoreList(data=[ScoreOut.of(r) for r in rows])


@router.get("/scores/summary", response_model=ScoreSummaryOut, summary="Score statistics per name and group")
async def score_summary(
    store: Scoped,
    from_: From = None,
    to: To = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
    source: Source | None = None,
    group_by: Literal["name", "model", "variant", "day", "hour"] = "name",
) -> ScoreSummaryOut:
    lo, hi = _window(from_, to)
    summary = await run_in_threadpool(
        lambda: store.score_summary(from_ns=lo, to_ns=hi, name=name, source=source, group_by=group_by)
    )
    grouped = group_by != "name"
    return ScoreSummaryOut(
        group_by=group_by,
        data=[ScoreStatsOut.of(r, summary.edges.get(r.name), grouped) for r in summary.rows],
    )


@router.get("/scores/worst", response_model=WorstScoreList, summary="The lowest-scoring traces for one score name")
async def worst_scores(
    store: Scoped,
    name: Annotated[str, Query(min_length=1, max_length=200)],
    from_: From = None,
    to: To = None,
    source: Source | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> WorstScoreList:
    lo, hi = _window(from_, to)
    rows = await run_in_threadpool(
        lambda: store.worst_scores(name=name, from_ns=lo, to_ns=hi, source=source, limit=limit)
    )
    return WorstScoreList(data=[WorstScoreOut.of(r) for r in rows])
