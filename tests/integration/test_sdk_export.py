"""The SDK's export pipeline against a scripted loopback server: retries, auth, rejection, caps.

The pipeline is driven directly (no global tracer provider), with spans from a private SDK
provider, so each test has its own queue, spool and threads.
"""

from __future__ import annotations

import gzip
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

from loopwise import semconv as sc
from loopwise._config import Config
from loopwise._export._encode import Arguments, encode_batches
from loopwise._export._pipeline import ExportPipeline
from tests.support.otlp_sink import OTLPSink, attributes

pytestmark = pytest.mark.integration

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def sink() -> Iterator[OTLPSink]:
    s = OTLPSink().start()
    yield s
    s.stop()


def _spans(n: int, **attrs: Any) -> list[ReadableSpan]:
    tracer = TracerProvider().get_tracer("t")
    out = []
    for i in range(n):
        span = tracer.start_span(f"s{i}", attributes={"i": i, **attrs})
        span.end()
        out.append(span)  # an ended _Span is a ReadableSpan
    return out


def _pipeline(tmp_path: Path, url: str, **kw: Any) -> ExportPipeline:
    cfg = Config(endpoint=url, api_key="lw_k", spool_dir=tmp_path / "spool", batch_delay_s=0.05, **kw)
    return ExportPipeline(cfg)


