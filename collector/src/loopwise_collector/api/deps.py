"""Request dependencies: app state, the authenticated project and its scoped store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Header, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from loopwise_collector.auth import KeyResolver
from loopwise_collector.ingest.service import IngestService
from loopwise_collector.ingest.writer import BatchWriter
from loopwise_collector.observability import CollectorMetrics
from loopwise_collector.settings import Settings
from loopwise_collector.store import ClickHouseStore, Project, ProjectStore


@dataclass(frozen=True, slots=True)
class AppState:
    """What one collector app holds; built by ``create_app``'s lifespan."""

    settings: Settings
    store: ClickHouseStore
    writer: BatchWriter
    ingest: IngestService
    keys: KeyResolver
    metrics: CollectorMetrics
    # (project, rule id) -> the last problem a runner reported (a bad checkpoint path, ...); in memory
    # on purpose: runners re-report on every cycle, so a restart loses nothing that matters.
    rule_errors: dict[tuple[str, str], str] = field(default_factory=dict)


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.loopwise
    return state


State = Annotated[AppState, Depends(get_state)]


# Declared so OpenAPI shows the bearer scheme; the raw header is parsed by KeyResolver, whose
# messages say exactly what is wrong with it.
_bearer = HTTPBearer(auto_error=False, description="A project API key: `Authorization: Bearer <api key>`")


def current_project(
    state: State,
    _scheme: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Project:
    """The project of the bearer key; 401 otherwise. Sync, so the lookup runs off the event loop."""
    return state.keys.resolve(authorization)


CurrentProject = Annotated[Project, Depends(current_project)]


def project_store(state: State, project: CurrentProject) -> ProjectStore:
    """The store, confined to the caller's project."""
    return state.store.project(project.project_id)


Scoped = Annotated[ProjectStore, Depends(project_store)]
