"""Evaluator errors: part of the collector's one exception tree, so the API maps them to 4xx answers."""

from __future__ import annotations

from collections.abc import Iterable

from loopwise_collector.errors import LoopwiseError


class EvaluatorError(LoopwiseError):
    """Root of evaluator errors: bad configuration, unknown names, unusable input.

    Example:
        >>> isinstance(EvaluatorConfigError("no such checkpoint"), LoopwiseError)
        True
    """

    status_code = 422
    code = "invalid_evaluator"


class UnknownEvaluatorError(EvaluatorError):
    """A name no built-in or installed plugin registers; the message lists the known ones.

    Example:
        >>> str(UnknownEvaluatorError("blue", ["bleu", "rouge"]))
        "unknown evaluator 'blue'; known evaluators: bleu, rouge (did you mean 'bleu'?)"
    """

    def __init__(self, name: str, known: Iterable[str]) -> None:
        import difflib

        self.name = name
        self.known = sorted(known)
        close = difflib.get_close_matches(name, self.known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        super().__init__(f"unknown evaluator {name!r}; known evaluators: {', '.join(self.known)}{hint}")


class EvaluatorConfigError(EvaluatorError):
    """An evaluator cannot be built as configured: a bad parameter, a missing model or checkpoint.

    Example:
        >>> EvaluatorConfigError("toxicity: checkpoint '/nope.ckpt' does not exist").code
        'invalid_evaluator'
    """


class MissingDependencyError(EvaluatorError):
    """An evaluator's library is not installed; the message names the extra that brings it.

    Example:
        >>> issubclass(MissingDependencyError, EvaluatorError)
        True
    """
