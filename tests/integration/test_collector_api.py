"""The collector's HTTP contract, in-process: OTLP bodies from the real OpenTelemetry SDK and encoder,
the real store on each backend, and every kind of bad input answered with a clear error that
changes nothing.

Apps are module-scoped (one per backend, plus a chDB one with tight limits): tests share them and
stay independent by filtering on per-test user ids, tags and time windows, and by counting rows
before and after a rejected request.
"""

from __future__ import annotations

import gzip
import json
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from prometheus_client.parser import text_string_to_metric_families

from loopwise_collector import IngestSettings, Settings, create_app
from loopwise_collector.pricing import PriceTable
from loopwise_collector.store import ClickHouseStore, hash_api_key
from tests.conftest import BACKENDS, chdb_dsn, http_dsn
from tests.otlp_builders import (
    INPUT_MESSAGES,
    OUTPUT_MESSAGES,
    SERVICE_NAME,
    llm_trace_spans,
    request_to_json,
    span_id_hex,
    to_json,
    to_protobuf,
    to_request,
    trace_id_hex,
)

pytestmark = pytest.mark.integration

DEMO = {"Authorization": "Bearer key-demo"}
OTHER = {"Authorization": "Bearer key-other"}
PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
TABLE_SOURCE = f"table:{PriceTable.bundled().version}"
# gpt-4o-mini lists at $0.15 in / $0.60 out per 1M tokens: 1000 in + 200 out.
MINI_COST = 1000 * 0.15 / 1e6 + 200 * 0.60 / 1e6
BODY_LIMIT = 4096


def settings(data_dir: Path, dsn: str, **overrides: Any) -> Settings:
    return Settings(
        data_dir=data_dir,
        store=dsn,
        init_projects="demo:key-demo,other:key-other",
        ingest=IngestSettings(max_delay_ms=20),
        store_connect_timeout_s=5,
        **overrides,
    )


@contextmanager
def running(s: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(s)) as c:
        yield c


@pytest.fixture(scope="module", params=BACKENDS)
def client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A collector per backend: embedded chDB and a ClickHouse server over HTTP."""
    if request.param == "chdb":
        dsn = chdb_dsn(request.getfixturevalue("chdb_dir"))
    else:
        dsn = http_dsn(request.getfixturevalue("clickhouse_http"))
    with running(settings(tmp_path_factory.mktemp(f"app-{request.param}"), dsn)) as c:
        yield c


@pytest.fixture(scope="module")
def api(chdb_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One chDB-backed collector for the error matrix, where the backend makes no difference."""
    with running(settings(tmp_path_factory.mktemp("app-api"), chdb_dsn(chdb_dir))) as c:
        yield c


