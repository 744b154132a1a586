"""``hallucination``: how much of a response its context does not support.

The response is split into sentences, the context into sentence-sized chunks, and each response sentence
gets a support score: its highest cosine similarity to any chunk (sentence embeddings, all-MiniLM-L6-v2 by
default), blended with an NLI model's entailment probability when one is configured. A sentence below the
threshold is unsupported, and so is one that states a number the context never mentions. The value is the
fraction of unsupported sentences.

Similarity alone measures "talks about the same thing", not "says the same thing": a sentence that copies
the context but changes one figure still scores high. The number check catches the commonest such case
(invented prices, dates, counts); an NLI model catches more, at several times the cost.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from loopwise_collector.evaluators._base import BaseEvaluator, require
from loopwise_collector.evaluators._embeddings import default_device, embed, resolve_model, sentence_model
from loopwise_collector.evaluators._errors import EvaluatorConfigError
from loopwise_collector.evaluators._types import EvalItem, Score
from loopwise_collector.evaluators.embedding_similarity import check_batch_size, model_identity

# With MiniLM, a paraphrase of a context sentence mostly scores 0.6-0.95 and an on-topic sentence that adds a
# claim mostly 0.1-0.6 (one that reuses the context's wording scores higher: hence the number check). On
# tests/data/hallucination_pairs.jsonl every threshold from 0.5 to 0.65 gives a ROC AUC of 0.88-0.93: 0.55 sits
# inside that plateau, not on a tuned peak.
DEFAULT_THRESHOLD = 0.55
NLI_TOP_K = 3  # context chunks given to the NLI model as its premise: the most similar ones, in context order
MAX_WORDS = 80  # MiniLM reads 256 word pieces; longer "sentences" (tables, run-ons) are cut into windows

# Lower-cased words that end in a period without ending a sentence.
# fmt: off
_ABBREVIATIONS = frozenset([
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "cf", "al", "approx", "ca", "inc",
    "ltd", "co", "corp", "dept", "est", "fig", "no", "nos", "vol", "ed", "eds", "jan", "feb", "mar", "apr", "jun",
    "jul", "aug", "sep", "sept", "oct", "nov", "dec", "mon", "tue", "wed", "thu", "fri", "sat", "sun", "u.s", "u.k",
    "a.m", "p.m", "ph.d",
])
# fmt: on
# A boundary: terminal punctuation, optional closing quotes or brackets, then white space.
_BOUNDARY = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*\s+")
_STARTS_SENTENCE = re.compile(r"[\"'\u201c\u2018(\[]*[A-Z0-9\u00c0-\u024f]")
_BULLET = re.compile(r"^\s*(?:[-*\u2022\u2013]|\d{1,3}[.)]|[a-zA-Z][.)](?=\s))\s+")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_WORD = re.compile(r"[a-z]+")
# fmt: off
_UNITS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
]
# fmt: on
_TENS = ["thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_NUMBER_WORDS = {word: str(n) for n, word in enumerate(_UNITS)} | {
    word: str(30 + 10 * i) for i, word in enumerate(_TENS)
}

_lock = threading.Lock()
_cross_encoders: dict[tuple[str, str], Any] = {}


def _prose(output: str) -> str:
    """The text whose claims are checked: for structured (JSON) output, only its prose string values.

    A tool call or routing decision (``{"tool": "get_account", "account": "acct_2290"}``) asserts no
    facts for the context to support; its identifiers would otherwise read as invented numbers.

    Example:
        >>> _prose('{"tool": "search", "reason": "The user asks about refunds on annual plans."}')
        'The user asks about refunds on annual plans.'
        >>> _prose("Plain text stays as it is.")
        'Plain text stays as it is.'
    """
    stripped = output.strip()
    if not stripped.startswith(("{", "[")):
        return output
    try:
        value = json.loads(stripped)
    except ValueError:
        return output
    leaves: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, str):
            if len(node.split()) >= 3:  # a label or an id is not a claim
                leaves.append(node.strip())
        elif isinstance(node, dict):
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(value)
    return "\n".join(leaves)


def split_sentences(text: str) -> list[str]:
    """Split text into sentences with a regular expression: no tokenizer models, no downloads.

    It keeps abbreviations (``e.g.``, ``Dr.``, ``U.S.``), initials, decimals and version numbers inside
    their sentence, treats each line of a list as a sentence of its own (dropping the bullet), and joins
    fragments of one or two words ("Yes.", "Sure!") to the following sentence.

    Example:
        >>> split_sentences("Dr. Smith paid $3.50, i.e. half. He left at 5 p.m. on Friday! Why?")
        ['Dr. Smith paid $3.50, i.e. half.', 'He left at 5 p.m. on Friday!', 'Why?']
        >>> split_sentences("Yes. The refund was issued.\\n- Item one is here\\n- Item two is there")
        ['Yes. The refund was issued.', 'Item one is here', 'Item two is there']
    """
    sentences: list[str] = []
    for line in text.splitlines():
        line = _BULLET.sub("", line).strip()
        if line:
            sentences.extend(_split_line(line))
    return _join_fragments(sentences)


def _split_line(line: str) -> list[str]:
    parts: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(line):
        end = match.end()
        if not _STARTS_SENTENCE.match(line, end):
            continue  # "e.g. the ...": what follows does not start a sentence
        if match.group().startswith(".") and _is_abbreviation(line[start : match.start()]):
            continue
        parts.append(line[start:end].strip())
        start = end
    tail = line[start:].strip()
    if tail:
        parts.append(tail)
    return parts


def _is_abbreviation(before: str) -> bool:
    words = before.split()
    if not words:
        return False
    word = words[-1].lstrip("\"'(\u201c[").lower()
    # A single letter is an initial ("J. K. Rowling"); short dotted parts make an acronym ("U.S.", "Ph.D.") but
    # not a domain name ("gmail.com.") or a version ("v1.2.").
    if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
        return True
    parts = word.split(".")
    return len(parts) > 1 and all(1 <= len(p) <= 2 and p.isalpha() for p in parts)


def _join_fragments(sentences: list[str]) -> list[str]:
    joined: list[str] = []
    carry = ""
    for sentence in sentences:
        if len(sentence.split()) < 3 and not sentence.endswith("?"):
            carry = f"{carry} {sentence}".strip()
            continue
        joined.append(f"{carry} {sentence}".strip())
        carry = ""
    if carry:
        if joined:
            joined[-1] = f"{joined[-1]} {carry}"
        else:
            joined.append(carry)
    return joined


def _windows(sentence: str, max_words: int = MAX_WORDS) -> list[str]:
    words = sentence.split()
    if len(words) <= max_words:
        return [sentence]
    step = max_words * 3 // 4  # overlapping, so a claim across a cut is whole in one window
    return [" ".join(words[i : i + max_words]) for i in range(0, len(words) - max_words // 4, step)]


def numbers_in(text: str, *, claim: bool = False) -> set[str]:
    """The numbers a text states, normalised: digits without separators or trailing zeros, and number words.

    With ``claim=True`` (the response side) the word "one" is skipped: in a response it is mostly a pronoun
    ("the one you ordered"), while on the context side it may back a response's "1".

    Example:
        >>> sorted(numbers_in("It cost $1,200.50 over two years, 10:00 to 15:00."))
        ['0', '10', '1200.5', '15', '2']
        >>> sorted(numbers_in("One of them is the one we sent.", claim=True))
        []
    """
    found = set()
    for raw in _NUMBER.findall(text):
        number = raw.replace(",", "")
        if "." in number:
            number = number.rstrip("0").rstrip(".")
        found.add(number.lstrip("0") or "0")
    for word in _WORD.findall(text.lower()):
        if word in _NUMBER_WORDS and not (claim and word == "one"):
            found.add(_NUMBER_WORDS[word])
    return found


@dataclass(frozen=True, slots=True)
class _Plan:
    """One item's claims and evidence, before any model runs."""

    claims: list[str]
    sentences: list[str]  # the context's sentences, in order
    chunks: list[str]  # each sentence, and each pair of adjacent ones within a document
    spans: list[tuple[int, int]]  # the sentences (first, last) that each chunk covers
    source: str
    known_numbers: set[str]

    def premise(self, row: np.ndarray) -> str:
        """The NLI premise for one claim: the sentences of its most similar chunks, once each, in order."""
        covered = {i for j in np.argsort(-row)[:NLI_TOP_K] for i in range(self.spans[j][0], self.spans[j][1] + 1)}
        return " ".join(self.sentences[i] for i in sorted(covered))


