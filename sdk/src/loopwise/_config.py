"""SDK settings: keyword arguments over ``LOOPWISE_*`` environment variables over defaults.

Settings are resolved once per :func:`loopwise.configure` call into a frozen :class:`Config`.
Nothing here raises into the app: a value that cannot be used is logged on the ``loopwise``
logger, once and with the fix, and its default is used instead.

The SDK avoids pydantic (``import loopwise`` stays light), so parsing is done by hand here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger("loopwise")

Redactor = Callable[[str], str]

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"


def default_spool_dir() -> Path:
    """Where batches wait on disk while the collector is away: the user's cache directory.

    Example:
        >>> default_spool_dir().name
        'spool'
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "loopwise" / "spool"


@dataclass(frozen=True, slots=True)
class Config:
    """The resolved settings of one :func:`loopwise.configure` call.

    Example:
        >>> Config().endpoint, Config().sample_rate, Config().capture_content
        ('http://127.0.0.1:4318', 1.0, True)
    """

    endpoint: str = DEFAULT_ENDPOINT
    api_key: str | None = field(default=None, repr=False)  # never in a repr, so never in a log
    service_name: str = "unknown_service"
    sample_rate: float = 1.0
    spool_dir: Path = field(default_factory=default_spool_dir)
    capture_content: bool = True
    max_content_bytes: int = 32 * 1024
    redact: tuple[Redactor, ...] = ()
    enabled: bool = True
    # Seconds one HTTP request to the collector may take; runs on the export thread only.
    export_timeout_s: float = 10.0
    # Upper bound on the flush at interpreter exit.
    shutdown_timeout_s: float = 5.0
    # Spans waiting in memory for the export thread; past this the app waits up to
    # block_timeout_s for room, then the span is dropped and counted.
    max_queue_size: int = 2048
    block_timeout_s: float = 0.5
    batch_max_spans: int = 512
    batch_delay_s: float = 1.0
    spool_max_bytes: int = 512 * 1024 * 1024

    @property
    def traces_url(self) -> str:
        """The OTLP/HTTP traces endpoint under :attr:`endpoint`.

        Example:
            >>> Config(endpoint="https://lw.example.com/").traces_url
            'https://lw.example.com/v1/traces'
        """
        return self.endpoint.rstrip("/") + "/v1/traces"

    @property
    def scores_url(self) -> str:
        """The feedback endpoint under :attr:`endpoint`.

        Example:
            >>> Config().scores_url
            'http://127.0.0.1:4318/api/v1/scores'
        """
        return self.endpoint.rstrip("/") + "/api/v1/scores"


def _parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _parse_rate(value: Any) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise ValueError("expected a number from 0 to 1")
    return rate


def _parse_positive_int(value: Any) -> int:
    n = int(value)
    if n <= 0:
        raise ValueError("expected a positive integer")
    return n


def _parse_positive_float(value: Any) -> float:
    x = float(value)
    if not x > 0:
        raise ValueError("expected a positive number")
    return x


def normalize_endpoint(value: Any) -> str:
    """The collector base URL: scheme and host required, a trailing ``/v1/traces`` tolerated.

    Example:
        >>> normalize_endpoint("http://localhost:4318/v1/traces")
        'http://localhost:4318'
        >>> normalize_endpoint("localhost:4318")
        Traceback (most recent call last):
        ...
        ValueError: expected a URL like http://127.0.0.1:4318
    """
    text = str(value).strip().rstrip("/")
    if text.endswith("/v1/traces"):
        text = text[: -len("/v1/traces")]
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected a URL like http://127.0.0.1:4318")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise ValueError("expected a URL like http://127.0.0.1:4318") from exc
    return text


def _parse_redact(value: Any) -> tuple[Redactor, ...]:
    # Late import: the built-in redactors compile regexes, which only configure() needs.
    from loopwise._redact import BUILTIN_REDACTORS

    if value is None or value is False:
        return ()
    items: Sequence[Any]
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
    elif callable(value):
        items = [value]
    else:
        items = list(value)
    out: list[Redactor] = []
    for item in items:
        if callable(item):
            out.append(item)
        elif isinstance(item, str) and item in BUILTIN_REDACTORS:
            out.extend(BUILTIN_REDACTORS[item])
        else:
            known = ", ".join(sorted(BUILTIN_REDACTORS))
            raise ValueError(f"unknown redactor {item!r}; use a callable str -> str or one of: {known}")
    return tuple(out)


# setting -> (parser, environment variable)
_FIELDS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "endpoint": (normalize_endpoint, "LOOPWISE_ENDPOINT"),
    "api_key": (lambda v: str(v).strip() or None, "LOOPWISE_API_KEY"),
    "service_name": (lambda v: str(v).strip() or "unknown_service", "LOOPWISE_SERVICE_NAME"),
    "sample_rate": (_parse_rate, "LOOPWISE_SAMPLE_RATE"),
    "spool_dir": (lambda v: Path(v).expanduser(), "LOOPWISE_SPOOL_DIR"),
    "capture_content": (lambda v: _parse_bool(v) if isinstance(v, str) else bool(v), "LOOPWISE_CAPTURE_CONTENT"),
    "max_content_bytes": (_parse_positive_int, "LOOPWISE_MAX_CONTENT_BYTES"),
    "redact": (_parse_redact, "LOOPWISE_REDACT"),
    "enabled": (lambda v: _parse_bool(v) if isinstance(v, str) else bool(v), "LOOPWISE_ENABLED"),
    "export_timeout_s": (_parse_positive_float, "LOOPWISE_EXPORT_TIMEOUT_S"),
    "shutdown_timeout_s": (_parse_positive_float, "LOOPWISE_SHUTDOWN_TIMEOUT_S"),
    "max_queue_size": (_parse_positive_int, "LOOPWISE_MAX_QUEUE_SIZE"),
    "block_timeout_s": (lambda v: max(0.0, float(v)), "LOOPWISE_BLOCK_TIMEOUT_S"),
    "batch_max_spans": (_parse_positive_int, "LOOPWISE_BATCH_MAX_SPANS"),
    "batch_delay_s": (_parse_positive_float, "LOOPWISE_BATCH_DELAY_S"),
    "spool_max_bytes": (_parse_positive_int, "LOOPWISE_SPOOL_MAX_BYTES"),
}

SETTINGS = tuple(_FIELDS)


def resolve(overrides: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Config:
    """Build a :class:`Config`: ``overrides`` (not ``None``) win over the environment.

    Unknown names and unusable values are logged and skipped, never raised.

    Example:
        >>> cfg = resolve({"sample_rate": 0.5}, {"LOOPWISE_SAMPLE_RATE": "0.1", "LOOPWISE_API_KEY": "lw_x"})
        >>> cfg.sample_rate, cfg.api_key
        (0.5, 'lw_x')
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name in overrides:
        if name not in _FIELDS:
            known = ", ".join(SETTINGS)
            logger.error("loopwise.configure: unknown setting %r ignored; known settings: %s", name, known)
    for name, (parse, var) in _FIELDS.items():
        raw: Any = overrides.get(name)
        source = f"configure({name}=...)"
        if raw is None:
            raw = env.get(var)
            source = var
            if raw is None and name == "service_name":
                raw = env.get("OTEL_SERVICE_NAME")
                source = "OTEL_SERVICE_NAME"
            if raw is None:
                continue
        try:
            values[name] = parse(raw)
        except (TypeError, ValueError) as exc:
            shown = "<hidden>" if name == "api_key" else repr(raw)
            logger.error("loopwise: %s=%s is not usable (%s); using the default", source, shown, exc)
    return Config(**values)
