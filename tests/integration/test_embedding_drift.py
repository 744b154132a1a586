"""Embedding drift: a real topic shift in MiniLM embeddings is found and explained, random splits of one pool
are not flagged, and ``detect_drift`` holds its level, speed and input checks on synthetic vectors.

Why: drift alerts trigger retraining, so both halves matter. A missed shift lets a model rot; a false alarm
every few windows trains people to ignore the monitor. The texts are built here from templates (three topics,
varied vocabulary) and embedded once per module with the packaged all-MiniLM-L6-v2.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator

import numpy as np
import pytest

from loopwise_collector.evaluators import EvalItem, EvaluatorConfigError, EvaluatorError, get_evaluator
from loopwise_collector.evaluators._embeddings import embed
from loopwise_collector.evaluators.embedding_drift import METHODS, DriftResult, EmbeddingDrift, detect_drift

pytestmark = pytest.mark.integration

TOPIC_SIZE = 100  # per topic and side: 100 cooking + 100 travel vs 100 other cooking + 100 outages

# ---------------------------------------------------------------------------------------------
# Texts

_COOKING = {
    "templates": [
        "How long should I {verb} the {food} before adding the {food2}?",
        "{person} made a {dish} with {food} and {herb} for dinner last night.",
        "Can I use {food} instead of {food2} in a {dish} recipe?",
        "What oven temperature works best for a {dish} topped with {herb}?",
        "My {dish} came out too {texture}; should I use less {food}?",
        "Is it better to {verb} {food} in butter or olive oil for a {dish}?",
        "{person} says a pinch of {herb} makes any {dish} taste better.",
        "How do I keep {food} from turning {texture} when I {verb} it?",
    ],
    "verb": ["simmer", "roast", "saute", "braise", "bake", "grill", "poach", "caramelise"],
    "food": ["onions", "garlic", "chicken thighs", "mushrooms", "carrots", "salmon", "tofu", "potatoes",
             "lentils", "eggplant", "shrimp", "tomatoes", "rice", "pork shoulder"],
    "food2": ["cream", "white wine", "stock", "coconut milk", "lemon juice", "parmesan", "beans", "spinach"],
    "herb": ["thyme", "rosemary", "basil", "cumin", "smoked paprika", "oregano", "coriander", "saffron"],
    "dish": ["risotto", "stew", "curry", "lasagne", "omelette", "soup", "casserole", "stir-fry", "pie",
             "paella", "tagine", "quiche"],
    "texture": ["dry", "soggy", "bitter", "rubbery", "salty", "bland", "mushy"],
    "person": ["My grandmother", "The chef", "My roommate", "Our neighbour", "My brother", "The cookbook"],
}  # fmt: skip

_TRAVEL = {
    "templates": [
        "What is the cheapest way to get from {city} to {city2} in {month}?",
        "Our flight to {city} was delayed {duration}; can we still make the {link}?",
        "Which neighbourhood in {city} is best for {who} staying {nights} nights?",
        "Do I need a visa to visit {country} for a {trip}?",
        "Is {month} a good time for a {trip} around {country}?",
        "{who} want a quiet hotel near the old town of {city} for {nights} nights.",
        "How early should we arrive at the {city} airport to catch the {link}?",
    ],
    "city": ["Lisbon", "Kyoto", "Prague", "Lima", "Reykjavik", "Marrakesh", "Hanoi", "Vienna", "Cape Town",
             "Montreal", "Seville", "Tallinn"],
    "city2": ["Porto", "Osaka", "Budapest", "Cusco", "Copenhagen", "Fez", "Hue", "Salzburg"],
    "country": ["Japan", "Peru", "Iceland", "Morocco", "Vietnam", "Norway", "Chile", "Portugal", "Jordan"],
    "month": ["March", "June", "September", "November", "January", "May"],
    "duration": ["two hours", "forty minutes", "three hours", "overnight", "ninety minutes"],
    "link": ["connecting train", "ferry", "night bus", "connecting flight", "guided tour"],
    "who": ["a family with kids", "two backpackers", "a retired couple", "a solo traveller", "a group of friends"],
    "nights": ["two", "three", "four", "five", "seven"],
    "trip": ["hiking trip", "road trip", "city break", "honeymoon", "food tour", "ski holiday"],
}  # fmt: skip

_OUTAGES = {
    "templates": [
        "My {device} keeps losing connection every {interval} since the {event}.",
        "Why was I charged {amount} twice on my {month} invoice?",
        "The {service} outage in {region} has lasted {duration}; when will it be fixed?",
        "I cannot reach the {service} dashboard, it returns error {code}.",
        "Please refund the {fee} that was added to my account after the {event}.",
        "Is there a known {service} incident? Our {device} shows packet loss since {interval} ago.",
        "Our team was billed {amount} for {service} seats we cancelled in {month}.",
        "After the {event} the {device} reboots itself and the status light blinks red.",
    ],
    "device": ["router", "modem", "VPN gateway", "mesh extender", "fibre terminal", "office firewall"],
    "interval": ["ten minutes", "hour", "few seconds", "half hour", "two hours"],
    "event": ["firmware update", "storm last week", "plan upgrade", "maintenance window", "password reset"],
    "amount": ["$49.99", "$120", "$15.00", "$310.40", "$8.75", "$64"],
    "month": ["March", "June", "September", "November", "January", "May"],
    "service": ["API", "email", "cloud storage", "DNS", "payment gateway", "video conferencing"],
    "region": ["eu-west", "the north region", "Frankfurt", "us-east", "our Sydney office"],
    "duration": ["six hours", "since midnight", "two days", "45 minutes", "all morning"],
    "code": ["502", "503", "504", "403", "500"],
    "fee": ["late payment fee", "roaming charge", "early termination fee", "reconnection fee", "overage charge"],
}  # fmt: skip


def _sentences(topic: dict[str, list[str]], count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    slots = {key: values for key, values in topic.items() if key != "templates"}
    out: dict[str, None] = {}  # ordered and unique: no duplicates within or across sides
    while len(out) < count:
        template = rng.choice(topic["templates"])
        out[template.format(**{key: rng.choice(values) for key, values in slots.items()})] = None
    return list(out)


@pytest.fixture(scope="module")
def corpus() -> dict[str, list[str]]:
    cooking = _sentences(_COOKING, 2 * TOPIC_SIZE, seed=1)
    return {
        "cooking_ref": cooking[:TOPIC_SIZE],
        "cooking_cur": cooking[TOPIC_SIZE:],
        "travel": _sentences(_TRAVEL, TOPIC_SIZE, seed=2),
        "outages": _sentences(_OUTAGES, TOPIC_SIZE, seed=3),
    }


@pytest.fixture(scope="module")
def vectors(corpus: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Every text embedded once, in one call, with the packaged MiniLM."""
    names = list(corpus)
    flat = [text for name in names for text in corpus[name]]
    started = time.perf_counter()
    embedded = embed(flat)
    print(f"\nembedded {len(flat)} texts in {time.perf_counter() - started:.1f} s")
    out, start = {}, 0
    for name in names:
        out[name] = embedded[start : start + len(corpus[name])]
        start += len(corpus[name])
    return out


