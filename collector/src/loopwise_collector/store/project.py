"""Project-scoped reads. Every statement here binds ``project_id``; routes never write SQL.

The trace list is keyset-paginated newest first. It finds a page in two steps, so a page over a
million spans stays cheap: (1) group only trace ids and start times inside a time window that
grows from the newest hour outwards until the page is full, then (2) aggregate the full rows of
just those traces. A trace whose earliest span falls before the window is dropped from step 1's
candidates, since its true position is in a later page; when that leaves the page short, the
window grows.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from loopwise_collector.errors import InvalidQueryError, NotFoundError
from loopwise_collector.store import score_stats
from loopwise_collector.store.models import MetricsRow, TraceCursor, TraceFilter, TracePage, TraceSummary
from loopwise_collector.store.records import SCORE_SELECT, SPAN_FIELDS, ScoreRecord, SpanRecord, score_from_row
from loopwise_collector.store.score_stats import ScoreSummary, WorstScore

if TYPE_CHECKING:
    from loopwise_collector.store.clickhouse import ClickHouseStore

_HOUR_NS = 3_600_000_000_000
# Window widths tried for step 1, newest first; None means "from the lower bound on".
_WINDOWS_NS: tuple[int | None, ...] = (_HOUR_NS, 6 * _HOUR_NS, 24 * _HOUR_NS, 7 * 24 * _HOUR_NS, None)
_MAX_LIMIT = 500
MAX_QUERY_CHARS = 200
_Q_MATCH = (
    "countIf(positionCaseInsensitiveUTF8(name, {q:String}) > 0 OR positionCaseInsensitiveUTF8(input, {q:String}) > 0 "
    "OR positionCaseInsensitiveUTF8(output, {q:String}) > 0) > 0"
)

GROUP_BY_EXPRESSIONS = {
    "model": "model",
    "name": "name",
    "variant": "variant",
    "day": "toString(toDate(start_time))",
    "hour": "formatDateTime(toStartOfHour(start_time), '%Y-%m-%dT%H:00:00Z')",
}

# Columns in SpanRecord field order, so a row becomes a record positionally; times as integer ns.
_AS_NANOSECONDS = {
    "start_time_ns": "toUnixTimestamp64Nano(start_time)",
    "end_time_ns": "toUnixTimestamp64Nano(end_time)",
}
_SPAN_COLUMNS_SQL = ", ".join(_AS_NANOSECONDS.get(f, f) for f in SPAN_FIELDS)
_SPAN_SELECT = f"SELECT {_SPAN_COLUMNS_SQL} FROM {{db}}.spans FINAL "  # noqa: S608 - column names from the record type
_TAGS_AT = SPAN_FIELDS.index("tags")


def _now_ns() -> int:
    return time.time_ns()


class ProjectStore:
    """Reads confined to one project.

    Example:
        >>> page = store.project("demo").list_traces(TraceFilter(limit=10))  # doctest: +SKIP
        >>> [t.trace_id for t in page.traces]  # doctest: +SKIP
    """

    def __init__(self, store: ClickHouseStore, project_id: str) -> None:
        self._store = store
        self.project_id = project_id

    def _query(self, sql: str, params: dict[str, Any] | None = None) -> Sequence[Sequence[Any]]:
        return self._store.query(sql, {"project": self.project_id, **(params or {})})

    # --- traces -------------------------------------------------------------------------------
    def list_traces(self, f: TraceFilter) -> TracePage:
        """Newest-first traces matching ``f``, at most ``f.limit``, with the next page's cursor."""
        if not 1 <= f.limit <= _MAX_LIMIT:
            raise InvalidQueryError(f"limit must be between 1 and {_MAX_LIMIT}")
        upper = f.to_ns if f.to_ns is not None else _now_ns() + _HOUR_NS  # clocks skew; include near future
        if f.cursor is not None:
            upper = min(upper, f.cursor.start_time_ns)
        lower = f.from_ns if f.from_ns is not None else 0
        if lower > upper:
            raise InvalidQueryError("'from' must not be after 'to'")
        _check_search_filters(f)
        for width in _WINDOWS_NS:
            window_start = lower if width is None else max(lower, upper - width)
            page, complete = self._try_window(f, window_start, upper)
            if complete or window_start == lower:
                return page
        raise AssertionError("unreachable: the last window always reaches the lower bound")

    def _try_window(self, f: TraceFilter, window_start: int, upper: int) -> tuple[TracePage, bool]:
        params: dict[str, Any] = {"lo": window_start, "hi": upper, "n": f.limit + 1}
        having: list[str] = []
        for key, expr in (
            ("name", "argMin(name, start_time) = {name:String}"),
            ("model", "countIf(model = {model:String}) > 0"),
            ("user_id", "countIf(user_id = {user_id:String}) > 0"),
            ("session_id", "countIf(session_id = {session_id:String}) > 0"),
            ("tag", "countIf(has(tags, {tag:String})) > 0"),
            ("variant", "countIf(variant = {variant:String}) > 0"),
            # position* needs no LIKE escaping, so any text the user types is searched literally.
            ("q", _Q_MATCH),
        ):
            value = getattr(f, key)
            if value is not None:
                having.append(expr)
                params[key] = value
        if f.has_error is not None:
            having.append("max(has_error) = {has_error:Bool}")
            params["has_error"] = f.has_error
        # Step 1: candidate trace ids. Duplicated (re-sent) spans cannot change a min or a set of ids,
        # so this step skips FINAL.
        # `to` and the cursor bound where a trace *starts*. Without span filters, bounding the spans
        # read by them too is exact and cheaper; with filters, a matching span may start after the
        # bound (a long trace that began before it), so only the trace start is bounded. The score
        # filter is per trace, not per span, so it keeps the cheaper bound.
        span_upper = "" if having else "AND start_time <= fromUnixTimestamp64Nano({hi:Int64}, 'UTC') "
        if f.cursor is not None:
            having.append("(ts, trace_id) < ({cts:Int64}, {cid:String})")
            params |= {"cts": f.cursor.start_time_ns, "cid": f.cursor.trace_id}
        having.append("ts <= {hi:Int64}")
        score_in = ""
        if f.score_name is not None:
            score_in, score_params = _score_filter(f)
            params |= score_params
        candidates = self._query(
            "SELECT trace_id, toUnixTimestamp64Nano(min(start_time)) AS ts FROM {db}.spans "  # noqa: S608 - fixed SQL fragments; every value is a bound parameter
            "WHERE project_id = {project:String} "
            "AND start_time >= fromUnixTimestamp64Nano({lo:Int64}, 'UTC') "
            f"{span_upper}{score_in}"
            f"GROUP BY trace_id HAVING {' AND '.join(having)} ORDER BY ts DESC, trace_id DESC LIMIT {{n:UInt32}}",
            params,
        )
        summaries = self._summaries([row[0] for row in candidates], window_start)
        kept = [s for s in summaries if s.start_time_ns >= window_start]
        kept.sort(key=lambda s: (s.start_time_ns, s.trace_id), reverse=True)
        full = len(kept) > f.limit
        page = kept[: f.limit]
        next_cursor = TraceCursor(page[-1].start_time_ns, page[-1].trace_id).encode() if full else None
        # Complete when the page is full, or when nothing was dropped and the window is exhausted.
        complete = full
        return TracePage(page, next_cursor), complete

    def _summaries(self, trace_ids: list[str], not_before_ns: int) -> list[TraceSummary]:
        if not trace_ids:
            return []
        # Spans of a candidate may start before the window (then it is dropped) but the bloom
        # filter on trace_id keeps this to a few granules.
        rows = self._query(
            "SELECT trace_id, argMin(name, start_time), toUnixTimestamp64Nano(min(start_time)), "
            "toUnixTimestamp64Nano(max(end_time)), count(), sum(ifNull(input_tokens, 0)), "
            "sum(ifNull(output_tokens, 0)), sumOrNull(cost_usd), countIf(cost_source = 'unpriced'), "
            "max(has_error), anyIf(user_id, user_id != ''), anyIf(session_id, session_id != ''), "
            "arraySort(groupUniqArrayArray(tags)), arraySort(groupUniqArrayIf(variant, variant != '')), "
            "arraySort(groupUniqArrayIf(model, model != '')) "
            "FROM {db}.spans FINAL WHERE project_id = {project:String} AND trace_id IN {ids:Array(String)} "
            "GROUP BY trace_id",
            {"ids": trace_ids},
        )
        scores = self._score_means(trace_ids)
        return [
            TraceSummary(
                trace_id=r[0],
                name=r[1],
                start_time_ns=int(r[2]),
                end_time_ns=int(r[3]),
                span_count=int(r[4]),
                input_tokens=int(r[5]),
                output_tokens=int(r[6]),
                cost_usd=r[7],
                unpriced_span_count=int(r[8]),
                has_error=bool(r[9]),
                user_id=r[10],
                session_id=r[11],
                tags=tuple(r[12]),
                variants=tuple(r[13]),
                models=tuple(r[14]),
                scores=scores.get(r[0], {}),
            )
            for r in rows
        ]

    def _score_means(self, trace_ids: list[str]) -> dict[str, dict[str, float]]:
        rows = self._query(
            "SELECT trace_id, name, avg(value) FROM {db}.scores FINAL "
            "WHERE project_id = {project:String} AND trace_id IN {ids:Array(String)} AND value IS NOT NULL "
            "GROUP BY trace_id, name",
            {"ids": trace_ids},
        )
        out: dict[str, dict[str, float]] = {}
        for trace_id, name, mean in rows:
            out.setdefault(trace_id, {})[name] = float(mean)
        return out

    def get_trace(self, trace_id: str) -> list[SpanRecord]:
        """All spans of one trace in start order; :class:`NotFoundError` if it is not in this project."""
        rows = self._query(
            _SPAN_SELECT + "WHERE project_id = {project:String} AND trace_id = {t:String} ORDER BY start_time, span_id",
            {"t": trace_id},
        )
        if not rows:
            raise NotFoundError(f"trace {trace_id!r} not found")
        return [_span_from_row(r) for r in rows]

    def trace_exists(self, trace_id: str) -> bool:
        """Whether this project has any span of ``trace_id``."""
        rows = self._query(
            "SELECT 1 FROM {db}.spans WHERE project_id = {project:String} AND trace_id = {t:String} LIMIT 1",
            {"t": trace_id},
        )
        return bool(rows)

    # --- scores -------------------------------------------------------------------------------
    def list_scores(
        self,
        *,
        trace_id: str | None = None,
        name: str | None = None,
        source: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[ScoreRecord]:
        """Scores, newest first, optionally for one trace, name or source."""
        if not 1 <= limit <= 1000:
            raise InvalidQueryError("limit must be between 1 and 1000")
        where = ["project_id = {project:String}"]
        params: dict[str, Any] = {"lim": limit, "off": offset}
        for col, value in (("trace_id", trace_id), ("name", name), ("source", source)):
            if value is not None:
                where.append(f"{col} = {{{col}:String}}")
                params[col] = value
        rows = self._query(
            SCORE_SELECT + f"WHERE {' AND '.join(where)} ORDER BY created_at DESC, score_id "
            "LIMIT {lim:UInt32} OFFSET {off:UInt32}",
            params,
        )
        return [score_from_row(r) for r in rows]

    def score_summary(
        self,
        *,
        from_ns: int | None = None,
        to_ns: int | None = None,
        name: str | None = None,
        source: str | None = None,
        group_by: str = "name",
    ) -> ScoreSummary:
        """Per-name (and per-group) score statistics and histograms; see :mod:`.score_stats`."""
        return score_stats.score_summary(
            self._query, from_ns=from_ns, to_ns=to_ns, name=name, source=source, group_by=group_by
        )

    def worst_scores(
        self,
        *,
        name: str,
        from_ns: int | None = None,
        to_ns: int | None = None,
        source: str | None = None,
        limit: int = 20,
    ) -> list[WorstScore]:
        """The lowest-scoring traces for score ``name``, one row per trace; see :mod:`.score_stats`."""
        return score_stats.worst_scores(
            self._query, name=name, from_ns=from_ns, to_ns=to_ns, source=source, limit=limit
        )

    # --- metrics ------------------------------------------------------------------------------
    def metrics_summary(
        self, *, from_ns: int | None = None, to_ns: int | None = None, group_by: str | None = None
    ) -> list[MetricsRow]:
        """Span counts, error rate, latency percentiles, tokens and cost, optionally grouped."""
        if group_by is not None and group_by not in GROUP_BY_EXPRESSIONS:
            raise InvalidQueryError(f"group_by must be one of {sorted(GROUP_BY_EXPRESSIONS)}")
        group_expr = GROUP_BY_EXPRESSIONS[group_by] if group_by else "''"
        rows = self._query(
            f"SELECT {group_expr} AS g, count(), uniq(trace_id), countIf(has_error), "  # noqa: S608 - fixed SQL fragments; every value is a bound parameter
            "quantilesExactInclusive(0.5, 0.95, 0.99)(duration_ms), sum(ifNull(input_tokens, 0)), "
            "sum(ifNull(output_tokens, 0)), sumOrNull(cost_usd), countIf(cost_source = 'unpriced') "
            "FROM {db}.spans FINAL WHERE project_id = {project:String} "
            "AND start_time >= fromUnixTimestamp64Nano({lo:Int64}, 'UTC') "
            "AND start_time <= fromUnixTimestamp64Nano({hi:Int64}, 'UTC') "
            "GROUP BY g ORDER BY g",
            {"lo": from_ns or 0, "hi": to_ns if to_ns is not None else _now_ns() + _HOUR_NS},
        )
        return [
            MetricsRow(
                group=str(r[0]),
                span_count=int(r[1]),
                trace_count=int(r[2]),
                error_count=int(r[3]),
                latency_p50_ms=float(r[4][0]),
                latency_p95_ms=float(r[4][1]),
                latency_p99_ms=float(r[4][2]),
                input_tokens=int(r[5]),
                output_tokens=int(r[6]),
                cost_usd=r[7],
                unpriced_span_count=int(r[8]),
            )
            for r in rows
        ]

    # --- price overrides ----------------------------------------------------------------------
    def price_overrides(self) -> list[dict[str, Any]]:
        """This project's model price overrides (pattern, effective_from and per-1M prices)."""
        rows = self._query(
            "SELECT pattern, effective_from, input_per_million, output_per_million, cached_input_per_million "
            "FROM {db}.model_prices FINAL WHERE project_id = {project:String} AND NOT deleted "
            "ORDER BY pattern, effective_from"
        )
        return [
            {
                "pattern": r[0],
                "effective_from": r[1],
                "input_per_million": r[2],
                "output_per_million": r[3],
                "cached_input_per_million": r[4],
            }
            for r in rows
        ]

    def set_price_override(
        self, pattern: str, effective_from: date, input_pm: float, output_pm: float, cached_pm: float | None
    ) -> None:
        """Add or replace this project's price for ``pattern`` from ``effective_from``."""
        self._store._insert(
            "model_prices",
            [
                [self.project_id],
                [pattern],
                [effective_from],
                [input_pm],
                [output_pm],
                [cached_pm],
                [False],
                [time.time_ns()],
            ],
            [
                "project_id",
                "pattern",
                "effective_from",
                "input_per_million",
                "output_per_million",
                "cached_input_per_million",
                "deleted",
                "version",
            ],
        )


def _check_search_filters(f: TraceFilter) -> None:
    if f.q is not None and not 1 <= len(f.q) <= MAX_QUERY_CHARS:
        raise InvalidQueryError(f"q must be 1 to {MAX_QUERY_CHARS} characters")
    if f.score_name is None and (f.score_min is not None or f.score_max is not None):
        raise InvalidQueryError("score_min and score_max need score_name")
    if f.score_min is not None and f.score_max is not None and f.score_min > f.score_max:
        raise InvalidQueryError("score_min must not be greater than score_max")


def _score_filter(f: TraceFilter) -> tuple[str, dict[str, Any]]:
    """A WHERE fragment keeping the spans of traces whose mean ``score_name`` is in range."""
    having = ["1"]
    params: dict[str, Any] = {"score_name": f.score_name}
    if f.score_min is not None:
        having.append("avg(value) >= {score_min:Float64}")
        params["score_min"] = f.score_min
    if f.score_max is not None:
        having.append("avg(value) <= {score_max:Float64}")
        params["score_max"] = f.score_max
    # A subquery, not a JOIN, and GLOBAL: on a sharded cluster a plain IN over another Distributed
    # table is refused (distributed_product_mode=deny); GLOBAL runs it once and ships the id set,
    # and on a single server it is an ordinary IN. The set is computed once per step-1 query.
    sql = (
        "AND trace_id GLOBAL IN (SELECT trace_id FROM {db}.scores FINAL WHERE project_id = {project:String} "  # noqa: S608 - fixed SQL fragments; every value is a bound parameter
        "AND name = {score_name:String} AND value IS NOT NULL "
        f"GROUP BY trace_id HAVING {' AND '.join(having)}) "
    )
    return sql, params


def _span_from_row(r: Sequence[Any]) -> SpanRecord:
    values = list(r)
    values[_TAGS_AT] = tuple(values[_TAGS_AT])  # Array comes back as a list; the record holds a tuple
    return SpanRecord(*values)
