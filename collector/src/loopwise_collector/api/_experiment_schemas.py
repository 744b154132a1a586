"""Pydantic models at the HTTP edge of ``/api/v1/experiments``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from loopwise_collector.api.schemas import ns_to_datetime
from loopwise_collector.store.experiments import ExperimentRecord, OfflineScore
from loopwise_collector.store.records import ScoreRecord

MAX_SCORES_PER_REQUEST = 1000
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
_UINT32_MAX = 2**32 - 1


class ExperimentIn(BaseModel):
    """An offline evaluation run; the same ``id`` again replaces the run (re-push), it never duplicates."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        None, pattern=_ID_PATTERN, description="Client id for idempotency; the server picks one when absent."
    )
    name: str = Field(min_length=1, max_length=200)
    dataset_name: str = Field(min_length=1, max_length=200)
    dataset_version: str = Field(min_length=1, max_length=200)
    evaluators: dict[str, str] = Field(
        default_factory=dict, max_length=100, description="Evaluator name to evaluator version."
    )
    summary: dict[str, Any] = Field(default_factory=dict, description="The run's summary.json.")
    row_count: int = Field(0, ge=0, le=_UINT32_MAX)


class ExperimentOut(BaseModel):
    id: str
    name: str
    dataset_name: str
    dataset_version: str
    evaluators: dict[str, str]
    summary: dict[str, Any]
    row_count: int
    created_at: datetime

    @classmethod
    def of(cls, r: ExperimentRecord) -> ExperimentOut:
        return cls(
            id=r.experiment_id, name=r.name, dataset_name=r.dataset_name, dataset_version=r.dataset_version,
            evaluators=r.evaluators, summary=r.summary_object(), row_count=r.row_count,
            created_at=ns_to_datetime(r.created_at_ns),
        )  # fmt: skip


class ExperimentDetail(ExperimentOut):
    score_count: int = Field(description="Scores stored for this experiment (rows x evaluators once fully pushed).")


class ExperimentList(BaseModel):
    data: list[ExperimentOut]
    next_offset: int | None


class ExperimentScoreIn(BaseModel):
    """One dataset row's result from one evaluator; ``value`` is null for an error score (label "error")."""

    model_config = ConfigDict(extra="forbid")

    row: int = Field(ge=0, le=_UINT32_MAX, description="0-based position of the row in the dataset.")
    name: str = Field(min_length=1, max_length=200)
    value: float | None = Field(None, allow_inf_nan=False)
    label: str = Field("", max_length=1000)
    explanation: str = Field("", max_length=100_000)
    evaluator_version: str = Field("", max_length=200)
    metadata: dict[str, str] = Field(default_factory=dict)
    trace_id: str | None = Field(None, pattern=r"^[0-9a-fA-F]{32}$", description="When the row came from a trace.")
    span_id: str | None = Field(None, pattern=r"^[0-9a-fA-F]{16}$")

    def to_offline(self) -> OfflineScore:
        return OfflineScore(
            row=self.row, name=self.name, value=self.value, label=self.label, explanation=self.explanation,
            evaluator_version=self.evaluator_version, metadata=self.metadata, trace_id=self.trace_id or "",
            span_id=self.span_id or "",
        )  # fmt: skip


class ExperimentScoresIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scores: list[ExperimentScoreIn] = Field(min_length=1, max_length=MAX_SCORES_PER_REQUEST)


class ScoresAccepted(BaseModel):
    accepted: int


class ExperimentScoreOut(BaseModel):
    id: str
    row: int
    name: str
    value: float | None
    label: str
    explanation: str
    evaluator_version: str
    source: str
    metadata: dict[str, str]
    trace_id: str | None
    span_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, s: ScoreRecord) -> ExperimentScoreOut:
        row = s.metadata.get("row", "0")
        return cls(
            id=s.score_id, row=int(row) if row.isdigit() else 0, name=s.name, value=s.value, label=s.label,
            explanation=s.explanation, evaluator_version=s.evaluator_version, source=s.source,
            metadata=s.metadata, trace_id=s.trace_id or None, span_id=s.span_id or None,
            created_at=ns_to_datetime(s.created_at_ns),
        )  # fmt: skip


class ExperimentScoreList(BaseModel):
    data: list[ExperimentScoreOut]
    next_offset: int | None
