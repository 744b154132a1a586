"""Evaluator throughput on this CPU, each next to the library it wraps, measured in the same run.

What it measures
    - ``bleu``, ``rouge``, ``hf_evaluate``: items/s of ``evaluate(batch)`` at batch 64 over
      ``--items`` synthetic support answers (40-70 words, output paraphrasing the reference),
      interleaved with the library called directly on the same items: ``sacrebleu.sentence_bleu``
      in a loop (and a reused ``sacrebleu.metrics.BLEU``), ``RougeScorer.score`` in a loop (one
      scorer, the same four types), ``module.compute`` in a loop for a local exact-match module.
      Target (issue): within 10% of the library (overhead = median over repeats of ours/library time).
    - ``_embeddings.embed``: sentences/s at batch 64 with the packaged all-MiniLM-L6-v2, next to
      ``SentenceTransformer.encode`` on the same model object. Target: >= 200 sentences/s.
    - ``embedding_similarity``, ``hallucination``, ``toxicity``: items/s at batch 64, with a
      same-run reference where one exists (``encode`` + cosine; ``Detoxify.predict``). Toxicity runs
      the tiny Detoxify-format checkpoint from ``tests/support/tiny_detoxify.py`` (a 2-layer,
      32-wide BERT: it measures the evaluator's plumbing, not Detoxify's real 110M-parameter model).
      An evaluator whose module is missing is reported as not available.
    - ``embedding_drift.detect_drift`` on 5,000 vs 5,000 embedded user questions drawn from two
      topic mixtures (``bench/_eval_data.py``); the embedding time is reported on its own. Target:
      <= 10 s. A same-mixture split (2,500 vs 2,500) is run as a no-drift control.

How to run (from the repository root)
    .venv/bin/python bench/evaluators.py            # ~3-5 min on 2 cores
    .venv/bin/python bench/evaluators.py --quick    # smoke test, ~1 min (model loading dominates)

    It prints tables and writes ``bench/results/evaluators-<timestamp>.json``. Models load from
    local files only (``HF_HUB_OFFLINE=1``); evaluate's module cache goes to a temp directory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import _common as common
import _eval_data as data

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
BATCH = 64
OVERHEAD_TARGET = 0.10
EMBED_TARGET = 200.0
DRIFT_TARGET_S = 10.0

EXACT_MATCH = """
import datasets
import evaluate


