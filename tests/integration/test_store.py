"""The store suite, run against every backend this machine has (chDB embedded, HTTP harness)."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from loopwise_collector.errors import InvalidQueryError, NotFoundError
from loopwise_collector.store import ClickHouseStore, ScoreRecord, TraceCursor, TraceFilter
from loopwise_collector.store.migrate import load_migrations
from tests.factories import llm_trace

pytestmark = pytest.mark.integration
HOUR = 3_600_000_000_000


@pytest.fixture
def store(store_dsn: str):
    s = ClickHouseStore(store_dsn)
    s.open()
    s.ensure_project("demo", "Demo", 30)
    s.ensure_project("other", "Other", 30)
    yield s
    s.close()


def test_migrations_are_recorded_and_idempotent(store: ClickHouseStore, store_dsn: str) -> None:
    again = ClickHouseStore(store_dsn)
    again.open()  # a second start applies nothing and fails on nothing
    numbers = [r[0] for r in store.query("SELECT number FROM {db}.schema_migrations ORDER BY number")]
    assert numbers == [m.number for m in load_migrations()]
    tables = {r[0] for r in store.query("SELECT name FROM system.tables WHERE database = {d:String}",
                                         {"d": store.database})}  # fmt: skip
    assert {"spans", "scores", "projects", "api_keys", "model_prices", "schema_migrations"} <= tables
    again.close()


def test_resent_spans_are_stored_once(store: ClickHouseStore) -> None:
    spans = llm_trace()
    store.insert_spans(spans)
    store.insert_spans([replace(s, version=2) for s in spans])
    store.insert_spans(spans)
    got = store.project("demo").get_trace(spans[0].trace_id)
    assert len(got) == 2
    assert {s.version for s in got} == {2}  # the newest copy wins
    (count,) = store.query("SELECT count() FROM {db}.spans FINAL")[0]
    assert count == 2


def test_span_roundtrip_keeps_every_field(store: ClickHouseStore) -> None:
    spans = llm_trace(
        user_id="u1", session_id="s1", tags=("a", "b"), variant="B", cost_usd=0.25, cost_source="client",
        cache_read_input_tokens=7, reasoning_output_tokens=3, attributes={"k": "v", "n": "1.5"},
        events='[{"name":"exception"}]', system_instructions="be nice", prompt_name="p", prompt_version="3",
    )  # fmt: skip
    store.insert_spans(spans)
    got = {s.span_id: s for s in store.project("demo").get_trace(spans[0].trace_id)}
    for original in spans:
        assert got[original.span_id] == original


def test_project_isolation(store: ClickHouseStore) -> None:
    mine, theirs = llm_trace("demo"), llm_trace("other")
    store.insert_spans(mine + theirs)
    demo = store.project("demo")
    assert [t.trace_id for t in demo.list_traces(TraceFilter()).traces] == [mine[0].trace_id]
    with pytest.raises(NotFoundError):
        demo.get_trace(theirs[0].trace_id)
    assert not demo.trace_exists(theirs[0].trace_id)
    assert sum(r.span_count for r in demo.metrics_summary()) == 2
    store.insert_scores([ScoreRecord("other", "s1", theirs[0].trace_id, "thumbs", "human", value=1.0)])
    assert demo.list_scores() == []


def test_trace_summary_totals(store: ClickHouseStore) -> None:
    spans = llm_trace(user_id="u1", tags=("prod",), variant="A", cost_usd=0.5, cost_source="client")
    extra = replace(spans[1], span_id="f" * 16, input_tokens=50, output_tokens=5, cost_usd=None,
                    cost_source="unpriced", request_model="mystery")  # fmt: skip
    store.insert_spans([*spans, extra])
    (t,) = store.project("demo").list_traces(TraceFilter()).traces
    assert (t.name, t.span_count, t.input_tokens, t.output_tokens) == ("agent", 3, 150, 25)
    assert t.cost_usd == pytest.approx(0.5)
    assert t.unpriced_span_count == 1
    assert t.models == ("gpt-4o", "mystery")
    assert (t.user_id, t.tags, t.variants) == ("u1", ("prod",), ("A",))
    assert t.duration_ms == pytest.approx(120.0)


def test_filters(store: ClickHouseStore) -> None:
    now = time.time_ns()
    a = llm_trace(start_ns=now - 1000, model="gpt-4o", user_id="alice", tags=("x",), variant="A", name="search")
    b = llm_trace(start_ns=now - 2000, model="claude-3-5-sonnet", session_id="s9", error=True)
    c = llm_trace(start_ns=now - 3 * HOUR, model="gpt-4o", user_id="bob", tags=("y",), variant="B")
    store.insert_spans(a + b + c)
    p = store.project("demo")

    def ids(**kw):
        return [t.trace_id for t in p.list_traces(TraceFilter(**kw)).traces]

    ta, tb, tc = a[0].trace_id, b[0].trace_id, c[0].trace_id
    assert ids() == [ta, tb, tc]
    assert ids(model="gpt-4o") == [ta, tc]
    assert ids(user_id="alice") == [ta]
    assert ids(session_id="s9") == [tb]
    assert ids(tag="y") == [tc]
    assert ids(variant="A") == [ta]
    assert ids(name="search") == [ta]
    assert ids(has_error=True) == [tb]
    assert ids(has_error=False) == [ta, tc]
    assert ids(from_ns=now - HOUR) == [ta, tb]
    assert ids(to_ns=now - HOUR) == [tc]
    assert ids(model="nope") == []


def test_cursor_pagination_is_complete_and_stable(store: ClickHouseStore) -> None:
    now = time.time_ns()
    # Spread over several windows (minutes to days) so paging crosses window boundaries.
    offsets = [i * 7 * 60 * 1_000_000_000 * (1 + i % 5) for i in range(37)]
    traces = [llm_trace(start_ns=now - off) for off in offsets]
    store.insert_spans([s for t in traces for s in t])
    p = store.project("demo")
    seen, cursor = [], None
    while True:
        page = p.list_traces(TraceFilter(limit=5, cursor=cursor))
        seen += [t.trace_id for t in page.traces]
        if page.next_cursor is None:
            break
        cursor = TraceCursor.decode(page.next_cursor)
    # Newest first; equal start times (there are some) break ties by trace id, descending.
    expected = [t[0].trace_id for t in sorted(traces, key=lambda t: (t[0].start_time_ns, t[0].trace_id), reverse=True)]
    assert seen == expected


def test_trace_straddling_a_window_sorts_by_its_true_start(store: ClickHouseStore) -> None:
    now = time.time_ns()
    old = llm_trace(start_ns=now - 2 * HOUR)
    late_child = replace(old[1], span_id="e" * 16, start_time_ns=now - 1000, end_time_ns=now)
    recent = llm_trace(start_ns=now - 10 * 60 * 1_000_000_000)
    store.insert_spans([*old, late_child, *recent])
    page = store.project("demo").list_traces(TraceFilter(limit=1))
    assert [t.trace_id for t in page.traces] == [recent[0].trace_id]
    nxt = store.project("demo").list_traces(TraceFilter(limit=1, cursor=TraceCursor.decode(page.next_cursor)))
    assert [(t.trace_id, t.span_count) for t in nxt.traces] == [(old[0].trace_id, 3)]


def test_bad_queries(store: ClickHouseStore) -> None:
    p = store.project("demo")
    with pytest.raises(InvalidQueryError):
        p.list_traces(TraceFilter(limit=0))
    with pytest.raises(InvalidQueryError):
        p.list_traces(TraceFilter(from_ns=10, to_ns=5))
    with pytest.raises(InvalidQueryError):
        p.metrics_summary(group_by="region")
    with pytest.raises(InvalidQueryError):
        TraceCursor.decode("not-a-cursor")
    with pytest.raises(NotFoundError):
        p.get_trace("0" * 31 + "1")


def test_values_never_reach_sql_text(store: ClickHouseStore) -> None:
    evil = "x' OR 1=1 --"
    store.insert_spans(llm_trace(user_id=evil))
    p = store.project("demo")
    assert len(p.list_traces(TraceFilter(user_id=evil)).traces) == 1
    assert p.list_traces(TraceFilter(user_id="x")).traces == []
    assert p.list_traces(TraceFilter(name=evil)).traces == []


def test_scores_replace_by_id_and_average_per_trace(store: ClickHouseStore) -> None:
    spans = llm_trace()
    store.insert_spans(spans)
    t = spans[0].trace_id
    store.insert_scores([
        ScoreRecord("demo", "h1", t, "thumbs", "human", value=0.0, created_at_ns=1_000_000, version=1),
        ScoreRecord("demo", "h1", t, "thumbs", "human", value=1.0, created_at_ns=1_000_000, version=2),
        ScoreRecord("demo", "h2", t, "thumbs", "human", value=0.0, explanation="meh",
                    created_at_ns=2_000_000, version=1),
        ScoreRecord("demo", "e1", t, "bleu", "evaluator", value=0.4, evaluator_version="1", created_at_ns=3_000_000),
    ])  # fmt: skip
    p = store.project("demo")
    assert [s.score_id for s in p.list_scores()] == ["e1", "h2", "h1"]
    assert [s.score_id for s in p.list_scores(source="human", name="thumbs")] == ["h2", "h1"]
    (trace,) = p.list_traces(TraceFilter()).traces
    assert trace.scores == {"thumbs": 0.5, "bleu": pytest.approx(0.4)}


def test_metrics_summary(store: ClickHouseStore) -> None:
    spans = []
    for i in range(10):
        spans += llm_trace(model="gpt-4o" if i < 6 else "claude", error=i == 0, variant="A" if i % 2 else "B",
                           cost_usd=0.01, cost_source="client")  # fmt: skip
    store.insert_spans(spans)
    p = store.project("demo")
    (total,) = p.metrics_summary()
    assert (total.span_count, total.trace_count, total.error_count) == (20, 10, 1)
    assert total.input_tokens == 1000 and total.output_tokens == 200
    assert total.cost_usd == pytest.approx(0.10)
    by_model = {r.group: r for r in p.metrics_summary(group_by="model")}
    assert by_model["gpt-4o"].span_count == 6 and by_model["claude"].span_count == 4
    assert by_model["gpt-4o"].error_rate == pytest.approx(1 / 6)
    assert by_model["gpt-4o"].latency_p50_ms == pytest.approx(95.0)
    assert {r.group for r in p.metrics_summary(group_by="variant")} == {"A", "B"}
    assert len(p.metrics_summary(group_by="day")) == 1
    assert p.metrics_summary(from_ns=time.time_ns() + HOUR * 2) == []


def test_retention_ttl_drops_expired_spans(store: ClickHouseStore) -> None:
    now = time.time_ns()
    day = 24 * HOUR
    old_short = llm_trace(start_ns=now - 10 * day, retention_days=7)
    old_long = llm_trace(start_ns=now - 10 * day, retention_days=30)
    store.insert_spans(old_short + old_long)
    store.query("OPTIMIZE TABLE {db}.spans FINAL")  # TTL is applied on merge
    ids = {t.trace_id for t in store.project("demo").list_traces(TraceFilter()).traces}
    assert ids == {old_long[0].trace_id}


def test_keys_are_hashed_and_revocable(store: ClickHouseStore) -> None:
    store.add_api_key("demo", "lw-secret-key")
    assert store.project_for_key("lw-secret-key").project_id == "demo"
    stored = [r[0] for r in store.query("SELECT key_hash FROM {db}.api_keys")]
    assert "lw-secret-key" not in stored and len(stored[0]) == 64
    store.revoke_api_key("lw-secret-key")
    assert store.project_for_key("lw-secret-key") is None
    assert store.project_for_key("never-issued") is None


def test_retention_setting_and_projects(store: ClickHouseStore) -> None:
    assert store.ensure_project("demo", "ignored", 99).retention_days == 30  # existing keeps settings
    assert store.set_retention("demo", 90).retention_days == 90
    assert store.get_project("demo").retention_days == 90
    assert store.get_project("missing") is None


def test_data_survives_reopen(store: ClickHouseStore, store_dsn: str) -> None:
    spans = llm_trace()
    store.insert_spans(spans)
    store.close()
    reopened = ClickHouseStore(store_dsn)
    reopened.open()
    assert len(reopened.project("demo").get_trace(spans[0].trace_id)) == 2
    reopened.close()


def test_filters_see_spans_that_start_after_the_page_boundary(store: ClickHouseStore) -> None:
    now = time.time_ns()
    # Trace A starts first but its gpt-4o call starts after trace B began; B ends page 1.
    a_root = llm_trace(start_ns=now - 10_000_000_000, model="claude")[0]
    a_llm = replace(llm_trace(model="gpt-4o")[1], trace_id=a_root.trace_id, parent_span_id=a_root.span_id,
                    start_time_ns=now - 1_000_000_000, end_time_ns=now - 900_000_000)  # fmt: skip
    b = llm_trace(start_ns=now - 5_000_000_000, model="gpt-4o")
    store.insert_spans([a_root, a_llm, *b])
    p = store.project("demo")
    first = p.list_traces(TraceFilter(model="gpt-4o", limit=1))
    assert [t.trace_id for t in first.traces] == [b[0].trace_id]
    second = p.list_traces(TraceFilter(model="gpt-4o", limit=1, cursor=TraceCursor.decode(first.next_cursor)))
    assert [t.trace_id for t in second.traces] == [a_root.trace_id]
    # `to` bounds the trace start: A started before it, so it matches although its model span is later.
    assert [t.trace_id for t in p.list_traces(TraceFilter(model="gpt-4o", to_ns=now - 8_000_000_000)).traces] == [
        a_root.trace_id
    ]
