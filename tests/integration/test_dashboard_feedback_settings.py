"""The Feedback queue and Settings pages under ``streamlit.testing``, against a real collector with ``loopwise demo``
data: ratings become human scores the API returns, and rule edits reach the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from loopwise_dashboard import APP_PATH
from tests.support.collector_process import CollectorProcess
from tests.support.dashboard_data import DEMO_KEY, EMPTY_KEY, api, send_demo

pytestmark = pytest.mark.integration

TIMEOUT = 30
FEEDBACK_PAGE = "views/feedback.py"
SETTINGS_PAGE = "views/settings.py"


def _call(collector: CollectorProcess, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    resp = httpx.request(
        method, f"{collector.url}{path}", json=body, headers={"Authorization": f"Bearer {DEMO_KEY}"}, timeout=30
    )
    assert resp.status_code < 400, f"{method} {path} answered {resp.status_code}: {resp.text}"
    return resp.json() if resp.content else None


def _rules(collector: CollectorProcess) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in api(collector, "/api/v1/evaluators")["data"]}


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    tmp = tmp_path_factory.mktemp("dashboard-fs")
    # One rule owned by the collector's rules file, which the API (and so the page) must treat as read-only.
    rules_file = tmp / "rules.json"
    cfg = {"project": "demo", "evaluator": "toxicity", "name": "cfg_tox", "sample_rate": 0}
    rules_file.write_text(json.dumps({"rules": [cfg]}))
    env = {
        "LOOPWISE_INIT_PROJECTS": f"demo:{DEMO_KEY},empty:{EMPTY_KEY}",
        "LOOPWISE_EVALUATOR_RULES_FILE": str(rules_file),
    }
    proc = CollectorProcess(tmp / "data", env=env)
    proc.start()
    try:
        send_demo(proc, tmp, traces=30)
        yield proc
    finally:
        proc.stop()


def _app(monkeypatch: pytest.MonkeyPatch, endpoint: str, tmp_path: Path) -> AppTest:
    for name in ("LOOPWISE_ENDPOINT", "LOOPWISE_API_KEY", "LOOPWISE_DATA_DIR", "LOOPWISE_DASHBOARD_CACHE_TTL_S"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOOPWISE_ENDPOINT", endpoint)
    monkeypatch.setenv("LOOPWISE_API_KEY", DEMO_KEY)
    monkeypatch.setenv("LOOPWISE_DATA_DIR", str(tmp_path / "no-credentials"))
    return AppTest.from_file(str(APP_PATH), default_timeout=TIMEOUT)


@pytest.fixture
def app(collector: CollectorProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AppTest:
    return _app(monkeypatch, collector.url, tmp_path)


def _page(at: AppTest, page: str) -> AppTest:
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def test_queue_shows_low_scoring_unreviewed_traces_and_thumbs_up_advances(
    app: AppTest, collector: CollectorProcess
) -> None:
    # An evaluator rule (sample rate 0: no runner would pick it up) and its scores on three traces.
    _call(collector, "POST", "/api/v1/evaluators", {"evaluator": "hallucination", "name": "qa_check", "sample_rate": 0})
    traces = api(collector, "/api/v1/traces", limit=50)["data"]
    reviewed = {s["trace_id"] for s in api(collector, "/api/v1/scores", source="human", limit=1000)["data"]}
    fresh = [t for t in traces if t["trace_id"] not in reviewed]
    worst, second, already = fresh[0], fresh[1], fresh[2]
    for trace, value in ((worst, 0.05), (already, 0.1), (second, 0.2)):
        score = {"trace_id": trace["trace_id"], "name": "qa_check", "value": value, "source": "evaluator"}
        _call(collector, "POST", "/api/v1/scores", score)
    # A person already looked at this one: it stays out of the queue even though it scores low.
    _call(collector, "POST", "/api/v1/scores", {"trace_id": already["trace_id"], "name": "thumbs", "value": 0,
                                                 "source": "human"})  # fmt: skip

    at = _page(app, FEEDBACK_PAGE)
    at.selectbox(key="lw_fq_source").set_value("Lowest qa_check").run()
    assert not at.exception
    queue = [i.trace_id for i in at.session_state["lw_fq_items"]]
    assert queue[:2] == [worst["trace_id"], second["trace_id"]]
    assert already["trace_id"] not in queue
    assert not set(queue) & reviewed
    assert at.subheader[0].value == f"1. {worst['name']}"
    assert worst["trace_id"] in at.caption[1].value and "low qa_check (0.050)" in at.caption[1].value
    assert any(m.name == "assistant" for m in at.chat_message)  # the LLM call's messages, as chat
    assert f"0 of {len(queue)} reviewed" in at.get("progress")[0].proto.text

    at.text_input(key=f"lw_fq_comment_{worst['trace_id']}").input("made up a refund window")
    at.button(key="lw_fq_up").click().run()
    assert not at.exception
    stored = api(collector, "/api/v1/scores", trace_id=worst["trace_id"], source="human")["data"]
    assert [(s["name"], s["value"], s["label"], s["comment"]) for s in stored] == [
        ("thumbs", 1.0, "up", "made up a refund window")
    ]
    assert "Thumbs up recorded" in at.success[0].value
    assert at.subheader[0].value == f"2. {second['name']}"
    assert f"1 of {len(queue)} reviewed" in at.get("progress")[0].proto.text

    at.button(key="lw_fq_skip").click().run()
    assert at.subheader[0].value.startswith("3. ")
    assert f"1 of {len(queue)} reviewed · 1 skipped" in at.get("progress")[0].proto.text
    # The summary below reads GET /api/v1/feedback/summary.
    summary = api(collector, "/api/v1/feedback/summary", group_by="model")["data"]
    assert sorted(at.dataframe[0].value["thumbs_up"]) == sorted(g["thumbs_up"] for g in summary)

    # A fresh queue leaves out the trace just rated.
    at.button(key="lw_fq_reload").click().run()
    assert worst["trace_id"] not in [i.trace_id for i in at.session_state["lw_fq_items"]]


def test_errored_queue_lists_only_errored_unreviewed_traces(app: AppTest, collector: CollectorProcess) -> None:
    at = _page(app, FEEDBACK_PAGE)
    at.selectbox(key="lw_fq_source").set_value("Errored traces").run()
    assert not at.exception
    errored = {t["trace_id"] for t in api(collector, "/api/v1/traces", has_error="true", limit=20)["data"]}
    reviewed = {s["trace_id"] for s in api(collector, "/api/v1/scores", source="human", limit=1000)["data"]}
    items = at.session_state["lw_fq_items"]
    assert {i.trace_id for i in items if i.reason == "error"} == errored - reviewed
    assert not {i.trace_id for i in items} & reviewed


def test_settings_lists_toggles_creates_and_deletes_rules(app: AppTest, collector: CollectorProcess) -> None:
    body = {"evaluator": "toxicity", "name": "tox_api", "sample_rate": 0, "filter": {"span_types": ["llm"]}}
    made = _call(collector, "POST", "/api/v1/evaluators", body)
    at = _page(app, SETTINGS_PAGE)
    assert f"`{collector.url}`" in at.markdown[0].value
    assert "lw_d…6789" in at.markdown[1].value and DEMO_KEY not in "".join(m.value for m in at.markdown)
    assert "`ok`" in at.markdown[2].value
    table = at.dataframe[0].value
    assert list(table["name"]) == list(_rules(collector))  # sorted by name, like the API
    row = table[table["name"] == "tox_api"].iloc[0]
    assert row["filter"] == "span_types=llm" and bool(row["enabled"]) is True

    # A rule of the collector's rules file is shown, but offers no controls.
    assert table[table["name"] == "cfg_tox"].iloc[0]["source"] == "config"
    at.selectbox(key="lw_rule_pick").set_value("cfg_tox").run()
    assert "rules file" in at.info[0].value
    assert not any(t.key and t.key.startswith("lw_rule_enabled_") for t in at.toggle)
    assert not any(b.key == "lw_rule_delete" for b in at.button)

    # Toggling "Enabled" PATCHes the rule at once.
    at.selectbox(key="lw_rule_pick").set_value("tox_api").run()
    at.toggle(key=f"lw_rule_enabled_{made['id']}").set_value(False).run()
    assert not at.exception
    assert _rules(collector)["tox_api"]["enabled"] is False
    assert "disabled" in at.success[0].value
    at.number_input(key=f"lw_rule_rate_{made['id']}").set_value(0.25).run()
    at.button(key="lw_rule_save_rate").click().run()
    assert _rules(collector)["tox_api"]["sample_rate"] == 0.25

    # The create form: bad JSON is caught here; a good rule reaches the API; a taken name shows the 409 message.
    at.text_input(key="lw_new_name").input("form_rule")
    at.text_area(key="lw_new_params").input("{threshold: 0.7}")
    at.button(key="lw_new_submit").click().run()
    assert "not valid JSON" in at.error[0].value
    assert "form_rule" not in _rules(collector)
    at.selectbox(key="lw_new_evaluator").set_value("hallucination")
    at.text_area(key="lw_new_params").input('{"threshold": 0.7}')
    at.multiselect(key="lw_new_span_types").set_value(["llm"])
    at.text_input(key="lw_new_tags").input("demo, beta")
    at.number_input(key="lw_new_rate").set_value(0.0)
    at.checkbox(key="lw_new_enabled").uncheck()
    at.button(key="lw_new_submit").click().run()
    assert not at.exception
    rule = _rules(collector)["form_rule"]
    assert (rule["evaluator"], rule["params"], rule["sample_rate"], rule["enabled"]) == (
        "hallucination", {"threshold": 0.7}, 0.0, False
    )  # fmt: skip
    assert rule["filter"]["span_types"] == ["llm"] and rule["filter"]["tags"] == ["demo", "beta"]
    assert "form_rule" in list(at.dataframe[0].value["name"])
    at.button(key="lw_new_submit").click().run()
    assert "a rule named 'form_rule' exists" in at.error[0].value

    # An unknown plugin name shows the 422 message, which lists the known evaluators.
    at.text_input(key="lw_new_name").input("plug")
    at.text_input(key="lw_new_plugin").input("no_such_evaluator")
    at.button(key="lw_new_submit").click().run()
    assert "unknown evaluator 'no_such_evaluator'" in at.error[0].value and "toxicity" in at.error[0].value

    # Delete asks first.
    at.selectbox(key="lw_rule_pick").set_value("form_rule").run()
    at.button(key="lw_rule_delete").click().run()
    assert "Delete **form_rule**?" in at.warning[0].value
    assert "form_rule" in _rules(collector)
    at.button(key="lw_rule_delete_yes").click().run()
    assert not at.exception
    assert "form_rule" not in _rules(collector)
    assert "deleted" in at.success[0].value
    assert "form_rule" not in list(at.dataframe[0].value["name"])


def test_unreachable_collector_is_an_actionable_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    at = _app(monkeypatch, "http://127.0.0.1:9", tmp_path)
    for page in (FEEDBACK_PAGE, SETTINGS_PAGE):
        _page(at, page)
        assert len(at.error) == 1
        assert "no collector at http://127.0.0.1:9" in at.error[0].value and "loopwise up" in at.error[0].value
    assert "`unreachable`" in at.markdown[2].value  # Settings still shows where it looked, and the health
