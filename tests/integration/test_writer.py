"""The group-commit writer and its outage spool, against the real engine (chDB and the HTTP harness)."""

from __future__ import annotations

import time
from concurrent.futures import wait
from dataclasses import replace
from pathlib import Path

import pytest

from loopwise_collector.errors import SpoolFullError
from loopwise_collector.ingest.spool import Spool, SpoolEntry
from loopwise_collector.ingest.writer import BatchWriter
from loopwise_collector.observability import CollectorMetrics
from loopwise_collector.store import ClickHouseStore, TraceFilter
from tests.conftest import chdb_dsn, http_dsn
from tests.factories import llm_trace
from tests.support.clickhouse_http import ClickHouseHTTPServer

pytestmark = pytest.mark.integration


def stored_span_count(store: ClickHouseStore) -> int:
    return int(store.query("SELECT count() FROM {db}.spans FINAL")[0][0])


def raw_span_count(store: ClickHouseStore) -> int:
    return int(store.query("SELECT count() FROM {db}.spans")[0][0])


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@pytest.fixture
def chdb_store(chdb_dir: Path):
    store = ClickHouseStore(chdb_dsn(chdb_dir))
    store.open()
    yield store
    store.close()


def test_load_gives_large_inserts(chdb_store: ClickHouseStore, tmp_path: Path) -> None:
    metrics = CollectorMetrics()
    writer = BatchWriter(chdb_store, Spool(tmp_path / "spool", max_bytes=1 << 30), metrics,
                         batch_rows=10_000, max_delay=0.5)  # fmt: skip
    writer.start()
    # 30 concurrent requests of 1,000 spans arriving together: three inserts of >= 10k rows.
    batches = [[s for _ in range(500) for s in llm_trace()] for _ in range(30)]
    futures = [writer.submit("spans", b) for b in batches]
    wait(futures, timeout=60)
    assert all(f.done() and f.exception() is None for f in futures)
    writer.stop()
    count = metrics.registry.get_sample_value("loopwise_insert_batch_rows_count")
    total = metrics.registry.get_sample_value("loopwise_insert_batch_rows_sum")
    under_10k = metrics.registry.get_sample_value("loopwise_insert_batch_rows_bucket", {"le": "5000.0"})
    assert total == 30_000
    assert count <= 3 and under_10k == 0
    assert stored_span_count(chdb_store) == 30_000


def test_light_traffic_is_flushed_within_the_delay(chdb_store: ClickHouseStore, tmp_path: Path) -> None:
    writer = BatchWriter(chdb_store, Spool(tmp_path / "spool", max_bytes=1 << 30), CollectorMetrics(),
                         batch_rows=10_000, max_delay=0.3)  # fmt: skip
    writer.start()
    started = time.monotonic()
    writer.submit("spans", llm_trace()).result(timeout=5)
    lone = time.monotonic() - started  # after a quiet spell: written at once
    started = time.monotonic()
    writer.submit("spans", llm_trace()).result(timeout=5)
    follow_up = time.monotonic() - started  # right after an insert: waits to gather company
    writer.stop()
    assert lone < 0.25
    assert 0.2 <= follow_up < 1.0
    assert stored_span_count(chdb_store) == 4


def test_scores_are_not_held_back(chdb_store: ClickHouseStore, tmp_path: Path) -> None:
    from loopwise_collector.store.records import ScoreRecord

    writer = BatchWriter(chdb_store, Spool(tmp_path / "spool", max_bytes=1 << 30), CollectorMetrics(),
                         batch_rows=10_000, max_delay=0.5)  # fmt: skip
    writer.start()
    writer.submit("spans", llm_trace()).result(timeout=5)
    elapsed = []
    for i in range(3):  # one feedback click after another, right after a span insert
        started = time.monotonic()
        score = ScoreRecord(project_id="demo", score_id=f"s{i}", trace_id="ab" * 16, name="thumbs", source="human")
        writer.submit("scores", [score]).result(timeout=5)
        elapsed.append(time.monotonic() - started)
    writer.stop()
    assert max(elapsed) < 0.4


