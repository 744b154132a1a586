"""loopwise_dashboard."""

__all__: list[str] = []
