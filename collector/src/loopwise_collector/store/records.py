"""Rows as the store reads and writes them: frozen dataclasses, one per table shape.

The field order of :class:`SpanRecord` is the column order of the ``spans`` table, so a batch of
records becomes column-oriented insert data without a name lookup per value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One span, flattened to one wide ``spans`` row.

    Example:
        >>> r = SpanRecord(project_id="demo", trace_id="ab" * 16, span_id="cd" * 8, name="chat",
        ...                start_time_ns=1, end_time_ns=2_000_001)
        >>> r.duration_ms
        2.0
    """

    project_id: str
    trace_id: str  # 32 lowercase hex digits
    span_id: str  # 16 lowercase hex digits
    name: str
    start_time_ns: int
    end_time_ns: int
    parent_span_id: str = ""
    kind: str = "internal"  # internal | server | client | producer | consumer
    status_code: str = "unset"  # unset | ok | error
    status_message: str = ""
    service_name: str = ""
    scope_name: str = ""
    span_type: str = ""  # span | llm | tool | retrieval | embedding | agent, when known
    operation: str = ""  # gen_ai.operation.name
    provider: str = ""
    request_model: str = ""
    response_model: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    reasoning_output_tokens: int | None = None
    cost_usd: float | None = None
    cost_source: str = ""  # client | table:<version> | unpriced | "" (no tokens, nothing to price)
    input: str = ""
    output: str = ""
    system_instructions: str = ""
    user_id: str = ""
    session_id: str = ""
    tags: tuple[str, ...] = ()
    variant: str = ""
    prompt_name: str = ""
    prompt_version: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    resource_attributes: dict[str, str] = field(default_factory=dict)
    events: str = ""  # JSON array of {name, time_unix_nano, attributes}
    links: str = ""  # JSON array of {trace_id, span_id, attributes}
    retention_days: int = 30
    version: int = 0  # ReplacingMergeTree version: the newest copy of a re-sent span wins

    @property
    def duration_ms(self) -> float:
        """Span duration in milliseconds."""
        return (self.end_time_ns - self.start_time_ns) / 1e6

    @property
    def model(self) -> str:
        """The model that answered, else the one asked for."""
        return self.response_model or self.request_model

    @property
    def has_error(self) -> bool:
        """Whether the span's status is error."""
        return self.status_code == "error"


SPAN_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(SpanRecord))


@dataclass(frozen=True, slots=True)
class ScoreRecord:
    """One evaluator, human or API result, mirroring ``gen_ai.evaluation.result``.

    ``score_id`` makes writes idempotent: evaluators derive it from (span, evaluator, version),
    API callers may pass their own, otherwise it is random.

    Example:
        >>> ScoreRecord(project_id="demo", score_id="s1", trace_id="ab" * 16, name="thumbs",
        ...             value=1.0, source="human").label
        ''
    """

    project_id: str
    score_id: str
    trace_id: str
    name: str
    source: str  # human | evaluator | api
    span_id: str = ""
    value: float | None = None
    label: str = ""
    explanation: str = ""
    evaluator_version: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    created_at_ns: int = 0
    version: int = 0


SCORE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ScoreRecord))

# What a score read selects, in the order ``score_from_row`` expects.
SCORE_SELECT = (
    "SELECT project_id, score_id, trace_id, name, source, span_id, value, label, explanation, "
    "evaluator_version, metadata, toUnixTimestamp64Nano(created_at), version FROM {db}.scores FINAL "
)


def score_from_row(r: Sequence[Any]) -> ScoreRecord:
    """A row selected with :data:`SCORE_SELECT` as a record."""
    return ScoreRecord(
        project_id=r[0], score_id=r[1], trace_id=r[2], name=r[3], source=r[4], span_id=r[5], value=r[6],
        label=r[7], explanation=r[8], evaluator_version=r[9], metadata=dict(r[10]), created_at_ns=int(r[11]),
        version=int(r[12]),
    )  # fmt: skip
