"""Stopping child processes and reading their logs: shared by the test servers' controllers."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx


def terminate(process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM (after SIGCONT, in case it was paused), then SIGKILL if it does not exit in time."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGCONT)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def kill(process: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL, as in a crash, and reap it."""
    if process is None:
        return
    if process.poll() is None:
        process.kill()
    process.wait()


def log_tail(path: Path, lines: int = 40) -> str:
    """The last lines of a child's log, for failure messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def wait_http(url: str, timeout: float = 60.0, process: subprocess.Popen[bytes] | None = None) -> float:
    """Poll ``url`` until it answers 200; seconds waited. ``TimeoutError`` when it never does, at once if
    ``process`` (the server behind it) exits first."""
    started = time.monotonic()
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        if process is not None and process.poll() is not None:
            raise TimeoutError(f"{url}: its process exited with {process.returncode}")
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{url} did not answer within {timeout:g} s")
        time.sleep(0.1)
