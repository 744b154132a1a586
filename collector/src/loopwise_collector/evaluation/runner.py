"""``loopwise evaluate``: the online evaluation runner, a process of its own.

It loops over its projects' rules: claim a batch of unevaluated spans under a lease, evaluate
them in one batch, post the scores (or, for drift rules, the embeddings) back, and run each drift
rule's check when it is due. All state lives in the collector, so a runner can be killed at any
point: spans it held are claimed again when their lease expires, and a re-run replaces its
scores instead of adding to them. Several runners can share a project; each claim is disjoint.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from loopwise_collector.evaluation._client import (
    CollectorRefusedError,
    CollectorUnavailableError,
    EvaluationClient,
    encode_vector,
)
from loopwise_collector.evaluation._items import item_for
from loopwise_collector.evaluators import Evaluator, EvaluatorError, Score, get_evaluator
from loopwise_collector.evaluators._types import finite

log = logging.getLogger("loopwise.evaluate")

_MAX_TEXT = 4000  # characters of a text kept with its embedding (the vector sees the model's max tokens)


@dataclass(frozen=True, slots=True)
class RunnerOptions:
    """How a runner works.

    Example:
        >>> RunnerOptions(endpoint="http://127.0.0.1:4318", api_keys=("lw_key",)).batch_size
        64
    """

    endpoint: str
    api_keys: tuple[str, ...]
    batch_size: int = 64
    lease_s: float = 120.0
    poll_s: float = 1.0
    device: str | None = None
    runner_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")


@dataclass(frozen=True, slots=True)
class DriftParams:
    """A drift rule's schedule and windows, from its ``params``."""

    field: str = "output"
    model: str | None = None
    window_minutes: float = 60.0
    reference_minutes: float = 24 * 60.0
    reference_start: str | None = None  # a fixed baseline instead of the rolling window before `current`
    reference_end: str | None = None
    every_minutes: float = 10.0
    alpha: float = 0.01
    min_samples: int = 30
    max_samples: int = 5000

    @classmethod
    def of(cls, params: Mapping[str, Any]) -> DriftParams:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(params) - known)
        if unknown:
            raise EvaluatorError(f"embedding_drift: unknown parameter(s) {unknown}; known: {sorted(known)}")
        return cls(**params)


