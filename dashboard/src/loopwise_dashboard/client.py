"""A typed httpx client for the collector API: the dashboard's only way to its data.

Example:
    >>> client = CollectorClient("http://127.0.0.1:4318", "lw_...")  # doctest: +SKIP
    >>> page = client.traces(has_error=True, limit=20)  # doctest: +SKIP
    >>> [t.name for t in page.data]  # doctest: +SKIP
    ['rag-answer', 'support-chat']
"""

from __future__ import annotations

from datetime import datetime
from types import TracebackType
from typing import Any, Literal, Self

import httpx
from pydantic import BaseModel, ValidationError

from loopwise_dashboard._errors import CollectorUnreachableError, DashboardError, NotFoundError, UnauthorizedError
from loopwise_dashboard._models import (
    DriftCheck,
    EvaluatorRule,
    FeedbackGroup,
    Health,
    MetricsRow,
    Score,
    TraceDetail,
    TracePage,
)
from loopwise_dashboard.settings import mask_key

__all__ = ["CollectorClient", "GroupBy"]

GroupBy = Literal["model", "name", "variant", "day", "hour"]
FeedbackGroupBy = Literal["model", "variant", "name", "trace_id"]
TimeArg = datetime | str | int | None


class _Envelope(BaseModel):
    data: list[Any]


def _time(value: TimeArg) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _params(**values: Any) -> dict[str, str | int | float]:
    """Query parameters without the unset ones; ``from_``/``to`` become ``from``/``to``, bools ``true``/``false``."""
    out: dict[str, str | int | float] = {}
    for key, value in values.items():
        if value is None or value == "":
            continue
        name = key.rstrip("_")
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, datetime):
            out[name] = value.isoformat()
        else:
            out[name] = value
    return out


