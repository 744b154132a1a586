"""``loopwise eval``: offline evaluation of a JSONL dataset, end to end.

The CLI runs in-process through click's runner (and once as the installed ``loopwise`` script);
BLEU and ROUGE values are checked against sacrebleu and rouge-score called directly. ``--push``
goes to a real collector process on the embedded store, whose experiments API is then read back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import sacrebleu
from click.testing import CliRunner, Result
from rouge_score import rouge_scorer

from loopwise_collector.cli import main
from loopwise_collector.errors import InvalidPayloadError, NotFoundError
from loopwise_collector.evaluators import ENTRY_POINT_GROUP, BaseEvaluator, EvalItem, Registry, Score
from loopwise_collector.evaluators import _registry as evaluator_registry
from loopwise_collector.store import ClickHouseStore
from loopwise_collector.store.experiments import ExperimentStore, OfflineScore, offline_score_id
from tests.support.collector_process import CollectorProcess

pytestmark = pytest.mark.integration

KEY = "lw_eval_key"
OTHER_KEY = "lw_eval_other"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"

OUTPUTS = [
    ("The cat sat on the mat.", "The cat sat on the mat."),
    ("A dog ran quickly through the park.", "The dog runs through a park."),
    ("Paris is the capital of France.", "The capital of France is Paris."),
    ("It rained all day in London yesterday.", "Yesterday it rained in London all day long."),
    ("Use the reset link in your email.", "Click the reset link we emailed you."),
    ("Refunds take five business days.", "A refund takes 5 to 7 business days."),
    ("hello world", "hello there world"),
    ("Totally unrelated answer about bananas.", "The invoice is attached to your account page."),
]


def write_jsonl(path: Path, rows: Sequence[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def qa_rows(n: int = 24) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(n):
        output, reference = OUTPUTS[i % len(OUTPUTS)]
        row: dict[str, Any] = {"id": f"q{i}", "input": f"question {i}", "output": output, "reference": reference}
        row["context"] = ["doc a", "doc b"] if i % 2 else "one doc"
        if i == 3:
            row |= {"trace_id": TRACE_ID, "span_id": SPAN_ID}
        rows.append(row)
    return rows


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "qa.jsonl", qa_rows())


def run_eval(args: Sequence[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["eval", *args], env=env, catch_exceptions=True)


def failed(result: Result) -> str:
    """The error text of a run that must fail cleanly: non-zero exit, no traceback."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), f"crashed: {result.exception!r}"
    assert "Traceback" not in result.output
    return result.output


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


# --- results against the libraries -----------------------------------------------------------------


def test_bleu_and_rouge_match_the_libraries(dataset: Path, tmp_path: Path) -> None:
    out, summary_path = tmp_path / "results.jsonl", tmp_path / "summary.json"
    result = run_eval(
        ["--dataset", str(dataset), "--evaluators", "bleu,rouge", "--out", str(out), "--summary", str(summary_path),
         "--option", "rouge.rouge_type=rouge1", "--option", "rouge.use_stemmer=true", "--batch-size", "5"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out)
    source = qa_rows()
    assert len(rows) == len(source)
    scorer = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)
    for row, original in zip(rows, source, strict=True):
        assert {k: v for k, v in row.items() if k != "scores"} == original  # the input row rides along unchanged
        bleu, rouge = row["scores"]["bleu"], row["scores"]["rouge"]
        expected_bleu = sacrebleu.sentence_bleu(original["output"], [original["reference"]]).score
        assert bleu["value"] == pytest.approx(expected_bleu, abs=1e-9)
        expected_rouge = scorer.score(original["reference"], original["output"])["rouge1"].fmeasure
        assert rouge["value"] == pytest.approx(expected_rouge, abs=1e-12)
        assert bleu["error"] is False and bleu["label"] == "" and set(bleu) >= {"explanation", "metadata"}

    summary = json.loads(summary_path.read_text())
    assert summary["dataset"]["rows"] == len(source)
    assert summary["dataset"]["name"] == "qa" and len(summary["dataset"]["version"]) == 12
    outputs, refs = [r["output"] for r in source], [r["reference"] for r in source]
    corpus = sacrebleu.corpus_bleu(outputs, [refs])
    bleu_summary = summary["evaluators"]["bleu"]
    assert bleu_summary["aggregate"]["corpus_bleu"] == pytest.approx(corpus.score, abs=1e-9)
    for name in ("bleu", "rouge"):
        values = [r["scores"][name]["value"] for r in rows]
        stats = summary["evaluators"][name]
        assert stats["n"] == len(values) and stats["errors"] == 0
        assert stats["mean"] == pytest.approx(float(np.mean(values)))
        assert stats["p50"] == pytest.approx(percentile(values, 50))
        assert stats["p95"] == pytest.approx(percentile(values, 95))
        assert stats["version"]

    header, *lines = result.stdout.splitlines()
    assert header.split() == ["evaluator", "n", "errors", "mean", "p50", "p95"]
    bleu_line = next(line for line in lines if line.startswith("bleu "))
    assert bleu_line.split()[1:3] == [str(len(source)), "0"]
    assert f"corpus_bleu {corpus.score:.4f}" in result.stdout
    assert "Evaluating" in result.stderr  # the progress bar goes to stderr, the table to stdout


