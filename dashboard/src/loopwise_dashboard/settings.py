"""Dashboard settings: where the collector is and which key to show it.

Example:
    >>> s = DashboardSettings(endpoint="http://127.0.0.1:4318", api_key="lw_secret_key", _env_file=None)
    >>> s.masked_key()
    'lw_s…_key'
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DashboardSettings", "mask_key"]


def mask_key(key: str | None) -> str:
    """A key as it may appear on screen or in a log: its first and last 4 characters at most.

    Example:
        >>> mask_key("lw_abcdefghijklmnop"), mask_key("short"), mask_key(None)
        ('lw_a…mnop', '…', '(none)')
    """
    if not key:
        return "(none)"
    # Short keys would be almost fully revealed by a prefix and suffix, so show nothing of them.
    if len(key) < 12:
        return "…"
    return f"{key[:4]}…{key[-4:]}"


class DashboardSettings(BaseSettings):
    """Everything the dashboard reads from its environment (``LOOPWISE_*``).

    With no ``LOOPWISE_API_KEY``, the key comes from ``<data_dir>/credentials.json``, which
    ``loopwise up`` writes, so a local dashboard needs no configuration.

    Example:
        >>> s = DashboardSettings(endpoint="http://collector:4318/v1/traces", api_key="lw_k", refresh_s=0)
        >>> s.endpoint, s.refresh_s
        ('http://collector:4318', 0)
    """

    model_config = SettingsConfigDict(
        env_prefix="LOOPWISE_", env_nested_delimiter="__", extra="ignore", populate_by_name=True
    )

    endpoint: str = Field("http://127.0.0.1:4318", description="The collector's base URL.")
    api_key: SecretStr | None = Field(None, description="The project's API key; default: <data_dir>/credentials.json.")
    data_dir: Path = Field(Path(".loopwise"), description="Where `loopwise up` keeps credentials.json.")
    # Dashboard-only knobs get a DASHBOARD_ in their variable: a shell often configures several parts at once.
    cache_ttl_s: int = Field(
        15, ge=0, le=3600, validation_alias="LOOPWISE_DASHBOARD_CACHE_TTL_S", description="How long answers are cached."
    )
    refresh_s: int = Field(
        30, ge=0, le=3600, validation_alias="LOOPWISE_DASHBOARD_REFRESH_S",
        description="Auto-refresh period of the Overview; 0 turns it off.",
    )  # fmt: skip

    @field_validator("endpoint")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        # Exporters are often configured with ".../v1/traces"; the API lives at the root.
        value = value.strip().rstrip("/")
        return value.removesuffix("/v1/traces")

    def resolved_key(self) -> str | None:
        """The API key: the configured one, else the one in ``<data_dir>/credentials.json``."""
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        path = self.data_dir.expanduser() / "credentials.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        key = data.get("api_key") if isinstance(data, dict) else None
        return key if isinstance(key, str) and key else None

    def masked_key(self) -> str:
        """The key, masked for display."""
        return mask_key(self.resolved_key())
