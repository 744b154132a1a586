"""Child side of ``bench/sdk_overhead.py``: one tracing setup per process, timed calls, a memory run.

Not a benchmark itself. ``bench/sdk_overhead.py`` runs ``python bench/_sdk_compare_env.py '<json>'`` once
per variant (tracer providers are process-global and the libraries would fight over them), with the
parameters as one JSON argument; the child writes its result as JSON to ``params["out"]`` and leaves
with ``os._exit`` so that no library's exit hook spends seconds flushing to the dead endpoint.

Every variant wraps the same function: it takes a ~2 KB prompt string and returns a ~2 KB completion
string (prebuilt, cycled through 256 distinct pairs, so the function itself costs ~nothing). Variants (``VARIANTS``):

    plain       the undecorated function
    otel        bare ``tracer.start_as_current_span`` setting ``loopwise.input``/``loopwise.output``,
                stock ``BatchSpanProcessor`` + ``OTLPSpanExporter`` (proto/HTTP) to the endpoint
    otel_bare   the same bare span on a provider with no processor (the floor)
    otel_lw     the same bare span on the app's own provider, to which ``loopwise.configure`` adds its
                span processor (so the decorator's own share shows)
    loopwise    ``@loopwise.observe`` after ``loopwise.configure(...)``
    langfuse    Langfuse's ``@observe`` (I/O capture on, the default) with dummy keys
    traceloop   Traceloop's ``@workflow`` (content tracing on, the default), no auto-instrumentation
    openlit     OpenLIT's ``@openlit.trace``, no auto-instrumentation, metrics and events off

The endpoint is an unreachable loopback port, so every exporter's background thread fails and backs off
while the app thread keeps calling; stock batch processors then drop spans once their queue (2,048) is
full. ``BatchAccounting`` counts those drops (OpenTelemetry logs the warning only once per 20 s). With
``{"mode": "sink"}`` this script is instead a null collector answering 200, for the "collector up" runs.
"""

from __future__ import annotations

import gc
import gzip
import json
import logging
import os
import random
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common as common

PAYLOAD_CHARS = 2048
SPAN_NAME = "llm_call"
INPUT_KEY, OUTPUT_KEY = "loopwise.input", "loopwise.output"  # as loopwise.semconv spells them
_WORDS = (
    "the model should answer using the retrieved context only and cite each source it used when the customer",
    "asks about refunds shipping delays invoices or account security explain the policy step by step keep the",
    "tone friendly and concise never invent order numbers",
)
_VOCABULARY = tuple(" ".join(_WORDS).split(" "))
POOL = 256  # distinct payloads, cycled: identical strings would make every gzip'd spool batch ~100x smaller
PROMPTS = tuple(common.filler_text(random.Random(i), PAYLOAD_CHARS, _VOCABULARY) for i in range(POOL))
COMPLETIONS = tuple(common.filler_text(random.Random(POOL + i), PAYLOAD_CHARS, _VOCABULARY) for i in range(POOL))
_ANSWER = dict(zip(PROMPTS, COMPLETIONS, strict=True))


def llm_call(prompt: str) -> str:
    """The function under test: ~2 KB in, ~2 KB out, no work of its own (one dict lookup)."""
    return _ANSWER[prompt]


# --- variants ----------------------------------------------------------------------------------------


@dataclass
class Variant:
    """A traced callable plus what the harness may ask of its setup."""

    fn: Callable[[str], str]
    provider: Any = None  # an SDK TracerProvider to attach the capture check to, when there is one
    stats: Callable[[], dict[str, Any]] | None = None
    flush: Callable[[float], Any] | None = None
    spool_dir: Path | None = None
    notes: list[str] = field(default_factory=list)


def setup_plain(params: dict[str, Any]) -> Variant:
    return Variant(fn=llm_call)


def _bare_span(tracer: Any) -> Callable[[str], str]:
    def traced(prompt: str) -> str:
        with tracer.start_as_current_span(SPAN_NAME) as span:
            span.set_attribute(INPUT_KEY, prompt)
            out = llm_call(prompt)
            span.set_attribute(OUTPUT_KEY, out)
            return out

    return traced