def test_installed_script_runs(dataset: Path, tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("loopwise")
    out = tmp_path / "results.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPWISE_")}
    proc = subprocess.run(
        [str(script), "eval", "--dataset", str(dataset), "--evaluators", "bleu", "--out", str(out)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[1].split()[:3] == ["bleu", "24", "0"]
    assert f"Wrote 24 rows to {out}." in proc.stdout
    assert len(read_jsonl(out)) == 24


COOKING = ["How long should I bake sourdough bread?", "What is a good tomato pasta sauce?",
           "How do I make fluffy pancakes?", "Best way to roast vegetables?", "How to cook rice without sticking?",
           "What spices go with lamb?", "How do I caramelize onions?", "Can I freeze fresh basil?"]  # fmt: skip
NETWORK = ["My internet keeps dropping every evening.", "The router lights are blinking orange.",
           "Wifi is slow upstairs.", "I cannot connect my printer to the network.",
           "The modem restarts on its own.", "DNS errors when opening websites.", "Ethernet port not detected.",
           "Speed test shows 2 Mbps only."]  # fmt: skip


def test_embedding_drift_reads_its_reference_window(tmp_path: Path) -> None:
    # The reference window holds *inputs* here, so the drift evaluator is told to use that field.
    ref = write_jsonl(tmp_path / "last-week.jsonl", [{"input": f"{COOKING[i % 8]} ({i})"} for i in range(30)])
    data = write_jsonl(tmp_path / "this-week.jsonl",
                       [{"input": f"{NETWORK[i % 8]} ({i})", "output": "ok"} for i in range(30)])  # fmt: skip
    out, summary_path = tmp_path / "r.jsonl", tmp_path / "s.json"
    result = run_eval(
        ["--dataset", str(data), "--evaluators", "embedding_drift", "--reference", str(ref), "--out", str(out),
         "--summary", str(summary_path), "--option", "embedding_drift.field=input",
         "--option", "embedding_drift.permutations=200", "--batch-size", "10"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    stats = json.loads(summary_path.read_text())["evaluators"]["embedding_drift"]
    drift = stats["aggregate"]["drift"]
    assert drift["drift"] is True and drift["n_reference"] == 30 and drift["n_current"] == 30
    assert stats["n"] == 30 and stats["errors"] == 0
    assert "drift.drift true" in result.stdout


def test_no_aggregate_skips_corpus_results(dataset: Path, tmp_path: Path) -> None:
    summary_path = tmp_path / "s.json"
    result = run_eval(
        ["--dataset", str(dataset), "--evaluators", "bleu", "--out", str(tmp_path / "r.jsonl"),
         "--summary", str(summary_path), "--no-aggregate"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    stats = json.loads(summary_path.read_text())["evaluators"]["bleu"]
    assert stats["aggregate"] == {} and stats["n"] == 24


# --- bad input: a clear message, a non-zero exit, nothing written -----------------------------------


def test_unknown_evaluator_lists_known_names_before_reading_the_dataset(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")  # never read: names are checked first
    out = tmp_path / "r.jsonl"
    text = failed(run_eval(["--dataset", str(broken), "--evaluators", "bleu,blue", "--out", str(out)]))
    assert "unknown evaluator 'blue'" in text
    assert "known evaluators: bleu, " in text and "rouge" in text and "toxicity" in text
    assert "did you mean 'bleu'?" in text
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"output": "a", "reference": "a"}\n{"output": "b", \n', "bad.jsonl:2: malformed JSON"),
        ('{"output": "a", "reference": "a"}\n\n[1, 2]\n', "bad.jsonl:3: each line must be a JSON object"),
        ('"just a string"\n', "bad.jsonl:1: each line must be a JSON object"),
        ('{"output": "a", "reference": "a", "context": 3}\n', "bad.jsonl:1: 'context' must be a string or a list"),
        (b'{"output": "caf\xe9", "reference": "a"}\n', "bad.jsonl:1: not UTF-8 text"),
        ("", "has no rows"),
        ("\n  \n", "has no rows"),
    ],
    ids=["malformed", "array", "string", "context", "encoding", "empty", "blank"],
)
def test_bad_dataset_lines(tmp_path: Path, content: str | bytes, expected: str) -> None:
    bad = tmp_path / "bad.jsonl"
    if isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        bad.write_text(content)
    out = tmp_path / "r.jsonl"
    text = failed(run_eval(["--dataset", str(bad), "--evaluators", "bleu", "--out", str(out)]))
    assert expected in text
    assert not out.exists()


def test_missing_field_stops_with_lines_unless_allowed(tmp_path: Path) -> None:
    rows = [{"output": f"answer {i}", "reference": f"answer {i}"} for i in range(10)]
    for i in (2, 5, 6, 7, 8, 9, 3):
        rows[i].pop("reference")
    rows[4]["reference"] = None  # null counts as missing
    data = write_jsonl(tmp_path / "partial.jsonl", rows)
    out = tmp_path / "r.jsonl"
    text = failed(run_eval(["--dataset", str(data), "--evaluators", "rouge,bleu", "--out", str(out)]))
    assert "bleu needs 'reference': missing on 8 row(s) (line 3, 4, 5, 6, 7, ...)" in text
    assert "rouge needs 'reference'" in text and "--allow-missing" in text
    assert not out.exists()

    result = run_eval(["--dataset", str(data), "--evaluators", "bleu", "--out", str(out), "--allow-missing"])
    assert result.exit_code == 0, result.output
    scores = [r["scores"]["bleu"] for r in read_jsonl(out)]
    errors = [s for s in scores if s["error"]]
    assert len(errors) == 8 and all(s["value"] is None and s["label"] == "error" for s in errors)
    assert "missing field(s) 'reference' needed by bleu" in errors[0]["explanation"]
    assert scores[0]["value"] == pytest.approx(100.0)
    assert "8 error score(s)" in result.stderr
    assert result.stdout.splitlines()[1].split()[:3] == ["bleu", "2", "8"]


def test_files_and_options(dataset: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "r.jsonl")
    cases: list[tuple[list[str], str]] = [
        (["--dataset", str(tmp_path / "nope.jsonl"), "--evaluators", "bleu", "--out", out], "does not exist"),
        (["--dataset", str(dataset), "--evaluators", "bleu", "--out", str(tmp_path / "no" / "r.jsonl")],
         f"directory '{tmp_path / 'no'}' does not exist"),
        (["--dataset", str(dataset), "--evaluators", "bleu", "--out", out, "--summary", str(tmp_path / "x" / "s.json")],
         f"directory '{tmp_path / 'x'}' does not exist"),
        (["--dataset", str(dataset), "--evaluators", "bleu", "--out", str(dataset)], "is the dataset itself"),
        (["--dataset", str(dataset), "--evaluators", "toxicity", "--option", "toxicity.checkpoint=/nope", "--out", out],
         "cannot set up evaluator toxicity: checkpoint '/nope' does not exist"),
        (["--dataset", str(dataset), "--evaluators", "embedding_similarity", "--out", out,
          "--option", "embedding_similarity.model=/nope"], "embedding model directory '/nope' does not exist"),
        (["--dataset", str(dataset), "--evaluators", "bleu", "--option", "bleu.tokenize=klingon", "--out", out],
         "unknown tokenize 'klingon'"),
        (["--dataset", str(dataset), "--evaluators", "bleu", "--option", "bleu.colour=1", "--out", out],
         "unexpected keyword argument 'colour'"),
        (["--dataset", str(dataset), "--evaluators", "bleu", "--option", "rouge.rouge_type=rouge1", "--out", out],
         "'rouge.rouge_type=rouge1' is for evaluator 'rouge', which is not in --evaluators (bleu)"),
        (["--dataset", str(dataset), "--evaluators", "bleu", "--option", "bleu", "--out", out],
         "'bleu' is not NAME.PARAM=VALUE"),
        (["--dataset", str(dataset), "--evaluators", " , ", "--out", out], "name at least one evaluator"),
        (["--dataset", str(dataset), "--evaluators", "embedding_drift", "--out", out],
         "embedding_drift compares the dataset with a reference window: pass --reference"),
        (["--dataset", str(dataset), "--evaluators", "bleu", "--reference", str(dataset), "--out", out],
         "--reference is the baseline for embedding_drift"),
        (["--dataset", str(dataset), "--evaluators", "bleu", "--push", "--out", out], "--push needs --name"),
        (["--dataset", str(dataset), "--evaluators", "bleu", "--batch-size", "0", "--out", out], "--batch-size"),
    ]  # fmt: skip
    for args, expected in cases:
        text = failed(run_eval(args))
        assert expected in text, (args, text)
        assert not Path(out).exists()


def test_reference_file_errors_name_the_line(dataset: Path, tmp_path: Path) -> None:
    ref = write_jsonl(tmp_path / "ref.jsonl", [{"output": "fine"}, {"input": "no output here"}])
    text = failed(
        run_eval(["--dataset", str(dataset), "--evaluators", "embedding_drift", "--reference", str(ref),
                  "--out", str(tmp_path / "r.jsonl")])
    )  # fmt: skip
    assert f"{ref}:2: reference row has no 'output' text" in text


# --- evaluators that misbehave, registered in this process -----------------------------------------


class _Length(BaseEvaluator):
    name = "lw_test_length"
    kind = "metric"
    requires = frozenset({"output"})
    value_range = (0.0, float("inf"))

    def score_batch(self, items: Sequence[EvalItem]) -> list[Score]:
        return [Score(self.name, float(len(i.output)), label="long" if len(i.output) > 20 else "short")
                for i in items]  # fmt: skip


class _Raises:
    """Breaks the protocol's promise that evaluate never raises."""

    name = "lw_test_raises"
    kind = "metric"
    version = "0"
    requires = frozenset({"output"})
    value_range = (0.0, 1.0)

    def evaluate(self, items: Sequence[EvalItem]) -> list[Score]:
        raise RuntimeError("kaput")

    def aggregate(self, items: Sequence[EvalItem], scores: Sequence[Score]) -> dict[str, Any]:
        raise ValueError("no aggregate either")


class _LazyConfig(BaseEvaluator):
    """Finds its bad model path only on first use, as a lazily loading evaluator would."""

    name = "lw_test_lazy"
    kind = "model"

    def score_batch(self, items: Sequence[EvalItem]) -> list[Score]:
        from loopwise_collector.evaluators import EvaluatorConfigError

        raise EvaluatorConfigError("lw_test_lazy: model '/missing' does not exist")


@pytest.fixture
def fake_evaluators(monkeypatch: pytest.MonkeyPatch) -> None:
    # A registry of this test's own, so the process-wide one is left as it was.
    registry = Registry(group=ENTRY_POINT_GROUP)
    for name, factory in (("lw_test_length", _Length), ("lw_test_raises", _Raises), ("lw_test_lazy", _LazyConfig)):
        registry.register(name, factory)
    monkeypatch.setattr(evaluator_registry, "REGISTRY", registry)


def test_misbehaving_evaluators_cost_their_rows_not_the_run(
    fake_evaluators: None, dataset: Path, tmp_path: Path
) -> None:
    out, summary_path = tmp_path / "r.jsonl", tmp_path / "s.json"
    result = run_eval(
        ["--dataset", str(dataset), "--evaluators", "lw_test_length,lw_test_raises", "--out", str(out),
         "--summary", str(summary_path)]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out)
    assert all(r["scores"]["lw_test_raises"]["explanation"] == "RuntimeError: kaput" for r in rows)
    assert rows[0]["scores"]["lw_test_length"]["value"] == len(rows[0]["output"])
    stats = json.loads(summary_path.read_text())["evaluators"]
    assert stats["lw_test_raises"]["errors"] == 24 and stats["lw_test_raises"]["mean"] is None
    assert stats["lw_test_raises"]["aggregate"] == {"error": "ValueError: no aggregate either"}
    assert sum(stats["lw_test_length"]["labels"].values()) == 24
    assert "lw_test_raises raised RuntimeError: kaput" in result.stderr

    text = failed(run_eval(["--dataset", str(dataset), "--evaluators", "lw_test_lazy", "--out", str(out)]))
    assert "evaluator lw_test_lazy cannot run: lw_test_lazy: model '/missing' does not exist" in text


# --- the experiment store on each backend -----------------------------------------------------------


@pytest.fixture
def store(store_dsn: str) -> Iterator[ClickHouseStore]:
    s = ClickHouseStore(store_dsn)
    s.open()
    yield s
    s.close()


def test_experiment_store_on_each_backend(store: ClickHouseStore) -> None:
    mine, theirs = ExperimentStore(store, "p1"), ExperimentStore(store, "p2")
    first = mine.upsert("e1", name="base", dataset_name="qa", dataset_version="v1", evaluators={"bleu": "1-a"},
                        summary={"evaluators": {"bleu": {"mean": 1.5}}}, row_count=3)  # fmt: skip
    mine.upsert("e0", name="older", dataset_name="qa", dataset_version="v0", evaluators={}, summary={}, row_count=0)
    again = mine.upsert("e1", name="base", dataset_name="qa", dataset_version="v1", evaluators={"bleu": "1-a"},
                        summary={"evaluators": {"bleu": {"mean": 2.5}}}, row_count=3)  # fmt: skip
    assert again.created_at_ns == first.created_at_ns
    assert mine.get("e1") == again and mine.get("e1").summary_object()["evaluators"]["bleu"]["mean"] == 2.5
    assert [e.experiment_id for e in mine.list_experiments()] == ["e0", "e1"]  # newest first
    assert theirs.find("e1") is None and theirs.list_experiments() == []
    with pytest.raises(NotFoundError):
        theirs.get("e1")
    with pytest.raises(InvalidPayloadError):
        mine.upsert("e2", name="nan", dataset_name="qa", dataset_version="v1", evaluators={},
                    summary={"mean": float("nan")}, row_count=0)  # fmt: skip

    scores = [OfflineScore(row=r, name=n, value=float(r), metadata={"k": "v"}) for r in (10, 2, 0) for n in ("b", "a")]
    store.insert_scores(mine.score_records(again, scores))
    store.insert_scores(mine.score_records(again, scores[:2]))  # a re-push replaces
    assert mine.count_scores("e1") == 6 and theirs.count_scores("e1") == 0
    listed = mine.list_scores("e1", limit=4)
    assert [(s.metadata["row"], s.name) for s in listed] == [("0", "a"), ("0", "b"), ("2", "a"), ("2", "b")]
    assert [(s.metadata["row"], s.name) for s in mine.list_scores("e1", limit=4, offset=4)] == [
        ("10", "a"),
        ("10", "b"),
    ]
    assert listed[0].source == "offline" and listed[0].metadata["k"] == "v"
    assert listed[0].metadata["dataset_version"] == "v1" and listed[0].metadata["experiment_id"] == "e1"


# --- --push to a real collector ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    proc = CollectorProcess(
        tmp_path_factory.mktemp("eval-push") / "data",
        env={"LOOPWISE_INIT_PROJECTS": f"evals:{KEY},others:{OTHER_KEY}", "LOOPWISE_INGEST__MAX_DELAY_MS": "20"},
    )
    proc.start()
    yield proc
    proc.stop()


def api(collector: CollectorProcess, path: str, key: str = KEY, **params: Any) -> httpx.Response:
    return httpx.get(f"{collector.url}{path}", params=params, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def all_scores(collector: CollectorProcess, exp_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = api(collector, f"/api/v1/experiments/{exp_id}/scores", limit=7, offset=offset).json()
        out.extend(page["data"])
        offset = page["next_offset"]
    return out


def test_push_creates_an_experiment_with_its_scores(collector: CollectorProcess, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "support-qa.jsonl", qa_rows(12))
    out, summary_path = tmp_path / "results.jsonl", tmp_path / "summary.json"
    args = ["--dataset", str(data), "--evaluators", "bleu,rouge", "--out", str(out), "--summary", str(summary_path),
            "--push", "--name", "baseline", "--endpoint", collector.url, "--batch-size", "5"]  # fmt: skip
    result = run_eval(args, env={"LOOPWISE_API_KEY": KEY})
    assert result.exit_code == 0, result.output
    assert "Pushed experiment 'baseline'" in result.stdout and "24 scores" in result.stdout
    assert "Bearer $LOOPWISE_API_KEY" in result.stdout  # the key itself is not echoed when it came from the env

    listed = api(collector, "/api/v1/experiments").json()["data"]
    exp = next(e for e in listed if e["name"] == "baseline")
    summary = json.loads(summary_path.read_text())
    assert exp["dataset_name"] == "support-qa" and exp["dataset_version"] == summary["dataset"]["version"]
    assert exp["row_count"] == 12 and exp["summary"] == summary
    assert exp["evaluators"] == {n: summary["evaluators"][n]["version"] for n in ("bleu", "rouge")}

    detail = api(collector, f"/api/v1/experiments/{exp['id']}").json()
    assert detail["score_count"] == 24
    scores = all_scores(collector, exp["id"])
    assert [(s["row"], s["name"]) for s in scores] == [(r, n) for r in range(12) for n in ("bleu", "rouge")]
    results = read_jsonl(out)
    for s in scores:
        assert s["source"] == "offline"
        assert s["value"] == pytest.approx(results[s["row"]]["scores"][s["name"]]["value"])
        assert s["id"] == offline_score_id(exp["id"], s["row"], s["name"])
        assert s["evaluator_version"] == exp["evaluators"][s["name"]]
        meta = s["metadata"]
        assert meta["experiment_id"] == exp["id"] and meta["row"] == str(s["row"])
        assert meta["dataset"] == "support-qa" and meta["dataset_version"] == exp["dataset_version"]
    row3 = [s for s in scores if s["row"] == 3]
    assert {s["trace_id"] for s in row3} == {TRACE_ID} and {s["span_id"] for s in row3} == {SPAN_ID}
    assert json.loads(scores[0]["metadata"]["precision_1"]) == pytest.approx(100.0)  # metadata values as text

    # The same run pushed again, as the installed script this time: replaced, not duplicated.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPWISE_")}
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("loopwise")), "eval", *args, "--api-key", KEY],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Bearer {KEY}" in proc.stdout
    again = [e for e in api(collector, "/api/v1/experiments").json()["data"] if e["name"] == "baseline"]
    assert [e["id"] for e in again] == [exp["id"]] and again[0]["created_at"] == exp["created_at"]
    assert api(collector, f"/api/v1/experiments/{exp['id']}").json()["score_count"] == 24
    assert len(all_scores(collector, exp["id"])) == 24

    # Another project sees none of it.
    assert api(collector, f"/api/v1/experiments/{exp['id']}", key=OTHER_KEY).status_code == 404
    other = api(collector, f"/api/v1/experiments/{exp['id']}/scores", key=OTHER_KEY)
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"
    assert all(e["id"] != exp["id"] for e in api(collector, "/api/v1/experiments", key=OTHER_KEY).json()["data"])


def test_push_uses_the_key_loopwise_up_keeps(collector: CollectorProcess, dataset: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "lw"
    data_dir.mkdir()
    (data_dir / "credentials.json").write_text(json.dumps({"project": "evals", "api_key": KEY}))
    result = run_eval(
        ["--dataset", str(dataset), "--evaluators", "bleu", "--out", str(tmp_path / "r.jsonl"), "--push",
         "--name", "stored-key", "--dataset-name", "qa-set", "--dataset-version", "v7", "--data-dir", str(data_dir)],
        env={"LOOPWISE_API_KEY": None, "LOOPWISE_ENDPOINT": collector.url},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    exp = next(e for e in api(collector, "/api/v1/experiments").json()["data"] if e["name"] == "stored-key")
    assert (exp["dataset_name"], exp["dataset_version"], exp["row_count"]) == ("qa-set", "v7", 24)


def test_push_refusals(collector: CollectorProcess, dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    base = ["--dataset", str(dataset), "--evaluators", "bleu", "--out", str(out), "--push", "--name", "x"]
    text = failed(run_eval([*base, "--endpoint", collector.url, "--api-key", "lw_wrong"]))
    assert f"the collector at {collector.url} rejected the API key (HTTP 401" in text
    assert not out.exists()  # checked before evaluating anything

    text = failed(run_eval([*base, "--endpoint", "http://127.0.0.1:9", "--api-key", KEY]))
    assert "cannot reach a Loopwise collector at http://127.0.0.1:9" in text

    text = failed(
        run_eval(
            [*base, "--data-dir", str(tmp_path / "empty")],
            env={"LOOPWISE_API_KEY": None, "LOOPWISE_ENDPOINT": collector.url},
        )
    )
    assert "no API key for --push" in text

    resp = httpx.post(
        f"{collector.url}/api/v1/experiments", json={"name": "x", "dataset_name": "d", "dataset_version": "1"},
        headers={"Authorization": "Bearer lw_wrong"}, timeout=30,
    )  # fmt: skip
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "unauthorized"


def test_experiments_api_rejects_bad_bodies(collector: CollectorProcess) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}

    def post(path: str, body: Any) -> httpx.Response:
        return httpx.post(f"{collector.url}{path}", json=body, headers=auth, timeout=30)

    created = post("/api/v1/experiments", {"name": "api", "dataset_name": "d", "dataset_version": "1"})
    assert created.status_code == 201
    exp_id = created.json()["id"]
    score = {"row": 0, "name": "bleu", "value": 1.0}
    assert post(f"/api/v1/experiments/{exp_id}/scores", {"scores": [score]}).json() == {"accepted": 1}
    for path, body, status in [
        ("/api/v1/experiments/nope/scores", {"scores": [score]}, 404),
        (f"/api/v1/experiments/{exp_id}/scores", {"scores": [score] * 1001}, 422),
        (f"/api/v1/experiments/{exp_id}/scores", {"scores": []}, 422),
        (f"/api/v1/experiments/{exp_id}/scores", {"scores": [{**score, "row": -1}]}, 422),
        (f"/api/v1/experiments/{exp_id}/scores", {"scores": [{**score, "trace_id": "xyz"}]}, 422),
        (f"/api/v1/experiments/{exp_id}/scores", {"scores": [{**score, "metadata": {"a": 1}}]}, 422),
        ("/api/v1/experiments", {"name": "", "dataset_name": "d", "dataset_version": "1"}, 422),
        ("/api/v1/experiments", {"name": "x", "dataset_name": "d", "dataset_version": "1", "id": "a b"}, 422),
        ("/api/v1/experiments", {"name": "x", "dataset_name": "d", "dataset_version": "1", "colour": 1}, 422),
    ]:
        resp = post(path, body)
        assert resp.status_code == status, (path, resp.text)
        assert resp.json()["error"]["message"]
    assert api(collector, f"/api/v1/experiments/{exp_id}").json()["score_count"] == 1
    assert api(collector, "/api/v1/experiments/nope").status_code == 404
