"""BLEU, ROUGE and hf_evaluate: equal to the libraries on the libraries' own test vectors, and robust.

Every value is compared with ``==`` against the library called directly on the same input, and,
where the library's own tests hard-code an expected number, against that number with the tolerance
those tests use.
"""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from loopwise_collector.evaluators import EvalItem, Evaluator, EvaluatorConfigError, get_evaluator
from loopwise_collector.evaluators.bleu import Bleu, item_references
from loopwise_collector.evaluators.hf_evaluate import HFEvaluate
from loopwise_collector.evaluators.rouge import ROUGE_TYPES, Rouge, cap_tokens

pytestmark = pytest.mark.unit

# --- sacrebleu's test vectors -------------------------------------------------------------------
# From mjpost/sacrebleu test/test_sentence_bleu.py (examples from sacrebleu issues #98 and #141):
# (smooth_method, smooth_value, lowercase, tokenize, expected sentence BLEU), tolerance 1e-3.
SB_REF = "producţia de zahăr brut se exprimă în zahăr alb;"
SB_SYS = "Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;"
SB_SENTENCE_CASES = [
    ("exp", None, False, "13a", 8.493),
    ("none", None, False, "13a", 0.0),
    ("floor", None, False, "13a", 4.51688),
    ("floor", 0.1, False, "13a", 4.51688),
    ("floor", 0.5, False, "13a", 10.10),
    ("add-k", None, False, "13a", 14.882),
    ("add-k", 1, False, "13a", 14.882),
    ("add-k", 2, False, "13a", 21.389),
    ("exp", None, False, "none", 7.347),
    ("exp", None, False, "intl", 8.493),
    ("exp", None, False, "char", 40.8759),
    ("exp", None, True, "char", 42.0267),
]
SB_REF_0 = "okay thanks"
SB_SYS_0 = "this is a cat"
SB_ZERO_CASES = [
    ("exp", None),
    ("none", None),
    ("floor", None),
    ("floor", 0.1),
    ("add-k", None),
    ("add-k", 1),
]
# From test/test_bleu.py: the README example (two reference streams) and corpus BLEU per setting,
# tolerance 1e-8; and the effective-order cases (tokenize none, floor 0.01; expected on a 0-1 scale).
SB_REFS = [
    ["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
    ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."],
]
SB_HYPS = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
SB_CORPUS_CASES = [
    (SB_HYPS, {}, 48.530827),
    (["", "", ""], {}, 0.0),
    (SB_HYPS, {"tokenize": "none"}, 49.1919566),
    (SB_HYPS, {"tokenize": "13a"}, 48.530827),
    (SB_HYPS, {"tokenize": "intl"}, 43.91623493),
    (SB_HYPS, {"smooth_method": "none"}, 48.530827),
]
SB_EFFECTIVE_ORDER_CASES = [
    ("test", "a test", 0.3678794411714425),
    ("a test", "a test", 1.0),
    ("a little test", "a test", 0.03218297948685433),
]


def sacre_kwargs(smooth_method: str, smooth_value: float | None, lowercase: bool, tok: str) -> dict[str, Any]:
    return {"smooth_method": smooth_method, "smooth_value": smooth_value, "lowercase": lowercase, "tokenize": tok}


@pytest.mark.parametrize(("smooth_method", "smooth_value", "lowercase", "tok", "expected"), SB_SENTENCE_CASES)
def test_bleu_equals_sacrebleu_sentence_vectors(
    smooth_method: str, smooth_value: float | None, lowercase: bool, tok: str, expected: float
) -> None:
    kwargs = sacre_kwargs(smooth_method, smooth_value, lowercase, tok)
    [score] = Bleu(**kwargs).evaluate([EvalItem(output=SB_SYS, reference=SB_REF)])
    assert score.value == sacrebleu.sentence_bleu(SB_SYS, [SB_REF], **kwargs).score
    assert score.value == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize(("smooth_method", "smooth_value"), SB_ZERO_CASES)
def test_bleu_zero_vectors(smooth_method: str, smooth_value: float | None) -> None:
    [score] = Bleu(smooth_method=smooth_method, smooth_value=smooth_value).evaluate(
        [EvalItem(output=SB_SYS_0, reference=SB_REF_0)]
    )
    assert score.value == 0.0


@pytest.mark.parametrize(("hyp", "ref", "expected"), SB_EFFECTIVE_ORDER_CASES)
def test_bleu_effective_order_vectors(hyp: str, ref: str, expected: float) -> None:
    kwargs: dict[str, Any] = {"tokenize": "none", "smooth_method": "floor", "smooth_value": 0.01}
    [score] = Bleu(**kwargs).evaluate([EvalItem(output=hyp, reference=ref)])
    assert score.value == sacrebleu.sentence_bleu(hyp, [ref], **kwargs).score
    assert score.value is not None
    assert abs(score.value / 100 - expected) < 1e-8


@pytest.mark.parametrize(("hyps", "kwargs", "expected"), SB_CORPUS_CASES)
def test_bleu_aggregate_equals_corpus_bleu_vectors(hyps: list[str], kwargs: dict[str, Any], expected: float) -> None:
    bleu = Bleu(**kwargs)
    items = [
        EvalItem(output=h, reference=r0, metadata={"references": [r1]})
        for h, r0, r1 in zip(hyps, SB_REFS[0], SB_REFS[1], strict=True)
    ]
    scores = bleu.evaluate(items)
    corpus = bleu.aggregate(items, scores)
    direct = sacrebleu.corpus_bleu(hyps, SB_REFS, **kwargs)
    assert corpus["corpus_bleu"] == direct.score
    assert abs(corpus["corpus_bleu"] - expected) < 1e-8
    assert corpus["precisions"] == direct.precisions
    assert corpus["signature"].startswith("nrefs:2|case:mixed|eff:no|")
    # Per item, multiple references: sentence BLEU against both.
    for h, r0, r1, score in zip(hyps, SB_REFS[0], SB_REFS[1], scores, strict=True):
        assert score.value == sacrebleu.sentence_bleu(h, [r0, r1], **kwargs).score
        assert score.metadata["n_refs"] == 2


def test_bleu_aggregate_skips_error_items_and_handles_a_variable_reference_count() -> None:
    bleu = Bleu()
    items = [
        EvalItem(output=SB_HYPS[0], reference=SB_REFS[0][0]),
        EvalItem(output="no reference here"),
        EvalItem(output=SB_HYPS[1], reference=SB_REFS[0][1], metadata={"references": SB_REFS[1][1]}),
    ]
    scores = bleu.evaluate(items)
    assert scores[1].is_error and "reference" in scores[1].explanation
    corpus = bleu.aggregate(items, scores)
    streams: list[list[Any]] = [SB_REFS[0][:2], [None, SB_REFS[1][1]]]
    direct = sacrebleu.corpus_bleu(SB_HYPS[:2], streams)
    assert corpus["corpus_bleu"] == direct.score
    assert corpus["n_items"] == 2
    assert "nrefs:var" in corpus["signature"]
    assert bleu.aggregate([items[1]], [scores[1]]) == {}


def test_bleu_empty_and_non_ascii_texts() -> None:
    bleu = Bleu()
    cases = [("", "a reference"), ("an output", ""), ("", ""), ("東京は日本の首都です。", "日本の首都は東京です。")]
    scores = bleu.evaluate([EvalItem(output=o, reference=r) for o, r in cases])
    for (o, r), score in zip(cases, scores, strict=True):
        assert not score.is_error
        assert score.value == sacrebleu.sentence_bleu(o, [r]).score
    zh = Bleu(tokenize="zh")
    [score] = zh.evaluate([EvalItem(output=cases[3][0], reference=cases[3][1])])
    assert score.value == sacrebleu.sentence_bleu(cases[3][0], [cases[3][1]], tokenize="zh").score > 0


def test_bleu_config_version_and_errors() -> None:
    bleu = get_evaluator("bleu")
    assert isinstance(bleu, Evaluator) and isinstance(bleu, Bleu)
    assert bleu.value_range == (0.0, 100.0)
    assert dict(Bleu().config()) == {
        "tokenize": "13a",
        "tokenizer_signature": "13a",
        "lowercase": False,
        "smooth_method": "exp",
        "smooth_value": None,
        "sacrebleu": sacrebleu.__version__,
    }
    assert Bleu().version == Bleu().version != Bleu(lowercase=True).version != Bleu(tokenize="intl").version
    with pytest.raises(EvaluatorConfigError, match="unknown tokenize 'bogus'"):
        Bleu(tokenize="bogus")
    with pytest.raises(EvaluatorConfigError, match="smooth_method"):
        Bleu(smooth_method="laplace")
    with pytest.raises(EvaluatorConfigError, match="unexpected keyword"):
        get_evaluator("bleu", smoothing="exp")
    with pytest.raises(TypeError):
        item_references(EvalItem(output="x", reference="y", metadata={"references": 3}))


# --- rouge-score's test vectors ------------------------------------------------------------------
# From google-research/google-research rouge/rouge_scorer_test.py; the two-line files are
# rouge/testdata/target.txt and prediction.txt (read there with readlines(), so each keeps its
# newline), and pyrouge_files/target_multi.0.txt / prediction_multi.0.txt. The expected numbers are
# that test's, from ROUGE-1.5.5 (5 places) or by hand (7 places).
RS_TARGETS = [
    "ZfbCUIUuePaiLVUlCaUXxkpu XPeWing tUHfPMuZ',-Xd Y BrUgVJing M-HV.-DgdDaY.rFDJCRing Ht-LM EKBDXkME,yz'RBr "
    "q'wtion wIojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxer tKM L\n",
    "KsJdPByEtAor fE-Qg Dpdbring cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMtion psing sbKao Q m qiing LMmer "
    "HqqLFXe,XPY,J XsurkMer ,ed nB'wH'bWVHjWFEing tQ.saefZwJtKrTlixYpMMsJing UCAPwNHeYVjDing c T BUySKtion "
    "gMPfJpwGw p'NvxAoping eu pBwMBKV'I DNxqelhu,PHPxDEq,mtion SN\n",
]
RS_PREDICTIONS = [
    "rFDJCRtion Ht-LM EKtDXkME,yz'RBr q'wer wrojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxi\n",
    "n cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMer pstion sbKao Q m qier LMmed HqqLFXe,XPY,J XsurkMeo ,ed "
    "nB'wH'bWVHjWFEer tQ.saefZwJtKrTlixYpMMNJtion UCAPwNHeYVjD\n",
]
RS_TARGET_MULTI = (
    RS_TARGETS[0]
    + RS_TARGETS[1]
    + "NhETebUbBk'er WOvoHMTjSRizKgH'vHiing Xu,hWxfs VkNE QhgKiLHE -HidivzoM.dO anhtion jbLQiSGDTCsuhREebUaKM dv "
    "J dVN tmbOT\n"
    "vMR HDm,xOAetion D,tion HJtodT.mHl UIv-p VjWH'BdyWjnfGU-OjT aEMdFICyLWfQMtion wEMfdOKing AwkeKbO 'DxqNOHBH "
    "qKtVvm OYJl mM\n"
)
RS_PREDICTION_MULTI = (
    RS_PREDICTIONS[0]
    + RS_PREDICTIONS[1]
    + "xfs VkJE QhgKiLHE -HidivzoM.dO anhing jbLQiSGDTCsuhREebUaKM dv J\n"
    + "VjWH'BdyWjnfGU-OjTNaEMdFICyLWfQMing wEMfdOKijg AwkeKbO 'DxqNO\n"
)
# (target, prediction, use_stemmer, rouge type, expected (precision, recall, fmeasure), places)
RS_CASES = [
    ("testing one two", "testing", False, "rouge1", (1, 1 / 3, 1 / 2), 7),
    ("testing one two", "testing one", False, "rouge2", (1, 1 / 2, 2 / 3), 7),
    ("testing one two", "testing one", False, "rougeL", (1, 2 / 3, 4 / 5), 7),
    ("testing one two", "testing two", False, "rougeL", (1, 2 / 3, 4 / 5), 7),
    ("testing one two", "testing one", False, "rouge1", (1, 2 / 3, 4 / 5), 7),
    ("testing one two", "", False, "rouge1", (0, 0, 0), 7),
    ("testing one two", "", False, "rougeLsum", (0, 0, 0), 7),
    ("w1 w2 w3 w4 w5", "w1 w2 w6 w7 w8\nw1 w3 w8 w9 w5", False, "rougeLsum", (0.4, 0.8, 0.5333), 3),
    ("w1 w2 w3 w4 w5", "", False, "rougeLsum", (0, 0, 0), 3),
    ("", "w1", False, "rougeLsum", (0, 0, 0), 3),
    ("w1 w2 w3 w4 w5", "/", False, "rougeLsum", (0, 0, 0), 3),
    ("First sentence.\nSecond Sentence.", "Second sentence.\nFirst Sentence.", True, "rougeLsum", (1, 1, 1), 5),
    ("First sentence. Second Sentence.", "Second sentence. First Sentence.", True, "rougeLsum", (0.5, 0.5, 0.5), 5),
    (RS_TARGETS[0], RS_PREDICTIONS[0], False, "rouge1", (0.68750, 0.40741, 0.51163), 5),
    (RS_TARGETS[1], RS_PREDICTIONS[1], False, "rouge1", (0.65385, 0.40476, 0.50000), 5),
    (RS_TARGETS[0], RS_PREDICTIONS[0], True, "rouge1", (0.68750, 0.40741, 0.51163), 5),
    (RS_TARGETS[1], RS_PREDICTIONS[1], True, "rouge1", (0.69231, 0.42857, 0.52941), 5),
    (RS_TARGETS[0], RS_PREDICTIONS[0], False, "rouge2", (0.53333, 0.30769, 0.39024), 5),
    (RS_TARGETS[1], RS_PREDICTIONS[1], False, "rouge2", (0.48000, 0.29268, 0.36364), 5),
    (RS_TARGETS[0], RS_PREDICTIONS[0], True, "rouge2", (0.53333, 0.30769, 0.39024), 5),
    (RS_TARGETS[1], RS_PREDICTIONS[1], True, "rouge2", (0.48000, 0.29268, 0.36364), 5),
    (RS_TARGETS[0], RS_PREDICTIONS[0], False, "rougeL", (0.68750, 0.40741, 0.51163), 5),
    (RS_TARGETS[1], RS_PREDICTIONS[1], False, "rougeL", (0.65385, 0.40476, 0.50000), 5),
    (RS_TARGET_MULTI, RS_PREDICTION_MULTI, True, "rougeLsum", (0.66667, 0.36538, 0.47205), 5),
]


@pytest.fixture(scope="module")
def scorers() -> dict[bool, Any]:
    return {stem: rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=stem) for stem in (False, True)}


