"""Liveness, readiness and Prometheus metrics; unauthenticated for probes and scrapers."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Header, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from loopwise_collector.api.deps import State
from loopwise_collector.errors import AuthenticationError

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: ClickHouse reachable and nothing waiting in the spool")
async def readyz(state: State) -> JSONResponse:
    reachable = await run_in_threadpool(state.store.ping)
    spool = {"batches": len(state.writer.spool), "bytes": state.writer.spool.size_bytes}
    ready = reachable and not state.writer.degraded
    body = {
        "status": "ready" if ready else "degraded",
        "store": {"backend": state.store.target.backend, "reachable": reachable},
        "spool": spool,
    }
    if not ready:
        body["reason"] = (
            "ClickHouse is unreachable; accepted spans are spooled to disk and replay when it returns"
            if not reachable
            else "replaying spooled batches into ClickHouse"
        )
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(state: State, authorization: str | None = Header(None)) -> Response:
    token = state.settings.metrics_token
    if token is not None:
        expected = f"Bearer {token.get_secret_value()}"
        if authorization is None or not hmac.compare_digest(authorization.encode(), expected.encode()):
            raise AuthenticationError("/metrics requires 'Authorization: Bearer <LOOPWISE_METRICS_TOKEN>'")
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
