"""Pydantic models at the HTTP edge: request bodies, responses and the error envelope."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from loopwise_collector.store import MetricsRow, ScoreRecord, SpanRecord, TraceSummary
from loopwise_collector.store.score_stats import ScoreStats, WorstScore


def ns_to_datetime(ns: int) -> datetime:
    """Nanoseconds since the epoch as an aware UTC datetime (microsecond precision)."""
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    """Every error: ``{"error": {"code", "message"}}``."""

    error: ErrorBody


class TraceOut(BaseModel):
    trace_id: str
    name: str
    start_time: datetime
    end_time: datetime
    duration_ms: float
    span_count: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None = Field(description="Sum of priced spans; null when none was priced.")
    unpriced_span_count: int = Field(description="Spans with tokens but no known price.")
    has_error: bool
    user_id: str
    session_id: str
    tags: list[str]
    variants: list[str]
    models: list[str]
    scores: dict[str, float] = Field(description="Mean value per score name.")

    @classmethod
    def of(cls, t: TraceSummary) -> TraceOut:
        return cls(
            trace_id=t.trace_id, name=t.name, start_time=ns_to_datetime(t.start_time_ns),
            end_time=ns_to_datetime(t.end_time_ns), duration_ms=t.duration_ms, span_count=t.span_count,
            input_tokens=t.input_tokens, output_tokens=t.output_tokens, cost_usd=t.cost_usd,
            unpriced_span_count=t.unpriced_span_count, has_error=t.has_error, user_id=t.user_id,
            session_id=t.session_id, tags=list(t.tags), variants=list(t.variants), models=list(t.models),
            scores=t.scores,
        )  # fmt: skip


class TraceList(BaseModel):
    data: list[TraceOut]
    next_cursor: str | None


class SpanOut(BaseModel):
    span_id: str
    parent_span_id: str | None
    trace_id: str
    name: str
    kind: str
    start_time: datetime
    end_time: datetime
    start_time_unix_nano: int
    end_time_unix_nano: int
    duration_ms: float
    status: Literal["unset", "ok", "error"]
    status_message: str
    service_name: str
    span_type: str
    operation: str
    model: str
    request_model: str
    response_model: str
    provider: str
    input: str
    output: str
    system_instructions: str
    input_tokens: int | None
    output_tokens: int | None
    cache_read_input_tokens: int | None
    reasoning_output_tokens: int | None
    cost_usd: float | None
    cost_source: str
    user_id: str
    session_id: str
    tags: list[str]
    variant: str
    prompt_name: str
    prompt_version: str
    attributes: dict[str, str]
    resource_attributes: dict[str, str]
    events: list[dict[str, Any]]
    links: list[dict[str, Any]]

    @classmethod
    def of(cls, s: SpanRecord, events: list[dict[str, Any]], links: list[dict[str, Any]]) -> SpanOut:
        return cls(
            span_id=s.span_id, parent_span_id=s.parent_span_id or None, trace_id=s.trace_id, name=s.name,
            kind=s.kind, start_time=ns_to_datetime(s.start_time_ns), end_time=ns_to_datetime(s.end_time_ns),
            start_time_unix_nano=s.start_time_ns, end_time_unix_nano=s.end_time_ns, duration_ms=s.duration_ms,
            status=s.status_code, status_message=s.status_message,
            service_name=s.service_name, span_type=s.span_type, operation=s.operation, model=s.model,
            request_model=s.request_model, response_model=s.response_model, provider=s.provider, input=s.input,
            output=s.output, system_instructions=s.system_instructions, input_tokens=s.input_tokens,
            output_tokens=s.output_tokens, cache_read_input_tokens=s.cache_read_input_tokens,
            reasoning_output_tokens=s.reasoning_output_tokens, cost_usd=s.cost_usd, cost_source=s.cost_source,
            user_id=s.user_id, session_id=s.session_id, tags=list(s.tags), variant=s.variant,
            prompt_name=s.prompt_name, prompt_version=s.prompt_version, attributes=s.attributes,
            resource_attributes=s.resource_attributes, events=events, links=links,
        )  # fmt: skip


class TraceDetail(BaseModel):
    trace_id: str
    spans: list[SpanOut]


class ScoreIn(BaseModel):
    """A score to record. Human feedback is ``source="human"``."""

    model_config = ConfigDict(extra="forbid")

    trace_id: str = Field(pattern=r"^[0-9a-fA-F]{32}$")
    span_id: str | None = Field(None, pattern=r"^[0-9a-fA-F]{16}$")
    name: str = Field(min_length=1, max_length=200)
    value: float | None = Field(None, allow_inf_nan=False)
    label: str = Field("", max_length=1000)
    comment: str = Field("", max_length=100_000, description="Free text; stored as the score's explanation.")
    source: Literal["human", "api", "evaluator"] = "api"
    evaluator_version: str = Field("", max_length=200)
    metadata: dict[str, str] = Field(default_factory=dict)
    id: str | None = Field(None, min_length=1, max_length=200, description="Idempotency key: same id, one score.")


class ScoreOut(BaseModel):
    id: str
    trace_id: str
    span_id: str | None
    name: str
    value: float | None
    label: str
    comment: str
    source: str
    evaluator_version: str
    metadata: dict[str, str]
    created_at: datetime

    @classmethod
    def of(cls, s: ScoreRecord) -> ScoreOut:
        return cls(
            id=s.score_id, trace_id=s.trace_id, span_id=s.span_id or None, name=s.name, value=s.value,
            label=s.label, comment=s.explanation, source=s.source, evaluator_version=s.evaluator_version,
            metadata=s.metadata, created_at=ns_to_datetime(s.created_at_ns),
        )  # fmt: skip


class ScoreList(BaseModel):
    data: list[ScoreOut]


class MetricsOut(BaseModel):
    group: str | None
    span_count: int
    trace_count: int
    error_count: int
    error_rate: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    unpriced_span_count: int

    @classmethod
    def of(cls, m: MetricsRow, grouped: bool) -> MetricsOut:
        return cls(
            group=m.group if grouped else None, span_count=m.span_count, trace_count=m.trace_count,
            error_count=m.error_count, error_rate=m.error_rate, latency_p50_ms=m.latency_p50_ms,
            latency_p95_ms=m.latency_p95_ms, latency_p99_ms=m.latency_p99_ms, input_tokens=m.input_tokens,
            output_tokens=m.output_tokens, cost_usd=m.cost_usd, unpriced_span_count=m.unpriced_span_count,
        )  # fmt: skip


class MetricsSummary(BaseModel):
    group_by: str | None
    data: list[MetricsOut]


class PriceIn(BaseModel):
    """A project price override, per 1M tokens, from a date on."""

    model_config = ConfigDict(extra="forbid")

    pattern: str = Field(min_length=1, max_length=200, description="Model name or prefix, e.g. 'my-finetune'.")
    effective_from: date = date(1970, 1, 1)
    input_per_million: float = Field(ge=0, allow_inf_nan=False)
    output_per_million: float = Field(ge=0, allow_inf_nan=False)
    cached_input_per_million: float | None = Field(None, ge=0, allow_inf_nan=False)


class PriceList(BaseModel):
    version: str
    overrides: list[PriceIn]


class ScoreHistogram(BaseModel):
    edges: list[float] = Field(description="11 bin edges over the name's value range in the request.")
    counts: list[int] = Field(description="10 counts; the last bin includes its upper edge.")


class ScoreStatsOut(BaseModel):
    name: str
    group: str | None = Field(description="The group's value; null when grouped by name only.")
    count: int = Field(description="All scores, with or without a value.")
    n: int = Field(description="Scores with a value: the statistics below are over these.")
    errors: int = Field(description="Scores with label 'error' and no value (an evaluator that failed).")
    mean: float | None
    p10: float | None
    p50: float | None
    p90: float | None
    min: float | None
    max: float | None
    histogram: ScoreHistogram

    @classmethod
    def of(cls, s: ScoreStats, edges: list[float] | None, grouped: bool) -> ScoreStatsOut:
        return cls(
            name=s.name, group=s.group if grouped else None, count=s.count, n=s.n, errors=s.errors, mean=s.mean,
            p10=s.p10, p50=s.p50, p90=s.p90, min=s.min, max=s.max,
            histogram=ScoreHistogram(edges=edges or [], counts=list(s.histogram)),
        )  # fmt: skip


class ScoreSummaryOut(BaseModel):
    group_by: str
    data: list[ScoreStatsOut]


class WorstScoreOut(BaseModel):
    trace_id: str
    name: str
    value: float = Field(description="The trace's lowest value of this score name.")
    mean: float = Field(description="The trace's mean value of this score name.")
    score_count: int
    span_id: str | None
    score_id: str
    label: str
    comment: str
    created_at: datetime

    @classmethod
    def of(cls, w: WorstScore) -> WorstScoreOut:
        return cls(
            trace_id=w.trace_id, name=w.name, value=w.value, mean=w.mean, score_count=w.score_count,
            span_id=w.span_id or None, score_id=w.score_id, label=w.label, comment=w.explanation,
            created_at=ns_to_datetime(w.created_at_ns),
        )  # fmt: skip


class WorstScoreList(BaseModel):
    data: list[WorstScoreOut]