def setup_otel_bare(params: dict[str, Any]) -> Variant:
    """The bare span on a TracerProvider with no processor: the floor for any OpenTelemetry-based SDK."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    return Variant(fn=_bare_span(provider.get_tracer("bench")), provider=provider)


def setup_otel(params: dict[str, Any]) -> Variant:
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{params['endpoint']}/v1/traces")))
    trace.set_tracer_provider(provider)
    return Variant(fn=_bare_span(provider.get_tracer("bench")), provider=provider)


def _configure_loopwise(params: dict[str, Any]) -> Any:
    import loopwise

    extra = {"max_content_bytes": params["max_content_bytes"]} if params.get("max_content_bytes") else {}
    loopwise.configure(
        endpoint=params["endpoint"],
        api_key="lw_dummy",
        service_name="bench",
        spool_dir=params["spool_dir"],
        capture_content=True,
        **extra,
    )
    return loopwise


def _loopwise_settings() -> list[str]:
    """The settings the SDK resolved (internal; best effort, for the record)."""
    try:
        from loopwise._runtime import RUNTIME

        cfg = RUNTIME.config
        keys = ("max_content_bytes", "max_queue_size", "block_timeout_s", "batch_max_spans", "batch_delay_s")
        return ["loopwise settings: " + ", ".join(f"{k}={getattr(cfg, k)}" for k in keys if hasattr(cfg, k))]
    except Exception as exc:
        return [f"loopwise settings unreadable: {exc}"]


def _loopwise_stats() -> dict[str, Any]:
    import loopwise

    return {k: v for k, v in dict(loopwise.stats()).items() if isinstance(v, int | float | str | bool)}


def setup_loopwise(params: dict[str, Any]) -> Variant:
    from opentelemetry import trace

    loopwise = _configure_loopwise(params)

    @loopwise.observe(name=SPAN_NAME)
    def traced(prompt: str) -> str:
        return llm_call(prompt)

    provider = trace.get_tracer_provider()
    return Variant(
        fn=traced,
        provider=provider if hasattr(provider, "add_span_processor") else None,
        stats=_loopwise_stats,
        flush=lambda timeout: loopwise.flush(timeout=timeout),
        spool_dir=Path(params["spool_dir"]),
        notes=_loopwise_settings(),
    )


def setup_otel_lw(params: dict[str, Any]) -> Variant:
    """The bare span, with the Loopwise SDK's span processor on the app's own provider (decorator cost isolated).

    The documented path: the app sets its SDK ``TracerProvider`` first, and ``loopwise.configure`` adds its
    processor to it (``LoopwiseSpanProcessor``) instead of installing a provider.
    """
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    trace.set_tracer_provider(provider)
    loopwise = _configure_loopwise(params)
    processors = [type(p).__name__ for p in provider._active_span_processor._span_processors]
    if not any("Loopwise" in name for name in processors):
        raise NotImplementedError(f"loopwise.configure added no Loopwise processor to the app's provider: {processors}")
    return Variant(
        fn=_bare_span(provider.get_tracer("bench")),
        provider=provider,
        stats=_loopwise_stats,
        flush=lambda timeout: loopwise.flush(timeout=timeout),
        spool_dir=Path(params["spool_dir"]),
        notes=[f"processors on the app's provider: {', '.join(processors)}", *_loopwise_settings()],
    )


def setup_langfuse(params: dict[str, Any]) -> Variant:
    os.environ["LANGFUSE_OBSERVE_DECORATOR_IO_CAPTURE_ENABLED"] = "true"  # the default, made explicit
    from langfuse import Langfuse, observe
    from opentelemetry import trace

    client = Langfuse(public_key="pk-lf-bench", secret_key="sk-lf-bench", base_url=params["endpoint"])

    @observe(name=SPAN_NAME)
    def traced(prompt: str) -> str:
        return llm_call(prompt)

    return Variant(
        fn=traced,
        provider=trace.get_tracer_provider(),
        flush=lambda timeout: client.flush(),
        notes=["Langfuse(base_url=endpoint, dummy keys), I/O capture on"],
    )


def setup_traceloop(params: dict[str, Any]) -> Variant:
    for key, value in {
        "TRACELOOP_TELEMETRY": "false",
        "TRACELOOP_METRICS_ENABLED": "false",
        "TRACELOOP_LOGGING_ENABLED": "false",
        "TRACELOOP_TRACE_CONTENT": "true",  # the default, made explicit
    }.items():
        os.environ[key] = value
    from opentelemetry import trace
    from traceloop.sdk import Traceloop
    from traceloop.sdk.decorators import workflow

    # instruments=set(): no auto-instrumentation of other libraries, only the decorator is measured.
    Traceloop.init(
        app_name="bench",
        api_endpoint=params["endpoint"],
        api_key="tl_dummy",
        telemetry_enabled=False,
        instruments=set(),
    )

    @workflow(name=SPAN_NAME)
    def traced(prompt: str) -> str:
        return llm_call(prompt)

    return Variant(fn=traced, provider=trace.get_tracer_provider(), notes=["Traceloop.init(instruments=set())"])


def setup_openlit(params: dict[str, Any]) -> Variant:
    os.environ.pop("OTEL_TRACES_EXPORTER", None)
    import openlit
    from openlit._instrumentors import MODULE_NAME_MAP
    from opentelemetry import trace

    pricing = Path(params["out"]).with_suffix(".pricing.json")
    pricing.write_text("{}")  # the default fetches a price list from GitHub at init
    openlit.init(
        service_name="bench",
        otlp_endpoint=params["endpoint"],
        disable_metrics=True,
        disable_events=True,
        capture_message_content=True,
        pricing_json=str(pricing),
        disabled_instrumentors=list(MODULE_NAME_MAP),
    )

    @openlit.trace  # takes its tracer from the global provider at decoration time, so after init
    def traced(prompt: str) -> str:
        return llm_call(prompt)

    return Variant(fn=traced, provider=trace.get_tracer_provider(), notes=["openlit.init(all instrumentors off)"])


VARIANTS: dict[str, Callable[[dict[str, Any]], Variant]] = {
    "plain": setup_plain,
    "otel_bare": setup_otel_bare,
    "otel": setup_otel,
    "otel_lw": setup_otel_lw,
    "loopwise": setup_loopwise,
    "langfuse": setup_langfuse,
    "traceloop": setup_traceloop,
    "openlit": setup_openlit,
}


# --- measurement -------------------------------------------------------------------------------------


class BatchAccounting:
    """Spans the stock batch processors on a provider handed to their exporter, and what they still queue.

    Wraps each ``BatchSpanProcessor``'s exporter ``export`` (called once per batch, on the worker
    thread), so the app thread pays nothing. Spans that were neither handed over nor are queued were
    dropped ("Queue full"; OpenTelemetry logs that warning once per 20 s).
    """

    def __init__(self, provider: Any) -> None:
        self.handed = 0
        self.endpoints: list[str] = []
        self._batch: list[Any] = []
        active = getattr(provider, "_active_span_processor", None)
        for processor in getattr(active, "_span_processors", ()):
            batch = getattr(processor, "_batch_processor", None)
            if batch is not None and hasattr(batch, "_exporter") and hasattr(batch, "_queue"):
                self._wrap(batch)

    def _wrap(self, batch: Any) -> None:
        exporter = batch._exporter
        while not hasattr(exporter, "_endpoint") and hasattr(exporter, "_exporter"):  # Langfuse wraps it
            exporter = exporter._exporter
        self.endpoints.append(f"{type(exporter).__name__} -> {getattr(exporter, '_endpoint', '?')}")
        inner = batch._exporter.export

        def export(spans: Any, *args: Any, **kwargs: Any) -> Any:
            self.handed += len(spans)
            return inner(spans, *args, **kwargs)

        batch._exporter.export = export
        self._batch.append(batch)

    @property
    def active(self) -> bool:
        return bool(self._batch)

    def snapshot(self) -> tuple[int, int]:
        return self.handed, sum(len(b._queue) for b in self._batch)

    def dropped_between(self, before: tuple[int, int], after: tuple[int, int], spans_ended: int) -> int | None:
        if not self.active:
            return None
        return spans_ended - (after[0] - before[0]) - (after[1] - before[1])


def warm_up(fn: Callable[[str], str], calls: int) -> None:
    for i in range(calls):
        fn(PROMPTS[i % POOL])
    gc.collect()


def time_calls(fn: Callable[[str], str], calls: int, repeats: int) -> dict[str, Any]:
    """``repeats`` x ``calls`` back-to-back calls, each one timed.

    A repeat's figure is its wall time / calls, which includes what background threads take from the
    app thread through the GIL; ``cpu_us_per_call`` is the whole process's CPU per call (all threads).
    """
    clock = time.perf_counter_ns
    mask = POOL - 1
    repeat_rows: list[dict[str, float]] = []
    samples: list[int] = []
    sys0, own0, wall0 = common.system_cpu(), time.process_time(), time.perf_counter()
    for _ in range(repeats):
        lat = [0] * calls
        cpu0, t0 = time.process_time(), clock()
        for i in range(calls):
            prompt = PROMPTS[i & mask]
            a = clock()
            fn(prompt)
            lat[i] = clock() - a
        t1, cpu1 = clock(), time.process_time()
        repeat_rows.append({"us_per_call": (t1 - t0) / calls / 1000, "cpu_us_per_call": (cpu1 - cpu0) / calls * 1e6})
        samples.extend(lat)
    wall = time.perf_counter() - wall0
    load = common.cores_busy(sys0, common.system_cpu(), wall)
    us = [s / 1000 for s in samples]
    return {
        "repeats": repeat_rows,
        # cores kept busy by other processes meanwhile (above ~0.1, contention inflates the figures);
        # /proc/stat counts in 10 ms ticks, so a window under a second says nothing
        "other_cores_busy": load["busy_cores"] - (time.process_time() - own0) / wall if wall >= 1.0 else None,
        "steal_cores": load["steal_cores"],
        "per_call_us": {q: common.percentile(us, p) for q, p in (("p50", 50), ("p95", 95), ("p99", 99))},
        "max_us": max(us),
    }


def time_paced(fn: Callable[[str], str], calls: int, rate: float) -> dict[str, Any]:
    """``calls`` calls at ``rate`` per second, each timed; in between, background threads get the GIL.

    This is the calling thread's cost when the export keeps up, as in an app whose calls are spaced out;
    a call that finds a background thread holding the GIL waits for it (up to the 5 ms switch interval).
    The wait spins with ``time.sleep(0)`` rather than sleeping: on this VM a vCPU that idles for a
    millisecond comes back so cold that the figures swing 3x from run to run.
    """
    clock = time.perf_counter_ns
    period = int(1e9 / rate)
    lat = [0] * calls
    start = clock()
    for i in range(calls):
        due = start + i * period
        while clock() < due:
            time.sleep(0)  # spin, handing the GIL over each turn: a real sleep lets the vCPU go cold
        prompt = PROMPTS[i % POOL]
        a = clock()
        fn(prompt)
        lat[i] = clock() - a
    us = [x / 1000 for x in lat]
    return {
        "calls": calls,
        "rate_per_s": rate,
        "achieved_per_s": calls / ((clock() - start) / 1e9),
        "per_call_us": {q: common.percentile(us, p) for q, p in (("p50", 50), ("p95", 95), ("p99", 99))},
        "mean_us": sum(us) / calls,
    }


def capture_check(variant: Variant) -> dict[str, Any]:
    """One more call with a recording processor attached: which attributes hold the 2 KB input and output.

    ``on_end`` runs on the app's thread inside ``span.end()``, so an attribute holding the text there was
    serialised on the app's thread. Loopwise keeps a snapshot aside instead and serialises it on its export
    thread, so its spans show nothing here; ``spool_check`` looks for the texts in what it spooled.
    """
    if variant.provider is None or not hasattr(variant.provider, "add_span_processor"):
        return {"checked": False}
    from opentelemetry.sdk.trace import SpanProcessor

    class Recorder(SpanProcessor):
        def __init__(self) -> None:
            self.spans: list[Any] = []

        def on_end(self, span: Any) -> None:
            self.spans.append(span)

    recorder = Recorder()
    variant.provider.add_span_processor(recorder)
    variant.fn(PROMPTS[0])
    found: dict[str, Any] = {"checked": True, "spans": len(recorder.spans), "input": None, "output": None}
    for span in recorder.spans:
        for key, value in (span.attributes or {}).items():
            if isinstance(value, str) and len(value) >= PAYLOAD_CHARS // 2:
                if PROMPTS[0][:200] in value:
                    found["input"] = f"{key} ({len(value):,} chars)"
                if COMPLETIONS[0][:200] in value:
                    found["output"] = f"{key} ({len(value):,} chars)"
    return found


def spool_check(spool_dir: Path | None, max_files: int = 3) -> dict[str, Any]:
    """Whether the spooled batches (gzip'd OTLP protobuf) hold the prompts and completions."""
    if spool_dir is None or not spool_dir.exists():
        return {"checked": False}
    files = sorted(p for p in spool_dir.rglob("*.spans.*") if p.is_file())[:max_files]
    seen_in = seen_out = 0
    for path in files:
        try:
            body = gzip.decompress(path.read_bytes())
        except (OSError, EOFError):
            continue
        seen_in += sum(prompt[:200].encode() in body for prompt in PROMPTS)
        seen_out += sum(completion[:200].encode() in body for completion in COMPLETIONS)
    return {"checked": True, "files": len(files), "prompts_found": seen_in, "completions_found": seen_out}


def proc_status_kib() -> dict[str, int]:
    """VmRSS and VmHWM (peak) of this process, KiB."""
    out: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = int(line.split()[1])
    return out


def dir_size(path: Path | None) -> dict[str, int]:
    if path is None or not path.exists():
        return {"files": 0, "bytes": 0}
    files = [p for p in path.rglob("*") if p.is_file()]
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}


