"""Pydantic models for evaluator rules, the runner's claim/result protocol and drift results."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from loopwise_collector.api.schemas import ns_to_datetime
from loopwise_collector.store.evaluation import ClaimedSpan, DriftRecord, EvaluatorRule

_HEX32 = r"^[0-9a-fA-F]{32}$"
_HEX16 = r"^[0-9a-fA-F]{16}$"
_RULE_NAME = r"^[A-Za-z0-9_.\-]{1,100}$"


class SpanSelector(BaseModel):
    """Which spans a rule applies to; empty lists match everything, each non-empty list must match."""

    model_config = ConfigDict(extra="forbid")

    span_names: list[str] = Field(default_factory=list, max_length=100)
    models: list[str] = Field(default_factory=list, max_length=100)
    span_types: list[str] = Field(
        default_factory=list, max_length=10, description="SDK span types: llm, tool, retrieval, embedding, agent, span."
    )
    tags: list[str] = Field(default_factory=list, max_length=100, description="Any of these tags.")


class RuleIn(BaseModel):
    """A new evaluator rule."""

    model_config = ConfigDict(extra="forbid")

    evaluator: str = Field(min_length=1, max_length=100, description="A registered evaluator name, e.g. 'rouge'.")
    name: str | None = Field(None, pattern=_RULE_NAME, description="Score name; defaults to the evaluator name.")
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword parameters for the evaluator.")
    filter: SpanSelector = Field(default_factory=SpanSelector)
    sample_rate: float = Field(1.0, ge=0, le=1)
    backfill_hours: int = Field(24, ge=0, le=24 * 365, description="Also evaluate spans this old at creation.")
    enabled: bool = True


class RuleUpdate(BaseModel):
    """Fields to change; omitted ones keep their value."""

    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any] | None = None
    filter: SpanSelector | None = None
    sample_rate: float | None = Field(None, ge=0, le=1)
    backfill_hours: int | None = Field(None, ge=0, le=24 * 365)
    enabled: bool | None = None


class RuleOut(BaseModel):
    id: str
    name: str
    evaluator: str
    params: dict[str, Any]
    filter: SpanSelector
    sample_rate: float
    backfill_hours: int
    enabled: bool
    source: str = Field(description="'api', or 'config' for rules the collector's rules file manages.")
    created_at: datetime
    updated_at: datetime
    last_error: str | None = Field(None, description="The latest problem a runner reported for this rule.")

    @classmethod
    def of(cls, r: EvaluatorRule, last_error: str | None = None) -> RuleOut:
        return cls(
            id=r.rule_id, name=r.name, evaluator=r.evaluator, params=r.params,
            filter=SpanSelector(span_names=list(r.span_names), models=list(r.models), span_types=list(r.span_types),
                                tags=list(r.tags)),
            sample_rate=r.sample_rate, backfill_hours=r.backfill_hours, enabled=r.enabled, source=r.source,
            created_at=ns_to_datetime(r.created_at_ns), updated_at=ns_to_datetime(r.updated_at_ns),
            last_error=last_error,
        )  # fmt: skip


class RuleList(BaseModel):
    data: list[RuleOut]


# --- the runner's protocol -------------------------------------------------------------------
class ClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule_id: str = Field(min_length=1, max_length=100)
    evaluator_version: str = Field(min_length=1, max_length=200)
    runner: str = Field(min_length=1, max_length=200)
    limit: int = Field(64, ge=1, le=1000)
    lease_s: float = Field(60, ge=1, le=3600)


class ClaimedSpanOut(BaseModel):
    span_id: str
    trace_id: str
    name: str
    span_type: str
    model: str
    variant: str
    start_time_unix_nano: int
    input: str
    output: str
    system_instructions: str
    retrievals: list[str] = Field(description="Outputs of the trace's retrieval spans: the answer's context.")

    @classmethod
    def of(cls, s: ClaimedSpan) -> ClaimedSpanOut:
        return cls(
            span_id=s.span_id, trace_id=s.trace_id, name=s.name, span_type=s.span_type, model=s.model,
            variant=s.variant, start_time_unix_nano=s.start_time_ns, input=s.input, output=s.output,
            system_instructions=s.system_instructions, retrievals=list(s.retrievals),
        )  # fmt: skip


class ClaimOut(BaseModel):
    lease_id: str
    spans: list[ClaimedSpanOut]


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lease_id: str = Field(pattern=_HEX32)


class ResultScore(BaseModel):
    model_config = ConfigDict(extra="forbid")

    span_id: str = Field(pattern=_HEX16)
    trace_id: str = Field(pattern=_HEX32)
    value: float | None = Field(None, allow_inf_nan=False)
    label: str = Field("", max_length=1000)
    explanation: str = Field("", max_length=100_000)
    metadata: dict[str, str] = Field(default_factory=dict)


class ResultsIn(BaseModel):
    """Scores of one rule at one evaluator version; each (span, rule, version) is stored once."""

    model_config = ConfigDict(extra="forbid")

    rule_id: str = Field(min_length=1, max_length=100)
    evaluator_version: str = Field(min_length=1, max_length=200)
    scores: list[ResultScore] = Field(max_length=5000)


class Accepted(BaseModel):
    accepted: int


def decode_vector(value: str) -> list[float]:
    """A base64 little-endian float32 vector as floats.

    Example:
        >>> import struct, base64
        >>> decode_vector(base64.b64encode(struct.pack("<2f", 1.0, 0.5)).decode())
        [1.0, 0.5]
    """
    import struct

    raw = base64.b64decode(value, validate=True)
    if len(raw) % 4:
        raise ValueError("vector length is not a multiple of 4 bytes")
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


class EmbeddingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    span_id: str = Field(pattern=_HEX16)
    trace_id: str = Field(pattern=_HEX32)
    start_time_unix_nano: int = Field(ge=0)
    text: str = Field("", max_length=10_000)
    vector_b64: str = Field(min_length=4, max_length=65_536, description="float32 little-endian, base64.")

    @field_validator("vector_b64")
    @classmethod
    def _decodes(cls, value: str) -> str:
        try:
            decode_vector(value)
        except (ValueError, binascii.Error) as exc:
            raise ValueError(f"vector_b64 is not base64 float32: {exc}") from exc
        return value


class EmbeddingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule_id: str = Field(min_length=1, max_length=100)
    field: str = Field(pattern=r"^(input|output)$")
    model: str = Field(min_length=1, max_length=500)
    embeddings: list[EmbeddingIn] = Field(max_length=5000)


class EmbeddingOut(BaseModel):
    span_id: str
    text: str
    vector_b64: str


class EmbeddingList(BaseModel):
    data: list[EmbeddingOut]


class RuleErrorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule_id: str = Field(min_length=1, max_length=100)
    error: str | None = Field(max_length=5000, description="null clears the rule's error.")


class DriftClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule_id: str = Field(min_length=1, max_length=100)
    runner: str = Field(min_length=1, max_length=200)
    every_s: float = Field(ge=1, le=7 * 86400)
    lease_s: float = Field(120, ge=1, le=86400, description="How long others wait if this runner dies mid-check.")


class DriftClaimOut(BaseModel):
    run: bool


class DriftIn(BaseModel):
    """A drift check's outcome, posted by the runner."""

    model_config = ConfigDict(extra="forbid")

    rule_id: str = Field(min_length=1, max_length=100)
    reference_start: datetime
    reference_end: datetime
    current_start: datetime
    current_end: datetime
    drift: bool
    p_value: float | None = Field(None, ge=0, le=1)
    n_reference: int = Field(ge=0)
    n_current: int = Field(ge=0)
    result: dict[str, Any] = Field(description="Statistics per method and example texts.")


