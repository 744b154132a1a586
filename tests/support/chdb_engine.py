"""The chDB side of the ClickHouse HTTP test harness: connections, sessions, settings, INSERT splitting.

Why a separate module: `chdb_http_server` speaks HTTP, and this part maps ClickHouse's per-request state
(database, URL settings, sessions) onto chDB connections. Importing it opens no engine; only `Engine(path)`
does, and since a process may host one engine path only, only the server subprocess creates one.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import chdb

UNKNOWN_SETTING = 115
SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MORE = object()  # split_insert(): the INSERT header is not complete yet, read more of the body
_CODE = re.compile(r"Code: (\d+)\.")
_TOKEN = re.compile(rb"""\s+|--[^\n]*|/\*.*?\*/|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|`(?:[^`\\]|\\.)*`|\w+|.""", re.S)
_FORMAT_NAME = re.compile(rb"\s+(\w+)")


class QueryError(Exception):
    """A failure to report the way ClickHouse does: an error code and `Code: N. DB::Exception: ...` text."""

    def __init__(self, message: str, code: int | None = None) -> None:
        idx = message.find("Code: ")  # chDB may prefix its own words, e.g. "Streaming insert failed: "
        self.message = message[idx:].strip() if idx >= 0 else message.strip()
        found = _CODE.search(self.message)
        self.code = code if code is not None else int(found.group(1)) if found else 1001
        if not found:
            self.message = f"Code: {self.code}. DB::Exception: {self.message}"
        super().__init__(self.message)


def quote(value: str, mark: str = "'") -> str:
    """A ClickHouse string literal (or, with mark="`", an identifier)."""
    return mark + value.replace("\\", "\\\\").replace(mark, "\\" + mark) + mark


class Connection:
    """One chDB connection plus what the server applied to it: the database and the URL settings.

    URL settings belong to one request while SET statements persist in a session, as in ClickHouse. They are
    applied lazily, since a client sends the same ones every time; `base` keeps the session's own value of
    each applied setting, restored when a later request stops sending it.
    """

    def __init__(self, conn: Any, session: bool) -> None:
        self.conn = conn
        self.session = session
        self.database: str | None = None
        self.settings: dict[str, str] = {}
        self.base: dict[str, str] = {}
        self.lock = threading.Lock()
        self.last_used = time.monotonic()
        self.reusable = True

    def run(self, sql: str | bytes, fmt: str = "TabSeparated", params: dict[str, str] | None = None) -> Any:
        try:
            return self.conn.query(sql, fmt, params=params or {})
        except Exception as ex:
            raise QueryError(str(ex)) from None

    def insert(self, statement: str, fmt: str, chunks: Iterable[bytes]) -> Any:
        """Stream `statement FORMAT fmt` data through chDB's insert path, appending a few MiB at a time."""
        try:
            inserter = self.conn.send_insert(statement, fmt)
        except Exception as ex:
            raise QueryError(str(ex)) from None
        try:
            pending: list[bytes] = []
            size = 0
            for chunk in chunks:
                pending.append(chunk)
                size += len(chunk)
                if size >= 4 << 20:
                    inserter.append(b"".join(pending))
                    pending, size = [], 0
            if size:
                inserter.append(b"".join(pending))
            return inserter.finish()
        except Exception as ex:
            with contextlib.suppress(Exception):
                inserter.cancel()
            raise QueryError(str(ex)) from None

    def _set(self, name: str, literal: str) -> None:
        try:
            self.run(f"SET {name} = {literal}")
        except QueryError as ex:
            if ex.code != UNKNOWN_SETTING:  # settings chDB does not know are ignored
                raise

    def _current(self, names: Iterable[str]) -> dict[str, str]:
        """The SET literal that reproduces each setting's current value (DEFAULT when unchanged)."""
        quoted = ", ".join(quote(name) for name in names)
        if not quoted:
            return {}
        sql = f"SELECT name, value, changed FROM system.settings WHERE name IN ({quoted})"
        current = {}
        for line in self.run(sql, "JSONEachRow").bytes().splitlines():
            row = json.loads(line)
            value = row["value"]
            verbatim = len(value) > 1 and value[0] == value[-1] == "'"  # e.g. max_threads = 'auto(8)'
            current[row["name"]] = "DEFAULT" if not row["changed"] else value if verbatim else quote(value)
        return current

    def prepare(self, database: str | None, settings: dict[str, str]) -> None:
        """Bring the connection to the request's database and URL settings, changing only what differs."""
        if database and database != self.database:
            self.run(f"USE {quote(database, '`')}")
            self.database = database
        settings = {k: v for k, v in settings.items() if SETTING_NAME.match(k)}
        for name in self.settings.keys() - settings.keys():
            with contextlib.suppress(QueryError):
                self._set(name, self.base.pop(name, "DEFAULT"))
            del self.settings[name]
        changed = {k: v for k, v in settings.items() if self.settings.get(k) != v}
        if self.session and changed.keys() - self.base.keys():
            self.base.update(self._current(changed.keys() - self.base.keys()))
        for name, value in changed.items():  # recorded one by one, so a failed SET leaves no stale state
            try:
                self._set(name, quote(value))
            except QueryError:
                if name not in self.settings:
                    self.base.pop(name, None)  # `base` only covers settings this server has applied
                raise
            self.settings[name] = value

    def after_set_statement(self) -> None:
        """A SET statement changed session settings: a URL setting it overrode is now the session's own value,
        so forget having applied it (a later request sending it captures the new `base`)."""
        for name, literal in self._current(self.settings).items():
            if literal != quote(self.settings[name]):
                del self.settings[name]
                self.base.pop(name, None)