def _wait(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_delivers_protobuf_gzip_with_bearer_key(tmp_path: Path, sink: OTLPSink) -> None:
    p = _pipeline(tmp_path, sink.url)
    for s in _spans(3):
        p.enqueue_span(s)
    assert p.flush(5) is True
    rec = sink.received[0]
    assert rec.headers["Authorization"] == "Bearer lw_k"
    assert rec.headers["Content-Type"] == "application/x-protobuf"
    assert rec.headers["Content-Encoding"] == "gzip"
    assert sorted(s.name for s in sink.spans()) == ["s0", "s1", "s2"]
    assert p.stats()["spans_delivered"] == 3
    assert p.stats()["spool_batches"] == 0
    p.shutdown(1)


def test_retries_5xx_and_429_then_delivers_once(tmp_path: Path, sink: OTLPSink) -> None:
    sink.answer(503, times=2)
    sink.answer(429, Retry_After="1")
    p = _pipeline(tmp_path, sink.url)
    for s in _spans(5):
        p.enqueue_span(s)
    t0 = time.monotonic()
    _wait(lambda: len(sink.spans()) == 5, timeout=20)
    assert time.monotonic() - t0 >= 1.0  # Retry-After was honoured
    assert p.stats()["export_errors"] == 3
    assert p.flush(2) is True
    assert len(sink.spans()) == 5  # exactly once
    p.shutdown(1)


def test_unreachable_collector_spools_and_flush_is_bounded(tmp_path: Path) -> None:
    p = _pipeline(tmp_path, "http://127.0.0.1:9")
    for s in _spans(10):
        p.enqueue_span(s)
    t0 = time.monotonic()
    assert p.flush(0.5) is False
    assert time.monotonic() - t0 < 1.5
    st = p.stats()
    assert st["state"] == "retry"
    assert st["spool_items"] == 10
    assert list(Path(st["spool_dir"]).glob("*.spans.10.0"))  # on disk, not in memory
    p.shutdown(0.1)


def test_401_logs_one_actionable_error_and_keeps_spooling(
    tmp_path: Path, sink: OTLPSink, caplog: pytest.LogCaptureFixture
) -> None:
    sink.answer(401, times=3)
    p = _pipeline(tmp_path, sink.url)
    with caplog.at_level(logging.ERROR, logger="loopwise"):
        for s in _spans(2):
            p.enqueue_span(s)
        _wait(lambda: p.stats()["export_errors"] >= 3, timeout=20)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "LOOPWISE_API_KEY" in errors[0] and "rejected the API key" in errors[0]
    assert "lw_k" not in caplog.text  # the key itself is never logged
    assert p.stats()["state"] == "auth"
    assert p.flush(10) is True  # the 4th answer is a 200: the spooled spans went out
    assert len(sink.spans()) == 2
    p.shutdown(1)


def test_permanent_4xx_sets_batch_aside_never_deletes(tmp_path: Path, sink: OTLPSink) -> None:
    sink.answer(400)
    p = _pipeline(tmp_path, sink.url)
    for s in _spans(4):
        p.enqueue_span(s)
    _wait(lambda: p.stats()["items_rejected"] == 4)
    rejected = list((p.spool.root / "rejected").iterdir())
    assert len(rejected) == 1
    assert gzip.decompress(rejected[0].read_bytes())  # the batch as it was sent
    assert p.flush(2) is False  # refused is not delivered
    assert p.stats()["spool_batches"] == 0
    p.shutdown(1)


def test_score_waits_for_its_trace_then_is_sent(tmp_path: Path, sink: OTLPSink) -> None:
    sink.answer(404, body={"error": {"code": "not_found", "message": "trace not found"}})
    p = _pipeline(tmp_path, sink.url)
    p.enqueue_score({"id": "s1", "trace_id": TRACE, "name": "thumbs", "value": 1.0, "source": "human"})
    _wait(lambda: len(sink.scores()) == 1, timeout=10)
    assert sink.scores()[0]["name"] == "thumbs"
    p.shutdown(1)


def test_spans_queued_before_a_score_are_sent_before_it(tmp_path: Path, sink: OTLPSink) -> None:
    p = _pipeline(tmp_path, sink.url)
    for s in _spans(3):
        p.enqueue_span(s)
    p.enqueue_score({"id": "s1", "trace_id": TRACE, "name": "thumbs", "value": 0.0, "source": "human"})
    assert p.flush(5) is True
    assert [r.path for r in sink.received] == ["/v1/traces", "/api/v1/scores"]
    p.shutdown(1)


def test_spool_cap_drops_oldest_and_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    p = _pipeline(tmp_path, "http://127.0.0.1:9", spool_max_bytes=6000, batch_max_spans=10)
    with caplog.at_level(logging.WARNING, logger="loopwise"):
        for _ in range(10):
            for s in _spans(10, payload="x" * 300):
                p.enqueue_span(s)
            p.flush(0.05)
    st = p.stats()
    assert st["items_dropped_spool_full"] > 0
    assert st["spool_bytes"] <= 6000
    assert st["spool_items"] + st["items_dropped_spool_full"] == 100  # nothing unaccounted for
    assert "dropped the oldest" in caplog.text
    p.shutdown(0.1)


def test_full_queue_blocks_at_most_block_timeout_then_drops(tmp_path: Path) -> None:
    cfg = Config(
        endpoint="http://127.0.0.1:9", spool_dir=tmp_path, max_queue_size=5, block_timeout_s=0.05, batch_delay_s=5
    )
    p = ExportPipeline(cfg)
    p._batcher_busy = True  # stall the batcher: hold its condition so it cannot drain
    with p._cond:
        t0 = time.monotonic()
        for s in _spans(8):
            p.enqueue_span(s)
        elapsed = time.monotonic() - t0
    assert p.stats()["spans_dropped_queue_full"] == 3
    assert elapsed < 3 * 0.05 + 0.5
    p._batcher_busy = False
    p.shutdown(0.1)


def test_new_pipeline_adopts_a_dead_runs_spool(tmp_path: Path, sink: OTLPSink) -> None:
    sink.answer(503, times=1000)  # the collector is down while the first run lives
    dead = _pipeline(tmp_path, sink.url)
    for s in _spans(7):
        dead.enqueue_span(s)
    dead.flush(0.3)
    dead.shutdown(0.1)  # its directory stays, with the lock released
    sink.script.clear()
    alive = _pipeline(tmp_path, sink.url)
    assert alive.flush(5) is True
    assert len(sink.spans()) == 7
    assert alive.spool.dir is not None and dead.spool.root == alive.spool.root
    assert [d.name for d in alive.spool.root.iterdir()] == [alive.spool.dir.name]
    alive.shutdown(1)


def test_encoding_adds_redacted_truncated_content(tmp_path: Path) -> None:
    import inspect

    def fn(question: str, context: list[str]) -> None: ...

    cfg = Config(redact=(lambda t: t.replace("secret", "[X]"),), max_content_bytes=64)
    span = _spans(1)[0]
    content = {
        sc.LOOPWISE_INPUT: Arguments(inspect.signature(fn), ("the secret plan", ["a" * 100]), {}),
        sc.LOOPWISE_OUTPUT: "short secret",
    }
    [(count, body)] = list(encode_batches([(span, content)], cfg))
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest.FromString(gzip.decompress(body))
    attrs = attributes(req.resource_spans[0].scope_spans[0].spans[0])
    assert attrs[sc.LOOPWISE_INPUT].startswith('{"question": "the [X] plan", "context": ["aaa')
    assert len(attrs[sc.LOOPWISE_INPUT].encode()) <= 64
    assert attrs[sc.LOOPWISE_OUTPUT] == "short [X]"
    assert attrs[sc.LOOPWISE_TRUNCATED] is True
    assert count == 1


def test_capture_content_false_drops_every_content_attribute() -> None:
    from loopwise._export._encode import finish_attributes

    span = _spans(1, **{sc.INPUT_VALUE: "hi", "gen_ai.prompt.0.content": "hi", "keep": 1})[0]
    attrs = finish_attributes(span, {sc.LOOPWISE_OUTPUT: "x"}, Config(capture_content=False))
    assert sc.INPUT_VALUE not in attrs and "gen_ai.prompt.0.content" not in attrs
    assert sc.LOOPWISE_OUTPUT not in attrs
    assert attrs["keep"] == 1


def test_missing_key_is_one_log_line_not_an_exception(tmp_path: Path, sink: OTLPSink) -> None:
    import os
    import subprocess
    import sys

    sink.answer(401, times=5)
    # A fresh process: the global runtime, as an app has it, with no key anywhere.
    code = f"""
import time, loopwise
loopwise.configure(endpoint={sink.url!r}, spool_dir={str(tmp_path)!r}, batch_delay_s=0.05)
loopwise.observe(lambda: None)()
deadline = time.monotonic() + 20
while loopwise.stats()["export_errors"] < 2 and time.monotonic() < deadline:
    time.sleep(0.05)
s = loopwise.stats()
print(s["state"], s["spool_items"], s["export_errors"])
loopwise.shutdown(0.1)
"""
    env = {k: v for k, v in os.environ.items() if k != "LOOPWISE_API_KEY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert out.stdout.split() == ["auth", "1", "2"], out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("loopwise")]
    assert len(lines) == 1, lines  # configure says it once; the 401s that follow add nothing
    assert "no API key" in lines[0] and "LOOPWISE_API_KEY" in lines[0]


def test_forked_child_exports_through_its_own_pipeline(tmp_path: Path, sink: OTLPSink) -> None:
    import subprocess
    import sys

    # Servers that fork workers after importing the app (gunicorn --preload) must keep tracing.
    code = f"""
import os, loopwise
loopwise.configure(endpoint={sink.url!r}, api_key="k", spool_dir={str(tmp_path)!r}, batch_delay_s=0.05)
loopwise.observe(name="parent-before-fork")(lambda: None)()
pid = os.fork()
if pid == 0:
    loopwise.observe(name="child")(lambda: None)()
    os._exit(0 if loopwise.flush(10) else 1)
_, status = os.waitpid(pid, 0)
loopwise.observe(name="parent-after-fork")(lambda: None)()
print(os.waitstatus_to_exitcode(status), loopwise.flush(10))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["0", "True"], out.stderr
    assert sorted(s.name for s in sink.spans()) == ["child", "parent-after-fork", "parent-before-fork"]


def test_spooled_batches_only_go_to_the_project_they_were_for(tmp_path: Path, sink: OTLPSink) -> None:
    other = ExportPipeline(Config(endpoint=sink.url, api_key="lw_other_project", spool_dir=tmp_path))
    sink.answer(503, times=1000)
    other.enqueue_span(_spans(1)[0])
    other.flush(0.3)
    other.shutdown(0.1)
    sink.script.clear()
    mine = ExportPipeline(Config(endpoint=sink.url, api_key="lw_k", spool_dir=tmp_path, batch_delay_s=0.05))
    assert mine.flush(3) is True
    assert sink.spans() == []  # another project's spans are never sent with this key
    assert other.spool.pending_items() == 1 or any(other.spool.root.rglob("*.spans.*"))
    mine.shutdown(0.1)


def test_flush_is_false_when_a_batch_was_refused(tmp_path: Path, sink: OTLPSink) -> None:
    sink.answer(400)
    p = _pipeline(tmp_path, sink.url)
    p.enqueue_span(_spans(1)[0])
    assert p.flush(5) is False
    p.enqueue_span(_spans(1)[0])
    assert p.flush(5) is True  # the next flush reports only what happened since
    p.shutdown(0.1)


def test_wrong_endpoint_path_keeps_spooling(tmp_path: Path, sink: OTLPSink, caplog: pytest.LogCaptureFixture) -> None:
    sink.answer(405, times=2)
    p = _pipeline(tmp_path, sink.url)
    with caplog.at_level(logging.WARNING, logger="loopwise"):
        p.enqueue_span(_spans(1)[0])
        _wait(lambda: p.stats()["export_errors"] >= 1)
    assert "base URL" in caplog.text
    assert p.stats()["items_rejected"] == 0
    assert p.flush(10) is True
    p.shutdown(0.1)
