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

from loopwise_dashboard._errors import (
    CollectorUnreachableError,
    ConflictError,
    DashboardError,
    InvalidRequestError,
    NotFoundError,
    UnauthorizedError,
)
from loopwise_dashboard._models import (
    DriftCheck,
    EvaluatorRule,
    FeedbackGroup,
    Health,
    MetricsRow,
    ReviewItem,
    Score,
    ScoreSummaryRow,
    StoredEmbedding,
    TraceDetail,
    TracePage,
    WorstScore,
)
from loopwise_dashboard.settings import mask_key

__all__ = ["CollectorClient", "GroupBy"]

GroupBy = Literal["model", "name", "variant", "day", "hour"]
ScoreGroupBy = GroupBy  # /api/v1/scores/summary groups the same ways
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
        q: str | None = None,
        score_name: str | None = None,
        score_min: float | None = None,
        score_max: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> TracePage:
        """``GET /api/v1/traces``: a page of traces, newest first. Filters combine with AND.

        ``q`` searches span names, inputs and outputs (case-insensitive); ``score_min``/``score_max``
        bound the trace's mean ``score_name`` score.
        """
        params = _params(
            from_=_time(from_), to=_time(to), name=name, model=model, user_id=user_id, session_id=session_id,
            tag=tag, variant=variant, has_error=has_error, q=q, score_name=score_name, score_min=score_min,
            score_max=score_max, limit=limit, cursor=cursor,
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
        if resp.status_code == 204:  # DELETE answers with no body
            return None
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
        if resp.status_code == 409:
            return ConflictError(message)
        if resp.status_code == 422:
            return InvalidRequestError(message)
        if resp.status_code >= 500:
            return CollectorUnreachableError(
                f"the collector at {self.endpoint} answered {resp.status_code}: {message} (see the collector log)"
            )
        return DashboardError(f"the collector rejected the request ({resp.status_code}): {message}")

    # -- evaluator rules and the feedback queue (Settings and Feedback queue pages) -----------------------

    def rules(self) -> list[EvaluatorRule]:
        """``GET /api/v1/evaluators``: the project's evaluator rules, sorted by name."""
        return self.evaluators()

    def create_rule(
        self,
        evaluator: str,
        *,
        name: str | None = None,
        params: dict[str, Any] | None = None,
        filter: dict[str, list[str]] | None = None,
        sample_rate: float = 1.0,
        backfill_hours: int = 24,
        enabled: bool = True,
    ) -> EvaluatorRule:
        """``POST /api/v1/evaluators``; :class:`ConflictError` for a taken name, :class:`InvalidRequestError` for
        an unknown evaluator or a bad field (both with the server's message)."""
        body: dict[str, Any] = {"evaluator": evaluator, "params": params or {}, "filter": filter or {}}
        body.update(sample_rate=sample_rate, backfill_hours=backfill_hours, enabled=enabled)
        if name:
            body["name"] = name
        return EvaluatorRule.model_validate(self._request("POST", "/api/v1/evaluators", json=body))

    def update_rule(
        self,
        rule_id: str,
        *,
        params: dict[str, Any] | None = None,
        filter: dict[str, list[str]] | None = None,
        sample_rate: float | None = None,
        backfill_hours: int | None = None,
        enabled: bool | None = None,
    ) -> EvaluatorRule:
        """``PATCH /api/v1/evaluators/{rule_id}`` with the fields given; :class:`ConflictError` for a rule of the
        collector's rules file."""
        fields = {"params": params, "filter": filter, "sample_rate": sample_rate, "backfill_hours": backfill_hours}
        body: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
        if enabled is not None:
            body["enabled"] = enabled
        return EvaluatorRule.model_validate(self._request("PATCH", f"/api/v1/evaluators/{rule_id}", json=body))

    def delete_rule(self, rule_id: str) -> None:
        """``DELETE /api/v1/evaluators/{rule_id}`` (its scores stay); :class:`ConflictError` for a config rule."""
        self._request("DELETE", f"/api/v1/evaluators/{rule_id}")

    def reviewed_trace_ids(self, limit: int = 1000) -> set[str]:
        """Traces among the newest ``limit`` human scores (``GET /api/v1/scores?source=human``)."""
        return {s.trace_id for s in self.scores(source="human", limit=limit)}

    def review_queue(
        self, *, score_name: str | None = None, errors: bool = False, recent: int = 10, limit: int = 20
    ) -> list[ReviewItem]:
        """Traces that need a person's look, without the ones that already have human feedback.

        First the ``limit`` lowest-scoring traces for ``score_name`` (``GET /api/v1/scores/worst``), or the newest
        errored traces when ``errors``, then the ``recent`` newest traces as a sample of normal traffic; each trace
        once, at most ``limit + recent`` items. "Already reviewed" means among the newest 1,000 human scores.
        """
        items: list[ReviewItem] = []
        if score_name:
            body = self._request("GET", "/api/v1/scores/worst", params=_params(name=score_name, limit=limit))
            for row in _Envelope.model_validate(body).data:
                value = row.get("value")
                items.append(ReviewItem(trace_id=row["trace_id"], reason=f"low {score_name}", value=value))
        if errors:
            errored = self.traces(has_error=True, limit=limit).data
            items += [ReviewItem(trace_id=t.trace_id, reason="error") for t in errored]
        if recent:
            items += [ReviewItem(trace_id=t.trace_id, reason="recent") for t in self.traces(limit=recent).data]
        reviewed = self.reviewed_trace_ids()
        seen: set[str] = set()
        queue: list[ReviewItem] = []
        for item in items:
            if item.trace_id and item.trace_id not in reviewed and item.trace_id not in seen:
                seen.add(item.trace_id)
                queue.append(item)
        return queue

    # -- Evaluations and Drift pages: score statistics, worst traces, stored embeddings ---------------------

    def scores_summary(
        self,
        from_: TimeArg = None,
        to: TimeArg = None,
        name: str | None = None,
        source: str | None = None,
        group_by: ScoreGroupBy | None = None,
    ) -> list[ScoreSummaryRow]:
        """``GET /api/v1/scores/summary``: count, errors, mean, p10/p50/p90 and a histogram per score name (and group).

        Example:
            >>> rows = client.scores_summary(name="hallucination", group_by="model")  # doctest: +SKIP
            >>> [(r.group, r.mean) for r in rows]  # doctest: +SKIP
            [('gpt-4o', 0.12), ('gpt-4o-mini', 0.31)]
        """
        params = _params(from_=_time(from_), to=_time(to), name=name, source=source, group_by=group_by)
        body = self._request("GET", "/api/v1/scores/summary", params=params)
        return [ScoreSummaryRow.model_validate(row) for row in _Envelope.model_validate(body).data]

    def worst_scores(
        self, name: str, from_: TimeArg = None, to: TimeArg = None, source: str | None = None, limit: int = 20
    ) -> list[WorstScore]:
        """``GET /api/v1/scores/worst``: the traces with the lowest value of score ``name``, lowest first.

        Example:
            >>> [w.trace_id for w in client.worst_scores("hallucination", limit=3)]  # doctest: +SKIP
            ['1e01429101f8e705bdebe37c68a4de93', ...]
        """
        params = _params(name=name, from_=_time(from_), to=_time(to), source=source, limit=limit)
        body = self._request("GET", "/api/v1/scores/worst", params=params)
        return [WorstScore.model_validate(row) for row in _Envelope.model_validate(body).data]

    def embeddings(self, rule_id: str, from_: TimeArg, to: TimeArg, limit: int = 1000) -> list[StoredEmbedding]:
        """``GET /api/v1/evaluation/embeddings``: a stable sample of a drift rule's vectors in ``[from_, to)``.

        Example:
            >>> rows = client.embeddings(rule.id, check.current_start, check.current_end)  # doctest: +SKIP
            >>> rows[0].text  # doctest: +SKIP
            'my router keeps dropping'
        """
        params = _params(rule_id=rule_id, from_=_time(from_), to=_time(to), limit=limit)
        body = self._request("GET", "/api/v1/evaluation/embeddings", params=params)
        return [StoredEmbedding.model_validate(row) for row in _Envelope.model_validate(body).data]


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