@pytest.fixture(scope="module")
def shift(corpus: dict[str, list[str]], vectors: dict[str, np.ndarray]) -> DriftResult:
    """Reference: cooking and travel. Current: other cooking questions and network outages / billing."""
    return detect_drift(
        np.concatenate([vectors["cooking_ref"], vectors["travel"]]),
        np.concatenate([vectors["cooking_cur"], vectors["outages"]]),
        reference_texts=corpus["cooking_ref"] + corpus["travel"],
        current_texts=corpus["cooking_cur"] + corpus["outages"],
    )


# ---------------------------------------------------------------------------------------------
# Real embeddings


def test_templates_give_distinct_texts(corpus: dict[str, list[str]]) -> None:
    everything = [text for texts in corpus.values() for text in texts]
    assert len(set(everything)) == len(everything) == 4 * TOPIC_SIZE


def test_topic_shift_is_detected_by_every_method(shift: DriftResult) -> None:
    print("\ntopic shift p-values:", {name: result.p_value for name, result in shift.methods.items()})
    assert shift.drift is True
    assert shift.p_value is not None and shift.p_value < 0.01
    assert (shift.n_reference, shift.n_current) == (2 * TOPIC_SIZE, 2 * TOPIC_SIZE)
    for name in METHODS:
        p_value = shift.methods[name].p_value
        assert p_value is not None and p_value < 0.01, name
    assert shift.methods["classifier"].extras["auc"] > 0.8


