"""Shared fixtures.

chDB allows one data directory per process, so this test process opens exactly one (a session
temp dir) and isolates tests by database name. The HTTP backend is the harness in
``tests/support``: a chDB-backed ClickHouse HTTP server in its own process, reached by the
unmodified clickhouse-connect HTTP client.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.clickhouse_http import ClickHouseHTTPServer
from tests.support.openai_server import OpenAIServer
from tests.support.tiny_gpt2 import build_tiny_gpt2

BACKENDS = ("chdb", "http")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-gpu", action="store_true", help="run tests marked gpu (needs CUDA)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-gpu"):
        return
    skip = pytest.mark.skip(reason="GPU test: run with --run-gpu on a CUDA machine (make gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one chDB data directory this test process may open."""
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture(scope="session")
def clickhouse_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseHTTPServer]:
    """A session-wide ClickHouse HTTP endpoint over chDB, in its own process."""
    base = tmp_path_factory.mktemp("chhttp")
    server = ClickHouseHTTPServer(base / "data", log_path=base / "server.log")
    server.start()
    yield server
    server.stop()


def unique_database() -> str:
    return f"t_{os.getpid()}_{uuid.uuid4().hex[:10]}"


def chdb_dsn(chdb_dir: Path, database: str | None = None) -> str:
    return f"chdb://{chdb_dir}?database={database or unique_database()}"


def http_dsn(server: ClickHouseHTTPServer, database: str | None = None) -> str:
    # The harness speaks uncompressed HTTP only.
    return f"{server.url}/{database or unique_database()}?compress=false"


@pytest.fixture(params=BACKENDS)
def store_dsn(request: pytest.FixtureRequest, chdb_dir: Path) -> str:
    """A fresh database on each backend this machine has: embedded chDB and a server over HTTP."""
    if request.param == "chdb":
        return chdb_dsn(chdb_dir)
    return http_dsn(request.getfixturevalue("clickhouse_http"))


@pytest.fixture(scope="session")
def openai_server() -> Iterator[OpenAIServer]:
    """A session-wide fake OpenAI API on loopback (`tests/support/openai_server.py`).

    Shared, so its knobs and request log outlive a test: a test that sets knobs, injects failures or reads
    `requests` should call `openai_server.reset()` first.
    """
    with OpenAIServer() as server:
        yield server


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A tiny GPT-2 checkpoint directory, built offline once per session (`tests/support/tiny_gpt2.py`).

    Offline mode stays on for the rest of the session, so a test that mistypes the path fails fast instead of
    trying the Hub. huggingface_hub reads HF_HUB_OFFLINE once, at import, so its module flag is set as well.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        import huggingface_hub.constants

        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        yield build_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))
