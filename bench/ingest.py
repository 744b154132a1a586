"""Ingest throughput: the stock OpenTelemetry OTLP/HTTP exporter against a collector on embedded chDB.

What it measures
    Sustained spans/s that a running ``loopwise collector`` (embedded chDB store) acknowledges when
    fed LLM-shaped spans by the *stock* ``OTLPSpanExporter`` (proto over HTTP, unmodified, through
    its public ``export(spans)``), plus request latency, the server's rows per ClickHouse insert
    (from its ``/metrics``), and a check that every acknowledged span was stored.

    Each span carries a ~2 KB ``gen_ai.input.messages`` and a ~2 KB ``gen_ai.output.messages`` (JSON
    strings), the GenAI attributes (operation, provider, request/response model, input/output
    tokens) and ``loopwise.user.id`` / ``loopwise.session.id``; keys come from ``loopwise.semconv``.
    Traces have 4 spans. Spans are built up front as ``ReadableSpan`` objects with random, unique
    trace and span ids (the store deduplicates re-sent ids, so batches are never re-used), in
    ``--senders`` processes, each running ``--threads`` exporter threads (one exporter each).

    Target (issue): >= 20,000 spans/s on the 2-core machine. Senders and collector share the cores,
    so the same run also shows where CPU goes:

    - references measured in-process on the same span shape before the load: the stock encoder's
      cost per span, and the collector's own decode (``decode_protobuf`` with pricing) per span;
    - CPU seconds per acknowledged span burned by the senders (``time.process_time``) and by the
      collector (``/proc/<pid>/stat``, all threads incl. chDB's) during the timed window, and the
      throughput those imply if every core were busy;
    - phase 2, a reference: the same senders post pre-encoded bodies (ids rewritten per request,
      so nothing dedupes) for ``--raw-duration`` seconds. That is what the collector sustains when
      the exporter's encoding costs (almost) nothing on this machine, e.g. with apps elsewhere.

    At the end, the spans the collector stores (``GET /api/v1/metrics/summary``) must equal the
    spans it acknowledged over both phases.

How to run (from the repository root)
    .venv/bin/python bench/ingest.py                 # ~1 min: 3 s warm-up + 20 s timed, + 1 + 10 s reference
    .venv/bin/python bench/ingest.py --quick         # smoke test, < 30 s
    .venv/bin/python bench/ingest.py --url http://127.0.0.1:4318 --key lw_...   # a running collector

    It starts its own collector (``.venv/bin/loopwise collector``, temporary data dir, free port,
    seeded key, log in the data dir) unless ``--url``/``--key`` are given, prints a table and
    writes ``bench/results/ingest-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import math
import multiprocessing as mp
import os
import queue
import random
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import _common as common
import _spans as spans

if TYPE_CHECKING:
    from multiprocessing.queues import Queue

TARGET_SPANS_PER_S = 20_000


# --- sender processes --------------------------------------------------------------------------------

STOCK, RAW = "stock", "raw"


@dataclass(frozen=True)
class SenderConfig:
    index: int
    mode: str  # STOCK: the stock exporter on pre-built spans; RAW: pre-encoded bodies (collector-only reference)
    endpoint: str  # .../v1/traces
    key: str
    batch_size: int
    n_batches: int
    threads: int
    timeout_s: float


Record = tuple[float, float, int, bool]  # (started, finished, spans, acknowledged), monotonic seconds
HttpSample = tuple[float, float, int]  # (finished, HTTP round trip seconds, status)


def _session(sink: list[HttpSample]) -> Any:
    """A requests session whose response hook records each HTTP round trip (sent -> headers back)."""
    import requests

    session = requests.Session()
    session.trust_env = False  # a proxy from the environment must not sit between us and loopback

    def hook(r: requests.Response, *_: Any, **__: Any) -> None:
        sink.append((time.monotonic(), r.elapsed.total_seconds(), r.status_code))

    session.hooks["response"].append(hook)
    return session


def sender_main(cfg: SenderConfig, ready_q: Queue[Any], go_q: Queue[Any], result_q: Queue[Any]) -> None:
    """One sender process: prepare its data, then run ``cfg.threads`` senders until the end time."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    rng = random.Random(os.urandom(16))
    started = time.perf_counter()
    batches = spans.make_batches(rng, cfg.n_batches, cfg.batch_size, f"sender-{cfg.index}")
    templates: list[tuple[bytes, list[tuple[int, list[int]]]]] = []
    if cfg.mode == RAW:
        for batch in batches:
            body = encode_spans(batch).SerializePartialToString()
            templates.append((body, spans.id_offsets(body, batch)))
        batches = []
    gen_s = time.perf_counter() - started
    # Hundreds of thousands of long-lived span objects would make every full GC pass walk them all,
    # charging the timed phase for the benchmark's own bookkeeping: park them outside the GC.
    gc.collect()
    gc.freeze()

    # One exporter (and so one keep-alive connection) per thread. The requests session is the
    # exporter's public ``session`` argument; its hook times the HTTP round trip apart from encoding.
    http: list[list[HttpSample]] = [[] for _ in range(cfg.threads)]
    sessions = [_session(http[t]) for t in range(cfg.threads)]
    headers = {"Authorization": f"Bearer {cfg.key}"}
    exporters = [
        OTLPSpanExporter(endpoint=cfg.endpoint, headers=headers, timeout=cfg.timeout_s, session=sessions[t])
        for t in range(cfg.threads)
    ]
    raw_headers = {**headers, "Content-Type": "application/x-protobuf"}
    ready_q.put((cfg.index, gen_s, len(batches) * cfg.batch_size))
    t_start, t_warm_end, t_end = go_q.get()

    counter = itertools.count()  # next() on a count is atomic under the GIL
    records: list[list[Record]] = [[] for _ in range(cfg.threads)]
    exhausted = threading.Event()

    def stock(t: int) -> None:
        exporter, out = exporters[t], records[t]
        time.sleep(max(0.0, t_start - time.monotonic()))
        while time.monotonic() < t_end:
            i = next(counter)
            if i >= len(batches):
                exhausted.set()
                return
            batch = batches[i]
            t0 = time.monotonic()
            result = exporter.export(batch)
            out.append((t0, time.monotonic(), len(batch), result is SpanExportResult.SUCCESS))
            batches[i] = []  # let the sent spans go

    def raw(t: int) -> None:
        session, out = sessions[t], records[t]
        time.sleep(max(0.0, t_start - time.monotonic()))
        while time.monotonic() < t_end:
            template, offsets = templates[next(counter) % len(templates)]
            body = spans.fresh_body(template, offsets)
            t0 = time.monotonic()
            try:
                ok = session.post(cfg.endpoint, data=body, headers=raw_headers, timeout=cfg.timeout_s).ok
            except OSError:
                ok = False
            out.append((t0, time.monotonic(), cfg.batch_size, ok))

    target = stock if cfg.mode == STOCK else raw
    workers = [threading.Thread(target=target, args=(t,), daemon=True) for t in range(cfg.threads)]
    for w in workers:
        w.start()
    time.sleep(max(0.0, t_warm_end - time.monotonic()))
    cpu_warm_end = time.process_time()
    time.sleep(max(0.0, t_end - time.monotonic()))
    cpu_end = time.process_time()
    for w in workers:
        w.join()
    for exporter in exporters:
        exporter.shutdown()  # type: ignore[no-untyped-call]  # untyped in opentelemetry
    result_q.put(
        {
            "index": cfg.index,
            "gen_s": gen_s,
            "records": [r for rs in records for r in rs],
            "http": [h for hs in http for h in hs],
            "cpu_timed_s": cpu_end - cpu_warm_end,
            "exhausted": exhausted.is_set(),
        }
    )


