"""Evaluator rules from configuration: a rules file the collector applies at start, and the
defaults ``loopwise up`` gives a new local project.

A rules file is JSON::

    {"rules": [{"project": "default", "evaluator": "toxicity", "name": "toxicity",
                "params": {"checkpoint": "/models/toxic.ckpt"}, "filter": {"span_types": ["llm"]},
                "sample_rate": 0.2}]}

Rules from the file are the file's: the API shows them (``source: "config"``) but refuses to
change them, a rule removed from the file is deleted at the next start, and ids derive from
(project, name), so restarts never duplicate them.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loopwise_collector.api.evaluation_schemas import RuleIn, SpanSelector
from loopwise_collector.evaluators import available_evaluators
from loopwise_collector.evaluators._errors import EvaluatorConfigError, UnknownEvaluatorError
from loopwise_collector.store import ClickHouseStore
from loopwise_collector.store.evaluation import EvaluationStore, EvaluatorRule

log = logging.getLogger("loopwise.collector")


class ConfiguredRule(RuleIn):
    """A rule in the rules file: a :class:`RuleIn` plus the project it belongs to."""

    project: str = Field(min_length=1, max_length=100)


class RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[ConfiguredRule]


def _rule(body: RuleIn, rule_id: str, source: str) -> EvaluatorRule:
    return EvaluatorRule(
        rule_id=rule_id, name=body.name or body.evaluator, evaluator=body.evaluator, params=body.params,
        span_names=tuple(body.filter.span_names), models=tuple(body.filter.models),
        span_types=tuple(body.filter.span_types), tags=tuple(body.filter.tags), sample_rate=body.sample_rate,
        backfill_hours=body.backfill_hours, enabled=body.enabled, source=source,
    )  # fmt: skip


def load_rules_file(path: Path) -> list[ConfiguredRule]:
    """Parse and check a rules file; errors name the file and the problem.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "rules.json"
        >>> _ = p.write_text('{"rules": [{"project": "default", "evaluator": "rouge"}]}')
        >>> [r.evaluator for r in load_rules_file(p)]
        ['rouge']
    """
    try:
        parsed = RulesFile.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise EvaluatorConfigError(f"cannot read the evaluator rules file {str(path)!r}: {exc.strerror}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise EvaluatorConfigError(f"evaluator rules file {str(path)!r}: {where}: {first['msg']}") from exc
    known = available_evaluators()
    seen: set[tuple[str, str]] = set()
    for rule in parsed.rules:
        if rule.evaluator not in known:
            raise UnknownEvaluatorError(rule.evaluator, known)
        key = (rule.project, rule.name or rule.evaluator)
        if key in seen:
            raise EvaluatorConfigError(
                f"evaluator rules file {str(path)!r}: rule {key[1]!r} appears twice in project {key[0]!r}"
            )
        seen.add(key)
    return parsed.rules


def apply_rules_file(store: ClickHouseStore, rules: list[ConfiguredRule], projects: set[str]) -> None:
    """Make the stored config rules equal the file's, for the projects it names and those given."""
    by_project: dict[str, list[ConfiguredRule]] = {}
    for configured in rules:
        by_project.setdefault(configured.project, []).append(configured)
    for project in sorted(set(by_project) | projects):
        if store.get_project(project) is None:
            log.warning("evaluator rules file names project %r, which does not exist; its rules wait for it", project)
            continue
        ev = EvaluationStore(store, project)
        existing = {r.rule_id: r for r in ev.list_rules()}
        wanted = set()
        for body in by_project.get(project, []):
            name = body.name or body.evaluator
            rule_id = "cfg-" + hashlib.sha256(f"{project}\x1f{name}".encode()).hexdigest()[:24]
            wanted.add(rule_id)
            rule = _rule(body, rule_id, "config")
            old = existing.get(rule_id)
            if old is not None and _same(old, rule):
                continue
            clash = next((r for r in existing.values() if r.name == name and r.rule_id != rule_id), None)
            if clash is not None:
                raise EvaluatorConfigError(
                    f"evaluator rules file: project {project!r} already has an API rule named {name!r}; "
                    "rename one of them"
                )
            created = old.created_at_ns if old else 0
            ev.save_rule(replace(rule, created_at_ns=created))
        for rule_id, old in existing.items():
            if old.source == "config" and rule_id not in wanted:
                ev.delete_rule(rule_id)


def _same(a: EvaluatorRule, b: EvaluatorRule) -> bool:
    skip = {"created_at_ns", "updated_at_ns"}
    return all(getattr(a, f) == getattr(b, f) for f in a.__dataclass_fields__ if f not in skip)


# What `loopwise up` turns on for a new local project: checks that need no key, no download and
# no reference answer. Hallucination is sampled because it embeds every sentence of the answer
# and of its context; drift embeds one text per span.
DEFAULT_RULES: tuple[RuleIn, ...] = (
    RuleIn(evaluator="hallucination", filter=SpanSelector(span_types=["llm"]), sample_rate=0.5),
    RuleIn(
        evaluator="embedding_drift",
        name="output_drift",
        params={"field": "output"},
        filter=SpanSelector(span_types=["llm"]),
    ),
)


def seed_default_rules(store: ClickHouseStore, project: str) -> bool:
    """Give ``project`` the default rules unless it has ever had rules; True when seeded."""
    ev = EvaluationStore(store, project)
    if ev.has_any_rule_ever():
        return False
    for body in DEFAULT_RULES:
        seed = f"{project}\x1fdefault\x1f{body.name or body.evaluator}".encode()
        ev.save_rule(_rule(body, hashlib.sha256(seed).hexdigest()[:32], "api"))
    names = ", ".join(r.name or r.evaluator for r in DEFAULT_RULES)
    log.info("project %r: default evaluator rules created (%s)", project, names)
    return True
