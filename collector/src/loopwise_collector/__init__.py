"""Loopwise collector: OTLP ingest, ClickHouse storage and the query API.

Example:
    >>> from loopwise_collector import Settings, create_app
    >>> app = create_app(Settings(data_dir="/tmp/lw-doc"))
"""

from loopwise_collector.app import create_app
from loopwise_collector.errors import (
    AuthenticationError,
    ConflictError,
    InvalidPayloadError,
    InvalidQueryError,
    LoopwiseError,
    NotFoundError,
    PayloadTooLargeError,
    SpoolFullError,
    StoreError,
    StoreUnavailableError,
    UnsupportedMediaTypeError,
)
from loopwise_collector.settings import IngestSettings, Settings
from loopwise_collector.store import ClickHouseStore

__all__ = [
    "AuthenticationError",
    "ClickHouseStore",
    "ConflictError",
    "IngestSettings",
    "InvalidPayloadError",
    "InvalidQueryError",
    "LoopwiseError",
    "NotFoundError",
    "PayloadTooLargeError",
    "Settings",
    "SpoolFullError",
    "StoreError",
    "StoreUnavailableError",
    "UnsupportedMediaTypeError",
    "create_app",
]
