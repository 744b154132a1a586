"""``toxicity``: Detoxify's toxicity classifiers over the response.

Detoxify's published weights download from GitHub on first use (torch hub caches them); offline, point
``checkpoint`` at a Detoxify ``.ckpt`` file instead. The model loads once per process per
(model, checkpoint, device) and scores batches through ``Detoxify.predict``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from loopwise_collector.evaluators._base import BaseEvaluator, require
from loopwise_collector.evaluators._embeddings import default_device
from loopwise_collector.evaluators._errors import EvaluatorConfigError
from loopwise_collector.evaluators._types import EvalItem, Score
from loopwise_collector.evaluators.embedding_similarity import check_batch_size

# Detoxify's names for its published weights (its MODEL_URLS), kept here so that building an evaluator
# validates a name without importing torch.
MODELS = ("original", "unbiased", "multilingual", "original-small", "unbiased-small")
# The labels every Detoxify model shares; "toxic" means one of these reached the threshold. Other labels
# (sexual_explicit, identity mentions) are reported in metadata but do not decide the label.
MAIN_LABELS = ("toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack")

_lock = threading.Lock()
_detectors: dict[tuple[str | None, str | None, str, str | None], Any] = {}


class Toxicity(BaseEvaluator):
    """Probability that the output is toxic, with every Detoxify label's probability in ``metadata``.

    Parameters:

    - ``model``: Detoxify's published weights, ``original`` (default), ``unbiased``, ``multilingual``,
      ``original-small`` or ``unbiased-small``. They download from GitHub on first use and are cached
      under torch hub's directory (``$TORCH_HOME/hub/checkpoints``); their tokenizer and config come
      from the Hugging Face hub.
    - ``checkpoint``: a local Detoxify checkpoint file (a ``torch.save`` of ``{"config", "state_dict"}``),
      used instead of ``model``: this is how to run offline. It must exist when the evaluator is built.
    - ``config_path``: a local directory with the transformers config and tokenizer for the checkpoint's
      ``model_type`` (Detoxify's ``huggingface_config_path``), for when the hub is unreachable.
    - ``device``: ``None`` picks CUDA when visible, else CPU (``LOOPWISE_EVAL_DEVICE`` overrides).
    - ``threshold`` (0.5): the label is ``toxic`` when any of the six main labels reaches it, else ``ok``.
    - ``batch_size`` (32): texts per forward pass.

    The value is the ``toxicity`` probability, in [0, 1].

    Example:
        >>> ev = Toxicity(checkpoint="/models/toxic_original-c1212f89.ckpt")  # doctest: +SKIP
        >>> [s] = ev.evaluate([EvalItem(output="Thanks, that was helpful!")])  # doctest: +SKIP
        >>> s.label, sorted(s.metadata)[:2]  # doctest: +SKIP
        ('ok', ['identity_attack', 'insult'])
    """

    name = "toxicity"
    kind = "model"
    code_version = "1"
    requires = frozenset({"output"})
    value_range = (0.0, 1.0)

    def __init__(
        self,
        model: str = "original",
        checkpoint: str | None = None,
        device: str | None = None,
        threshold: float = 0.5,
        batch_size: int = 32,
        config_path: str | None = None,
    ) -> None:
        if checkpoint is None and model not in MODELS:
            raise EvaluatorConfigError(
                f"toxicity: unknown Detoxify model {model!r}; choose one of {', '.join(MODELS)}, "
                "or pass checkpoint=<path to a Detoxify .ckpt file>"
            )
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0:
            raise EvaluatorConfigError(f"toxicity: threshold must be a number in [0, 1], not {threshold!r}")
        self.model = model
        self.checkpoint = _existing(checkpoint, "checkpoint", want_dir=False)
        self.config_path = _existing(config_path, "config_path", want_dir=True)
        self.device = device
        self.threshold = float(threshold)
        self.batch_size = check_batch_size(self.name, batch_size)
        # A checkpoint is named by file name and size, not by path: the same file on two runners is one version.
        if self.checkpoint is None:
            self._weights = self.model
        else:
            path = Path(self.checkpoint)
            self._weights = f"{path.name}:{path.stat().st_size}"

    def config(self) -> Mapping[str, Any]:
        """The weights and the threshold (device and batch size do not change a score beyond float noise)."""
        return {"weights": self._weights, "threshold": self.threshold}

    def load(self) -> Any:
        """The process-wide ``Detoxify`` for this configuration, loaded on first call.

        Raises :class:`EvaluatorConfigError` when the weights cannot be had: offline without a
        checkpoint, or a file that is not a Detoxify checkpoint.
        """
        device = self.device or default_device()
        model = None if self.checkpoint else self.model
        key = (model, self.checkpoint, device, self.config_path)
        with _lock:
            found = _detectors.get(key)
            if found is None:
                found = self._build(device)
                _detectors[key] = found
        return found

    def evaluate(self, items: Sequence[EvalItem]) -> list[Score]:
        """Score a batch; weights that cannot load raise :class:`EvaluatorConfigError` here, not per item."""
        if items:
            self.load()
        return super().evaluate(items)

    def score_batch(self, items: Sequence[EvalItem]) -> list[Score]:
        """``Detoxify.predict`` over slices of ``batch_size`` outputs."""
        detector = self.load()
        texts = [item.output for item in items]
        scores: list[Score] = []
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start : start + self.batch_size]
            raw = detector.predict(chunk)
            # predict squeezes its output, so a one-text batch gives floats instead of lists.
            columns = {label: probs if isinstance(probs, list) else [probs] for label, probs in raw.items()}
            scores.extend(
                self._score({label: float(col[i]) for label, col in columns.items()}) for i in range(len(chunk))
            )
        return scores

    def _score(self, probs: dict[str, float]) -> Score:
        above = sorted(
            ((label, p) for label, p in probs.items() if label in MAIN_LABELS and p >= self.threshold),
            key=lambda pair: -pair[1],
        )
        if above:
            label = "toxic"
            explanation = ", ".join(f"{name} {p:.2f}" for name, p in above) + f" (threshold {self.threshold:g})"
        else:
            label = "ok"
            top, p = max(((name, p) for name, p in probs.items() if name in MAIN_LABELS), key=lambda pair: pair[1])
            explanation = f"highest: {top} {p:.2f} (threshold {self.threshold:g})"
        return Score(self.name, probs["toxicity"], label, explanation, metadata=probs)

    def _build(self, device: str) -> Any:
        detoxify = require("detoxify")
        try:
            detector = detoxify.Detoxify(
                model_type=self.model,
                checkpoint=self.checkpoint,
                device=device,
                huggingface_config_path=self.config_path,
            )
        except MemoryError:
            raise
        except Exception as exc:
            raise EvaluatorConfigError(self._load_failure(exc)) from exc
        if "toxicity" not in detector.class_names:  # the value; a custom checkpoint may lack it
            raise EvaluatorConfigError(
                f"toxicity: the checkpoint's classes {detector.class_names} lack 'toxicity' "
                "(Detoxify's name for Jigsaw's 'toxic')"
            )
        return detector

    def _load_failure(self, exc: Exception) -> str:
        reason = f"{type(exc).__name__}: {exc}"
        if self.checkpoint is not None:
            return (
                f"toxicity: cannot load the Detoxify checkpoint {self.checkpoint!r} ({reason}). It must be a "
                "torch.save of {'config', 'state_dict'} as Detoxify writes it, and the config's arch.args.model_type "
                "must name a transformers model available here (a local directory, or a hub name that is "
                "cached or reachable; config_path=<dir> supplies the config and tokenizer instead)"
            )
        torch = require("torch")
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        return (
            f"toxicity: cannot load Detoxify's {self.model!r} weights ({reason}). Detoxify downloads them from "
            f"GitHub on first use (hundreds of MB) and caches them under {cache}; their tokenizer and config come "
            "from the Hugging Face hub. Without network access, pass checkpoint=<path to a Detoxify .ckpt file> "
            "(for example one copied from that cache on a connected machine), and config_path=<dir> with the "
            "model's config and tokenizer if the Hugging Face cache lacks them"
        )


def _existing(value: str | None, what: str, *, want_dir: bool) -> str | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    kind = "directory" if want_dir else "file"
    if not (path.is_dir() if want_dir else path.is_file()):
        state = "is not a " + kind if path.exists() else "does not exist"
        raise EvaluatorConfigError(f"toxicity: {what} {str(path)!r} {state}")
    return str(path.resolve())
