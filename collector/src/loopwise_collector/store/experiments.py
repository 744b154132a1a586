"""Offline experiments (``loopwise eval --push``): one ``experiments`` row per run, its per-row scores in
``scores`` with ``source = 'offline'``.

Like :class:`~loopwise_collector.store.project.ProjectStore`, an :class:`ExperimentStore` is bound to one
project and every statement binds that ``project_id``, so another project's experiment ids simply do
not exist here. Score ids are derived from (experiment, row, evaluator), so pushing the same run again
replaces its scores instead of adding copies.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopwise_collector.errors import InvalidPayloadError, InvalidQueryError, NotFoundError
from loopwise_collector.store.records import SCORE_SELECT, ScoreRecord, score_from_row

if TYPE_CHECKING:
    from loopwise_collector.store.clickhouse import ClickHouseStore

OFFLINE_SOURCE = "offline"
MAX_LIMIT = 10_000  # a bound on one read; the API pages in at most 1000

_EXPERIMENT_COLUMNS = [
    "project_id",
    "experiment_id",
    "name",
    "dataset_name",
    "dataset_version",
    "evaluators",
    "summary",
    "row_count",
    "created_at",
    "version",
]
_EXPERIMENT_SELECT = (
    "SELECT project_id, experiment_id, name, dataset_name, dataset_version, evaluators, summary, row_count, "
    "toUnixTimestamp64Nano(created_at), version FROM {db}.experiments FINAL "
)
# The experiment's scores: the metadata key is the link, since offline rows have no trace.
_SCORES_WHERE = (
    "WHERE project_id = {project:String} AND source = {source:String} AND metadata['experiment_id'] = {exp:String} "
)


@dataclass(frozen=True, slots=True)
class ExperimentRecord:
    """One offline evaluation run as stored; ``summary`` is the run's summary JSON, kept verbatim.

    Example:
        >>> r = ExperimentRecord(project_id="demo", experiment_id="e1", name="baseline", dataset_name="qa",
        ...                      dataset_version="3f2a9c01d4e5", evaluators={"bleu": "1-ab12cd34"})
        >>> r.summary_object()
        {}
    """

    project_id: str
    experiment_id: str
    name: str
    dataset_name: str
    dataset_version: str
    evaluators: dict[str, str] = field(default_factory=dict)
    summary: str = "{}"
    row_count: int = 0
    created_at_ns: int = 0
    version: int = 0

    def summary_object(self) -> dict[str, Any]:
        """The summary parsed back into a dict (``{}`` if it is somehow not an object)."""
        value = json.loads(self.summary or "{}")
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class OfflineScore:
    """One dataset row's result from one evaluator, as ``loopwise eval`` pushes it.

    Example:
        >>> OfflineScore(row=0, name="bleu", value=41.2).trace_id
        ''
    """

    row: int
    name: str
    value: float | None = None
    label: str = ""
    explanation: str = ""
    evaluator_version: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    trace_id: str = ""  # set when the dataset row came from a trace
    span_id: str = ""


def offline_score_id(experiment_id: str, row: int, name: str) -> str:
    """The stable id of one (experiment, row, evaluator) score: a re-push replaces, never duplicates.

    Example:
        >>> offline_score_id("e1", 0, "bleu") == offline_score_id("e1", 0, "bleu")
        True
        >>> len(offline_score_id("e1", 0, "bleu"))
        32
    """
    blob = f"offline\0{experiment_id}\0{row}\0{name}".encode()
    return hashlib.sha256(blob).hexdigest()[:32]


class ExperimentStore:
    """Experiments and their scores, confined to one project.

    Example:
        >>> exps = ExperimentStore(store, "demo")  # doctest: +SKIP
        >>> exps.get("no-such-id")  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        loopwise_collector.errors.NotFoundError: experiment 'no-such-id' not found
    """

    def __init__(self, store: ClickHouseStore, project_id: str) -> None:
        self._store = store
        self.project_id = project_id

    def _query(self, sql: str, params: dict[str, Any] | None = None) -> Sequence[Sequence[Any]]:
        return self._store.query(sql, {"project": self.project_id, **(params or {})})

    # --- experiments --------------------------------------------------------------------------
    def upsert(
        self,
        experiment_id: str,
        *,
        name: str,
        dataset_name: str,
        dataset_version: str,
        evaluators: Mapping[str, str],
        summary: Mapping[str, Any],
        row_count: int,
    ) -> ExperimentRecord:
        """Create the experiment, or replace it under the same id (keeping its first ``created_at``)."""
        try:
            summary_json = json.dumps(summary, ensure_ascii=False, allow_nan=False)
        except ValueError as exc:  # NaN or infinity: not JSON, and a reader could not parse it back
            raise InvalidPayloadError(f"summary: {exc}") from exc
        existing = self.find(experiment_id)
        now = time.time_ns()
        record = ExperimentRecord(
            project_id=self.project_id,
            experiment_id=experiment_id,
            name=name,
            dataset_name=dataset_name,
            dataset_version=dataset_version,
            evaluators=dict(evaluators),
            summary=summary_json,
            row_count=row_count,
            # The column keeps milliseconds: answer what a later read will.
            created_at_ns=existing.created_at_ns if existing else now // 1_000_000 * 1_000_000,
            version=max(now, existing.version + 1 if existing else 0),
        )
        values = [
            record.project_id,
            record.experiment_id,
            record.name,
            record.dataset_name,
            record.dataset_version,
            record.evaluators,
            record.summary,
            record.row_count,
            record.created_at_ns // 1_000_000,
            record.version,
        ]
        self._store._insert("experiments", [[v] for v in values], _EXPERIMENT_COLUMNS)
        return record

    def find(self, experiment_id: str) -> ExperimentRecord | None:
        """The experiment, or ``None`` when this project has none with that id."""
        rows = self._query(
            _EXPERIMENT_SELECT + "WHERE project_id = {project:String} AND experiment_id = {exp:String}",
            {"exp": experiment_id},
        )
        return _experiment(rows[0]) if rows else None

    def get(self, experiment_id: str) -> ExperimentRecord:
        """The experiment; :class:`NotFoundError` when this project has none with that id."""
        found = self.find(experiment_id)
        if found is None:
            raise NotFoundError(f"experiment {experiment_id!r} not found")
        return found

    def list_experiments(self, *, limit: int = 100, offset: int = 0) -> list[ExperimentRecord]:
        """Experiments, newest first."""
        _check_page(limit, offset)
        rows = self._query(
            _EXPERIMENT_SELECT + "WHERE project_id = {project:String} ORDER BY created_at DESC, experiment_id "
            "LIMIT {lim:UInt32} OFFSET {off:UInt32}",
            {"lim": limit, "off": offset},
        )
        return [_experiment(r) for r in rows]

    # --- scores -------------------------------------------------------------------------------
    def score_records(self, experiment: ExperimentRecord, scores: Sequence[OfflineScore]) -> list[ScoreRecord]:
        """The ``scores`` rows for ``scores``: source offline, deterministic ids, the run's keys in metadata."""
        now = time.time_ns()
        created = now // 1_000_000 * 1_000_000
        records = []
        for s in scores:
            metadata = {
                **s.metadata,
                # Last, so a client cannot point a score at another experiment or row.
                "experiment_id": experiment.experiment_id,
                "experiment": experiment.name,
                "dataset": experiment.dataset_name,
                "dataset_version": experiment.dataset_version,
                "row": str(s.row),
            }
            records.append(
                ScoreRecord(
                    project_id=self.project_id,
                    score_id=offline_score_id(experiment.experiment_id, s.row, s.name),
                    trace_id=s.trace_id.lower(),
                    span_id=s.span_id.lower(),
                    name=s.name,
                    source=OFFLINE_SOURCE,
                    value=s.value,
                    label=s.label,
                    explanation=s.explanation,
                    evaluator_version=s.evaluator_version,
                    metadata=metadata,
                    created_at_ns=created,
                    version=now,
                )
            )
        return records

    def count_scores(self, experiment_id: str) -> int:
        """How many distinct scores the experiment has stored."""
        rows = self._query(
            "SELECT count() FROM {db}.scores FINAL " + _SCORES_WHERE,  # noqa: S608 - fixed fragments; values are parameters
            {"exp": experiment_id, "source": OFFLINE_SOURCE},
        )
        return int(rows[0][0]) if rows else 0

    def list_scores(self, experiment_id: str, *, limit: int = 100, offset: int = 0) -> list[ScoreRecord]:
        """The experiment's scores in dataset order (row, then evaluator name)."""
        _check_page(limit, offset)
        rows = self._query(
            SCORE_SELECT
            + _SCORES_WHERE
            + "ORDER BY toUInt64OrZero(metadata['row']), name LIMIT {lim:UInt32} OFFSET {off:UInt32}",
            {"exp": experiment_id, "source": OFFLINE_SOURCE, "lim": limit, "off": offset},
        )
        return [score_from_row(r) for r in rows]


def _check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidQueryError(f"limit must be between 1 and {MAX_LIMIT}")
    if offset < 0:
        raise InvalidQueryError("offset must not be negative")


def _experiment(r: Sequence[Any]) -> ExperimentRecord:
    return ExperimentRecord(
        project_id=r[0],
        experiment_id=r[1],
        name=r[2],
        dataset_name=r[3],
        dataset_version=r[4],
        evaluators=dict(r[5]),
        summary=r[6],
        row_count=int(r[7]),
        created_at_ns=int(r[8]),
        version=int(r[9]),
    )
