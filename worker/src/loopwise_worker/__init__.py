"""loopwise_worker."""

__all__: list[str] = []