class CollectorClient:
    """The collector's JSON API, answered as pydantic models; failures raise :class:`DashboardError` subclasses.

    ``http`` lets a caller (a test, an app with its own transport) supply the ``httpx.Client``;
    the client then does not close it.

    Example:
        >>> client = CollectorClient("http://127.0.0.1:4318", "lw_...")  # doctest: +SKIP
        >>> client.metrics_summary(group_by="model")[0].latency_p95_ms  # doctest: +SKIP
        812.4
    """

    def __init__(
        self, endpoint: str, api_key: str | None, *, timeout: float = 10.0, http: httpx.Client | None = None
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._key = api_key
        self._owns_http = http is None
        self._http = http or httpx.Client(timeout=timeout)

    def __repr__(self) -> str:
        # Never the key in clear: reprs end up in logs and tracebacks.
        return f"CollectorClient({self.endpoint!r}, key={mask_key(self._key)})"

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- routes -------------------------------------------------------------------------------------------

    def health(self) -> Health:
        """``GET /healthz``: whether the collector process answers (no key needed)."""
        return Health.model_validate(self._request("GET", "/healthz", auth=False))

    def traces(
        self,
        *,
        from_: TimeArg = None,
        to: TimeArg = None,
        name: str | None = None,
        model: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        tag: str | None = None,
        variant: str | None = None,
        has_error: bool | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> TracePage:
        """``GET /api/v1/traces``: a page of traces, newest first. Filters combine with AND."""
        params = _params(
            from_=_time(from_), to=_time(to), name=name, model=model, user_id=user_id, session_id=session_id,
            tag=tag, variant=variant, has_error=has_error, limit=limit, cursor=cursor,
        )  # fmt: skip
        return TracePage.model_validate(self._request("GET", "/api/v1/traces", params=params))

    def trace(self, trace_id: str) -> TraceDetail:
        """``GET /api/v1/traces/{trace_id}``; :class:`NotFoundError` when the project has no such trace."""
        return TraceDetail.model_validate(self._request("GET", f"/api/v1/traces/{trace_id}"))

    def metrics_summary(
        self, from_: TimeArg = None, to: TimeArg = None, group_by: GroupBy | None = None
    ) -> list[MetricsRow]:
        """``GET /api/v1/metrics/summary``: span counts, errors, latency percentiles, tokens and cost."""
        body = self._request(
            "GET", "/api/v1/metrics/summary", params=_params(from_=_time(from_), to=_time(to), group_by=group_by)
        )
        return [MetricsRow.model_validate(row) for row in _Envelope.model_validate(body).data]

    def scores(
        self,
        trace_id: str | None = None,
        name: str | None = None,
        source: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Score]:
        """``GET /api/v1/scores``: scores, newest first."""
        params = _params(trace_id=trace_id, name=name, source=source, limit=limit, offset=offset)
        body = self._request("GET", "/api/v1/scores", params=params)
        return [Score.model_validate(row) for row in _Envelope.model_validate(body).data]

    def post_feedback(
        self,
        trace_id: str,
        name: str,
        value: float | None,
        comment: str = "",
        span_id: str | None = None,
        *,
        label: str = "",
    ) -> Score:
        """``POST /api/v1/scores`` with ``source="human"``: a person's feedback on a trace (or one span)."""
        body: dict[str, Any] = {"trace_id": trace_id, "name": name, "value": value, "comment": comment}
        body.update(source="human", label=label)
        if span_id:
            body["span_id"] = span_id
        return Score.model_validate(self._request("POST", "/api/v1/scores", json=body))

    def evaluators(self) -> list[EvaluatorRule]:
        """``GET /api/v1/evaluators``: the project's evaluator rules, by name."""
        body = self._request("GET", "/api/v1/evaluators")
        return [EvaluatorRule.model_validate(row) for row in _Envelope.model_validate(body).data]

    def drift(
        self, monitor: str | None = None, from_: TimeArg = None, to: TimeArg = None, limit: int = 100
    ) -> list[DriftCheck]:
        """``GET /api/v1/drift``: drift checks, newest first."""
        params = _params(monitor=monitor, from_=_time(from_), to=_time(to), limit=limit)
        body = self._request("GET", "/api/v1/drift", params=params)
        return [DriftCheck.model_validate(row) for row in _Envelope.model_validate(body).data]

    def feedback_summary(
        self, group_by: FeedbackGroupBy = "model", from_: TimeArg = None, to: TimeArg = None
    ) -> list[FeedbackGroup]:
        """``GET /api/v1/feedback/summary``: human feedback per model, variant, score name or trace."""
        params = _params(group_by=group_by, from_=_time(from_), to=_time(to))
        body = self._request("GET", "/api/v1/feedback/summary", params=params)
        return [FeedbackGroup.model_validate(row) for row in _Envelope.model_validate(body).data]

    # -- plumbing -----------------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int | float] | None = None,
        json: dict[str, Any] | None = None,
        auth: bool = True,
    ) -> Any:
        url = self.endpoint + path
        headers = {"Authorization": f"Bearer {self._key}"} if auth and self._key else {}
        try:
            resp = self._http.request(method, url, params=params, json=json, headers=headers)
        except httpx.TimeoutException as exc:
            raise CollectorUnreachableError(
                f"the collector at {self.endpoint} did not answer in time ({type(exc).__name__}); "
                "check that it is running and not overloaded"
            ) from None
        except httpx.TransportError as exc:
            raise CollectorUnreachableError(
                f"no collector at {self.endpoint} ({type(exc).__name__}): start one with `loopwise up`, "
                "or point LOOPWISE_ENDPOINT at yours"
            ) from None
        if resp.status_code >= 400:
            raise self._error(resp)
        try:
            return resp.json()
        except ValueError:
            raise DashboardError(f"{self.endpoint}{path} answered something that is not JSON") from None

    def _error(self, resp: httpx.Response) -> DashboardError:
        message = _error_message(resp)
        if resp.status_code == 401:
            if not self._key:
                return UnauthorizedError(
                    f"no API key for {self.endpoint}: set LOOPWISE_API_KEY, or run the dashboard where "
                    "`loopwise up` keeps .loopwise/credentials.json (LOOPWISE_DATA_DIR)"
                )
            return UnauthorizedError(
                f"the collector at {self.endpoint} refused the API key {mask_key(self._key)}: "
                f"set LOOPWISE_API_KEY to a key of your project ({message})"
            )
        if resp.status_code == 404:
            return NotFoundError(message)
        if resp.status_code >= 500:
            return CollectorUnreachableError(
                f"the collector at {self.endpoint} answered {resp.status_code}: {message} (see the collector log)"
            )
        return DashboardError(f"the collector rejected the request ({resp.status_code}): {message}")


def _error_message(resp: httpx.Response) -> str:
    """The ``{"error": {"message"}}`` of an error answer, else its status line."""
    try:
        body = resp.json()
        message = body["error"]["message"]
        if isinstance(message, str):
            return message
    except (ValueError, KeyError, TypeError, ValidationError):
        pass
    return f"HTTP {resp.status_code} {resp.reason_phrase}"
