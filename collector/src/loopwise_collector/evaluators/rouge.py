"""ROUGE through Google's ``rouge-score``: ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum F-measures per item.

Values are exactly ``RougeScorer([...], use_stemmer=...).score(reference, output)[type].fmeasure``:
one scorer is built per process and reused. ROUGE-L fills an n x m table in pure Python, so one
long text could take minutes and gigabytes; texts longer than ``max_tokens`` tokens (counted as
rouge-score's tokenizer counts them) are cut after that token and the score says so.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import re
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from loopwise_collector.evaluators._base import BaseEvaluator, require
from loopwise_collector.evaluators._errors import EvaluatorConfigError
from loopwise_collector.evaluators._types import EvalItem, Score
from loopwise_collector.evaluators.bleu import item_references

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
DEFAULT_MAX_TOKENS = 1000
# rouge-score lowercases, turns every run of anything but [a-z0-9] into a space and keeps the
# non-empty pieces (rouge_score/tokenize.py), so its tokens are exactly these runs.
_TOKEN = re.compile(r"[a-z0-9]+")


def cap_tokens(text: str, max_tokens: int | None) -> tuple[str, bool]:
    """``text`` cut after its ``max_tokens``-th rouge-score token, and whether it was cut.

    Text within the cap comes back unchanged (the same object), so its score stays exact; a cut
    text keeps everything up to the end of the last kept token, newlines included (ROUGE-Lsum
    splits sentences on them), so it tokenizes to exactly the first ``max_tokens`` tokens.

    Example:
        >>> cap_tokens("One, two; three!", 2)
        ('One, two', True)
        >>> cap_tokens("One, two; three!", 3)
        ('One, two; three!', False)
    """
    # Every token starts at a distinct character of the original, so a short text cannot be over.
    if max_tokens is None or len(text) <= max_tokens:
        return text, False
    lowered = text.lower()
    ends: list[int] | None = None
    if len(lowered) != len(text):
        # A character whose lowercase is longer ("İ" -> "i" + a combining dot) shifts positions;
        # map lowered offsets back to original characters.
        pieces = [ch.lower() for ch in text]
        lowered = "".join(pieces)
        ends = list(itertools.accumulate(len(p) for p in pieces))
    tokens = _TOKEN.finditer(lowered)
    deque(itertools.islice(tokens, max_tokens - 1), maxlen=0)  # skip in C, not a Python loop
    last = next(tokens, None)
    if last is None or next(tokens, None) is None:
        return text, False
    cut = last.end() if ends is None else bisect.bisect_left(ends, last.end()) + 1
    return text[:cut], True


@functools.cache
def _library_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rouge-score")
    except PackageNotFoundError:
        return "missing"


class Rouge(BaseEvaluator):
    """ROUGE-1/2/L/Lsum F-measures (0-1) between the output and the reference, via rouge-score.

    ``value`` is the F-measure of ``rouge_type`` (default "rougeL"); ``metadata`` holds all four
    F-measures and their precision and recall. ``use_stemmer`` (default False, rouge-score's own
    default) applies the Porter stemmer to tokens longer than 3 characters. ``max_tokens``
    (default 1000; None disables it) caps each side; a cut item has ``metadata["truncated"]``.
    ROUGE-Lsum splits sentences on newlines, as rouge-score does by default. With extra references
    in ``metadata["references"]`` each measure takes the best reference, as ``score_multi`` does.

    Example:
        >>> rouge = Rouge(rouge_type="rouge1")
        >>> score = rouge.evaluate([EvalItem(output="testing", reference="testing one two")])[0]
        >>> score.value, score.metadata["rouge1_precision"], score.metadata["truncated"]
        (0.5, 1.0, False)
    """

    name = "rouge"
    kind = "metric"
    code_version = "1"
    requires = frozenset({"output", "reference"})
    value_range = (0.0, 1.0)

    def __init__(
        self, *, rouge_type: str = "rougeL", use_stemmer: bool = False, max_tokens: int | None = DEFAULT_MAX_TOKENS
    ) -> None:
        if rouge_type not in ROUGE_TYPES:
            raise EvaluatorConfigError(
                f"rouge: unknown rouge_type {rouge_type!r}; choose one of {', '.join(ROUGE_TYPES)}"
            )
        if max_tokens is not None and (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
        ):
            raise EvaluatorConfigError(f"rouge: max_tokens must be a positive integer or None, not {max_tokens!r}")
        self.rouge_type = rouge_type
        self.use_stemmer = bool(use_stemmer)
        self.max_tokens = max_tokens
        self._scorer: Any = None
        self._lock = threading.Lock()

    def config(self) -> Mapping[str, Any]:
        """The settings that change a value, with the rouge-score version."""
        return {
            "rouge_type": self.rouge_type,
            "use_stemmer": self.use_stemmer,
            "max_tokens": self.max_tokens,
            "rouge_score": _library_version(),
        }

    @property
    def scorer(self) -> Any:
        """The process's ``RougeScorer`` for all four types (rouge-score pulls in nltk: built on first use)."""
        if self._scorer is None:
            with self._lock:
                if self._scorer is None:
                    rouge_scorer = require("rouge_score.rouge_scorer")
                    self._scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=self.use_stemmer)
        return self._scorer

    def score_batch(self, items: Sequence[EvalItem]) -> list[Score]:
        """The four ROUGE measures of each output against its reference(s)."""
        score = self.scorer.score
        cap, primary, name = self.max_tokens, self.rouge_type, self.name
        out: list[Score] = []
        for item in items:
            output, cut_output = cap_tokens(item.output, cap)
            refs = item_references(item)
            if len(refs) == 1:
                reference, truncated = cap_tokens(refs[0], cap)
                result = score(reference, output)
            else:
                result, truncated = self._best_of(refs, output)
            metadata: dict[str, Any] = {"truncated": cut_output or truncated}
            for rouge_type in ROUGE_TYPES:
                p, r, f = result[rouge_type]
                metadata[rouge_type] = f
                metadata[f"{rouge_type}_precision"] = p
                metadata[f"{rouge_type}_recall"] = r
            out.append(Score(name, result[primary].fmeasure, metadata=metadata))
        return out

    def _best_of(self, refs: list[str], output: str) -> tuple[dict[str, Any], bool]:
        # rouge-score's score_multi: per type, the reference with the highest F-measure (first on ties).
        truncated = False
        results = []
        for ref in refs:
            reference, cut = cap_tokens(ref, self.max_tokens)
            truncated |= cut
            results.append(self.scorer.score(reference, output))
        best = {t: max((r[t] for r in results), key=lambda s: s.fmeasure) for t in ROUGE_TYPES}
        return best, truncated

    def aggregate(self, items: Sequence[EvalItem], scores: Sequence[Score]) -> dict[str, Any]:
        """The mean F-measure of each ROUGE type over the items that scored.

        Example:
            >>> rouge = Rouge()
            >>> items = [EvalItem(output="a b", reference="a b"), EvalItem(output="c", reference="d")]
            >>> rouge.aggregate(items, rouge.evaluate(items))["rouge1"]
            0.5
        """
        ok = [s for s in scores if not s.is_error]
        if not ok:
            return {}
        means: dict[str, Any] = {t: sum(s.metadata[t] for s in ok) / len(ok) for t in ROUGE_TYPES}
        means["n_items"] = len(ok)
        means["n_truncated"] = sum(1 for s in ok if s.metadata.get("truncated"))
        return means