def memory_run(variant: Variant, spans: int, flush_timeout: float, settle_s: float) -> dict[str, Any]:
    """``spans`` decorated calls with the collector down: RSS before, during (sampled), after, spool size."""
    stats_before = variant.stats() if variant.stats else None
    base = proc_status_kib()["VmRSS"]
    peak = base
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i in range(spans):
        variant.fn(PROMPTS[i % POOL])
        if i % 1000 == 0:
            peak = max(peak, proc_status_kib()["VmRSS"])
    loop_s, loop_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    after_loop = proc_status_kib()["VmRSS"]
    peak = max(peak, after_loop)
    stats_after_loop = variant.stats() if variant.stats else None
    flush: dict[str, Any] = {}
    if variant.flush is not None:
        f0 = time.perf_counter()
        flush["returned"] = repr(variant.flush(flush_timeout))
        flush["seconds"] = time.perf_counter() - f0
    time.sleep(settle_s)
    gc.collect()
    status = proc_status_kib()
    return {
        "spans": spans,
        "loop_s": loop_s,
        "us_per_call": loop_s / spans * 1e6,
        "cpu_us_per_call": loop_cpu / spans * 1e6,
        "rss_base_kib": base,
        "rss_peak_during_kib": peak,
        "rss_after_loop_kib": after_loop,
        "rss_after_settle_kib": status["VmRSS"],
        "vm_hwm_kib": status["VmHWM"],
        "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "growth_kib": max(peak, status["VmRSS"]) - base,
        "settle_s": settle_s,
        "flush": flush,
        "stats_before": stats_before,
        "stats_after_loop": stats_after_loop,
        "stats_end": variant.stats() if variant.stats else None,
        "spool": dir_size(variant.spool_dir),
        "spool_content": spool_check(variant.spool_dir),
    }


