"""``/api/v1/prices``: a project's model price overrides on top of the bundled table."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from loopwise_collector.api.deps import CurrentProject, Scoped, State
from loopwise_collector.api.schemas import PriceIn, PriceList
from loopwise_collector.pricing import normalize_model

router = APIRouter(prefix="/api/v1", tags=["prices"])


@router.get("/prices", response_model=PriceList, summary="This project's price overrides")
async def list_prices(state: State, project: CurrentProject, store: Scoped) -> PriceList:
    rows = await run_in_threadpool(store.price_overrides)
    table = await run_in_threadpool(state.ingest.price_table, project.project_id)
    return PriceList(version=table.version, overrides=[PriceIn(**r) for r in rows])


@router.put("/prices", response_model=PriceList, summary="Add or replace a price override")
async def put_price(body: PriceIn, state: State, project: CurrentProject, store: Scoped) -> PriceList:
    # Stored as the price table matches it, so "My-Model" and "my-model" are one override, not two.
    await run_in_threadpool(
        store.set_price_override,
        normalize_model(body.pattern), body.effective_from, body.input_per_million, body.output_per_million,
        body.cached_input_per_million,
    )  # fmt: skip
    state.ingest.invalidate_prices(project.project_id)
    return await list_prices(state, project, store)
