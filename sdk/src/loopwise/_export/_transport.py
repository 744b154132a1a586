"""HTTP to the collector: one persistent connection, stdlib only, on the export thread.

The stdlib client keeps ``import loopwise`` free of httpx and requests, and gives the exact
status codes the retry policy needs. Each send returns an :class:`Outcome`; nothing raises.
"""

from __future__ import annotations

import enum
import http.client
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

USER_AGENT = "loopwise-python/0.1.0"


class Verdict(enum.Enum):
    """What the pipeline does with a batch after one try."""

    DELIVERED = "delivered"
    RETRY = "retry"  # unreachable, timeout, 5xx, 429, 408: the collector may come back
    AUTH = "auth"  # 401/403: keep spooling until the key is fixed
    NOT_FOUND = "not_found"  # a score for a trace the collector has not stored (yet)
    REJECTED = "rejected"  # any other 4xx: sending again cannot help


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one send.

    Example:
        >>> Outcome(Verdict.RETRY, 503, "degraded").verdict.value
        'retry'
    """

    verdict: Verdict
    status: int | None
    detail: str
    retry_after_s: float | None = None


def classify(status: int) -> Verdict:
    """The verdict for an HTTP status.

    Example:
        >>> [classify(s).value for s in (200, 429, 503, 401, 404, 413)]
        ['delivered', 'retry', 'retry', 'auth', 'not_found', 'rejected']
    """
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if status in (408, 429) or status >= 500:
        return Verdict.RETRY
    if status in (401, 403):
        return Verdict.AUTH
    if status in (404, 405):  # no such trace for a score; on /v1/traces, an endpoint with a wrong path
        return Verdict.NOT_FOUND
    return Verdict.REJECTED


def _error_message(body: bytes) -> str:
    # The collector answers {"error": {"code", "message"}}; anything else is shown as text.
    try:
        err = json.loads(body)["error"]
        return f"{err['code']}: {err['message']}"
    except Exception:
        return body[:300].decode("utf-8", "replace")


class Transport:
    """POSTs bodies to the collector over one kept-alive connection."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._conn: http.client.HTTPConnection | None = None
        self._origin: tuple[str, str, int | None] | None = None

    def _connection(self, url: str, timeout_s: float) -> tuple[http.client.HTTPConnection, str]:
        parts = urlsplit(url)
        origin = (parts.scheme, parts.hostname or "", parts.port)
        if self._conn is None or origin != self._origin:
            self.close()
            if parts.scheme == "https":
                import ssl  # only apps that talk HTTPS pay for the ssl import

                self._conn = http.client.HTTPSConnection(
                    origin[1], origin[2], timeout=timeout_s, context=ssl.create_default_context()
                )
            else:
                self._conn = http.client.HTTPConnection(origin[1], origin[2], timeout=timeout_s)
            self._origin = origin
        self._conn.timeout = timeout_s
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return self._conn, path

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout_s: float | None = None) -> Outcome:
        """Send one body; never raises."""
        timeout = self.timeout_s if timeout_s is None else max(0.05, min(timeout_s, self.timeout_s))
        try:
            conn, path = self._connection(url, timeout)
            conn.request("POST", path, body=body, headers={"User-Agent": USER_AGENT, **headers})
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            resp = conn.getresponse()
            data = resp.read()
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            self.close()  # a half-used connection cannot be reused
            return Outcome(Verdict.RETRY, None, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # defensive: a bug here must not kill the export thread
            self.close()
            return Outcome(Verdict.RETRY, None, f"{type(exc).__name__}: {exc}")
        status = resp.status
        verdict = classify(status)
        if resp.getheader("Connection", "").lower() == "close":
            self.close()
        retry_after: float | None = None
        ra = resp.getheader("Retry-After")
        if ra and ra.strip().isdecimal():
            retry_after = float(ra)
        detail = "" if verdict is Verdict.DELIVERED else _error_message(data)
        return Outcome(verdict, status, detail, retry_after)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
