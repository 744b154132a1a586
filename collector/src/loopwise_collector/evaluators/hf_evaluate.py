"""Any Hugging Face ``evaluate`` module as an evaluator: per-item values, plus one corpus-level compute.

``evaluate.load`` copies the module's script into ``$HF_HOME/modules`` (``HF_MODULES_CACHE``) and
imports it from there; a bare name ("bleu", "user/metric") is fetched from the Hub, which fails on a
machine without network, so there the module must be a local directory holding ``<dirname>.py``
(or the script itself). The module loads on first use, once per process, and is shared by every
evaluator built on the same script.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import numbers
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from loopwise_collector.evaluators._base import BaseEvaluator, require
from loopwise_collector.evaluators._errors import EvaluatorConfigError
from loopwise_collector.evaluators._types import EvalItem, Score

_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_EVALUATE_OFFLINE", "HF_DATASETS_OFFLINE")
_TRUE = {"1", "ON", "YES", "TRUE"}
_lock = threading.Lock()
# (script or hub name, config name) -> (the loaded module, a lock: compute() keeps state between calls)
_loaded: dict[tuple[str, str | None], tuple[Any, threading.Lock]] = {}


@dataclasses.dataclass(frozen=True, slots=True)
class ModuleSource:
    """Where a module comes from: a local script (with its content hash) or a Hub name.

    Example:
        >>> ModuleSource.resolve("/nope")
        Traceback (most recent call last):
        ...
        loopwise_collector.evaluators._errors.EvaluatorConfigError: hf_evaluate: module path '/nope' does not exist
    """

    location: str
    stem: str
    script_sha256: str | None = None

    @property
    def is_local(self) -> bool:
        """Whether this is a script on disk (else a Hub name)."""
        return self.script_sha256 is not None

    @classmethod
    def resolve(cls, module: str) -> ModuleSource:
        """Check ``module`` without importing ``evaluate``: an existing script, a directory, or a Hub name."""
        if not isinstance(module, str) or not module.strip():
            raise EvaluatorConfigError("hf_evaluate: 'module' must be a path to an evaluate module (or a Hub name)")
        path = Path(module).expanduser()
        if path.is_dir():
            script = path / f"{path.resolve().name}.py"
            if not script.is_file():
                raise EvaluatorConfigError(
                    f"hf_evaluate: directory {str(path)!r} holds no {script.name}; an evaluate module directory "
                    "holds a script named after it"
                )
        elif path.is_file():
            if path.suffix != ".py":
                raise EvaluatorConfigError(f"hf_evaluate: {str(path)!r} is not a Python script")
            script = path
        elif _looks_like_path(module):
            raise EvaluatorConfigError(f"hf_evaluate: module path {module!r} does not exist")
        else:
            if _offline():
                raise EvaluatorConfigError(_hub_hint(module, "the Hub is switched off here (HF_*_OFFLINE)"))
            return cls(location=module, stem=module.rsplit("/", 1)[-1])
        script = script.resolve()
        digest = hashlib.sha256(script.read_bytes()).hexdigest()
        return cls(location=str(script), stem=script.stem, script_sha256=digest)


def _looks_like_path(module: str) -> bool:
    # evaluate treats a relative name with at most one "/" as a Hub id; anything else is a path.
    return (
        os.path.isabs(module)
        or module.startswith((".", "~"))
        or module.endswith(".py")
        or module.count("/") > 1
        or "\\" in module
    )


def _offline() -> bool:
    return any(os.environ.get(var, "").upper() in _TRUE for var in _OFFLINE_VARS)


def _hub_hint(module: str, why: str) -> str:
    return (
        f"hf_evaluate: cannot load {module!r} from the Hugging Face Hub ({why}); pass module= a local path: "
        f"a directory holding {module.rsplit('/', 1)[-1]}.py, or the script itself"
    )


@functools.cache
def _evaluate_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("evaluate")
    except PackageNotFoundError:
        return "missing"


def _number(value: Any) -> float | None:
    """A plain float for a numeric result (numpy scalars and one-element lists included), else None."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if hasattr(value, "tolist"):  # numpy scalar or array: no numpy import needed
        return _number(value.tolist())
    if isinstance(value, list | tuple) and len(value) == 1:
        return _number(value[0])
    return None


