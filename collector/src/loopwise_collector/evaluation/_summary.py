"""Per-evaluator statistics for ``loopwise eval``: summary.json's numbers and the table printed at the end.

Only the float values are kept (percentiles need them all); rows and scores stream past.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from loopwise_collector.evaluators import Score
from loopwise_collector.evaluators._types import finite


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by linear interpolation, as ``numpy.percentile`` computes it.

    Example:
        >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile([1.0, 2.0, 3.0, 4.0], 95)
        (2.5, 3.85)
        >>> percentile([], 50) is None
        True
    """
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


class Tally:
    """One evaluator's running totals: values of good scores, error count, label counts.

    Example:
        >>> t = Tally("bleu", "1-ab12cd34")
        >>> t.add([Score("bleu", 10.0), Score("bleu", 30.0), Score.error("bleu", "boom")])
        >>> s = t.stats()
        >>> s["n"], s["errors"], s["mean"], s["p50"]
        (2, 1, 20.0, 20.0)
    """

    def __init__(self, name: str, version: str) -> None:
        self.name = name
        self.version = version
        self.values: list[float] = []
        self.errors = 0
        self.no_value = 0
        self.labels: dict[str, int] = {}
        self.first_error = ""

    def add(self, scores: Iterable[Score]) -> None:
        """Count a batch of this evaluator's scores."""
        for score in scores:
            if score.is_error:
                self.errors += 1
                self.first_error = self.first_error or score.explanation
                continue
            if score.label:
                self.labels[score.label] = self.labels.get(score.label, 0) + 1
            value = finite(score.value)
            if value is None:
                self.no_value += 1
            else:
                self.values.append(value)

    def stats(self) -> dict[str, Any]:
        """``n`` (scores with a value), ``errors``, ``mean``, ``p50``, ``p95`` (null when ``n`` is 0), the
        evaluator ``version``, and the ``labels`` counted; ``no_value`` only when some good score had none."""
        ordered = sorted(self.values)
        out: dict[str, Any] = {
            "n": len(ordered),
            "errors": self.errors,
            "mean": math.fsum(ordered) / len(ordered) if ordered else None,
            "p50": percentile(ordered, 50),
            "p95": percentile(ordered, 95),
            "version": self.version,
            "labels": dict(sorted(self.labels.items())),
        }
        if self.no_value:
            out["no_value"] = self.no_value
        return out


def _number(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"


def format_table(summary: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The end-of-run table: one line per evaluator, then the scalar aggregate results.

    Example:
        >>> stats = {"bleu": {"n": 2, "errors": 0, "mean": 20.0, "p50": 20.0, "p95": 29.0,
        ...                   "aggregate": {"corpus_bleu": 21.5, "signature": "nrefs:1|case:mixed"}}}
        >>> print("\\n".join(format_table(stats)))
        evaluator      n  errors       mean        p50        p95
        bleu           2       0    20.0000    20.0000    29.0000
          bleu: corpus_bleu 21.5000
    """
    width = max([len("evaluator"), *(len(name) for name in summary)])
    lines = [f"{'evaluator':<{width}} {'n':>6} {'errors':>7} {'mean':>10} {'p50':>10} {'p95':>10}"]
    for name, s in summary.items():
        lines.append(
            f"{name:<{width}} {s['n']:>6} {s['errors']:>7} {_number(s['mean']):>10} {_number(s['p50']):>10} "
            f"{_number(s['p95']):>10}"
        )
    for name, s in summary.items():
        highlights = _highlights(s.get("aggregate") or {})
        if highlights:
            lines.append(f"  {name}: {', '.join(highlights)}")
    return lines


def _highlights(aggregate: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Numbers and booleans worth a glance, one nested level deep (strings and lists stay in summary.json)."""
    out = []
    for key, value in aggregate.items():
        if isinstance(value, Mapping) and not prefix:
            out.extend(_highlights(value, prefix=f"{key}."))
        elif isinstance(value, bool):
            out.append(f"{prefix}{key} {str(value).lower()}")
        elif isinstance(value, int):
            out.append(f"{prefix}{key} {value}")
        elif isinstance(value, float):
            out.append(f"{prefix}{key} {_number(value)}")
    return out


def plain(value: Any) -> Any:
    """``value`` as plain JSON data: numpy scalars and arrays unwrapped, tuples as lists, NaN and infinity
    as ``None`` (JSON has neither), anything else unknown as its string.

    Example:
        >>> plain({"a": (1, float("nan")), "b": {2: True}})
        {'a': [1, None], 'b': {'2': True}}
    """
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    for unwrap in ("tolist", "item"):  # numpy arrays and scalars, torch tensors
        method = getattr(value, unwrap, None)
        if callable(method):
            try:
                return plain(method())
            except (TypeError, ValueError):
                break
    return str(value)
