"""Run the real collector (``loopwise collector``) as a uvicorn subprocess for end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import processes
from tests.support.clickhouse_http import free_port


class CollectorProcess:
    """Start, stop, kill and restart a collector on a fixed loopback port."""

    def __init__(self, data_dir: Path, *, env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.env = env or {}
        self.log_path = data_dir.with_name(f"{data_dir.name}-collector.log")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        env = {
            **os.environ,
            "LOOPWISE_DATA_DIR": str(self.data_dir),
            "LOOPWISE_PORT": str(self.port),
            **self.env,
        }
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "loopwise_collector.cli", "collector"], env=env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"collector exited with {self._proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"collector did not start in {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> None:
        processes.terminate(self._proc, timeout)
        self._proc = None

    def kill(self) -> None:
        processes.kill(self._proc)
        self._proc = None

    def log_tail(self, lines: int = 40) -> str:
        return processes.log_tail(self.log_path, lines)
