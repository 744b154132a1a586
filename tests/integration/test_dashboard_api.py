"""The collector API the dashboard's Traces and Evaluations pages read: free-text search and score-range
filters on the trace list, ``/api/v1/scores/summary`` and ``/api/v1/scores/worst``, on each backend.

Tests share one app per backend and stay independent through per-test tags and score names. Expected
statistics are computed here in Python from the values posted, with ClickHouse's
``quantileExactInclusive`` arithmetic; values are multiples of 1/8, so sums and means are exact.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from loopwise import semconv as sc
from tests.conftest import BACKENDS, chdb_dsn, http_dsn
from tests.integration.test_collector_api import (
    DEMO,
    OTHER,
    assert_error,
    changes_nothing,
    ingest,
    post_score,
    running,
    settings,
    traces,
)
from tests.otlp_builders import llm_trace_spans, span_id_hex

pytestmark = pytest.mark.integration

SECOND = 1_000_000_000


@pytest.fixture(scope="module", params=BACKENDS)
def client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A collector per backend: embedded chDB and a ClickHouse server over HTTP."""
    if request.param == "chdb":
        dsn = chdb_dsn(request.getfixturevalue("chdb_dir"))
    else:
        dsn = http_dsn(request.getfixturevalue("clickhouse_http"))
    with running(settings(tmp_path_factory.mktemp(f"dash-{request.param}"), dsn)) as c:
        yield c


def ids(c: TestClient, headers: dict[str, str] = DEMO, **params: Any) -> list[str]:
    return [t["trace_id"] for t in traces(c, headers, **params)]


def all_pages(c: TestClient, **params: Any) -> list[str]:
    """Trace ids over every page, one trace per page, following next_cursor."""
    out: list[str] = []
    cursor = None
    while True:
        query = {**params, "limit": 1} | ({"cursor": cursor} if cursor else {})
        body = c.get("/api/v1/traces", params=query, headers=DEMO).json()
        out += [t["trace_id"] for t in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return out


def messages(role: str, text: str) -> str:
    # ensure_ascii=False: search sees the stored text, and "\u00dc" would not be found as "Ü".
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}], ensure_ascii=False)


def quantile_exact_inclusive(values: list[float], level: float) -> float:
    """ClickHouse's quantileExactInclusive: linear interpolation at position level * (n - 1)."""
    xs = sorted(values)
    h = level * (len(xs) - 1) + 1
    n = int(h)
    if n >= len(xs):
        return xs[-1]
    if n < 1:
        return xs[0]
    return xs[n - 1] + (h - n) * (xs[n] - xs[n - 1])


def expected_stats(rows: list[tuple[float | None, str]], lo: float, hi: float) -> dict[str, Any]:
    """What the summary should say for (value, label) rows, with the name's range [lo, hi]."""
    values = [v for v, _ in rows if v is not None]
    counts = [0] * 10
    for v in values:
        counts[min(9, math.floor((v - lo) / (hi - lo) * 10)) if hi > lo else 0] += 1
    stats: dict[str, Any] = {
        "count": len(rows),
        "n": len(values),
        "errors": sum(1 for v, label in rows if v is None and label == "error"),
        "histogram": {"edges": [lo + (hi - lo) * i / 10 for i in range(10)] + [hi], "counts": counts},
    }
    if values:
        stats |= {
            "mean": sum(values) / len(values),
            "p10": quantile_exact_inclusive(values, 0.1),
            "p50": quantile_exact_inclusive(values, 0.5),
            "p90": quantile_exact_inclusive(values, 0.9),
            "min": min(values),
            "max": max(values),
        }
    else:
        stats |= dict.fromkeys(("mean", "p10", "p50", "p90", "min", "max"))
    return stats


