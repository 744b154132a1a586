"""The one store class: every read and write of Loopwise data goes through it.

Writes of spans and scores are unscoped because each record already carries the ``project_id``
that authentication assigned; reads go through :meth:`ClickHouseStore.project`, which returns a
:class:`ProjectStore` that filters every statement by that project, so isolation does not depend
on the route remembering to add a ``WHERE``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from clickhouse_connect.driver.client import Client

from loopwise_collector.errors import StoreError
from loopwise_collector.store._connection import StoreTarget, connect, quote_identifier, translate_errors
from loopwise_collector.store.migrate import apply_migrations
from loopwise_collector.store.models import Project
from loopwise_collector.store.project import ProjectStore
from loopwise_collector.store.records import ScoreRecord, SpanRecord

log = logging.getLogger("loopwise.store")

# Column name -> how to get it from a SpanRecord, in table order (derived columns included).
_SPAN_COLUMNS: tuple[tuple[str, Callable[[SpanRecord], Any]], ...] = (
    ("project_id", lambda r: r.project_id),
    ("trace_id", lambda r: r.trace_id),
    ("span_id", lambda r: r.span_id),
    ("parent_span_id", lambda r: r.parent_span_id),
    ("name", lambda r: r.name),
    ("kind", lambda r: r.kind),
    ("start_time", lambda r: r.start_time_ns),
    ("end_time", lambda r: r.end_time_ns),
    ("duration_ms", lambda r: (r.end_time_ns - r.start_time_ns) / 1e6),
    ("status_code", lambda r: r.status_code),
    ("status_message", lambda r: r.status_message),
    ("service_name", lambda r: r.service_name),
    ("scope_name", lambda r: r.scope_name),
    ("span_type", lambda r: r.span_type),
    ("operation", lambda r: r.operation),
    ("provider", lambda r: r.provider),
    ("request_model", lambda r: r.request_model),
    ("response_model", lambda r: r.response_model),
    ("model", lambda r: r.response_model or r.request_model),
    ("input_tokens", lambda r: r.input_tokens),
    ("output_tokens", lambda r: r.output_tokens),
    ("cache_read_input_tokens", lambda r: r.cache_read_input_tokens),
    ("reasoning_output_tokens", lambda r: r.reasoning_output_tokens),
    ("cost_usd", lambda r: r.cost_usd),
    ("cost_source", lambda r: r.cost_source),
    ("input", lambda r: r.input),
    ("output", lambda r: r.output),
    ("system_instructions", lambda r: r.system_instructions),
    ("user_id", lambda r: r.user_id),
    ("session_id", lambda r: r.session_id),
    ("tags", lambda r: r.tags),
    ("variant", lambda r: r.variant),
    ("prompt_name", lambda r: r.prompt_name),
    ("prompt_version", lambda r: r.prompt_version),
    ("attributes", lambda r: r.attributes),
    ("resource_attributes", lambda r: r.resource_attributes),
    ("events", lambda r: r.events),
    ("links", lambda r: r.links),
    ("has_error", lambda r: r.status_code == "error"),
    ("retention_days", lambda r: r.retention_days),
    ("version", lambda r: r.version),
)
_SPAN_COLUMN_NAMES = [name for name, _ in _SPAN_COLUMNS]

_SCORE_COLUMNS: tuple[tuple[str, Callable[[ScoreRecord], Any]], ...] = (
    ("project_id", lambda r: r.project_id),
    ("score_id", lambda r: r.score_id),
    ("trace_id", lambda r: r.trace_id),
    ("span_id", lambda r: r.span_id),
    ("name", lambda r: r.name),
    ("value", lambda r: r.value),
    ("label", lambda r: r.label),
    ("explanation", lambda r: r.explanation),
    ("source", lambda r: r.source),
    ("evaluator_version", lambda r: r.evaluator_version),
    ("metadata", lambda r: r.metadata),
    ("created_at", lambda r: r.created_at_ns // 1_000_000),
    ("version", lambda r: r.version),
)


def hash_api_key(key: str) -> str:
    """SHA-256 hex of an API key: keys are stored and looked up only in this form.

    Example:
        >>> len(hash_api_key("lw-secret"))
        64
    """
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ClickHouseStore:
    """ClickHouse storage over clickhouse-connect, on embedded chDB or a server.

    Example:
        >>> store = ClickHouseStore("chdb:///tmp/loopwise-doctest?database=doc")  # doctest: +SKIP
        >>> store.open()  # connects and applies migrations  # doctest: +SKIP
        >>> store.project("demo").list_traces(TraceFilter())  # doctest: +SKIP
    """

    def __init__(self, dsn: str, *, cluster: str | None = None) -> None:
        self.target = StoreTarget.parse(dsn)
        self.cluster = cluster
        self.database = self.target.database
        self._db = quote_identifier(self.database)
        # On a cluster, a Distributed insert is by default only queued on the receiving node; the
        # collector acknowledges spans once inserted, so it waits until the shards have them.
        self._insert_settings: dict[str, Any] = {"distributed_foreground_insert": 1} if cluster else {}
        self._writer: Client | None = None
        self._write_lock = threading.Lock()
        # One reader per thread: a chDB handle serialises its calls, so API reads on the thread
        # pool must not queue behind a 10k-row insert on the writer.
        self._readers = threading.local()
        self._reader_clients: list[Client] = []
        self._readers_lock = threading.Lock()

    # --- lifecycle ---------------------------------------------------------------------------
    def open(self) -> None:
        """Connect and apply pending migrations. Raises StoreUnavailableError when unreachable."""
        self._writer = connect(self.target)
        applied = apply_migrations(self._writer, self.database, self.cluster)
        if applied:
            log.info("store %s at schema %d", self.target.redacted, applied[-1])

    def close(self) -> None:
        """Close every client this store opened."""
        with self._readers_lock:
            clients = [*self._reader_clients, *([self._writer] if self._writer else [])]
            self._reader_clients.clear()
            self._readers = threading.local()
        self._writer = None
        for client in clients:
            with contextlib.suppress(Exception):  # best effort: the engine may already be gone
                client.close()

    def ping(self) -> bool:
        """Whether ClickHouse answers a trivial query right now."""
        try:
            self.query("SELECT 1")
        except StoreError:
            return False
        return True

    # --- low-level access, used by ProjectStore -----------------------------------------------
    def reader(self) -> Client:
        """This thread's read client, created on first use."""
        client: Client | None = getattr(self._readers, "client", None)
        if client is None:
            client = connect(self.target)
            self._readers.client = client
            with self._readers_lock:
                self._reader_clients.append(client)
        return client

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> Sequence[Sequence[Any]]:
        """Run a read; ``{db}`` in ``sql`` becomes the quoted database. Values go only in parameters."""
        with translate_errors():
            try:
                return self.reader().query(sql.replace("{db}", self._db), parameters=parameters).result_rows
            except Exception:
                # A reader that failed mid-outage may hold a dead connection: start fresh next time.
                self._readers.client = None
                raise

    def _insert(self, table: str, columns: list[list[Any]], names: list[str]) -> None:
        if self._writer is None:
            self._writer = connect(self.target)
        with self._write_lock, translate_errors():
            self._writer.insert(
                f"{self._db}.{table}",
                columns,
                column_names=names,
                column_oriented=True,
                settings=self._insert_settings,
            )

    # --- writes ------------------------------------------------------------------------------
    def insert_spans(self, records: Sequence[SpanRecord]) -> None:
        """Insert spans in one batch; re-sent spans dedupe on (project, hour, trace, span)."""
        if records:
            self._insert("spans", [[get(r) for r in records] for _, get in _SPAN_COLUMNS], _SPAN_COLUMN_NAMES)

    def insert_scores(self, records: Sequence[ScoreRecord]) -> None:
        """Insert scores; a score with the same id replaces the older copy."""
        if records:
            self._insert(
                "scores",
                [[get(r) for r in records] for _, get in _SCORE_COLUMNS],
                [n for n, _ in _SCORE_COLUMNS],
            )

    # --- projects and keys --------------------------------------------------------------------
    def ensure_project(self, project_id: str, name: str, retention_days: int) -> Project:
        """Create the project unless it exists; an existing one keeps its settings."""
        existing = self.get_project(project_id)
        if existing is not None:
            return existing
        now = time.time_ns()
        self._insert(
            "projects",
            [[project_id], [name], [retention_days], [now // 1_000_000], [now]],
            ["project_id", "name", "retention_days", "created_at", "version"],
        )
        return Project(project_id, name, retention_days)

    def set_retention(self, project_id: str, retention_days: int) -> Project:
        """Change a project's retention; it applies to spans ingested from now on."""
        project = self.get_project(project_id)
        if project is None:
            raise StoreError(f"unknown project {project_id!r}")
        now = time.time_ns()
        self._insert(
            "projects",
            [[project_id], [project.name], [retention_days], [now // 1_000_000], [now]],
            ["project_id", "name", "retention_days", "created_at", "version"],
        )
        return Project(project_id, project.name, retention_days)

    def get_project(self, project_id: str) -> Project | None:
        """The project, or ``None``."""
        rows = self.query(
            "SELECT project_id, name, retention_days FROM {db}.projects FINAL WHERE project_id = {p:String}",
            {"p": project_id},
        )
        return Project(rows[0][0], rows[0][1], int(rows[0][2])) if rows else None

    def add_api_key(self, project_id: str, key: str, label: str = "") -> None:
        """Register a key for a project (idempotent); only its hash is stored."""
        now = time.time_ns()
        self._insert(
            "api_keys",
            [[hash_api_key(key)], [project_id], [label], [False], [now // 1_000_000], [now]],
            ["key_hash", "project_id", "label", "revoked", "created_at", "version"],
        )

    def revoke_api_key(self, key: str) -> None:
        """Revoke a key: later lookups fail."""
        rows = self.query(
            "SELECT project_id, label FROM {db}.api_keys FINAL WHERE key_hash = {h:String}",
            {"h": hash_api_key(key)},
        )
        if rows:
            now = time.time_ns()
            self._insert(
                "api_keys",
                [[hash_api_key(key)], [rows[0][0]], [rows[0][1]], [True], [now // 1_000_000], [now]],
                ["key_hash", "project_id", "label", "revoked", "created_at", "version"],
            )

    def project_for_key(self, key: str) -> Project | None:
        """The project an active key belongs to, or ``None`` for an unknown or revoked key."""
        # Two lookups, not a JOIN: on a sharded cluster a JOIN of two Distributed tables is refused
        # under ClickHouse's default distributed_product_mode.
        rows = self.query(
            "SELECT project_id FROM {db}.api_keys FINAL WHERE key_hash = {h:String} AND NOT revoked",
            {"h": hash_api_key(key)},
        )
        return self.get_project(rows[0][0]) if rows else None

    def project(self, project_id: str) -> ProjectStore:
        """A view of the store that can only read ``project_id``'s rows."""
        return ProjectStore(self, project_id)
