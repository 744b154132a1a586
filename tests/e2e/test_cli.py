"""``loopwise up`` (what ``make run`` starts) prints a URL and a key that work, and runs an evaluation runner."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support import processes
from tests.support.clickhouse_http import free_port

pytestmark = pytest.mark.e2e


def runner_pids(port: int) -> list[str]:
    found = subprocess.run(["pgrep", "-f", f"evaluate --endpoint http://127.0.0.1:{port}"],
                           capture_output=True, text=True, check=False)  # fmt: skip
    return found.stdout.split()


def test_up_prints_a_working_url_and_key(tmp_path: Path) -> None:
    port, dashboard_port = free_port(), free_port()
    env = {**os.environ, "LOOPWISE_DATA_DIR": str(tmp_path), "LOOPWISE_PORT": str(port),
           "LOOPWISE_DASHBOARD_PORT": str(dashboard_port)}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "loopwise_collector.cli", "up"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.stdout is not None:
            line = proc.stdout.readline()
            lines.append(line)
            if "Stop with Ctrl-C" in line or proc.poll() is not None:
                break
        out = "".join(lines)
        url = re.search(r"Collector\s+(http://\S+)", out).group(1)
        key = re.search(r"API key\s+(\S+)", out).group(1)
        assert url == f"http://127.0.0.1:{port}"
        resp = httpx.get(f"{url}/api/v1/traces", headers={"Authorization": f"Bearer {key}"})
        assert resp.status_code == 200 and resp.json() == {"data": [], "next_cursor": None}
        assert httpx.get(f"{url}/api/v1/traces", headers={"Authorization": "Bearer wrong"}).status_code == 401
        # The local project starts with the default evaluator rules, and a runner of its own.
        rules = httpx.get(f"{url}/api/v1/evaluators", headers={"Authorization": f"Bearer {key}"}).json()["data"]
        assert {r["name"]: r["evaluator"] for r in rules} == {
            "hallucination": "hallucination",
            "output_drift": "embedding_drift",
        }
        assert "Evaluation runner: on" in out
        assert runner_pids(port), "loopwise up started no evaluation runner"
        # ... and the dashboard, on its own port.
        assert f"Dashboard  http://127.0.0.1:{dashboard_port}" in out
        processes.wait_http(f"http://127.0.0.1:{dashboard_port}/_stcore/health", timeout=60)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    deadline = time.monotonic() + 20
    while runner_pids(port) and time.monotonic() < deadline:  # the runner goes down with `up`
        time.sleep(0.2)
    assert not runner_pids(port)
    with pytest.raises(httpx.HTTPError):  # and so does the dashboard
        httpx.get(f"http://127.0.0.1:{dashboard_port}/_stcore/health", timeout=1)
    assert key not in (tmp_path / "credentials.json").read_text().replace(key, "", 1)  # stored once, not logged twice


def test_collector_refuses_a_second_process_on_the_same_data_dir(tmp_path: Path) -> None:
    port1, port2 = free_port(), free_port()
    env = {**os.environ, "LOOPWISE_DATA_DIR": str(tmp_path)}
    first = subprocess.Popen([sys.executable, "-m", "loopwise_collector.cli", "collector", "--port", str(port1)],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port1}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        second = subprocess.run(
            [sys.executable, "-m", "loopwise_collector.cli", "collector", "--port", str(port2)],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode != 0
        assert "already in use by another process" in second.stdout + second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(30)


def test_dashboard_command_needs_a_key_and_serves_the_app(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPWISE_")}
    env["LOOPWISE_DATA_DIR"] = str(tmp_path)  # no credentials.json there
    command = [sys.executable, "-m", "loopwise_collector.cli", "dashboard"]
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 1 and "no API key" in refused.stderr and "loopwise up" in refused.stderr

    port = free_port()
    proc = subprocess.Popen([*command, "--api-key", "lw_some_key_0123456789", "--port", str(port),
                             "--endpoint", "http://127.0.0.1:9"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        processes.wait_http(f"http://127.0.0.1:{port}/_stcore/health", timeout=60, process=proc)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