def summary(c: TestClient, headers: dict[str, str] = DEMO, **params: Any) -> dict[str, Any]:
    r = c.get("/api/v1/scores/summary", params=params, headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


# --- free-text search ---------------------------------------------------------------------------


TRICKY = "it's 100% \\done\\ _not_ \"quoted\" ' OR 1=1 --"


def test_free_text_search(client: TestClient) -> None:
    token = uuid.uuid4().hex[:8]
    tag = f"q-{token}"
    start = time.time_ns() - 60 * SECOND

    def trace(i: int, **kw: Any) -> str:
        return ingest(client, llm_trace_spans(tags=[tag], start_ns=start + i * SECOND, **kw))

    in_input = trace(0, extra={sc.GEN_AI_INPUT_MESSAGES: messages("user", f"Where is ORDER-{token}?")})
    in_output = trace(1, extra={sc.GEN_AI_OUTPUT_MESSAGES: messages("assistant", f"order-{token} ships")})
    in_name = trace(2, model=f"Model-Order-{token}")  # the LLM span is named "chat <model>"
    # Plain text, stored as sent: inside message JSON, quotes and backslashes would be escaped.
    tricky = trace(3, extra={sc.GEN_AI_INPUT_MESSAGES: f"{TRICKY} ÜBER-{token}"})
    plain = trace(4)

    assert ids(client, tag=tag) == [plain, tricky, in_name, in_output, in_input]
    assert ids(client, tag=tag, q=f"order-{token}") == [in_name, in_output, in_input]  # any case, any field
    assert ids(client, tag=tag, q=f"ORDER-{token.upper()}") == [in_name, in_output, in_input]
    assert ids(client, q=f"model-order-{token}") == [in_name]  # no other filter needed
    assert ids(client, tag=tag, q=f"über-{token}") == [tricky]  # case folding beyond ASCII
    # Quotes, %, _, backslashes and SQL are searched literally: they are a parameter, not SQL or a pattern.
    assert ids(client, tag=tag, q=TRICKY) == [tricky]
    assert ids(client, tag=tag, q="100%") == [tricky]
    assert ids(client, tag=tag, q="%") == [tricky]
    assert ids(client, tag=tag, q="_not_") == [tricky]
    assert ids(client, tag=tag, q="\\done\\") == [tricky]
    assert ids(client, tag=tag, q="' OR 1=1 --") == [tricky]
    assert ids(client, q=f"nothing-{token}' OR '1'='1") == []
    assert ids(client, tag=tag, q="It ships today.") == [plain, tricky, in_name, in_input]  # the default output
    # With other filters, a time window and pagination.
    assert ids(client, tag=tag, q=f"order-{token}", model=f"Model-Order-{token}") == [in_name]
    assert ids(client, tag=tag, q=f"order-{token}", has_error="true") == []
    assert ids(client, tag=tag, q=f"order-{token}", name="agent") == [in_name, in_output, in_input]
    window: dict[str, Any] = {"from": datetime.fromtimestamp((start + SECOND // 2) / 1e9, UTC).isoformat()}
    assert ids(client, tag=tag, q=f"order-{token}", **window) == [in_name, in_output]
    assert all_pages(client, tag=tag, q=f"order-{token}") == [in_name, in_output, in_input]
    assert all_pages(client, q=f"order-{token}") == [in_name, in_output, in_input]
    # Another project finds nothing.
    assert ids(client, OTHER, q=f"order-{token}") == []


# --- score filters ------------------------------------------------------------------------------


def test_score_range_filters(client: TestClient) -> None:
    token = uuid.uuid4().hex[:8]
    tag, name = f"s-{token}", f"quality-{token}"
    mid = ingest(client, llm_trace_spans(tags=[tag], extra={sc.GEN_AI_INPUT_MESSAGES: messages("user", "refund")}))
    high = ingest(client, llm_trace_spans(tags=[tag]))
    unscored = ingest(client, llm_trace_spans(tags=[tag]))
    label_only = ingest(client, llm_trace_spans(tags=[tag]))
    for trace_id, value in ((mid, 0.25), (mid, 0.75), (high, 1.0)):
        assert post_score(client, trace_id=trace_id, name=name, value=value).status_code == 201
    assert post_score(client, trace_id=label_only, name=name, label="error", source="evaluator").status_code == 201
    assert post_score(client, trace_id=unscored, name=f"other-{token}", value=0.5).status_code == 201

    assert [t["scores"][name] for t in traces(client, tag=tag, score_name=name)] == [1.0, 0.5]
    assert set(ids(client, tag=tag)) == {mid, high, unscored, label_only}
    assert set(ids(client, score_name=name)) == {mid, high}  # a trace without a valued score never matches
    assert set(ids(client, tag=tag, score_name=name, score_min=0.5)) == {mid, high}  # bounds are inclusive
    assert ids(client, tag=tag, score_name=name, score_max=0.5) == [mid]  # the mean, not any one score
    assert ids(client, tag=tag, score_name=name, score_min=0.6, score_max=1) == [high]
    assert ids(client, tag=tag, score_name=name, score_min=0.51, score_max=0.99) == []
    assert ids(client, tag=tag, score_name=name, score_min=-5, score_max=5, q="REFUND") == [mid]
    assert ids(client, tag=tag, score_name=f"{name}' OR 1=1 --") == []
    assert sorted(all_pages(client, tag=tag, score_name=name, score_min=0)) == sorted([mid, high])
    assert ids(client, OTHER, score_name=name) == []


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        pytest.param({"score_min": 0.5}, "score_name", id="min-without-name"),
        pytest.param({"score_max": 0.5}, "score_name", id="max-without-name"),
        pytest.param({"score_name": "x", "score_min": 2, "score_max": 1}, "score_min", id="min-above-max"),
        pytest.param({"score_name": "x", "score_min": "nan"}, "score_min", id="min-nan"),
        pytest.param({"score_name": "x", "score_max": "abc"}, "score_max", id="max-not-a-number"),
        pytest.param({"q": "x" * 201}, "q", id="q-too-long"),
        pytest.param({"score_name": "x" * 201}, "score_name", id="score-name-too-long"),
    ],
)
def test_trace_filter_errors(client: TestClient, params: dict[str, Any], fragment: str) -> None:
    with changes_nothing(client):
        r = client.get("/api/v1/traces", params=params, headers=DEMO)
        assert_error(r, 422, "invalid_query", fragment)


# --- scores summary and worst traces --------------------------------------------------------------


def test_scores_summary_matches_python(client: TestClient) -> None:
    token = uuid.uuid4().hex[:8]
    name, other_name = f"faith-{token}", f"tox-{token}"
    # (model, variant) per trace, and the scores of each: (value, label, source, on the LLM span?)
    ev = "evaluator"
    plan: list[tuple[str, str | None, list[tuple[float | None, str, str, bool]]]] = [
        ("gpt-4o-mini", "A", [(0.125, "", ev, True), (0.5, "", ev, False), (None, "error", ev, True)]),
        ("gpt-4o-mini", "B", [(0.875, "", "evaluator", True), (1.0, "", "human", False)]),
        ("gpt-4.1-nano", "A", [(0.25, "", "evaluator", True), (0.25, "", "api", False), (None, "", "api", False)]),
        ("gpt-4.1-nano", None, [(0.625, "", "evaluator", False), (None, "error", "human", False)]),
    ]  # fmt: skip
    posted: list[dict[str, Any]] = []  # one per score: value, label, source, model, variant, day
    for model, variant, scores in plan:
        spans = llm_trace_spans(model=model, variant=variant)
        trace_id = ingest(client, spans)
        for value, label, source, on_span in scores:
            body: dict[str, Any] = {"trace_id": trace_id, "name": name, "value": value, "label": label}
            if on_span:
                body["span_id"] = span_id_hex(spans[0])  # the LLM span (exported first)
            r = post_score(client, source=source, **body)
            assert r.status_code == 201, r.text
            day = r.json()["created_at"][:10]
            posted.append({"value": value, "label": label, "source": source, "model": model,
                           "variant": variant or "", "day": day})  # fmt: skip
        assert post_score(client, trace_id=trace_id, name=other_name, value=3.0).status_code == 201

    def expect(rows: list[dict[str, Any]], lo: float, hi: float) -> dict[str, Any]:
        return expected_stats([(p["value"], p["label"]) for p in rows], lo, hi)

    values = [p["value"] for p in posted if p["value"] is not None]
    lo, hi = min(values), max(values)

    body = summary(client, name=name)
    assert body["group_by"] == "name"
    [row] = body["data"]
    assert row == {"name": name, "group": None, **expect(posted, lo, hi)}
    assert row["errors"] == 2 and row["count"] == 10 and row["n"] == 7
    assert sum(row["histogram"]["counts"]) == 7

    for group_by in ("model", "variant", "day"):
        body = summary(client, name=name, group_by=group_by)
        assert body["group_by"] == group_by
        groups = sorted({p[group_by] for p in posted})
        want = [{"name": name, "group": g, **expect([p for p in posted if p[group_by] == g], lo, hi)} for g in groups]
        assert body["data"] == want, group_by

    # source narrows the rows, and with them the range the bins span.
    human = [p for p in posted if p["source"] == "human"]
    human_values = [p["value"] for p in human if p["value"] is not None]
    [row] = summary(client, name=name, source="human")["data"]
    assert row == {"name": name, "group": None, **expect(human, min(human_values), max(human_values))}

    # Without a name filter, every name of the window is there, each with its own bins.
    names = {r["name"]: r for r in summary(client)["data"]}
    assert names[name]["n"] == 7
    assert names[other_name]["n"] == 4 and names[other_name]["histogram"]["counts"] == [4] + [0] * 9

    hour = summary(client, name=name, group_by="hour")["data"]
    assert sum(r["count"] for r in hour) == 10
    assert all(len(r["group"]) == 20 and r["group"].endswith(":00:00Z") for r in hour)

    # The other project sees none of it.
    assert summary(client, OTHER, name=name)["data"] == []
    assert summary(client, OTHER, name=name, group_by="model")["data"] == []
    assert client.get("/api/v1/scores/worst", params={"name": name}, headers=OTHER).json() == {"data": []}


def test_worst_scoring_traces(client: TestClient) -> None:
    token = uuid.uuid4().hex[:8]
    name = f"relevance-{token}"
    scored: dict[str, list[float]] = {}
    for values in ([0.5, 0.125], [0.75], [0.25, 1.0, 0.875]):
        trace_id = ingest(client, llm_trace_spans())
        scored[trace_id] = values
        for v in values:
            assert post_score(client, trace_id=trace_id, name=name, value=v, comment=f"v={v}").status_code == 201
    post_score(client, trace_id=trace_id, name=name, label="error", source="evaluator")  # no value: never worst

    r = client.get("/api/v1/scores/worst", params={"name": name, "limit": 2}, headers=DEMO)
    assert r.status_code == 200, r.text
    rows = r.json()["data"]
    want = sorted(scored, key=lambda t: min(scored[t]))[:2]
    assert [w["trace_id"] for w in rows] == want
    for w in rows:
        values = scored[w["trace_id"]]
        assert (w["name"], w["value"], w["mean"], w["score_count"]) == (name, min(values), sum(values) / len(values),
                                                                          len(values))  # fmt: skip
        assert w["comment"] == f"v={min(values)}"
        assert w["span_id"] is None and w["score_id"] and w["created_at"]
    all_rows = client.get("/api/v1/scores/worst", params={"name": name}, headers=DEMO).json()["data"]
    assert [w["value"] for w in all_rows] == [0.125, 0.25, 0.75]


@pytest.mark.parametrize(
    ("path", "params", "fragment"),
    [
        pytest.param("/api/v1/scores/summary", {"group_by": "region"}, "group_by", id="summary-group-by"),
        pytest.param("/api/v1/scores/summary", {"source": "robot"}, "source", id="summary-source"),
        pytest.param(
            "/api/v1/scores/summary",
            {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
            "'from'",
            id="summary-from-after-to",
        ),
        pytest.param("/api/v1/scores/worst", {}, "name", id="worst-no-name"),
        pytest.param("/api/v1/scores/worst", {"name": "x", "limit": 0}, "limit", id="worst-limit-0"),
        pytest.param("/api/v1/scores/worst", {"name": "x", "limit": 501}, "limit", id="worst-limit-501"),
    ],
)
def test_score_stats_errors(client: TestClient, path: str, params: dict[str, Any], fragment: str) -> None:
    with changes_nothing(client):
        assert_error(client.get(path, params=params, headers=DEMO), 422, "invalid_query", fragment)


@pytest.mark.parametrize("path", ["/api/v1/scores/summary", "/api/v1/scores/worst?name=x", "/api/v1/traces?q=x"])
@pytest.mark.parametrize("authorization", [None, "Bearer key-nope"])
def test_auth_is_required(client: TestClient, path: str, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    assert_error(client.get(path, headers=headers), 401, "unauthorized")
