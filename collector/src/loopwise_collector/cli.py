"""The ``loopwise`` command: ``up`` and ``collector`` (more parts join ``up`` as they land).

Options also read ``LOOPWISE_*`` environment variables (via :class:`Settings`); flags win.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
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
    path = data_dir / "credentials.json"
    if path.exists():
        data = json.loads(path.read_text())
        return data["project"], data["api_key"]
    data_dir.mkdir(parents=True, exist_ok=True)
    key = "lw_" + secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"project": DEFAULT_PROJECT, "api_key": key}, fh)
    return DEFAULT_PROJECT, key


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
def up(host: str | None, port: int | None, data_dir: Path | None, store: str | None) -> None:
    """Start the local stack and print its URL and an API key.

    Today that is the collector on the embedded store; the evaluation runner, worker and dashboard
    join as they land.
    """
    settings = _settings(host=host, port=port, data_dir=data_dir, store=store)
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
            "  Stop with Ctrl-C.",
            "",
        ]
    )
    _serve(settings, banner=banner)


if __name__ == "__main__":  # pragma: no cover
    main()
