"""The evaluation runner's side of the API: claim spans under a lease, post scores and embeddings,
schedule and record drift checks; plus ``GET /api/v1/drift`` for everyone.

Runners authenticate with the project's key like any client, so a runner only ever sees its
project's spans. Inference happens in the runner process, never in the collector.
"""

from __future__ import annotations

import base64
import struct
import time
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from fastapi.concurrency import run_in_threadpool

from loopwise_collector.api.deps import CurrentProject, State
from loopwise_collector.api.evaluation_schemas import (
    Accepted,
    ClaimedSpanOut,
    ClaimIn,
    ClaimOut,
    DriftClaimIn,
    DriftClaimOut,
    DriftIn,
    DriftList,
    DriftOut,
    EmbeddingList,
    EmbeddingOut,
    EmbeddingsIn,
    FeedbackSummary,
    ReleaseIn,
    ResultsIn,
    RuleErrorIn,
    decode_vector,
)
from loopwise_collector.api.evaluators import Evaluations
from loopwise_collector.api.traces import to_ns
from loopwise_collector.errors import InvalidQueryError
from loopwise_collector.store import ScoreRecord
from loopwise_collector.store.evaluation import DriftRecord, EmbeddingRecord, score_id_for

router = APIRouter(prefix="/api/v1", tags=["evaluation"])


@router.post("/evaluation/claim", response_model=ClaimOut, summary="Lease spans a rule has not evaluated yet")
async def claim(body: ClaimIn, store: Evaluations) -> ClaimOut:
    rule = await run_in_threadpool(store.get_rule, body.rule_id)
    if not rule.enabled:
        return ClaimOut(lease_id="0" * 32, spans=[])
    lease_id, spans = await run_in_threadpool(
        lambda: store.claim(rule, body.evaluator_version, limit=body.limit, lease_s=body.lease_s, runner=body.runner)
    )
    return ClaimOut(lease_id=lease_id, spans=[ClaimedSpanOut.of(s) for s in spans])


@router.post("/evaluation/release", response_model=Accepted, summary="Give a lease back early")
async def release(body: ReleaseIn, store: Evaluations) -> Accepted:
    return Accepted(accepted=await run_in_threadpool(store.release, body.lease_id.lower()))


@router.post("/evaluation/results", status_code=201, response_model=Accepted, summary="Store a rule's scores")
async def results(body: ResultsIn, state: State, project: CurrentProject, store: Evaluations) -> Accepted:
    rule = await run_in_threadpool(store.get_rule, body.rule_id)
    now = time.time_ns() // 1_000_000 * 1_000_000
    records = [
        ScoreRecord(
            project_id=project.project_id,
            score_id=score_id_for(project.project_id, s.span_id.lower(), rule.name, body.evaluator_version),
            trace_id=s.trace_id.lower(),
            name=rule.name,
            source="evaluator",
            span_id=s.span_id.lower(),
            value=s.value,
            label=s.label,
            explanation=s.explanation,
            evaluator_version=body.evaluator_version,
            metadata={**s.metadata, "evaluator": rule.evaluator, "rule_id": rule.rule_id},
            created_at_ns=now,
            version=now,
        )
        for s in body.scores
    ]
    # The durable path: acknowledged once in ClickHouse or in the collector's fsynced spool.
    await state.ingest.add_scores(records)
    return Accepted(accepted=len(records))


@router.post("/evaluation/embeddings", status_code=201, response_model=Accepted, summary="Store embeddings")
async def post_embeddings(body: EmbeddingsIn, project: CurrentProject, store: Evaluations) -> Accepted:
    rule = await run_in_threadpool(store.get_rule, body.rule_id)
    if not rule.is_drift:
        raise InvalidQueryError(f"rule {rule.name!r} runs {rule.evaluator}, not embedding_drift")
    records = [
        EmbeddingRecord(
            field=body.field,
            model=body.model,
            start_time_ns=e.start_time_unix_nano,
            trace_id=e.trace_id.lower(),
            span_id=e.span_id.lower(),
            text=e.text,
            vector=decode_vector(e.vector_b64),
        )
        for e in body.embeddings
    ]
    await run_in_threadpool(store.insert_embeddings, rule, records, project.retention_days)
    return Accepted(accepted=len(records))


