"""The dashboard under ``streamlit.testing`` against a real collector holding ``loopwise demo`` data.

AppTest runs the app's scripts in this process; the app's client makes real HTTP calls to the collector subprocess.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from loopwise_dashboard import APP_PATH
from loopwise_dashboard._format import fmt_int, fmt_pct
from tests.support.collector_process import CollectorProcess
from tests.support.dashboard_data import DEMO_KEY, EMPTY_KEY, api, send_demo, start_collector

pytestmark = pytest.mark.integration

TIMEOUT = 30


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    tmp = tmp_path_factory.mktemp("dashboard")
    proc = start_collector(tmp / "data")
    try:
        send_demo(proc, tmp)
        yield proc
    finally:
        proc.stop()


def _app(monkeypatch: pytest.MonkeyPatch, endpoint: str, key: str | None, tmp_path: Path) -> AppTest:
    for name in ("LOOPWISE_ENDPOINT", "LOOPWISE_API_KEY", "LOOPWISE_DATA_DIR", "LOOPWISE_DASHBOARD_CACHE_TTL_S"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOOPWISE_ENDPOINT", endpoint)
    monkeypatch.setenv("LOOPWISE_DATA_DIR", str(tmp_path / "no-credentials"))
    if key is not None:
        monkeypatch.setenv("LOOPWISE_API_KEY", key)
    return AppTest.from_file(str(APP_PATH), default_timeout=TIMEOUT)


@pytest.fixture
def app(collector: CollectorProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AppTest:
    return _app(monkeypatch, collector.url, DEMO_KEY, tmp_path)


def _texts(at: AppTest) -> str:
    """Every piece of text on the page, for "does it say X" checks."""
    parts = [e.value for e in (*at.markdown, *at.caption, *at.info, *at.error, *at.warning, *at.success, *at.code)]
    parts += [f"{m.label}={m.value}" for m in at.metric]
    return "\n".join(str(p) for p in parts)


def test_overview_shows_the_api_numbers(app: AppTest, collector: CollectorProcess) -> None:
    app.run()
    assert not app.exception
    total = api(collector, "/api/v1/metrics/summary")["data"][0]
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Traces"] == fmt_int(total["trace_count"]) == "40"
    assert metrics["Spans"] == fmt_int(total["span_count"])
    assert metrics["Error rate"] == fmt_pct(total["error_rate"])
    # Five time series plus two per-model charts, and the per-model table lists the API's models.
    assert len(app.get("vega_lite_chart")) == 7
    models = {r["group"] for r in api(collector, "/api/v1/metrics/summary", group_by="model")["data"] if r["group"]}
    assert set(app.dataframe[0].value["model"]) == models


def test_traces_search_and_score_range_match_the_api(app: AppTest, collector: CollectorProcess) -> None:
    app.run()
    app.switch_page("views/traces.py").run()
    app.text_input(key="lw_f_q").set_value("password").run()
    assert not app.exception
    found = api(collector, "/api/v1/traces", limit=50, q="password")["data"]
    assert 0 < len(found) < 40
    assert list(app.dataframe[0].value["trace_id"]) == [t["trace_id"] for t in found]
    app.text_input(key="lw_f_q").set_value("").run()
    # The demo's human feedback: traces whose mean `thumbs` is at most 0.5 (the thumbs-down ones).
    app.selectbox(key="lw_f_score").set_value("thumbs").run()
    app.number_input(key="lw_f_score_max").set_value(0.5).run()
    low = api(collector, "/api/v1/traces", limit=50, score_name="thumbs", score_max=0.5)["data"]
    assert list(app.dataframe[0].value["trace_id"]) == [t["trace_id"] for t in low]
    assert low and all(t["scores"]["thumbs"] <= 0.5 for t in low)


def test_traces_table_lists_the_api_traces_and_filters_errors(app: AppTest, collector: CollectorProcess) -> None:
    app.run()
    app.switch_page("views/traces.py").run()
    assert not app.exception
    traces = api(collector, "/api/v1/traces", limit=50)["data"]
    table = app.dataframe[0].value
    assert list(table["trace_id"]) == [t["trace_id"] for t in traces]
    assert list(table["name"]) == [t["name"] for t in traces]
    assert list(table["spans"]) == [t["span_count"] for t in traces]
    assert app.button(key="lw_next").disabled  # 40 traces fit on one page

    app.toggle(key="lw_f_errors").set_value(True).run()
    errors = api(collector, "/api/v1/traces", limit=50, has_error="true")["data"]
    assert 0 < len(errors) < len(traces)
    assert list(app.dataframe[0].value["trace_id"]) == [t["trace_id"] for t in errors]


def test_traces_lead_to_trace_detail_with_waterfall_and_chat(app: AppTest, collector: CollectorProcess) -> None:
    trace = api(collector, "/api/v1/traces", name="support-chat", limit=1)["data"][0]
    detail = api(collector, f"/api/v1/traces/{trace['trace_id']}")
    app.run()
    app.switch_page("views/traces.py").run()
    app.selectbox(key="lw_pick_trace").set_value(trace["trace_id"])
    app.button(key="lw_open_trace").click().run()
    assert not app.exception
    assert app.title[0].value == "Trace detail"
    assert app.query_params["trace_id"] == [trace["trace_id"]] or app.query_params["trace_id"] == trace["trace_id"]
    span_picker = app.selectbox(key=f"lw_span_{trace['trace_id']}")
    assert [o.split(". ", 1)[1].rsplit(" (", 1)[0] for o in span_picker.options] == [s["name"] for s in detail["spans"]]
    # The waterfall plots every span.
    chart = json.loads(app.get("vega_lite_chart")[0].proto.spec)
    assert chart["mark"]["type"] == "bar"
    # The picker opens on the first LLM call, whose GenAI messages show as chat.
    llm = next(s for s in detail["spans"] if s["span_type"] == "llm")
    assert span_picker.value == detail["spans"].index(llm)
    roles = [m.name for m in app.chat_message]
    assert "assistant" in roles and "system" in roles
    said = "\n".join(md.value for m in app.chat_message for md in m.markdown)
    first_system = json.loads(llm["input"])[0]["parts"][0]["content"]
    assert first_system[:40] in said


def test_feedback_is_stored_as_a_human_score(app: AppTest, collector: CollectorProcess) -> None:
    trace_id = api(collector, "/api/v1/traces", name="rag-answer", limit=1)["data"][0]["trace_id"]
    app.query_params["trace_id"] = trace_id
    app.run()
    app.switch_page("views/trace_detail.py").run()
    assert not app.exception
    app.feedback(key=f"lw_thumbs_{trace_id}").set_value(1)
    app.text_area(key=f"lw_comment_{trace_id}").input("grounded and short")
    app.button(key=f"lw_send_{trace_id}").click().run()
    assert not app.exception
    assert "thumbs up recorded" in app.success[0].value
    stored = api(collector, "/api/v1/scores", trace_id=trace_id, source="human", name="thumbs")["data"]
    mine = [(s["value"], s["label"]) for s in stored if s["comment"] == "grounded and short"]
    assert mine == [(1.0, "up")]
    # The page reran with a fresh cache, so its own scores table already shows the new score.
    scores = app.dataframe[-1].value
    assert "grounded and short" in list(scores["comment"])


def test_unknown_trace_is_a_clear_warning(app: AppTest) -> None:
    app.query_params["trace_id"] = "0" * 31 + "1"
    app.run()
    app.switch_page("views/trace_detail.py").run()
    assert not app.exception
    assert "Not found" in app.warning[0].value


def test_empty_project_explains_how_to_send_a_first_trace(
    collector: CollectorProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    at = _app(monkeypatch, collector.url, EMPTY_KEY, tmp_path).run()
    for page in (None, "views/traces.py"):
        if page:
            at.switch_page(page).run()
        assert not at.exception
        text = _texts(at)
        assert "No traces yet" in text
        assert "loopwise demo" in text and "OTEL_EXPORTER_OTLP_ENDPOINT" in text and "loopwise.configure" in text


def test_unreachable_collector_is_an_actionable_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    at = _app(monkeypatch, "http://127.0.0.1:9", DEMO_KEY, tmp_path).run()
    for page in (None, "views/traces.py"):
        if page:
            at.switch_page(page).run()
        assert not at.exception
        assert len(at.error) == 1
        assert "no collector at http://127.0.0.1:9" in at.error[0].value
        assert "loopwise up" in at.error[0].value


def test_wrong_key_is_an_actionable_error_that_hides_the_key(
    collector: CollectorProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wrong = "lw_this_key_is_not_valid_12345"
    at = _app(monkeypatch, collector.url, wrong, tmp_path).run()
    assert not at.exception
    assert "refused the API key" in at.error[0].value and "LOOPWISE_API_KEY" in at.error[0].value
    everything = _texts(at) + "\n".join(str(e.value) for e in at.sidebar.caption)
    assert wrong not in everything
    assert "lw_t…2345" in everything


def test_key_defaults_to_the_credentials_loopwise_up_writes(
    collector: CollectorProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    at = _app(monkeypatch, collector.url, None, tmp_path)
    data_dir = tmp_path / "lw"
    data_dir.mkdir()
    (data_dir / "credentials.json").write_text(json.dumps({"project": "demo", "api_key": DEMO_KEY}))
    monkeypatch.setenv("LOOPWISE_DATA_DIR", str(data_dir))
    at.run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Traces"] == "40"