@pytest.mark.parametrize(("target", "prediction", "stem", "rouge_type", "expected", "places"), RS_CASES)
def test_rouge_equals_rouge_score_vectors(
    scorers: dict[bool, Any],
    target: str,
    prediction: str,
    stem: bool,
    rouge_type: str,
    expected: tuple[float, float, float],
    places: int,
) -> None:
    [score] = Rouge(rouge_type=rouge_type, use_stemmer=stem).evaluate([EvalItem(output=prediction, reference=target)])
    direct = scorers[stem].score(target, prediction)
    # Also against a scorer built for the one type, as rouge-score's own test does.
    single = rouge_scorer.RougeScorer([rouge_type], use_stemmer=stem).score(target, prediction)[rouge_type]
    assert score.value == direct[rouge_type].fmeasure == single.fmeasure
    for t in ROUGE_TYPES:
        assert score.metadata[t] == direct[t].fmeasure
        assert score.metadata[f"{t}_precision"] == direct[t].precision
        assert score.metadata[f"{t}_recall"] == direct[t].recall
    precision, recall, fmeasure = expected
    tol = 10**-places
    assert score.metadata[f"{rouge_type}_precision"] == pytest.approx(precision, abs=tol)
    assert score.metadata[f"{rouge_type}_recall"] == pytest.approx(recall, abs=tol)
    assert score.value == pytest.approx(fmeasure, abs=tol)
    assert score.metadata["truncated"] is False


