"""Per-session settings and client, cached API calls, and the error and time-range helpers every page uses."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import streamlit as st

from loopwise_dashboard._errors import CollectorUnreachableError, DashboardError, NotFoundError, UnauthorizedError
from loopwise_dashboard.client import CollectorClient
from loopwise_dashboard.settings import DashboardSettings

TRACE_DETAIL_PAGE = "views/trace_detail.py"
TRACES_PAGE = "views/traces.py"


@dataclass(frozen=True)
class TimeRange:
    """A sidebar choice: its label, its length, and the metrics bucket that suits it."""

    label: str
    span: timedelta
    group_by: str  # "hour" or "day": the finest buckets /api/v1/metrics/summary offers


TIME_RANGES = [
    TimeRange("Last hour", timedelta(hours=1), "hour"),
    TimeRange("Last 24 hours", timedelta(hours=24), "hour"),
    TimeRange("Last 7 days", timedelta(days=7), "hour"),
    TimeRange("Last 30 days", timedelta(days=30), "day"),
]


def settings() -> DashboardSettings:
    """This session's settings, read from the environment once."""
    if "lw_settings" not in st.session_state:
        st.session_state.lw_settings = DashboardSettings()
    s: DashboardSettings = st.session_state.lw_settings
    return s


def client() -> CollectorClient:
    """This session's collector client."""
    if "lw_client" not in st.session_state:
        s = settings()
        st.session_state.lw_client = CollectorClient(s.endpoint, s.resolved_key())
    c: CollectorClient = st.session_state.lw_client
    return c


def _key_fingerprint(key: str | None) -> str:
    # The cache key must tell projects apart without holding the key itself.
    return hashlib.sha256((key or "").encode()).hexdigest()[:16]


def _fetch(_client: CollectorClient, endpoint: str, key_fp: str, method: str, kwargs: dict[str, Any]) -> Any:
    """One API call; ``endpoint`` and ``key_fp`` are only there to key the cache (``_client`` is not hashed)."""
    return getattr(_client, method)(**kwargs)


_cached: dict[int, Callable[..., Any]] = {}


def fetch(method: str, **kwargs: Any) -> Any:
    """``client().<method>(**kwargs)``, cached for ``cache_ttl_s`` per collector, project and arguments.

    Errors are not cached, so a collector that comes back is seen on the next run.
    """
    s = settings()
    c = client()
    if s.cache_ttl_s == 0:
        return getattr(c, method)(**kwargs)
    fn = _cached.get(s.cache_ttl_s)
    if fn is None:
        fn = _cached.setdefault(s.cache_ttl_s, st.cache_data(ttl=s.cache_ttl_s, show_spinner=False)(_fetch))
    return fn(c, s.endpoint, _key_fingerprint(s.resolved_key()), method, kwargs)


def clear_cache() -> None:
    """Forget every cached answer (after a write, or on "Refresh")."""
    for fn in _cached.values():
        fn.clear()  # type: ignore[attr-defined]


@contextmanager
def collector_errors() -> Iterator[None]:
    """Show a failed API call as an actionable ``st.error`` and stop the page, instead of a traceback."""
    try:
        yield
    except CollectorUnreachableError as exc:
        st.error(f"**Collector unreachable.** {exc}", icon="🔌")
        st.stop()
    except UnauthorizedError as exc:
        st.error(f"**API key refused.** {exc}", icon="🔑")
        st.stop()
    except NotFoundError as exc:
        st.warning(f"**Not found.** {exc}", icon="🔎")
        st.stop()
    except DashboardError as exc:
        st.error(str(exc), icon="⚠️")
        st.stop()


def time_range() -> TimeRange:
    """The sidebar's time range (``app.py`` draws the picker; pages read it)."""
    label = st.session_state.get("lw_range", TIME_RANGES[1].label)
    return next((r for r in TIME_RANGES if r.label == label), TIME_RANGES[1])


def range_start(r: TimeRange, now: datetime | None = None) -> datetime:
    """The range's start, floored to the minute so that reruns within a minute share cached answers.

    Example:
        >>> range_start(TIME_RANGES[0], datetime(2026, 11, 22, 8, 30, 45, tzinfo=UTC)).isoformat()
        '2026-11-22T07:30:00+00:00'
    """
    start = (now or datetime.now(UTC)) - r.span
    return start.replace(second=0, microsecond=0)


def empty_state(endpoint: str) -> None:
    """What to show a project that has no trace yet: three ways to send the first one."""
    st.info("**No traces yet.** This project has not received any trace. Send one in any of these ways:", icon="👋")
    st.markdown("**1. Sample traffic** — realistic traces, scores and errors from a demo support bot:")
    st.code(f"loopwise demo --endpoint {endpoint} --api-key $LOOPWISE_API_KEY", language="bash")
    st.markdown("**2. Any OpenTelemetry exporter** — point it at the collector:")
    st.code(
        f"export OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}\n"
        'export OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer $LOOPWISE_API_KEY"',
        language="bash",
    )
    st.markdown("**3. The Python SDK**:")
    st.code(
        "import os\n\nimport loopwise\n\n"
        f'loopwise.configure(endpoint="{endpoint}", api_key=os.environ["LOOPWISE_API_KEY"])\n\n'
        '@loopwise.observe(name="answer", as_type="llm")\n'
        "def answer(question: str) -> str:\n"
        "    ...",
        language="python",
    )
