"""The collector's own Prometheus metrics, one registry per app (no import-time globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class CollectorMetrics:
    """Counters and gauges served at ``/metrics``.

    Example:
        >>> m = CollectorMetrics()
        >>> m.spans_received.inc(3)
        >>> m.registry.get_sample_value("loopwise_spans_received_total")
        3.0
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "loopwise_http_requests", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.spans_received = Counter("loopwise_spans_received", "Spans accepted on /v1/traces", registry=r)
        self.spans_inserted = Counter("loopwise_spans_inserted", "Spans written to ClickHouse", registry=r)
        self.scores_inserted = Counter("loopwise_scores_inserted", "Scores written to ClickHouse", registry=r)
        self.insert_rows = Histogram(
            "loopwise_insert_batch_rows",
            "Rows per ClickHouse insert",
            buckets=(1, 10, 100, 1_000, 5_000, 10_000, 20_000, 50_000, 100_000),
            registry=r,
        )
        self.insert_seconds = Histogram("loopwise_insert_seconds", "ClickHouse insert duration", registry=r)
        self.insert_failures = Counter("loopwise_insert_failures", "Failed ClickHouse inserts", registry=r)
        self.spooled_batches = Counter("loopwise_spool_batches_written", "Batches written to the spool", registry=r)
        self.replayed_batches = Counter("loopwise_spool_batches_replayed", "Spooled batches replayed", registry=r)
        self.rejected_batches = Counter(
            "loopwise_spool_batches_rejected", "Spooled batches ClickHouse kept refusing, set aside", registry=r
        )
        self.spool_bytes = Gauge("loopwise_spool_bytes", "Bytes waiting in the spool", registry=r)
        self.spool_files = Gauge("loopwise_spool_batches", "Batches waiting in the spool", registry=r)
        self.degraded = Gauge("loopwise_store_degraded", "1 while ClickHouse is unreachable", registry=r)
