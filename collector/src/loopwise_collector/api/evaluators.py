"""``/api/v1/evaluators``: the rules that decide which live spans get evaluated, and how."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.concurrency import run_in_threadpool

from loopwise_collector.api.deps import CurrentProject, State
from loopwise_collector.api.evaluation_schemas import RuleIn, RuleList, RuleOut, RuleUpdate
from loopwise_collector.errors import ConflictError
from loopwise_collector.evaluators import available_evaluators
from loopwise_collector.evaluators._errors import EvaluatorError, UnknownEvaluatorError
from loopwise_collector.evaluators._registry import REGISTRY
from loopwise_collector.store.evaluation import EvaluationStore, EvaluatorRule

router = APIRouter(prefix="/api/v1", tags=["evaluators"])


def evaluation_store(state: State, project: CurrentProject) -> EvaluationStore:
    """Evaluation state, confined to the caller's project."""
    return EvaluationStore(state.store, project.project_id)


Evaluations = Annotated[EvaluationStore, Depends(evaluation_store)]


def check_evaluator(name: str) -> None:
    """422 with the known names for an evaluator nobody registers, or one that cannot run on live spans."""
    known = available_evaluators()
    if name not in known:
        raise UnknownEvaluatorError(name, known)
    needs = REGISTRY.requirements(name)
    if needs is not None and "reference" in needs:
        raise EvaluatorError(
            f"{name} compares an answer with a reference answer, which live spans do not carry: run it offline "
            "with `loopwise eval --evaluators " + name + "` over a dataset that has references"
        )
    if name == "human_feedback":
        # People score traces after the fact, long after a runner would have claimed the span.
        raise EvaluatorError(
            "human_feedback summarises people's scores rather than scoring live spans: read it at "
            "GET /api/v1/feedback/summary?group_by=model|variant, or run it offline with `loopwise eval`"
        )


def rule_out(state: State, project_id: str, rule: EvaluatorRule) -> RuleOut:
    return RuleOut.of(rule, state.rule_errors.get((project_id, rule.rule_id)))


@router.get("/evaluators", response_model=RuleList, summary="List evaluator rules")
async def list_rules(state: State, store: Evaluations) -> RuleList:
    rules = await run_in_threadpool(store.list_rules)
    return RuleList(data=[rule_out(state, store.project_id, r) for r in rules])


@router.post(
    "/evaluators",
    status_code=201,
    response_model=RuleOut,
    summary="Create an evaluator rule",
    responses={409: {"description": "A rule with this name exists"}, 422: {"description": "Unknown evaluator"}},
)
async def create_rule(body: RuleIn, state: State, store: Evaluations) -> RuleOut:
    check_evaluator(body.evaluator)
    name = body.name or body.evaluator
    existing = await run_in_threadpool(store.list_rules)
    if any(r.name == name for r in existing):
        raise ConflictError(f"a rule named {name!r} exists; pick another name or update that rule")
    rule = EvaluatorRule(
        rule_id=uuid.uuid4().hex, name=name, evaluator=body.evaluator, params=body.params,
        span_names=tuple(body.filter.span_names), models=tuple(body.filter.models),
        span_types=tuple(body.filter.span_types), tags=tuple(body.filter.tags), sample_rate=body.sample_rate,
        backfill_hours=body.backfill_hours, enabled=body.enabled, source="api",
    )  # fmt: skip
    saved = await run_in_threadpool(store.save_rule, rule)
    return rule_out(state, store.project_id, saved)


@router.get("/evaluators/{rule_id}", response_model=RuleOut, summary="Read one evaluator rule")
async def get_rule(rule_id: str, state: State, store: Evaluations) -> RuleOut:
    return rule_out(state, store.project_id, await run_in_threadpool(store.get_rule, rule_id))


@router.patch("/evaluators/{rule_id}", response_model=RuleOut, summary="Update an evaluator rule")
async def update_rule(rule_id: str, body: RuleUpdate, state: State, store: Evaluations) -> RuleOut:
    rule = await run_in_threadpool(store.get_rule, rule_id)
    _refuse_config(state, rule)
    selector = body.filter
    updated = EvaluatorRule(
        rule_id=rule.rule_id, name=rule.name, evaluator=rule.evaluator,
        params=rule.params if body.params is None else body.params,
        span_names=tuple(selector.span_names) if selector else rule.span_names,
        models=tuple(selector.models) if selector else rule.models,
        span_types=tuple(selector.span_types) if selector else rule.span_types,
        tags=tuple(selector.tags) if selector else rule.tags,
        sample_rate=rule.sample_rate if body.sample_rate is None else body.sample_rate,
        backfill_hours=rule.backfill_hours if body.backfill_hours is None else body.backfill_hours,
        enabled=rule.enabled if body.enabled is None else body.enabled,
        source=rule.source, created_at_ns=rule.created_at_ns,
    )  # fmt: skip
    saved = await run_in_threadpool(store.save_rule, updated)
    return rule_out(state, store.project_id, saved)


@router.delete("/evaluators/{rule_id}", status_code=204, summary="Delete an evaluator rule (its scores stay)")
async def delete_rule(rule_id: str, state: State, store: Evaluations) -> Response:
    rule = await run_in_threadpool(store.get_rule, rule_id)
    _refuse_config(state, rule)
    await run_in_threadpool(store.delete_rule, rule_id)
    return Response(status_code=204)


def _refuse_config(state: State, rule: EvaluatorRule) -> None:
    # Without a rules file nothing owns config rules any more (the file was dropped): let people clean up.
    if rule.source == "config" and state.settings.evaluator_rules_file is not None:
        raise ConflictError(
            f"rule {rule.name!r} is managed by the collector's rules file (LOOPWISE_EVALUATOR_RULES_FILE); "
            "change it there and restart the collector"
        )
