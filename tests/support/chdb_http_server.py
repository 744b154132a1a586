"""ClickHouse's HTTP interface on loopback, served by embedded chDB. A TEST HARNESS, never a product feature.

Why: no registry ships a modern ClickHouse server, yet the store must be tested over `http://` with the
unmodified clickhouse-connect client. chDB is the real engine. It locks its data directory and allows one
engine path per process, so this runs as its own process, driven by `clickhouse_http.ClickHouseHTTPServer`:
`python -m tests.support.chdb_http_server --data-dir DIR --port PORT` (from the repository root).

Like ClickHouse, it takes the SQL from the `query` URL parameter followed by the body (or multipart form
fields), `database`, `default_format` and `param_<name>` (passed to chDB's `params=`, never spliced into SQL),
and a `session_id` gets its own chDB connection, so SET/USE/temporary tables persist. Other URL parameters
are settings for that request; those chDB does not know are ignored. `INSERT ... FORMAT <fmt>` bodies stream
into chDB's `send_insert`. Errors are HTTP 500 with `X-ClickHouse-Exception-Code` and `Code: N. ...` text.
Bodies may be gzip/deflate/lz4/zstd encoded; responses are compressed on `enable_http_compression=1`.
External data (file form fields) is not supported.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import chain
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.support.chdb_engine import MORE, Engine, QueryError, split_insert

try:
    import lz4.frame as lz4_frame
except ImportError:  # pragma: no cover - optional, like clickhouse-connect's own lz4 support
    lz4_frame = None
try:
    from backports import zstd
except ImportError:  # pragma: no cover
    zstd = None  # type: ignore[assignment]

DISPLAY_NAME = "chdb-http-harness"
EXCEPTION_CODE = "X-ClickHouse-Exception-Code"
TEXT = "text/plain; charset=UTF-8"
# URL parameters that steer the transport; they never reach the engine as settings.
TRANSPORT_PARAMS = frozenset(
    {
        "query", "database", "default_format", "user", "password", "quota_key", "query_id", "role",
        "session_id", "session_timeout", "session_check", "compress", "decompress", "buffer_size",
        "wait_end_of_query", "client_protocol_version", "send_progress_in_http_headers",
        "http_headers_progress_interval_ms", "enable_http_compression", "http_zlib_compression_level",
        "cancel_http_readonly_queries_on_client_close",
    }
)  # fmt: skip
_LEADING_NOISE = re.compile(rb"(?:\s+|--[^\n]*\n?|/\*.*?\*/|\()*", re.S)
_TRAILING_FORMAT = re.compile(rb"\bFORMAT\s+(\w+)\s*;?\s*$", re.I)
_RESULT_VERBS = frozenset({b"SELECT", b"WITH", b"SHOW", b"DESCRIBE", b"DESC", b"EXISTS", b"EXPLAIN"})


def _decoder(encoding: str) -> Callable[[bytes], bytes]:
    """A streaming decompressor for a request Content-Encoding. clickhouse-connect compresses each insert
    block as its own lz4/zstd frame, so a finished frame's leftover bytes start the next one."""
    factory: Callable[[], Any]
    if encoding in ("gzip", "deflate"):
        factory = lambda: zlib.decompressobj(47 if encoding == "gzip" else 15)  # noqa: E731
    elif encoding == "lz4" and lz4_frame is not None:
        factory = lz4_frame.LZ4FrameDecompressor
    elif encoding == "zstd" and zstd is not None:
        factory = zstd.ZstdDecompressor
    else:
        raise QueryError(f"Unsupported Content-Encoding {encoding!r}", code=1001)
    state = [factory()]

    def decode(chunk: bytes) -> bytes:
        out = []
        while chunk:
            out.append(state[0].decompress(chunk))
            chunk = state[0].unused_data if state[0].eof else b""
            if state[0].eof:
                state[0] = factory()
        return b"".join(out)

    return decode


def _compress(data: bytes, accept: str) -> tuple[bytes, str | None]:
    """Compress a response with the first Accept-Encoding this harness can produce."""
    for encoding in (e.split(";")[0].strip() for e in accept.split(",")):
        if encoding == "lz4" and lz4_frame is not None:
            return lz4_frame.compress(data), encoding
        if encoding == "zstd" and zstd is not None:
            return zstd.compress(data), encoding
        if encoding in ("gzip", "deflate"):
            obj = zlib.compressobj(1, zlib.DEFLATED, 31 if encoding == "gzip" else 15)
            return obj.compress(data) + obj.flush(), encoding
    return data, None


def _summary(stats: dict[str, Any]) -> dict[str, str]:
    """The X-ClickHouse-Summary header: a JSON object of string values, as ClickHouse sends it."""
    return {"X-ClickHouse-Summary": json.dumps({k: str(v) for k, v in stats.items()})}


