"""``/api/v1/metrics/summary``: counts, error rate, latency percentiles, tokens and cost."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from loopwise_collector.api.deps import Scoped
from loopwise_collector.api.schemas import MetricsOut, MetricsSummary
from loopwise_collector.api.traces import to_ns
from loopwise_collector.errors import InvalidQueryError

router = APIRouter(prefix="/api/v1", tags=["metrics"])


@router.get("/metrics/summary", response_model=MetricsSummary, summary="Aggregate span metrics")
async def metrics_summary(
    store: Scoped,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
    group_by: Literal["model", "name", "variant", "day", "hour"] | None = None,
) -> MetricsSummary:
    lo, hi = to_ns(from_), to_ns(to)
    if lo is not None and hi is not None and lo > hi:
        raise InvalidQueryError("'from' must not be after 'to'")
    rows = await run_in_threadpool(lambda: store.metrics_summary(from_ns=lo, to_ns=hi, group_by=group_by))
    return MetricsSummary(group_by=group_by, data=[MetricsOut.of(r, group_by is not None) for r in rows])
