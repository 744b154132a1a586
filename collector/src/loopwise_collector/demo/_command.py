"""The terminal side of ``loopwise demo``: checks, progress bars, the flush and the summary."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click
import httpx

import loopwise
from loopwise_collector.demo import DemoOptions, DemoReport, run_demo
from loopwise_collector.demo._app import UNPRICED

_START_HINT = "Start one with `loopwise up` (or `loopwise collector`), or point --endpoint at a running collector."


def check_collector(endpoint: str, api_key: str, timeout: float = 3.0) -> None:
    """Fail fast, with a clear message, when the collector is not there or refuses the key."""
    try:
        health = httpx.get(f"{endpoint}/healthz", timeout=timeout)
    except httpx.HTTPError as exc:
        raise click.ClickException(
            f"cannot reach a Loopwise collector at {endpoint} ({type(exc).__name__}: {exc}). {_START_HINT}"
        ) from exc
    if health.status_code != 200:
        raise click.ClickException(
            f"{endpoint}/healthz answered HTTP {health.status_code}; is {endpoint} a Loopwise collector? {_START_HINT}"
        )
    try:
        probe = httpx.get(
            f"{endpoint}/api/v1/traces", params={"limit": 1}, headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
        )  # fmt: skip
    except httpx.HTTPError:
        return  # reachable a moment ago: let the SDK retry and spool
    if probe.status_code in (401, 403):
        raise click.ClickException(
            f"the collector at {endpoint} rejected the API key (HTTP {probe.status_code}: {_error_text(probe)}). "
            "Pass the key `loopwise up` printed with --api-key or LOOPWISE_API_KEY, or a key seeded with "
            "LOOPWISE_INIT_PROJECTS."
        )


def _error_text(resp: httpx.Response) -> str:
    try:
        return str(resp.json()["error"]["message"])
    except Exception:
        return resp.text[:200]


def _deliver(stall_timeout: float) -> tuple[bool, dict[str, Any], float]:
    """Flush with a progress bar, until delivered, stalled for ``stall_timeout`` s, or the key is refused."""
    started = time.perf_counter()
    stats = loopwise.stats()
    total = max(1, int(stats.get("spans_queued", 0)) + int(stats.get("scores_queued", 0)))
    delivered = False
    last_progress = time.monotonic()
    with click.progressbar(length=total, label="Delivering    ", file=sys.stderr) as bar:
        shown = 0
        while True:
            delivered = loopwise.flush(timeout=0.25)
            stats = loopwise.stats()
            done = min(total, int(stats.get("spans_delivered", 0)) + int(stats.get("scores_delivered", 0)))
            if delivered:
                done = total
            if done > shown:
                bar.update(done - shown)
                shown = done
                last_progress = time.monotonic()
            if delivered or stats.get("state") == "auth" or time.monotonic() - last_progress >= stall_timeout:
                break
    return delivered, stats, time.perf_counter() - started


def _counts(items: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in items.items()) or "none"


def summary(report: DemoReport, stats: dict[str, Any], endpoint: str, seed: int) -> list[str]:
    """The lines printed after a run.

    Example:
        >>> lines = summary(DemoReport(traces=1, apps={"rag-answer": 1}), {"spans_queued": 4}, "http://h:1", 7)
        >>> lines[0]
        'Sent 1 traces (4 spans) to http://h:1 in 0.0 s (seed 7).'
    """
    models = ", ".join(f"{m} {n}" + (" (unpriced)" if m in UNPRICED else "") for m, n in report.model_calls.items())
    return [
        f"Sent {report.traces} traces ({stats.get('spans_queued', 0)} spans) to {endpoint} in "
        f"{report.elapsed_s:.1f} s (seed {seed}).",
        f"  requests   {_counts(report.apps)}",
        f"  people     {report.users} users in {report.sessions} sessions; variants {_counts(report.variants)}",
        f"  errors     {report.error_traces} traces with error spans; {report.failed} requests failed",
        f"  feedback   {sum(report.scores.values())} human scores ({_counts(report.scores)})",
        f"  LLM calls  {sum(report.model_calls.values())}: {models or 'none'}",
        f"  tokens     {report.input_tokens:,} input, {report.output_tokens:,} output",
    ]


def send(
    options: DemoOptions, *, endpoint: str, api_key: str, key_shown: str, spool_dir: Path | None, flush_timeout: float
) -> None:
    """Check the collector, run the demo through the SDK, flush, and print what was sent."""
    check_collector(endpoint, api_key)
    loopwise.configure(
        endpoint=endpoint, api_key=api_key, service_name="acme-support-demo",
        spool_dir=str(spool_dir) if spool_dir is not None else None,
    )  # fmt: skip
    with click.progressbar(length=options.traces, label="Sending traces", file=sys.stderr) as bar:
        report = run_demo(options, progress=bar.update)
    delivered, stats, flush_s = _deliver(flush_timeout)
    for line in summary(report, stats, endpoint, options.seed):
        click.echo(line)
    spans, scores = int(stats.get("spans_queued", 0)), int(stats.get("scores_queued", 0))
    sent = int(stats.get("spans_delivered", 0)) + int(stats.get("scores_delivered", 0))
    lost = sum(int(v) for k, v in stats.items() if k == "items_rejected" or "_dropped" in k)
    if delivered and not lost:
        # The SDK also delivers what an earlier, interrupted run left in the same spool.
        earlier = f", plus {sent - spans - scores} left by an earlier run" if sent > spans + scores else ""
        click.echo(f"  delivery   all {spans} spans and {scores} scores delivered{earlier} (flush {flush_s:.1f} s)")
        click.echo("")
        click.echo("Look at them:")
        click.echo(f'  curl -H "Authorization: Bearer {key_shown}" "{endpoint}/api/v1/traces?tag=demo"')
        click.echo(f'  curl -H "Authorization: Bearer {key_shown}" "{endpoint}/api/v1/metrics/summary?group_by=model"')
        click.echo(f'  curl -H "Authorization: Bearer {key_shown}" "{endpoint}/api/v1/scores?source=human"')
        click.echo(f"  API docs: {endpoint}/docs")
        loopwise.shutdown(timeout=1.0)
        return
    where = stats.get("spool_dir") or "memory"
    pending = stats.get("spool_items", 0)
    click.echo(f"  delivery   {sent} of {spans + scores} spans and scores delivered; {pending} still spooled")
    loopwise.shutdown(timeout=0.0)
    if stats.get("state") == "auth":
        raise click.ClickException(
            f"the collector at {endpoint} rejected the API key ({stats.get('last_error', '')}). "
            f"Undelivered batches stay in {where}."
        )
    if lost:
        raise click.ClickException(f"{lost} items were refused or dropped (last error: {stats.get('last_error')})")
    raise click.ClickException(
        f"delivery made no progress for {flush_timeout:g} s (last error: {stats.get('last_error') or 'none'}). "
        f"The rest stays spooled in {where} and is sent by the next `loopwise demo` run with that spool."
    )
