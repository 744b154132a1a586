"""``@observe``, ``propagate`` and the span API, on the real OpenTelemetry SDK in this process.

Spans are read from an in-memory exporter added next to Loopwise's processor on the global
provider; what reaches the wire (content, redaction) is covered by the export and e2e tests.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import loopwise
from loopwise import semconv as sc

pytestmark = pytest.mark.unit

_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans(tmp_path: Path) -> Iterator[InMemorySpanExporter]:
    loopwise.configure(endpoint="http://127.0.0.1:9", api_key="lw_x", spool_dir=tmp_path, enabled=True, sample_rate=1)
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    if not getattr(provider, "_test_memory", False):
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        provider._test_memory = True  # type: ignore[attr-defined]
    _EXPORTER.clear()
    yield _EXPORTER
    loopwise.shutdown(0.1)
    _EXPORTER.clear()


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {s.name: s for s in exporter.get_finished_spans()}


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent else None


@loopwise.observe(as_type="retrieval")
def retrieve(q: str) -> list[str]:
    return [f"doc about {q}"]


@loopwise.observe
def tokens(text: str) -> Iterator[str]:
    for word in text.split():
        retrieve(word)  # nested inside the stream: must be a child of the generator's span
        yield word + " "


@loopwise.observe(name="agen")
async def atokens(n: int) -> Any:
    for i in range(n):
        await asyncio.sleep(0)
        retrieve(str(i))
        yield i


@loopwise.observe(as_type="agent")
async def agent(q: str) -> str:
    parts = await asyncio.gather(*(asyncio.create_task(step(i)) for i in range(3)))
    return ",".join(parts)


@loopwise.observe(as_type="tool")
async def step(i: int) -> str:
    await asyncio.sleep(0.001)
    return str(i)


def test_four_function_kinds_nest_under_the_root(spans: InMemorySpanExporter) -> None:
    @loopwise.observe
    def root() -> str:
        out = "".join(tokens("a b"))
        got = asyncio.run(collect())
        return out + str(got)

    async def collect() -> list[int]:
        return [x async for x in atokens(2)]

    assert root() == "a b [0, 1]"
    finished = spans.get_finished_spans()
    names = by_name(spans)
    root_span = names["root"]
    assert root_span.parent is None
    assert parent_of(names["tokens"]) == root_span.context.span_id
    assert parent_of(names["agen"]) == root_span.context.span_id
    gen_children = [s for s in finished if s.name == "retrieve" and parent_of(s) == names["tokens"].context.span_id]
    agen_children = [s for s in finished if s.name == "retrieve" and parent_of(s) == names["agen"].context.span_id]
    assert len(gen_children) == 2 and len(agen_children) == 2
    assert {s.context.trace_id for s in finished} == {root_span.context.trace_id}
    assert names["tokens"].attributes[sc.LOOPWISE_STREAM_CHUNKS] == 2
    assert names["tokens"].attributes[sc.LOOPWISE_TIME_TO_FIRST_CHUNK_MS] >= 0
    assert names["retrieve"].attributes[sc.LOOPWISE_SPAN_TYPE] == "retrieval"


def test_asyncio_tasks_nest_under_the_span_that_created_them(spans: InMemorySpanExporter) -> None:
    assert asyncio.run(agent("q")) == "0,1,2"
    finished = spans.get_finished_spans()
    agent_span = next(s for s in finished if s.name == "agent")
    steps = [s for s in finished if s.name == "step"]
    assert len(steps) == 3
    assert all(parent_of(s) == agent_span.context.span_id for s in steps)


def test_threads_keep_their_own_traces_and_copied_context_nests(spans: InMemorySpanExporter) -> None:
    barrier = threading.Barrier(4)

    @loopwise.observe
    def worker(i: int) -> int:
        barrier.wait()  # all four spans open at once
        retrieve(str(i))
        return i

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    finished = spans.get_finished_spans()
    workers = {s.context.span_id: s for s in finished if s.name == "worker"}
    assert len(workers) == 4 and len({s.context.trace_id for s in workers.values()}) == 4
    for child in (s for s in finished if s.name == "retrieve"):
        parent = workers[parent_of(child)]  # type: ignore[index]
        assert parent.context.trace_id == child.context.trace_id

    spans.clear()

    @loopwise.observe
    def fan_out() -> list[list[str]]:
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(contextvars.copy_context().run, retrieve, str(i)) for i in range(3)]
            return [f.result() for f in futures]

    fan_out()
    names = by_name(spans)
    children = [s for s in spans.get_finished_spans() if s.name == "retrieve"]
    assert all(parent_of(c) == names["fan_out"].context.span_id for c in children)


def test_app_exceptions_are_recorded_and_reraised_unchanged(spans: InMemorySpanExporter) -> None:
    class AppError(Exception):
        pass

    err = AppError("payment declined")

    @loopwise.observe
    def pay() -> None:
        raise err

    @loopwise.observe
    async def apay() -> None:
        raise err

    @loopwise.observe
    def gpay() -> Iterator[int]:
        yield 1
        raise err

    with pytest.raises(AppError) as caught:
        pay()
    assert caught.value is err
    with pytest.raises(AppError) as caught:
        asyncio.run(apay())
    assert caught.value is err
    with pytest.raises(AppError) as caught:
        list(gpay())
    assert caught.value is err
    for s in spans.get_finished_spans():
        assert s.status.status_code is StatusCode.ERROR
        assert "payment declined" in (s.status.description or "")
        assert s.events[0].name == "exception"
        assert str(s.events[0].attributes["exception.type"]).endswith("AppError")  # type: ignore[index]


def test_generator_send_throw_and_early_close(spans: InMemorySpanExporter) -> None:
    @loopwise.observe
    def echo() -> Iterator[Any]:
        received = None
        while True:
            try:
                received = yield received
            except ValueError:
                received = "recovered"

    g = echo()
    assert next(g) is None
    assert g.send("x") == "x"
    assert g.throw(ValueError("boom")) == "recovered"
    g.close()
    [s] = spans.get_finished_spans()
    assert s.status.status_code is StatusCode.UNSET  # closing early is not an error
    assert s.attributes[sc.LOOPWISE_STREAM_CHUNKS] == 3


def test_propagate_reaches_children_and_the_current_span(spans: InMemorySpanExporter) -> None:
    @loopwise.observe
    def handler() -> None:
        with loopwise.propagate(user_id="u-1", session_id="s-1", tags=["beta"], variant="B", metadata={"tier": 2}):
            retrieve("x")
            with loopwise.propagate(tags=["inner"]):
                retrieve("y")

    handler()
    finished = spans.get_finished_spans()
    root = next(s for s in finished if s.name == "handler")
    inner = [s for s in finished if s.name == "retrieve"]
    for s in [root, *inner]:
        assert s.attributes[sc.LOOPWISE_USER_ID] == "u-1"
        assert s.attributes[sc.LOOPWISE_SESSION_ID] == "s-1"
        assert s.attributes[sc.LOOPWISE_VARIANT] == "B"
        assert s.attributes[sc.LOOPWISE_METADATA_PREFIX + "tier"] == 2
    assert inner[1].attributes[sc.LOOPWISE_TAGS] == ("beta", "inner")


def test_llm_span_attributes_use_the_semconv_names(spans: InMemorySpanExporter) -> None:
    @loopwise.observe(as_type="llm")
    def chat() -> str:
        loopwise.update_current_llm(
            model="gpt-4o-mini",
            provider="openai",
            response_model="gpt-4o-mini-2024-07-18",
            input_tokens=120,
            output_tokens=30,
            cached_input_tokens=100,
            reasoning_tokens=5,
            cost_usd=0.001,
            prompt_name="support",
            prompt_version=4,
            parameters={"temperature": 0.2, "max_tokens": 256},
        )
        return "ok"

    chat()
    [s] = spans.get_finished_spans()
    a = s.attributes
    assert a[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert a[sc.GEN_AI_PROVIDER_NAME] == "openai"
    assert a[sc.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini-2024-07-18"
    assert a[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert (a[sc.GEN_AI_USAGE_INPUT_TOKENS], a[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (120, 30)
    assert a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 100
    assert a[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 5
    assert a[sc.LOOPWISE_COST_USD] == 0.001
    assert (a[sc.LOOPWISE_PROMPT_NAME], a[sc.LOOPWISE_PROMPT_VERSION]) == ("support", "4")
    assert a[sc.GEN_AI_REQUEST_TEMPERATURE] == 0.2
    assert a[sc.LOOPWISE_SPAN_TYPE] == "llm"


def test_bad_input_never_raises_into_the_app(spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture) -> None:
    class Unprintable:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    @loopwise.observe
    def takes(x: Any) -> Any:
        loopwise.update_current_llm(input_tokens="many")  # type: ignore[arg-type]
        return x

    obj = Unprintable()
    assert takes(obj) is obj
    with caplog.at_level(logging.ERROR, logger="loopwise"):
        loopwise.configure(sample_rate=7, endpoint="localhost:4318", nonsense=True)  # type: ignore[arg-type]
        bad = loopwise.observe(as_type="banana")(lambda: 1)  # type: ignore[call-overload]
        assert bad() == 1
        assert loopwise.score(trace_id="not-hex", name="thumbs", value=1) is None
    text = caplog.text
    assert "LOOPWISE_SAMPLE_RATE" not in text and "sample_rate" in text
    assert "http://127.0.0.1:4318" in text  # the endpoint error shows what a good one looks like
    assert "nonsense" in text and "banana" in text and "trace_id" in text


def test_sampling_keeps_or_drops_whole_traces(tmp_path: Path) -> None:
    loopwise.configure(endpoint="http://127.0.0.1:9", api_key="lw_x", spool_dir=tmp_path, sample_rate=0.5)
    from loopwise._runtime import RUNTIME

    seen: list[int] = []
    pipeline = RUNTIME.start_pipeline()
    original = pipeline.enqueue_span
    pipeline.enqueue_span = lambda span, content=None: seen.append(span.context.trace_id)  # type: ignore[method-assign]

    @loopwise.observe
    def root() -> None:
        retrieve("a")
        retrieve("b")

    try:
        for _ in range(200):
            root()
    finally:
        pipeline.enqueue_span = original  # type: ignore[method-assign]
        loopwise.configure(sample_rate=1.0)
        loopwise.shutdown(0.1)
    kept = {t: seen.count(t) for t in seen}
    assert all(n == 3 for n in kept.values())  # a trace is exported whole or not at all
    assert 60 <= len(kept) <= 140


def test_disabled_sdk_runs_functions_untraced(spans: InMemorySpanExporter) -> None:
    loopwise.configure(enabled=False)
    try:
        assert retrieve("x") == ["doc about x"]
        assert spans.get_finished_spans() == ()
    finally:
        loopwise.configure(enabled=True)


def test_get_current_ids(spans: InMemorySpanExporter) -> None:
    assert loopwise.get_current_trace_id() is None

    @loopwise.observe
    def f() -> tuple[str | None, str | None]:
        return loopwise.get_current_trace_id(), loopwise.get_current_span_id()

    tid, sid = f()
    [s] = spans.get_finished_spans()
    assert tid == format(s.context.trace_id, "032x")
    assert sid == format(s.context.span_id, "016x")


def test_configure_beside_the_apps_own_provider_adds_a_processor() -> None:
    import subprocess
    import sys

    code = """
import loopwise
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
mine = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(mine))
trace.set_tracer_provider(provider)
loopwise.configure(endpoint="http://127.0.0.1:9", api_key="k")
loopwise.configure(endpoint="http://127.0.0.1:9", api_key="k")  # twice: harmless
assert trace.get_tracer_provider() is provider
with trace.get_tracer("app").start_as_current_span("app-span"):
    loopwise.observe(lambda: None)()
print(sorted(s.name for s in mine.get_finished_spans()), loopwise.stats()["spans_queued"])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split("\n")[0] == "['<lambda>', 'app-span'] 2"


def test_update_current_llm_keeps_a_specific_span_type(spans: InMemorySpanExporter) -> None:
    @loopwise.observe(as_type="embedding")
    def embed(texts: list[str]) -> list[list[float]]:
        loopwise.update_current_llm(model="text-embedding-3-small", provider="openai", input_tokens=8)
        return [[0.0]]

    @loopwise.observe
    def plain() -> None:
        loopwise.update_current_llm(model="gpt-4o-mini")

    embed(["a"])
    plain()
    types = {s.name: s.attributes[sc.LOOPWISE_SPAN_TYPE] for s in spans.get_finished_spans()}
    assert types == {"embed": "embedding", "plain": "llm"}