class Runner:
    """Evaluates sampled live spans for the projects its keys belong to.

    Example:
        >>> runner = Runner(RunnerOptions("http://127.0.0.1:4318", ("lw_key",)))  # doctest: +SKIP
        >>> runner.run_once()  # spans handled in one pass  # doctest: +SKIP
        64
    """

    def __init__(self, options: RunnerOptions, clients: Sequence[EvaluationClient] | None = None) -> None:
        self.options = options
        self.clients = list(clients or [EvaluationClient(options.endpoint, key) for key in options.api_keys])
        self._evaluators: dict[str, Evaluator | EvaluatorError] = {}
        self._reported: dict[tuple[int, str], str | None] = {}
        self.handled = 0

    # --- the loop -----------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set; rides out collector outages with backoff."""
        delay = self.options.poll_s
        down_since: float | None = None
        while not stop.is_set():
            try:
                handled = self.run_once(stop)
            except CollectorUnavailableError as exc:
                if down_since is None:
                    down_since = time.monotonic()
                    log.warning("collector unavailable (%s); retrying with backoff", exc.message)
                delay = min(max(delay * 2, 0.5), 10.0)
                stop.wait(delay)
                continue
            if down_since is not None:
                log.info("collector back after %.0f s", time.monotonic() - down_since)
                down_since = None
            delay = self.options.poll_s
            if handled == 0:
                stop.wait(self.options.poll_s)

    def run_once(self, stop: threading.Event | None = None) -> int:
        """One pass over every project's enabled rules; returns the spans handled."""
        total = 0
        for index, client in enumerate(self.clients):
            try:
                rules = client.rules()
            except CollectorRefusedError as exc:
                log.error("project key #%d refused: %s", index + 1, exc.message)
                continue
            for rule in rules:
                if stop is not None and stop.is_set():
                    return total
                if not rule["enabled"] or rule["sample_rate"] <= 0:
                    continue
                try:
                    if rule["evaluator"] == "embedding_drift":
                        total += self._embed(index, client, rule)
                        self._drift_check(index, client, rule)
                    else:
                        total += self._score(index, client, rule)
                except CollectorRefusedError as exc:
                    log.error("rule %r: collector refused a request: %s", rule["name"], exc.message)
        self.handled += total
        return total

    # --- scoring ------------------------------------------------------------------------------
    def _evaluator(self, index: int, client: EvaluationClient, rule: dict[str, Any]) -> Evaluator | None:
        key = json.dumps([rule["evaluator"], rule["params"]], sort_keys=True)
        found = self._evaluators.get(key)
        if found is None:
            params = dict(rule["params"])
            try:
                if self.options.device and "device" not in params and _takes_device(rule["evaluator"]):
                    params["device"] = self.options.device
                found = get_evaluator(rule["evaluator"], **params)
            except EvaluatorError as exc:
                found = exc
            except Exception as exc:  # a plugin's own failure: report it on the rule, keep the others going
                found = EvaluatorError(f"{rule['evaluator']}: {type(exc).__name__}: {exc}")
            self._evaluators[key] = found
        if isinstance(found, EvaluatorError):
            self._report(index, client, rule, found.message)
            return None
        self._report(index, client, rule, None)
        return found

    def _report(self, index: int, client: EvaluationClient, rule: dict[str, Any], error: str | None) -> None:
        # Compared with what the collector shows, not with what this runner last said: a restarted
        # collector forgets rule errors, and the next pass puts them back.
        if rule.get("last_error") == error:
            return
        key = (index, rule["id"])
        if error and self._reported.get(key) != error:
            log.error("rule %r cannot run: %s", rule["name"], error)
        client.report_error(rule["id"], error)
        rule["last_error"] = error
        self._reported[key] = error

    def _score(self, index: int, client: EvaluationClient, rule: dict[str, Any]) -> int:
        evaluator = self._evaluator(index, client, rule)
        if evaluator is None:
            return 0
        version = evaluator.version
        opts = self.options
        claim = client.claim(rule["id"], version, runner=opts.runner_id, limit=opts.batch_size, lease_s=opts.lease_s)
        spans = claim["spans"]
        if not spans:
            return 0
        items = [item_for(s) for s in spans]
        started = time.monotonic()
        try:
            scores = evaluator.evaluate(items)
        except EvaluatorError as exc:
            # A model that cannot load (weights offline, a missing library) is the rule's problem, not
            # a reason to stop the runner: show it on the rule and hand the spans back.
            self._evaluators[json.dumps([rule["evaluator"], rule["params"]], sort_keys=True)] = exc
            self._report(index, client, rule, exc.message)
            client.release(claim["lease_id"])
            return 0
        elapsed = time.monotonic() - started
        payload = [_score_json(span, score) for span, score in zip(spans, scores, strict=True)]
        self._post_with_retry(lambda: client.post_scores(rule["id"], version, payload))
        errors = sum(1 for s in scores if s.is_error)
        note = f", {errors} error(s)" if errors else ""
        log.info("%s: scored %d span(s) in %.2f s%s", rule["name"], len(spans), elapsed, note)
        return len(spans)

    def _post_with_retry(self, post: Any) -> None:
        # The work is done; a short outage should not throw it away. Past the lease's life it is
        # redone by whoever claims the spans next, so give up there.
        deadline = time.monotonic() + self.options.lease_s / 2
        delay = 0.5
        while True:
            try:
                post()
                return
            except CollectorUnavailableError as exc:
                if time.monotonic() + delay > deadline:
                    raise
                if delay == 0.5:
                    log.warning("collector unavailable (%s); keeping the finished batch and retrying", exc.message)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    # --- drift --------------------------------------------------------------------------------
    def _embed(self, index: int, client: EvaluationClient, rule: dict[str, Any]) -> int:
        from loopwise_collector.evaluators._embeddings import embed

        try:
            params = DriftParams.of(rule["params"])
        except (EvaluatorError, TypeError) as exc:
            self._report(index, client, rule, str(exc))
            return 0
        model_name = params.model or "all-MiniLM-L6-v2"
        claim = client.claim(
            rule["id"], f"embedding:{model_name}", runner=self.options.runner_id, limit=self.options.batch_size,
            lease_s=self.options.lease_s,
        )  # fmt: skip
        spans = claim["spans"]
        if not spans:
            return 0
        items = [item_for(s) for s in spans]
        texts = [(i.output if params.field == "output" else i.input)[:_MAX_TEXT] for i in items]
        try:
            vectors = embed(texts, model=params.model, device=self.options.device)
        except EvaluatorError as exc:
            self._report(index, client, rule, exc.message)
            return 0
        self._report(index, client, rule, None)
        rows = [
            {"span_id": s["span_id"], "trace_id": s["trace_id"], "start_time_unix_nano": s["start_time_unix_nano"],
             "text": text, "vector_b64": encode_vector(vector)}
            for s, text, vector in zip(spans, texts, vectors, strict=True)
        ]  # fmt: skip
        self._post_with_retry(lambda: client.post_embeddings(rule["id"], params.field, model_name, rows))
        log.info("%s: embedded %d span(s)", rule["name"], len(spans))
        return len(spans)

    def _drift_check(self, index: int, client: EvaluationClient, rule: dict[str, Any]) -> None:
        try:
            params = DriftParams.of(rule["params"])
        except (EvaluatorError, TypeError):
            return  # already reported by _embed
        if not client.drift_due(rule["id"], runner=self.options.runner_id, every_s=params.every_minutes * 60):
            return
        now = time.time_ns()
        current = (now - int(params.window_minutes * 60e9), now)
        reference: tuple[int, int]
        if params.reference_start and params.reference_end:
            reference = (_parse_ns(params.reference_start), _parse_ns(params.reference_end))
        else:
            reference = (current[0] - int(params.reference_minutes * 60e9), current[0])
        ref_texts, ref_vectors = client.embeddings(rule["id"], reference[0], reference[1], params.max_samples)
        cur_texts, cur_vectors = client.embeddings(rule["id"], current[0], current[1], params.max_samples)
        body: dict[str, Any] = {
            "rule_id": rule["id"], "reference_start": _iso(reference[0]), "reference_end": _iso(reference[1]),
            "current_start": _iso(current[0]), "current_end": _iso(current[1]), "n_reference": len(ref_texts),
            "n_current": len(cur_texts),
        }  # fmt: skip
        if min(len(ref_texts), len(cur_texts)) < params.min_samples:
            reason = (
                f"not enough samples: {len(ref_texts)} reference and {len(cur_texts)} current, "
                f"need {params.min_samples} each"
            )
            client.post_drift({**body, "drift": False, "p_value": None, "result": {"reason": reason}})
            log.info("%s: drift check skipped (%s)", rule["name"], reason)
            return
        from loopwise_collector.evaluators.embedding_drift import detect_drift

        result = detect_drift(
            ref_vectors, cur_vectors, reference_texts=ref_texts, current_texts=cur_texts, alpha=params.alpha
        )
        summary = result.to_dict()
        client.post_drift({**body, "drift": bool(result.drift), "p_value": finite(result.p_value), "result": summary})
        log.info("%s: drift=%s p=%s (%d vs %d)", rule["name"], result.drift, result.p_value, len(ref_texts),
                 len(cur_texts))  # fmt: skip