def test_examples_come_from_the_shifted_topic(corpus: dict[str, list[str]], shift: DriftResult) -> None:
    assert len(shift.examples) == 5
    assert all(example.text in corpus["outages"] for example in shift.examples), shift.examples
    assert all(example.index >= TOPIC_SIZE for example in shift.examples)  # outages follow cooking in the window
    witnesses = [example.witness for example in shift.examples]
    assert witnesses == sorted(witnesses, reverse=True) and witnesses[-1] > 0
    # What the current window lost: the travel questions.
    assert all(example.text in corpus["travel"] for example in shift.reference_examples), shift.reference_examples
    assert all(example.witness < 0 for example in shift.reference_examples)


def test_random_splits_of_one_pool_are_not_flagged(vectors: dict[str, np.ndarray]) -> None:
    pool = np.concatenate(list(vectors.values()))
    flagged, smallest = 0, 1.0
    for seed in range(20):
        order = np.random.default_rng(seed).permutation(len(pool))
        half = len(pool) // 2
        result = detect_drift(pool[order[:half]], pool[order[half:]], seed=seed)
        assert result.p_value is not None
        flagged += result.drift
        smallest = min(smallest, result.p_value)
    print(f"\nnull splits: {flagged}/20 flagged, smallest combined p-value {smallest:.3f}")
    assert flagged <= 1


def test_evaluator_scores_items_and_reports_drift(corpus: dict[str, list[str]], monkeypatch) -> None:
    evaluator = get_evaluator("embedding_drift", reference=corpus["cooking_ref"] + corpus["travel"])
    assert isinstance(evaluator, EmbeddingDrift)
    calls: list[int] = []
    original = evaluator._embed

    def counting(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return original(texts)

    monkeypatch.setattr(evaluator, "_embed", counting)
    items = [EvalItem(input="q", output=text) for text in corpus["cooking_cur"] + corpus["outages"]]

    scores = evaluator.evaluate(items)
    report = evaluator.aggregate(items, scores)

    assert calls == [2 * TOPIC_SIZE, 2 * TOPIC_SIZE]  # the reference once, the window once: aggregate reuses it
    assert all(score.name == "embedding_drift" and not score.is_error for score in scores)
    values = np.array([score.value for score in scores])
    assert np.all((values >= -1.0) & (values <= 1.0))
    assert values[TOPIC_SIZE:].mean() > values[:TOPIC_SIZE].mean() + 0.05  # outages look new, cooking does not
    drift = report["drift"]
    assert drift["drift"] is True and drift["p_value"] < 0.01
    assert json.loads(json.dumps(drift, allow_nan=False)) == drift
    # The item scores and the reported examples are the same exact witness values.
    top = drift["examples"][0]
    assert scores[top["index"]].value == pytest.approx(top["witness"], abs=1e-6)
    assert top["text"] in corpus["outages"]


def test_evaluator_configuration() -> None:
    with pytest.raises(EvaluatorConfigError, match="reference"):
        get_evaluator("embedding_drift")
    with pytest.raises(EvaluatorConfigError, match="not one string"):
        EmbeddingDrift(reference="just one text")
    with pytest.raises(EvaluatorConfigError, match="field"):
        EmbeddingDrift(reference=["a"], field="reference")  # type: ignore[arg-type]
    with pytest.raises(EvaluatorConfigError, match="alpha"):
        EmbeddingDrift(reference=["a"], alpha=1.5)
    by_input = EmbeddingDrift(reference=["a", "b"], field="input")
    assert by_input.requires == frozenset({"input"})
    assert by_input.version != EmbeddingDrift(reference=["a", "c"], field="input").version


# ---------------------------------------------------------------------------------------------
# Synthetic vectors (no model)


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_mean_shift_is_detected() -> None:
    rng = np.random.default_rng(7)
    reference = rng.normal(size=(150, 32))
    current = rng.normal(size=(150, 32)) + 0.25  # a shift of length 1.4 against a spread of 5.7
    result = detect_drift(reference, current, permutations=500)
    assert result.drift is True
    assert all(result.methods[name].p_value < 0.01 for name in METHODS)  # type: ignore[operator]
    assert result.examples[0].text is None and result.examples[0].index < 150


def test_null_rate_on_gaussians() -> None:
    flagged = 0
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        flagged += detect_drift(
            rng.normal(size=(120, 32)), rng.normal(size=(120, 32)), permutations=500, seed=seed
        ).drift
    assert flagged <= 1


def test_five_thousand_each_within_budget() -> None:
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(20, 384))  # clustered like sentence embeddings, not isotropic noise
    reference = _unit(centres[rng.integers(0, 20, 5000)] + rng.normal(size=(5000, 384)))
    current = _unit(centres[rng.integers(0, 20, 5000)] + rng.normal(size=(5000, 384)))
    started = time.perf_counter()
    result = detect_drift(reference, current)
    elapsed = time.perf_counter() - started
    print(f"\ndetect_drift 5000 vs 5000 x 384: {elapsed:.2f} s, p={result.p_value}")
    assert elapsed < 10.0
    assert result.methods["mmd"].extras["permutations"] == 1000


