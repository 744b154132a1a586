"""The evaluator registry: names to factories. Built-ins are listed here and imported on first use,
so ``import loopwise_collector.evaluators`` loads no torch; plugins come from the entry-point group
``loopwise.evaluators``, each pointing at a factory (a class or a function) taking keyword parameters.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from loopwise_collector.evaluators._errors import EvaluatorConfigError, UnknownEvaluatorError
from loopwise_collector.evaluators._types import Evaluator

log = logging.getLogger("loopwise.evaluators")

ENTRY_POINT_GROUP = "loopwise.evaluators"
Factory = Callable[..., Evaluator]

_BUILTINS: dict[str, str] = {
    "bleu": "loopwise_collector.evaluators.bleu:Bleu",
    "rouge": "loopwise_collector.evaluators.rouge:Rouge",
    "hf_evaluate": "loopwise_collector.evaluators.hf_evaluate:HFEvaluate",
    "embedding_similarity": "loopwise_collector.evaluators.embedding_similarity:EmbeddingSimilarity",
    "toxicity": "loopwise_collector.evaluators.toxicity:Toxicity",
    "hallucination": "loopwise_collector.evaluators.hallucination:Hallucination",
    "llm_judge": "loopwise_collector.evaluators.llm_judge:LLMJudge",
    "human_feedback": "loopwise_collector.evaluators.human_feedback:HumanFeedback",
    "embedding_drift": "loopwise_collector.evaluators.embedding_drift:EmbeddingDrift",
}


class Registry:
    """Names to evaluator factories.

    Example:
        >>> reg = Registry(builtins={})
        >>> reg.register("always_one", lambda **kw: None)
        >>> reg.names()
        ['always_one']
    """

    def __init__(self, builtins: dict[str, str] | None = None, *, group: str | None = None) -> None:
        self._targets: dict[str, str | Factory] = dict(_BUILTINS if builtins is None else builtins)
        self._group = group
        self._plugins_loaded = group is None
        self._lock = threading.Lock()

    def register(self, name: str, factory: Factory, *, replace: bool = False) -> None:
        """Add an evaluator factory under ``name``; a taken name needs ``replace=True``."""
        with self._lock:
            if name in self._targets and not replace:
                raise ValueError(f"an evaluator named {name!r} is already registered")
            self._targets[name] = factory

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self._load_plugins()
        return sorted(self._targets)

    def factory(self, name: str) -> Factory:
        """The factory for ``name``; :class:`UnknownEvaluatorError` lists the known names."""
        self._load_plugins()
        target = self._targets.get(name)
        if target is None:
            raise UnknownEvaluatorError(name, self._targets)
        if isinstance(target, str):
            module, _, attr = target.partition(":")
            target = getattr(importlib.import_module(module), attr)
            self._targets[name] = target
        return target

    def requirements(self, name: str) -> frozenset[str] | None:
        """The item fields ``name`` requires, when its factory declares them; ``None`` when unknown."""
        try:
            needs = getattr(self.factory(name), "requires", None)
        except Exception:  # a plugin or library that fails to import: nothing to tell
            return None
        return frozenset(needs) if isinstance(needs, frozenset | set | tuple | list) else None

    def create(self, name: str, **params: Any) -> Evaluator:
        """Build the evaluator ``name`` with ``params``; bad parameters raise :class:`EvaluatorConfigError`."""
        factory = self.factory(name)
        try:
            return factory(**params)
        except TypeError as exc:
            raise EvaluatorConfigError(f"{name}: {exc}") from exc

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        with self._lock:
            if self._plugins_loaded:
                return
            for ep in entry_points(group=self._group or ENTRY_POINT_GROUP):
                if ep.name in self._targets:
                    log.warning("evaluator plugin %r (%s) ignored: the name is taken", ep.name, ep.value)
                    continue
                self._targets[ep.name] = _lazy(ep.name, ep.load)
            self._plugins_loaded = True


def _lazy(name: str, load: Callable[[], Factory]) -> Factory:
    def make(**params: Any) -> Evaluator:
        try:
            factory = load()
        except Exception as exc:  # a broken plugin must not take the others down
            raise EvaluatorConfigError(f"evaluator plugin {name!r} failed to load: {exc}") from exc
        return factory(**params)

    return make


REGISTRY = Registry(group=ENTRY_POINT_GROUP)


def get_evaluator(name: str, **params: Any) -> Evaluator:
    """Build a registered evaluator by name.

    Example:
        >>> get_evaluator("bleu").name  # doctest: +SKIP
        'bleu'
        >>> get_evaluator("blue")
        Traceback (most recent call last):
        ...
        loopwise_collector.evaluators._errors.UnknownEvaluatorError: unknown evaluator 'blue'; ...
    """
    return REGISTRY.create(name, **params)


def register_evaluator(name: str, factory: Factory, *, replace: bool = False) -> None:
    """Register a factory in this process (plugins normally use the entry-point group instead).

    Example:
        >>> from loopwise_collector.evaluators import BaseEvaluator
        >>> class Shout(BaseEvaluator): ...
        >>> register_evaluator("shout", Shout)  # doctest: +SKIP
    """
    REGISTRY.register(name, factory, replace=replace)


def available_evaluators() -> list[str]:
    """Names of every built-in and installed evaluator.

    Example:
        >>> "rouge" in available_evaluators()
        True
    """
    return REGISTRY.names()
