"""BLEU through sacrebleu: sentence BLEU per item, corpus BLEU for the batch, both exactly sacrebleu's.

Per item the value is ``sacrebleu.sentence_bleu(output, references).score`` (0-100, effective
order on, as sacrebleu's sentence function does); :meth:`Bleu.aggregate` gives
``sacrebleu.corpus_bleu(outputs, references).score`` with its signature. One ``BLEU`` object per
setting is built once and reused, which is what keeps the per-item cost at sacrebleu's own.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from loopwise_collector.evaluators._base import BaseEvaluator, require
from loopwise_collector.evaluators._errors import EvaluatorConfigError
from loopwise_collector.evaluators._types import EvalItem, Score

REFERENCES_KEY = "references"


def item_references(item: EvalItem) -> list[str]:
    """The references of ``item``: ``reference`` first, then any in ``metadata["references"]``.

    Multi-reference datasets put the extra references in ``metadata["references"]`` (a string or a
    list of strings); repeats are dropped, which changes no BLEU or ROUGE value.

    Example:
        >>> item_references(EvalItem(output="a", reference="b", metadata={"references": ["c", "b"]}))
        ['b', 'c']
    """
    refs: list[str] = [] if item.reference is None else [item.reference]
    extra = item.metadata.get(REFERENCES_KEY) if item.metadata else None
    if extra is not None:
        if isinstance(extra, str):
            extra = [extra]
        elif not isinstance(extra, list | tuple):
            raise TypeError(f"metadata[{REFERENCES_KEY!r}] must be a string or a list of strings")
        for ref in extra:
            if not isinstance(ref, str):
                raise TypeError(f"metadata[{REFERENCES_KEY!r}] must hold strings, not {type(ref).__name__}")
            if ref not in refs:
                refs.append(ref)
    return refs


class Bleu(BaseEvaluator):
    """Sentence BLEU per item and corpus BLEU per batch, computed by sacrebleu (0-100 scale).

    Parameters are sacrebleu's, with its defaults: ``tokenize`` ("13a"; also "none", "intl",
    "char", "zh", and "ja-mecab"/"ko-mecab"/"spm"/"flores101"/"flores200" where their extra
    libraries are installed), ``lowercase`` (False), ``smooth_method`` ("exp"; "floor", "add-k",
    "none") and ``smooth_value`` (None: sacrebleu's default for the method). Extra references go in
    ``metadata["references"]`` (see :func:`item_references`).

    Example:
        >>> bleu = Bleu()
        >>> [round(s.value, 2) for s in bleu.evaluate([EvalItem(output="the cat sat", reference="the cat sat")])]
        [100.0]
        >>> bleu.evaluate([EvalItem(output="no reference")])[0].is_error
        True
    """

    name = "bleu"
    kind = "metric"
    code_version = "1"
    requires = frozenset({"output", "reference"})
    value_range = (0.0, 100.0)

    def __init__(
        self,
        *,
        tokenize: str = "13a",
        lowercase: bool = False,
        smooth_method: str = "exp",
        smooth_value: float | None = None,
    ) -> None:
        sacrebleu = require("sacrebleu")
        metrics = sacrebleu.metrics
        if tokenize not in metrics.BLEU.TOKENIZERS:
            known = ", ".join(sorted(metrics.BLEU.TOKENIZERS))
            raise EvaluatorConfigError(f"bleu: unknown tokenize {tokenize!r}; choose one of {known}")
        if smooth_method not in metrics.BLEU.SMOOTH_DEFAULTS:
            known = ", ".join(metrics.BLEU.SMOOTH_DEFAULTS)
            raise EvaluatorConfigError(f"bleu: unknown smooth_method {smooth_method!r}; choose one of {known}")
        if smooth_value is not None and (isinstance(smooth_value, bool) or not isinstance(smooth_value, int | float)):
            raise EvaluatorConfigError(f"bleu: smooth_value must be a number or None, not {smooth_value!r}")
        self.tokenize = tokenize
        self.lowercase = bool(lowercase)
        self.smooth_method = smooth_method
        self.smooth_value = smooth_value
        self._sacrebleu_version: str = sacrebleu.__version__
        settings = {
            "tokenize": tokenize,
            "lowercase": self.lowercase,
            "smooth_method": smooth_method,
            "smooth_value": smooth_value,
        }
        try:
            # The two objects sacrebleu's sentence_bleu and corpus_bleu would build on every call:
            # effective order on for sentences (short segments miss 4-grams), off for the corpus.
            self._sentence = metrics.BLEU(effective_order=True, **settings)
            # force=True only silences sacrebleu's "looks tokenized" warning; no value depends on it.
            self._corpus = metrics.BLEU(effective_order=False, force=True, **settings)
        except (ImportError, RuntimeError) as exc:  # a tokenizer whose library is missing (mecab, sentencepiece)
            raise EvaluatorConfigError(f"bleu: tokenizer {tokenize!r} is not usable here: {exc}") from exc
        self._corpus_lock = threading.Lock()

    def config(self) -> Mapping[str, Any]:
        """The settings that change a value, with the sacrebleu version and its tokenizer signature."""
        return {
            "tokenize": self.tokenize,
            "tokenizer_signature": self._sentence.tokenizer_signature,
            "lowercase": self.lowercase,
            "smooth_method": self.smooth_method,
            "smooth_value": self.smooth_value,
            "sacrebleu": self._sacrebleu_version,
        }

    def score_batch(self, items: Sequence[EvalItem]) -> list[Score]:
        """Sentence BLEU of each output against its references."""
        sentence_score = self._sentence.sentence_score
        name = self.name
        out: list[Score] = []
        for item in items:
            refs = item_references(item)
            result = sentence_score(item.output, refs)
            precisions = result.precisions
            out.append(
                Score(
                    name,
                    result.score,
                    metadata={
                        "bp": result.bp,
                        "hyp_len": result.sys_len,
                        "ref_len": result.ref_len,
                        "precision_1": precisions[0],
                        "precision_2": precisions[1],
                        "precision_3": precisions[2],
                        "precision_4": precisions[3],
                        "n_refs": len(refs),
                    },
                )
            )
        return out

    def aggregate(self, items: Sequence[EvalItem], scores: Sequence[Score]) -> dict[str, Any]:
        """Corpus BLEU over the items that scored, equal to ``sacrebleu.corpus_bleu``, with its signature.

        Example:
            >>> bleu = Bleu()
            >>> items = [EvalItem(output="the cat sat on the mat", reference="the cat sat on the mat")]
            >>> round(bleu.aggregate(items, bleu.evaluate(items))["corpus_bleu"], 2)
            100.0
        """
        hyps: list[str] = []
        refs: list[list[str]] = []
        for item, score in zip(items, scores, strict=True):
            if score.is_error or item.reference is None:
                continue
            hyps.append(item.output)
            refs.append(item_references(item))
        if not hyps:
            return {}
        width = max(len(r) for r in refs)
        # sacrebleu takes reference *streams*; None marks a segment with fewer references.
        streams = [[r[k] if k < len(r) else None for r in refs] for k in range(width)]
        with self._corpus_lock:  # corpus_score stores the reference count the signature reads
            result = self._corpus.corpus_score(hyps, streams)
            signature = str(self._corpus.get_signature())
        return {
            "corpus_bleu": result.score,
            "signature": signature,
            "precisions": list(result.precisions),
            "bp": result.bp,
            "hyp_len": result.sys_len,
            "ref_len": result.ref_len,
            "n_items": len(hyps),
            "formatted": result.format(signature=signature),
        }
