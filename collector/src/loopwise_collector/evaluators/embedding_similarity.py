"""``embedding_similarity``: how close a response is in meaning to its reference, by sentence embeddings.

Both texts go through one sentence-transformers model (all-MiniLM-L6-v2, packaged, by default) and the
score is their cosine. Unlike BLEU or ROUGE it credits paraphrase: "The meeting moved to Friday" and
"They rescheduled the meeting for Friday" score high with almost no words in common.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from loopwise_collector.evaluators._base import BaseEvaluator
from loopwise_collector.evaluators._embeddings import DEFAULT_MODEL, embed, resolve_model, sentence_model
from loopwise_collector.evaluators._errors import EvaluatorConfigError
from loopwise_collector.evaluators._types import EvalItem, Score

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".onnx")


def model_identity(requested: str | None, resolved: str) -> str:
    """A short, machine-independent name for an embedding model, for evaluator versions.

    The model's name (``all-MiniLM-L6-v2`` for the packaged default, else the directory's name or the
    hub name) plus the byte size of its weight files: a retrained model saved under the same name
    changes the version, while the same model installed at another path on another runner does not.

    Example:
        >>> model_identity("sentence-transformers/foo", "sentence-transformers/foo")
        'sentence-transformers/foo'
    """
    path = Path(resolved)
    if not path.is_dir():
        return resolved  # a hub name: the name is all there is to go on
    default = requested in (None, "", DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}")
    name = DEFAULT_MODEL if default else path.name
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and f.suffix in _WEIGHT_SUFFIXES)
    return f"{name}:{size}"


def check_batch_size(name: str, batch_size: int) -> int:
    """Validate an evaluator's ``batch_size`` parameter.

    Example:
        >>> check_batch_size("x", 8)
        8
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise EvaluatorConfigError(f"{name}: batch_size must be a positive integer, not {batch_size!r}")
    return batch_size


class EmbeddingSimilarity(BaseEvaluator):
    """Cosine similarity between the embeddings of ``output`` and ``reference``.

    Parameters: ``model`` (``None``: the packaged all-MiniLM-L6-v2; or a local sentence-transformers
    directory), ``device`` (``None``: CUDA when visible, else CPU; ``LOOPWISE_EVAL_DEVICE`` overrides),
    ``batch_size`` (texts per forward pass, default 64).

    The value is the raw cosine, in [-1, 1], not clipped to [0, 1]: with MiniLM unrelated texts land
    near 0 and a negative value is rare but meaningful, and clipping would tie all of them at 0. An
    output identical to its reference scores exactly 1. There is no label: where the line between
    "similar" and "not" falls depends on the task, so it belongs in a monitor's threshold.

    Example:
        >>> ev = EmbeddingSimilarity()  # doctest: +SKIP
        >>> [s] = ev.evaluate([EvalItem(output="The meeting moved to Friday.",
        ...                             reference="They rescheduled the meeting for Friday.")])  # doctest: +SKIP
        >>> s.value > 0.7  # doctest: +SKIP
        True
    """

    name = "embedding_similarity"
    kind = "model"
    code_version = "1"
    requires = frozenset({"output", "reference"})
    value_range = (-1.0, 1.0)

    def __init__(self, model: str | None = None, device: str | None = None, batch_size: int = 64) -> None:
        # Resolving here checks a local directory exists, so a bad path fails when the evaluator is built.
        self.model = resolve_model(model)
        self._model_id = model_identity(model, self.model)
        self.device = device
        self.batch_size = check_batch_size(self.name, batch_size)

    def config(self) -> Mapping[str, Any]:
        """The model that scores (device and batch size do not change a cosine beyond float noise)."""
        return {"model": self._model_id}

    def load(self) -> None:
        """Load the model now rather than on the first batch (it is shared process-wide)."""
        sentence_model(self.model, self.device)

    def evaluate(self, items: Sequence[EvalItem]) -> list[Score]:
        """Score a batch; a model that cannot load raises :class:`EvaluatorConfigError` here, not per item."""
        if items:
            self.load()
        return super().evaluate(items)

    def score_batch(self, items: Sequence[EvalItem]) -> list[Score]:
        """One embedding call for every output and reference of the batch."""
        outputs = [item.output for item in items]
        references = [item.reference or "" for item in items]
        vectors = embed([*outputs, *references], model=self.model, device=self.device, batch_size=self.batch_size)
        n = len(items)
        cosines = np.einsum("ij,ij->i", vectors[:n], vectors[n:])
        scores = []
        for out, ref, cos in zip(outputs, references, cosines, strict=True):
            # Identical texts are 1 by definition; float32 would say 0.99999994.
            value = 1.0 if out == ref else float(np.clip(cos, -1.0, 1.0))
            scores.append(Score(self.name, value))
        return scores
