"""DSN parsing, migration rendering for single node and cluster, and settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopwise_collector import Settings
from loopwise_collector.cli import local_credentials
from loopwise_collector.store import StoreTarget
from loopwise_collector.store.migrate import load_migrations

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("dsn", "backend", "database"),
    [
        ("chdb:///var/lib/lw", "chdb", "loopwise"),
        ("chdb:///var/lib/lw?database=obs", "chdb", "obs"),
        ("http://localhost:8123", "http", "loopwise"),
        ("https://u:p@ch.example.com:8443/prod", "http", "prod"),
    ],
)
def test_dsn_parsing(dsn: str, backend: str, database: str) -> None:
    target = StoreTarget.parse(dsn)
    assert (target.backend, target.database) == (backend, database)


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("postgres://x/y", "unsupported store DSN scheme"),
        ("chdb://relative/dir", "must be absolute"),
        ("http:///nohost", "needs a host"),
        ("http://h:8123/bad-name;drop", "must match"),
    ],
)
def test_bad_dsns_explain_the_fix(dsn: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StoreTarget.parse(dsn)


def test_passwords_are_redacted() -> None:
    target = StoreTarget.parse("https://admin:hunter2@ch:8443/db")
    assert "hunter2" not in target.redacted and "admin:***@ch:8443" in target.redacted


def test_single_node_migrations_have_no_cluster_statements() -> None:
    statements = [s for m in load_migrations() for s in m.statements("loopwise", None)]
    text = "\n".join(statements)
    assert "ON CLUSTER" not in text and "Distributed" not in text and "Replicated" not in text
    spans = next(s for s in statements if "`loopwise`.spans" in s)
    assert "ReplacingMergeTree(version)" in spans
    assert "ORDER BY (project_id, toStartOfHour(start_time), trace_id, span_id)" in spans
    assert "PARTITION BY toYYYYMM(start_time)" in spans
    assert "TTL toDateTime(start_time) + toIntervalDay(retention_days)" in spans


def test_cluster_migrations_use_replicated_local_tables_behind_distributed() -> None:
    statements = [s for m in load_migrations() for s in m.statements("loopwise", "prod")]
    local = next(s for s in statements if "`loopwise`.spans_local" in s and "CREATE TABLE" in s.split("\n")[0])
    assert "ON CLUSTER `prod`" in local and "ReplicatedReplacingMergeTree(version)" in local
    dist = next(s for s in statements if "Distributed(" in s and "spans_local" in s)
    assert "Distributed('prod', `loopwise`, spans_local, cityHash64(trace_id))" in dist
    assert all("ON CLUSTER" in s for s in statements)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LOOPWISE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LOOPWISE_INGEST__BATCH_ROWS", "123")
    monkeypatch.setenv("LOOPWISE_INIT_PROJECTS", "a:k1, b:k2")
    s = Settings()
    assert s.ingest.batch_rows == 123
    assert s.seed_projects() == [("a", "k1"), ("b", "k2")]
    assert s.store_dsn() == f"chdb://{tmp_path}/data?database=loopwise"
    assert "k1" not in repr(s)  # seeded keys are secrets
    monkeypatch.setenv("LOOPWISE_INIT_PROJECTS", "no-colon")
    with pytest.raises(ValueError, match="name:key"):
        Settings().seed_projects()


def test_local_credentials_are_stable_and_private(tmp_path: Path) -> None:
    first = local_credentials(tmp_path)
    assert local_credentials(tmp_path) == first
    assert (tmp_path / "credentials.json").stat().st_mode & 0o077 == 0
