"""From request body to durable records: size limits, decompression, decoding, pricing, batching."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import zlib
from collections.abc import AsyncIterator
from typing import Any

from loopwise_collector.errors import InvalidPayloadError, PayloadTooLargeError, StoreError, UnsupportedMediaTypeError
from loopwise_collector.ingest.otlp import decode_json, decode_protobuf
from loopwise_collector.ingest.writer import BatchWriter
from loopwise_collector.observability import CollectorMetrics
from loopwise_collector.pricing import ModelPrice, PriceTable
from loopwise_collector.store import ClickHouseStore, Project, ScoreRecord, SpanRecord

log = logging.getLogger("loopwise.ingest")
PROTOBUF_TYPES = frozenset({"application/x-protobuf", "application/protobuf"})
JSON_TYPES = frozenset({"application/json"})
_PRICE_TTL_S = 60.0


async def read_body(chunks: AsyncIterator[bytes], content_length: str | None, limit: int) -> bytes:
    """Read a request body, refusing anything over ``limit`` before and while reading."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError as exc:
            raise InvalidPayloadError("Content-Length is not a number") from exc
        if declared > limit:
            raise PayloadTooLargeError(f"body of {declared} bytes exceeds the {limit}-byte limit")
    # Collect and join once: growing one buffer per chunk copied a 2 MB body dozens of times.
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"body exceeds the {limit}-byte limit")
        parts.append(chunk)
    return b"".join(parts)


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo ``Content-Encoding`` (gzip or deflate), bounded so a small bomb cannot expand past ``limit``."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in ("gzip", "deflate"):
        raise UnsupportedMediaTypeError(f"Content-Encoding {encoding!r} is not supported: use gzip or identity")
    inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidPayloadError(f"body is not valid {encoding}: {exc}") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLargeError(f"decompressed body exceeds the {limit}-byte limit")
    if not inflater.eof:
        # zlib returns what it could inflate from a cut-off stream; decoding that prefix would
        # store part of a request that the client will retry whole.
        raise InvalidPayloadError(f"body is not valid {encoding}: the compressed stream is truncated")
    return out


def media_type(content_type: str | None) -> str:
    """The bare media type of a ``Content-Type`` header, lowercased."""
    return (content_type or "").split(";", 1)[0].strip().lower()


class IngestService:
    """Turns OTLP bodies into priced span records and waits until they are durable.

    Example:
        >>> count = await service.ingest_otlp(project, body, "application/x-protobuf")  # doctest: +SKIP
    """

    def __init__(
        self, store: ClickHouseStore, writer: BatchWriter, prices: PriceTable, metrics: CollectorMetrics
    ) -> None:
        self.store = store
        self.writer = writer
        self.prices = prices
        self.metrics = metrics
        self._project_prices: dict[str, tuple[PriceTable, float]] = {}
        self._lock = threading.Lock()

    def price_table(self, project_id: str) -> PriceTable:
        """The bundled table with the project's overrides on top, cached for a minute."""
        now = time.monotonic()
        with self._lock:
            cached = self._project_prices.get(project_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            overrides = self.store.project(project_id).price_overrides()
        except StoreError:
            if cached is not None:  # an outage must not stop ingest: price with what we had
                return cached[0]
            return self.prices
        table = self.prices
        if overrides:
            try:
                table = self._with_overrides(overrides, project_id)
            except ValueError as exc:
                # Never let a bad override stop ingest: price from the bundled table and say why.
                log.error("ignoring price overrides of project %r: %s", project_id, exc)
        with self._lock:
            self._project_prices[project_id] = (table, now + _PRICE_TTL_S)
        return table

    def _with_overrides(self, overrides: list[dict[str, Any]], project_id: str) -> PriceTable:
        return self.prices.with_overrides(
            [
                ModelPrice(
                    pattern=o["pattern"],
                    match="prefix",
                    effective_from=o["effective_from"],
                    input_per_million=o["input_per_million"],
                    output_per_million=o["output_per_million"],
                    cached_input_per_million=o["cached_input_per_million"],
                )
                for o in overrides
            ],
            label=project_id,
        )

    def invalidate_prices(self, project_id: str) -> None:
        """Forget the cached table after the project's overrides change."""
        with self._lock:
            self._project_prices.pop(project_id, None)

    def decode(self, project: Project, body: bytes, content_type: str | None) -> list[SpanRecord]:
        """Decode and price one OTLP request body (CPU-bound: call it off the event loop)."""
        kind = media_type(content_type)
        if kind in PROTOBUF_TYPES:
            decode = decode_protobuf
        elif kind in JSON_TYPES:
            decode = decode_json
        else:
            raise UnsupportedMediaTypeError(
                f"Content-Type {kind or '(none)'!r} is not supported: use application/x-protobuf or application/json"
            )
        return decode(
            body,
            project_id=project.project_id,
            retention_days=project.retention_days,
            version=time.time_ns(),
            prices=self.price_table(project.project_id),
        )

    async def ingest_otlp(self, project: Project, body: bytes, content_type: str | None) -> int:
        """Decode, price and durably store one request; returns the number of spans."""
        records = await asyncio.to_thread(self.decode, project, body, content_type)
        await asyncio.wrap_future(self.writer.submit("spans", records))
        self.metrics.spans_received.inc(len(records))
        return len(records)

    async def add_scores(self, scores: list[ScoreRecord]) -> None:
        """Store scores through the same durable path as spans."""
        await asyncio.wrap_future(self.writer.submit("scores", scores))