def _plain(value: Any) -> Any:
    """A JSON-friendly copy of an evaluate result (numpy values to Python)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class HFEvaluate(BaseEvaluator):
    """A Hugging Face ``evaluate`` module, computed per item and once over the batch.

    ``module`` (required) is a local directory holding ``<dirname>.py``, the script itself, or a
    Hub name (loads only where the Hub is reachable; offline it is an
    :class:`EvaluatorConfigError` asking for a local path). ``key`` picks the result entry that
    becomes the value; by default the entry named after the module, else the only numeric one.
    ``compute_kwargs`` go to every ``compute`` call; ``config_name`` to ``evaluate.load``;
    ``score_name`` names the scores (default ``hf_<module name>``). Each item is
    ``compute(predictions=[output], references=[reference], **compute_kwargs)``.

    Example:
        >>> ev = HFEvaluate(module="/path/to/exact_match")  # doctest: +SKIP
        >>> ev.evaluate([EvalItem(output="Paris", reference="Paris")])[0].value  # doctest: +SKIP
        1.0
    """

    name = "hf_evaluate"
    kind = "metric"
    code_version = "1"
    requires = frozenset({"output", "reference"})
    value_range = (-math.inf, math.inf)

    def __init__(
        self,
        *,
        module: str,
        key: str | None = None,
        compute_kwargs: Mapping[str, Any] | None = None,
        score_name: str | None = None,
        config_name: str | None = None,
    ) -> None:
        self.source = ModuleSource.resolve(module)
        if compute_kwargs is not None and not isinstance(compute_kwargs, Mapping):
            raise EvaluatorConfigError("hf_evaluate: compute_kwargs must be a mapping of keyword arguments")
        reserved = {"predictions", "references"} & set(compute_kwargs or {})
        if reserved:
            raise EvaluatorConfigError(f"hf_evaluate: compute_kwargs may not set {', '.join(sorted(reserved))}")
        self.key = key
        self.compute_kwargs: dict[str, Any] = dict(compute_kwargs or {})
        self.score_name = score_name or f"hf_{self.source.stem}"
        self.config_name = config_name
        self._resolved_key: str | None = key

    def config(self) -> Mapping[str, Any]:
        """Module location and script hash, key, compute arguments and the evaluate version.

        A Hub module's hash is known only once it is loaded, so asking for its version loads it.
        """
        digest = self.source.script_sha256
        if digest is None:
            digest = str(getattr(self._module()[0], "_hash", None) or "")
        return {
            "module": self.source.location,
            "script_sha256": digest,
            "config_name": self.config_name,
            "key": self.key,
            "compute_kwargs": self.compute_kwargs,
            "evaluate": _evaluate_version(),
        }

    def __repr__(self) -> str:
        # Not the version: for a Hub module that would load it.
        return f"<evaluator {self.name} {self.source.location}>"

    def _module(self) -> tuple[Any, threading.Lock]:
        cache_key = (self.source.location, self.config_name)
        with _lock:
            found = _loaded.get(cache_key)
            if found is None:
                found = (self._load(), threading.Lock())
                _loaded[cache_key] = found
        return found

    def _load(self) -> Any:
        evaluate = require("evaluate")
        where = self.source.location
        try:
            # keep_in_memory: compute() would otherwise write an Arrow cache file (and lock) per call.
            return evaluate.load(where, config_name=self.config_name, keep_in_memory=True)
        except (FileNotFoundError, ConnectionError) as exc:
            if self.source.is_local:
                raise EvaluatorConfigError(f"hf_evaluate: cannot load {where!r}: {exc}") from exc
            raise EvaluatorConfigError(_hub_hint(where, f"{type(exc).__name__}: {exc}")) from exc
        except Exception as exc:  # the module's own code: a syntax error, a missing library
            raise EvaluatorConfigError(f"hf_evaluate: loading {where!r} failed: {type(exc).__name__}: {exc}") from exc

    def _compute(self, predictions: list[str], references: list[str]) -> Mapping[str, Any]:
        module, lock = self._module()
        with lock:
            result = module.compute(predictions=predictions, references=references, **self.compute_kwargs)
        if not isinstance(result, Mapping):
            raise TypeError(f"{self.source.stem} returned {type(result).__name__}, not a dict of results")
        return result

    def _key_for(self, result: Mapping[str, Any]) -> str:
        if self._resolved_key is not None:
            if self._resolved_key not in result:
                raise EvaluatorConfigError(
                    f"hf_evaluate: {self.source.stem} returned no {self._resolved_key!r}; "
                    f"its keys are {', '.join(map(repr, result))}"
                )
            return self._resolved_key
        module_name = str(getattr(self._module()[0], "name", "") or "")
        for candidate in (self.source.stem, module_name):
            if candidate and candidate in result and _number(result[candidate]) is not None:
                self._resolved_key = candidate
                return candidate
        numeric = [k for k, v in result.items() if _number(v) is not None]
        if len(numeric) != 1:
            what = f"several numeric results ({', '.join(map(repr, numeric))})" if numeric else "no numeric result"
            raise EvaluatorConfigError(
                f"hf_evaluate: {self.source.stem} returned {what}; pass key= one of {', '.join(map(repr, result))}"
            )
        self._resolved_key = numeric[0]
        return numeric[0]

    def _value(self, result: Mapping[str, Any]) -> float:
        key = self._key_for(result)
        value = _number(result[key])
        if value is None:
            raise TypeError(f"{self.source.stem}[{key!r}] is {type(result[key]).__name__}, not a number")
        return value

    def evaluate(self, items: Sequence[EvalItem]) -> list[Score]:
        """Score a batch; a module that will not load or an ambiguous ``key`` raise :class:`EvaluatorConfigError`."""
        ready = [i for i in items if not self.missing(i)]
        if ready:
            self._module()  # load errors are configuration errors, not one bad item each
            if self._resolved_key is None:
                self._probe_key(ready[0])
        scores = super().evaluate(items)
        # Error scores from the base class carry the evaluator's name; give them the score name.
        return [s if s.name == self.score_name else dataclasses.replace(s, name=self.score_name) for s in scores]

    def _probe_key(self, item: EvalItem) -> None:
        try:
            result = self._compute([item.output], [item.reference or ""])
        except Exception:  # a bad first item: the per-item path reports it
            return
        self._key_for(result)  # an ambiguous result raises here, once, instead of once per item

    def score_batch(self, items: Sequence[EvalItem]) -> list[Score]:
        """One ``compute`` per item; the chosen result entry is the value, the other numbers metadata."""
        out: list[Score] = []
        for item in items:
            result = self._compute([item.output], [item.reference or ""])
            value = self._value(result)
            extra = {k: n for k, v in result.items() if (n := _number(v)) is not None}
            out.append(Score(self.score_name, value, metadata=extra))
        return out

    def aggregate(self, items: Sequence[EvalItem], scores: Sequence[Score]) -> dict[str, Any]:
        """One ``compute`` over every item that scored (the corpus-level figure), with the full result."""
        pairs = [(i.output, i.reference or "") for i, s in zip(items, scores, strict=True) if not s.is_error]
        if not pairs:
            return {}
        result = self._compute([p for p, _ in pairs], [r for _, r in pairs])
        key = self._key_for(result)
        return {"key": key, "value": _number(result[key]), "n_items": len(pairs), "result": _plain(result)}
