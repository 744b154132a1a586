"""Storage: one ClickHouse store class over clickhouse-connect, embedded chDB or a server."""

from loopwise_collector.store._connection import StoreTarget
from loopwise_collector.store.clickhouse import ClickHouseStore, hash_api_key
from loopwise_collector.store.models import (
    MetricsRow,
    Project,
    TraceCursor,
    TraceFilter,
    TracePage,
    TraceSummary,
)
from loopwise_collector.store.project import GROUP_BY_EXPRESSIONS, ProjectStore
from loopwise_collector.store.records import ScoreRecord, SpanRecord

__all__ = [
    "GROUP_BY_EXPRESSIONS",
    "ClickHouseStore",
    "MetricsRow",
    "Project",
    "ProjectStore",
    "ScoreRecord",
    "SpanRecord",
    "StoreTarget",
    "TraceCursor",
    "TraceFilter",
    "TracePage",
    "TraceSummary",
    "hash_api_key",
]
