"""The runner's HTTP client for the collector's evaluation API (one project per key)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np

from loopwise_collector.errors import LoopwiseError


class CollectorUnavailableError(LoopwiseError):
    """The collector did not answer, or answered 5xx/429: retry later."""

    status_code = 503
    code = "collector_unavailable"


class CollectorRefusedError(LoopwiseError):
    """The collector refused the request (4xx): retrying the same request will not help."""

    status_code = 400
    code = "collector_refused"


def encode_vector(vector: np.ndarray) -> str:
    """A float32 vector as base64 little-endian, the API's compact form.

    Example:
        >>> encode_vector(np.array([1.0, 0.5], dtype=np.float32))
        'AACAPwAAAD8='
    """
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


def decode_vectors(values: list[str]) -> np.ndarray:
    """Base64 vectors as one float32 matrix.

    Example:
        >>> decode_vectors(["AACAPwAAAD8="]).tolist()
        [[1.0, 0.5]]
    """
    if not values:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([np.frombuffer(base64.b64decode(v), dtype="<f4") for v in values]).astype(np.float32)


def iso(ns: int) -> str:
    """Nanoseconds since the epoch as ISO 8601 UTC."""
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat()


class EvaluationClient:
    """Talks to ``/api/v1/evaluators`` and ``/api/v1/evaluation/*`` with one project key.

    Example:
        >>> client = EvaluationClient("http://127.0.0.1:4318", "lw_key")  # doctest: +SKIP
        >>> [r["name"] for r in client.rules()]  # doctest: +SKIP
        ['hallucination', 'output_drift']
    """

    def __init__(self, endpoint: str, api_key: str, *, timeout: float = 30.0, http: httpx.Client | None = None) -> None:
        # `http` is the transport seam: tests pass the collector's in-process client.
        self._http = http or httpx.Client(base_url=endpoint.rstrip("/"), timeout=timeout)
        self._headers = {"Authorization": f"Bearer {api_key}"}

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, headers=self._headers, **kwargs)
        except httpx.HTTPError as exc:
            raise CollectorUnavailableError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise CollectorUnavailableError(f"{method} {path}: HTTP {response.status_code}: {_message(response)}")
        if response.status_code >= 400:
            raise CollectorRefusedError(f"{method} {path}: HTTP {response.status_code}: {_message(response)}")
        return response.json() if response.status_code != 204 else None

    def rules(self) -> list[dict[str, Any]]:
        """The project's evaluator rules."""
        data: list[dict[str, Any]] = self._call("GET", "/api/v1/evaluators")["data"]
        return data

    def claim(self, rule_id: str, version: str, *, runner: str, limit: int, lease_s: float) -> dict[str, Any]:
        """Lease spans for a rule: ``{"lease_id", "spans": [...]}``."""
        body = {"rule_id": rule_id, "evaluator_version": version, "runner": runner, "limit": limit, "lease_s": lease_s}
        result: dict[str, Any] = self._call("POST", "/api/v1/evaluation/claim", json=body)
        return result

    def release(self, lease_id: str) -> None:
        """Give a lease back."""
        self._call("POST", "/api/v1/evaluation/release", json={"lease_id": lease_id})

    def post_scores(self, rule_id: str, version: str, scores: list[dict[str, Any]]) -> None:
        """Store a rule's scores (idempotent per span and version)."""
        body = {"rule_id": rule_id, "evaluator_version": version, "scores": scores}
        self._call("POST", "/api/v1/evaluation/results", json=body)

    def post_embeddings(self, rule_id: str, field: str, model: str, rows: list[dict[str, Any]]) -> None:
        """Store embeddings for a drift rule."""
        body = {"rule_id": rule_id, "field": field, "model": model, "embeddings": rows}
        self._call("POST", "/api/v1/evaluation/embeddings", json=body)

    def embeddings(self, rule_id: str, from_ns: int, to_ns: int, limit: int) -> tuple[list[str], np.ndarray]:
        """Texts and vectors of a drift rule's window (a stable sample of at most ``limit``)."""
        params = {"rule_id": rule_id, "from": iso(from_ns), "to": iso(to_ns), "limit": limit}
        data = self._call("GET", "/api/v1/evaluation/embeddings", params=params)["data"]
        return [d["text"] for d in data], decode_vectors([d["vector_b64"] for d in data])

    def report_error(self, rule_id: str, error: str | None) -> None:
        """Show (or clear) a rule's problem in ``GET /api/v1/evaluators``."""
        self._call("POST", "/api/v1/evaluation/errors", json={"rule_id": rule_id, "error": error})

    def drift_due(self, rule_id: str, *, runner: str, every_s: float) -> bool:
        """Whether this runner should run the rule's drift check now."""
        body = {"rule_id": rule_id, "runner": runner, "every_s": every_s}
        return bool(self._call("POST", "/api/v1/evaluation/drift/claim", json=body)["run"])

    def post_drift(self, body: dict[str, Any]) -> None:
        """Record a drift check."""
        self._call("POST", "/api/v1/drift", json=body)


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]
