"""Score statistics for the dashboard's Evaluations page: distributions per evaluator, and the worst traces.

Everything is computed by ClickHouse in one or two statements. Quantiles are exact
(``quantilesExactInclusive``), since the page compares evaluators whose scores sit close together.
Histogram bins are per score name, not per group, so the groups of one evaluator (models, variants,
days) share their bin edges and can be drawn on one axis.

Model and variant come from the spans. Scores and spans are different tables (on a cluster, different
Distributed tables), so the span lookup is a subquery joined with GLOBAL: ClickHouse's default
``distributed_product_mode=deny`` refuses a plain JOIN or IN across two Distributed tables, while a
GLOBAL one runs the right side once and ships it to the shards. On a single server GLOBAL changes nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from loopwise_collector.errors import InvalidQueryError

HISTOGRAM_BINS = 10
SCORE_GROUPS = ("name", "model", "variant", "day", "hour")
SCORE_SOURCES = ("human", "api", "evaluator", "offline")
MAX_WORST = 500
_HOUR_NS = 3_600_000_000_000

_TIME_GROUPS = {
    "name": "''",
    "day": "toString(toDate(s.created_at))",
    "hour": "formatDateTime(toStartOfHour(s.created_at), '%Y-%m-%dT%H:00:00Z')",
}
# The span's own value when it has one, else the trace's earliest non-empty value: a score of the root
# span or of the whole trace (span_id '') is attributed to the model that answered first in it.
_SPAN_GROUP = "if(indexOf(t.sids, s.span_id) > 0, t.vals[indexOf(t.sids, s.span_id)], t.first)"
_BINS_SQL = "[" + ", ".join(f"countIf(s.b = {i})" for i in range(HISTOGRAM_BINS)) + "]"

Query = Callable[[str, dict[str, Any]], Sequence[Sequence[Any]]]


@dataclass(frozen=True, slots=True)
class ScoreStats:
    """Statistics of one score name within one group (``group`` is ``""`` when grouped by name only).

    ``n`` counts the scores with a value; the statistics are over those and are ``None`` when ``n`` is 0.

    Example:
        >>> ScoreStats("faithfulness", "", 2, 2, 0, 0.5, 0.1, 0.5, 0.9, 0.0, 1.0, (1,) + (0,) * 8 + (1,)).n
        2
    """

    name: str
    group: str
    count: int
    n: int
    errors: int
    mean: float | None
    p10: float | None
    p50: float | None
    p90: float | None
    min: float | None
    max: float | None
    histogram: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ScoreSummary:
    """Rows per (name, group), plus the histogram's bin edges per name (``HISTOGRAM_BINS + 1`` each)."""

    rows: list[ScoreStats]
    edges: dict[str, list[float]]


@dataclass(frozen=True, slots=True)
class WorstScore:
    """A trace's lowest value of one score name, with the score that gave it.

    Example:
        >>> WorstScore("ab" * 16, "faithfulness", 0.1, 0.4, 3, "", "s1", "", "", 0).score_count
        3
    """

    trace_id: str
    name: str
    value: float
    mean: float
    score_count: int
    span_id: str
    score_id: str
    label: str
    explanation: str
    created_at_ns: int


def histogram_edges(lo: float, hi: float) -> list[float]:
    """The ``HISTOGRAM_BINS + 1`` edges ``lo + (hi - lo) * i / bins``; value ``v`` falls in bin
    ``min(bins - 1, floor((v - lo) / (hi - lo) * bins))``, or bin 0 when ``hi == lo``.

    Example:
        >>> histogram_edges(0.0, 1.0)[:3]
        [0.0, 0.1, 0.2]
    """
    return [lo + (hi - lo) * i / HISTOGRAM_BINS for i in range(HISTOGRAM_BINS)] + [hi]


def _where(from_ns: int | None, to_ns: int | None, name: str | None, source: str | None) -> tuple[str, dict[str, Any]]:
    lo = from_ns or 0
    hi = to_ns if to_ns is not None else time.time_ns() + _HOUR_NS
    if lo > hi:
        raise InvalidQueryError("'from' must not be after 'to'")
    if source is not None and source not in SCORE_SOURCES:
        raise InvalidQueryError(f"source must be one of {list(SCORE_SOURCES)}")
    sql = (
        "project_id = {project:String} AND created_at >= fromUnixTimestamp64Nano({lo:Int64}, 'UTC') "
        "AND created_at <= fromUnixTimestamp64Nano({hi:Int64}, 'UTC')"
    )
    params: dict[str, Any] = {"lo": lo, "hi": hi}
    if name is not None:
        sql += " AND name = {name:String}"
        params["name"] = name
    if source is not None:
        sql += " AND source = {source:String}"
        params["source"] = source
    return sql, params