def serve_sink(port: int) -> None:
    """A null collector for the 'collector up' references: 200 with an empty OTLP response to every POST."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Sink(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Sink).serve_forever()


def main(params: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    variant = VARIANTS[params["variant"]](params)
    result: dict[str, Any] = {"variant": params["variant"], "setup_s": time.perf_counter() - t0, "notes": variant.notes}
    batches = BatchAccounting(variant.provider)
    warm_up(variant.fn, params["warmup"])
    if params["mode"] != "rss" and params.get("paced_calls"):
        time.sleep(params["settle_s"])  # let the export threads work off the warm-up
        result["paced"] = time_paced(variant.fn, params["paced_calls"], params["paced_rate"])
    before = batches.snapshot()
    if params["mode"] == "rss":
        result["memory"] = memory_run(variant, params["spans"], params["flush_timeout"], params["settle_s"])
        ended = params["spans"]
    else:
        result["timing"] = time_calls(variant.fn, params["calls"], params["repeats"])
        ended = params["calls"] * params["repeats"]
        result["stats"] = variant.stats() if variant.stats else None
    result["stock_batch_dropped"] = batches.dropped_between(before, batches.snapshot(), ended)
    result["stock_batch_handed_to_exporter"] = batches.handed if batches.active else None
    result["notes"] += [f"batch exporter: {e}" for e in batches.endpoints]
    if params["mode"] != "rss":
        result["spool_content"] = spool_check(variant.spool_dir)
        result["capture"] = capture_check(variant)
    return result


if __name__ == "__main__":
    params = json.loads(sys.argv[1])
    if params.get("mode") == "sink":
        serve_sink(params["port"])
    code = 0
    try:
        out = main(params)
    except BaseException as exc:  # reported to the parent, which prints the child's log
        out = {"variant": params.get("variant"), "error": f"{type(exc).__name__}: {exc}"}
        logging.getLogger("bench").exception("variant %s failed", params.get("variant"))
        code = 1
    Path(params["out"]).write_text(json.dumps(common.clean_nans(out), default=str))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip atexit hooks: libraries would spend their export timeout on the dead endpoint
