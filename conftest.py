"""Root conftest: applies to the test suite and to the docstring examples under ``*/src``.

The SDK configures itself from ``LOOPWISE_*`` variables the first time a decorated function
runs, and docstring examples do run decorated functions. Point it at a port nobody listens on
and a throwaway spool, so a test run never writes to the user's cache or sends anywhere.
"""

from __future__ import annotations

import os
import tempfile

import pytest


def pytest_configure(config: pytest.Config) -> None:
    spool = tempfile.mkdtemp(prefix="loopwise-test-spool-")
    os.environ["LOOPWISE_SPOOL_DIR"] = spool
    os.environ["LOOPWISE_ENDPOINT"] = "http://127.0.0.1:9"  # the discard port: connection refused
    os.environ["LOOPWISE_API_KEY"] = "lw_test_unused"