# --- in-process references -------------------------------------------------------------------------


def measure_references(batch_size: int, n_batches: int) -> dict[str, float]:
    """Single-threaded, on an idle machine: the stock encoder's cost, and the collector's decode cost.

    The decode is the collector's own ``decode_protobuf`` with its bundled price table, as
    ``IngestService.decode`` runs it (on a worker thread) for every request.
    """
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from loopwise_collector.ingest.otlp import decode_protobuf
    from loopwise_collector.pricing import PriceTable

    batches = spans.make_batches(random.Random(7), n_batches, batch_size, "reference")
    n = n_batches * batch_size
    encode_spans(batches[0]).SerializePartialToString()  # first-call setup out of the timing
    started = time.perf_counter()
    bodies = [encode_spans(b).SerializePartialToString() for b in batches]
    encode_s = time.perf_counter() - started
    table = PriceTable.bundled()

    def decode(body: bytes) -> None:
        decode_protobuf(body, project_id="bench", retention_days=30, version=1, prices=table)

    decode(bodies[0])
    started = time.perf_counter()
    for body in bodies:
        decode(body)
    decode_s = time.perf_counter() - started
    return {
        "spans": n,
        "encode_us_per_span": encode_s / n * 1e6,
        "decode_price_us_per_span": decode_s / n * 1e6,
        "request_bytes_per_span": sum(len(b) for b in bodies) / n,
    }


