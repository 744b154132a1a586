"""Headless Chromium driven through chromedriver's W3C WebDriver HTTP API: no selenium needed.

Chromium's own ``--screenshot`` catches only Streamlit's loading skeleton, so pages are read the
way a person waits for them: poll the body text until the expected words are there and no
``[data-testid=stSkeleton]`` is left, give the charts a moment, then take the screenshot.

    with Browser() as browser:
        browser.open("http://127.0.0.1:8501")
        seconds = browser.wait_for_text("Overview")
        browser.screenshot(Path("docs/img/overview.png"))
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tests.support import processes
from tests.support.clickhouse_http import free_port

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
]  # fmt: skip
_READY = (
    "return !document.querySelector('[data-testid=stSkeleton]') "
    "&& !document.querySelector('[data-testid=stStatusWidget]') ? document.body.innerText : null"
)


def chromium_available() -> str | None:
    """Why browser tests cannot run here, or ``None`` when chromium and chromedriver are installed."""
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    if missing:
        names = " and ".join(missing)
        return f"{names} not installed (`make browser` installs them: apt-get install chromium chromium-driver)"
    return None


class Browser:
    """One chromedriver process and one browser session."""

    def __init__(self, width: int = 1440, height: int = 1000) -> None:
        self.width, self.height = width, height
        self.port = free_port()
        self._profile = tempfile.mkdtemp(prefix="loopwise-chromium-")
        self._driver: subprocess.Popen[bytes] | None = None
        self._http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)
        self._session = ""

    def __enter__(self) -> Browser:
        self._driver = subprocess.Popen(
            ["chromedriver", f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                if self._http.get("/status").json()["value"]["ready"]:
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("chromedriver did not start")
            time.sleep(0.1)
        args = [*FLAGS, f"--window-size={self.width},{self.height}", f"--user-data-dir={self._profile}"]
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": shutil.which("chromium"), "args": args}}}}  # fmt: skip
        self._session = self._call("POST", "/session", caps)["sessionId"]
        return self

    def __exit__(self, *exc: object | TracebackType | None) -> None:
        try:
            if self._session:
                self._http.delete(f"/session/{self._session}")
        except httpx.HTTPError:
            pass
        processes.terminate(self._driver, 10)
        self._http.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._http.request(method, path, json=body if method == "POST" else None)
        payload = response.json()
        if response.status_code >= 400:
            raise RuntimeError(f"webdriver {method} {path}: {payload.get('value')}")
        return payload["value"]

    def _session_call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._call(method, f"/session/{self._session}{path}", body)

    def open(self, url: str) -> None:
        """Navigate; returns when the document has loaded (Streamlit then renders over its websocket)."""
        self._session_call("POST", "/url", {"url": url})

    def script(self, source: str) -> Any:
        """Run JavaScript in the page and return its value."""
        return self._session_call("POST", "/execute/sync", {"script": source, "args": []})

    def text(self) -> str:
        """The page's visible text."""
        return str(self.script("return document.body.innerText") or "")

    def wait_for_text(self, *needles: str, timeout: float = 30.0) -> float:
        """Seconds until every needle shows and no skeleton or running indicator is left."""
        started = time.monotonic()
        last = ""
        while True:
            value = self.script(_READY)
            if isinstance(value, str):
                last = value
                if all(n in value for n in needles):
                    return time.monotonic() - started
            if time.monotonic() - started > timeout:
                missing = [n for n in needles if n not in last]
                raise TimeoutError(f"page still lacks {missing} after {timeout:.0f} s; it shows: {last[:500]!r}")
            time.sleep(0.05)

    def screenshot(self, path: Path) -> Path:
        """Save a PNG of the viewport."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self._session_call("GET", "/screenshot")))
        return path
