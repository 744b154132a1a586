"""The ``loopwise`` command: ``up``, ``collector``, ``evaluate``, ``eval`` and ``demo``.

Options also read ``LOOPWISE_*`` environment variables (via :class:`Settings`); flags win.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click
import httpx
import uvicorn
from pydantic import SecretStr

from loopwise_collector.app import create_app
from loopwise_collector.evaluation.offline import eval_command
from loopwise_collector.settings import Settings

DEFAULT_PROJECT = "default"


def _settings(**overrides: Any) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**values)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


def local_credentials(data_dir: Path) -> tuple[str, str]:
    """The embedded stack's project and key, created once and kept (mode 0600) under ``data_dir``.

    Example:
        >>> import tempfile
        >>> project, key = local_credentials(Path(tempfile.mkdtemp()))
        >>> project, key.startswith("lw_")
        ('default', True)
    """
    stored = stored_credentials(data_dir)
    if stored is not None:
        return stored
    path = data_dir / "credentials.json"
    data_dir.mkdir(parents=True, exist_ok=True)
    key = "lw_" + secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"project": DEFAULT_PROJECT, "api_key": key}, fh)
    return DEFAULT_PROJECT, key


def stored_credentials(data_dir: Path) -> tuple[str, str] | None:
    """The project and key ``loopwise up`` keeps under ``data_dir``, or ``None`` before its first run.

    Example:
        >>> import tempfile
        >>> stored_credentials(Path(tempfile.mkdtemp())) is None
        True
    """
    path = data_dir / "credentials.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return data["project"], data["api_key"]


def resolve_endpoint(settings: Settings, endpoint: str | None) -> str:
    """The collector URL a client command talks to: ``endpoint``, else this machine's collector.

    Example:
        >>> resolve_endpoint(Settings(_env_file=None), "http://127.0.0.1:4318/v1/traces")
        'http://127.0.0.1:4318'
    """
    if endpoint is None:
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host  # noqa: S104 - not a bind
        endpoint = f"http://{host}:{settings.port}"
    endpoint = endpoint.strip().rstrip("/").removesuffix("/v1/traces")
    if not endpoint.startswith(("http://", "https://")):
        raise click.BadParameter(f"{endpoint!r} is not a URL like http://127.0.0.1:4318", param_hint="--endpoint")
    return endpoint


def _serve(settings: Settings, banner: str | None) -> None:
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=15,
    )
    server = uvicorn.Server(config)
    if banner:
        url = f"http://{settings.host}:{settings.port}/healthz"

        def announce() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not server.should_exit:
                try:
                    if httpx.get(url, timeout=1).status_code == 200:
                        click.echo(banner)
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)

        threading.Thread(target=announce, daemon=True).start()
    server.run()
    if not server.started:
        sys.exit(1)


@click.group()
@click.version_option("0.1.0", prog_name="loopwise")
def main() -> None:
    """Loopwise: observe, evaluate, alert, retrain and A/B deploy LLM apps."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the start-up probe is not news


_common = [
    click.option("--host", default=None, help="Bind address [LOOPWISE_HOST, default 127.0.0.1]."),
    click.option("--port", type=int, default=None, help="Port [LOOPWISE_PORT, default 4318]."),
    click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="[LOOPWISE_DATA_DIR]"),
    click.option("--store", default=None, help="Store DSN [LOOPWISE_STORE, default chdb:// under data dir]."),
]


def common_options(fn: Any) -> Any:
    for option in reversed(_common):
        fn = option(fn)
    return fn


@main.command()
@common_options
def collector(host: str | None, port: int | None, data_dir: Path | None, store: str | None) -> None:
    """Run the collector: OTLP ingest and the query API."""
    _serve(_settings(host=host, port=port, data_dir=data_dir, store=store), banner=None)


