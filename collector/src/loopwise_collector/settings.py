"""Collector settings: one pydantic-settings class, ``LOOPWISE_`` prefix, ``__`` for nesting.

Example:
    >>> s = Settings(data_dir="/tmp/lw", _env_file=None)
    >>> s.store_dsn().startswith("chdb:///tmp/lw/data")
    True
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from loopwise_collector.store._connection import StoreTarget


class IngestSettings(BaseModel):
    """Batching and spooling of ingested spans (``LOOPWISE_INGEST__*``)."""

    batch_rows: int = Field(10_000, ge=1, description="Flush an insert once this many rows are waiting.")
    max_delay_ms: int = Field(500, ge=1, le=1000, description="Flush at the latest after this wait.")
    spool_max_bytes: int = Field(2 << 30, ge=1 << 20, description="Cap on the outage spool.")


class Settings(BaseSettings):
    """Everything the collector reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="LOOPWISE_", env_nested_delimiter="__", extra="ignore", populate_by_name=True
    )

    data_dir: Path = Field(Path(".loopwise"), description="Embedded store, spool and local credentials.")
    store: SecretStr | None = Field(None, description="Store DSN: chdb:///dir or http(s)://user:pass@host:8123/db.")
    cluster: str | None = Field(None, description="ClickHouse cluster name: migrations run ON CLUSTER.")
    host: str = "127.0.0.1"
    port: int = Field(4318, ge=1, le=65535, description="4318 is the OTLP/HTTP default, so exporters need no URL.")
    init_projects: SecretStr | None = Field(None, description='Seed projects and keys: "name:key,name2:key2".')
    default_retention_days: int = Field(30, ge=1, le=36500)
    max_body_bytes: int = Field(16 << 20, ge=1024, description="Largest request body, after decompression.")
    # Not LOOPWISE_SPOOL_DIR: that is the SDK's spool, and an app and a collector often share a shell.
    spool_dir: Path | None = Field(
        None, validation_alias="LOOPWISE_COLLECTOR_SPOOL_DIR", description="Outage spool; default <data_dir>/spool."
    )
    prices_file: Path | None = Field(None, description="A price table replacing the bundled one.")
    metrics_token: SecretStr | None = Field(None, description="When set, /metrics requires this bearer token.")
    store_connect_timeout_s: float = Field(30.0, ge=0, description="How long start-up waits for ClickHouse.")
    evaluator_rules_file: Path | None = Field(None, description="JSON evaluator rules applied (and owned) at start.")
    seed_default_rules: bool = Field(
        False, description="Give seeded projects the default evaluator rules once (`loopwise up` turns this on)."
    )
    ingest: IngestSettings = IngestSettings()

    @field_validator("data_dir", "spool_dir", "prices_file", "evaluator_rules_file")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    def store_dsn(self) -> str:
        """The configured DSN, else the embedded store under ``data_dir``."""
        if self.store is not None:
            return self.store.get_secret_value()
        return StoreTarget.embedded(self.data_dir / "data").dsn

    def spool_path(self) -> Path:
        """Where outage batches are spooled."""
        return self.spool_dir or self.data_dir / "spool"

    def seed_projects(self) -> list[tuple[str, str]]:
        """Parsed ``init_projects`` as (name, key) pairs; ``ValueError`` names a bad entry."""
        if self.init_projects is None:
            return []
        pairs = []
        for item in self.init_projects.get_secret_value().split(","):
            if not item.strip():
                continue
            name, sep, key = item.strip().partition(":")
            if not sep or not name or not key:
                raise ValueError("LOOPWISE_INIT_PROJECTS entries must look like name:key (one entry is malformed)")
            pairs.append((name.strip(), key.strip()))
        return pairs