class DriftOut(BaseModel):
    monitor: str = Field(description="The drift rule's name.")
    field: str
    model: str
    computed_at: datetime
    reference_start: datetime
    reference_end: datetime
    current_start: datetime
    current_end: datetime
    drift: bool
    p_value: float | None
    n_reference: int
    n_current: int
    result: dict[str, Any]

    @classmethod
    def of(cls, d: DriftRecord) -> DriftOut:
        return cls(
            monitor=d.monitor, field=d.field, model=d.model, computed_at=ns_to_datetime(d.computed_at_ns),
            reference_start=ns_to_datetime(d.reference_start_ns), reference_end=ns_to_datetime(d.reference_end_ns),
            current_start=ns_to_datetime(d.current_start_ns), current_end=ns_to_datetime(d.current_end_ns),
            drift=d.drift, p_value=d.p_value, n_reference=d.n_reference, n_current=d.n_current, result=d.result,
        )  # fmt: skip


class DriftList(BaseModel):
    data: list[DriftOut]


class FeedbackGroup(BaseModel):
    group: str | None
    traces: int
    n: int = Field(description="Feedback rows with a usable value.")
    mean: float | None = Field(description="Mean feedback on 0..1 (thumbs up = 1, rating r = (r-1)/4), per trace.")
    thumbs_up: int
    thumbs_down: int
    thumbs_up_rate: float | None
    ratings: int
    rating_mean: float | None = Field(description="On the raw 1..5 scale.")
    comments: int
    ignored: int


class FeedbackSummary(BaseModel):
    group_by: str
    data: list[FeedbackGroup]