def score_summary(
    query: Query,
    *,
    from_ns: int | None = None,
    to_ns: int | None = None,
    name: str | None = None,
    source: str | None = None,
    group_by: str = "name",
) -> ScoreSummary:
    """Per (name, group) statistics of the scores created in [from, to]; ``query`` binds the project."""
    if group_by not in SCORE_GROUPS:
        raise InvalidQueryError(f"group_by must be one of {list(SCORE_GROUPS)}")
    where, params = _where(from_ns, to_ns, name, source)
    ranges = query(
        f"SELECT name, min(value), max(value) FROM {{db}}.scores FINAL WHERE {where} AND value IS NOT NULL "  # noqa: S608 - fixed SQL fragments; every value is a bound parameter
        "GROUP BY name",
        params,
    )
    bounds = {str(r[0]): (float(r[1]), float(r[2])) for r in ranges}
    names = sorted(bounds)
    params = params | {
        "rn": names,
        "rlo": [bounds[n][0] for n in names],
        "rhi": [bounds[n][1] for n in names],
    }
    # Bins use the same arithmetic as histogram_edges' docstring. A score written between the two
    # statements may fall outside its name's range: it is clamped into the first or last bin.
    scores = (
        "SELECT trace_id, span_id, name, value, label, created_at, "  # noqa: S608 - fixed SQL fragments; every value is a bound parameter
        "transform(name, {rn:Array(String)}, {rlo:Array(Float64)}, 0.) AS bin_lo, "
        "transform(name, {rn:Array(String)}, {rhi:Array(Float64)}, 0.) AS bin_hi, "
        f"if(value IS NULL, -1, if(bin_hi > bin_lo, toInt64(least({HISTOGRAM_BINS - 1}, greatest(0, "
        f"floor((assumeNotNull(value) - bin_lo) / (bin_hi - bin_lo) * {HISTOGRAM_BINS})))), 0)) AS b "
        f"FROM {{db}}.scores FINAL WHERE {where}"
    )
    if group_by in _TIME_GROUPS:
        group, join = _TIME_GROUPS[group_by], ""
    else:
        column = group_by  # "model" or "variant": a column name, checked against SCORE_GROUPS above
        group = _SPAN_GROUP
        join = (
            f"GLOBAL LEFT JOIN (SELECT trace_id, groupArrayIf(span_id, {column} != '') AS sids, "  # noqa: S608 - fixed SQL fragments; every value is a bound parameter
            f"groupArrayIf({column}, {column} != '') AS vals, argMinIf({column}, start_time, {column} != '') AS first "
            "FROM {db}.spans WHERE project_id = {project:String} "
            f"AND trace_id GLOBAL IN (SELECT trace_id FROM {{db}}.scores WHERE {where}) "
            "GROUP BY trace_id) AS t ON s.trace_id = t.trace_id "
        )
    rows = query(
        f"SELECT s.name AS sname, {group} AS g, count(), countIf(s.value IS NULL AND s.label = 'error'), "  # noqa: S608 - fixed SQL fragments; every value is a bound parameter
        "count(s.value), avg(s.value), quantilesExactInclusive(0.1, 0.5, 0.9)(s.value), min(s.value), max(s.value), "
        f"{_BINS_SQL} FROM ({scores}) AS s {join}GROUP BY sname, g ORDER BY sname, g",
        params,
    )
    out = []
    for r in rows:
        n = int(r[4])
        quantiles = [float(v) for v in r[6]] if n else [None, None, None]
        out.append(
            ScoreStats(
                name=str(r[0]), group=str(r[1]), count=int(r[2]), errors=int(r[3]), n=n,
                mean=_finite(r[5]) if n else None, p10=quantiles[0], p50=quantiles[1], p90=quantiles[2],
                min=_finite(r[7]) if n else None, max=_finite(r[8]) if n else None,
                histogram=tuple(int(c) for c in r[9]),
            )
        )  # fmt: skip
    return ScoreSummary(out, {n: histogram_edges(*bounds[n]) for n in names})


def worst_scores(
    query: Query,
    *,
    name: str,
    from_ns: int | None = None,
    to_ns: int | None = None,
    source: str | None = None,
    limit: int = 20,
) -> list[WorstScore]:
    """The traces with the lowest value of score ``name``, lowest first, one row per trace."""
    if not 1 <= limit <= MAX_WORST:
        raise InvalidQueryError(f"limit must be between 1 and {MAX_WORST}")
    where, params = _where(from_ns, to_ns, name, source)
    # Offline scores of dataset rows carry no trace (trace_id ''), so they cannot be a worst trace.
    rows = query(
        "SELECT trace_id, min(value) AS v, avg(value), count(), "  # noqa: S608 - fixed SQL fragments; every value is a bound parameter
        "argMin((span_id, score_id, label, explanation, toUnixTimestamp64Nano(created_at)), value) "
        f"FROM {{db}}.scores FINAL WHERE {where} AND value IS NOT NULL AND trace_id != '' "
        "GROUP BY trace_id ORDER BY v, trace_id LIMIT {n:UInt32}",
        params | {"n": limit},
    )
    return [
        WorstScore(
            trace_id=r[0], name=name, value=float(r[1]), mean=float(r[2]), score_count=int(r[3]), span_id=r[4][0],
            score_id=r[4][1], label=r[4][2], explanation=r[4][3], created_at_ns=int(r[4][4]),
        )
        for r in rows
    ]  # fmt: skip


def _finite(v: Any) -> float | None:
    return None if v is None or math.isnan(float(v)) else float(v)
