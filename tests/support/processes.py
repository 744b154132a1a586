"""Stopping child processes and reading their logs: shared by the test servers' controllers."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path


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
