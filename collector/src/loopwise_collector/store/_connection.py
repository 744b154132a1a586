"""DSN handling, client creation and driver-error translation for clickhouse-connect.

Both backends go through ``clickhouse_connect.get_client``: ``chdb:///abs/dir`` for the embedded
engine and ``http(s)://user:pass@host:port/db`` for a server. The database named in the DSN (the
path for HTTP, ``?database=`` for chDB) is where the store keeps its tables; it defaults to
``loopwise``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, DatabaseError, OperationalError

from loopwise_collector.errors import StoreError, StoreUnavailableError

DEFAULT_DATABASE = "loopwise"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True, slots=True)
class StoreTarget:
    """A parsed store DSN: which backend, where, and which database.

    Example:
        >>> t = StoreTarget.parse("http://u:p@ch.internal:8123/obs")
        >>> (t.backend, t.database, t.redacted)
        ('http', 'obs', 'http://u:***@ch.internal:8123/obs')
    """

    dsn: str
    backend: str  # "chdb" | "http"
    database: str
    client_dsn: str  # what clickhouse_connect.get_client receives (no database for chdb)

    @classmethod
    def parse(cls, dsn: str) -> StoreTarget:
        """Parse and validate a DSN, raising ``ValueError`` with a fix-it message."""
        parts = urlsplit(dsn)
        scheme = parts.scheme.lower()
        query = dict(parse_qsl(parts.query))
        if scheme == "chdb":
            if parts.netloc or not parts.path.startswith("/"):
                raise ValueError(f"chdb DSN must be absolute, like chdb:///var/lib/loopwise/data (got {dsn!r})")
            database = query.pop("database", DEFAULT_DATABASE)
            client_dsn = urlunsplit(("chdb", "", parts.path, urlencode(query), ""))
            backend = "chdb"
        elif scheme in ("http", "https"):
            if not parts.hostname:
                raise ValueError(f"HTTP DSN needs a host, like http://default:@localhost:8123/loopwise (got {dsn!r})")
            database = unquote(parts.path.strip("/")) or query.pop("database", DEFAULT_DATABASE)
            client_dsn = urlunsplit((scheme, parts.netloc, "/", urlencode(query), ""))
            backend = "http"
        else:
            raise ValueError(
                f"unsupported store DSN scheme {parts.scheme!r}: use chdb:///dir or http(s)://host:port/db"
            )
        if not _IDENTIFIER.match(database):
            raise ValueError(f"database name {database!r} must match {_IDENTIFIER.pattern}")
        return cls(dsn=dsn, backend=backend, database=database, client_dsn=client_dsn)

    @classmethod
    def embedded(cls, data_dir: Path, database: str = DEFAULT_DATABASE) -> StoreTarget:
        """The default embedded store under a data directory."""
        return cls.parse(f"chdb://{data_dir.resolve()}?database={database}")

    @property
    def redacted(self) -> str:
        """The DSN with any password masked, safe for logs."""
        parts = urlsplit(self.dsn)
        if parts.password is None:
            return self.dsn
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def connect(target: StoreTarget) -> Client:
    """Open a clickhouse-connect client for ``target``, translating failures."""
    if target.backend == "chdb":
        directory = Path(urlsplit(target.client_dsn).path)
        directory.mkdir(parents=True, exist_ok=True)
        try:
            return clickhouse_connect.get_client(dsn=target.client_dsn)
        except ClickHouseError as exc:
            # chDB reports a held lock only as "Error initializing EmbeddedServer" (the cause goes to
            # stderr), so say what it almost always means and what to do about it.
            if "EmbeddedServer" in str(exc) or "Cannot lock file" in str(exc):
                raise StoreError(
                    f"the embedded store at {directory} is already in use by another process: chDB allows one "
                    "process per data directory. Stop the other collector, or give this one its own "
                    "LOOPWISE_DATA_DIR; other tools reach the data through the collector's HTTP API."
                ) from exc
            raise StoreError(f"cannot open the embedded store at {directory}: {_first_line(exc)}") from exc
    try:
        with translate_errors():
            return _connect_http(target)
    except TypeError as exc:  # clickhouse-connect's answer to an unknown DSN query parameter
        raise ValueError(
            f"store DSN {target.redacted!r} has an option clickhouse-connect does not know: {exc}"
        ) from exc


def _connect_http(target: StoreTarget) -> Client:
    # A shared session id would serialise concurrent queries ("session is locked"), and the
    # store never needs session state: every statement names its database.
    return clickhouse_connect.get_client(
        dsn=target.client_dsn, autogenerate_session_id=False, connect_timeout=5, send_receive_timeout=60
    )


def quote_identifier(name: str) -> str:
    """Backtick-quote an identifier that was validated against the identifier pattern."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"invalid identifier {name!r}")
    return f"`{name}`"


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn driver exceptions into the collector's store errors at the boundary."""
    try:
        yield
    except OperationalError as exc:
        raise StoreUnavailableError(f"ClickHouse is unreachable: {_first_line(exc)}") from exc
    except (DatabaseError, ClickHouseError) as exc:
        raise StoreError(f"ClickHouse error: {_first_line(exc)}") from exc
    except (ConnectionError, TimeoutError) as exc:
        raise StoreUnavailableError(f"ClickHouse is unreachable: {exc}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__
