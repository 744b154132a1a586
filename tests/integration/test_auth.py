"""API-key resolution: hashing, caching, revocation and behaviour while ClickHouse is down."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopwise_collector.auth import KeyResolver
from loopwise_collector.errors import AuthenticationError, StoreUnavailableError
from loopwise_collector.store import ClickHouseStore
from tests.conftest import http_dsn
from tests.support.clickhouse_http import ClickHouseHTTPServer

pytestmark = pytest.mark.integration


@pytest.fixture
def store(store_dsn: str):
    s = ClickHouseStore(store_dsn)
    s.open()
    s.ensure_project("demo", "Demo", 14)
    s.add_api_key("demo", "good-key")
    yield s
    s.close()


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing API key"),
        ("", "missing API key"),
        ("good-key", "malformed Authorization header"),
        ("Basic good-key", "malformed Authorization header"),
        ("Bearer ", "malformed Authorization header"),
        ("Bearer wrong-key", "invalid API key"),
    ],
)
def test_rejections_say_what_is_wrong(store: ClickHouseStore, header: str | None, message: str) -> None:
    with pytest.raises(AuthenticationError, match=message):
        KeyResolver(store).resolve(header)


def test_valid_key_and_revocation(store: ClickHouseStore) -> None:
    resolver = KeyResolver(store, ttl=0)  # no caching: see revocation at once
    project = resolver.resolve("Bearer good-key")
    assert (project.project_id, project.retention_days) == ("demo", 14)
    assert resolver.resolve("bearer good-key") == project  # the scheme is case-insensitive
    store.revoke_api_key("good-key")
    with pytest.raises(AuthenticationError):
        resolver.resolve("Bearer good-key")


def test_known_keys_keep_working_through_an_outage(tmp_path: Path) -> None:
    server = ClickHouseHTTPServer(tmp_path / "ch", log_path=tmp_path / "ch.log")
    server.start()
    store = ClickHouseStore(http_dsn(server, "auth"))
    store.open()
    store.ensure_project("demo", "Demo", 30)
    store.add_api_key("demo", "cached-key")
    store.add_api_key("demo", "never-seen-key")
    resolver = KeyResolver(store, ttl=0)  # expired at once: only the outage fallback can answer
    resolver.pin("seeded-key", store.get_project("demo"))
    assert resolver.resolve("Bearer cached-key").project_id == "demo"
    server.kill()
    try:
        assert resolver.resolve("Bearer cached-key").project_id == "demo"
        assert resolver.resolve("Bearer seeded-key").project_id == "demo"
        with pytest.raises(StoreUnavailableError):  # cannot verify: 503 so the client retries
            resolver.resolve("Bearer never-seen-key")
    finally:
        store.close()
        server.stop()
