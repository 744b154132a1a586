"""Loopwise dashboard: a Streamlit app over the collector API, and the typed client it reads with.

Run the app with ``loopwise dashboard``, or ``streamlit run <this package>/app.py``. The client works on its own too.

Example:
    >>> from loopwise_dashboard import CollectorClient, DashboardSettings
    >>> settings = DashboardSettings()  # doctest: +SKIP
    >>> client = CollectorClient(settings.endpoint, settings.resolved_key())  # doctest: +SKIP
    >>> client.metrics_summary(group_by="model")  # doctest: +SKIP
    [MetricsRow(group='gpt-4o-mini', span_count=32, ...), ...]
"""

from __future__ import annotations

from pathlib import Path

from loopwise_dashboard._errors import CollectorUnreachableError, DashboardError, NotFoundError, UnauthorizedError
from loopwise_dashboard._models import (
    DriftCheck,
    EvaluatorRule,
    FeedbackGroup,
    Health,
    MetricsRow,
    Score,
    Span,
    TraceDetail,
    TracePage,
    TraceSummary,
)
from loopwise_dashboard.client import CollectorClient
from loopwise_dashboard.settings import DashboardSettings

APP_PATH = Path(__file__).with_name("app.py")
"""The script ``streamlit run`` executes.

Example:
    >>> APP_PATH.name
    'app.py'
"""

__all__ = [
    "APP_PATH",
    "CollectorClient",
    "CollectorUnreachableError",
    "DashboardError",
    "DashboardSettings",
    "DriftCheck",
    "EvaluatorRule",
    "FeedbackGroup",
    "Health",
    "MetricsRow",
    "NotFoundError",
    "Score",
    "Span",
    "TraceDetail",
    "TracePage",
    "TraceSummary",
    "UnauthorizedError",
]
