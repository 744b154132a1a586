"""A real collector holding real ``loopwise demo`` data, for the dashboard's AppTest and browser tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.support.collector_process import CollectorProcess

DEMO_KEY = "lw_dashboard_demo_key_0123456789"
EMPTY_KEY = "lw_dashboard_empty_key_0123456789"


def start_collector(data_dir: Path) -> CollectorProcess:
    """A collector with two projects: ``demo`` (for data) and ``empty`` (never sent anything)."""
    proc = CollectorProcess(data_dir, env={"LOOPWISE_INIT_PROJECTS": f"demo:{DEMO_KEY},empty:{EMPTY_KEY}"})
    proc.start()
    return proc


def send_demo(collector: CollectorProcess, tmp: Path, traces: int = 40, seed: int = 7) -> str:
    """Run ``loopwise demo`` against ``collector`` (no simulated latency) and return what it printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPWISE_")}
    env.update(LOOPWISE_SPOOL_DIR=str(tmp / "spool"), LOOPWISE_DATA_DIR=str(tmp / "lw"))
    args = ["--traces", str(traces), "--latency-scale", "0", "--seed", str(seed), "--error-rate", "0.2",
            "--feedback-rate", "0.3", "--endpoint", collector.url, "--api-key", DEMO_KEY]  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "loopwise_collector.cli", "demo", *args],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    if run.returncode != 0:
        raise RuntimeError(f"loopwise demo failed:\n{run.stdout}\n{run.stderr}")
    return run.stdout


def api(collector: CollectorProcess, path: str, key: str = DEMO_KEY, **params: Any) -> Any:
    """``GET`` one collector route as JSON, for comparing the dashboard with the API."""
    resp = httpx.get(f"{collector.url}{path}", params=params, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    resp.raise_for_status()
    return resp.json()


def post(collector: CollectorProcess, path: str, body: dict[str, Any], key: str = DEMO_KEY) -> Any:
    """``POST`` JSON to one collector route and return the answer, failing loudly on an error status."""
    resp = httpx.post(f"{collector.url}{path}", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    if resp.status_code >= 400:
        raise AssertionError(f"POST {path} answered {resp.status_code}: {resp.text}")
    return resp.json()
