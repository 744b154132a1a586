"""``create_app(settings)``: the collector as a FastAPI app, with no import-time state."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loopwise_collector.api import evaluation, evaluators, experiments, health, otlp, prices, scores, summary, traces
from loopwise_collector.api.deps import AppState
from loopwise_collector.api.errors import install_error_handlers
from loopwise_collector.auth import KeyResolver, validate_project_id
from loopwise_collector.errors import StoreUnavailableError
from loopwise_collector.evaluation.rules_file import apply_rules_file, load_rules_file, seed_default_rules
from loopwise_collector.ingest.service import IngestService
from loopwise_collector.ingest.spool import Spool
from loopwise_collector.ingest.writer import BatchWriter
from loopwise_collector.observability import CollectorMetrics
from loopwise_collector.pricing import PriceTable
from loopwise_collector.settings import Settings
from loopwise_collector.store import ClickHouseStore

log = logging.getLogger("loopwise.collector")


def open_store(settings: Settings) -> ClickHouseStore:
    """Connect and migrate, retrying for ``store_connect_timeout_s`` while ClickHouse starts."""
    store = ClickHouseStore(settings.store_dsn(), cluster=settings.cluster)
    deadline = time.monotonic() + settings.store_connect_timeout_s
    delay = 0.25
    while True:
        try:
            store.open()
            return store
        except StoreUnavailableError as exc:
            if time.monotonic() >= deadline:
                raise StoreUnavailableError(
                    f"cannot reach the store at {store.target.redacted} after "
                    f"{settings.store_connect_timeout_s:.0f}s: {exc.message}"
                ) from exc
            log.warning("store at %s not reachable yet (%s); retrying", store.target.redacted, exc.message)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def build_state(settings: Settings) -> AppState:
    """Open the store, seed projects and start the writer: everything a running collector holds."""
    seeds = [(validate_project_id(name), key) for name, key in settings.seed_projects()]
    # A bad rules file stops start-up before the store opens: better than running without its rules.
    rules = load_rules_file(settings.evaluator_rules_file) if settings.evaluator_rules_file else None
    store = open_store(settings)
    keys = KeyResolver(store)
    for name, key in seeds:
        project = store.ensure_project(name, name, settings.default_retention_days)
        if store.project_for_key(key) is None:
            store.add_api_key(name, key, label="seeded")
        keys.pin(key, project)
        if settings.seed_default_rules:
            seed_default_rules(store, name)
    if rules is not None:
        apply_rules_file(store, rules, {name for name, _ in seeds})
    metrics = CollectorMetrics()
    spool = Spool(settings.spool_path(), max_bytes=settings.ingest.spool_max_bytes)
    writer = BatchWriter(
        store,
        spool,
        metrics,
        batch_rows=settings.ingest.batch_rows,
        max_delay=settings.ingest.max_delay_ms / 1000,
    )
    table = PriceTable.from_file(settings.prices_file) if settings.prices_file else PriceTable.bundled()
    ingest = IngestService(store, writer, table, metrics)
    writer.start()
    return AppState(settings=settings, store=store, writer=writer, ingest=ingest, keys=keys, metrics=metrics)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the collector app; the store opens when the app starts (its lifespan), not here.

    Example:
        >>> app = create_app(Settings(data_dir="/tmp/lw-doc"))
        >>> app.title
        'Loopwise collector'
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await run_in_threadpool(build_state, settings)
        app.state.loopwise = state
        log.info("collector ready on store %s", state.store.target.redacted)
        try:
            yield
        finally:
            await run_in_threadpool(state.writer.stop)
            state.store.close()

    app = FastAPI(
        title="Loopwise collector",
        version="0.1.0",
        summary="OTLP ingest, ClickHouse storage and the query API.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for module in (health, otlp, traces, scores, summary, prices, evaluators, evaluation, experiments):
        app.include_router(module.router)

    app.add_middleware(RequestCounter)
    return app


class RequestCounter:
    """Counts requests by route template and status.

    A plain ASGI middleware: ``@app.middleware("http")`` wraps every body read in a task group,
    which showed up as several percent of ingest CPU.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            state = getattr(scope["app"].state, "loopwise", None) if "app" in scope else None
            if state is not None:
                route = getattr(scope.get("route"), "path", "unmatched")
                state.metrics.requests.labels(route, str(status)).inc()
