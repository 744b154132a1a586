"""Test-side controller for the ClickHouse HTTP server over chDB (`chdb_http_server`). A TEST HARNESS.

Why a subprocess: chDB locks its data directory and allows one engine path per process, and the pytest process
opens its own chDB path for other tests. Running the server as a child process also lets outage tests kill it
(SIGKILL releases the lock and keeps the data) and restart it on the same port and data directory.

    server = ClickHouseHTTPServer(tmp_path / "ch")  # a free loopback port, chosen once
    with server:  # start() ... stop()
        client = clickhouse_connect.get_client(dsn=server.dsn, compress=False)
        server.kill()  # an outage: requests now fail at once with connection refused
        server.restart()  # the same port, the same data

Clients should pass `compress=False`: plain bodies are cheapest on loopback. clickhouse-connect's default
(`compress=True`: lz4, zstd or gzip) works too, since the server decodes request bodies and compresses
responses. `pause()`/`resume()` freeze the process instead (SIGSTOP): connections are accepted but never
answered, as with a hung server, so clients hit their timeouts.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from tests.support import processes

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

SERVER_MODULE = "tests.support.chdb_http_server"
REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free right now on `host` (the kernel picks it; a small race is acceptable in tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ClickHouseHTTPServer:
    """Start, stop, kill and restart a ClickHouse HTTP endpoint served by chDB in a child process.

    The port is fixed at construction, so the address survives restarts and an outage test can point a
    collector at it once. The child's output goes to `log_path`, whose tail is quoted if startup fails.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        log_path: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path or self.data_dir.with_name(f"{self.data_dir.name}.server.log")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. `http://127.0.0.1:PORT`."""
        return f"http://{self.host}:{self.port}"

    @property
    def dsn(self) -> str:
        """DSN for `clickhouse_connect.get_client(dsn=...)`; append a database name for a default database."""
        return f"{self.url}/"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def ping(self, timeout: float = 1.0) -> bool:
        """True when the server answers `/ping` with `Ok.`."""
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=timeout) as response:
                return bool(response.status == 200 and response.read() == b"Ok.\n")
        except (OSError, urllib.error.URLError):
            return False

    def start(self, timeout: float = 30.0) -> None:
        """Spawn the server and wait until `/ping` answers; on failure, raise RuntimeError with its log."""
        if self.running:
            raise RuntimeError(f"ClickHouse HTTP harness already running on {self.url}")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-u", "-m", SERVER_MODULE, "--data-dir", str(self.data_dir)]
        command += ["--host", self.host, "--port", str(self.port)]
        path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": path},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if self.ping(timeout=0.5):
                return
            time.sleep(0.05)
        code = self._process.poll()
        self.kill()
        state = f"exited with {code}" if code is not None else f"did not answer /ping within {timeout:.0f}s"
        raise RuntimeError(f"ClickHouse HTTP harness on {self.url} {state}; log tail:\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        """Graceful shutdown (SIGTERM: close the listener and the engine); SIGKILL if it does not exit."""
        processes.terminate(self._process, timeout)
        self._process = None

    def kill(self) -> None:
        """SIGKILL, as in a crash or an outage. chDB's lock dies with the process; the data stays."""
        processes.kill(self._process)
        self._process = None

    def pause(self) -> None:
        """SIGSTOP: the server hangs (the kernel still accepts connections) until resume()."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after pause(): queued requests are then served."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGCONT)

    def restart(self, timeout: float = 30.0) -> None:
        """Stop if running, then start again on the same port and data directory."""
        self.stop()
        self.start(timeout)

    def client(self, database: str | None = None, **kwargs: Any) -> Client:
        """An unmodified clickhouse-connect HTTP client for this server (compress=False unless overridden)."""
        import clickhouse_connect

        kwargs.setdefault("compress", False)
        return clickhouse_connect.get_client(host=self.host, port=self.port, database=database, **kwargs)

    def log_tail(self, lines: int = 40) -> str:
        return processes.log_tail(self.log_path, lines)

    def __enter__(self) -> ClickHouseHTTPServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"ClickHouseHTTPServer({self.url}, data_dir={str(self.data_dir)!r}, running={self.running})"
