"""A loopback HTTP server that records what the SDK exports and answers with scripted statuses.

It stands in for the collector where a test needs answers the real one will not give on cue
(401, 429 with Retry-After, 400, a slow reply); the tests that check delivery end to end use
the real collector (``collector_process.py``). Bodies are decoded with the real OTLP protobuf
classes, so a malformed export fails the test.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    spans: list[Any] = field(default_factory=list)  # opentelemetry.proto Span messages
    json: Any = None


class OTLPSink:
    """Record OTLP/HTTP and score requests; ``script`` answers the next requests in order."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: list[tuple[int, dict[str, str], bytes]] = []
        self.delay_s = 0.0
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with sink._lock:
                    answer = sink.script.pop(0) if sink.script else None
                if sink.delay_s:
                    time.sleep(sink.delay_s)
                if answer is None or 200 <= answer[0] < 300:
                    if self.headers.get("Content-Encoding") == "gzip":
                        body = gzip.decompress(body)
                    rec = Received(self.path, dict(self.headers))
                    if self.path == "/v1/traces":
                        req = ExportTraceServiceRequest.FromString(body)
                        rec.spans = [s for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]
                    else:
                        rec.json = json.loads(body)
                    with sink._lock:
                        sink.received.append(rec)
                status, headers, payload = answer or (200, {}, b"{}")
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> OTLPSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, status: int, times: int = 1, *, body: dict[str, Any] | None = None, **headers: str) -> None:
        """Answer the next ``times`` requests with ``status``."""
        payload = json.dumps(body or {"error": {"code": f"http_{status}", "message": f"scripted {status}"}}).encode()
        with self._lock:
            self.script.extend([(status, {k.replace("_", "-"): v for k, v in headers.items()}, payload)] * times)

    def spans(self) -> list[Any]:
        with self._lock:
            return [s for r in self.received for s in r.spans]

    def scores(self) -> list[Any]:
        with self._lock:
            return [r.json for r in self.received if r.path == "/api/v1/scores"]


def attributes(span: Any) -> dict[str, Any]:
    """A protobuf span's attributes as a plain dict of Python values."""
    out: dict[str, Any] = {}
    for kv in span.attributes:
        v = kv.value
        kind = v.WhichOneof("value")
        if kind == "array_value":
            out[kv.key] = [getattr(x, x.WhichOneof("value")) for x in v.array_value.values]
        else:
            out[kv.key] = getattr(v, kind) if kind else None
    return out