def test_too_few_rows_gives_a_reason_not_a_verdict() -> None:
    rng = np.random.default_rng(0)
    result = detect_drift(rng.normal(size=(50, 8)), rng.normal(size=(9, 8)))
    assert (result.drift, result.p_value) == (False, None)
    assert result.reason is not None and "min_samples" in result.reason
    assert all(result.methods[name].p_value is None for name in METHODS)
    as_dict = result.to_dict()
    assert as_dict["methods"]["mmd"] == {"statistic": None, "p_value": None}
    assert as_dict["examples"] == [] and as_dict["n_current"] == 9
    assert detect_drift(np.zeros((0, 8)), np.zeros((0, 8))).reason is not None


def test_identical_vectors() -> None:
    same = np.ones((40, 8))
    result = detect_drift(same, same.copy())
    assert (result.drift, result.p_value, result.reason) == (False, 1.0, "all vectors are identical")
    # Constant within each side but different across them is the plainest drift there is.
    moved = detect_drift(same, -same)
    assert moved.drift is True


def test_duplicated_rows_do_not_raise_false_alarms() -> None:
    rng = np.random.default_rng(5)
    palette = rng.normal(size=(4, 16))  # four canned answers, repeated
    flagged = sum(
        detect_drift(palette[rng.integers(0, 4, 60)], palette[rng.integers(0, 4, 60)], seed=seed).drift
        for seed in range(10)
    )
    assert flagged <= 1


def test_bad_input_is_rejected_clearly() -> None:
    rng = np.random.default_rng(0)
    good = rng.normal(size=(20, 8))
    nan = good.copy()
    nan[3, 2] = np.nan
    with pytest.raises(EvaluatorError, match=r"NaN or infinite values \(first: row 3\)"):
        detect_drift(good, nan)
    with pytest.raises(EvaluatorError, match="dimension"):
        detect_drift(good, rng.normal(size=(20, 9)))
    with pytest.raises(EvaluatorError, match="2-D"):
        detect_drift(good, rng.normal(size=20))
    with pytest.raises(EvaluatorError, match="texts"):
        detect_drift(good, good, current_texts=["only one"])
    with pytest.raises(EvaluatorConfigError, match="alpha"):
        detect_drift(good, good, alpha=0.0)
    with pytest.raises(EvaluatorConfigError, match="permutations"):
        detect_drift(good, good, permutations=0)


def test_result_is_deterministic_and_json_ready() -> None:
    rng = np.random.default_rng(11)
    reference, current = rng.normal(size=(60, 12)), rng.normal(size=(60, 12)) + 0.3
    texts = [f"row {i}" for i in range(60)]
    first = detect_drift(reference, current, current_texts=texts, reference_texts=texts, seed=4).to_dict()
    second = detect_drift(reference, current, current_texts=texts, reference_texts=texts, seed=4).to_dict()
    assert first == second
    assert json.loads(json.dumps(first, allow_nan=False)) == first
    assert set(first) == {
        "drift", "p_value", "alpha", "n_reference", "n_current", "reason", "methods", "examples",
        "reference_examples",
    }  # fmt: skip
    assert set(first["methods"]) == set(METHODS)
    assert set(first["methods"]["mmd"]) == {"statistic", "p_value", "bandwidth", "features", "permutations"}
    assert set(first["methods"]["ks"]) >= {"statistic", "p_value", "n_components", "correction"}
    assert set(first["methods"]["classifier"]) == {"statistic", "p_value", "auc", "folds", "n_components"}
    assert set(first["examples"][0]) == {"index", "witness", "text"}
    for value in _leaves(first):
        assert value is None or type(value) in (bool, int, float, str)


def _leaves(value: object) -> Iterator[object]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value