@main.command()
@common_options
@click.option("--evaluate/--no-evaluate", default=True, show_default=True, help="Start an evaluation runner too.")
@click.option("--dashboard/--no-dashboard", default=True, show_default=True, help="Start the dashboard too.")
@click.option(
    "--dashboard-port", type=click.IntRange(1, 65535), envvar="LOOPWISE_DASHBOARD_PORT", default=8501,
    show_default=True, help="Dashboard port [LOOPWISE_DASHBOARD_PORT].",
)  # fmt: skip
def up(
    host: str | None, port: int | None, data_dir: Path | None, store: str | None, evaluate: bool, dashboard: bool,
    dashboard_port: int,
) -> None:  # fmt: skip
    """Start the local stack and print its URL and an API key.

    That is the collector on the embedded store and an evaluation runner (its own process) with
    the default rules; the worker and dashboard join as they land.
    """
    settings = _settings(host=host, port=port, data_dir=data_dir, store=store, seed_default_rules=True)
    project, key = local_credentials(settings.data_dir)
    seeds = settings.init_projects.get_secret_value() if settings.init_projects else ""
    if f":{key}" not in seeds:
        merged = ",".join(s for s in (seeds, f"{project}:{key}") if s)
        settings = settings.model_copy(update={"init_projects": SecretStr(merged)})
    base = f"http://{settings.host}:{settings.port}"
    banner = "\n".join(
        [
            "",
            "Loopwise is up.",
            f"  Collector  {base}   (API docs: {base}/docs)",
            f"  OTLP       {base}/v1/traces",
            f"  API key    {key}   (project '{project}'; kept in {settings.data_dir / 'credentials.json'})",
            "",
            "  Send traces with any OpenTelemetry exporter:",
            f"    export OTEL_EXPORTER_OTLP_ENDPOINT={base}",
            f'    export OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer {key}"',
            f'  Query:  curl -H "Authorization: Bearer {key}" {base}/api/v1/traces',
            "  Evaluation runner: " + ("on (rules: GET /api/v1/evaluators)" if evaluate else "off (--no-evaluate)"),
            "  Dashboard  " + (f"http://{settings.host}:{dashboard_port}" if dashboard else "off (--no-dashboard)"),
            "  Stop with Ctrl-C.",
            "",
        ]
    )
    # The runner dials this machine, even when the collector binds every interface (0.0.0.0).
    endpoint = resolve_endpoint(settings, None)
    children = [_start_runner(endpoint, key, settings.data_dir)] if evaluate else []
    if dashboard:
        children.append(_start_dashboard(endpoint, key, settings.host, dashboard_port))
    try:
        _serve(settings, banner=banner)
    finally:
        for child in children:
            _stop(child)


def _start_runner(endpoint: str, key: str, data_dir: Path) -> subprocess.Popen[bytes]:
    # A process of its own: model inference must never compete with ingest for the collector's GIL.
    env = {**os.environ, "LOOPWISE_API_KEY": key}
    command = [sys.executable, "-m", "loopwise_collector.cli", "evaluate", "--endpoint", endpoint,
               "--data-dir", str(data_dir)]  # fmt: skip
    return subprocess.Popen(command, env=env)


def _dashboard_command(host: str, port: int) -> list[str]:
    try:
        from loopwise_dashboard import APP_PATH
    except ImportError as exc:
        raise click.ClickException(
            "the dashboard is not installed: pip install loopwise-dashboard (or use --no-dashboard)"
        ) from exc
    return [sys.executable, "-m", "streamlit", "run", str(APP_PATH), "--server.headless", "true",
            "--server.address", host, "--server.port", str(port), "--browser.gatherUsageStats", "false"]  # fmt: skip


def _start_dashboard(endpoint: str, key: str, host: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LOOPWISE_ENDPOINT": endpoint, "LOOPWISE_API_KEY": key}
    return subprocess.Popen(_dashboard_command(host, port), env=env)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)  # the runner finishes and posts its batch first
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@main.command("dashboard")
@click.option(
    "--endpoint", envvar="LOOPWISE_ENDPOINT", default=None,
    help="Collector URL [LOOPWISE_ENDPOINT, default http://<LOOPWISE_HOST>:<LOOPWISE_PORT>].",
)  # fmt: skip
@click.option("--api-key", envvar="LOOPWISE_API_KEY", default=None,
              help="Project key [LOOPWISE_API_KEY, default: the key `loopwise up` keeps].")  # fmt: skip
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="[LOOPWISE_DATA_DIR]")
@click.option("--host", default="127.0.0.1", show_default=True, help="Dashboard bind address.")
@click.option("--port", type=click.IntRange(1, 65535), envvar="LOOPWISE_DASHBOARD_PORT", default=8501,
              show_default=True, help="Dashboard port [LOOPWISE_DASHBOARD_PORT].")  # fmt: skip
