"""Pydantic models of the collector's answers (docs/api.md), as the dashboard reads them.

They ignore unknown fields, so a newer collector that adds fields does not break an older dashboard.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Health(_Model):
    """``GET /healthz``."""

    status: str


class TraceSummary(_Model):
    """One row of ``GET /api/v1/traces``."""

    trace_id: str
    name: str
    start_time: datetime
    end_time: datetime
    duration_ms: float
    span_count: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None = None
    unpriced_span_count: int = 0
    has_error: bool
    user_id: str = ""
    session_id: str = ""
    tags: list[str] = Field(default_factory=list)
    variants: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)


class TracePage(_Model):
    """A page of traces, newest first; ``next_cursor`` is ``None`` on the last page."""

    data: list[TraceSummary]
    next_cursor: str | None = None


class Span(_Model):
    """One span of ``GET /api/v1/traces/{trace_id}``."""

    span_id: str
    parent_span_id: str | None = None
    trace_id: str
    name: str
    kind: str
    start_time: datetime
    end_time: datetime
    start_time_unix_nano: int
    end_time_unix_nano: int
    duration_ms: float
    status: str
    status_message: str = ""
    service_name: str = ""
    span_type: str = ""
    operation: str = ""
    model: str = ""
    provider: str = ""
    input: str = ""
    output: str = ""
    system_instructions: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    cost_source: str = ""
    user_id: str = ""
    session_id: str = ""
    tags: list[str] = Field(default_factory=list)
    variant: str = ""
    prompt_name: str = ""
    prompt_version: str = ""
    attributes: dict[str, str] = Field(default_factory=dict)
    resource_attributes: dict[str, str] = Field(default_factory=dict)
    events: list[dict[str, Any]] = Field(default_factory=list)
    links: list[dict[str, Any]] = Field(default_factory=list)


class TraceDetail(_Model):
    """A trace with all its spans in start order."""

    trace_id: str
    spans: list[Span]


class MetricsRow(_Model):
    """One group of ``GET /api/v1/metrics/summary`` (``group`` is ``None`` when ungrouped)."""

    group: str | None = None
    span_count: int
    trace_count: int
    error_count: int
    error_rate: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    input_tokens: int
    output_tokens: int
    cost_usd: float | None = None
    unpriced_span_count: int = 0


class Score(_Model):
    """A score: evaluator, API, human feedback (``source="human"``) or offline."""

    id: str
    trace_id: str
    span_id: str | None = None
    name: str
    value: float | None = None
    label: str = ""
    comment: str = ""
    source: str
    evaluator_version: str = ""
    metadata: dict[str, str] = Field(default_factory=dict)
    created_at: datetime


class EvaluatorRule(_Model):
    """An evaluator rule of ``GET /api/v1/evaluators``."""

    id: str
    name: str
    evaluator: str
    params: dict[str, Any] = Field(default_factory=dict)
    filter: dict[str, Any] = Field(default_factory=dict)
    sample_rate: float
    backfill_hours: int
    enabled: bool
    source: str
    created_at: datetime
    updated_at: datetime
    last_error: str | None = None


class DriftCheck(_Model):
    """A drift check of ``GET /api/v1/drift``."""

    monitor: str
    field: str
    model: str
    computed_at: datetime
    reference_start: datetime
    reference_end: datetime
    current_start: datetime
    current_end: datetime
    drift: bool
    p_value: float | None = None
    n_reference: int
    n_current: int
    result: dict[str, Any] = Field(default_factory=dict)


class FeedbackGroup(_Model):
    """One group of ``GET /api/v1/feedback/summary``."""

    group: str | None = None
    traces: int
    n: int
    mean: float | None = None
    thumbs_up: int
    thumbs_down: int
    thumbs_up_rate: float | None = None
    ratings: int
    rating_mean: float | None = None
    comments: int
    ignored: int


# -- the Feedback queue page ----------------------------------------------------------------------------------


class ReviewItem(_Model):
    """A trace in the feedback queue and why it is there: ``low <score>`` (with its lowest value), ``error``
    or ``recent``."""

    trace_id: str
    reason: str
    value: float | None = None


# -- Evaluations and Drift pages: scores summary, worst traces, stored embeddings --------------------------


class ScoreHistogram(_Model):
    """Ten bins over a score name's value range: ``edges`` has 11 values, ``counts`` 10."""

    edges: list[float] = Field(default_factory=list)
    counts: list[int] = Field(default_factory=list)


class ScoreSummaryRow(_Model):
    """One row of ``GET /api/v1/scores/summary``: a score name, or a name and a group (model, variant, bucket)."""

    name: str
    group: str | None = None
    count: int
    n: int
    errors: int = 0
    mean: float | None = None
    p10: float | None = None
    p50: float | None = None
    p90: float | None = None
    min: float | None = None
    max: float | None = None
    histogram: ScoreHistogram | None = None


class WorstScore(_Model):
    """One trace of ``GET /api/v1/scores/worst``: its lowest value of a score name, and its mean."""

    trace_id: str
    name: str
    value: float
    mean: float | None = None
    score_count: int = 0
    span_id: str | None = None
    score_id: str = ""
    label: str = ""
    comment: str = ""
    created_at: datetime


class StoredEmbedding(_Model):
    """One row of ``GET /api/v1/evaluation/embeddings``; ``vector_b64`` is little-endian float32, base64."""

    span_id: str
    text: str = ""
    vector_b64: str