class ExactMatch(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="exact match", citation="",
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        return {"exact_match": sum(p == r for p, r in zip(predictions, references)) / len(predictions)}
"""


def batches(items: Sequence[Any], size: int = BATCH) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def interleaved(
    runs: dict[str, Callable[[], Any]], repeats: int, before: Callable[[], Any] | None = None
) -> dict[str, dict[str, list[float]]]:
    """Wall and thread-CPU seconds per call of each function, ``repeats`` times, alternating the order.

    Each function runs once untimed first; ``before`` (untimed) runs ahead of every call, e.g. to empty
    the embedding cache so that every pass encodes.
    """
    for fn in runs.values():
        if before is not None:
            before()
        fn()
    times: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in runs}
    names = list(runs)
    for r in range(repeats):
        for name in names if r % 2 == 0 else reversed(names):
            if before is not None:
                before()
            c0, t0 = time.thread_time(), time.perf_counter()
            runs[name]()
            times[name]["wall"].append(time.perf_counter() - t0)
            times[name]["cpu"].append(time.thread_time() - c0)
    return times


def compare(
    name: str, n: int, ours: dict[str, list[float]], ref: dict[str, list[float]], reference: str, *, clock: str = "cpu"
) -> dict[str, Any]:
    """A row: items/s (median wall time) of ours and the reference, the paired overhead and its verdict.

    The overhead is the median over repeats of ours / reference on ``clock``: thread CPU time for
    single-threaded Python (other processes on a shared machine disturb it far less than wall time),
    wall time where the work runs on other threads (torch).
    """
    overhead = statistics.median(o / r for o, r in zip(ours[clock], ref[clock], strict=True)) - 1
    return {
        "evaluator": name,
        "reference": reference,
        "items": n,
        "repeats": len(ours["wall"]),
        "ours_per_s": n / statistics.median(ours["wall"]),
        "reference_per_s": n / statistics.median(ref["wall"]),
        "ours_cpu_per_s": n / statistics.median(ours["cpu"]),
        "reference_cpu_per_s": n / statistics.median(ref["cpu"]),
        "overhead": overhead,
        "overhead_clock": clock,
        "target": f"overhead <= {OVERHEAD_TARGET:.0%}",
        "verdict": "PASS" if overhead <= OVERHEAD_TARGET else "MISS",
    }


def unavailable(name: str, exc: BaseException) -> dict[str, Any]:
    print(f"  {name}: not available ({type(exc).__name__}: {exc})")
    return {"evaluator": name, "available": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}


# --- metrics --------------------------------------------------------------------------------------


def bench_metrics(items: list[data.QAItem], repeats: int) -> list[dict[str, Any]]:
    import sacrebleu
    from rouge_score import rouge_scorer
    from sacrebleu.metrics.bleu import BLEU

    from loopwise_collector.evaluators import EvalItem, get_evaluator
    from loopwise_collector.evaluators.rouge import ROUGE_TYPES

    evals = [EvalItem(input=i.question, output=i.output, reference=i.reference) for i in items]
    chunks = batches(evals)
    pairs = [(i.output, i.reference) for i in items]
    rows = []

    bleu = get_evaluator("bleu")
    reused = BLEU(effective_order=True)
    times = interleaved(
        {
            "ours": lambda: [bleu.evaluate(c) for c in chunks],
            "sentence_bleu": lambda: [sacrebleu.sentence_bleu(o, [r]) for o, r in pairs],
            "reused": lambda: [reused.sentence_score(o, [r]) for o, r in pairs],
        },
        repeats,
    )
    rows.append(compare("bleu", len(items), times["ours"], times["sentence_bleu"], "sacrebleu.sentence_bleu loop"))
    rows.append(compare("bleu", len(items), times["ours"], times["reused"], "BLEU(effective_order=True) reused"))
    check = bleu.evaluate(evals[:8])
    assert all(s.value == sacrebleu.sentence_bleu(o, [r]).score for s, (o, r) in zip(check, pairs, strict=False))

    rouge = get_evaluator("rouge")
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES))
    times = interleaved(
        {
            "ours": lambda: [rouge.evaluate(c) for c in chunks],
            "direct": lambda: [scorer.score(r, o) for o, r in pairs],
        },
        repeats,
    )
    rows.append(compare("rouge", len(items), times["ours"], times["direct"], "RougeScorer.score loop (4 types)"))
    check = rouge.evaluate(evals[:8])
    assert all(s.value == scorer.score(r, o)["rougeL"].fmeasure for s, (o, r) in zip(check, pairs, strict=False))
    return rows


def bench_hf_evaluate(items: list[data.QAItem], repeats: int, workdir: Path) -> dict[str, Any]:
    if "evaluate" not in sys.modules:  # evaluate reads these once, at import: keep its copies out of ~/.cache
        os.environ["HF_HOME"] = str(workdir / "hf_home")
        os.environ["HF_MODULES_CACHE"] = str(workdir / "hf_home" / "modules")
    module_dir = workdir / "exact_match"
    module_dir.mkdir(parents=True, exist_ok=True)
    (module_dir / "exact_match.py").write_text(textwrap.dedent(EXACT_MATCH))
    from loopwise_collector.evaluators import EvalItem, get_evaluator

    t0 = time.perf_counter()
    ev: Any = get_evaluator("hf_evaluate", module=str(module_dir))
    evals = [EvalItem(output=i.output, reference=i.output if n % 3 == 0 else i.reference) for n, i in enumerate(items)]
    ev.evaluate(evals[:1])
    load_s = time.perf_counter() - t0
    module = ev._module()[0]  # the very object ev computes with: the reference calls it directly
    chunks = batches(evals)
    times = interleaved(
        {
            "ours": lambda: [ev.evaluate(c) for c in chunks],
            "direct": lambda: [module.compute(predictions=[e.output], references=[e.reference]) for e in evals],
        },
        repeats,
    )
    row = compare("hf_evaluate", len(evals), times["ours"], times["direct"], "EvaluationModule.compute loop")
    row["first_load_s"] = load_s
    return row


# --- embeddings and model evaluators ------------------------------------------------------------------


def clear_embedding_cache() -> None:
    """Empty ``_embeddings``' LRU of recent vectors, so that a timed pass encodes every text."""
    from loopwise_collector.evaluators import _embeddings

    cache = getattr(_embeddings, "_cache", None)
    if cache is not None:
        with _embeddings._lock:
            cache.clear()


def bench_embeddings(texts: list[str], repeats: int) -> dict[str, Any]:
    from loopwise_collector.evaluators._embeddings import embed, sentence_model

    t0 = time.perf_counter()
    model = sentence_model()
    load_s = time.perf_counter() - t0
    times = interleaved(
        {
            "ours": lambda: embed(texts, batch_size=BATCH),
            "direct": lambda: model.encode(
                texts, batch_size=BATCH, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            ),
        },
        repeats,
        before=clear_embedding_cache,
    )
    row = compare(
        "_embeddings.embed", len(texts), times["ours"], times["direct"], "SentenceTransformer.encode", clock="wall"
    )
    # Live traffic repeats itself and embed() remembers recent vectors: the same texts again, cache warm.
    embed(texts, batch_size=BATCH)
    t0 = time.perf_counter()
    embed(texts, batch_size=BATCH)
    row["cached_per_s"] = len(texts) / (time.perf_counter() - t0)
    row["model_load_s"] = load_s
    row["target"] = f">= {EMBED_TARGET:.0f} sentences/s"
    row["verdict"] = "PASS" if row["ours_per_s"] >= EMBED_TARGET else "MISS"
    return row


def bench_similarity(items: list[data.QAItem], repeats: int) -> dict[str, Any]:
    try:
        from loopwise_collector.evaluators import EvalItem, get_evaluator
        from loopwise_collector.evaluators._embeddings import sentence_model

        ev = get_evaluator("embedding_similarity")
    except Exception as exc:
        return unavailable("embedding_similarity", exc)
    evals = [EvalItem(output=i.output, reference=i.reference) for i in items]
    chunks = batches(evals)
    model = sentence_model()

    def direct() -> None:
        for chunk in batches(items):
            vectors = model.encode(
                [i.output for i in chunk] + [i.reference for i in chunk],
                batch_size=BATCH,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            half = len(chunk)
            (vectors[:half] * vectors[half:]).sum(axis=1)

    times = interleaved(
        {"ours": lambda: [ev.evaluate(c) for c in chunks], "direct": direct}, repeats, before=clear_embedding_cache
    )
    row = compare(
        "embedding_similarity", len(items), times["ours"], times["direct"], "encode + cosine, direct", clock="wall"
    )
    row["target"], row["verdict"] = "(reference only)", "-"
    return row


def bench_hallucination(items: list[data.QAItem], repeats: int) -> dict[str, Any]:
    try:
        from loopwise_collector.evaluators import EvalItem, get_evaluator

        ev = get_evaluator("hallucination")
    except Exception as exc:
        return unavailable("hallucination", exc)
    evals = [EvalItem(input=i.question, output=i.output, context=i.context) for i in items]
    chunks = batches(evals)
    times = interleaved({"ours": lambda: [ev.evaluate(c) for c in chunks]}, repeats, before=clear_embedding_cache)
    flagged = sum(s.label == "hallucinated" for s in ev.evaluate(evals[:BATCH]))
    return {
        "evaluator": "hallucination",
        "reference": "(none: no library computes this)",
        "items": len(items),
        "repeats": repeats,
        "ours_per_s": len(items) / statistics.median(times["ours"]["wall"]),
        "flagged_in_first_batch": flagged,
        "target": "(reference only)",
        "verdict": "-",
    }


def bench_toxicity(items: list[data.QAItem], repeats: int, workdir: Path) -> dict[str, Any]:
    support = common.REPO_ROOT / "tests" / "support" / "tiny_detoxify.py"
    if not support.exists():
        return unavailable("toxicity", FileNotFoundError(f"{support} (the tiny checkpoint builder) is missing"))
    try:
        if str(common.REPO_ROOT) not in sys.path:
            sys.path.insert(0, str(common.REPO_ROOT))
        from loopwise_collector.evaluators import EvalItem, get_evaluator
        from tests.support.tiny_detoxify import build_tiny_detoxify

        t0 = time.perf_counter()
        checkpoint = build_tiny_detoxify(workdir / "tiny-detoxify")
        build_s = time.perf_counter() - t0
        ev: Any = get_evaluator("toxicity", checkpoint=str(checkpoint), config_path=str(checkpoint.parent / "hf"))
        detector = ev.load()
    except Exception as exc:
        return unavailable("toxicity", exc)
    evals = [EvalItem(output=i.output) for i in items]
    chunks = batches(evals)
    texts = [i.output for i in items]
    size = getattr(ev, "batch_size", 32)
    times = interleaved(
        {
            "ours": lambda: [ev.evaluate(c) for c in chunks],
            "direct": lambda: [detector.predict(texts[k : k + size]) for k in range(0, len(texts), size)],
        },
        repeats,
    )
    row = compare("toxicity (tiny ckpt)", len(items), times["ours"], times["direct"], "Detoxify.predict", clock="wall")
    row["checkpoint_build_s"] = build_s
    row["target"], row["verdict"] = "(reference only)", "-"
    return row


def bench_drift(n: int, repeats: int) -> dict[str, Any]:
    try:
        from loopwise_collector.evaluators._embeddings import embed
        from loopwise_collector.evaluators.embedding_drift import detect_drift
    except Exception as exc:
        return unavailable("embedding_drift", exc)
    reference_texts, current_texts = data.drift_corpora(n)
    clear_embedding_cache()
    t0 = time.perf_counter()
    reference = embed(reference_texts, batch_size=BATCH)
    current = embed(current_texts, batch_size=BATCH)
    embed_s = time.perf_counter() - t0
    times: list[float] = []
    result: Any = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = detect_drift(reference, current, reference_texts=reference_texts, current_texts=current_texts)
        times.append(time.perf_counter() - t0)
    half = n // 2
    t0 = time.perf_counter()
    control = detect_drift(reference[:half], reference[half:])
    control_s = time.perf_counter() - t0
    seconds = statistics.median(times)
    found = result.to_dict()
    return {
        "evaluator": "embedding_drift.detect_drift",
        "n_reference": n,
        "n_current": n,
        "dimensions": int(reference.shape[1]),
        "embed_s": embed_s,
        "embed_sentences_per_s": 2 * n / embed_s,
        "detect_s": seconds,
        "detect_runs_s": times,
        "drift": found["drift"],
        "p_value": found["p_value"],
        "methods": found["methods"],
        "top_current_examples": [e["text"] for e in found["examples"]][:3],
        "control": {"n": half, "drift": bool(control.drift), "p_value": control.p_value, "seconds": control_s},
        "target": f"<= {DRIFT_TARGET_S:.0f} s",
        "verdict": "PASS" if seconds <= DRIFT_TARGET_S else "MISS",
    }


# --- driver ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--items", type=int, default=512, help="items for bleu/rouge/hf_evaluate (default 512)")
    p.add_argument("--repeats", type=int, default=7, help="timed passes for the metrics (default 7)")
    p.add_argument("--sentences", type=int, default=512, help="sentences for the embedding figure (default 512)")
    p.add_argument("--model-items", type=int, default=128, help="items per model evaluator (default 128)")
    p.add_argument("--model-repeats", type=int, default=2, help="timed passes for model evaluators (default 2)")
    p.add_argument("--drift-n", type=int, default=5000, help="rows per drift window (default 5,000)")
    p.add_argument("--quick", action="store_true", help="smoke run: few items, one repeat, 500 vs 500 drift")
    args = p.parse_args(argv)
    if args.quick:
        args.items, args.repeats, args.sentences = min(args.items, 128), min(args.repeats, 2), min(args.sentences, 128)
        args.model_items, args.model_repeats, args.drift_n = min(args.model_items, 64), 1, min(args.drift_n, 500)
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    machine = common.machine_info()
    print(f"machine: {machine['cores']} cores, {machine['cpu_model']}, Python {machine['python']}")
    machine["load_before_start"] = common.idle_check()
    workdir = Path(tempfile.mkdtemp(prefix="loopwise-bench-eval-"))
    started = time.perf_counter()
    sys0, own0 = common.system_cpu(), time.process_time()
    try:
        items = data.qa_items(args.items)
        print(f"metrics: {args.items} items at batch {BATCH}, {args.repeats} repeats ...")
        metrics = bench_metrics(items, args.repeats)
        print("hf_evaluate: local exact_match module ...")
        try:
            metrics.append(bench_hf_evaluate(items[: max(BATCH, args.items // 2)], max(2, args.repeats // 2), workdir))
        except Exception as exc:
            metrics.append(unavailable("hf_evaluate", exc))
        print(f"embeddings: {args.sentences} sentences ...")
        embeddings = bench_embeddings(data.sentences(args.sentences), max(1, min(args.repeats, 3)))
        model_items = data.qa_items(args.model_items, seed=23)
        models: list[dict[str, Any]] = []
        steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("embedding_similarity", lambda: bench_similarity(model_items, args.model_repeats)),
            ("hallucination", lambda: bench_hallucination(model_items, args.model_repeats)),
            ("toxicity", lambda: bench_toxicity(model_items, args.model_repeats, workdir)),
        ]
        for label, step in steps:
            print(f"{label}: {args.model_items} items ...")
            models.append(step())
        print(f"drift: {args.drift_n:,} vs {args.drift_n:,} ...")
        drift = bench_drift(args.drift_n, 1 if args.quick else 2)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    total_s = time.perf_counter() - started
    load = common.cores_busy(sys0, common.system_cpu(), total_s)
    load["own_cores_busy"] = (time.process_time() - own0) / total_s
    payload = {
        "benchmark": "evaluators",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine,
        "config": vars(args),
        "batch": BATCH,
        "targets": {"overhead": OVERHEAD_TARGET, "embed_sentences_per_s": EMBED_TARGET, "drift_s": DRIFT_TARGET_S},
        "metrics": metrics,
        "embeddings": embeddings,
        "model_evaluators": models,
        "drift": drift,
        "total_s": total_s,
        "machine_load": load,
        "versions": versions(),
    }
    return common.clean_nans(payload)  # type: ignore[no-any-return]


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("sacrebleu", "rouge-score", "evaluate", "sentence-transformers", "torch", "detoxify"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "missing"
    return out


def report(res: dict[str, Any]) -> None:
    m = res["machine"]
    rows: list[list[Any]] = []
    for r in [*res["metrics"], *res["model_evaluators"]]:
        if r.get("available") is False:
            rows.append([r["evaluator"], None, "not available", None, None, "-", r["error"][:60]])
            continue
        overhead = r.get("overhead")
        rows.append(
            [r["evaluator"], r["ours_per_s"], r["reference"], r.get("reference_per_s"),
             None if overhead is None else f"{overhead:+.1%}", r["target"], r["verdict"]]
        )  # fmt: skip
    common.print_table(
        f"Evaluators at batch {res['batch']} | {m['cores']} cores ({m['cpu_model']}) | items/s, median over repeats",
        ["evaluator", "items/s", "reference (same run)", "ref items/s", "overhead", "target", "verdict"],
        rows,
    )
    e = res["embeddings"]
    common.print_table(
        f"Sentence embeddings, all-MiniLM-L6-v2 on CPU, batch {res['batch']} ({e['items']} distinct sentences, "
        "cache emptied before each pass)",
        ["path", "sentences/s", "reference", "ref sentences/s", "overhead", "cache warm", "target", "verdict"],
        [[e["evaluator"], e["ours_per_s"], e["reference"], e["reference_per_s"], f"{e['overhead']:+.1%}",
          e["cached_per_s"], e["target"], e["verdict"]]],
    )  # fmt: skip
    d = res["drift"]
    if d.get("available") is False:
        print(f"\ndrift: not available ({d['error']})")
    else:
        c = d["control"]
        common.print_table(
            f"Embedding drift, {d['n_reference']:,} vs {d['n_current']:,} user questions ({d['dimensions']} dims)",
            ["step", "seconds", "detail", "target", "verdict"],
            [
                ["embed both windows", d["embed_s"], f"{d['embed_sentences_per_s']:,.0f} sentences/s", "-", "-"],
                ["detect_drift", d["detect_s"], f"drift={d['drift']} p={d['p_value']:.2g}", d["target"], d["verdict"]],
                [f"control {c['n']:,} vs {c['n']:,}, same mix", c["seconds"],
                 f"drift={c['drift']} p={c['p_value'] if c['p_value'] is None else format(c['p_value'], '.2g')}",
                 "no drift", "PASS" if not c["drift"] else "FAIL"],
            ],
        )  # fmt: skip
    load = res["machine_load"]
    other = load["busy_cores"] - load["own_cores_busy"]
    note = "  WARNING: the machine was not idle; figures are low" if other > 0.25 else ""
    print(
        f"  while running: this process {load['own_cores_busy']:.2f} cores, others {other:.2f} (of {m['cores']}){note}"
    )
    print(
        f"  total {res['total_s']:.0f} s; overhead = median over repeats of ours / reference time - 1 "
        "(thread CPU time for the metrics, wall time for the torch-backed rows)"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    res = run(args)
    report(res)
    path = common.write_results("evaluators", res)
    print(f"\nresults: {path.relative_to(common.REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
