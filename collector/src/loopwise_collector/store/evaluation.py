"""Online evaluation state, confined to one project: rules, leases, embeddings and drift results.

Exactly-once scoring does not rest on the leases. A score's id is derived from (span, rule name,
evaluator version), and ``scores`` is a ReplacingMergeTree on that id, so a batch re-run after its
lease expired replaces its first scores instead of adding to them. Leases only keep runners from
doing the same work twice; a span is "done" once its score (or, for drift rules, its embedding)
is stored, so nothing is lost when a runner or the collector restarts mid-batch.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopwise_collector.errors import NotFoundError

if TYPE_CHECKING:
    from loopwise_collector.store.clickhouse import ClickHouseStore

_HOUR_NS = 3_600_000_000_000
DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
_PPM = 1_000_000
# One claim at a time per collector: the select and the lease insert are not atomic in ClickHouse.
_claim_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class EvaluatorRule:
    """Which spans a project evaluates, with which evaluator and parameters, at what sample rate.

    Empty selector tuples match everything; a span must match every non-empty one (any value of
    each). ``name`` is the score name, unique per project.

    Example:
        >>> rule = EvaluatorRule(rule_id="r1", name="toxicity", evaluator="toxicity", span_types=("llm",))
        >>> rule.sample_ppm
        1000000
    """

    rule_id: str
    name: str
    evaluator: str
    params: dict[str, Any] = field(default_factory=dict)
    span_names: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    span_types: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    sample_rate: float = 1.0
    backfill_hours: int = 24
    enabled: bool = True
    source: str = "api"  # api | config
    created_at_ns: int = 0
    updated_at_ns: int = 0

    @property
    def sample_ppm(self) -> int:
        """The sample rate in parts per million, as the claim query compares it."""
        return round(self.sample_rate * _PPM)

    @property
    def is_drift(self) -> bool:
        """Drift rules store an embedding per span instead of a score."""
        return self.evaluator == "embedding_drift"

    @property
    def drift_field(self) -> str:
        """The span field a drift rule embeds: ``output`` (default) or ``input``."""
        return str(self.params.get("field") or "output")

    @property
    def embedding_model(self) -> str:
        """The embedding model a drift rule uses, as recorded with its vectors."""
        return str(self.params.get("model") or DEFAULT_EMBEDDING_MODEL)


@dataclass(frozen=True, slots=True)
class ClaimedSpan:
    """A span handed to a runner under a lease, with the text it needs."""

    span_id: str
    trace_id: str
    name: str
    span_type: str
    model: str
    variant: str
    start_time_ns: int
    input: str
    output: str
    system_instructions: str
    retrievals: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EmbeddingRecord:
    """One sentence embedding of a span's input or output, for drift."""

    field: str
    model: str
    start_time_ns: int
    trace_id: str
    span_id: str
    text: str
    vector: Sequence[float]


@dataclass(frozen=True, slots=True)
class DriftRecord:
    """One scheduled drift check and its verdict; ``result`` is the detector's JSON object."""

    monitor: str
    field: str
    model: str
    computed_at_ns: int
    reference_start_ns: int
    reference_end_ns: int
    current_start_ns: int
    current_end_ns: int
    drift: bool
    p_value: float | None
    n_reference: int
    n_current: int
    result: dict[str, Any]


def score_id_for(project_id: str, span_id: str, name: str, evaluator_version: str) -> str:
    """The deterministic id of a runner's score: the same (span, name, version) is always one row.

    Example:
        >>> score_id_for("p", "ab" * 8, "rouge", "1-abc") == score_id_for("p", "ab" * 8, "rouge", "1-abc")
        True
    """
    raw = "\x1f".join((project_id, span_id, name, evaluator_version)).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


_RULE_COLUMNS = [
    "project_id", "rule_id", "name", "evaluator", "params", "span_names", "models", "span_types", "tags",
    "sample_rate", "backfill_hours", "enabled", "source", "created_at", "updated_at", "deleted", "version",
]  # fmt: skip
_RULE_SELECT = (
    "SELECT rule_id, name, evaluator, params, span_names, models, span_types, tags, sample_rate, backfill_hours, "
    "enabled, source, toUnixTimestamp64Nano(created_at), toUnixTimestamp64Nano(updated_at) "
    "FROM {db}.evaluator_rules FINAL WHERE project_id = {project:String} AND NOT deleted "
)


