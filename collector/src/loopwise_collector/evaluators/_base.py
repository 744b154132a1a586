"""``BaseEvaluator``: the shared half of every built-in, so each metric file holds only its method.

It checks required fields per item, isolates a failing item (the batch is retried item by item,
so one bad row costs an error score, not the batch), and derives ``version`` from the code
version and the resolved configuration, so changing a model or a threshold re-scores.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from loopwise_collector.evaluators._errors import MissingDependencyError
from loopwise_collector.evaluators._types import EvalItem, Field, Kind, Score

log = logging.getLogger("loopwise.evaluators")


class BaseEvaluator:
    """Base class for evaluators: subclasses set the class attributes and implement ``score_batch``.

    Example:
        >>> class Length(BaseEvaluator):
        ...     name = "length"
        ...     kind = "metric"
        ...     code_version = "1"
        ...     requires = frozenset({"output"})
        ...     value_range = (0.0, float("inf"))
        ...     def score_batch(self, items):
        ...         return [Score(self.name, float(len(i.output))) for i in items]
        >>> [s.value for s in Length().evaluate([EvalItem(output="abc"), EvalItem(output="")])]
        [3.0, 0.0]
    """

    name: ClassVar[str]
    kind: ClassVar[Kind]
    code_version: ClassVar[str] = "1"
    requires: ClassVar[frozenset[Field]] = frozenset({"output"})
    value_range: ClassVar[tuple[float, float]] = (0.0, 1.0)

    def config(self) -> Mapping[str, Any]:
        """The resolved settings that can change a score; part of ``version``. Override to list them."""
        return {}

    @property
    def version(self) -> str:
        """``<code_version>-<8 hex of the config>``: equal versions score equal inputs equally."""
        blob = json.dumps(self.config(), sort_keys=True, default=str).encode()
        return f"{self.code_version}-{hashlib.sha256(blob).hexdigest()[:8]}"

    def score_batch(self, items: Sequence[EvalItem]) -> list[Score]:
        """Score items that have every required field; may raise, which isolates the failing item."""
        raise NotImplementedError

    def aggregate(self, items: Sequence[EvalItem], scores: Sequence[Score]) -> dict[str, Any]:
        """Batch-level results; none by default."""
        return {}

    def missing(self, item: EvalItem) -> list[str]:
        """The required fields ``item`` lacks."""
        return sorted(f for f in self.requires if not item.has(f))

    def evaluate(self, items: Sequence[EvalItem]) -> list[Score]:
        """Score a batch: one score per item, in order; bad items get error scores."""
        out: list[Score | None] = [None] * len(items)
        ready: list[int] = []
        for i, item in enumerate(items):
            lacking = self.missing(item)
            if lacking:
                fields = ", ".join(map(repr, lacking))
                out[i] = Score.error(self.name, f"missing field(s) {fields} needed by {self.name}")
            else:
                ready.append(i)
        if ready:
            for i, score in zip(ready, self._guarded([items[i] for i in ready]), strict=True):
                out[i] = score
        return [s if s is not None else Score.error(self.name, "not evaluated") for s in out]

    def _guarded(self, items: list[EvalItem]) -> list[Score]:
        try:
            scores = self.score_batch(items)
            if len(scores) != len(items):
                raise RuntimeError(f"{self.name} returned {len(scores)} scores for {len(items)} items")
            return scores
        except (MissingDependencyError, MemoryError):
            raise
        except Exception as exc:
            if len(items) == 1:
                log.debug("%s failed on one item", self.name, exc_info=True)
                return [Score.error(self.name, exc)]
            log.info("%s failed on a batch of %d (%s); retrying item by item", self.name, len(items), exc)
        return [self._guarded([item])[0] for item in items]

    def __repr__(self) -> str:
        return f"<evaluator {self.name} {self.version}>"


def require(module: str, extra: str = "evaluators") -> Any:
    """Import an evaluator's library, or raise :class:`MissingDependencyError` naming the extra.

    Example:
        >>> require("json").dumps(1)
        '1'
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module} is not installed; install it with: pip install 'loopwise-collector[{extra}]'"
        ) from exc
