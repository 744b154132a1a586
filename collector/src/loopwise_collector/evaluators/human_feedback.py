"""``human_feedback``: what people said about a trace (thumbs, 1-5 ratings, comments), on one 0..1 scale.

Human feedback arrives as scores with ``source="human"`` (``POST /api/v1/scores``, ``loopwise.score``).
This module reads those rows, whatever their spelling, onto one scale so thumbs and stars can be averaged
and compared across models and A/B variants:

- thumbs up is 1, thumbs down 0: a ``value`` of 1/0 (``True``/``False``) or a label such as ``up``,
  ``down``, ``thumbs_up``, ``thumbs_down``, ``like``, ``dislike``, ``+1``, ``-1``;
- a rating ``r`` on 1..5 becomes ``(r - 1) / 4``: a row whose name contains ``rating`` or ``star``, or
  any row whose value lies above 1 and at most 5;
- a value strictly between 0 and 1 is taken as already normalised;
- text in ``comment`` (or ``explanation``, as the store names it) is counted and shown, never scored.

A row named neither thumbs nor rating with ``value`` exactly 1 reads as thumbs up, not as a one-star
rating: name ratings ``rating``/``stars`` to avoid that ambiguity. Rows that fit none of these rules
(a rating of 7, a bare unknown label) are counted as ``ignored``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from loopwise_collector.evaluators._base import BaseEvaluator
from loopwise_collector.evaluators._types import ERROR_LABEL, EvalItem, Score, finite

FeedbackKind = Literal["thumbs", "rating", "score", "comment", "ignored"]
GROUP_KEYS = ("model", "variant", "name", "trace_id")
NO_FEEDBACK = "no human feedback for this item"

THUMBS_UP = frozenset({"up", "thumbs_up", "thumbsup", "thumbs-up", "thumbs up", "+1", "like", "liked", "👍"})
THUMBS_DOWN = frozenset(
    {"down", "thumbs_down", "thumbsdown", "thumbs-down", "thumbs down", "-1", "dislike", "disliked", "👎"}
)
_MAX_EXPLANATION = 1000


@dataclass(frozen=True, slots=True)
class Feedback:
    """One human score row, interpreted: ``value`` on 0..1 (``None`` for a comment or an ignored row).

    ``raw`` is the value on its own scale: 1/0 for thumbs, 1..5 for a rating.

    Example:
        >>> normalise_feedback({"name": "rating", "value": 4})
        Feedback(kind='rating', value=0.75, raw=4.0, comment='')
        >>> normalise_feedback({"name": "thumbs", "label": "down", "comment": "wrong city"}).value
        0.0
    """

    kind: FeedbackKind
    value: float | None
    raw: float | None
    comment: str


def normalise_feedback(row: Mapping[str, Any]) -> Feedback:
    """Read one human score row (``name``, ``value``, ``label``, ``comment``/``explanation``) onto 0..1.

    Example:
        >>> [normalise_feedback(r).value for r in (
        ...     {"name": "thumbs", "value": 1}, {"name": "thumbs", "value": False},
        ...     {"name": "stars", "value": 1}, {"name": "csat", "value": 5}, {"name": "x", "label": "👍"})]
        [1.0, 0.0, 0.0, 1.0, 1.0]
        >>> normalise_feedback({"name": "note", "comment": "too long"}).kind
        'comment'
    """
    name = str(row.get("name") or "").strip().lower()
    label = str(row.get("label") or "").strip().lower()
    comment = str(row.get("comment") or row.get("explanation") or "").strip()
    raw = row.get("value")
    number = finite(raw)

    def thumbs(up: bool) -> Feedback:
        return Feedback("thumbs", 1.0 if up else 0.0, 1.0 if up else 0.0, comment)

    def rating(r: float) -> Feedback:
        return Feedback("rating", (r - 1.0) / 4.0, r, comment)

    unusable = Feedback("comment" if comment else "ignored", None, None, comment)
    if isinstance(raw, bool):
        return thumbs(raw)
    if "rating" in name or "star" in name:
        return rating(number) if number is not None and 1.0 <= number <= 5.0 else unusable
    if number is None:
        # A label alone can still be a vote: the SDK sends a string value as the label.
        if label in THUMBS_UP or (not label and name in THUMBS_UP):
            return thumbs(True)
        if label in THUMBS_DOWN or (not label and name in THUMBS_DOWN):
            return thumbs(False)
        return unusable
    if "thumb" in name or name == "vote" or name in THUMBS_UP or name in THUMBS_DOWN:
        # A row named for the down vote ("thumbs_down", value 1) records a down vote.
        return thumbs((number > 0) != (name in THUMBS_DOWN))
    if number in (0.0, 1.0):
        return thumbs(number == 1.0)
    if 1.0 < number <= 5.0:
        return rating(number)
    if 0.0 < number < 1.0:
        return Feedback("score", number, number, comment)
    return unusable


def _sentiment(values: Sequence[float]) -> str:
    # Each piece of feedback leans positive above the middle of the scale (a 3/5 rating is neutral).
    leanings = {"positive" if v > 0.5 else "negative" if v < 0.5 else "neutral" for v in values}
    return leanings.pop() if len(leanings) == 1 else "mixed"


def _summary(group: str | None, traces: Mapping[str, Sequence[Feedback]]) -> dict[str, Any]:
    """The statistics of one group; each trace weighs the same, however much feedback it got."""
    feedback = [f for per_trace in traces.values() for f in per_trace]
    trace_means = [
        sum(values) / len(values)
        for per_trace in traces.values()
        if (values := [f.value for f in per_trace if f.value is not None])
    ]
    up = sum(1 for f in feedback if f.kind == "thumbs" and f.value == 1.0)
    down = sum(1 for f in feedback if f.kind == "thumbs" and f.value == 0.0)
    ratings = [f.raw for f in feedback if f.kind == "rating" and f.raw is not None]
    return {
        "group": group,
        "traces": len(traces),
        "n": sum(1 for f in feedback if f.value is not None),
        "mean": sum(trace_means) / len(trace_means) if trace_means else None,
        "thumbs_up": up,
        "thumbs_down": down,
        "thumbs_up_rate": up / (up + down) if up + down else None,
        "ratings": len(ratings),
        "rating_mean": sum(ratings) / len(ratings) if ratings else None,
        "comments": sum(1 for f in feedback if f.comment),
        "ignored": sum(1 for f in feedback if f.kind == "ignored"),
    }


def _group_key(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _grouped(entries: Iterable[tuple[str | None, str, Feedback]]) -> list[dict[str, Any]]:
    groups: dict[str | None, dict[str, list[Feedback]]] = {}
    for group, trace, feedback in entries:
        groups.setdefault(group, {}).setdefault(trace, []).append(feedback)
    # Named groups in order, the rows that lack the key (None) last.
    order = sorted(groups, key=lambda g: (g is None, g or ""))
    return [_summary(g, groups[g]) for g in order]


def summarize_feedback(rows: Iterable[Mapping[str, Any]], group_by: str = "model") -> list[dict[str, Any]]:
    """Summarise human score rows per ``group_by`` (``model``, ``variant``, ``name`` or ``trace_id``).

    ``rows`` are score rows with ``trace_id``, ``name``, ``value``, ``label``, ``explanation`` (or
    ``comment``), ``model`` and ``variant``; a row with a ``source`` other than ``human`` is skipped.
    Returns one dict per group, sorted by group with the rows lacking the key (``group: None``) last:

    - ``group``: the group's value; ``traces``: traces with any feedback; ``n``: rows with a usable value;
    - ``mean``: the mean normalised feedback (0..1), each trace weighing the same; ``None`` when ``n == 0``;
    - ``thumbs_up``, ``thumbs_down``, ``thumbs_up_rate`` (``None`` without thumbs);
    - ``ratings``, ``rating_mean`` (on the raw 1..5 scale; ``None`` without ratings);
    - ``comments``: rows with text; ``ignored``: rows that could not be read as feedback.

    Example:
        >>> rows = [
        ...     {"trace_id": "t1", "name": "thumbs", "value": 1, "model": "gpt-4o", "explanation": "great"},
        ...     {"trace_id": "t2", "name": "rating", "value": 2, "model": "gpt-4o"},
        ...     {"trace_id": "t3", "name": "thumbs", "value": 0, "model": "llama-3"},
        ... ]
        >>> [(s["group"], s["mean"], s["thumbs_up_rate"], s["rating_mean"]) for s in summarize_feedback(rows)]
        [('gpt-4o', 0.625, 1.0, 2.0), ('llama-3', 0.0, 0.0, None)]
    """
    if group_by not in GROUP_KEYS:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_KEYS)}, not {group_by!r}")

    def entries() -> Iterator[tuple[str | None, str, Feedback]]:
        for i, row in enumerate(rows):
            if row.get("source") not in (None, "", "human"):
                continue
            # A row without a trace id stands alone rather than pooling with other orphans.
            trace = str(row.get("trace_id") or f"#row{i}")
            yield _group_key(row.get(group_by)), trace, normalise_feedback(row)

    return _grouped(entries())


class HumanFeedback(BaseEvaluator):
    """Turn each item's human feedback into one score on 0..1, and summarise it per model and variant.

    Items carry their feedback in ``item.metadata["feedback"]``: a list of human score rows, as stored by
    ``POST /api/v1/scores`` with ``source="human"`` (see :func:`normalise_feedback` for how each row is
    read). ``value`` is the mean normalised feedback; ``label`` is ``positive``, ``negative``, ``neutral``
    (every piece at the middle, e.g. a 3/5) or ``mixed``; ``explanation`` joins the comments.

    An item without any rated feedback gets an error score, ``"no human feedback for this item"``: a
    ``Score`` keeps ``value=None`` for "not measured", and an absent opinion must not read as a zero.
    Its metadata still counts the comments, if any.

    Example:
        >>> hf = HumanFeedback()
        >>> item = EvalItem(metadata={"model": "gpt-4o", "feedback": [
        ...     {"name": "thumbs", "value": 1, "comment": "spot on"}, {"name": "rating", "value": 4}]})
        >>> s = hf.evaluate([item])[0]
        >>> s.value, s.label, s.explanation
        (0.875, 'positive', 'spot on')
        >>> hf.evaluate([EvalItem()])[0].explanation
        'no human feedback for this item'
    """

    name = "human_feedback"
    kind = "human"
    code_version = "1"
    requires = frozenset()
    value_range = (0.0, 1.0)

    def score_batch(self, items: Sequence[EvalItem]) -> list[Score]:
        """One score per item from its ``metadata["feedback"]`` rows."""
        return [self._score(item) for item in items]

    def aggregate(self, items: Sequence[EvalItem], scores: Sequence[Score]) -> dict[str, Any]:
        """Feedback statistics overall, per ``metadata["model"]`` and per ``metadata["variant"]``.

        Each part has the shape of a :func:`summarize_feedback` row; items count as traces (by
        ``metadata["trace_id"]`` where given). ``scores`` is not needed: the statistics come from the rows.

        Example:
            >>> items = [EvalItem(metadata={"variant": v, "feedback": [{"name": "thumbs", "value": x}]})
            ...          for v, x in [("a", 1), ("a", 1), ("b", 0)]]
            >>> [(g["group"], g["thumbs_up_rate"]) for g in HumanFeedback().aggregate(items, [])["by_variant"]]
            [('a', 1.0), ('b', 0.0)]
        """
        rows: list[tuple[Mapping[str, Any], str, Feedback]] = []
        for i, item in enumerate(items):
            trace = str(item.metadata.get("trace_id") or f"#item{i}")
            rows.extend((item.metadata, trace, f) for f in _feedback_of(item) or ())
        overall = _grouped((None, trace, f) for _, trace, f in rows)
        return {
            "overall": overall[0] if overall else _summary(None, {}),
            "by_model": _grouped((_group_key(m.get("model")), trace, f) for m, trace, f in rows),
            "by_variant": _grouped((_group_key(m.get("variant")), trace, f) for m, trace, f in rows),
        }

    def _score(self, item: EvalItem) -> Score:
        feedback = _feedback_of(item)
        if feedback is None:
            return Score.error(self.name, "metadata['feedback'] must be a list of human score rows")
        values = [f.value for f in feedback if f.value is not None]
        ratings = [f.raw for f in feedback if f.kind == "rating" and f.raw is not None]
        comments = [f.comment for f in feedback if f.comment]
        meta = {
            "n": len(values),
            "thumbs_up": sum(1 for f in feedback if f.kind == "thumbs" and f.value == 1.0),
            "thumbs_down": sum(1 for f in feedback if f.kind == "thumbs" and f.value == 0.0),
            "ratings": len(ratings),
            "rating_mean": sum(ratings) / len(ratings) if ratings else None,
            "comments": len(comments),
            "ignored": sum(1 for f in feedback if f.kind == "ignored"),
        }
        text = " | ".join(comments)
        if len(text) > _MAX_EXPLANATION:
            text = text[: _MAX_EXPLANATION - 1] + "…"
        if not values:
            reason = NO_FEEDBACK if not comments else f"{NO_FEEDBACK} (comments only: {text})"
            return Score(self.name, None, ERROR_LABEL, reason, meta)
        return Score(self.name, sum(values) / len(values), _sentiment(values), text, meta)


def _feedback_of(item: EvalItem) -> list[Feedback] | None:
    """The item's feedback rows, read; ``None`` when ``metadata["feedback"]`` is not a list."""
    rows = item.metadata.get("feedback")
    if rows is None:
        return []
    if isinstance(rows, str | bytes | Mapping) or not isinstance(rows, Iterable):
        return None
    return [
        normalise_feedback(r) if isinstance(r, Mapping) else Feedback("ignored", None, None, "")
        for r in rows
        if not isinstance(r, Mapping) or r.get("source") in (None, "", "human")
    ]
