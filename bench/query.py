"""Query latency: the first page of ``/api/v1/traces`` and ``/api/v1/metrics/summary`` over 1M stored spans.

What it measures
    Wall-clock latency, as an HTTP client sees it, of ten requests against a ``loopwise collector``
    on the embedded chDB store holding ``--spans`` spans (default 1,000,000):

    - ``GET /api/v1/traces``                           first page, default limit 50
    - ``GET /api/v1/traces?model=<model>``             first page, filtered
    - ``GET /api/v1/metrics/summary``                  all spans
    - ``GET /api/v1/metrics/summary?group_by=model``
    - ``GET /api/v1/traces?q=...``                     free-text search: a common phrase, and a miss
                                                     (the worst case: every window is scanned)
    - ``GET /api/v1/traces?score_name=faithfulness&score_max=0.2``
    - ``GET /api/v1/scores/summary`` (by name, and ``group_by=model``), ``GET /api/v1/scores/worst``

    20% of traces carry a ``faithfulness`` evaluator score (1% of them errors), created over the 7 days.

    Each is requested ``--requests`` times (default 50), interleaved, after warm-up requests that are
    not counted; p50, p95 and max are printed next to the target (issue: p95 <= 150 ms). As a
    reference measured in the same run, the loader also times the same store calls in-process
    (no HTTP, no FastAPI), which separates engine time from API overhead.

    The data: ``spans / 4`` traces of 4 spans (root, retrieval, two LLM calls) spread over the last
    7 days, 6 models, 5,000 users, 60,000 sessions, tags, A/B variants on 40% of traces, 3% failed
    traces, ~2 KB input and ~2 KB output on every LLM span. It is written straight through the
    collector's store class (``ClickHouseStore.insert_spans``, 50k rows per insert) in a
    subprocess *before* the collector starts (chDB lets one process open a data directory), which
    takes well under a minute instead of many minutes of OTLP.

How to run (from the repository root)
    .venv/bin/python bench/query.py                  # ~1-2 min on 2 cores
    .venv/bin/python bench/query.py --quick          # smoke test: 40k spans, < 30 s
    .venv/bin/python bench/query.py --url http://127.0.0.1:4318 --key lw_...   # time a running collector
                                                     # (its data as is: nothing is loaded)

    It prints a table and writes ``bench/results/query-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import _common as common
import httpx

if TYPE_CHECKING:
    from multiprocessing.queues import Queue

    from loopwise_collector.store import SpanRecord

TARGET_P95_MS = 150.0
DAY_NS = 86_400 * 10**9
# (provider, request model, response model, weight, input $/1M, output $/1M)
MODELS = (
    ("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", 40, 0.15, 0.60),
    ("openai", "gpt-4o", "gpt-4o-2024-08-06", 20, 2.50, 10.00),
    ("anthropic", "claude-sonnet-4", "claude-sonnet-4-20250514", 15, 3.00, 15.00),
    ("anthropic", "claude-haiku-4-5", "claude-haiku-4-5", 10, 1.00, 5.00),
    ("gcp.gemini", "gemini-2.5-flash", "gemini-2.5-flash", 10, 0.30, 2.50),
    ("mistral_ai", "mistral-small", "mistral-small-2503", 5, 0.10, 0.30),
)
FILTER_MODEL = "claude-sonnet-4-20250514"  # the stored ``model`` column is the response model
WORKFLOWS = ("support-chat", "rag-answer", "summarize-ticket", "classify-intent", "draft-reply", "agent-run")
TAGS = ("prod", "beta", "mobile", "web", "eu", "enterprise")
_LINES = (
    "please summarize the customer conversation below and propose the next best action for the agent",
    "taking into account the refund policy the shipping status and any previous escalations mentioned",
    "in the ticket history answer in a friendly and concise tone and cite the knowledge base articles",
)
_WORDS = tuple(" ".join(_LINES).split(" "))


# --- data ---------------------------------------------------------------------------------------------


def _text(rng: random.Random, chars: int) -> str:
    return common.filler_text(rng, chars, _WORDS)


def span_batches(n_spans: int, batch: int, seed: int, now_ns: int, time_order: str = "ingest") -> Any:
    """Yield lists of ``SpanRecord``: ``n_spans // 4`` traces of 4 spans over the 7 days before ``now_ns``.

    With ``time_order="ingest"`` traces come oldest first with random gaps, the order live ingest
    writes them in; ``"random"`` scatters every insert over all 7 days (a backfill: the worst case
    for ``FINAL``, since every part then overlaps every other).
    """
    import json

    from loopwise_collector.store import SpanRecord

    rng = random.Random(seed)
    version = time.time_ns()
    prompts = [
        json.dumps([{"role": "user", "parts": [{"type": "text", "content": _text(rng, 1950)}]}]) for _ in range(32)
    ]
    answers = [
        json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": _text(rng, 1930)}]}]) for _ in range(32)
    ]
    queries = [_text(rng, 200) for _ in range(32)]
    model_weights = [m[3] for m in MODELS]
    resource = {"service.name": "support-bot", "deployment.environment": "prod"}
    root_attrs = {"http.route": "/chat"}
    common_kw: dict[str, Any] = {
        "project_id": common.BENCH_PROJECT,
        "service_name": "support-bot",
        "scope_name": "loopwise",
        "resource_attributes": resource,
        "retention_days": 30,
        "version": version,
    }
    bits = rng.getrandbits
    out: list[SpanRecord] = []
    n_traces = n_spans // 4
    step = 7 * DAY_NS / max(n_traces, 1)
    first = now_ns - 60 * 10**9 - 7 * DAY_NS
    ordered = time_order == "ingest"
    for i in range(n_traces):
        trace_id = f"{bits(128) | 1:032x}"
        root_id, retr_id, llm1_id, llm2_id = (f"{bits(64) | 1:016x}" for _ in range(4))
        # Oldest first, as live ingest writes them: each insert covers a narrow slice of time, so parts
        # overlap little (a random order would make every part span all 7 days and FINAL merge them all).
        start = first + int((i + rng.random()) * step if ordered else rng.random() * 7 * DAY_NS)
        user = f"user-{rng.randrange(5000):04d}"
        session = f"session-{rng.randrange(60_000):05d}"
        tags = tuple(rng.sample(TAGS, rng.randrange(3)))
        variant = rng.choice(("A", "B")) if rng.random() < 0.4 else ""
        failed = rng.random() < 0.03
        provider, req_model, resp_model, _, in_price, out_price = rng.choices(MODELS, model_weights)[0]
        per_trace = {"user_id": user, "session_id": session, "tags": tags, "variant": variant, **common_kw}
        retr_end = start + rng.randint(20, 200) * 10**6
        llm1_end = retr_end + rng.randint(300, 4000) * 10**6
        llm2_end = llm1_end + rng.randint(300, 4000) * 10**6
        end = llm2_end + rng.randint(1, 20) * 10**6
        name = rng.choice(WORKFLOWS)
        out.append(
            SpanRecord(
                trace_id=trace_id, span_id=root_id, name=name, start_time_ns=start, end_time_ns=end,
                kind="server", status_code="error" if failed else "ok",
                status_message="upstream model error" if failed else "", span_type="agent" if
                name == "agent-run" else "span", input=queries[bits(5)], output=answers[bits(5)][:400],
                attributes=root_attrs, **per_trace,
            )
        )  # fmt: skip
        out.append(
            SpanRecord(
                trace_id=trace_id, span_id=retr_id, parent_span_id=root_id, name="retrieve", kind="internal",
                start_time_ns=start + 10**6, end_time_ns=retr_end, status_code="ok", span_type="retrieval",
                input=queries[bits(5)], output='["kb-1042", "kb-2210", "kb-0007"]', **per_trace,
            )
        )  # fmt: skip
        llm_spans = ((llm1_id, retr_end, llm1_end, False), (llm2_id, llm1_end, llm2_end, True))
        for span_id, begin, finish, is_last in llm_spans:
            tin, tout = rng.randint(300, 1500), rng.randint(100, 800)
            out.append(
                SpanRecord(
                    trace_id=trace_id, span_id=span_id, parent_span_id=root_id, name=f"chat {req_model}",
                    kind="client", start_time_ns=begin, end_time_ns=finish,
                    status_code="error" if failed and is_last else "ok",
                    status_message="rate limited by provider" if failed and is_last else "",
                    span_type="llm", operation="chat", provider=provider, request_model=req_model,
                    response_model=resp_model, input_tokens=tin, output_tokens=tout,
                    cost_usd=(tin * in_price + tout * out_price) / 1e6, cost_source="table:bench",
                    input=prompts[bits(5)], output=answers[bits(5)], prompt_name="support-answer",
                    prompt_version="v3" if variant == "B" else "v2", **per_trace,
                )
            )  # fmt: skip
        if len(out) >= batch:
            yield out
            out = []
    if out:
        yield out


# --- the requests, and their in-process counterparts -----------------------------------------------

SCORE_NAME = "faithfulness"
SCORED_SHARE = 0.2  # of traces get an evaluator score on their last LLM span; 1% of those are errors
ENDPOINTS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("traces, first page", "/api/v1/traces", {}),
    (f"traces, model={FILTER_MODEL.split('-2025')[0]}", "/api/v1/traces", {"model": FILTER_MODEL}),
    ("metrics/summary", "/api/v1/metrics/summary", {}),
    ("metrics/summary?group_by=model", "/api/v1/metrics/summary", {"group_by": "model"}),
    ("traces, q=Refund Policy (common)", "/api/v1/traces", {"q": "Refund Policy"}),
    ("traces, q=no-such-text (miss)", "/api/v1/traces", {"q": "no-such-text"}),
    (f"traces, {SCORE_NAME} <= 0.2", "/api/v1/traces", {"score_name": SCORE_NAME, "score_max": "0.2"}),
    ("scores/summary", "/api/v1/scores/summary", {}),
    ("scores/summary?group_by=model", "/api/v1/scores/summary", {"group_by": "model"}),
    ("scores/worst", "/api/v1/scores/worst", {"name": SCORE_NAME}),
)


def _store_calls(store: Any) -> list[tuple[str, Any]]:
    from loopwise_collector.store import TraceFilter

    scoped = store.project(common.BENCH_PROJECT)
    return [
        (ENDPOINTS[0][0], lambda: scoped.list_traces(TraceFilter())),
        (ENDPOINTS[1][0], lambda: scoped.list_traces(TraceFilter(model=FILTER_MODEL))),
        (ENDPOINTS[2][0], lambda: scoped.metrics_summary()),
        (ENDPOINTS[3][0], lambda: scoped.metrics_summary(group_by="model")),
        (ENDPOINTS[4][0], lambda: scoped.list_traces(TraceFilter(q="Refund Policy"))),
        (ENDPOINTS[5][0], lambda: scoped.list_traces(TraceFilter(q="no-such-text"))),
        (ENDPOINTS[6][0], lambda: scoped.list_traces(TraceFilter(score_name=SCORE_NAME, score_max=0.2))),
        (ENDPOINTS[7][0], lambda: scoped.score_summary()),
        (ENDPOINTS[8][0], lambda: scoped.score_summary(group_by="model")),
        (ENDPOINTS[9][0], lambda: scoped.worst_scores(name=SCORE_NAME)),
    ]


def score_batch(spans: list[SpanRecord], rng: random.Random) -> list[Any]:
    """Evaluator scores for ``SCORED_SHARE`` of the traces in ``spans``, on each trace's last LLM span."""
    from loopwise_collector.store import ScoreRecord

    now = time.time_ns() // 1_000_000 * 1_000_000
    out = []
    for i in range(3, len(spans), 4):  # span_batches writes 4 spans per trace, the last LLM span last
        if rng.random() >= SCORED_SHARE:
            continue
        span = spans[i]
        failed = rng.random() < 0.01
        created = now - rng.randrange(7 * DAY_NS // 10**6) * 10**6
        out.append(
            ScoreRecord(
                project_id=span.project_id, score_id=f"{span.span_id}-{SCORE_NAME}", trace_id=span.trace_id,
                name=SCORE_NAME, source="evaluator", span_id=span.span_id,
                value=None if failed else round(rng.betavariate(5, 2), 3), label="error" if failed else "",
                evaluator_version="1", created_at_ns=created, version=now,
            )
        )  # fmt: skip
    return out


@dataclass(frozen=True)
class LoadConfig:
    data_dir: str
    key: str
    spans: int
    batch: int
    seed: int
    reference_requests: int
    time_order: str


def load_main(cfg: LoadConfig, out_q: Queue[Any]) -> None:
    """In a subprocess (chDB locks the data dir): load the spans, time the store calls, close."""
    from loopwise_collector.store import ClickHouseStore

    store = ClickHouseStore(common.embedded_dsn(Path(cfg.data_dir)))
    store.open()
    store.ensure_project(common.BENCH_PROJECT, common.BENCH_PROJECT, 30)
    store.add_api_key(common.BENCH_PROJECT, cfg.key, label="bench")
    gen_s = insert_s = 0.0
    loaded = scores_loaded = 0
    score_rng = random.Random(cfg.seed + 1)
    started = time.perf_counter()
    batches = span_batches(cfg.spans, cfg.batch, cfg.seed, time.time_ns(), cfg.time_order)
    while True:
        t0 = time.perf_counter()
        batch = next(batches, None)
        t1 = time.perf_counter()
        gen_s += t1 - t0
        if batch is None:
            break
        store.insert_spans(batch)
        scores = score_batch(batch, score_rng)
        if scores:
            store.insert_scores(scores)
        scores_loaded += len(scores)
        insert_s += time.perf_counter() - t1
        loaded += len(batch)
    load_s = time.perf_counter() - started
    parts = store.query(
        "SELECT count(), sum(rows), sum(bytes_on_disk) FROM system.parts "
        "WHERE database = 'loopwise' AND table = 'spans' AND active"
    )[0]

    reference: dict[str, Any] = {}
    for name, call in _store_calls(store):
        call()  # warm-up
        samples = []
        for _ in range(cfg.reference_requests):
            t0 = time.perf_counter()
            call()
            samples.append(time.perf_counter() - t0)
        reference[name] = common.summarize_ms(samples)
    store.close()
    out_q.put(
        {
            "spans_loaded": loaded,
            "traces_loaded": loaded // 4,
            "scores_loaded": scores_loaded,
            "load_s": load_s,
            "generate_s": gen_s,
            "insert_s": insert_s,
            "insert_rows_per_s": loaded / insert_s if insert_s else math.nan,
            "active_parts": int(parts[0]),
            "bytes_on_disk": int(parts[2] or 0),
            "in_process": reference,
        }
    )


def load(data_dir: Path, key: str, args: argparse.Namespace) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    out_q: Queue[Any] = ctx.Queue()
    cfg = LoadConfig(str(data_dir), key, args.spans, 50_000, args.seed, max(5, min(args.requests, 20)), args.time_order)
    proc = ctx.Process(target=load_main, args=(cfg, out_q), name="query-loader")
    proc.start()
    try:
        result: dict[str, Any] = out_q.get(timeout=900)
    finally:
        proc.join(timeout=60)
        if proc.is_alive():
            proc.terminate()
    if proc.exitcode not in (0, None):
        raise RuntimeError(f"loader exited with {proc.exitcode}")
    return result


# --- timing over HTTP ---------------------------------------------------------------------------------


def time_requests(ep: common.Endpoint, requests: int, warmup: int) -> dict[str, Any]:
    """Interleave the requests; return per-endpoint latency stats (warm-up excluded)."""
    samples: dict[str, list[float]] = {name: [] for name, _, _ in ENDPOINTS}
    first: dict[str, float] = {}
    shapes: dict[str, Any] = {}
    with httpx.Client(base_url=ep.url, headers=ep.headers, timeout=60) as client:
        for round_ in range(warmup + requests):
            for name, path, params in ENDPOINTS:
                t0 = time.perf_counter()
                response = client.get(path, params=params)
                elapsed = time.perf_counter() - t0
                response.raise_for_status()
                if round_ == 0:
                    first[name] = elapsed * 1000
                    body = response.json()
                    if path.endswith("/traces"):
                        shapes[name] = {"traces": len(body["data"]), "next_cursor": body["next_cursor"] is not None}
                    elif "/scores/" in path:
                        shapes[name] = {"rows": len(body["data"])}
                    else:
                        shapes[name] = {
                            "groups": len(body["data"]),
                            "span_count": sum(r["span_count"] for r in body["data"]),
                        }
                if round_ >= warmup:
                    samples[name].append(elapsed)
    return {
        name: {**common.summarize_ms(s), "mean_ms": sum(s) / len(s) * 1000, "first_ms": first[name], **shapes[name]}
        for name, s in samples.items()
    }


# --- driver ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--spans", type=int, default=1_000_000, help="spans to load, 4 per trace (default 1,000,000)")
    p.add_argument("--requests", type=int, default=50, help="timed requests per endpoint (default 50)")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up requests per endpoint (default 3)")
    p.add_argument("--seed", type=int, default=42, help="data generator seed (default 42)")
    p.add_argument(
        "--time-order",
        choices=("ingest", "random"),
        default="ingest",
        help="ingest: spans written oldest first, as live ingest does (default);\n"
        "random: every insert scattered over the 7 days, like a backfill (worst case for FINAL)",
    )
    p.add_argument("--quick", action="store_true", help="tiny run for smoke tests (40k spans, 10 requests)")
    p.add_argument("--url", help="time this running collector and its data instead (needs --key)")
    p.add_argument("--key", help="API key for --url")
    p.add_argument("--keep", action="store_true", help="keep the temporary data dir and collector log")
    args = p.parse_args(argv)
    if args.quick:
        args.spans, args.requests, args.warmup = min(args.spans, 40_000), min(args.requests, 10), min(args.warmup, 2)
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    machine = common.machine_info()
    print(f"machine: {machine['cores']} cores, {machine['cpu_model']}, Python {machine['python']}")
    machine["load_before_start"] = common.idle_check()
    loaded: dict[str, Any] | None = None
    data_dir: Path | None = None
    key = args.key
    if args.url is None:
        import secrets
        import tempfile

        data_dir = Path(tempfile.mkdtemp(prefix="loopwise-bench-query-"))
        key = "lw_bench_" + secrets.token_hex(12)
        print(f"loading {args.spans:,} spans into {data_dir} ...")
        loaded = load(data_dir, key, args)
        print(
            f"  loaded {loaded['spans_loaded']:,} spans in {loaded['load_s']:.1f}s "
            f"(generate {loaded['generate_s']:.1f}s, insert {loaded['insert_s']:.1f}s = "
            f"{loaded['insert_rows_per_s']:,.0f} rows/s); {loaded['active_parts']} parts, "
            f"{loaded['bytes_on_disk'] / 2**20:,.0f} MiB on disk"
        )
    try:
        with common.collector("query", url=args.url, key=key, data_dir=data_dir, keep=args.keep) as ep:
            print(f"collector: {ep.url} (pid {ep.pid or 'external'}), timing {args.requests} x {len(ENDPOINTS)}")
            started = time.perf_counter()
            sys0, cpu0, own0 = common.system_cpu(), ep.cpu_seconds(), time.process_time()
            http = time_requests(ep, args.requests, args.warmup)
            timing_s = time.perf_counter() - started
            sys1, cpu1, own1 = common.system_cpu(), ep.cpu_seconds(), time.process_time()
            stored = ep.stored_span_count()
    finally:
        if data_dir is not None and not args.keep:
            import shutil

            shutil.rmtree(data_dir, ignore_errors=True)
    machine_load: dict[str, Any] = common.cores_busy(sys0, sys1, timing_s)
    if cpu0 is not None and cpu1 is not None:
        machine_load["collector_cores_busy"] = (cpu1 - cpu0) / timing_s
        # Whatever else ran meanwhile (another test run, say) skews the latencies.
        machine_load["other_cores_busy"] = machine_load["busy_cores"] - (cpu1 - cpu0 + own1 - own0) / timing_s
    payload: dict[str, Any] = {
        "benchmark": "query",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine,
        "config": {k: v for k, v in vars(args).items() if k != "key"},
        "target": {"p95_ms": TARGET_P95_MS},
        "load": loaded,
        "spans_seen_by_api": stored,
        "http": http,
        "timing_s": timing_s,
        "machine_load": machine_load,
        "all_within_target": all(v["p95_ms"] <= TARGET_P95_MS for v in http.values()),
    }
    return common.clean_nans(payload)  # type: ignore[no-any-return]


def report(res: dict[str, Any]) -> None:
    m, cfg, loaded = res["machine"], res["config"], res["load"]
    rows: list[list[Any]] = []
    for name, s in res["http"].items():
        ref = (loaded or {}).get("in_process", {}).get(name)
        verdict = "PASS" if s["p95_ms"] <= TARGET_P95_MS else f"MISS (x{s['p95_ms'] / TARGET_P95_MS:.1f})"
        rows.append(
            [name, s["p50_ms"], s["p95_ms"], s["max_ms"], s["first_ms"], f"<= {TARGET_P95_MS:.0f}",
             ref["p50_ms"] if ref else None, ref["p95_ms"] if ref else None, verdict]
        )  # fmt: skip
    size = f"{loaded['spans_loaded']:,} spans" if loaded else f"{res['spans_seen_by_api']:,} spans"
    common.print_table(
        f"Query latency over {size} ({cfg['time_order']} order) | {m['cores']} cores ({m['cpu_model']}) | "
        f"{cfg['requests']} timed requests per endpoint after {cfg['warmup']} warm-up, interleaved | times in ms",
        ["endpoint", "p50", "p95", "max", "1st (cold)", "target p95", "in-proc p50", "in-proc p95", "verdict"],
        rows,
    )
    print("  in-proc = the same store call inside the loader process (no HTTP/FastAPI), same data, same run")
    load = res["machine_load"]
    if "other_cores_busy" in load:
        note = "  WARNING: the machine was not idle" if load["other_cores_busy"] > 0.15 else ""
        print(
            f"  while timing: collector {load['collector_cores_busy']:.2f} cores, other processes "
            f"{load['other_cores_busy']:.2f} cores, steal {load['steal_cores']:.2f} (of {m['cores']}){note}"
        )
    if loaded:
        ok = "PASS" if res["spans_seen_by_api"] == loaded["spans_loaded"] else "FAIL"
        print(f"  spans loaded {loaded['spans_loaded']:,}, counted by the API {res['spans_seen_by_api']:,}: {ok}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    res = run(args)
    report(res)
    path = common.write_results("query", res)
    print(f"\nresults: {path.relative_to(common.REPO_ROOT)}")
    loaded = res["load"]
    return 0 if loaded is None or res["spans_seen_by_api"] == loaded["spans_loaded"] else 1


if __name__ == "__main__":
    sys.exit(main())