# --- driver ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=20.0, help="timed seconds after the warm-up (default 20)")
    p.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds, not counted (default 3)")
    p.add_argument("--senders", type=int, default=2, help="sender processes (default 2)")
    p.add_argument(
        "--threads",
        type=int,
        default=24,
        help="exporter threads per sender process (default 24: each export waits for a durable insert,\n"
        "so throughput needs many exports in flight, like many app instances)",
    )
    p.add_argument(
        "--batch-size", type=int, default=512, help="spans per export() (default 512, like BatchSpanProcessor)"
    )
    p.add_argument(
        "--max-rate",
        type=float,
        default=30_000,
        help="spans/s the pre-built batches must last for (default 30,000; a phase stops early if they run out)",
    )
    p.add_argument(
        "--raw-duration",
        type=float,
        default=10.0,
        help="timed seconds of the reference phase: the same senders post pre-encoded bodies with new ids\n"
        "(no exporter encode), showing what the collector alone sustains (default 10; 0 skips it)",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="exporter timeout per export, seconds (default 30)")
    p.add_argument("--quick", action="store_true", help="tiny run for smoke tests (< 30 s)")
    p.add_argument("--url", help="drive this running collector instead of starting one (needs --key)")
    p.add_argument("--key", help="API key for --url")
    p.add_argument("--keep", action="store_true", help="keep the temporary data dir and collector log")
    p.add_argument("--batch-rows", type=int, help="LOOPWISE_INGEST__BATCH_ROWS for the started collector")
    p.add_argument("--max-delay-ms", type=int, help="LOOPWISE_INGEST__MAX_DELAY_MS for the started collector")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = min(args.duration, 4.0), min(args.warmup, 1.0)
        args.raw_duration = min(args.raw_duration, 2.0)
        args.threads = min(args.threads, 8)
        args.max_rate = min(args.max_rate, 15_000)
    return args


def _window_stats(records: list[Record], http: list[HttpSample], lo: float, hi: float) -> dict[str, Any]:
    """Throughput from exports that completed inside [lo, hi]; latency of exports that started in it."""
    done = [r for r in records if lo <= r[1] <= hi]
    acked = sum(r[2] for r in done if r[3])
    started = [r for r in records if lo <= r[0] < hi]
    http_in = [h for h in http if lo <= h[0] <= hi]
    return {
        "exports_completed": len(done),
        "exports_failed": sum(1 for r in done if not r[3]),
        "spans_acked": acked,
        "spans_per_s": acked / (hi - lo),
        "export_latency": common.summarize_ms([r[1] - r[0] for r in started if r[3]]),
        "http_latency": common.summarize_ms([h[1] for h in http_in if h[2] == 200]),
        "http_non_200": sum(1 for h in http_in if h[2] != 200),
    }


def _insert_stats(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, Any]:
    rows = common.histogram_delta(
        common.histogram(after, "loopwise_insert_batch_rows"), common.histogram(before, "loopwise_insert_batch_rows")
    )
    took = common.histogram_delta(
        common.histogram(after, "loopwise_insert_seconds"), common.histogram(before, "loopwise_insert_seconds")
    )
    count = rows["count"]
    le10k, le5k = rows["buckets"].get(10_000.0, 0.0), rows["buckets"].get(5_000.0, 0.0)
    return {
        "count": int(count),
        "rows": int(rows["sum"]),
        "rows_per_insert_mean": rows["sum"] / count if count else math.nan,
        # The histogram's bounds are ..., 5k, 10k, 20k, ...: "over 10k" is exact, ">= 10k" is not.
        "share_over_10k_rows": (count - le10k) / count if count else math.nan,
        "share_over_5k_rows": (count - le5k) / count if count else math.nan,
        "insert_seconds_mean": took["sum"] / took["count"] if took["count"] else math.nan,
        "writer_busy_share": took["sum"] / seconds,
        "buckets": {str(k): v for k, v in rows["buckets"].items()},
    }


