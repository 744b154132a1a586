"""The contract every registered evaluator keeps, built-ins and installed plugins alike (as Hugging
Face `evaluate` does for its metrics): batch in equals batch out, same input same output, values in
the declared range, empty / very long / non-ASCII text handled, and a failing item becomes an error
score instead of a crash. Each runs with real libraries and local models.

A new evaluator needs an entry in ``PARAMS`` below (how to build it offline); the test that lists
the registry fails until it has one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from loopwise_collector.evaluators import (
    ENTRY_POINT_GROUP,
    BaseEvaluator,
    EvalItem,
    Evaluator,
    Registry,
    Score,
)
from tests.support.openai_server import OpenAIServer
from tests.support.tiny_detoxify import build_tiny_detoxify
from tests.unit.test_evaluators_metrics import hf_modules  # noqa: F401 - a fixture used below

pytestmark = pytest.mark.integration

REGISTRY = Registry(group=ENTRY_POINT_GROUP)  # built-ins and plugins only: tests register extras globally
CONTEXT = ("The Eiffel Tower is in Paris. It was completed in 1889 and is about 330 metres tall.",)
FEEDBACK = [{"name": "thumbs", "value": 1.0}, {"name": "rating", "value": 4.0, "comment": "good"}]
REFERENCE_WINDOW = [f"Support answer {i} about shipping, refunds and passwords." for i in range(40)]


def item(output: str, **kw: Any) -> EvalItem:
    base: dict[str, Any] = {
        "input": "How tall is the Eiffel Tower?", "reference": "The Eiffel Tower is about 330 metres tall.",
        "context": CONTEXT, "metadata": {"feedback": FEEDBACK, "model": "m1", "variant": "a"},
    }  # fmt: skip
    return EvalItem(output=output, **{**base, **kw})


ITEMS = [
    item("The Eiffel Tower is about 330 metres tall."),
    item("It was finished in 1889, in Paris."),
    item("The tower is made of chocolate and was built on the Moon in 1999."),
]
EDGE = {
    "empty": item(""),
    "long": item("The tower is tall. " * 3000),  # ~57k characters
    "non_ascii": item("Der Eiffelturm ist etwa 330 Meter hoch. 埃菲尔铁塔高约330米。 🗼✨ ça va"),
}

Params = Callable[[pytest.FixtureRequest], dict[str, Any]]


def _judge(request: pytest.FixtureRequest) -> dict[str, Any]:
    server: OpenAIServer = request.getfixturevalue("openai_server")
    server.reset()
    server.reply = json.dumps({"score": 0.75, "label": "pass", "reasoning": "consistent with the context"})
    return {"base_url": server.base_url, "model": "judge-model", "api_key": "sk-test", "max_retries": 0}


PARAMS: dict[str, Params] = {
    "bleu": lambda r: {},
    "rouge": lambda r: {},
    "hf_evaluate": lambda r: {"module": str(r.getfixturevalue("hf_modules") / "exact_match")},
    "embedding_similarity": lambda r: {},
    "toxicity": lambda r: {"checkpoint": str(r.getfixturevalue("detoxify_checkpoint"))},
    "hallucination": lambda r: {},
    "llm_judge": _judge,
    "human_feedback": lambda r: {},
    "embedding_drift": lambda r: {"reference": REFERENCE_WINDOW},
}


@pytest.fixture(scope="module")
def detoxify_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_detoxify(tmp_path_factory.mktemp("detoxify"))


@pytest.fixture(params=REGISTRY.names())
def evaluator(request: pytest.FixtureRequest) -> Evaluator:
    name = request.param
    if name not in PARAMS:
        pytest.fail(f"evaluator {name!r} has no conformance parameters: add it to PARAMS")
    return REGISTRY.create(name, **PARAMS[name](request))


def values(scores: list[Score]) -> list[tuple[float | None, str]]:
    return [(None if s.value is None else round(s.value, 6), s.label) for s in scores]


def test_every_registered_evaluator_has_parameters() -> None:
    assert set(REGISTRY.names()) <= set(PARAMS)


def test_protocol_and_batch_shape(evaluator: Evaluator) -> None:
    assert isinstance(evaluator, Evaluator)
    assert evaluator.kind in ("metric", "model", "llm_judge", "human")
    assert isinstance(evaluator.version, str) and evaluator.version
    low, high = evaluator.value_range
    assert low <= high
    assert evaluator.evaluate([]) == []
    for n in (1, 3, 7):
        batch = [ITEMS[i % len(ITEMS)] for i in range(n)]
        scores = evaluator.evaluate(batch)
        assert len(scores) == n and all(isinstance(s, Score) for s in scores)
        assert not any(s.is_error for s in scores), [s.explanation for s in scores if s.is_error]
    json.dumps(evaluator.aggregate(ITEMS, evaluator.evaluate(ITEMS)), default=str)  # JSON-ready for summaries


def test_same_input_same_output_and_order(evaluator: Evaluator) -> None:
    first = evaluator.evaluate(ITEMS)
    again = evaluator.evaluate(ITEMS)
    assert values(first) == values(again)
    reversed_scores = evaluator.evaluate(ITEMS[::-1])
    # Batched evaluation must not mix items up: each item scores the same wherever it sits.
    if evaluator.name != "embedding_drift":  # its per-item value is relative to the whole window
        assert values(reversed_scores[::-1]) == values(first)


def test_values_stay_in_range(evaluator: Evaluator) -> None:
    low, high = evaluator.value_range
    for score in evaluator.evaluate([*ITEMS, *EDGE.values()]):
        if score.is_error:
            continue
        assert score.value is not None and math.isfinite(score.value)
        assert low - 1e-6 <= score.value <= high + 1e-6, (evaluator.name, score)


@pytest.mark.parametrize("case", sorted(EDGE))
def test_edge_texts_are_handled(evaluator: Evaluator, case: str) -> None:
    (score,) = evaluator.evaluate([EDGE[case]])
    assert isinstance(score, Score)
    if score.is_error:  # an explained refusal is fine, a crash is not
        assert score.explanation


def test_a_failing_item_becomes_an_error_score(evaluator: Evaluator, monkeypatch: pytest.MonkeyPatch) -> None:
    if not isinstance(evaluator, BaseEvaluator):
        pytest.skip("plugin without BaseEvaluator: only the shape checks apply")
    original = evaluator.score_batch

    def flaky(items: Any) -> list[Score]:
        if any(i.output == "boom" for i in items):
            raise RuntimeError("simulated failure on one item")
        return original(items)

    monkeypatch.setattr(evaluator, "score_batch", flaky)
    scores = evaluator.evaluate([ITEMS[0], item("boom"), ITEMS[1]])
    assert [s.is_error for s in scores] == [False, True, False]
    assert "simulated failure" in scores[1].explanation
    # A missing required field is an error score naming the field, never an exception.
    lacking = [f for f in ("reference", "context") if f in evaluator.requires]
    if lacking:
        (missing,) = evaluator.evaluate([EvalItem(output="x", input="")])
        assert missing.is_error and lacking[0] in missing.explanation
