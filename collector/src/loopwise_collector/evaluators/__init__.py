"""Evaluators: one protocol, a registry, and the built-ins (one module per metric).

The same evaluator runs offline (``loopwise eval`` over a JSONL dataset) and online (the
``loopwise evaluate`` runner over sampled live spans). Heavy libraries load on first use.

Example:
    >>> from loopwise_collector.evaluators import EvalItem, get_evaluator
    >>> bleu = get_evaluator("bleu")  # doctest: +SKIP
    >>> bleu.evaluate([EvalItem(output="the cat sat", reference="the cat sat")])[0].value  # doctest: +SKIP
    100.00000000000004
"""

from loopwise_collector.evaluators._base import BaseEvaluator
from loopwise_collector.evaluators._errors import (
    EvaluatorConfigError,
    EvaluatorError,
    MissingDependencyError,
    UnknownEvaluatorError,
)
from loopwise_collector.evaluators._registry import (
    ENTRY_POINT_GROUP,
    Registry,
    available_evaluators,
    get_evaluator,
    register_evaluator,
)
from loopwise_collector.evaluators._types import EvalItem, Evaluator, Kind, Score

__all__ = [
    "ENTRY_POINT_GROUP",
    "BaseEvaluator",
    "EvalItem",
    "Evaluator",
    "EvaluatorConfigError",
    "EvaluatorError",
    "Kind",
    "MissingDependencyError",
    "Registry",
    "Score",
    "UnknownEvaluatorError",
    "available_evaluators",
    "get_evaluator",
    "register_evaluator",
]
