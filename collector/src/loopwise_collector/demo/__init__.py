"""``loopwise demo``: realistic sample traffic, sent through the Loopwise SDK to a collector.

A simulated support app (see ``_app``) handles chat, search and ticket-triage requests from
users in sessions, on two A/B variants, with several models and providers, injected errors and
human feedback. Everything it traces goes through ``loopwise.observe`` and the SDK's spooled
export, exactly as a real app's spans would.

Example:
    >>> import loopwise
    >>> loopwise.configure(endpoint="http://127.0.0.1:4318", api_key="lw_...")  # doctest: +SKIP
    >>> run_demo(DemoOptions(traces=3, seed=7, latency_scale=0)).traces  # doctest: +SKIP
    3
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from loopwise_collector.demo._app import APPS, TurnResult, plan_sessions, run_session, send_feedback

__all__ = ["DemoOptions", "DemoReport", "run_demo"]


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What to send: how many traces, how they vary, and how fast.

    Example:
        >>> DemoOptions(traces=50, seed=1).error_rate
        0.08
    """

    traces: int = 200
    seed: int = 0
    concurrency: int = 4
    error_rate: float = 0.08
    feedback_rate: float = 0.1
    latency_scale: float = 1.0


@dataclass(frozen=True, slots=True)
class DemoReport:
    """What a run sent, counted on the app's side.

    Example:
        >>> DemoReport(traces=2, failed=1).ok
        1
    """

    traces: int = 0
    failed: int = 0
    error_traces: int = 0
    apps: dict[str, int] = field(default_factory=dict)
    users: int = 0
    sessions: int = 0
    variants: dict[str, int] = field(default_factory=dict)
    model_calls: dict[str, int] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    scores: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> int:
        """Requests that completed (possibly degraded, e.g. after a tool timeout)."""
        return self.traces - self.failed

    @staticmethod
    def of(results: list[TurnResult], elapsed_s: float) -> DemoReport:
        """Totals over the per-request results."""
        models: Counter[str] = Counter()
        scores: Counter[str] = Counter()
        tokens_in = tokens_out = 0
        for r in results:
            for model, n_in, n_out in r.llm_calls:
                models[model] += 1
                tokens_in += n_in
                tokens_out += n_out
            scores.update(r.scores)
        apps = Counter(r.app for r in results)
        return DemoReport(
            traces=len(results),
            failed=sum(r.failed for r in results),
            error_traces=sum(r.error_spans > 0 for r in results),
            apps={a: apps[a] for a in APPS if apps[a]},
            users=len({r.user_id for r in results}),
            sessions=len({r.session_id for r in results}),
            variants=dict(sorted(Counter(r.variant for r in results).items())),
            model_calls=dict(models.most_common()),
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            scores=dict(sorted(scores.items(), reverse=True)),
            elapsed_s=elapsed_s,
        )


def run_demo(options: DemoOptions, progress: Callable[[int], None] | None = None) -> DemoReport:
    """Send ``options.traces`` requests' worth of traces through the SDK, which must be configured.

    ``progress(n)`` is called on the calling thread as ``n`` more requests finish. Spans and
    scores are handed to the SDK's background export; call ``loopwise.flush`` afterwards.
    """
    sessions = plan_sessions(options.traces, options.seed)
    results: list[TurnResult] = []
    lock = threading.Lock()

    def done(result: TurnResult) -> None:
        with lock:
            results.append(result)

    started = time.perf_counter()
    reported = 0
    workers = max(1, min(options.concurrency, len(sessions)))
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="loopwise-demo") as pool:
        pending = {
            pool.submit(
                run_session, s, options.seed, options.error_rate, options.feedback_rate, options.latency_scale, done
            )
            for s in sessions
        }
        try:
            while pending:
                finished, pending = concurrent.futures.wait(pending, timeout=0.05)
                for future in finished:
                    future.result()  # a bug in the demo itself: stop and show it
                if progress is not None and len(results) > reported:
                    n = len(results)
                    progress(n - reported)
                    reported = n
        except BaseException:  # Ctrl-C or a bug: finish the sessions in flight only
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    send_feedback(sorted(results, key=lambda r: r.index))
    return DemoReport.of(results, time.perf_counter() - started)