def dashboard_command(endpoint: str | None, api_key: str | None, data_dir: Path | None, host: str, port: int) -> None:
    """Run the dashboard (Streamlit) against a collector.

    Example: loopwise dashboard --endpoint http://collector:4318 --port 8501
    """
    settings = _settings(data_dir=data_dir)
    endpoint = resolve_endpoint(settings, endpoint)
    if api_key is None:
        stored = stored_credentials(settings.data_dir)
        if stored is None:
            raise click.ClickException(
                "no API key: pass --api-key, set LOOPWISE_API_KEY, or run `loopwise up` first, which keeps one in "
                f"{settings.data_dir / 'credentials.json'}."
            )
        api_key = stored[1]
    click.echo(f"dashboard on http://{host}:{port} for the collector at {endpoint}", err=True)
    env = {**os.environ, "LOOPWISE_ENDPOINT": endpoint, "LOOPWISE_API_KEY": api_key}
    sys.exit(subprocess.call(_dashboard_command(host, port), env=env))


@main.command()
@click.option(
    "--endpoint", envvar="LOOPWISE_ENDPOINT", default=None,
    help="Collector URL [LOOPWISE_ENDPOINT, default http://<LOOPWISE_HOST>:<LOOPWISE_PORT>].",
)  # fmt: skip
@click.option(
    "--api-key", "api_keys", multiple=True,
    help="A project key; repeat for several projects [LOOPWISE_API_KEY, default: the key `loopwise up` keeps].",
)  # fmt: skip
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="[LOOPWISE_DATA_DIR]")
@click.option("--batch-size", type=click.IntRange(1, 1000), default=64, show_default=True, help="Spans per claim.")
@click.option(
    "--lease-seconds", type=click.FloatRange(5, 3600), default=120, show_default=True,
    help="How long a claim is ours; after that another runner may take the spans.",
)  # fmt: skip
@click.option("--poll-seconds", type=click.FloatRange(0.05, 60), default=1.0, show_default=True,
              help="Pause when there is nothing to do.")  # fmt: skip
@click.option("--device", envvar="LOOPWISE_EVAL_DEVICE", default=None, help="cpu, cuda, cuda:1 ... [default: auto].")
@click.option("--once", is_flag=True, help="Work until nothing is left to claim, then exit (batch jobs, CI).")
def evaluate(
    endpoint: str | None, api_keys: tuple[str, ...], data_dir: Path | None, batch_size: int, lease_seconds: float,
    poll_seconds: float, device: str | None, once: bool,
) -> None:  # fmt: skip
    """Run the online evaluation runner: score sampled live spans by the projects' evaluator rules.

    It claims spans from the collector under a lease, evaluates them in batches in this process,
    and posts scores and embeddings back. Run several, on CPU or GPU machines, to share the work.

    Example: LOOPWISE_API_KEY=lw_... loopwise evaluate --endpoint http://collector:4318
    """
    from loopwise_collector.evaluation.runner import Runner, RunnerOptions, wait_for_collector

    settings = _settings(data_dir=data_dir)
    endpoint = resolve_endpoint(settings, endpoint)
    keys = api_keys or tuple(k for k in [os.environ.get("LOOPWISE_API_KEY", "")] if k)
    if not keys:
        stored = stored_credentials(settings.data_dir)
        if stored is None:
            raise click.ClickException(
                "no API key: pass --api-key, set LOOPWISE_API_KEY, or run `loopwise up` first, which keeps one in "
                f"{settings.data_dir / 'credentials.json'}."
            )
        keys = (stored[1],)
    options = RunnerOptions(endpoint=endpoint, api_keys=keys, batch_size=batch_size, lease_s=lease_seconds,
                            poll_s=poll_seconds, device=device)  # fmt: skip
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if not wait_for_collector(endpoint, stop, timeout_s=120):
        raise click.ClickException(f"no collector answered at {endpoint} within 120 s")
    runner = Runner(options)
    click.echo(f"evaluation runner {options.runner_id} on {endpoint} ({len(keys)} project key(s))", err=True)
    if once:
        while not stop.is_set() and runner.run_once(stop):
            pass
    else:
        runner.run(stop)
    click.echo(f"evaluation runner stopped after {runner.handled} span(s)", err=True)


