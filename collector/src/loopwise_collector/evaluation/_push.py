"""``loopwise eval --push``: send a finished run to the collector as an experiment with its per-row scores.

The run is pushed after the results file is complete, by reading it back, so a failed evaluation
leaves no half experiment behind and a million rows never sit in memory. Every request is
idempotent (the experiment id is derived from what was run, score ids from experiment, row and
evaluator on the server), so a retry after a timeout, or the same run pushed again, replaces
rather than duplicates.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from loopwise_collector.errors import LoopwiseError
from loopwise_collector.evaluators._types import finite
from loopwise_collector.settings import Settings

MAX_SCORES_PER_REQUEST = 1000
MAX_BYTES_PER_REQUEST = 4 << 20  # well under the collector's default 16 MiB body limit
_HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")
_HEX16 = re.compile(r"^[0-9a-fA-F]{16}$")
_START_HINT = "Start one with `loopwise up` (or `loopwise collector`), or point --endpoint at a running collector."


class PushError(LoopwiseError):
    """The collector could not be reached, refused the key, or rejected the experiment.

    Example:
        >>> PushError("cannot reach a Loopwise collector at http://127.0.0.1:4318").code
        'push_failed'
    """

    status_code = 502
    code = "push_failed"


@dataclass(frozen=True, slots=True)
class PushTarget:
    """Where to push and with which key; ``key_shown`` is what messages may print instead of the key.

    Example:
        >>> PushTarget("http://127.0.0.1:4318", "lw_x", "$LOOPWISE_API_KEY").endpoint
        'http://127.0.0.1:4318'
    """

    endpoint: str
    api_key: str
    key_shown: str


def resolve_target(endpoint: str | None, api_key: str | None, data_dir: Path | None, key_from_env: bool) -> PushTarget:
    """The collector URL and key, defaulted the way ``loopwise demo`` does: flags or ``LOOPWISE_ENDPOINT`` /
    ``LOOPWISE_API_KEY``, else ``http://<LOOPWISE_HOST>:<LOOPWISE_PORT>`` and the key ``loopwise up`` keeps.

    Example:
        >>> resolve_target("http://127.0.0.1:4318/", "lw_k", None, key_from_env=False).endpoint
        'http://127.0.0.1:4318'
    """
    from loopwise_collector.cli import stored_credentials  # cli imports this package: import at call time

    try:
        settings = Settings() if data_dir is None else Settings(data_dir=data_dir)
    except ValueError as exc:
        raise PushError(f"bad LOOPWISE_* setting: {exc}") from exc
    if endpoint is None:
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host  # noqa: S104 - not a bind
        endpoint = f"http://{host}:{settings.port}"
    endpoint = endpoint.strip().rstrip("/").removesuffix("/v1/traces")
    if not endpoint.startswith(("http://", "https://")):
        raise PushError(f"--endpoint {endpoint!r} is not a URL like http://127.0.0.1:4318")
    if api_key is not None:
        return PushTarget(endpoint, api_key, "$LOOPWISE_API_KEY" if key_from_env else api_key)
    stored = stored_credentials(settings.data_dir)
    if stored is None:
        raise PushError(
            "no API key for --push: pass --api-key, set LOOPWISE_API_KEY, or run `loopwise up` first, which keeps "
            f"one in {settings.data_dir / 'credentials.json'} (use --data-dir or LOOPWISE_DATA_DIR if it runs "
            "elsewhere)."
        )
    return PushTarget(endpoint, stored[1], stored[1])


def experiment_id(name: str, dataset_name: str, dataset_version: str, evaluators: Mapping[str, str]) -> str:
    """A stable id for a run: the same name, dataset version and evaluator versions give the same id,
    so pushing a run again replaces it.

    Example:
        >>> a = experiment_id("baseline", "qa", "3f2a9c01d4e5", {"bleu": "1-ab12cd34"})
        >>> a == experiment_id("baseline", "qa", "3f2a9c01d4e5", {"bleu": "1-ab12cd34"}), len(a)
        (True, 32)
    """
    blob = json.dumps([name, dataset_name, dataset_version, sorted(evaluators.items())]).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def score_payloads(results: Path, versions: Mapping[str, str]) -> Iterator[dict[str, Any]]:
    """The API's score objects for every (row, evaluator) of a results file ``loopwise eval`` wrote.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "results.jsonl"
        >>> _ = p.write_text(json.dumps({"output": "a", "scores": {"bleu": {"value": 12.5, "label": "",
        ...     "explanation": "", "metadata": {"bp": 1.0}, "error": False}}}) + "\\n")
        >>> next(score_payloads(p, {"bleu": "1-ab"}))["metadata"]
        {'bp': '1.0'}
    """
    with results.open(encoding="utf-8") as fh:
        for row_index, line in enumerate(fh):
            row = json.loads(line)
            ids = {}
            for key, pattern in (("trace_id", _HEX32), ("span_id", _HEX16)):
                value = row.get(key)
                if isinstance(value, str) and pattern.match(value):
                    ids[key] = value.lower()
            for name, score in row.get("scores", {}).items():
                yield {
                    "row": row_index,
                    "name": name,
                    "value": finite(score.get("value")),
                    "label": str(score.get("label") or "")[:1000],
                    "explanation": str(score.get("explanation") or "")[:100_000],
                    "evaluator_version": versions.get(name, ""),
                    "metadata": {str(k): _as_text(v) for k, v in (score.get("metadata") or {}).items()},
                    **ids,
                }


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def chunks(scores: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Requests' worth of scores: at most 1000 and about 4 MiB each.

    Example:
        >>> [len(c) for c in chunks({"row": i} for i in range(2500))]
        [1000, 1000, 500]
    """
    batch: list[dict[str, Any]] = []
    size = 0
    for score in scores:
        cost = len(json.dumps(score, ensure_ascii=False)) + 1
        if batch and (len(batch) >= MAX_SCORES_PER_REQUEST or size + cost > MAX_BYTES_PER_REQUEST):
            yield batch
            batch, size = [], 0
        batch.append(score)
        size += cost
    if batch:
        yield batch