def test_rouge_multiple_references_follow_score_multi(scorers: dict[bool, Any]) -> None:
    # rouge_scorer_test.testRougeAllMulti: references "first text" and "first something".
    item = EvalItem(output="text first", reference="first text", metadata={"references": ["first something"]})
    [score] = Rouge().evaluate([item])
    multi = scorers[False].score_multi(["first text", "first something"], "text first")
    for t in ROUGE_TYPES:
        assert score.metadata[t] == multi[t].fmeasure
    assert (score.metadata["rouge1"], score.metadata["rouge2"], score.value) == (1.0, 0.0, 0.5)


def test_rouge_non_ascii_and_aggregate(scorers: dict[bool, Any]) -> None:
    rouge = Rouge(rouge_type="rouge1")
    cases = [("Café crème brûlée, s'il vous plaît", "Un café et une crème brûlée"), ("東京", "東京"), ("", "")]
    items = [EvalItem(output=o, reference=r) for o, r in cases] + [EvalItem(output="no reference")]
    scores = rouge.evaluate(items)
    for (o, r), score in zip(cases, scores[:3], strict=True):
        assert score.value == scorers[False].score(r, o)["rouge1"].fmeasure
    assert scores[-1].is_error
    agg = rouge.aggregate(items, scores)
    assert agg["n_items"] == 3 and agg["n_truncated"] == 0
    for t in ROUGE_TYPES:
        assert agg[t] == sum(scorers[False].score(r, o)[t].fmeasure for o, r in cases) / 3


