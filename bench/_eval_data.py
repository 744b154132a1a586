"""Synthetic text for ``bench/evaluators.py``: support answers with references, and two drifting corpora.

Not a benchmark itself. Everything is seeded, so two runs time the same text.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

_PRODUCTS = ("router", "laptop", "headset", "subscription", "gift card", "smart watch", "printer", "camera")
_DAYS = ("two", "three", "five", "seven", "ten", "fourteen")
_PLACES = ("the help centre", "your account page", "the billing tab", "the mobile app", "the order history")
_ACTIONS = ("reset the device", "sign out and back in", "clear the cache", "update the firmware", "re-enter the card")

# Sentences an answer is built from; {p} product, {d} days, {w} place, {a} action, {n} a number.
_FACTS = (
    "Refunds for the {p} are issued within {d} business days once we receive it back.",
    "You can track the return of your {p} from {w} at any time.",
    "If the {p} does not turn on, please {a} and try again.",
    "Orders over {n} dollars ship free to most addresses in the country.",
    "The warranty on the {p} covers manufacturing defects for {d} months.",
    "To change your plan, open {w} and choose a new option.",
    "Support is available around the clock by chat and by email.",
    "A replacement {p} usually arrives {d} days after the claim is approved.",
    "Your invoice is available in {w} as a PDF file.",
    "We could not charge your card, so please {a} in {w}.",
)
_FILLERS = ("Sure,", "Thanks for asking.", "Good news:", "Sorry about that.", "Of course.", "")
_SWAPS = {
    "issued": "sent",
    "receive": "get",
    "please": "kindly",
    "usually": "normally",
    "available": "ready",
    "choose": "pick",
    "around the clock": "all day",
    "arrives": "comes",
    "most": "many",
}


@dataclass(frozen=True)
class QAItem:
    """One evaluated answer: the model's output, a reference answer, and the documents it drew on."""

    question: str
    output: str
    reference: str
    context: tuple[str, ...]


def _fill(rng: random.Random, template: str) -> str:
    return template.format(
        p=rng.choice(_PRODUCTS),
        d=rng.choice(_DAYS),
        w=rng.choice(_PLACES),
        a=rng.choice(_ACTIONS),
        n=rng.choice((25, 35, 50, 75)),
    )


def _paraphrase(rng: random.Random, sentence: str) -> str:
    for old, new in _SWAPS.items():
        if old in sentence and rng.random() < 0.5:
            sentence = sentence.replace(old, new)
    return sentence


def qa_items(n: int, seed: int = 7) -> list[QAItem]:
    """``n`` answers of 3-5 sentences (about 40-70 words): the output paraphrases the reference,
    sometimes drops a sentence, sometimes adds one (a claim the context does not hold)."""
    rng = random.Random(seed)
    out: list[QAItem] = []
    for _ in range(n):
        # A case number makes every answer distinct: the embedding cache must not turn repeats into hits.
        case = f"Your case number is {rng.randrange(10**6, 10**7)}."
        facts = [case, *(_fill(rng, t) for t in rng.sample(_FACTS, rng.randint(3, 5)))]
        reference = " ".join(facts)
        said = [_paraphrase(rng, f) for f in facts if rng.random() > 0.15]
        if rng.random() < 0.3:
            said.append(_fill(rng, rng.choice(_FACTS)))  # not in the context: a candidate hallucination
        output = " ".join(x for x in (rng.choice(_FILLERS), *said) if x)
        question = f"What should I do about my {rng.choice(_PRODUCTS)}?"
        out.append(QAItem(question, output, reference, tuple(facts)))
    return out


def sentences(n: int, seed: int = 11) -> list[str]:
    """``n`` distinct support sentences (about 12-20 words), for embedding throughput."""
    rng = random.Random(seed)
    out: dict[str, None] = {}
    while len(out) < n:
        sentence = _paraphrase(rng, _fill(rng, rng.choice(_FACTS)))
        out[f"{sentence[:-1]} (ticket {rng.randrange(10**5, 10**6)})."] = None
    return list(out)


# Two traffic mixes for drift: topic -> templates. The current window shifts weight from billing to
# shipping and brings a topic the reference never had (account security).
_TOPICS: dict[str, tuple[str, ...]] = {
    "billing": (
        "Why was I charged twice for my {p} this month?",
        "How do I download the invoice for my {p} order?",
        "My card was declined when paying for the {p}.",
        "Can I get a refund for the {p} I bought {d} days ago?",
    ),
    "shipping": (
        "Where is my {p}? It was supposed to arrive {d} days ago.",
        "Can you ship the {p} to a different address?",
        "The box with my {p} arrived damaged.",
        "How much does express delivery of a {p} cost?",
    ),
    "setup": (
        "How do I connect the {p} to my wifi network?",
        "The {p} keeps restarting after the update.",
        "What is the default password for the {p}?",
    ),
    "security": (
        "Someone logged into my account from another country.",
        "I did not request the password reset email I just got.",
        "How do I turn on two factor authentication for {w}?",
    ),
}
REFERENCE_MIX = {"billing": 0.5, "shipping": 0.2, "setup": 0.3}
CURRENT_MIX = {"billing": 0.2, "shipping": 0.4, "setup": 0.15, "security": 0.25}


def drift_corpora(n: int, seed: int = 13) -> tuple[list[str], list[str]]:
    """``n`` reference and ``n`` current user questions, drawn from :data:`REFERENCE_MIX` and :data:`CURRENT_MIX`."""
    rng = random.Random(seed)

    def draw(mix: dict[str, float]) -> list[str]:
        topics = rng.choices(list(mix), weights=list(mix.values()), k=n)
        # An order number per question, as real traffic has: distinct texts, so nothing is served from cache.
        return [f"{_fill(rng, rng.choice(_TOPICS[t]))} Order {rng.randrange(10**5, 10**6)}." for t in topics]

    return draw(REFERENCE_MIX), draw(CURRENT_MIX)
