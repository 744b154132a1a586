"""API-key authentication with a small cache that survives store outages.

Keys are looked up by SHA-256 hash. Positive answers are cached for a minute and, while ClickHouse
is unreachable, served stale, so known clients keep ingesting into the spool during an outage.
Keys seeded at start are pinned in the cache.
"""

from __future__ import annotations

import re
import threading
import time

from loopwise_collector.errors import AuthenticationError, StoreUnavailableError
from loopwise_collector.store import ClickHouseStore, Project, hash_api_key

_PROJECT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def validate_project_id(name: str) -> str:
    """Project ids are slugs; returns the id or raises ``ValueError`` with the rule.

    Example:
        >>> validate_project_id("support-bot")
        'support-bot'
    """
    if not _PROJECT_ID.match(name):
        raise ValueError(f"project name {name!r} must be lowercase letters, digits, '-' or '_' (max 63)")
    return name


class KeyResolver:
    """Maps bearer keys to projects.

    Example:
        >>> resolver = KeyResolver(store)  # doctest: +SKIP
        >>> resolver.resolve("Bearer lw-demo-key").project_id  # doctest: +SKIP
        'demo'
    """

    def __init__(self, store: ClickHouseStore, *, ttl: float = 60.0, negative_ttl: float = 5.0) -> None:
        self._store = store
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[Project | None, float]] = {}
        self._pinned: dict[str, Project] = {}

    def pin(self, key: str, project: Project) -> None:
        """Always accept ``key`` for ``project`` (seeded keys)."""
        self._pinned[hash_api_key(key)] = project

    def resolve(self, authorization: str | None) -> Project:
        """The project for an ``Authorization`` header value, or :class:`AuthenticationError`."""
        if not authorization:
            raise AuthenticationError("missing API key: send the header 'Authorization: Bearer <api key>'")
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise AuthenticationError("malformed Authorization header: expected 'Bearer <api key>'")
        digest = hash_api_key(key)
        if digest in self._pinned:
            return self._pinned[digest]
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            project = cached[0]
        else:
            try:
                project = self._store.project_for_key(key)
            except StoreUnavailableError:
                if cached is not None and cached[0] is not None:
                    return cached[0]
                raise
            with self._lock:
                if len(self._cache) > 10_000:  # bound memory against floods of random keys
                    self._cache.clear()
                self._cache[digest] = (project, now + (self._ttl if project else self._negative_ttl))
        if project is None:
            raise AuthenticationError(
                "invalid API key: check the key your exporter sends as 'Authorization: Bearer <api key>'"
            )
        return project

    def forget(self) -> None:
        """Drop cached answers (after keys change)."""
        with self._lock:
            self._cache.clear()