class Handler(BaseHTTPRequestHandler):
    """One HTTP request: read it the way ClickHouse's HTTP handler does, run it on a chDB connection."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: Server

    def do_POST(self) -> None:
        self._serve()

    do_GET = do_POST

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Quiet: the log keeps the startup line and internal failures only."""

    def _raw_body(self) -> Iterator[bytes]:
        """The request body as sent: Content-Length or chunked transfer encoding."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while (size := int(self.rfile.readline(65537).split(b";")[0].strip() or b"0", 16)) > 0:
                yield self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                raise ConnectionError("request body ended early")
            remaining -= len(chunk)
            yield chunk

    def _decoded(self, raw: Iterator[bytes]) -> Iterator[bytes]:
        encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
        decode = None if encoding in ("", "identity") else _decoder(encoding)
        for chunk in raw:
            yield decode(chunk) if decode else chunk

    def _form_fields(self, body: bytes) -> dict[str, str]:
        """Multipart form fields: clickhouse-connect moves the query and long parameters there."""
        head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        fields: dict[str, str] = {}
        for part in BytesParser(policy=policy.HTTP).parsebytes(head + body).iter_parts():
            if part.get_filename():
                raise QueryError("External data is not supported by the chDB test harness", code=48)
            payload = part.get_payload(decode=True)
            value = payload.decode() if isinstance(payload, bytes) else str(payload or "")
            fields[str(part.get_param("name", header="content-disposition"))] = value
        return fields

    def _serve(self) -> None:
        url = urlsplit(self.path)
        if url.path.rstrip("/") in ("/ping", "/replicas_status"):
            self._send(200, b"Ok.\n", {"Content-Type": TEXT})
            return
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        headers = {
            "X-ClickHouse-Query-Id": params.get("query_id") or str(uuid.uuid4()),
            "X-ClickHouse-Timezone": params.get("session_timezone") or self.server.engine.timezone,
            "X-ClickHouse-Server-Display-Name": DISPLAY_NAME,
            "Keep-Alive": "timeout=30",
        }
        raw = self._raw_body()
        try:
            body = self._decoded(raw)
            if self.headers.get_content_type() == "multipart/form-data":
                params.update(self._form_fields(b"".join(body)))
                body = iter(())
            result_headers, payload = self._execute(params, body)
        except QueryError as ex:
            for _ in raw:  # drain, so the client reads this error rather than a reset connection
                pass
            headers |= {EXCEPTION_CODE: str(ex.code), "Content-Type": TEXT}
            self._send(500, ex.message.encode() + b"\n", headers)
            return
        except Exception as ex:
            self.close_connection = True
            self.log_error("internal failure: %r", ex)
            self._send(500, f"Code: 1001. DB::Exception: {ex!r}\n".encode(), {EXCEPTION_CODE: "1001"})
            return
        headers |= result_headers
        accept = self.headers.get("Accept-Encoding", "")
        if params.get("enable_http_compression") in ("1", "true") and accept and payload:
            payload, encoding = _compress(payload, accept)
            if encoding:
                headers["Content-Encoding"] = encoding
        self._send(200, payload, headers)

    def _execute(self, params: dict[str, str], body: Iterator[bytes]) -> tuple[dict[str, str], bytes]:
        head = (params["query"] + "\n").encode() if params.get("query") else b""
        while (plan := split_insert(head, final=False)) is MORE:
            chunk = next(body, None)
            if chunk is None:
                plan = split_insert(head, final=True)
                break
            head += chunk
        session = params.get("session_id") or None
        database = params.get("database") or (None if session else "default")
        settings = {k: v for k, v in params.items() if k not in TRANSPORT_PARAMS and k[:6] != "param_"}
        timeout = float(params.get("session_timeout") or 60)
        with self.server.engine.connection(session, timeout) as conn:
            conn.prepare(database, settings)
            if plan is not None:
                statement, fmt, offset = plan
                done = conn.insert(statement, fmt, chain([head[offset:]], body))
                stats = {"written_rows": done.rows_written, "written_bytes": done.bytes_written}
                return _summary(stats | {"elapsed_ns": int(done.elapsed * 1e9)}), b""
            sql = head + b"".join(body)
            if not sql.strip():
                return {"Content-Type": TEXT}, b"Ok.\n"
            noise = _LEADING_NOISE.match(sql)
            words = sql[noise.end() if noise else 0 :].split(None, 1)
            verb = words[0].upper() if words else b""
            # A pooled connection must stay in a state that prepare() knows how to undo.
            conn.reusable &= verb not in (b"USE", b"SET") and "readonly" not in settings
            fmt = params.get("default_format") or "TabSeparated"
            result = conn.run(sql, fmt, {k[6:]: v for k, v in params.items() if k[:6] == "param_"})
            if verb == b"SET" and conn.session:
                conn.after_set_statement()
            payload = result.bytes() or b""
            headers = _summary(
                {
                    "read_rows": result.storage_rows_read(),
                    "read_bytes": result.storage_bytes_read(),
                    "written_rows": result.rows_written(),
                    "written_bytes": result.bytes_written(),
                    "result_rows": result.rows_read(),
                    "result_bytes": result.bytes_read(),
                    "elapsed_ns": int(result.elapsed() * 1e9),
                }
            )
            # A statement with a result set names its format, even when empty: clickhouse-connect's
            # command() tells "no rows" from "no result set" by this header.
            explicit = _TRAILING_FORMAT.search(sql[-256:]) if verb != b"INSERT" else None
            if explicit or payload or verb in _RESULT_VERBS:
                headers["X-ClickHouse-Format"] = explicit.group(1).decode() if explicit else fmt
                headers["Content-Type"] = "application/octet-stream"
            return headers, payload

    def _send(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class Server(ThreadingHTTPServer):
    """A thread per connection; chDB releases the GIL while it runs a query."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], engine: Engine) -> None:
        self.engine = engine
        super().__init__(address, Handler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="ClickHouse HTTP interface over chDB (test harness)")
    parser.add_argument("--data-dir", required=True, help="chDB data directory (locked while serving)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    engine = Engine(args.data_dir)  # the engine opens first, so an answered /ping means a ready engine
    server = Server((args.host, args.port), engine)

    def _terminate(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    def _orphan_watch(parent: int) -> None:
        """A test run that dies without stopping us must not leave a server holding the port and the lock."""
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, _terminate)
    threading.Thread(target=_orphan_watch, args=(os.getppid(),), daemon=True).start()
    print(f"serving ClickHouse HTTP on {args.host}:{server.server_port} from {args.data_dir}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        server.server_close()
        engine.close()


if __name__ == "__main__":
    main()