@router.get("/evaluation/embeddings", response_model=EmbeddingList, summary="A sample of stored embeddings")
async def get_embeddings(
    store: Evaluations,
    rule_id: Annotated[str, Query(min_length=1, max_length=100, description="A drift rule.")],
    from_: Annotated[datetime, Query(alias="from")],
    to: datetime,
    limit: Annotated[int, Query(ge=1, le=20_000)] = 5000,
) -> EmbeddingList:
    lo, hi = to_ns(from_), to_ns(to)
    if lo is None or hi is None or lo > hi:
        raise InvalidQueryError("'from' must not be after 'to'")
    rule = await run_in_threadpool(store.get_rule, rule_id)
    rows = await run_in_threadpool(store.embeddings_window, rule, lo, hi, limit)
    return EmbeddingList(
        data=[
            EmbeddingOut(span_id=s, text=t, vector_b64=base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode())
            for s, t, v in rows
        ]
    )


@router.post("/evaluation/errors", status_code=204, summary="Report (or clear) a rule's configuration problem")
async def rule_error(body: RuleErrorIn, state: State, project: CurrentProject, store: Evaluations) -> Response:
    await run_in_threadpool(store.get_rule, body.rule_id)
    key = (project.project_id, body.rule_id)
    if body.error:
        state.rule_errors[key] = body.error
    else:
        state.rule_errors.pop(key, None)
    return Response(status_code=204)


@router.post("/evaluation/drift/claim", response_model=DriftClaimOut, summary="Whether a drift check is due")
async def claim_drift(body: DriftClaimIn, store: Evaluations) -> DriftClaimOut:
    rule = await run_in_threadpool(store.get_rule, body.rule_id)
    run = await run_in_threadpool(
        lambda: store.claim_drift_check(rule, every_s=body.every_s, lease_s=body.lease_s, runner=body.runner)
    )
    return DriftClaimOut(run=run)


@router.post("/drift", status_code=201, response_model=DriftOut, summary="Record a drift check (runners do this)")
async def post_drift(body: DriftIn, store: Evaluations) -> DriftOut:
    rule = await run_in_threadpool(store.get_rule, body.rule_id)
    if not rule.is_drift:
        raise InvalidQueryError(f"rule {rule.name!r} runs {rule.evaluator}, not embedding_drift")
    windows = ("reference_start", "reference_end", "current_start", "current_end")
    ns = {k: to_ns(getattr(body, k)) or 0 for k in windows}
    record = DriftRecord(
        monitor=rule.name, field=rule.drift_field, model=rule.embedding_model,
        computed_at_ns=time.time_ns() // 1_000_000 * 1_000_000,
        reference_start_ns=ns["reference_start"], reference_end_ns=ns["reference_end"],
        current_start_ns=ns["current_start"], current_end_ns=ns["current_end"], drift=body.drift,
        p_value=body.p_value, n_reference=body.n_reference, n_current=body.n_current, result=body.result,
    )  # fmt: skip
    await run_in_threadpool(store.insert_drift, record)
    return DriftOut.of(record)


@router.get("/feedback/summary", response_model=FeedbackSummary, summary="Human feedback per model, variant, ...")
async def feedback_summary(
    store: Evaluations,
    group_by: Literal["model", "variant", "name", "trace_id"] = "model",
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
) -> FeedbackSummary:
    from loopwise_collector.evaluators.human_feedback import summarize_feedback

    lo, hi = to_ns(from_) or 0, to_ns(to) or time.time_ns() + 3_600_000_000_000
    if lo > hi:
        raise InvalidQueryError("'from' must not be after 'to'")
    rows = await run_in_threadpool(store.human_feedback_rows, lo, hi)
    return FeedbackSummary(group_by=group_by, data=summarize_feedback(rows, group_by))


@router.get("/drift", response_model=DriftList, summary="Drift checks, newest first")
async def list_drift(
    store: Evaluations,
    monitor: Annotated[str | None, Query(max_length=100, description="A drift rule's name.")] = None,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DriftList:
    lo, hi = to_ns(from_), to_ns(to)
    if lo is not None and hi is not None and lo > hi:
        raise InvalidQueryError("'from' must not be after 'to'")
    rows = await run_in_threadpool(lambda: store.list_drift(monitor=monitor, from_ns=lo, to_ns=hi, limit=limit))
    return DriftList(data=[DriftOut.of(r) for r in rows])
