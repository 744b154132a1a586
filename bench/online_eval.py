"""Online evaluation lag: ingest-to-score time at a steady 20 LLM spans/s with the default rules.

A collector subprocess seeds the bench project with the rules ``loopwise up`` gives a new project
(``hallucination`` on LLM spans at a 0.5 sample rate, ``output_drift`` embedding every LLM
output; real MiniLM), and a ``loopwise evaluate`` runner subprocess works them. The driver sends RAG
traces (a retrieval span and an LLM span answering from the help-center corpus) over OTLP, batched
as they come due, at ``--rate`` LLM spans/s for ``--seconds``. Lag is a score's
``created_at`` minus its span's end time. Target: p95 <= 60 s (issue 4).

    python bench/online_eval.py            # 20 spans/s for 120 s
    python bench/online_eval.py --quick    # 20 spans/s for 30 s
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import _common as common
import httpx

from loopwise import semconv as sc
from loopwise_collector.demo._corpus import DOCS, QUESTIONS, SYSTEM_PROMPTS

TARGET_LAG_S = 60.0
FABRICATIONS = (
    "Premium customers also receive a free hardware token by post within two days.",
    "This policy was introduced in 2011 after a court ruling in Denmark.",
    "You will additionally get a 40% discount on your next three invoices.",
)


def build_trace(rng: random.Random, tracer: Any) -> str:
    """A retrieval span and an LLM span; a quarter of the answers carry an invented claim. Returns the LLM span id."""
    from opentelemetry import trace

    question = rng.choice(QUESTIONS)
    docs = [DOCS[d] for d in question.docs]
    answer = question.answer + (" " + rng.choice(FABRICATIONS) if rng.random() < 0.25 else "")
    with tracer.start_as_current_span("support_request"):
        with tracer.start_as_current_span("search_docs", attributes={
            sc.LOOPWISE_SPAN_TYPE: "retrieval", sc.LOOPWISE_OUTPUT: json.dumps([d.text for d in docs])}):  # fmt: skip
            pass
        prompt = [{"role": "user", "parts": [{"type": "text", "content": question.text}]}]
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=trace.SpanKind.CLIENT, attributes={
            sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_PROVIDER_NAME: "openai", sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
            sc.GEN_AI_SYSTEM_INSTRUCTIONS: SYSTEM_PROMPTS["A"], sc.GEN_AI_INPUT_MESSAGES: json.dumps(prompt),
            sc.GEN_AI_OUTPUT_MESSAGES: json.dumps([{"role": "assistant", "parts": [{"type": "text",
                                                                                     "content": answer}]}]),
            sc.GEN_AI_USAGE_INPUT_TOKENS: 600, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 80}) as llm:  # fmt: skip
            llm_id = format(llm.get_span_context().span_id, "016x")
    return llm_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=20.0, help="LLM spans per second")
    parser.add_argument("--seconds", type=float, default=120.0, help="how long to send")
    parser.add_argument("--quick", action="store_true", help="30 s of load")
    args = parser.parse_args()
    seconds = 30.0 if args.quick else args.seconds

    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench-online-eval"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("loopwise.bench.online_eval")
    rng = random.Random(7)
    env = {"LOOPWISE_SEED_DEFAULT_RULES": "true"}

    with common.collector("online-eval", env=env) as endpoint:
        http = httpx.Client(base_url=endpoint.url, headers=endpoint.headers, timeout=30)
        rules = http.get("/api/v1/evaluators").json()["data"]
        print("rules:", ", ".join(f"{r['name']} ({r['evaluator']}, sample {r['sample_rate']})" for r in rules))
        runner_log = Path(endpoint.data_dir or ".") / "runner.log"
        runner = subprocess.Popen(
            [str(Path(sys.executable).with_name("loopwise")), "evaluate", "--endpoint", endpoint.url],
            env={**os.environ, "LOOPWISE_API_KEY": endpoint.key, "HF_HUB_OFFLINE": "1"},
            stdout=runner_log.open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        sent: dict[str, int] = {}
        lock = threading.Lock()

        def send_batch(count: int) -> None:
            ids = [build_trace(rng, tracer) for _ in range(count)]
            spans = exporter.get_finished_spans()
            exporter.clear()
            body = encode_spans(spans).SerializeToString()
            r = http.post("/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"})
            r.raise_for_status()
            ends = {format(s.context.span_id, "016x"): s.end_time for s in spans}
            with lock:
                for span_id in ids:
                    sent[span_id] = ends[span_id]

        # Warm-up: the runner imports torch and loads MiniLM before its first score.
        started = time.monotonic()
        send_batch(10)
        while not http.get("/api/v1/scores", params={"name": "hallucination"}).json()["data"]:
            if runner.poll() is not None or time.monotonic() - started > 180:
                raise SystemExit(f"runner did not score anything:\n{common.log_tail(runner_log)}")
            time.sleep(0.5)
        warmup_s = time.monotonic() - started
        with lock:
            sent.clear()
        print(f"runner warm after {warmup_s:.1f} s; sending {args.rate:g} LLM spans/s for {seconds:g} s")

        t0 = time.monotonic()
        runner_cpu0 = common.process_cpu_seconds(runner.pid) or 0.0
        collector_cpu0 = endpoint.cpu_seconds() or 0.0
        # Each request waits for its insert (up to the collector's 0.5 s batching delay), so send what
        # is due by the clock rather than a fixed batch per tick, or the rate would sag below --rate.
        total = 0
        while (elapsed := time.monotonic() - t0) < seconds:
            due = round(args.rate * elapsed) - total
            if due > 0:
                send_batch(due)
                total += due
            time.sleep(0.25)
        send_s = time.monotonic() - t0

        # Drain: wait until scores stop growing for 20 s (the 0.5 sample leaves about half unscored).
        scored: dict[str, float] = {}
        last_growth = time.monotonic()
        while time.monotonic() - last_growth < 20 and time.monotonic() - t0 < seconds + 600:
            rows = []
            offset = 0
            while True:
                page = http.get("/api/v1/scores", params={"name": "hallucination", "limit": 1000, "offset": offset})
                data = page.json()["data"]
                rows.extend(data)
                offset += len(data)
                if len(data) < 1000:
                    break
            fresh = {r["span_id"]: datetime.fromisoformat(r["created_at"]).timestamp() for r in rows
                     if r["span_id"] in sent}  # fmt: skip
            if len(fresh) > len(scored):
                last_growth = time.monotonic()
            scored = fresh
            time.sleep(2)
        runner_cpu = (common.process_cpu_seconds(runner.pid) or 0.0) - runner_cpu0
        collector_cpu = (endpoint.cpu_seconds() or 0.0) - collector_cpu0
        runner.terminate()
        runner.wait(30)

    lags = sorted(scored[s] - sent[s] / 1e9 for s in scored)
    p50, p95 = common.percentile(lags, 50), common.percentile(lags, 95)
    verdict = "pass" if lags and p95 <= TARGET_LAG_S else "MISS"
    rows_out = [
        ["LLM spans sent", f"{len(sent):,}", f"{len(sent) / send_s:.1f}/s"],
        ["hallucination scores (sample 0.5)", f"{len(scored):,}", f"{len(scored) / max(len(sent), 1):.0%} sampled"],
        ["lag p50 / p95 / max", f"{p50:.1f} / {p95:.1f} / {lags[-1] if lags else float('nan'):.1f} s",
         f"target p95 <= {TARGET_LAG_S:.0f} s: {verdict}"],
        ["runner CPU", f"{runner_cpu:.0f} s", f"{runner_cpu / send_s:.2f} cores while sending"],
        ["collector CPU", f"{collector_cpu:.0f} s", f"{collector_cpu / send_s:.2f} cores while sending"],
    ]  # fmt: skip
    common.print_table("Online evaluation: ingest-to-score lag, default rules, real MiniLM", ["", "value", "note"],
                       rows_out)  # fmt: skip
    path = common.write_results("online_eval", {
        "machine": common.machine_info(), "rate": args.rate, "seconds": seconds, "sent": len(sent),
        "scored": len(scored), "lag_s": {"p50": p50, "p95": p95, "max": lags[-1] if lags else None},
        "target_p95_s": TARGET_LAG_S, "verdict": verdict, "runner_cpu_s": runner_cpu, "collector_cpu_s": collector_cpu,
        "warmup_s": warmup_s,
    })  # fmt: skip
    print(f"results: {path}")


if __name__ == "__main__":
    main()