class Pusher:
    """The HTTP side of ``--push``: check the collector, create the experiment, post its scores.

    Example:
        >>> pusher = Pusher(PushTarget("http://127.0.0.1:4318", "lw_k", "lw_k"))  # doctest: +SKIP
        >>> pusher.check()  # doctest: +SKIP
    """

    def __init__(
        self, target: PushTarget, *, client: httpx.Client | None = None, timeout: float = 30.0, retries: int = 3
    ) -> None:
        self.target = target
        self._client = client or httpx.Client(timeout=timeout)
        self._retries = retries

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def _request(self, method: str, path: str, body: Any = None, *, retry: bool = True) -> httpx.Response:
        url = f"{self.target.endpoint}{path}"
        headers = {"Authorization": f"Bearer {self.target.api_key}"}
        attempts = self._retries if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                resp = self._client.request(method, url, json=body, headers=headers)
            except httpx.HTTPError as exc:
                if attempt < attempts:
                    time.sleep(0.5 * 2**attempt)
                    continue
                raise PushError(
                    f"cannot reach a Loopwise collector at {self.target.endpoint} ({type(exc).__name__}: {exc}). "
                    f"{_START_HINT}"
                ) from exc
            # Every request here is idempotent, so an outage answer (503) is worth another try.
            if resp.status_code in (502, 503, 504) and attempt < attempts:
                time.sleep(0.5 * 2**attempt)
                continue
            if resp.status_code in (401, 403):
                raise PushError(
                    f"the collector at {self.target.endpoint} rejected the API key (HTTP {resp.status_code}: "
                    f"{_error_text(resp)}). Pass the key `loopwise up` printed with --api-key or LOOPWISE_API_KEY, "
                    "or a key seeded with LOOPWISE_INIT_PROJECTS."
                )
            if resp.status_code >= 400:
                raise PushError(
                    f"{method} {path} at {self.target.endpoint} failed with HTTP {resp.status_code}: "
                    f"{_error_text(resp)}"
                )
            return resp
        raise AssertionError("unreachable: the last attempt returns or raises")

    def check(self) -> None:
        """Fail fast, before any evaluation, when the collector is not there or refuses the key."""
        try:
            health = self._client.get(f"{self.target.endpoint}/healthz", timeout=5)
        except httpx.HTTPError as exc:
            raise PushError(
                f"cannot reach a Loopwise collector at {self.target.endpoint} ({type(exc).__name__}: {exc}). "
                f"{_START_HINT}"
            ) from exc
        if health.status_code != 200:
            raise PushError(
                f"{self.target.endpoint}/healthz answered HTTP {health.status_code}; is {self.target.endpoint} a "
                f"Loopwise collector? {_START_HINT}"
            )
        self._request("GET", "/api/v1/experiments?limit=1", retry=False)

    def create_experiment(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /api/v1/experiments``; returns the experiment the collector stored."""
        created: dict[str, Any] = self._request("POST", "/api/v1/experiments", dict(body)).json()
        return created

    def push_scores(
        self, experiment: str, scores: Iterable[dict[str, Any]], progress: Callable[[int], None] | None = None
    ) -> int:
        """Post ``scores`` in chunks; returns how many the collector accepted."""
        accepted = 0
        for batch in chunks(scores):
            resp = self._request("POST", f"/api/v1/experiments/{experiment}/scores", {"scores": batch})
            accepted += int(resp.json().get("accepted", 0))
            if progress is not None:
                progress(len(batch))
        return accepted


def _error_text(resp: httpx.Response) -> str:
    try:
        return str(resp.json()["error"]["message"])
    except Exception:
        return resp.text[:200] or resp.reason_phrase
