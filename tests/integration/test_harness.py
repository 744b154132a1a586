"""The chDB-backed ClickHouse HTTP harness speaks enough of ClickHouse's HTTP interface for the unmodified
clickhouse-connect HTTP client: handshake, DDL, Native inserts, typed parameters, Arrow and pandas reads,
errors, sessions, compression, and a crash (kill -9) and restart on the same port and data directory.

Why: store and outage tests rely on this harness standing in for a ClickHouse server, so its fidelity is
checked here once, through the same client the store uses.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from tests.support.clickhouse_http import ClickHouseHTTPServer

pytestmark = pytest.mark.integration

DB = "harness"
TABLE = """
CREATE TABLE IF NOT EXISTS {table} (
    project_id LowCardinality(String),
    span_id FixedString(8),
    start_time DateTime64(9, 'UTC'),
    name String,
    attributes Map(String, String),
    tags Array(String),
    cost Nullable(Float64),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (project_id, span_id)
"""
ROWS = 3000
T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def span_columns(n: int, version: int = 1, name: str = "call") -> list[list[Any]]:
    """Column-oriented span data, covering the types the store uses."""
    return [
        ["proj-a" if i % 3 else "proj-b" for i in range(n)],
        [i.to_bytes(8, "big") for i in range(n)],
        [T0 + timedelta(microseconds=i) for i in range(n)],
        [f"{name} {i}" for i in range(n)],
        [{"gen_ai.request.model": "m", "i": str(i)} for i in range(n)],
        [["t1", f"t{i % 5}"] for i in range(n)],
        [None if i % 10 == 0 else i / 100 for i in range(n)],
        [version] * n,
    ]


COLUMNS = ["project_id", "span_id", "start_time", "name", "attributes", "tags", "cost", "version"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseHTTPServer]:
    with ClickHouseHTTPServer(tmp_path_factory.mktemp("harness") / "ch") as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: ClickHouseHTTPServer) -> Any:
    """A plain HTTP client, created from a DSN as the store does, with the table filled once."""
    admin = clickhouse_connect.get_client(dsn=server.dsn, compress=False)
    admin.command(f"CREATE DATABASE IF NOT EXISTS {DB}")
    cl = clickhouse_connect.get_client(dsn=f"{server.dsn}{DB}", compress=False)
    cl.command(TABLE.format(table="spans"))
    cl.insert("spans", span_columns(ROWS), column_names=COLUMNS, column_oriented=True)
    return cl


def test_handshake_and_ping(server: ClickHouseHTTPServer, client: Any) -> None:
    assert client.server_version.startswith("26.")
    assert client.command("SELECT currentDatabase()") == DB
    with urllib.request.urlopen(f"{server.url}/ping") as response:
        assert response.read() == b"Ok.\n"
    assert client.ping()


def test_column_oriented_insert_roundtrip(client: Any) -> None:
    result = client.query("SELECT * FROM spans WHERE span_id = {sid:FixedString(8)}", {"sid": (7).to_bytes(8)})
    (row,) = result.named_results()
    assert row["project_id"] == "proj-a"
    assert row["start_time"] == (T0 + timedelta(microseconds=7)).replace(tzinfo=None)
    assert row["attributes"] == {"gen_ai.request.model": "m", "i": "7"}
    assert row["tags"] == ["t1", "t2"]
    assert row["cost"] == pytest.approx(0.07)
    assert client.query("SELECT count(), countIf(cost IS NULL) FROM spans").result_rows == [(ROWS, ROWS // 10)]
    types = client.query("SELECT toTypeName(start_time), toTypeName(project_id) FROM spans LIMIT 1")
    assert types.result_rows == [("DateTime64(9, 'UTC')", "LowCardinality(String)")]


def test_replacing_merge_tree_dedupes_on_final(client: Any) -> None:
    client.command(TABLE.format(table="spans_dedupe"))
    for version, name in ((1, "first"), (2, "retry")):
        data = span_columns(100, version=version, name=name)
        client.insert("spans_dedupe", data, column_names=COLUMNS, column_oriented=True)
    rows = client.query("SELECT count(), countIf(name LIKE 'retry%') FROM spans_dedupe FINAL").result_rows
    assert rows == [(100, 100)]


def test_large_insert_streams_through(client: Any) -> None:
    """Tens of MB arrive as a chunked body and reach chDB in several appends."""
    client.command("CREATE TABLE IF NOT EXISTS bulk (id UInt64, body String) ENGINE = MergeTree ORDER BY id")
    n = 150_000
    bodies = [f"{i:08d}" + "x" * 120 for i in range(n)]
    summary = client.insert("bulk", [list(range(n)), bodies], column_names=["id", "body"], column_oriented=True)
    assert summary.written_rows == n
    assert client.query("SELECT count(), sum(length(body)) FROM bulk").result_rows == [(n, n * 128)]


def test_typed_parameters_are_bound_server_side(client: Any) -> None:
    tricky = 'it\'s a "quote", a back\\slash, a\ttab and\na newline; DROP TABLE spans --'
    params = {"s": tricky, "ids": [1, 2, 3], "since": T0 + timedelta(microseconds=2), "p": "proj-a"}
    sql = """
        SELECT {s:String} AS s, length({s:String}) AS n, (
            SELECT count() FROM spans
            WHERE project_id = {p:String} AND start_time >= {since:DateTime64(9, 'UTC')}
              AND reinterpretAsUInt64(reverse(span_id)) IN {ids:Array(UInt64)}
        ) AS hits
    """
    # span 1 is too early, span 3 belongs to proj-b: only span 2 matches
    assert client.query(sql, parameters=params).result_rows == [(tricky, len(tricky.encode()), 1)]
    long_list = [f"value-{i}" for i in range(500)]  # over 4 KiB: sent as multipart form fields
    assert client.query("SELECT length({v:Array(String)})", {"v": long_list}).result_rows == [(500,)]


def test_query_arrow_and_df(client: Any) -> None:
    table = client.query_arrow("SELECT project_id, count() AS n FROM spans GROUP BY project_id ORDER BY project_id")
    assert table.column_names == ["project_id", "n"]
    assert table.column("n").to_pylist() == [ROWS * 2 // 3, ROWS // 3]
    df = client.query_df("SELECT name, tags, cost FROM spans ORDER BY span_id LIMIT 5")
    assert list(df["name"]) == [f"call {i}" for i in range(5)]
    assert list(df["tags"][1]) == ["t1", "t1"]


def test_sql_error_is_a_database_error_with_clickhouse_text(client: Any, server: ClickHouseHTTPServer) -> None:
    with pytest.raises(DatabaseError, match="UNKNOWN_TABLE") as info:
        client.query("SELECT * FROM no_such_table")
    assert info.value.code == 60
    assert "DB::Exception" in str(info.value)
    with pytest.raises(DatabaseError, match="Code: 62"):
        client.command("SELEC 1")
    with pytest.raises(DatabaseError, match="Code: 27"):  # a setting value the engine cannot parse
        client.query("SELECT 1", settings={"max_threads": "many"})
    assert client.command("SELECT 1") == 1
    request = urllib.request.Request(f"{server.url}/?query=SELECT%20nope", method="GET")
    with pytest.raises(urllib.error.HTTPError) as http_error:
        urllib.request.urlopen(request)
    assert http_error.value.code == 500
    assert http_error.value.headers["X-ClickHouse-Exception-Code"] == "47"


def test_session_settings_persist_and_url_settings_do_not(client: Any) -> None:
    client.command("SET max_threads = 1")
    assert client.command("SELECT getSetting('max_threads')") == 1
    assert client.query("SELECT getSetting('max_threads')", settings={"max_threads": 3}).result_rows == [(3,)]
    assert client.command("SELECT getSetting('max_threads')") == 1


def test_compressed_client_and_concurrent_clients(server: ClickHouseHTTPServer, client: Any) -> None:
    compressed = server.client(DB, compress=True)
    assert (
        compressed.query("SELECT count() FROM spans").result_rows
        == client.query("SELECT count() FROM spans").result_rows
    )
    errors: list[BaseException] = []

    def work() -> None:
        try:
            own = server.client(DB)
            for _ in range(10):
                own.query("SELECT count() FROM spans WHERE project_id = {p:String}", {"p": "proj-b"})
        except BaseException as ex:  # collected for the main thread
            errors.append(ex)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_kill_restart_keeps_data_and_outage_fails_fast(tmp_path: Path) -> None:
    with ClickHouseHTTPServer(tmp_path / "ch") as srv:
        port = srv.port
        cl = srv.client()
        cl.command("CREATE TABLE t (id UInt64, s String) ENGINE = MergeTree ORDER BY id")
        cl.insert(
            "t",
            [list(range(1000)), [f"s{i}" for i in range(1000)]],
            column_names=["id", "s"],
            column_oriented=True,
        )

        srv.kill()
        assert not srv.running
        assert not srv.ping()
        started = time.monotonic()
        with pytest.raises(OperationalError):
            cl.query("SELECT count() FROM t")
        assert time.monotonic() - started < 5

        srv.start()
        assert srv.port == port
        assert cl.query("SELECT count(), sum(id) FROM t").result_rows == [(1000, 499500)]

        srv.restart()  # a graceful stop, then a start
        assert cl.command("SELECT count() FROM t") == 1000


def test_paused_server_times_out_then_recovers(server: ClickHouseHTTPServer) -> None:
    impatient = server.client(send_receive_timeout=1)
    server.pause()
    try:
        started = time.monotonic()
        with pytest.raises(OperationalError, match="timed out"):
            impatient.query("SELECT 1")
        assert time.monotonic() - started < 5
    finally:
        server.resume()
    assert impatient.command("SELECT 2") == 2
