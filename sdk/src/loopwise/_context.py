"""Trace-wide values (user, session, tags, metadata, variant) that child spans inherit.

They live in a context variable, so they follow the code into asyncio tasks and into threads
started with a copied context, like OpenTelemetry's own context. The span processor copies them
onto every span started inside :func:`loopwise.propagate`, including spans of other
instrumentations.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace

from loopwise import semconv as sc

# The attributes to add to each span started in the current context; None outside propagate().
_PROPAGATED: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("loopwise_propagated", default=None)


def current_attributes() -> dict[str, Any] | None:
    """The attributes :func:`propagate` set for spans started now, or ``None``."""
    return _PROPAGATED.get()


def metadata_attributes(metadata: Mapping[str, Any]) -> dict[str, str | int | float | bool]:
    """``metadata`` as ``loopwise.metadata.<key>`` attributes; non-primitive values become text.

    Example:
        >>> metadata_attributes({"region": "eu", "retries": 2, "flags": ["a"]})
        {'loopwise.metadata.region': 'eu', 'loopwise.metadata.retries': 2, 'loopwise.metadata.flags': "['a']"}
    """
    out: dict[str, str | int | float | bool] = {}
    for key, value in metadata.items():
        if not isinstance(value, str | int | float | bool):
            value = str(value)
        out[sc.LOOPWISE_METADATA_PREFIX + str(key)] = value
    return out


@contextmanager
def propagate(
    *,
    user_id: str | None = None,
    session_id: str | None = None,
    tags: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    variant: str | None = None,
) -> Iterator[None]:
    """Give every span started inside the block these trace-wide values.

    Nested blocks add to the outer one: tags and metadata merge, the inner scalar values win.
    The span that is current when the block starts gets the values too, so a handler that
    learns the user id half-way still labels its own span.

    Example:
        >>> import loopwise
        >>> with loopwise.propagate(user_id="u-42", tags=["beta"]):
        ...     with loopwise.propagate(session_id="s-1", tags=["checkout"]):
        ...         sorted(current_attributes().items())
        [('loopwise.session.id', 's-1'), ('loopwise.tags', ('beta', 'checkout')), ('loopwise.user.id', 'u-42')]
    """
    attrs: dict[str, Any] = dict(_PROPAGATED.get() or {})
    try:
        if user_id is not None:
            attrs[sc.LOOPWISE_USER_ID] = str(user_id)
        if session_id is not None:
            attrs[sc.LOOPWISE_SESSION_ID] = str(session_id)
        if variant is not None:
            attrs[sc.LOOPWISE_VARIANT] = str(variant)
        if tags:
            if isinstance(tags, str):  # a lone tag, not a sequence of characters
                tags = [tags]
            merged = list(attrs.get(sc.LOOPWISE_TAGS, ()))
            merged.extend(str(t) for t in tags if str(t) not in merged)
            attrs[sc.LOOPWISE_TAGS] = tuple(dict.fromkeys(merged))
        if metadata:
            attrs.update(metadata_attributes(metadata))
    except Exception:  # bad values are logged, never raised into the app
        import logging

        logging.getLogger("loopwise").exception("loopwise.propagate: unusable values ignored")
    current = trace.get_current_span()
    if attrs and current.is_recording():
        current.set_attributes(attrs)
    token = _PROPAGATED.set(attrs or None)
    try:
        yield
    finally:
        _PROPAGATED.reset(token)