class Hallucination(BaseEvaluator):
    """Fraction of the response's sentences that its context does not support (0 grounded, 1 all invented).

    The context is ``item.context`` (retrieved documents); without one, the prompt (``item.input``), so a
    response is checked against what it was given. An item with neither gets an error score.

    Per response sentence, ``support`` is the highest cosine similarity between it and any context sentence
    (or pair of adjacent sentences, as a response often merges two). With ``nli_model`` set, support is
    ``(1 - nli_weight) * similarity + nli_weight * P(entailment)``, the premise being the sentences of the 3
    most similar chunks: similarity says the sentence is on topic, entailment that the context says it, and
    the blend keeps one threshold meaningful for both. A sentence is unsupported when support is below
    ``threshold``, or, with ``check_numbers``, when it states a number (digits, or a number word up to
    ninety) found in neither the context nor the prompt: the usual way a fluent paraphrase goes wrong is one
    invented figure, which similarity barely notices. A derived figure ("four days later") counts as
    unstated too. Questions assert nothing and are not checked.

    Parameters: ``model`` (embedding model; ``None``: the packaged all-MiniLM-L6-v2), ``threshold``
    (``0.55``), ``check_numbers`` (``True``), ``nli_model`` (a local sentence-transformers ``CrossEncoder``
    directory with an ``entailment`` label; ``None``), ``nli_weight`` (``0.5``), ``max_unsupported``
    (``0.0``: the label is ``hallucinated`` when the unsupported fraction exceeds it, so by default when
    any sentence is unsupported; else ``grounded``), ``device``, ``batch_size`` (``64``).

    ``metadata`` holds ``support`` (per sentence), ``unsupported`` (those sentences), ``n_sentences``,
    ``min_support`` (a continuous companion of the value, for ranking), ``unstated_numbers`` and ``source``
    (``context`` or ``input``).

    Example:
        >>> ev = Hallucination()  # doctest: +SKIP
        >>> item = EvalItem(output="Refunds take 5 days. We also ship to Mars.",
        ...                 context=("Refunds are issued within 5 business days.",))  # doctest: +SKIP
        >>> s = ev.evaluate([item])[0]  # doctest: +SKIP
        >>> s.value, s.label, s.metadata["unsupported"]  # doctest: +SKIP
        (0.5, 'hallucinated', ['We also ship to Mars.'])
    """

    name = "hallucination"
    kind = "model"
    code_version = "1"
    requires = frozenset({"output"})
    value_range = (0.0, 1.0)

    def __init__(
        self,
        model: str | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        check_numbers: bool = True,
        nli_model: str | None = None,
        nli_weight: float = 0.5,
        max_unsupported: float = 0.0,
        device: str | None = None,
        batch_size: int = 64,
    ) -> None:
        for what, value in (("threshold", threshold), ("nli_weight", nli_weight), ("max_unsupported", max_unsupported)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise EvaluatorConfigError(f"hallucination: {what} must be a number in [0, 1], not {value!r}")
        self.model = resolve_model(model)
        self._model_id = model_identity(model, self.model)
        self.nli_model = None if nli_model is None else resolve_model(nli_model)
        self._nli_id = None if self.nli_model is None else model_identity(nli_model, self.nli_model)
        self.threshold = float(threshold)
        self.check_numbers = bool(check_numbers)
        self.nli_weight = float(nli_weight)
        self.max_unsupported = float(max_unsupported)
        self.device = device
        self.batch_size = check_batch_size(self.name, batch_size)

    def config(self) -> Mapping[str, Any]:
        """Models, threshold and rules: everything that can move a score."""
        return {
            "model": self._model_id,
            "threshold": self.threshold,
            "check_numbers": self.check_numbers,
            "nli_model": self._nli_id,
            "nli_weight": self.nli_weight if self._nli_id else None,
            "max_unsupported": self.max_unsupported,
        }

    def load(self) -> None:
        """Load the models now rather than on the first batch (they are shared process-wide)."""
        sentence_model(self.model, self.device)
        if self.nli_model is not None:
            self._cross_encoder()

    def evaluate(self, items: Sequence[EvalItem]) -> list[Score]:
        """Score a batch; a model that cannot load raises :class:`EvaluatorConfigError` here, not per item."""
        if items:
            self.load()
        return super().evaluate(items)

    def score_batch(self, items: Sequence[EvalItem]) -> list[Score]:
        """Every sentence and chunk of the batch goes through one embedding call (and one NLI call)."""
        plans = [_plan(item) for item in items]
        texts: dict[str, int] = {}
        for plan in plans:
            if plan is not None:
                for text in (*plan.claims, *plan.chunks):
                    texts.setdefault(text, len(texts))
        vectors = embed(list(texts), model=self.model, device=self.device, batch_size=self.batch_size)

        similarity: list[np.ndarray | None] = []
        pairs: list[tuple[str, str]] = []
        for plan in plans:
            if plan is None or not plan.claims:
                similarity.append(None)
                continue
            claims = vectors[[texts[c] for c in plan.claims]]
            chunks = vectors[[texts[c] for c in plan.chunks]]
            sims = np.clip(claims @ chunks.T, -1.0, 1.0)  # (claims, chunks)
            similarity.append(sims)
            if self.nli_model is not None:
                pairs.extend((plan.premise(row), claim) for claim, row in zip(plan.claims, sims, strict=True))
        entailment = iter(self._entailment(pairs)) if pairs else iter(())

        scores = []
        for plan, sims in zip(plans, similarity, strict=True):
            if plan is None:
                scores.append(Score.error(self.name, "no context and no input: nothing to check the response against"))
                continue
            entail = None if sims is None or self.nli_model is None else [next(entailment) for _ in plan.claims]
            scores.append(self._score(plan, sims, entail))
        return scores

    def _score(self, plan: _Plan, sims: np.ndarray | None, entail: list[float] | None) -> Score:
        if sims is None:
            # Nothing asserted (empty, or only questions): nothing can be unsupported.
            empty = {"support": [], "unsupported": [], "n_sentences": 0, "min_support": 1.0}
            empty |= {"unstated_numbers": [], "source": plan.source}
            return Score(self.name, 0.0, "grounded", "no statements to check", metadata=empty)
        support = sims.max(axis=1)
        if entail is not None:
            support = (1.0 - self.nli_weight) * support + self.nli_weight * np.asarray(entail)
        unsupported: list[str] = []
        reasons: list[str] = []
        unstated: list[str] = []
        for claim, value in zip(plan.claims, support, strict=True):
            novel = sorted(numbers_in(claim, claim=True) - plan.known_numbers) if self.check_numbers else []
            unstated.extend(n for n in novel if n not in unstated)
            if value < self.threshold or novel:
                why = f"support {value:.2f}" + (f"; unstated number {', '.join(novel)}" if novel else "")
                unsupported.append(claim)
                reasons.append(f"{_clip(claim)!r} ({why})")
        fraction = len(unsupported) / len(plan.claims)
        label = "hallucinated" if fraction > self.max_unsupported else "grounded"
        if unsupported:
            explanation = f"{len(unsupported)} of {len(plan.claims)} sentences unsupported: " + "; ".join(reasons)
        else:
            explanation = f"all {len(plan.claims)} sentences supported (lowest support {support.min():.2f})"
        meta: dict[str, Any] = {
            "support": [round(float(v), 4) for v in support],
            "unsupported": unsupported,
            "n_sentences": len(plan.claims),
            "min_support": round(float(support.min()), 4),
            "unstated_numbers": unstated,
            "source": plan.source,
        }
        if entail is not None:
            meta["entailment"] = [round(float(v), 4) for v in entail]
        return Score(self.name, fraction, label, explanation[:2000], metadata=meta)

    def _cross_encoder(self) -> Any:
        assert self.nli_model is not None
        key = (self.nli_model, self.device or default_device())
        with _lock:
            found = _cross_encoders.get(key)
            if found is None:
                st = require("sentence_transformers")
                try:
                    found = st.CrossEncoder(self.nli_model, device=key[1])
                except OSError as exc:
                    raise EvaluatorConfigError(
                        f"hallucination: cannot load NLI model {self.nli_model!r}: {exc}"
                    ) from exc
                _entailment_index(found, self.nli_model)  # fail now, not on the first batch
                _cross_encoders[key] = found
        return found

    def _entailment(self, pairs: list[tuple[str, str]]) -> list[float]:
        encoder = self._cross_encoder()
        index = _entailment_index(encoder, self.nli_model)
        probs = encoder.predict(pairs, batch_size=self.batch_size, apply_softmax=True, show_progress_bar=False)
        return [float(p) for p in np.asarray(probs).reshape(len(pairs), -1)[:, index]]


def _entailment_index(encoder: Any, where: str | None) -> int:
    labels = getattr(getattr(encoder, "model", None), "config", None)
    id2label = getattr(labels, "id2label", None) or {}
    for index, label in id2label.items():
        if str(label).lower().startswith("entail"):
            return int(index)
    raise EvaluatorConfigError(
        f"hallucination: NLI model {where!r} has no 'entailment' label (its labels: {sorted(id2label.values())}); "
        "use a natural-language-inference cross-encoder"
    )


def _plan(item: EvalItem) -> _Plan | None:
    docs = [d for d in item.context if d.strip()]
    source = "context"
    if not docs:
        if not item.input.strip():
            return None
        docs, source = [item.input], "input"
    sentences: list[str] = []
    chunks: list[str] = []
    spans: list[tuple[int, int]] = []
    for doc in docs:
        first = len(sentences)
        sentences.extend(w for s in split_sentences(doc) for w in _windows(s))
        for i in range(first, len(sentences)):
            chunks.append(sentences[i])
            spans.append((i, i))
            if i + 1 < len(sentences):
                chunks.append(f"{sentences[i]} {sentences[i + 1]}")
                spans.append((i, i + 1))
    # Questions assert nothing; a fragment with no letter or digit ("--", "...") says nothing checkable.
    claims = [
        w
        for s in split_sentences(_prose(item.output))
        if not s.rstrip("\"')\u201d\u2019]").endswith("?") and any(c.isalnum() for c in s)
        for w in _windows(s)
    ]
    # Numbers the user gave are not invented either: "your order #123" may come from the question.
    numbers = set().union(*(numbers_in(d) for d in (*docs, item.input)))
    return _Plan(claims, sentences, chunks, spans, source, numbers)


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
