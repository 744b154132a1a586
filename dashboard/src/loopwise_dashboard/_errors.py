"""The dashboard's one exception tree; every message says what to do."""

from __future__ import annotations

__all__ = ["CollectorUnreachableError", "DashboardError", "NotFoundError", "UnauthorizedError"]


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
