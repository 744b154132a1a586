"""``/api/v1/experiments``: offline evaluation runs pushed by ``loopwise eval --push``.

An experiment is a named run of evaluators over one version of a dataset. Its per-row results are
ordinary scores (``source = "offline"``) whose metadata names the experiment, dataset, version and
row, so they also show in ``GET /api/v1/scores``.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.concurrency import run_in_threadpool

from loopwise_collector.api._experiment_schemas import (
    MAX_SCORES_PER_REQUEST,
    ExperimentDetail,
    ExperimentIn,
    ExperimentList,
    ExperimentOut,
    ExperimentScoreList,
    ExperimentScoreOut,
    ExperimentScoresIn,
    ScoresAccepted,
)
from loopwise_collector.api.deps import CurrentProject, State
from loopwise_collector.api.schemas import ErrorResponse
from loopwise_collector.store.experiments import ExperimentStore

router = APIRouter(prefix="/api/v1", tags=["experiments"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No such experiment in this project"}
}
MAX_PAGE = 1000
ExperimentId = Annotated[str, Path(min_length=1, max_length=128)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]


def experiment_store(state: State, project: CurrentProject) -> ExperimentStore:
    """The experiments of the caller's project only."""
    return ExperimentStore(state.store, project.project_id)


Experiments = Annotated[ExperimentStore, Depends(experiment_store)]


@router.post(
    "/experiments",
    status_code=201,
    response_model=ExperimentOut,
    summary="Create an experiment, or replace the one with the same id",
)
async def create_experiment(body: ExperimentIn, experiments: Experiments) -> ExperimentOut:
    record = await run_in_threadpool(
        lambda: experiments.upsert(
            body.id or uuid.uuid4().hex,
            name=body.name,
            dataset_name=body.dataset_name,
            dataset_version=body.dataset_version,
            evaluators=body.evaluators,
            summary=body.summary,
            row_count=body.row_count,
        )
    )
    return ExperimentOut.of(record)


@router.get("/experiments", response_model=ExperimentList, summary="List experiments, newest first")
async def list_experiments(experiments: Experiments, limit: Limit = 100, offset: Offset = 0) -> ExperimentList:
    rows = await run_in_threadpool(lambda: experiments.list_experiments(limit=limit + 1, offset=offset))
    more = len(rows) > limit
    return ExperimentList(
        data=[ExperimentOut.of(r) for r in rows[:limit]], next_offset=offset + limit if more else None
    )


@router.get(
    "/experiments/{experiment_id}",
    response_model=ExperimentDetail,
    summary="One experiment, with how many scores it has stored",
    responses=_NOT_FOUND,
)
async def get_experiment(experiment_id: ExperimentId, experiments: Experiments) -> ExperimentDetail:
    def load() -> ExperimentDetail:
        record = experiments.get(experiment_id)
        out = ExperimentOut.of(record)
        return ExperimentDetail(**out.model_dump(), score_count=experiments.count_scores(experiment_id))

    return await run_in_threadpool(load)


@router.post(
    "/experiments/{experiment_id}/scores",
    status_code=201,
    response_model=ScoresAccepted,
    summary=f"Add up to {MAX_SCORES_PER_REQUEST} per-row scores; a re-push of a (row, name) replaces it",
    responses=_NOT_FOUND,
)
async def add_scores(
    experiment_id: ExperimentId, body: ExperimentScoresIn, state: State, experiments: Experiments
) -> ScoresAccepted:
    experiment = await run_in_threadpool(experiments.get, experiment_id)
    records = experiments.score_records(experiment, [s.to_offline() for s in body.scores])
    # The ingest writer's durable path: acknowledged once stored (or spooled through an outage).
    await state.ingest.add_scores(records)
    return ScoresAccepted(accepted=len(records))


@router.get(
    "/experiments/{experiment_id}/scores",
    response_model=ExperimentScoreList,
    summary="An experiment's scores in dataset order (row, then evaluator)",
    responses=_NOT_FOUND,
)
async def list_experiment_scores(
    experiment_id: ExperimentId, experiments: Experiments, limit: Limit = 100, offset: Offset = 0
) -> ExperimentScoreList:
    def load() -> ExperimentScoreList:
        experiments.get(experiment_id)  # 404 for an id this project does not have
        rows = experiments.list_scores(experiment_id, limit=limit + 1, offset=offset)
        more = len(rows) > limit
        return ExperimentScoreList(
            data=[ExperimentScoreOut.of(r) for r in rows[:limit]], next_offset=offset + limit if more else None
        )

    return await run_in_threadpool(load)