def _gather(q: Queue[Any], procs: list[Any], timeout: float) -> list[Any]:
    """One message per process from ``q``; fails fast when a sender died instead of waiting it out."""
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(out) < len(procs):
        try:
            out.append(q.get(timeout=1.0))
        except queue.Empty:
            dead = [p.name for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"sender process(es) {', '.join(dead)} failed; see the traceback above") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"senders did not report within {timeout:.0f}s") from None
    return out


def run_phase(
    ep: common.Endpoint, args: argparse.Namespace, mode: str, warmup: float, duration: float
) -> dict[str, Any]:
    """Start ``--senders`` processes in ``mode``, run warm-up + timed window, gather everything."""
    span_budget = args.max_rate * (warmup + duration + 2)
    per_sender = max(1, math.ceil(span_budget / args.senders / args.batch_size)) if mode == STOCK else 8
    ctx = mp.get_context("spawn")
    ready_q: Queue[Any] = ctx.Queue()
    result_q: Queue[Any] = ctx.Queue()
    go_qs: list[Queue[Any]] = [ctx.Queue() for _ in range(args.senders)]
    procs = [
        ctx.Process(
            target=sender_main,
            args=(
                SenderConfig(
                    index=i,
                    mode=mode,
                    endpoint=f"{ep.url}/v1/traces",
                    key=ep.key,
                    batch_size=args.batch_size,
                    n_batches=per_sender,
                    threads=args.threads,
                    timeout_s=args.timeout,
                ),
                ready_q,
                go_qs[i],
                result_q,
            ),
            name=f"ingest-{mode}-{i}",
        )
        for i in range(args.senders)
    ]
    prep_started = time.perf_counter()
    for proc in procs:
        proc.start()
    built = 0
    try:
        for _, _, n_spans in _gather(ready_q, procs, 300):
            built += n_spans
        if mode == STOCK:
            print(f"  {built:,} distinct spans pre-built in {time.perf_counter() - prep_started:.1f}s")
        m0 = ep.scrape()
        t_start = time.monotonic() + 0.3
        t_warm_end = t_start + warmup
        t_end = t_warm_end + duration
        for q in go_qs:
            q.put((t_start, t_warm_end, t_end))
        time.sleep(max(0.0, t_warm_end - time.monotonic()))
        m1, cpu1, sys1, own1 = ep.scrape(), ep.cpu_seconds(), common.system_cpu(), time.process_time()
        time.sleep(max(0.0, t_end - time.monotonic()))
        m2, cpu2, sys2, own2 = ep.scrape(), ep.cpu_seconds(), common.system_cpu(), time.process_time()
        results = _gather(result_q, procs, args.timeout * 7 + 60)
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.terminate()
    m3 = ep.scrape()

    records: list[Record] = [tuple(r) for res in results for r in res["records"]]
    http: list[HttpSample] = [tuple(h) for res in results for h in res["http"]]
    timed = _window_stats(records, http, t_warm_end, t_end)
    acked_timed = timed["spans_acked"]
    server_cpu = (cpu2 - cpu1) if cpu1 is not None and cpu2 is not None else None
    client_cpu = sum(res["cpu_timed_s"] for res in results)
    cpu: dict[str, Any] = {
        "client_cpu_s": client_cpu,
        "server_cpu_s": server_cpu,
        "client_us_per_span": client_cpu / acked_timed * 1e6 if acked_timed else math.nan,
        "server_us_per_span": server_cpu / acked_timed * 1e6 if server_cpu is not None and acked_timed else None,
        "client_cores_busy": client_cpu / duration,
        "server_cores_busy": server_cpu / duration if server_cpu is not None else None,
        **common.cores_busy(sys1, sys2, duration),
    }
    if server_cpu is not None:
        # Whatever else ran on the machine in the window (another test run, say) skews the figures.
        ours = client_cpu + server_cpu + (own2 - own1)
        cpu["other_cores_busy"] = cpu["busy_cores"] - ours / duration
    return {
        "mode": mode,
        "warmup_s": warmup,
        "duration_s": duration,
        "concurrency": args.senders * args.threads,
        "spans_prebuilt": built,
        "timed": timed,
        "spans_sent": sum(r[2] for r in records),
        "spans_acked": sum(r[2] for r in records if r[3]),
        "exports_failed": sum(1 for r in records if not r[3]),
        "batches_exhausted": any(res["exhausted"] for res in results),
        "server_inserts": _insert_stats(m1, m2, duration),
        "server_inserts_all": _insert_stats(m0, m3, duration),
        "cpu": cpu,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    machine = common.machine_info()
    env: dict[str, str] = {}
    if args.batch_rows:
        env["LOOPWISE_INGEST__BATCH_ROWS"] = str(args.batch_rows)
    if args.max_delay_ms:
        env["LOOPWISE_INGEST__MAX_DELAY_MS"] = str(args.max_delay_ms)
    print(f"machine: {machine['cores']} cores, {machine['cpu_model']}, Python {machine['python']}")
    machine["load_before_start"] = common.idle_check()

    with common.collector("ingest", url=args.url, key=args.key, env=env, keep=args.keep) as ep:
        print(f"collector: {ep.url} (pid {ep.pid or 'external'})")
        refs = measure_references(args.batch_size, 4 if args.quick else 16)
        print(
            f"reference: stock encode {refs['encode_us_per_span']:.1f} us/span, "
            f"collector decode+price {refs['decode_price_us_per_span']:.1f} us/span "
            f"({refs['request_bytes_per_span']:.0f} B/span on the wire)"
        )
        stored_before = ep.stored_span_count()
        phases = {}
        print(f"phase 1: stock OTLPSpanExporter, {args.warmup:g}s warm-up + {args.duration:g}s timed")
        phases[STOCK] = run_phase(ep, args, STOCK, args.warmup, args.duration)
        if args.raw_duration > 0:
            print(f"phase 2 (reference): pre-encoded bodies, 1s warm-up + {args.raw_duration:g}s timed")
            phases[RAW] = run_phase(ep, args, RAW, 1.0, args.raw_duration)
        stored = ep.stored_span_count() - stored_before
        collector_log = common.log_tail(ep.log_path, 10) if ep.log_path else ""

    acked = sum(ph["spans_acked"] for ph in phases.values())
    stock_cpu = phases[STOCK]["cpu"]
    if stock_cpu["server_us_per_span"] is not None and stock_cpu["client_us_per_span"]:
        per_span = stock_cpu["client_us_per_span"] + stock_cpu["server_us_per_span"]
        stock_cpu["cpu_bound_ceiling_spans_per_s"] = machine["cores"] / per_span * 1e6
    payload: dict[str, Any] = {
        "benchmark": "ingest",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine,
        "config": {
            **{k: v for k, v in vars(args).items() if k != "key"},
            "collector": "external" if args.url else "subprocess (embedded chDB)",
            "exporter": "opentelemetry.exporter.otlp.proto.http.trace_exporter.OTLPSpanExporter (stock)",
        },
        "target": {"spans_per_s": TARGET_SPANS_PER_S},
        "reference": refs,
        "phases": phases,
        "verification": {
            "spans_acked": acked,
            "spans_stored": stored,
            "stored_equals_acked": stored == acked,
        },
        "collector_log_tail": collector_log,
    }
    return common.clean_nans(payload)  # type: ignore[no-any-return]


def _phase_rows(ph: dict[str, Any], cores: int) -> list[list[Any]]:
    t, ins, cpu = ph["timed"], ph["server_inserts"], ph["cpu"]
    el, hl, failed = t["export_latency"], t["http_latency"], t["exports_failed"]
    share10, share5 = ins["share_over_10k_rows"] or 0, ins["share_over_5k_rows"] or 0
    rows: list[list[Any]] = [
        ["export() latency p50 / p99 (ms)" if ph["mode"] == STOCK else "POST latency p50 / p99 (ms)",
         f"{el['p50_ms']:,.0f} / {el['p99_ms']:,.0f}", "incl. encode" if ph["mode"] == STOCK else "", ""],
        ["HTTP latency p50 / p99 (ms)", f"{hl['p50_ms']:,.0f} / {hl['p99_ms']:,.0f}", "send -> 200 (durable)", ""],
        ["exports ok / failed (timed)", f"{t['exports_completed'] - failed:,} / {failed:,}", "0 failed",
         "PASS" if failed == 0 else "FAIL"],
        ["rows per insert, mean", f"{ins['rows_per_insert_mean'] or 0:,.0f}", "batch_rows (default 10,000)", ""],
        ["inserts > 10k rows / > 5k rows", f"{share10:.0%} / {share5:.0%}",
         f"of {ins['count']} inserts", ""],
        ["insert time mean (ms) / writer busy", f"{(ins['insert_seconds_mean'] or 0) * 1000:,.0f} / "
         f"{ins['writer_busy_share']:.0%}", "one writer thread", ""],
        ["sender CPU per acked span (us)", f"{cpu['client_us_per_span'] or 0:,.1f}",
         f"{cpu['client_cores_busy']:.2f} cores busy", ""],
    ]  # fmt: skip
    if cpu.get("server_us_per_span") is not None:
        rows.append(
            ["collector CPU per acked span (us)", f"{cpu['server_us_per_span']:,.1f}",
             f"{cpu['server_cores_busy']:.2f} cores busy", ""]
        )  # fmt: skip
    if cpu.get("other_cores_busy") is not None:
        other = cpu["other_cores_busy"]
        rows.append(
            ["machine: all busy / other processes", f"{cpu['busy_cores']:.2f} / {other:.2f}",
             f"cores (of {cores}); steal {cpu['steal_cores']:.2f}", "WARN: not idle" if other > 0.15 else ""]
        )  # fmt: skip
    if cpu.get("cpu_bound_ceiling_spans_per_s"):
        rows.append(
            ["CPU ceiling: cores / (sender+collector)", f"{cpu['cpu_bound_ceiling_spans_per_s']:,.0f}",
             f"spans/s if {cores} cores were saturated", ""]
        )  # fmt: skip
    if ph["batches_exhausted"]:
        rows.append(["pre-built batches ran out", "yes", "raise --max-rate", "WARN"])
    return rows


def report(res: dict[str, Any]) -> None:
    m, ref, ver, cfg = res["machine"], res["reference"], res["verification"], res["config"]
    stock = res["phases"][STOCK]
    rate = stock["timed"]["spans_per_s"]
    verdict = "PASS" if rate >= TARGET_SPANS_PER_S else f"MISS ({rate / TARGET_SPANS_PER_S:.0%} of target)"
    rows: list[list[Any]] = [
        ["sustained throughput (acked spans/s)", f"{rate:,.0f}", f">= {TARGET_SPANS_PER_S:,} (issue)", verdict],
        *_phase_rows(stock, m["cores"]),
        ["stock encode, in-process (us/span)", f"{ref['encode_us_per_span']:.1f}", "reference, 1 thread, idle", ""],
        ["collector decode+price, in-process", f"{ref['decode_price_us_per_span']:.1f}", "reference (us/span)", ""],
    ]
    raw = res["phases"].get(RAW)
    if raw is not None:
        raw_rate = raw["timed"]["spans_per_s"]
        rows.append(["--- reference: pre-encoded bodies", "", "collector alone, no encode", ""])
        rows.append(["sustained throughput (acked spans/s)", f"{raw_rate:,.0f}", f">= {TARGET_SPANS_PER_S:,}",
                     "PASS" if raw_rate >= TARGET_SPANS_PER_S else f"{raw_rate / TARGET_SPANS_PER_S:.0%}"])  # fmt: skip
        rows.extend(_phase_rows(raw, m["cores"]))
    rows.append(["spans stored / acked (both phases)", f"{ver['spans_stored']:,} / {ver['spans_acked']:,}",
                 "stored == acked", "PASS" if ver["stored_equals_acked"] else "FAIL"])  # fmt: skip
    common.print_table(
        f"Ingest: stock OTLPSpanExporter -> loopwise collector (embedded chDB) | {m['cores']} cores "
        f"({m['cpu_model']}) | {cfg['senders']} senders x {cfg['threads']} threads, batch {cfg['batch_size']}, "
        f"{cfg['warmup']:g}s warm-up + {cfg['duration']:g}s timed",
        ["metric", "measured", "target / reference", "verdict"],
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    res = run(args)
    report(res)
    path = common.write_results("ingest", res)
    print(f"\nresults: {path.relative_to(common.REPO_ROOT)}")
    failed = sum(ph["exports_failed"] for ph in res["phases"].values())
    return 0 if res["verification"]["stored_equals_acked"] and failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
