"""The collector's one exception tree.

Driver errors (clickhouse-connect, chDB, protobuf) are translated into these at the boundary,
and the HTTP layer maps each to a status code and a JSON ``{"error": {"code", "message"}}``.

Example:
    >>> try:
    ...     raise NotFoundError("trace 'ab12' not found")
    ... except LoopwiseError as exc:
    ...     (exc.status_code, exc.code)
    (404, 'not_found')
"""

from __future__ import annotations


class LoopwiseError(Exception):
    """Root of every error the collector raises on purpose."""

    status_code: int = 500
    code: str = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidPayloadError(LoopwiseError):
    """An OTLP or API body that cannot be decoded (malformed protobuf or JSON, bad ids)."""

    status_code = 400
    code = "invalid_payload"


class UnsupportedMediaTypeError(LoopwiseError):
    """A body in a content type or encoding the endpoint does not accept."""

    status_code = 415
    code = "unsupported_media_type"


class PayloadTooLargeError(LoopwiseError):
    """A body over the configured size limit."""

    status_code = 413
    code = "payload_too_large"


class AuthenticationError(LoopwiseError):
    """A missing, malformed, unknown or revoked API key."""

    status_code = 401
    code = "unauthorized"


class NotFoundError(LoopwiseError):
    """An id that does not exist in the caller's project (other projects' ids look the same)."""

    status_code = 404
    code = "not_found"


class ConflictError(LoopwiseError):
    """A write that clashes with what exists: a taken name, or a rule the config file manages."""

    status_code = 409
    code = "conflict"


class InvalidQueryError(LoopwiseError):
    """A filter or parameter value that is out of range or malformed."""

    status_code = 422
    code = "invalid_query"


class StoreError(LoopwiseError):
    """ClickHouse answered with an error that is not an outage."""

    status_code = 500
    code = "store_error"


class StoreUnavailableError(StoreError):
    """ClickHouse cannot be reached; callers may spool and retry."""

    status_code = 503
    code = "store_unavailable"


class SpoolFullError(LoopwiseError):
    """ClickHouse is down and the local spool is at its size cap, so a batch cannot be accepted."""

    status_code = 503
    code = "spool_full"