def _takes_device(name: str) -> bool:
    """Whether the evaluator's factory has a ``device`` parameter (metrics and API judges do not)."""
    import inspect

    from loopwise_collector.evaluators._registry import REGISTRY

    try:
        parameters = inspect.signature(REGISTRY.factory(name)).parameters
    except (TypeError, ValueError):
        return False
    return "device" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def wait_for_collector(endpoint: str, stop: threading.Event, timeout_s: float) -> bool:
    """Wait quietly until the collector answers ``/healthz``; False on timeout or stop.

    Example:
        >>> wait_for_collector("http://127.0.0.1:9", threading.Event(), timeout_s=0)
        False
    """
    import httpx

    deadline = time.monotonic() + timeout_s
    while not stop.is_set():
        try:
            if httpx.get(f"{endpoint}/healthz", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if time.monotonic() >= deadline:
            return False
        stop.wait(0.5)
    return False


def _parse_ns(text: str) -> int:
    from datetime import UTC, datetime

    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1e9)


def _iso(ns: int) -> str:
    from loopwise_collector.evaluation._client import iso

    return iso(ns)


def _score_json(span: Mapping[str, Any], score: Score) -> dict[str, Any]:
    value = finite(score.value)
    label = score.label if value is not None or score.is_error else "error"
    metadata = {str(k): v if isinstance(v, str) else json.dumps(v, default=str) for k, v in score.metadata.items()}
    return {
        "span_id": span["span_id"], "trace_id": span["trace_id"], "value": value, "label": label[:1000],
        "explanation": score.explanation[:100_000], "metadata": metadata,
    }  # fmt: skip
