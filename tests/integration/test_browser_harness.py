"""The browser harness itself: headless Chromium through chromedriver reads a live Streamlit page only once it
has rendered (not the loading skeleton), and screenshots it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import processes
from tests.support.browser import Browser, chromium_available
from tests.support.clickhouse_http import free_port

pytestmark = pytest.mark.integration

APP = """
import time
import streamlit as st
st.title("Harness page")
time.sleep(1.0)  # content that arrives after the first paint
st.write("late words: 42")
"""


def test_waits_for_rendered_text_and_takes_a_screenshot(tmp_path: Path) -> None:
    reason = chromium_available()
    if reason:
        pytest.fail(reason)  # `make test` installs them: a missing browser is a setup error, not a skip
    (tmp_path / "app.py").write_text(APP)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(tmp_path / "app.py"), "--server.headless", "true",
         "--server.port", str(port), "--browser.gatherUsageStats", "false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        processes.wait_http(f"http://127.0.0.1:{port}/_stcore/health", timeout=10, process=proc)
        with Browser() as browser:
            browser.open(f"http://127.0.0.1:{port}")
            seconds = browser.wait_for_text("Harness page", "late words: 42", timeout=30)
            assert 0.5 < seconds < 30  # it really waited for the late content
            shot = browser.screenshot(tmp_path / "page.png")
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000
            with pytest.raises(TimeoutError, match="never shown"):
                browser.wait_for_text("never shown", timeout=1)
    finally:
        processes.terminate(proc, 10)