def test_outage_spools_then_replays_exactly_once(tmp_path: Path) -> None:
    server = ClickHouseHTTPServer(tmp_path / "ch", log_path=tmp_path / "ch.log")
    server.start()
    store = ClickHouseStore(http_dsn(server, "outage"))
    store.open()
    metrics = CollectorMetrics()
    writer = BatchWriter(store, Spool(tmp_path / "spool", max_bytes=1 << 30), metrics,
                         batch_rows=1_000, max_delay=0.05, retry_initial=0.1, retry_max=0.5)  # fmt: skip
    writer.start()
    acked = []
    try:
        for phase in ("before", "during", "after"):
            if phase == "during":
                server.kill()
            if phase == "after":
                server.restart()
            for _ in range(5):
                spans = [s for _ in range(50) for s in llm_trace()]
                writer.submit("spans", spans).result(timeout=30)  # acknowledged: durable somewhere
                acked += spans
            if phase == "during":
                assert writer.degraded
                assert len(writer.spool) >= 1
                assert metrics.registry.get_sample_value("loopwise_store_degraded") == 1
        assert wait_until(lambda: not writer.degraded, timeout=30)
        assert len(writer.spool) == 0
        assert stored_span_count(store) == len(acked)
        got = {r[0] for r in store.query("SELECT DISTINCT span_id FROM {db}.spans")}
        assert got == {s.span_id for s in acked}
    finally:
        writer.stop()
        store.close()
        server.stop()


def test_leftover_spool_replays_at_start(chdb_store: ClickHouseStore, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=1 << 30)
    spans = llm_trace() + llm_trace()
    spool.append("spans", spans)  # as if the previous process died during an outage
    writer = BatchWriter(chdb_store, Spool(tmp_path / "spool", max_bytes=1 << 30), CollectorMetrics(),
                         retry_initial=0.05)  # fmt: skip
    assert writer.degraded
    writer.start()
    assert wait_until(lambda: not writer.degraded, timeout=10)
    writer.stop()
    assert stored_span_count(chdb_store) == 4
    assert list((tmp_path / "spool").glob("*.batch")) == []


def test_duplicate_replay_is_collapsed(chdb_store: ClickHouseStore, tmp_path: Path) -> None:
    # An insert that reached ClickHouse but whose answer was lost gets spooled and replayed again.
    spans = llm_trace()
    chdb_store.insert_spans(spans)
    Spool(tmp_path / "spool", max_bytes=1 << 30).append("spans", spans)
    writer = BatchWriter(chdb_store, Spool(tmp_path / "spool", max_bytes=1 << 30), CollectorMetrics(),
                         retry_initial=0.05)  # fmt: skip
    writer.start()
    assert wait_until(lambda: not writer.degraded, timeout=10)
    writer.stop()
    assert raw_span_count(chdb_store) == 4
    assert stored_span_count(chdb_store) == 2
    (trace,) = chdb_store.project("demo").list_traces(TraceFilter()).traces
    assert trace.span_count == 2


def test_full_spool_refuses_instead_of_dropping(tmp_path: Path) -> None:
    server = ClickHouseHTTPServer(tmp_path / "ch", log_path=tmp_path / "ch.log")
    server.start()
    store = ClickHouseStore(http_dsn(server, "full"))
    store.open()
    server.kill()
    writer = BatchWriter(store, Spool(tmp_path / "spool", max_bytes=256 << 10), CollectorMetrics(),
                         max_delay=0.01, retry_initial=5)  # fmt: skip
    writer.start()
    try:
        big = [s for _ in range(200) for s in llm_trace(input="x" * 2000)]
        with pytest.raises(SpoolFullError, match="full"):
            writer.submit("spans", big).result(timeout=30)
        small = llm_trace()
        writer.submit("spans", small).result(timeout=30)  # still fits: accepted
        assert len(writer.spool) == 1
    finally:
        writer.stop()
        store.close()
        server.stop()


def test_a_batch_clickhouse_keeps_refusing_is_set_aside(chdb_store: ClickHouseStore, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=1 << 30)
    bad = [replace(s, retention_days=70_000) for s in llm_trace()]  # out of UInt16 range: refused
    good = llm_trace()
    spool.append("spans", bad)
    spool.append("spans", good)
    metrics = CollectorMetrics()
    writer = BatchWriter(chdb_store, Spool(tmp_path / "spool", max_bytes=1 << 30), metrics,
                         retry_initial=0.01, retry_max=0.02, max_rejections=3)  # fmt: skip
    writer.start()
    assert wait_until(lambda: not writer.degraded, timeout=15)
    writer.stop()
    assert stored_span_count(chdb_store) == 2  # the good batch behind it got through
    (kept,) = (tmp_path / "spool" / "rejected").iterdir()  # the bad one is kept for an operator
    assert Spool(tmp_path / "x", max_bytes=1 << 20).load(SpoolEntry(kept, kept.stat().st_size))[1] == bad
    assert metrics.registry.get_sample_value("loopwise_spool_batches_rejected_total") == 1