def _rule_from_row(r: Sequence[Any]) -> EvaluatorRule:
    return EvaluatorRule(
        rule_id=r[0], name=r[1], evaluator=r[2], params=json.loads(r[3] or "{}"), span_names=tuple(r[4]),
        models=tuple(r[5]), span_types=tuple(r[6]), tags=tuple(r[7]), sample_rate=float(r[8]),
        backfill_hours=int(r[9]), enabled=bool(r[10]), source=r[11], created_at_ns=int(r[12]),
        updated_at_ns=int(r[13]),
    )  # fmt: skip


class EvaluationStore:
    """Evaluation reads and writes for one project; every statement binds ``project_id``.

    Example:
        >>> ev = EvaluationStore(store, "demo")  # doctest: +SKIP
        >>> [r.name for r in ev.list_rules()]  # doctest: +SKIP
        ['hallucination']
    """

    def __init__(self, store: ClickHouseStore, project_id: str) -> None:
        self._store = store
        self.project_id = project_id

    def _query(self, sql: str, params: dict[str, Any] | None = None) -> Sequence[Sequence[Any]]:
        return self._store.query(sql, {"project": self.project_id, **(params or {})})

    # --- rules --------------------------------------------------------------------------------
    def list_rules(self) -> list[EvaluatorRule]:
        """Every live rule, by name."""
        return [_rule_from_row(r) for r in self._query(_RULE_SELECT + "ORDER BY name")]

    def get_rule(self, rule_id: str) -> EvaluatorRule:
        """One rule; :class:`NotFoundError` when it is not this project's or was deleted."""
        rows = self._query(_RULE_SELECT + "AND rule_id = {rule:String}", {"rule": rule_id})
        if not rows:
            raise NotFoundError(f"evaluator rule {rule_id!r} not found")
        return _rule_from_row(rows[0])

    def has_any_rule_ever(self) -> bool:
        """Whether this project ever had a rule, deleted ones included (so defaults are seeded once)."""
        rows = self._query("SELECT 1 FROM {db}.evaluator_rules WHERE project_id = {project:String} LIMIT 1")
        return bool(rows)

    def save_rule(self, rule: EvaluatorRule, *, deleted: bool = False) -> EvaluatorRule:
        """Create or replace a rule (the newest write wins)."""
        now = time.time_ns()
        created = rule.created_at_ns or now
        values = [
            self.project_id, rule.rule_id, rule.name, rule.evaluator, json.dumps(rule.params, sort_keys=True),
            list(rule.span_names), list(rule.models), list(rule.span_types), list(rule.tags), rule.sample_rate,
            rule.backfill_hours, rule.enabled, rule.source, created // 1_000_000, now // 1_000_000, deleted, now,
        ]  # fmt: skip
        self._store._insert("evaluator_rules", [[v] for v in values], _RULE_COLUMNS)
        ms = 1_000_000
        return EvaluatorRule(
            rule_id=rule.rule_id, name=rule.name, evaluator=rule.evaluator, params=rule.params,
            span_names=rule.span_names, models=rule.models, span_types=rule.span_types, tags=rule.tags,
            sample_rate=rule.sample_rate, backfill_hours=rule.backfill_hours, enabled=rule.enabled,
            source=rule.source, created_at_ns=created // ms * ms, updated_at_ns=now // ms * ms,
        )  # fmt: skip

    def delete_rule(self, rule_id: str) -> None:
        """Soft-delete a rule; its scores stay."""
        self.save_rule(self.get_rule(rule_id), deleted=True)

    # --- claims -------------------------------------------------------------------------------
    def claim(
        self, rule: EvaluatorRule, evaluator_version: str, *, limit: int, lease_s: float, runner: str
    ) -> tuple[str, list[ClaimedSpan]]:
        """Lease up to ``limit`` sampled spans that ``rule`` has not evaluated at this version."""
        since = rule.created_at_ns - rule.backfill_hours * _HOUR_NS
        params: dict[str, Any] = {
            "rule": rule.rule_id, "since": max(since, 0), "ppm": rule.sample_ppm, "n": limit,
            "names": list(rule.span_names), "models": list(rule.models), "types": list(rule.span_types),
            "tags": list(rule.tags), "score_name": rule.name, "ver": evaluator_version,
            "field": rule.drift_field, "emodel": rule.embedding_model,
        }  # fmt: skip
        if rule.is_drift:
            done = (
                "SELECT span_id FROM {db}.embeddings WHERE project_id = {project:String} AND rule_id = {rule:String} "
                "AND field = {field:String} AND model = {emodel:String} "
                "AND start_time >= fromUnixTimestamp64Nano({since:Int64}, 'UTC')"
            )
        else:
            done = (
                "SELECT span_id FROM {db}.scores WHERE project_id = {project:String} "
                "AND name = {score_name:String} AND evaluator_version = {ver:String}"
            )
        sql = (
            "SELECT span_id, trace_id, name, span_type, model, variant, toUnixTimestamp64Nano(start_time), "  # noqa: S608 - fixed SQL fragments; every value is a bound parameter
            "input, output, system_instructions FROM {db}.spans "
            "WHERE project_id = {project:String} AND start_time >= fromUnixTimestamp64Nano({since:Int64}, 'UTC') "
            "AND (empty({names:Array(String)}) OR has({names:Array(String)}, name)) "
            "AND (empty({models:Array(String)}) OR has({models:Array(String)}, model)) "
            "AND (empty({types:Array(String)}) OR has({types:Array(String)}, span_type)) "
            "AND (empty({tags:Array(String)}) OR hasAny(tags, {tags:Array(String)})) "
            "AND cityHash64(span_id, {rule:String}) % 1000000 < {ppm:UInt32} "
            f"AND span_id NOT IN ({done}) "
            "AND span_id NOT IN (SELECT span_id FROM {db}.eval_leases FINAL WHERE project_id = {project:String} "
            "AND rule_id = {rule:String} AND expires_at > now64(3)) "
            "ORDER BY start_time, span_id LIMIT 1 BY span_id LIMIT {n:UInt32}"
        )
        lease_id = uuid.uuid4().hex
        with _claim_lock:
            rows = self._query(sql, params)
            if rows:
                now = time.time_ns()
                expires = (now + int(lease_s * 1e9)) // 1_000_000
                n = len(rows)
                self._store._insert(
                    "eval_leases",
                    [[self.project_id] * n, [rule.rule_id] * n, [r[0] for r in rows], [lease_id] * n,
                     [runner] * n, [expires] * n, [now] * n],
                    ["project_id", "rule_id", "span_id", "lease_id", "runner", "expires_at", "version"],
                )  # fmt: skip
        retrievals = self._retrievals([r[1] for r in rows]) if rows and not rule.is_drift else {}
        spans = [
            ClaimedSpan(
                span_id=r[0], trace_id=r[1], name=r[2], span_type=r[3], model=r[4], variant=r[5],
                start_time_ns=int(r[6]), input=r[7], output=r[8], system_instructions=r[9],
                retrievals=tuple(retrievals.get(r[1], ())),
            )
            for r in rows
        ]  # fmt: skip
        return lease_id, spans

    def _retrievals(self, trace_ids: list[str]) -> dict[str, list[str]]:
        # The documents a RAG answer should be grounded in are the outputs of its trace's retrieval spans.
        rows = self._query(
            "SELECT trace_id, output FROM {db}.spans WHERE project_id = {project:String} "
            "AND trace_id IN {ids:Array(String)} AND span_type = 'retrieval' AND output != '' "
            "ORDER BY start_time LIMIT 1 BY trace_id, span_id",
            {"ids": sorted(set(trace_ids))},
        )
        out: dict[str, list[str]] = {}
        for trace_id, output in rows:
            out.setdefault(trace_id, []).append(output)
        return out

    def release(self, lease_id: str) -> int:
        """End a lease early (a runner shutting down); its unscored spans become claimable at once."""
        rows = self._query(
            "SELECT rule_id, span_id, runner FROM {db}.eval_leases FINAL WHERE project_id = {project:String} "
            "AND lease_id = {lease:String} AND expires_at > now64(3)",
            {"lease": lease_id},
        )
        if rows:
            now = time.time_ns()
            n = len(rows)
            self._store._insert(
                "eval_leases",
                [[self.project_id] * n, [r[0] for r in rows], [r[1] for r in rows], [lease_id] * n,
                 [r[2] for r in rows], [now // 1_000_000] * n, [now] * n],
                ["project_id", "rule_id", "span_id", "lease_id", "runner", "expires_at", "version"],
            )  # fmt: skip
        return len(rows)

    # --- embeddings ---------------------------------------------------------------------------
    def insert_embeddings(self, rule: EvaluatorRule, records: Sequence[EmbeddingRecord], retention_days: int) -> None:
        """Store a drift rule's embeddings; a re-posted span replaces the older row."""
        if not records:
            return
        now = time.time_ns()
        n = len(records)
        self._store._insert(
            "embeddings",
            [[self.project_id] * n, [rule.rule_id] * n, [r.field for r in records], [r.model for r in records],
             [r.start_time_ns for r in records], [r.trace_id for r in records], [r.span_id for r in records],
             [r.text for r in records], [list(r.vector) for r in records], [retention_days] * n, [now] * n],
            ["project_id", "rule_id", "field", "model", "start_time", "trace_id", "span_id", "text", "vector",
             "retention_days", "version"],
        )  # fmt: skip

    def embeddings_window(
        self, rule: EvaluatorRule, from_ns: int, to_ns: int, limit: int
    ) -> list[tuple[str, str, list[float]]]:
        """Up to ``limit`` (span_id, text, vector) of a drift rule's spans started in [from, to).

        A stable pseudo-random sample; only vectors of the rule's current field and model, so a
        changed model never mixes dimensions.
        """
        rows = self._query(
            "SELECT span_id, text, vector FROM {db}.embeddings WHERE project_id = {project:String} "
            "AND rule_id = {rule:String} AND field = {field:String} AND model = {model:String} AND text != '' "
            "AND start_time >= fromUnixTimestamp64Nano({lo:Int64}, 'UTC') "
            "AND start_time < fromUnixTimestamp64Nano({hi:Int64}, 'UTC') "
            "ORDER BY cityHash64(span_id), span_id LIMIT 1 BY span_id LIMIT {n:UInt32}",
            {
                "rule": rule.rule_id,
                "field": rule.drift_field,
                "model": rule.embedding_model,
                "lo": from_ns,
                "hi": to_ns,
                "n": limit,
            },
        )
        return [(r[0], r[1], list(r[2])) for r in rows]

    # --- human feedback -----------------------------------------------------------------------
    def human_feedback_rows(self, from_ns: int, to_ns: int, limit: int = 50_000) -> list[dict[str, Any]]:
        """Human scores recorded in [from, to], each with its trace's model and variant."""
        rows = self._query(
            "SELECT trace_id, name, value, label, explanation FROM {db}.scores FINAL "
            "WHERE project_id = {project:String} AND source = 'human' "
            "AND created_at >= fromUnixTimestamp64Nano({lo:Int64}, 'UTC') "
            "AND created_at <= fromUnixTimestamp64Nano({hi:Int64}, 'UTC') "
            "ORDER BY created_at DESC LIMIT {n:UInt32}",
            {"lo": from_ns, "hi": to_ns, "n": limit},
        )
        ids = sorted({r[0] for r in rows})
        traits: dict[str, tuple[str, str]] = {}
        if ids:
            for trace_id, model, variant in self._query(
                "SELECT trace_id, anyIf(model, model != ''), anyIf(variant, variant != '') FROM {db}.spans "
                "WHERE project_id = {project:String} AND trace_id IN {ids:Array(String)} GROUP BY trace_id",
                {"ids": ids},
            ):
                traits[trace_id] = (model, variant)
        return [
            {"trace_id": r[0], "name": r[1], "value": r[2], "label": r[3], "explanation": r[4],
             "model": traits.get(r[0], ("", ""))[0] or None, "variant": traits.get(r[0], ("", ""))[1] or None}
            for r in rows
        ]  # fmt: skip

    # --- drift results ------------------------------------------------------------------------
    def insert_drift(self, record: DriftRecord) -> None:
        """Store one drift check."""
        ms = 1_000_000
        now = time.time_ns()
        r = record
        values = [
            self.project_id, r.monitor, r.field, r.model, r.computed_at_ns // ms, r.reference_start_ns // ms,
            r.reference_end_ns // ms, r.current_start_ns // ms, r.current_end_ns // ms, r.drift, r.p_value,
            r.n_reference, r.n_current, json.dumps(r.result), now,
        ]  # fmt: skip
        self._store._insert(
            "drift_results",
            [[v] for v in values],
            ["project_id", "monitor", "field", "model", "computed_at", "reference_start", "reference_end",
             "current_start", "current_end", "drift", "p_value", "n_reference", "n_current", "result", "version"],
        )  # fmt: skip

    def list_drift(
        self, *, monitor: str | None = None, from_ns: int | None = None, to_ns: int | None = None, limit: int = 100
    ) -> list[DriftRecord]:
        """Drift checks, newest first."""
        where = "project_id = {project:String}"
        params: dict[str, Any] = {"lo": from_ns or 0, "hi": to_ns if to_ns is not None else time.time_ns() + _HOUR_NS}
        if monitor is not None:
            where += " AND monitor = {monitor:String}"
            params["monitor"] = monitor
        params["n"] = limit
        rows = self._query(
            "SELECT monitor, field, model, toUnixTimestamp64Nano(computed_at), toUnixTimestamp64Nano(reference_start), "  # noqa: S608 - fixed SQL fragments; every value is a bound parameter
            "toUnixTimestamp64Nano(reference_end), toUnixTimestamp64Nano(current_start), "
            "toUnixTimestamp64Nano(current_end), drift, p_value, n_reference, n_current, result "
            f"FROM {{db}}.drift_results FINAL WHERE {where} "
            "AND computed_at >= fromUnixTimestamp64Nano({lo:Int64}, 'UTC') "
            "AND computed_at <= fromUnixTimestamp64Nano({hi:Int64}, 'UTC') "
            "ORDER BY computed_at DESC LIMIT {n:UInt32}",
            params,
        )
        return [
            DriftRecord(
                monitor=r[0], field=r[1], model=r[2], computed_at_ns=int(r[3]), reference_start_ns=int(r[4]),
                reference_end_ns=int(r[5]), current_start_ns=int(r[6]), current_end_ns=int(r[7]),
                drift=bool(r[8]), p_value=r[9], n_reference=int(r[10]), n_current=int(r[11]),
                result=json.loads(r[12] or "{}"),
            )
            for r in rows
        ]  # fmt: skip

    def claim_drift_check(self, rule: EvaluatorRule, *, every_s: float, lease_s: float, runner: str) -> bool:
        """Whether this runner should run ``rule``'s drift check now: it is due and nobody else holds it."""
        lease_key = "__drift__"
        with _claim_lock:
            last = self._query(
                "SELECT toUnixTimestamp64Nano(max(computed_at)), count() FROM {db}.drift_results "
                "WHERE project_id = {project:String} AND monitor = {monitor:String}",
                {"monitor": rule.name},
            )
            if last and int(last[0][1]) and time.time_ns() - int(last[0][0]) < every_s * 1e9:
                return False
            held = self._query(
                "SELECT 1 FROM {db}.eval_leases FINAL WHERE project_id = {project:String} AND rule_id = {rule:String} "
                "AND span_id = {key:String} AND expires_at > now64(3) AND runner != {runner:String}",
                {"rule": rule.rule_id, "key": lease_key, "runner": runner},
            )
            if held:
                return False
            now = time.time_ns()
            self._store._insert(
                "eval_leases",
                [[self.project_id], [rule.rule_id], [lease_key], [uuid.uuid4().hex], [runner],
                 [(now + int(lease_s * 1e9)) // 1_000_000], [now]],
                ["project_id", "rule_id", "span_id", "lease_id", "runner", "expires_at", "version"],
            )  # fmt: skip
            return True
