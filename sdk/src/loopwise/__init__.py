"""Loopwise SDK."""

__all__: list[str] = []