class Engine:
    """The one chDB engine of this process: a pool of sessionless connections and one per HTTP session."""

    def __init__(self, path: str) -> None:
        # This connection keeps the engine, and the lock on its directory, open for the life of the process.
        self._root = Connection(chdb.connect(path), session=False)
        self.path = path
        self.timezone = self._root.run("SELECT timezone()").bytes().decode().strip()
        self._idle: list[Connection] = []
        self._sessions: dict[str, Connection] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def connection(self, session_id: str | None, session_timeout: float) -> Iterator[Connection]:
        """Lend a connection: the session's own (serialising its requests), or a pooled one."""
        if session_id:
            with self._lock:
                self._expire_sessions(session_timeout)
                conn = self._sessions.get(session_id)
                if conn is None:
                    conn = self._sessions[session_id] = Connection(chdb.connect(self.path), session=True)
            with conn.lock:
                try:
                    yield conn
                finally:
                    conn.last_used = time.monotonic()
            return
        with self._lock:
            conn = self._idle.pop() if self._idle else Connection(chdb.connect(self.path), session=False)
        try:
            yield conn
        finally:
            with self._lock:
                if conn.reusable and len(self._idle) < 32:
                    self._idle.append(conn)
                else:
                    conn.conn.close()

    def _expire_sessions(self, timeout: float) -> None:
        now = time.monotonic()
        for sid, conn in list(self._sessions.items()):
            if now - conn.last_used > max(timeout, 60.0) and conn.lock.acquire(blocking=False):
                del self._sessions[sid]
                conn.conn.close()
                conn.lock.release()

    def close(self) -> None:
        for conn in [*self._idle, *self._sessions.values(), self._root]:
            with contextlib.suppress(Exception):
                conn.conn.close()


def split_insert(buf: bytes, final: bool) -> Any:
    """Find where the data of `INSERT ... FORMAT <fmt>` starts, by ClickHouse's rule: after the format name,
    skip blanks, then at most one line break. Returns (statement, format, data_offset); None when the SQL is
    not such an INSERT (VALUES and SELECT inserts run as ordinary queries); MORE when it cannot tell yet."""
    pos, first, depth = 0, True, 0
    more = None if final else MORE
    while pos < len(buf):
        m = _TOKEN.match(buf, pos)
        assert m is not None  # the pattern ends with a catch-all
        tok, pos = m.group(), m.end()
        if tok[:1].isspace() or tok[:2] in (b"--", b"/*"):
            continue
        if tok in (b"'", b'"', b"`") or (tok == b"/" and buf[pos : pos + 1] in (b"*", b"")):
            return more  # an unterminated quote or comment
        if pos == len(buf) and not final:
            return MORE  # a word may go on in the next chunk
        word = tok.upper()
        if first:
            if word != b"INSERT":
                return None
            first = False
        elif tok in (b"(", b")"):
            depth += 1 if tok == b"(" else -1
        elif depth == 0 and word in (b"VALUES", b"SELECT", b"WITH"):
            return None
        elif depth == 0 and word == b"FORMAT":
            name = _FORMAT_NAME.match(buf, pos)
            if name is None:
                if buf[pos:].strip():
                    continue  # not the FORMAT clause, e.g. a `format(...)` table function
                return more
            if name.end() == len(buf) and not final:
                return MORE
            data = name.end()
            while data < len(buf) and buf[data] in b" \t\f":
                data += 1
            data += buf[data : data + 1] == b"\r"
            data += buf[data : data + 1] == b"\n"
            if data == len(buf) and not final:
                return MORE
            return buf[: m.start()].decode(), name.group(1).decode(), data
    return more