@main.command()
@click.option("--traces", type=click.IntRange(min=1), default=200, show_default=True, help="Requests to simulate.")
@click.option(
    "--endpoint",
    envvar="LOOPWISE_ENDPOINT",
    default=None,
    help="Collector URL [LOOPWISE_ENDPOINT, default http://<LOOPWISE_HOST>:<LOOPWISE_PORT>].",
)
@click.option(
    "--api-key",
    envvar="LOOPWISE_API_KEY",
    default=None,
    help="Project key [LOOPWISE_API_KEY, default: the one `loopwise up` keeps in the data dir].",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where `loopwise up` keeps credentials.json [LOOPWISE_DATA_DIR].",
)
@click.option("--seed", type=int, default=None, help="Same seed, same content. Default: random.")
@click.option(
    "--concurrency", type=click.IntRange(1, 64), default=4, show_default=True, help="Sessions in flight at once."
)
@click.option(
    "--error-rate",
    type=click.FloatRange(0, 1),
    default=0.08,
    show_default=True,
    help="Share of requests that hit a fault (tool timeout, rate limit, ...).",
)
@click.option(
    "--feedback-rate",
    type=click.FloatRange(0, 1),
    default=0.1,
    show_default=True,
    help="Share of requests that get human feedback (thumbs up/down or a 1-5 rating).",
)
@click.option(
    "--latency-scale",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Multiplies the simulated latencies (a few ms per step); 0 sends as fast as possible.",
)
@click.option(
    "--flush-timeout",
    type=click.FloatRange(min=0),
    default=15.0,
    show_default=True,
    help="At the end, give up delivering after this many seconds without progress.",
)
@click.pass_context
def demo(
    ctx: click.Context, traces: int, endpoint: str | None, api_key: str | None, data_dir: Path | None,
    seed: int | None, concurrency: int, error_rate: float, feedback_rate: float, latency_scale: float,
    flush_timeout: float,
) -> None:  # fmt: skip
    """Send realistic sample traffic through the Loopwise SDK to a running collector.

    A simulated support app (chat agent, docs search, ticket triage) traces multi-step requests with
    several models and providers, users, sessions, A/B variants, errors and human feedback. Exits
    non-zero when the collector is unreachable, refuses the key, or not everything was delivered.

    Example: loopwise demo --traces 50 --seed 7
    """
    from loopwise_collector.demo import DemoOptions
    from loopwise_collector.demo._command import send

    settings = _settings(data_dir=data_dir)
    endpoint = resolve_endpoint(settings, endpoint)
    key_shown = api_key or ""
    if api_key is None:
        stored = stored_credentials(settings.data_dir)
        if stored is None:
            raise click.ClickException(
                f"no API key: pass --api-key, set LOOPWISE_API_KEY, or run `loopwise up` first, which keeps one in "
                f"{settings.data_dir / 'credentials.json'} (use --data-dir or LOOPWISE_DATA_DIR if it runs elsewhere)."
            )
        api_key = key_shown = stored[1]
    elif ctx.get_parameter_source("api_key") is click.core.ParameterSource.ENVIRONMENT:
        key_shown = "$LOOPWISE_API_KEY"
    # The SDK reads LOOPWISE_SPOOL_DIR itself; otherwise keep demo batches next to the local stack's data.
    spool_dir = None if os.environ.get("LOOPWISE_SPOOL_DIR") else settings.data_dir / "demo-spool"
    options = DemoOptions(
        traces=traces, seed=secrets.randbelow(10_000) if seed is None else seed, concurrency=concurrency,
        error_rate=error_rate, feedback_rate=feedback_rate, latency_scale=latency_scale,
    )  # fmt: skip
    send(options, endpoint=endpoint, api_key=api_key, key_shown=key_shown, spool_dir=spool_dir,
         flush_timeout=flush_timeout)  # fmt: skip


main.add_command(eval_command)


if __name__ == "__main__":  # pragma: no cover
    main()