def words(n: int, seed: int) -> list[str]:
    vocab = [f"w{i}" for i in range(50)] + ["the", "model", "answer", "cat"]
    return [vocab[(i * 7919 + seed * 104729 + i // 3) % len(vocab)] for i in range(n)]


def test_rouge_caps_long_texts_and_keeps_short_ones_exact(scorers: dict[bool, Any]) -> None:
    long_out, long_ref = words(50_000, 1), words(50_000, 2)
    rouge = Rouge()  # default cap: 1000 tokens a side
    started = time.perf_counter()
    [score] = rouge.evaluate([EvalItem(output=" ".join(long_out), reference=" ".join(long_ref))])
    elapsed = time.perf_counter() - started
    assert elapsed < 15, f"a 50k-word pair took {elapsed:.1f}s: the cap did not apply"
    assert score.metadata["truncated"] is True
    capped = scorers[False].score(" ".join(long_ref[:1000]), " ".join(long_out[:1000]))
    for t in ROUGE_TYPES:
        assert score.metadata[t] == capped[t].fmeasure

    # At the cap exactly, nothing is cut and the value is the uncapped library value.
    out, ref = "\n".join(long_out[:40]), " ".join(long_ref[:40])
    [at_cap] = Rouge(max_tokens=40).evaluate([EvalItem(output=out, reference=ref)])
    assert at_cap.metadata["truncated"] is False
    assert at_cap.value == scorers[False].score(ref, out)["rougeL"].fmeasure
    [no_cap] = Rouge(max_tokens=None).evaluate([EvalItem(output=out, reference=ref)])
    assert no_cap.value == at_cap.value


def test_cap_tokens_counts_like_the_rouge_tokenizer() -> None:
    from rouge_score import tokenize

    texts = [
        "Hello, world! It's 2024; l'été — ÇA VA?\nNext line: x-ray",
        "İstanbul İİ ist KELVIN \u212a x",  # lowercase changes length; the Kelvin sign lowers to "k"
        "   leading space, trailing   ",
        "ünïcödé wörds only",
    ]
    for text in texts:
        tokens = tokenize.tokenize(text, None)
        for cap in range(1, len(tokens) + 2):
            cut, truncated = cap_tokens(text, cap)
            assert truncated is (len(tokens) > cap)
            assert tokenize.tokenize(cut, None) == tokens[:cap]
            if not truncated:
                assert cut is text
    assert cap_tokens("a\nb c", 2) == ("a\nb", True)


def test_rouge_config_and_errors() -> None:
    rouge = get_evaluator("rouge")
    assert isinstance(rouge, Rouge) and rouge.value_range == (0.0, 1.0)
    assert rouge.version != Rouge(use_stemmer=True).version != Rouge(max_tokens=500).version
    assert rouge.version == Rouge().version
    with pytest.raises(EvaluatorConfigError, match="rouge_type"):
        Rouge(rouge_type="rouge3")
    with pytest.raises(EvaluatorConfigError, match="max_tokens"):
        Rouge(max_tokens=0)


# --- hf_evaluate ---------------------------------------------------------------------------------

EXACT_MATCH = '''
import datasets
import evaluate


class ExactMatch(evaluate.Metric):
    """Test module: share of predictions equal to their reference."""

    def _info(self):
        return evaluate.MetricInfo(
            description="exact match",
            citation="",
            inputs_description="predictions, references: strings",
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, ignore_case=False):
        if ignore_case:
            predictions = [p.lower() for p in predictions]
            references = [r.lower() for r in references]
        hits = sum(p == r for p, r in zip(predictions, references))
        return {"exact_match": hits / len(predictions), "n": len(predictions), "note": "ok"}
'''

LENGTHS = """
import datasets
import evaluate


class Lengths(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="two numbers, neither named after the module",
            citation="",
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        return {
            "prediction_chars": sum(map(len, predictions)) / len(predictions),
            "reference_chars": sum(map(len, references)) / len(references),
        }
"""


@pytest.fixture(scope="session")
def hf_modules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Local evaluate modules, and evaluate's caches in a temp dir (evaluate.load copies modules there).

    One directory per test session, whichever module asks (the conformance suite imports this
    fixture): evaluate imports the copied modules as a package rooted at the first cache directory
    it used, so a second directory in the same process would not be found.
    """
    root = tmp_path_factory.getbasetemp() / "hf_evaluate"
    cache = root / "cache"
    env = {
        "HF_MODULES_CACHE": cache / "modules",
        "HF_EVALUATE_CACHE": cache / "evaluate",
        "HF_METRICS_CACHE": cache / "metrics",
    }
    mp = pytest.MonkeyPatch()
    for var, path in env.items():
        mp.setenv(var, str(path))
    loaded = sys.modules.get("evaluate.config")
    if loaded is not None:  # evaluate reads these at import; follow along if it is already in
        for var, path in env.items():
            mp.setattr(loaded, var, path)
        mp.setattr(loaded, "DOWNLOADED_EVALUATE_PATH", env["HF_EVALUATE_CACHE"] / "downloads")
    for name, source in (("exact_match", EXACT_MATCH), ("lengths", LENGTHS)):
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / f"{name}.py").write_text(textwrap.dedent(source))
    (root / "empty_dir").mkdir(exist_ok=True)
    yield root
    mp.undo()


def test_hf_evaluate_local_module_per_item_and_corpus(hf_modules: Path) -> None:
    ev = get_evaluator("hf_evaluate", module=str(hf_modules / "exact_match"))
    assert isinstance(ev, HFEvaluate) and isinstance(ev, Evaluator)
    items = [
        EvalItem(output="Paris", reference="Paris"),
        EvalItem(output="paris", reference="Paris"),
        EvalItem(output="Lyon"),
        EvalItem(output="Zürich ✓", reference="Zürich ✓"),
        EvalItem(output="", reference=""),
    ]
    scores = ev.evaluate(items)
    assert [s.value for s in scores] == [1.0, 0.0, None, 1.0, 1.0]
    assert {s.name for s in scores} == {"hf_exact_match"}
    assert scores[2].is_error and "reference" in scores[2].explanation
    assert scores[0].metadata == {"exact_match": 1.0, "n": 1.0}
    corpus = ev.aggregate(items, scores)
    assert corpus["key"] == "exact_match" and corpus["value"] == 0.75 and corpus["n_items"] == 4
    assert corpus["result"] == {"exact_match": 0.75, "n": 4, "note": "ok"}

    folded = HFEvaluate(
        module=str(hf_modules / "exact_match" / "exact_match.py"),
        compute_kwargs={"ignore_case": True},
        score_name="em_ci",
    )
    assert [s.value for s in folded.evaluate(items[:2])] == [1.0, 1.0]
    assert folded.evaluate(items[:1])[0].name == "em_ci"
    assert folded.version != ev.version


def test_hf_evaluate_version_follows_the_script(hf_modules: Path) -> None:
    a = HFEvaluate(module=str(hf_modules / "exact_match"))
    config = a.config()
    assert config["module"] == str((hf_modules / "exact_match" / "exact_match.py").resolve())
    assert len(config["script_sha256"]) == 64
    again = HFEvaluate(module=str(hf_modules / "exact_match" / "exact_match.py"))
    assert a.version == again.version
    assert a._module()[0] is again._module()[0]  # loaded once per process, shared
    changed = hf_modules / "changed" / "exact_match"
    changed.mkdir(parents=True, exist_ok=True)
    (changed / "exact_match.py").write_text(textwrap.dedent(EXACT_MATCH) + "\n# edited\n")
    assert HFEvaluate(module=str(changed)).config()["script_sha256"] != config["script_sha256"]
    assert HFEvaluate(module=str(hf_modules / "exact_match"), key="n").version != a.version


def test_hf_evaluate_key_must_be_unambiguous(hf_modules: Path) -> None:
    items = [EvalItem(output="abcd", reference="ab")]
    with pytest.raises(EvaluatorConfigError, match=r"several numeric results .*pass key="):
        HFEvaluate(module=str(hf_modules / "lengths")).evaluate(items)
    [score] = HFEvaluate(module=str(hf_modules / "lengths"), key="prediction_chars").evaluate(items)
    assert score.value == 4.0 and score.metadata["reference_chars"] == 2.0
    [missing] = HFEvaluate(module=str(hf_modules / "lengths"), key="bleu").evaluate(items)
    assert missing.is_error and "returned no 'bleu'" in missing.explanation


def test_hf_evaluate_bad_modules(hf_modules: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EvaluatorConfigError, match="does not exist"):
        get_evaluator("hf_evaluate", module=str(hf_modules / "no_such_metric"))
    with pytest.raises(EvaluatorConfigError, match="does not exist"):
        HFEvaluate(module="./metrics/nope")
    with pytest.raises(EvaluatorConfigError, match=r"holds no empty_dir\.py"):
        HFEvaluate(module=str(hf_modules / "empty_dir"))
    with pytest.raises(EvaluatorConfigError, match="missing 1 required keyword-only argument"):
        get_evaluator("hf_evaluate")
    # A Hub name cannot load offline; the message says to pass a local path.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EvaluatorConfigError, match=r"pass module= a local path: a directory holding bleu\.py"):
        HFEvaluate(module="bleu")
