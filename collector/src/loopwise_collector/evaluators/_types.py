"""The evaluator contract: what goes in (:class:`EvalItem`), what comes out (:class:`Score`), and the protocol."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Kind = Literal["metric", "model", "llm_judge", "human"]
Field = Literal["input", "output", "reference", "context"]
ERROR_LABEL = "error"


@dataclass(frozen=True, slots=True)
class EvalItem:
    """One thing to evaluate: a dataset row offline, a sampled span online.

    ``context`` holds the retrieved documents (or the prompt) a response should be grounded in.
    ``metadata`` carries what an evaluator may want beyond the text: online, ``trace_id``,
    ``span_id``, ``model`` and ``variant``; ``feedback`` (human scores) for ``human_feedback``.

    Example:
        >>> EvalItem(output="Paris.", reference="Paris").reference
        'Paris'
        >>> EvalItem.from_row({"output": "hi", "context": "one doc"}).context
        ('one doc',)
    """

    input: str = ""
    output: str = ""
    reference: str | None = None
    context: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> EvalItem:
        """Build an item from a JSON row; ``context`` may be a string or a list of strings."""
        context = row.get("context")
        if context is None:
            docs: tuple[str, ...] = ()
        elif isinstance(context, str):
            docs = (context,)
        elif isinstance(context, list | tuple):
            docs = tuple(str(c) for c in context)
        else:
            raise TypeError(f"'context' must be a string or a list of strings, not {type(context).__name__}")
        reference = row.get("reference")
        meta = row.get("metadata")
        return cls(
            input=_text(row.get("input")),
            output=_text(row.get("output")),
            reference=None if reference is None else _text(reference),
            context=docs,
            metadata=dict(meta) if isinstance(meta, Mapping) else {},
        )

    def has(self, name: Field) -> bool:
        """Whether the field is present (``reference``/``context`` may be absent; text may be empty)."""
        if name == "reference":
            return self.reference is not None
        if name == "context":
            return bool(self.context)
        return True


def finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite number (not a bool), else ``None``: JSON has no NaN.

    Example:
        >>> finite(1), finite("2.5"), finite(float("nan")), finite(None), finite(True)
        (1.0, 2.5, None, None, None)
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    import json

    return json.dumps(value, ensure_ascii=False, default=str)


@dataclass(frozen=True, slots=True)
class Score:
    """One evaluator's result for one item; its fields mirror ``gen_ai.evaluation.result``.

    ``value`` is ``None`` only for an error score (``label == "error"``, the reason in
    ``explanation``), so a failing item never hides among real zeros.

    Example:
        >>> Score("bleu", 42.1).is_error
        False
        >>> Score.error("bleu", ValueError("bad")).explanation
        'ValueError: bad'
    """

    name: str
    value: float | None
    label: str = ""
    explanation: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_error(self) -> bool:
        """Whether this marks a failed evaluation rather than a measured value."""
        return self.label == ERROR_LABEL and self.value is None

    @classmethod
    def error(cls, name: str, reason: BaseException | str) -> Score:
        """An error score: the item could not be evaluated, for the reason given."""
        text = reason if isinstance(reason, str) else f"{type(reason).__name__}: {reason}"
        return cls(name, None, ERROR_LABEL, text[:2000])


@runtime_checkable
class Evaluator(Protocol):
    """What every evaluator provides, built-in or plugin.

    ``evaluate`` is batched: ``len(result) == len(items)``, in order; it never raises for one bad
    item (that item gets :meth:`Score.error`). ``version`` changes whenever the same input could
    score differently (new code, model or parameters); online scores are keyed by it.

    Example:
        >>> from loopwise_collector.evaluators import get_evaluator
        >>> ev = get_evaluator("bleu")  # doctest: +SKIP
        >>> isinstance(ev, Evaluator)  # doctest: +SKIP
        True
    """

    name: str
    kind: Kind
    version: str
    requires: frozenset[Field]
    value_range: tuple[float, float]

    def evaluate(self, items: Sequence[EvalItem]) -> list[Score]:
        """Score a batch; one score per item, in order."""
        ...

    def aggregate(self, items: Sequence[EvalItem], scores: Sequence[Score]) -> dict[str, Any]:
        """Batch-level results beyond the per-item mean (corpus BLEU, a drift verdict); may be empty."""
        ...
