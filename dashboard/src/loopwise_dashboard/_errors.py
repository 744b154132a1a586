"""The dashboard's one exception tree; every message says what to do."""

from __future__ import annotations

__all__ = [
    "CollectorUnreachableError",
    "ConflictError",
    "DashboardError",
    "InvalidRequestError",
    "NotFoundError",
    "UnauthorizedError",
]


class DashboardError(Exception):
    """Root of every error the dashboard's collector client raises.

    Example:
        >>> str(DashboardError("something went wrong"))
        'something went wrong'
    """


class CollectorUnreachableError(DashboardError):
    """No answer from the collector (refused, timed out) or it answered 5xx.

    Example:
        >>> issubclass(CollectorUnreachableError, DashboardError)
        True
    """


class UnauthorizedError(DashboardError):
    """The collector refused the API key (401).

    Example:
        >>> issubclass(UnauthorizedError, DashboardError)
        True
    """


class NotFoundError(DashboardError):
    """The trace (or other id) is not in this project (404).

    Example:
        >>> issubclass(NotFoundError, DashboardError)
        True
    """


class ConflictError(DashboardError):
    """The collector refused a write that conflicts with what it holds (409), e.g. a rule name already taken.

    The message is the server's, which says what to do instead.

    Example:
        >>> issubclass(ConflictError, DashboardError)
        True
    """


class InvalidRequestError(DashboardError):
    """The collector found a field invalid (422), e.g. an unknown evaluator; the message names the field.

    Example:
        >>> issubclass(InvalidRequestError, DashboardError)
        True
    """
