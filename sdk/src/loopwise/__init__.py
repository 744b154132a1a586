"""Loopwise SDK: trace LLM apps on OpenTelemetry, with zero-loss background export.

Example:
    >>> import loopwise
    >>> loopwise.configure(endpoint="http://127.0.0.1:4318", api_key="lw_...")  # doctest: +SKIP
    >>> @loopwise.observe
    ... def answer(question: str) -> str:
    ...     return "42"
    >>> answer("meaning of life?")
    '42'
"""

from __future__ import annotations

from typing import Any

from loopwise import semconv
from loopwise._context import propagate
from loopwise._observe import SpanType, observe
from loopwise._redact import redact_card_numbers, redact_emails, redact_phone_numbers
from loopwise._runtime import RUNTIME, VERSION
from loopwise._span_api import get_current_span_id, get_current_trace_id, update_current_llm, update_current_span

__version__ = VERSION

__all__ = [
    "SpanType",
    "__version__",
    "configure",
    "flush",
    "get_current_span_id",
    "get_current_trace_id",
    "observe",
    "propagate",
    "redact_card_numbers",
    "redact_emails",
    "redact_phone_numbers",
    "score",
    "semconv",
    "shutdown",
    "stats",
    "update_current_llm",
    "update_current_span",
]


def configure(
    *,
    endpoint: str | None = None,
    api_key: str | None = None,
    service_name: str | None = None,
    sample_rate: float | None = None,
    spool_dir: str | Any | None = None,
    capture_content: bool | None = None,
    max_content_bytes: int | None = None,
    redact: Any = None,
    enabled: bool | None = None,
    **advanced: Any,
) -> None:
    """Set up tracing and export. Keyword arguments win over ``LOOPWISE_*`` environment variables.

    Every setting has an environment variable: ``LOOPWISE_ENDPOINT``, ``LOOPWISE_API_KEY``,
    ``LOOPWISE_SERVICE_NAME`` (or ``OTEL_SERVICE_NAME``), ``LOOPWISE_SAMPLE_RATE``,
    ``LOOPWISE_SPOOL_DIR``, ``LOOPWISE_CAPTURE_CONTENT``, ``LOOPWISE_MAX_CONTENT_BYTES``,
    ``LOOPWISE_REDACT`` (``emails,phones,cards`` or ``pii``) and ``LOOPWISE_ENABLED``. The
    ``advanced`` settings are ``export_timeout_s``, ``shutdown_timeout_s``, ``max_queue_size``,
    ``block_timeout_s``, ``batch_max_spans``, ``batch_delay_s`` and ``spool_max_bytes``.

    ``redact`` takes a function from text to text, a list of them, or built-in names.
    Calling ``configure`` again updates the settings; it never raises, and logs what it could
    not use on the ``loopwise`` logger. When the app has its own OpenTelemetry SDK
    ``TracerProvider``, Loopwise adds its span processor to it instead of replacing it.

    Example:
        >>> import loopwise
        >>> loopwise.configure(  # doctest: +SKIP
        ...     endpoint="http://127.0.0.1:4318", api_key="lw_...", service_name="support-bot",
        ...     redact=["emails", "cards"], max_content_bytes=16_384,
        ... )
    """
    overrides: dict[str, Any] = {
        "endpoint": endpoint,
        "api_key": api_key,
        "service_name": service_name,
        "sample_rate": sample_rate,
        "spool_dir": spool_dir,
        "capture_content": capture_content,
        "max_content_bytes": max_content_bytes,
        "redact": redact,
        "enabled": enabled,
        **advanced,
    }
    try:
        RUNTIME.configure({k: v for k, v in overrides.items() if v is not None})
    except Exception:
        import logging

        logging.getLogger("loopwise").exception("loopwise.configure failed; tracing stays as it was")


def flush(timeout: float = 5.0) -> bool:
    """Wait up to ``timeout`` seconds for every ended span and score to reach the collector.

    Returns ``True`` when everything was delivered. What is not delivered stays spooled on
    disk and is sent later, or by the next run of the app.

    Example:
        >>> import loopwise
        >>> loopwise.flush(timeout=2.0)  # doctest: +SKIP
        True
    """
    try:
        return RUNTIME.flush(timeout)
    except Exception:
        return False


def shutdown(timeout: float | None = None) -> bool:
    """Flush (up to ``timeout``, default ``shutdown_timeout_s``) and stop the export threads.

    This runs by itself at interpreter exit; call it when the app stops in another way.

    Example:
        >>> import loopwise
        >>> loopwise.shutdown(timeout=1.0)  # doctest: +SKIP
        True
    """
    try:
        return RUNTIME.shutdown(timeout)
    except Exception:
        return False


def stats() -> dict[str, Any]:
    """Export counters: spans queued, delivered, spooled, dropped; spool size; the last error.

    Example:
        >>> import loopwise
        >>> sorted(loopwise.stats())[:3]  # doctest: +SKIP
        ['export_errors', 'items_dropped_spool_full', 'items_rejected']
    """
    return RUNTIME.stats()


def score(
    trace_id: str,
    name: str,
    value: float | bool | str | None = None,
    *,
    comment: str | None = None,
    span_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    id: str | None = None,
) -> str | None:
    """Send human feedback on a trace, as a score with ``source="human"``.

    It goes through the same background, spooled path as spans, so it never blocks and
    survives an outage. ``value`` is a number (or ``True``/``False`` for thumbs); a string is
    sent as the score's label. Returns the score's id, which makes re-sends idempotent, or
    ``None`` if the arguments were unusable (logged).

    Example:
        >>> import loopwise
        >>> @loopwise.observe
        ... def answer(q: str) -> str:
        ...     return "42"
        >>> # later, when the user clicks thumbs-up:
        >>> loopwise.score(trace_id="4bf92f3577b34da6a3ce929d0e0e4736", name="thumbs", value=True,
        ...                comment="spot on")  # doctest: +SKIP
        'f0c2...'
    """
    try:
        return RUNTIME.score(trace_id, name, value, comment, span_id, metadata, id)
    except Exception:
        import logging

        logging.getLogger("loopwise").exception("loopwise.score: not sent")
        return None