@pytest.fixture(scope="module")
def strict(chdb_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A collector with a 4 KiB body limit."""
    s = settings(tmp_path_factory.mktemp("app-strict"), chdb_dsn(chdb_dir), max_body_bytes=BODY_LIMIT)
    with running(s) as c:
        yield c


@pytest.fixture(scope="module")
def demo_trace(api: TestClient) -> str:
    """A trace of the demo project in ``api``."""
    return ingest(api, llm_trace_spans())


# --- helpers ------------------------------------------------------------------------------------


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def ingest(c: TestClient, spans: list[Any], headers: dict[str, str] = DEMO, encoding: str = "protobuf") -> str:
    """POST spans the way an OTLP/HTTP exporter would; returns the trace id."""
    if encoding == "json":
        r = c.post("/v1/traces", content=to_json(spans), headers={**headers, **JSON})
    elif encoding == "gzip":
        body = gzip.compress(to_protobuf(spans))
        r = c.post("/v1/traces", content=body, headers={**headers, **PROTOBUF, "Content-Encoding": "gzip"})
    else:
        r = c.post("/v1/traces", content=to_protobuf(spans), headers={**headers, **PROTOBUF})
    assert r.status_code == 200, r.text
    return trace_id_hex(spans[0])


def store_of(c: TestClient) -> ClickHouseStore:
    store: ClickHouseStore = c.app.state.loopwise.store  # type: ignore[attr-defined]
    return store


def row_counts(c: TestClient) -> dict[str, int]:
    """Raw row counts (no FINAL: a duplicate write would show) of every table a request can write."""
    store = store_of(c)
    tables = ("spans", "scores", "model_prices", "api_keys", "projects")
    return {t: store.query(f"SELECT count() FROM {{db}}.{t}")[0][0] for t in tables}


def traces(c: TestClient, headers: dict[str, str] = DEMO, **params: Any) -> list[dict[str, Any]]:
    r = c.get("/api/v1/traces", params=params, headers=headers)
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


def assert_error(r: httpx.Response, status: int, code: str, *fragments: str) -> None:
    """The response is the JSON error envelope with this status and code, and a message saying why."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    message = body["error"]["message"]
    assert len(message) > 10
    for fragment in fragments:
        assert fragment in message, message


@contextmanager
def changes_nothing(c: TestClient) -> Iterator[None]:
    """Nothing is written inside the block, and afterwards the collector still ingests and answers."""
    before = row_counts(c)
    yield
    assert row_counts(c) == before
    spans = llm_trace_spans(user_id=unique("after"))
    trace_id = ingest(c, spans)
    r = c.get(f"/api/v1/traces/{trace_id}", headers=DEMO)
    assert r.status_code == 200
    assert len(r.json()["spans"]) == 2


def post_score(c: TestClient, headers: dict[str, str] = DEMO, **body: Any) -> httpx.Response:
    return c.post("/api/v1/scores", json=body, headers=headers)


# --- ingest round trip (both backends) ---------------------------------------------------------


@pytest.mark.parametrize("encoding", ["protobuf", "gzip", "json"])
def test_ingest_round_trip(client: TestClient, encoding: str) -> None:
    user, session = unique("user"), unique("session")
    spans = llm_trace_spans(user_id=user, session_id=session, tags=["beta", "checkout"], variant="B")
    request = to_request(spans)
    if encoding == "json":
        r = client.post("/v1/traces", content=request_to_json(request), headers={**DEMO, **JSON})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {}
    else:
        body = request.SerializeToString()
        headers = {**DEMO, **PROTOBUF}
        if encoding == "gzip":
            body, headers = gzip.compress(body), {**headers, "Content-Encoding": "gzip"}
        r = client.post("/v1/traces", content=body, headers=headers)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/x-protobuf"
        assert not ExportTraceServiceResponse.FromString(r.content).HasField("partial_success")
    child, root = spans  # the SDK exports in end order: the LLM call ends first
    trace_id = trace_id_hex(root)

    [t] = traces(client, user_id=user)
    assert t["trace_id"] == trace_id
    assert t["name"] == "agent"
    assert t["duration_ms"] == 120.0
    assert t["span_count"] == 2
    assert (t["input_tokens"], t["output_tokens"]) == (1000, 200)
    assert t["cost_usd"] == pytest.approx(MINI_COST)
    assert t["unpriced_span_count"] == 0
    assert t["has_error"] is False
    assert (t["user_id"], t["session_id"]) == (user, session)
    assert t["tags"] == ["beta", "checkout"]
    assert t["variants"] == ["B"]
    assert t["models"] == ["gpt-4o-mini"]
    assert t["scores"] == {}

    r = client.get(f"/api/v1/traces/{trace_id}", headers=DEMO)
    assert r.status_code == 200
    detail = r.json()
    assert detail["trace_id"] == trace_id
    got_root, got_llm = detail["spans"]  # start order
    assert got_root["span_id"] == span_id_hex(root)
    assert got_root["parent_span_id"] is None
    assert (got_root["name"], got_root["status"], got_root["model"]) == ("agent", "unset", "")
    assert got_root["input_tokens"] is None and got_root["cost_usd"] is None
    assert got_llm["span_id"] == span_id_hex(child)
    assert got_llm["parent_span_id"] == span_id_hex(root)
    assert got_llm["trace_id"] == trace_id
    assert got_llm["name"] == "chat gpt-4o-mini"
    assert got_llm["kind"] == "client"
    assert got_llm["status"] == "ok"
    assert got_llm["duration_ms"] == 100.0
    assert got_llm["start_time_unix_nano"] == child.start_time
    assert got_llm["span_type"] == "llm"
    assert got_llm["operation"] == "chat"
    assert (got_llm["model"], got_llm["request_model"], got_llm["provider"]) == ("gpt-4o-mini",) * 2 + ("openai",)
    assert json.loads(got_llm["input"]) == INPUT_MESSAGES
    assert json.loads(got_llm["output"]) == OUTPUT_MESSAGES
    assert (got_llm["input_tokens"], got_llm["output_tokens"]) == (1000, 200)
    assert got_llm["cost_usd"] == pytest.approx(MINI_COST)
    assert got_llm["cost_source"] == TABLE_SOURCE
    assert (got_llm["user_id"], got_llm["session_id"], got_llm["variant"]) == (user, session, "B")
    assert got_llm["tags"] == ["beta", "checkout"]
    # Mapped attributes live in their columns; only the rest stays in the map.
    assert got_llm["attributes"] == {"app.feature": "order-status"}
    assert got_llm["service_name"] == SERVICE_NAME
    assert got_llm["resource_attributes"]["service.name"] == SERVICE_NAME


def test_resent_batch_is_stored_once(client: TestClient) -> None:
    user = unique("resend")
    spans = llm_trace_spans(user_id=user)
    trace_id = ingest(client, spans)
    ingest(client, spans, encoding="json")  # an exporter retry, in the other encoding
    assert len(client.get(f"/api/v1/traces/{trace_id}", headers=DEMO).json()["spans"]) == 2
    [t] = traces(client, user_id=user)
    assert t["span_count"] == 2
    assert t["input_tokens"] == 1000


@pytest.mark.parametrize(
    ("model", "cost_usd", "want_cost", "want_source", "unpriced"),
    [
        pytest.param("gpt-4o-mini-2024-07-18", None, MINI_COST, TABLE_SOURCE, 0, id="server-priced-snapshot"),
        pytest.param("gpt-4o-mini", 0.5, 0.5, "client", 0, id="client-cost-wins"),
        pytest.param("acme-internal-llm", None, None, "unpriced", 1, id="unpriced-model"),
    ],
)
def test_cost(
    api: TestClient, model: str, cost_usd: float | None, want_cost: float | None, want_source: str, unpriced: int
) -> None:
    user = unique("cost")
    trace_id = ingest(api, llm_trace_spans(model=model, cost_usd=cost_usd, user_id=user))
    [t] = traces(api, user_id=user)
    assert t["cost_usd"] == (pytest.approx(want_cost) if want_cost is not None else None)
    assert t["unpriced_span_count"] == unpriced
    llm = api.get(f"/api/v1/traces/{trace_id}", headers=DEMO).json()["spans"][1]
    assert llm["cost_source"] == want_source
    assert llm["cost_usd"] == (pytest.approx(want_cost) if want_cost is not None else None)


def test_trace_filters_and_paging_through_the_query_string(client: TestClient) -> None:
    suffix = uuid.uuid4().hex[:8]
    now = time.time_ns()
    a = llm_trace_spans(
        user_id=f"ua-{suffix}",
        session_id=f"sa-{suffix}",
        tags=[f"all-{suffix}", f"ta-{suffix}"],
        variant=f"A-{suffix}",
        start_ns=now - 2_000_000_000,
    )
    b = llm_trace_spans(
        user_id=f"ub-{suffix}",
        session_id=f"sb-{suffix}",
        tags=[f"all-{suffix}"],
        variant=f"B-{suffix}",
        model="gpt-4.1-nano",
        error=True,
        start_ns=now - 1_000_000_000,
    )
    ta, tb = ingest(client, a), ingest(client, b, encoding="json")

    def ids(**params: Any) -> list[str]:
        return [t["trace_id"] for t in traces(client, **params)]

    assert ids(user_id=f"ua-{suffix}") == [ta]
    assert ids(session_id=f"sb-{suffix}") == [tb]
    assert ids(tag=f"ta-{suffix}") == [ta]
    assert ids(tag=f"all-{suffix}") == [tb, ta]  # newest first
    assert ids(variant=f"B-{suffix}") == [tb]
    assert ids(tag=f"all-{suffix}", model="gpt-4.1-nano") == [tb]
    assert ids(tag=f"all-{suffix}", has_error="true") == [tb]
    assert ids(tag=f"all-{suffix}", has_error="false") == [ta]
    assert ids(user_id=f"ua-{suffix}", variant=f"B-{suffix}") == []
    assert ids(user_id="nobody-' OR 1=1 --") == []  # values are parameters, never SQL
    window = {
        "from": datetime.fromtimestamp((now - 1_500_000_000) / 1e9, UTC).isoformat(),
        "to": datetime.fromtimestamp(now / 1e9, UTC).isoformat(),
    }
    assert ids(tag=f"all-{suffix}", **window) == [tb]
    [err] = traces(client, user_id=f"ub-{suffix}")
    assert err["has_error"] is True

    page = client.get("/api/v1/traces", params={"tag": f"all-{suffix}", "limit": 1}, headers=DEMO).json()
    assert [t["trace_id"] for t in page["data"]] == [tb]
    assert page["next_cursor"]
    page = client.get(
        "/api/v1/traces", params={"tag": f"all-{suffix}", "limit": 1, "cursor": page["next_cursor"]}, headers=DEMO
    ).json()
    assert [t["trace_id"] for t in page["data"]] == [ta]
    assert page["next_cursor"] is None


# --- isolation (both backends) ------------------------------------------------------------------


def test_projects_never_see_each_others_traces(client: TestClient) -> None:
    user = unique("iso")
    demo_only = ingest(client, llm_trace_spans(user_id=user))
    shared_spans = llm_trace_spans(user_id=user, model="gpt-4.1-nano")
    shared = ingest(client, shared_spans)
    ingest(client, shared_spans, headers=OTHER)  # the same trace id, sent by another project

    assert {t["trace_id"] for t in traces(client, user_id=user)} == {demo_only, shared}
    assert [t["trace_id"] for t in traces(client, OTHER, user_id=user)] == [shared]
    [mine] = traces(client, OTHER, user_id=user)
    assert mine["span_count"] == 2  # its own copy only, not the demo project's spans as well
    for headers in (DEMO, OTHER):
        assert len(client.get(f"/api/v1/traces/{shared}", headers=headers).json()["spans"]) == 2

    with changes_nothing(client):
        r = client.get(f"/api/v1/traces/{demo_only}", headers=OTHER)
        assert_error(r, 404, "not_found", demo_only)
        r = post_score(client, OTHER, trace_id=demo_only, name="thumbs", value=1.0, source="human")
        assert_error(r, 404, "not_found", demo_only)
        assert client.get("/api/v1/scores", params={"trace_id": demo_only}, headers=OTHER).json()["data"] == []


# --- scores -------------------------------------------------------------------------------------


def test_scores_round_trip(client: TestClient) -> None:
    user = unique("scored")
    spans = llm_trace_spans(user_id=user)
    trace_id = ingest(client, spans)
    score_id = unique("feedback")

    r = post_score(
        client,
        id=score_id,
        trace_id=trace_id.upper(),
        span_id=span_id_hex(spans[0]),
        name="thumbs",
        value=1.0,
        source="human",
        comment="exactly what I asked",
        metadata={"ui": "web"},
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["id"] == score_id
    assert created["trace_id"] == trace_id  # normalised to lowercase
    assert created["span_id"] == span_id_hex(spans[0])
    assert (created["name"], created["value"], created["source"]) == ("thumbs", 1.0, "human")
    assert created["comment"] == "exactly what I asked"
    assert created["metadata"] == {"ui": "web"}
    # The same id again is a retry (or an edit): one score, the newest value.
    r = post_score(
        client, id=score_id, trace_id=trace_id, name="thumbs", value=0.0, source="human", comment="changed my mind"
    )
    assert r.status_code == 201
    r = post_score(client, trace_id=trace_id, name="thumbs", value=1.0, source="api")
    assert r.status_code == 201
    assert post_score(client, trace_id=trace_id, name="relevance", value=0.25).status_code == 201

    r = client.get("/api/v1/scores", params={"trace_id": trace_id}, headers=DEMO)
    assert r.status_code == 200
    scores = r.json()["data"]
    assert len(scores) == 3
    [human] = [s for s in scores if s["id"] == score_id]
    assert (human["value"], human["comment"], human["source"]) == (0.0, "changed my mind", "human")
    r = client.get("/api/v1/scores", params={"trace_id": trace_id, "source": "human"}, headers=DEMO)
    assert [s["id"] for s in r.json()["data"]] == [score_id]

    [t] = traces(client, user_id=user)
    assert t["scores"] == {"thumbs": 0.5, "relevance": 0.25}


_T = '{"trace_id": "%s", '  # a trace of the demo project is filled in
SCORE_CASES = {
    "nan": (_T + '"name": "x", "value": NaN}', 422, "invalid_query", "finite number"),
    "inf": (_T + '"name": "x", "value": Infinity}', 422, "invalid_query", "finite number"),
    "inf-string": (_T + '"name": "x", "value": "-inf"}', 422, "invalid_query", "finite number"),
    "extra-field": (_T + '"name": "x", "value": 1, "bogus": 1}', 422, "invalid_query", "bogus"),
    "empty-name": (_T + '"name": "", "value": 1}', 422, "invalid_query", "name"),
    "unknown-source": (_T + '"name": "x", "source": "robot"}', 422, "invalid_query", "source"),
    "bad-trace-id": ('{"trace_id": "xyz", "name": "x"}', 422, "invalid_query", "trace_id"),
    "not-json": (_T + '"name": "x", "value": 1', 400, "invalid_payload", "malformed JSON body: at character"),
    "json-array": ("[1, 2]", 422, "invalid_query", "valid dictionary"),
}


@pytest.mark.parametrize(("body", "status", "code", "fragment"), SCORE_CASES.values(), ids=SCORE_CASES.keys())
def test_scores_reject_bad_bodies(
    api: TestClient, demo_trace: str, body: str, status: int, code: str, fragment: str
) -> None:
    with changes_nothing(api):
        payload = body.replace("%s", demo_trace)
        r = api.post("/api/v1/scores", content=payload, headers={**DEMO, **JSON})
        assert_error(r, status, code, fragment)


# --- bad input on ingest ------------------------------------------------------------------------


def _one_bad_span() -> bytes:
    # A whole request is rejected for one bad span: exporters retry requests whole.
    request = to_request(llm_trace_spans())
    request.resource_spans[0].scope_spans[0].spans[1].trace_id = b"\x01" * 8
    return request.SerializeToString()


def _json_bad_trace_id() -> bytes:
    doc = json.loads(to_json(llm_trace_spans()))
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = "not-hex-at-all"
    return json.dumps(doc).encode()


def _truncated_gzip() -> bytes:
    # Flush after one complete request, then cut the stream there: what does inflate is a valid
    # request on its own, so only the missing end of the stream gives the truncation away.
    deflater = zlib.compressobj(wbits=31)
    head = deflater.compress(to_protobuf(llm_trace_spans())) + deflater.flush(zlib.Z_FULL_FLUSH)
    return head + deflater.compress(to_protobuf(llm_trace_spans()))


def _valid() -> bytes:
    return to_protobuf(llm_trace_spans())


GZIP = {**PROTOBUF, "Content-Encoding": "gzip"}
INGEST_CASES = {
    "text-plain": ({"Content-Type": "text/plain"}, _valid, 415, "unsupported_media_type", "'text/plain'"),
    "no-content-type": ({}, _valid, 415, "unsupported_media_type", "(none)"),
    "brotli": ({**PROTOBUF, "Content-Encoding": "br"}, _valid, 415, "unsupported_media_type", "'br'"),
    "malformed-protobuf": (PROTOBUF, lambda: b"\xff\xff junk", 400, "invalid_payload", "malformed OTLP protobuf"),
    "one-bad-span": (PROTOBUF, _one_bad_span, 400, "invalid_payload", "spans[1]: trace_id must be 16 bytes"),
    "malformed-json": (JSON, lambda: b'{"resourceSpans": [', 400, "invalid_payload", "malformed OTLP JSON"),
    "json-wrong-shape": (JSON, lambda: b'{"resourceSpans": {"a": 1}}', 400, "invalid_payload", "resourceSpans"),
    "json-bad-trace-id": (JSON, _json_bad_trace_id, 400, "invalid_payload", "traceId"),
    "corrupt-gzip": (GZIP, lambda: b"definitely not gzip", 400, "invalid_payload", "not valid gzip"),
    "truncated-gzip": (GZIP, _truncated_gzip, 400, "invalid_payload", "truncated"),
}


@pytest.mark.parametrize(
    ("headers", "make_body", "status", "code", "fragment"), INGEST_CASES.values(), ids=INGEST_CASES.keys()
)
def test_ingest_rejects_bad_input(
    api: TestClient, headers: dict[str, str], make_body: Callable[[], bytes], status: int, code: str, fragment: str
) -> None:
    with changes_nothing(api):
        r = api.post("/v1/traces", content=make_body(), headers={**DEMO, **headers})
        assert_error(r, status, code, fragment)


AUTH_CASES = [
    pytest.param(None, "missing API key", id="missing"),
    pytest.param("Basic a2V5LWRlbW86", "malformed Authorization header", id="basic-scheme"),
    pytest.param("Bearer", "malformed Authorization header", id="no-key"),
    pytest.param("key-demo", "malformed Authorization header", id="no-scheme"),
    pytest.param("Bearer key-nope", "invalid API key", id="unknown-key"),
]


@pytest.mark.parametrize(("authorization", "fragment"), AUTH_CASES)
@pytest.mark.parametrize(
    "endpoint",
    ["POST /v1/traces", "GET /api/v1/traces", "POST /api/v1/scores", "GET /api/v1/scores", "PUT /api/v1/prices"],
)
def test_auth_is_required(
    api: TestClient, demo_trace: str, endpoint: str, authorization: str | None, fragment: str
) -> None:
    method, path = endpoint.split()
    headers = {"Authorization": authorization} if authorization is not None else {}
    # A body that would be accepted with a good key, so only the key decides.
    kwargs: dict[str, Any] = {}
    if path == "/v1/traces":
        kwargs = {"content": to_protobuf(llm_trace_spans()), "headers": {**headers, **PROTOBUF}}
    elif method == "POST":
        kwargs = {"json": {"trace_id": demo_trace, "name": "thumbs", "value": 1}, "headers": headers}
    elif method == "PUT":
        kwargs = {"json": {"pattern": "x", "input_per_million": 1, "output_per_million": 1}, "headers": headers}
    else:
        kwargs = {"headers": headers}
    with changes_nothing(api):
        r = api.request(method, path, **kwargs)
        assert_error(r, 401, "unauthorized", fragment)
        assert r.headers["www-authenticate"] == "Bearer"


def test_body_limits(strict: TestClient) -> None:
    limit = f"{BODY_LIMIT}-byte limit"
    small = to_protobuf(llm_trace_spans())
    assert len(small) < BODY_LIMIT
    with changes_nothing(strict):
        # Declared too large: refused before the body is read.
        r = strict.post("/v1/traces", content=small + b"\0" * BODY_LIMIT, headers={**DEMO, **PROTOBUF})
        assert_error(r, 413, "payload_too_large", limit, f"{len(small) + BODY_LIMIT} bytes")
        r = strict.post("/v1/traces", content=small, headers={**DEMO, **PROTOBUF, "Content-Length": "99999999"})
        assert_error(r, 413, "payload_too_large", "99999999 bytes")
        # No length declared (chunked): refused while reading.
        copies = BODY_LIMIT // len(small) + 1
        chunks = (small for _ in range(copies))  # concatenated requests are one valid request
        r = strict.post("/v1/traces", content=chunks, headers={**DEMO, **PROTOBUF})
        assert_error(r, 413, "payload_too_large", limit)
        # A zip bomb: a few hundred bytes on the wire, far past the limit once inflated.
        bomb = gzip.compress(small + b"\0" * 1_000_000)
        assert len(bomb) < BODY_LIMIT
        r = strict.post("/v1/traces", content=bomb, headers={**DEMO, **PROTOBUF, "Content-Encoding": "gzip"})
        assert_error(r, 413, "payload_too_large", "decompressed", limit)
        r = strict.post("/v1/traces", content=small, headers={**DEMO, **PROTOBUF, "Content-Length": "many"})
        assert_error(r, 400, "invalid_payload", "Content-Length")


def test_unknown_and_malformed_ids(api: TestClient) -> None:
    unknown = uuid.uuid4().hex
    with changes_nothing(api):
        assert_error(api.get(f"/api/v1/traces/{unknown}", headers=DEMO), 404, "not_found", unknown)
        r = post_score(api, trace_id=unknown, name="thumbs", value=1)
        assert_error(r, 404, "not_found", unknown, "scores attach to traces already ingested")
        for bad in ("xyz", "z" * 32, "a" * 31, "a" * 33):
            assert_error(api.get(f"/api/v1/traces/{bad}", headers=DEMO), 422, "invalid_query", "trace_id")


_FROM_AFTER_TO = {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}


@pytest.mark.parametrize(
    ("path", "params", "fragment"),
    [
        pytest.param("/api/v1/traces", {"limit": 0}, "limit", id="limit-0"),
        pytest.param("/api/v1/traces", {"limit": "abc"}, "limit", id="limit-abc"),
        pytest.param("/api/v1/traces", {"limit": 501}, "limit", id="limit-too-big"),
        pytest.param("/api/v1/traces", {"has_error": "maybe"}, "has_error", id="has-error-maybe"),
        pytest.param("/api/v1/traces", {"from": "not-a-date"}, "from", id="from-not-a-date"),
        pytest.param("/api/v1/traces", _FROM_AFTER_TO, "'from' must not be after 'to'", id="from-after-to"),
        pytest.param("/api/v1/traces", {"cursor": "bogus!"}, "cursor", id="bad-cursor"),
        pytest.param("/api/v1/traces", {"cursor": "WzEsIDJd"}, "cursor", id="cursor-wrong-shape"),
        pytest.param("/api/v1/metrics/summary", {"group_by": "region"}, "group_by", id="group-by-region"),
        pytest.param(
            "/api/v1/metrics/summary", _FROM_AFTER_TO, "'from' must not be after 'to'", id="summary-from-after-to"
        ),
        pytest.param("/api/v1/scores", {"source": "robot"}, "source", id="scores-unknown-source"),
        pytest.param("/api/v1/scores", {"trace_id": "xyz"}, "trace_id", id="scores-bad-trace-id"),
        pytest.param("/api/v1/scores", {"limit": 0}, "limit", id="scores-limit-0"),
    ],
)
def test_invalid_filters(api: TestClient, path: str, params: dict[str, Any], fragment: str) -> None:
    with changes_nothing(api):
        assert_error(api.get(path, params=params, headers=DEMO), 422, "invalid_query", fragment)


def test_unknown_route_and_method(api: TestClient) -> None:
    with changes_nothing(api):
        assert_error(api.get("/api/v1/nope", headers=DEMO), 404, "not_found", "/api/v1/nope")
        assert_error(api.get("/nope"), 404, "not_found", "/nope")
        assert_error(api.delete("/api/v1/traces", headers=DEMO), 405, "method_not_allowed", "DELETE")


# --- metrics summary ----------------------------------------------------------------------------


def test_metrics_summary(client: TestClient) -> None:
    # Three traces in a window of their own, a day and a half back (inside the 30-day retention).
    hour = 3_600_000_000_000
    base = (time.time_ns() - 36 * hour) // hour * hour + uuid.uuid4().int % 50 * 60_000_000_000
    ingest(client, llm_trace_spans(start_ns=base, llm_ms=100))
    ingest(client, llm_trace_spans(start_ns=base + 10**9, llm_ms=50, error=True))
    ingest(client, llm_trace_spans(start_ns=base + 2 * 10**9, llm_ms=80, model="acme-internal-llm"))
    window = {
        "from": datetime.fromtimestamp(base / 1e9, UTC).isoformat(),
        "to": datetime.fromtimestamp((base + 3 * 10**9) / 1e9, UTC).isoformat(),
    }

    r = client.get("/api/v1/metrics/summary", params=window, headers=DEMO)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["group_by"] is None
    [m] = body["data"]
    assert m["group"] is None
    assert (m["span_count"], m["trace_count"], m["error_count"]) == (6, 3, 1)
    assert m["error_rate"] == pytest.approx(1 / 6)
    assert (m["input_tokens"], m["output_tokens"]) == (3000, 600)
    assert m["cost_usd"] == pytest.approx(2 * MINI_COST)
    assert m["unpriced_span_count"] == 1
    # Durations: 50, 80, 100 (LLM calls) and 120 three times (roots).
    assert m["latency_p50_ms"] == pytest.approx(110.0)
    assert m["latency_p99_ms"] == pytest.approx(120.0)

    r = client.get("/api/v1/metrics/summary", params={**window, "group_by": "model"}, headers=DEMO)
    assert r.status_code == 200
    groups = {g["group"]: g for g in r.json()["data"]}
    assert set(groups) == {"", "acme-internal-llm", "gpt-4o-mini"}
    mini = groups["gpt-4o-mini"]
    assert (mini["span_count"], mini["trace_count"], mini["error_count"], mini["error_rate"]) == (2, 2, 1, 0.5)
    assert (mini["input_tokens"], mini["output_tokens"]) == (2000, 400)
    assert mini["cost_usd"] == pytest.approx(2 * MINI_COST)
    assert (mini["latency_p50_ms"], mini["latency_p99_ms"]) == pytest.approx((75.0, 99.5))
    unpriced = groups["acme-internal-llm"]
    assert (unpriced["cost_usd"], unpriced["unpriced_span_count"], unpriced["span_count"]) == (None, 1, 1)
    assert (groups[""]["span_count"], groups[""]["input_tokens"], groups[""]["cost_usd"]) == (3, 0, None)

    # The other project sees none of it.
    r = client.get("/api/v1/metrics/summary", params=window, headers=OTHER)
    assert r.status_code == 200
    assert [m["span_count"] for m in r.json()["data"]] in ([], [0])


# --- health, readiness and Prometheus -----------------------------------------------------------


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready"
    assert body["store"] == {"backend": store_of(client).target.backend, "reachable": True}
    assert body["spool"] == {"batches": 0, "bytes": 0}


def _spans_received(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "loopwise_spans_received_total":
                return sample.value
    raise AssertionError("loopwise_spans_received_total is missing from /metrics")


def test_prometheus_metrics(api: TestClient) -> None:
    before = _spans_received(api.get("/metrics").text)
    ingest(api, llm_trace_spans())
    r = api.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert _spans_received(r.text) == before + 2
    assert 'loopwise_http_requests_total{route="/v1/traces",status="200"}' in r.text


def test_metrics_token(chdb_dir: Path, tmp_path: Path) -> None:
    with running(settings(tmp_path, chdb_dsn(chdb_dir), metrics_token="t")) as c:
        ingest(c, llm_trace_spans())
        ingest(c, llm_trace_spans(), encoding="json")
        assert_error(c.get("/metrics"), 401, "unauthorized", "/metrics requires")
        assert_error(c.get("/metrics", headers={"Authorization": "Bearer nope"}), 401, "unauthorized")
        assert_error(c.get("/metrics", headers=DEMO), 401, "unauthorized")  # an API key is not the token
        r = c.get("/metrics", headers={"Authorization": "Bearer t"})
        assert r.status_code == 200
        assert _spans_received(r.text) == 4  # a fresh app: exactly the two traces above
        assert c.get("/healthz").status_code == 200  # probes stay open


# --- prices ------------------------------------------------------------------------------------


def test_price_override_applies_to_its_project_only(client: TestClient) -> None:
    model = unique("acme-ft")
    r = client.put(
        "/api/v1/prices", json={"pattern": model, "input_per_million": 2.0, "output_per_million": 4.0}, headers=DEMO
    )
    assert r.status_code == 200, r.text
    listed = client.get("/api/v1/prices", headers=DEMO).json()
    assert listed["version"].startswith(PriceTable.bundled().version) and "demo" in listed["version"]
    [override] = [o for o in listed["overrides"] if o["pattern"] == model]
    assert override == {
        "pattern": model,
        "effective_from": "1970-01-01",
        "input_per_million": 2.0,
        "output_per_million": 4.0,
        "cached_input_per_million": None,
    }
    assert all(o["pattern"] != model for o in client.get("/api/v1/prices", headers=OTHER).json()["overrides"])

    spans = llm_trace_spans(model=f"{model}-v3")  # the override is a prefix
    trace_id = ingest(client, spans)
    llm = client.get(f"/api/v1/traces/{trace_id}", headers=DEMO).json()["spans"][1]
    assert llm["cost_usd"] == pytest.approx(1000 * 2.0 / 1e6 + 200 * 4.0 / 1e6)
    assert llm["cost_source"].startswith("table:")
    assert "demo" in llm["cost_source"]

    other_trace = ingest(client, llm_trace_spans(model=f"{model}-v3"), headers=OTHER)
    llm = client.get(f"/api/v1/traces/{other_trace}", headers=OTHER).json()["spans"][1]
    assert (llm["cost_usd"], llm["cost_source"]) == (None, "unpriced")

    with changes_nothing(client):
        r = client.put(
            "/api/v1/prices", json={"pattern": model, "input_per_million": -1, "output_per_million": 1}, headers=DEMO
        )
        assert_error(r, 422, "invalid_query", "input_per_million")


def test_price_override_spelled_twice_is_one_override(api: TestClient) -> None:
    model = unique("case-ft")
    for pattern, price in ((model, 1.0), (model.upper(), 3.0)):
        r = api.put("/api/v1/prices", json={"pattern": pattern, "input_per_million": price, "output_per_million": 0},
                    headers=DEMO)  # fmt: skip
        assert r.status_code == 200, r.text
    overrides = [o for o in api.get("/api/v1/prices", headers=DEMO).json()["overrides"] if o["pattern"] == model]
    assert [o["input_per_million"] for o in overrides] == [3.0]
    trace_id = ingest(api, llm_trace_spans(model=model))  # ingest keeps working and uses the newer price
    llm = api.get(f"/api/v1/traces/{trace_id}", headers=DEMO).json()["spans"][1]
    assert llm["cost_usd"] == pytest.approx(1000 * 3.0 / 1e6)


# --- OpenAPI and seeding ------------------------------------------------------------------------


def test_openapi_lists_the_contract(api: TestClient) -> None:
    r = api.get("/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    for path in (
        "/v1/traces",
        "/api/v1/traces",
        "/api/v1/traces/{trace_id}",
        "/api/v1/scores",
        "/api/v1/metrics/summary",
        "/api/v1/prices",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in paths, path
    assert "post" in paths["/v1/traces"]
    assert {"get", "post"} <= set(paths["/api/v1/scores"])


def test_seeding_is_idempotent_and_keys_are_hashed(chdb_dir: Path, tmp_path: Path) -> None:
    s = settings(tmp_path, chdb_dsn(chdb_dir))
    for _ in range(2):  # a restart on the same database seeds nothing twice
        with running(s) as c:
            for headers in (DEMO, OTHER):
                assert c.get("/api/v1/traces", headers=headers).status_code == 200
    store = ClickHouseStore(s.store_dsn())
    store.open()
    try:
        keys = store.query("SELECT key_hash, project_id, label, revoked FROM {db}.api_keys ORDER BY project_id")
        assert keys == [
            (hash_api_key("key-demo"), "demo", "seeded", False),
            (hash_api_key("key-other"), "other", "seeded", False),
        ]
        assert store.query("SELECT project_id FROM {db}.projects ORDER BY project_id") == [("demo",), ("other",)]
        everything = str(store.query("SELECT * FROM {db}.api_keys")) + str(store.query("SELECT * FROM {db}.projects"))
        assert "key-demo" not in everything and "key-other" not in everything
        # The keys resolve through the store itself, not only through the seeding cache.
        assert [store.project_for_key(k).project_id for k in ("key-demo", "key-other")] == ["demo", "other"]  # type: ignore[union-attr]
        assert store.project_for_key("key-nope") is None
    finally:
        store.close()
