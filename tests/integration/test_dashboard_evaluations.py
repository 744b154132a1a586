"""The Evaluations and Drift pages under ``streamlit.testing``, against a real collector with real data.

The collector holds ``loopwise demo`` traces, evaluator-style scores posted on them with known values, and a
drift rule with stored embeddings of two windows (two clusters) and a check computed by the real detector.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from loopwise_collector.evaluation._client import encode_vector
from loopwise_collector.evaluators.embedding_drift import detect_drift
from loopwise_dashboard import APP_PATH
from loopwise_dashboard._format import fmt_int
from tests.support.collector_process import CollectorProcess
from tests.support.dashboard_data import DEMO_KEY, EMPTY_KEY, api, post, send_demo, start_collector

pytestmark = pytest.mark.integration

TIMEOUT = 30
SCORE = "faithfulness"
DRIFT_RULE = "answer_drift"
QUIET_RULE = "quiet_drift"
N_WINDOW = 60
EVALUATIONS = "views/evaluations.py"
DRIFT = "views/drift.py"


def _post_scores(collector: CollectorProcess) -> None:
    traces = api(collector, "/api/v1/traces", limit=50)["data"]
    for i, t in enumerate(traces):
        body: dict[str, Any] = {"trace_id": t["trace_id"], "name": SCORE, "source": "evaluator"}
        if i < 3:  # an evaluator that failed on the item
            body.update(value=None, label="error", comment="judge timed out")
        else:
            body.update(value=round(0.05 + (i % 10) / 10, 2), comment=f"claim check {i}")
        post(collector, "/api/v1/scores", body)


def _window_rows(start: datetime, texts: list[str], center: float, seed: int, offset: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    base = int(start.timestamp() * 1e9)
    return [
        {"span_id": f"{offset + i:016x}", "trace_id": f"{offset + i:032x}",
         "start_time_unix_nano": base + i * 30_000_000_000, "text": text,
         "vector_b64": encode_vector((center + rng.normal(0, 0.3, 8)).astype(np.float32))}
        for i, text in enumerate(texts)
    ]  # fmt: skip


def _post_drift(collector: CollectorProcess) -> None:
    rule = post(collector, "/api/v1/evaluators", {"evaluator": "embedding_drift", "name": DRIFT_RULE,
                                                   "params": {"field": "output", "alpha": 0.01}})  # fmt: skip
    post(collector, "/api/v1/evaluators", {"evaluator": "embedding_drift", "name": QUIET_RULE})
    now = datetime.now(UTC).replace(microsecond=0)
    ref_start, ref_end = now - timedelta(hours=3), now - timedelta(hours=2)
    cur_start, cur_end = now - timedelta(hours=1), now
    ref_texts = [f"how do I bake bread number {i}" for i in range(N_WINDOW)]
    cur_texts = [f"my router keeps dropping, case {i}" for i in range(N_WINDOW)]
    ref = _window_rows(ref_start, ref_texts, 0.0, 1, 1)
    cur = _window_rows(cur_start, cur_texts, 1.5, 2, 10_000)
    post(collector, "/api/v1/evaluation/embeddings",
         {"rule_id": rule["id"], "field": "output", "model": "all-MiniLM-L6-v2", "embeddings": ref + cur})  # fmt: skip
    vectors = [np.frombuffer(base64.b64decode(r["vector_b64"]), dtype="<f4") for r in ref + cur]
    result = detect_drift(np.stack(vectors[:N_WINDOW]), np.stack(vectors[N_WINDOW:]), reference_texts=ref_texts,
                          current_texts=cur_texts, permutations=200, alpha=0.05).to_dict()  # fmt: skip
    post(collector, "/api/v1/drift", {
        "rule_id": rule["id"], "reference_start": ref_start.isoformat(), "reference_end": ref_end.isoformat(),
        "current_start": cur_start.isoformat(), "current_end": cur_end.isoformat(), "drift": result["drift"],
        "p_value": result["p_value"], "n_reference": N_WINDOW, "n_current": N_WINDOW, "result": result,
    })  # fmt: skip


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    tmp = tmp_path_factory.mktemp("dashboard-evaluations")
    proc = start_collector(tmp / "data")
    try:
        send_demo(proc, tmp, traces=20)
        _post_scores(proc)
        _post_drift(proc)
        yield proc
    finally:
        proc.stop()


def _app(monkeypatch: pytest.MonkeyPatch, endpoint: str, key: str, tmp_path: Path) -> AppTest:
    for name in ("LOOPWISE_ENDPOINT", "LOOPWISE_API_KEY", "LOOPWISE_DATA_DIR", "LOOPWISE_DASHBOARD_CACHE_TTL_S"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOOPWISE_ENDPOINT", endpoint)
    monkeypatch.setenv("LOOPWISE_API_KEY", key)
    monkeypatch.setenv("LOOPWISE_DATA_DIR", str(tmp_path / "no-credentials"))
    return AppTest.from_file(str(APP_PATH), default_timeout=TIMEOUT)


def _open(monkeypatch: pytest.MonkeyPatch, collector: CollectorProcess, tmp_path: Path, page: str,
          key: str = DEMO_KEY) -> AppTest:  # fmt: skip
    at = _app(monkeypatch, collector.url, key, tmp_path).run()
    at.switch_page(page).run()
    assert not at.exception
    return at


def _texts(at: AppTest) -> str:
    parts = [e.value for e in (*at.markdown, *at.caption, *at.info, *at.error, *at.warning, *at.success, *at.code)]
    parts += [f"{m.label}={m.value}" for m in at.metric]
    return "\n".join(str(p) for p in parts)


def _specs(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]


def _title(chart: Any) -> str:
    title = json.loads(chart.proto.spec).get("title", "")
    return str(title.get("text", "") if isinstance(title, dict) else title)


def _rows(chart: Any) -> pa.Table:
    """The rows Streamlit ships with a chart, as Arrow next to the spec."""
    proto = chart.proto
    return pa.ipc.open_stream(proto.datasets[0].data.data if proto.datasets else proto.data.data).read_all()


def test_evaluations_show_the_api_statistics_and_the_worst_traces(
    collector: CollectorProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    at = _open(monkeypatch, collector, tmp_path, EVALUATIONS)
    names = [r["name"] for r in api(collector, "/api/v1/scores/summary")["data"]]
    assert at.selectbox(key="lw_ev_name").options == names and SCORE in names
    at.selectbox(key="lw_ev_name").set_value(SCORE).run()
    assert not at.exception
    row = api(collector, "/api/v1/scores/summary", name=SCORE)["data"][0]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Scores"] == fmt_int(row["count"]) == "20"
    assert metrics["Errors"] == "3" == str(row["errors"])
    assert metrics["Mean"] == f"{row['mean']:.3g}"
    assert metrics["p10 to p90"] == f"{row['p10']:.3g} to {row['p90']:.3g}"
    # Histogram, trend, per model (per variant only when the demo tags variants).
    marks = [s.get("mark", {}).get("type") or s["layer"][0]["mark"]["type"] for s in _specs(at)]
    assert marks[0] == "bar" and "area" in marks and "rule" in marks
    hist = at.dataframe[0].value  # the all-evaluators table
    assert dict(zip(hist["name"], hist["count"], strict=True))[SCORE] == row["count"]
    per_model = api(collector, "/api/v1/scores/summary", name=SCORE, group_by="model")["data"]
    charts = {_title(c): c for c in at.get("vega_lite_chart")}
    shown = _rows(charts[f"{SCORE} per model"]).to_pylist()
    assert {r["group"]: r["mean"] for r in shown} == pytest.approx(
        {g["group"] or "(not placed)": g["mean"] for g in per_model if g["n"]}
    )
    trend = _rows(charts[f"{SCORE} over time"]).to_pylist()
    assert sum(r["n"] for r in trend) == row["n"] and sum(r["errors"] for r in trend) == row["errors"]

    worst = api(collector, "/api/v1/scores/worst", name=SCORE)["data"]
    table = at.dataframe[1].value
    assert list(table["trace_id"]) == [w["trace_id"] for w in worst]
    assert list(table["value"]) == [w["value"] for w in worst] and worst[0]["value"] == 0.05
    at.button(key="lw_ev_open_trace").click().run()
    assert not at.exception
    assert at.title[0].value == "Trace detail"
    assert worst[0]["trace_id"] in str(at.query_params["trace_id"])


def test_evaluations_source_filter_and_empty_state(
    collector: CollectorProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    at = _open(monkeypatch, collector, tmp_path, EVALUATIONS)
    at.selectbox(key="lw_ev_source").set_value("offline").run()
    assert not at.exception
    assert "No offline scores recorded" in _texts(at)

    empty = _open(monkeypatch, collector, tmp_path, EVALUATIONS, key=EMPTY_KEY)
    text = _texts(empty)
    assert "No scores yet" in text and "hallucination" in text and "output_drift" in text
    assert "/api/v1/evaluators" in text and "docs/evaluators.md" in text


def test_drift_shows_the_check_its_examples_and_a_pca_view(
    collector: CollectorProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    at = _open(monkeypatch, collector, tmp_path, DRIFT)
    assert at.selectbox(key="lw_drift_rule").value == DRIFT_RULE
    check = api(collector, "/api/v1/drift", monitor=DRIFT_RULE)["data"][0]
    assert check["drift"] is True
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Latest verdict"] == "Drift"
    p = check["p_value"]
    assert metrics["p-value"] == (f"{p:.3g}" if p >= 1e-3 else f"{p:.2e}")
    assert metrics["Reference samples"] == metrics["Current samples"] == str(N_WINDOW)
    frames = [d.value for d in at.dataframe]
    methods = frames[0]
    assert list(methods["method"]) == list(check["result"]["methods"])
    assert methods["auc"].iloc[-1] == pytest.approx(check["result"]["methods"]["classifier"]["auc"])
    new = frames[2]
    gone = frames[3]
    assert list(new["text"]) == [e["text"] for e in check["result"]["examples"]]
    assert all("router" in t for t in new["text"]) and all("bread" in t for t in gone["text"])

    timeline, pca = _specs(at)
    assert timeline["layer"][0]["encoding"]["y"]["scale"]["type"] == "log"
    assert pca["mark"]["type"] == "circle"
    assert "PC1" in pca["encoding"]["x"]["title"]
    # One point per stored embedding of each window.
    points = _rows(at.get("vega_lite_chart")[-1])
    assert points.num_rows == 2 * N_WINDOW
    assert sorted(set(points.column("window").to_pylist())) == ["current", "reference"]


def test_drift_empty_states(collector: CollectorProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    at = _open(monkeypatch, collector, tmp_path, DRIFT)
    at.selectbox(key="lw_drift_rule").set_value(QUIET_RULE).run()
    assert not at.exception
    text = _texts(at)
    assert "No checks yet" in text and "every_minutes" in text and "min_samples (30)" in text

    empty = _open(monkeypatch, collector, tmp_path, DRIFT, key=EMPTY_KEY)
    text = _texts(empty)
    assert "No drift rule" in text and "embedding_drift" in text and "/api/v1/evaluators" in text
