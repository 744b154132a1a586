"""Online evaluation through the collector's API, in-process on chDB: evaluator rules CRUD, the
runner's claim/lease/results protocol, exactly-once scores, drift results, the rules file, and
project isolation. The runner itself runs here too, over the same app (real evaluators).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from loopwise import semconv as sc
from loopwise_collector import IngestSettings, Settings, create_app
from loopwise_collector.evaluation._client import EvaluationClient, decode_vectors, encode_vector
from loopwise_collector.evaluation.runner import Runner, RunnerOptions
from loopwise_collector.evaluators import BaseEvaluator, Score, register_evaluator
from loopwise_collector.evaluators._errors import EvaluatorConfigError
from tests.conftest import chdb_dsn
from tests.otlp_builders import llm_trace_spans, span_id_hex, to_protobuf

pytestmark = pytest.mark.integration

DEMO = {"Authorization": "Bearer key-demo"}
OTHER = {"Authorization": "Bearer key-other"}
PROTOBUF = {"Content-Type": "application/x-protobuf"}


class WordCount(BaseEvaluator):
    """A cheap, deterministic evaluator so protocol tests need no model."""

    name = "word_count"
    kind = "metric"
    value_range = (0.0, float("inf"))

    def __init__(self, fail_on: str | None = None) -> None:
        self.fail_on = fail_on

    def config(self) -> dict[str, Any]:
        return {"fail_on": self.fail_on}

    def score_batch(self, items: Any) -> list[Score]:
        out = []
        for item in items:
            if self.fail_on and self.fail_on in item.output:
                raise ValueError("refusing this output")
            out.append(Score(self.name, float(len(item.output.split()))))
        return out


def _broken(**_: Any) -> Any:
    raise EvaluatorConfigError("word_count_broken: checkpoint '/nope.ckpt' does not exist")


register_evaluator("word_count", WordCount, replace=True)
register_evaluator("word_count_broken", _broken, replace=True)


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "rules.json"
    path.write_text(json.dumps({"rules": [
        {"project": "demo", "evaluator": "word_count", "name": "configured_wc", "filter": {"tags": ["never"]}},
    ]}))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def api(chdb_dir: Path, tmp_path_factory: pytest.TempPathFactory, rules_file: Path) -> Iterator[TestClient]:
    s = Settings(
        data_dir=tmp_path_factory.mktemp("eval-app"), store=chdb_dsn(chdb_dir),
        init_projects="demo:key-demo,other:key-other", ingest=IngestSettings(max_delay_ms=20),
        store_connect_timeout_s=5, evaluator_rules_file=rules_file,
    )  # fmt: skip
    with TestClient(create_app(s)) as c:
        yield c


def send(api: TestClient, n: int, *, tag: str, output: str = "the answer is four words") -> list[str]:
    """Ingest ``n`` traces with one LLM span each; returns the LLM spans' ids."""
    ids = []
    for i in range(n):
        spans = llm_trace_spans(
            tags=[tag],
            extra={sc.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": f"{output} {i}"}]}])},
        )  # fmt: skip
        r = api.post("/v1/traces", content=to_protobuf(spans), headers={**DEMO, **PROTOBUF})
        assert r.status_code == 200, r.text
        ids.extend(span_id_hex(s) for s in spans if s.name.startswith("chat"))
    return ids


def create_rule(api: TestClient, headers: dict[str, str] = DEMO, **body: Any) -> dict[str, Any]:
    r = api.post("/api/v1/evaluators", json=body, headers=headers)
    assert r.status_code == 201, r.text
    rule: dict[str, Any] = r.json()
    return rule


def claim(api: TestClient, rule: dict[str, Any], limit: int = 100, lease_s: float = 60, runner: str = "t") -> Any:
    body = {"rule_id": rule["id"], "evaluator_version": "v1", "runner": runner, "limit": limit, "lease_s": lease_s}
    r = api.post("/api/v1/evaluation/claim", json=body, headers=DEMO)
    assert r.status_code == 200, r.text
    return r.json()


def scores_named(api: TestClient, name: str, headers: dict[str, str] = DEMO) -> list[dict[str, Any]]:
    r = api.get("/api/v1/scores", params={"name": name, "limit": 1000}, headers=headers)
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


def wait_for(predicate: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def runner_for(api: TestClient, **options: Any) -> Runner:
    client = EvaluationClient("http://testserver", "key-demo", http=api)
    return Runner(RunnerOptions("http://testserver", ("key-demo",), **options), clients=[client])


# --- rules CRUD ---------------------------------------------------------------------------------


def test_rule_crud_and_validation(api: TestClient) -> None:
    name = f"wc_{uuid.uuid4().hex[:6]}"
    rule = create_rule(api, evaluator="word_count", name=name, filter={"span_types": ["llm"]}, sample_rate=0.5)
    assert rule["source"] == "api" and rule["filter"]["span_types"] == ["llm"] and rule["sample_rate"] == 0.5
    assert api.get(f"/api/v1/evaluators/{rule['id']}", headers=DEMO).json()["name"] == name

    r = api.patch(f"/api/v1/evaluators/{rule['id']}", json={"sample_rate": 1.0, "enabled": False}, headers=DEMO)
    assert r.status_code == 200 and r.json()["sample_rate"] == 1.0 and r.json()["enabled"] is False
    assert r.json()["filter"]["span_types"] == ["llm"]  # untouched fields keep their values

    dup = api.post("/api/v1/evaluators", json={"evaluator": "word_count", "name": name}, headers=DEMO)
    assert dup.status_code == 409 and name in dup.json()["error"]["message"]

    unknown = api.post("/api/v1/evaluators", json={"evaluator": "blue"}, headers=DEMO)
    assert unknown.status_code == 422
    message = unknown.json()["error"]["message"]
    assert "unknown evaluator 'blue'" in message and "bleu" in message and "rouge" in message

    offline_only = api.post("/api/v1/evaluators", json={"evaluator": "rouge"}, headers=DEMO)
    assert offline_only.status_code == 422 and "loopwise eval" in offline_only.json()["error"]["message"]

    bad_rate = api.post("/api/v1/evaluators", json={"evaluator": "word_count", "sample_rate": 2}, headers=DEMO)
    assert bad_rate.status_code == 422

    # Another project sees none of it.
    assert api.get(f"/api/v1/evaluators/{rule['id']}", headers=OTHER).status_code == 404
    assert api.delete(f"/api/v1/evaluators/{rule['id']}", headers=OTHER).status_code == 404
    assert name not in [r["name"] for r in api.get("/api/v1/evaluators", headers=OTHER).json()["data"]]

    assert api.delete(f"/api/v1/evaluators/{rule['id']}", headers=DEMO).status_code == 204
    assert api.get(f"/api/v1/evaluators/{rule['id']}", headers=DEMO).status_code == 404
    assert api.get("/api/v1/evaluators", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_config_rules_are_listed_but_not_editable(api: TestClient) -> None:
    rules = {r["name"]: r for r in api.get("/api/v1/evaluators", headers=DEMO).json()["data"]}
    configured = rules["configured_wc"]
    assert configured["source"] == "config"
    r = api.patch(f"/api/v1/evaluators/{configured['id']}", json={"enabled": False}, headers=DEMO)
    assert r.status_code == 409 and "rules file" in r.json()["error"]["message"]
    assert api.delete(f"/api/v1/evaluators/{configured['id']}", headers=DEMO).status_code == 409


# --- the claim protocol -------------------------------------------------------------------------


def test_claims_are_disjoint_and_filtered_and_leases_expire(api: TestClient) -> None:
    tag = uuid.uuid4().hex[:8]
    ids = send(api, 6, tag=tag)
    rule = create_rule(api, evaluator="word_count", name=f"wc_{tag}", filter={"tags": [tag], "span_types": ["llm"]})
    first = claim(api, rule, limit=4, lease_s=1)
    second = claim(api, rule, limit=4, lease_s=60)
    got_first = {s["span_id"] for s in first["spans"]}
    got_second = {s["span_id"] for s in second["spans"]}
    assert len(got_first) == 4 and len(got_second) == 2 and not got_first & got_second
    assert got_first | got_second == set(ids)  # only the LLM spans of this tag
    assert claim(api, rule)["spans"] == []  # everything is leased
    time.sleep(1.2)
    # The first lease expired without results: its spans come back, the live lease's do not.
    assert {s["span_id"] for s in claim(api, rule)["spans"]} == got_first


def test_results_are_stored_once_per_span_and_version(api: TestClient) -> None:
    tag = uuid.uuid4().hex[:8]
    send(api, 3, tag=tag)
    rule = create_rule(api, evaluator="word_count", name=f"wc_{tag}", filter={"tags": [tag], "span_types": ["llm"]})
    spans = claim(api, rule, lease_s=1)["spans"]
    payload = [{"span_id": s["span_id"], "trace_id": s["trace_id"], "value": 1.0} for s in spans]
    body = {"rule_id": rule["id"], "evaluator_version": "v1", "scores": payload}
    for _ in range(2):  # a re-run after an expired lease posts the same scores again
        assert api.post("/api/v1/evaluation/results", json=body, headers=DEMO).status_code == 201
    stored = wait_for(lambda: len(scores_named(api, rule["name"])) >= 3 and scores_named(api, rule["name"]))
    assert sorted(s["span_id"] for s in stored) == sorted(s["span_id"] for s in spans)
    assert all(s["source"] == "evaluator" and s["evaluator_version"] == "v1" for s in stored)
    assert stored[0]["metadata"]["rule_id"] == rule["id"]
    time.sleep(1.1)
    assert claim(api, rule)["spans"] == []  # scored spans are done even with no live lease
    # A new evaluator version is a new evaluation.
    body = {"rule_id": rule["id"], "evaluator_version": "v2", "runner": "t", "limit": 100, "lease_s": 60}
    assert len(api.post("/api/v1/evaluation/claim", json=body, headers=DEMO).json()["spans"]) == 3


def test_sampling_is_deterministic_per_span(api: TestClient) -> None:
    tag = uuid.uuid4().hex[:8]
    send(api, 40, tag=tag)
    rule = create_rule(
        api, evaluator="word_count", name=f"wc_{tag}", filter={"tags": [tag], "span_types": ["llm"]}, sample_rate=0.5
    )
    first = {s["span_id"] for s in claim(api, rule, lease_s=1)["spans"]}
    assert 8 <= len(first) <= 32  # about half of the 40 LLM spans
    time.sleep(1.1)
    assert {s["span_id"] for s in claim(api, rule)["spans"]} == first  # the same half, every time


def test_claim_refuses_bad_input_and_other_projects(api: TestClient) -> None:
    rule = create_rule(api, evaluator="word_count", name=f"wc_{uuid.uuid4().hex[:6]}")
    body = {"rule_id": rule["id"], "evaluator_version": "v1", "runner": "t", "limit": 0, "lease_s": 60}
    assert api.post("/api/v1/evaluation/claim", json=body, headers=DEMO).status_code == 422
    body["limit"] = 10
    assert api.post("/api/v1/evaluation/claim", json=body, headers=OTHER).status_code == 404
    bad = {"rule_id": rule["id"], "evaluator_version": "v1", "scores": [{"span_id": "xyz", "trace_id": "0" * 32}]}
    assert api.post("/api/v1/evaluation/results", json=bad, headers=DEMO).status_code == 422
    row = {"span_id": "a" * 16, "trace_id": "b" * 32, "start_time_unix_nano": 1, "vector_b64": "not base64!"}
    emb = {"rule_id": rule["id"], "field": "output", "model": "m", "embeddings": [row]}
    assert api.post("/api/v1/evaluation/embeddings", json=emb, headers=DEMO).status_code == 422
    row["vector_b64"] = "AACAPw=="
    not_drift = api.post("/api/v1/evaluation/embeddings", json=emb, headers=DEMO)  # rule runs word_count
    assert not_drift.status_code == 422 and "not embedding_drift" in not_drift.json()["error"]["message"]


def test_embeddings_and_drift_results_round_trip(api: TestClient) -> None:
    name = f"drift_{uuid.uuid4().hex[:6]}"
    rule = create_rule(api, evaluator="embedding_drift", name=name, params={"field": "output"})
    now = time.time_ns()
    rows = [
        {"span_id": f"{i:016x}", "trace_id": f"{i:032x}", "start_time_unix_nano": now - i * 1_000_000_000,
         "text": f"text {i}", "vector_b64": encode_vector(np.full(4, i, dtype=np.float32))}
        for i in range(1, 6)
    ]  # fmt: skip
    body = {"rule_id": rule["id"], "field": "output", "model": "all-MiniLM-L6-v2", "embeddings": rows}
    assert api.post("/api/v1/evaluation/embeddings", json=body, headers=DEMO).status_code == 201
    window = {"rule_id": rule["id"], "from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}
    got = api.get("/api/v1/evaluation/embeddings", params=window, headers=DEMO).json()["data"]
    assert sorted(d["text"] for d in got) == [f"text {i}" for i in range(1, 6)]
    vectors = decode_vectors([d["vector_b64"] for d in got])
    assert sorted(vectors[:, 0].tolist()) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert api.get("/api/v1/evaluation/embeddings", params=window, headers=OTHER).status_code == 404
    # Another drift rule of the same project sees only its own spans' vectors.
    twin = create_rule(api, evaluator="embedding_drift", name=f"{name}_twin", params={"field": "output"})
    assert api.get("/api/v1/evaluation/embeddings", params={**window, "rule_id": twin["id"]},
                   headers=DEMO).json()["data"] == []  # fmt: skip

    due = {"rule_id": rule["id"], "runner": "r1", "every_s": 3600}
    assert api.post("/api/v1/evaluation/drift/claim", json=due, headers=DEMO).json() == {"run": True}
    assert api.post("/api/v1/evaluation/drift/claim", json={**due, "runner": "r2"}, headers=DEMO).json() == {
        "run": False
    }  # another runner holds it
    result = {
        "rule_id": rule["id"], "reference_start": "2026-01-01T00:00:00Z", "reference_end": "2026-01-02T00:00:00Z",
        "current_start": "2026-01-02T00:00:00Z", "current_end": "2026-01-02T01:00:00Z", "drift": True,
        "p_value": 0.001, "n_reference": 500, "n_current": 400, "result": {"methods": {"mmd": {"p_value": 0.001}}},
    }  # fmt: skip
    assert api.post("/api/v1/drift", json=result, headers=DEMO).status_code == 201
    other_rule = create_rule(api, evaluator="word_count", name=f"wc_{uuid.uuid4().hex[:6]}")
    not_drift = api.post("/api/v1/drift", json={**result, "rule_id": other_rule["id"]}, headers=DEMO)
    assert not_drift.status_code == 422 and "not embedding_drift" in not_drift.json()["error"]["message"]
    # Just computed: not due again within the hour, even for the same runner.
    assert api.post("/api/v1/evaluation/drift/claim", json=due, headers=DEMO).json() == {"run": False}
    listed = api.get("/api/v1/drift", params={"monitor": rule["name"]}, headers=DEMO).json()["data"]
    assert len(listed) == 1 and listed[0]["drift"] is True and listed[0]["n_current"] == 400
    assert listed[0]["result"]["methods"]["mmd"]["p_value"] == 0.001
    assert api.get("/api/v1/drift", params={"monitor": rule["name"]}, headers=OTHER).json()["data"] == []


# --- the runner, in-process -----------------------------------------------------------------------


def disable_api_rules(api: TestClient) -> None:
    """Earlier tests' rules would give the in-process runner other work."""
    for rule in api.get("/api/v1/evaluators", headers=DEMO).json()["data"]:
        if rule["source"] == "api" and rule["enabled"]:
            api.patch(f"/api/v1/evaluators/{rule['id']}", json={"enabled": False}, headers=DEMO)


def test_runner_scores_each_span_once_and_reports_bad_rules(api: TestClient) -> None:
    disable_api_rules(api)
    tag = uuid.uuid4().hex[:8]
    ids = send(api, 5, tag=tag)
    send(api, 1, tag=tag, output="poison pill")
    good = create_rule(api, evaluator="word_count", name=f"wc_{tag}", filter={"tags": [tag], "span_types": ["llm"]},
                       params={"fail_on": "poison"})  # fmt: skip
    broken = create_rule(api, evaluator="word_count_broken", name=f"broken_{tag}", filter={"tags": [tag]})
    runner = runner_for(api, batch_size=4, device="cpu")  # word_count takes no device: it must not get one
    stop = threading.Event()
    while runner.run_once(stop):
        pass
    stored = wait_for(lambda: len(scores_named(api, good["name"])) >= 6 and scores_named(api, good["name"]))
    assert Counter(s["span_id"] for s in stored) == Counter(dict.fromkeys({s["span_id"] for s in stored}, 1))
    assert set(ids) < {s["span_id"] for s in stored}
    values = sorted(s["value"] for s in stored if s["value"] is not None)
    assert values == [6.0] * 5  # "the answer is four words N"
    failed = [s for s in stored if s["label"] == "error"]
    assert len(failed) == 1 and "refusing this output" in failed[0]["comment"]
    # A second pass finds nothing: no span is scored twice.
    assert runner.run_once(stop) == 0
    # The broken rule's problem shows on the rule, not as a crash.
    shown = api.get(f"/api/v1/evaluators/{broken['id']}", headers=DEMO).json()
    assert "does not exist" in shown["last_error"]
    assert scores_named(api, broken["name"]) == []
    # A restarted collector forgets rule errors; the next pass reports them again.
    api.post("/api/v1/evaluation/errors", json={"rule_id": broken["id"], "error": None}, headers=DEMO)
    assert api.get(f"/api/v1/evaluators/{broken['id']}", headers=DEMO).json()["last_error"] is None
    runner.run_once(stop)
    assert "does not exist" in api.get(f"/api/v1/evaluators/{broken['id']}", headers=DEMO).json()["last_error"]


def test_human_feedback_is_summarised_not_run_online(api: TestClient) -> None:
    refused = api.post("/api/v1/evaluators", json={"evaluator": "human_feedback"}, headers=DEMO)
    assert refused.status_code == 422 and "/api/v1/feedback/summary" in refused.json()["error"]["message"]

    model = f"model-{uuid.uuid4().hex[:6]}"
    traces = []
    for i, feedback in enumerate(({"name": "thumbs", "value": 1}, {"name": "thumbs", "value": 0},
                                  {"name": "rating", "value": 5, "comment": "spot on"})):  # fmt: skip
        spans = llm_trace_spans(model=model, variant="b" if i else "a")
        assert api.post("/v1/traces", content=to_protobuf(spans), headers={**DEMO, **PROTOBUF}).status_code == 200
        trace_id = format(spans[0].context.trace_id, "032x")
        traces.append(trace_id)
        body = {"trace_id": trace_id, "source": "human", **feedback}
        assert api.post("/api/v1/scores", json=body, headers=DEMO).status_code == 201

    def summary(group_by: str) -> dict[str | None, dict[str, Any]]:
        r = api.get("/api/v1/feedback/summary", params={"group_by": group_by}, headers=DEMO)
        assert r.status_code == 200, r.text
        return {g["group"]: g for g in r.json()["data"]}

    by_model = wait_for(lambda: (s := summary("model")).get(model, {}).get("n") == 3 and s)
    assert by_model[model]["thumbs_up"] == 1 and by_model[model]["thumbs_down"] == 1
    assert by_model[model]["rating_mean"] == 5.0 and by_model[model]["comments"] == 1
    assert by_model[model]["mean"] == pytest.approx((1 + 0 + 1) / 3)
    r = api.get("/api/v1/feedback/summary", params={"group_by": "model"}, headers=OTHER)
    assert model not in {g["group"] for g in r.json()["data"]}
    assert api.get("/api/v1/feedback/summary", params={"group_by": "colour"}, headers=DEMO).status_code == 422


COOKING = ["Simmer the {} sauce for {} minutes and season it with {}.",
           "Roast the {} with {} until golden, about {} min.",
           "Whisk the {} into the {} and let it rest {} minutes."]  # fmt: skip
OUTAGE = ["The {} region had a network outage lasting {} minutes; {} requests failed.",
          "Billing for {} was charged twice after the {} incident; refund ticket {}.",
          "Our {} API returned 503 errors for {} minutes after a {} deploy."]  # fmt: skip
WORDS = ["tomato", "garlic", "basil", "eu-west", "us-east", "payments", "onion", "checkout", "lemon", "auth"]


def test_runner_computes_drift_on_schedule(api: TestClient) -> None:
    disable_api_rules(api)
    tag = uuid.uuid4().hex[:8]
    now = time.time_ns()
    for i in range(80):
        old = i < 40  # the reference window: half an hour ago, cooking; the current one: outages
        text = (COOKING if old else OUTAGE)[i % 3].format(WORDS[i % 10], 5 + i, WORDS[(i * 3) % 10])
        spans = llm_trace_spans(
            tags=[tag], start_ns=now - (30 * 60 * 10**9 if old else 60 * 10**9) + i * 10**6,
            extra={sc.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": text}]}])},
        )  # fmt: skip
        assert api.post("/v1/traces", content=to_protobuf(spans), headers={**DEMO, **PROTOBUF}).status_code == 200
    params = {"window_minutes": 10, "reference_minutes": 60, "every_minutes": 60, "min_samples": 20}
    rule = create_rule(api, evaluator="embedding_drift", name=f"drift_{tag}", params=params,
                       filter={"tags": [tag], "span_types": ["llm"]})  # fmt: skip
    runner = runner_for(api, batch_size=100)
    stop = threading.Event()
    wait_for(lambda: runner.run_once(stop) == 0 and api.get(
        "/api/v1/drift", params={"monitor": rule["name"]}, headers=DEMO).json()["data"], timeout=60)  # fmt: skip
    checks = api.get("/api/v1/drift", params={"monitor": rule["name"]}, headers=DEMO).json()["data"]
    assert len(checks) == 1, checks  # every_minutes=60: one check, however many passes
    check = checks[0]
    assert check["drift"] is True and check["p_value"] < 0.01
    assert (check["n_reference"], check["n_current"]) == (40, 40)
    assert check["field"] == "output" and check["model"] == "all-MiniLM-L6-v2"
    examples = [e["text"] for e in check["result"]["examples"]]
    assert examples and all(any(w in t for w in ("outage", "Billing", "API")) for t in examples)
    assert set(check["result"]["methods"]) == {"mmd", "ks", "classifier"}
    # Every sampled span was embedded once: nothing left to claim.
    body = {"rule_id": rule["id"], "evaluator_version": "x", "runner": "t", "limit": 100, "lease_s": 5}
    assert api.post("/api/v1/evaluation/claim", json=body, headers=DEMO).json()["spans"] == []
