"""Running evaluators: offline over a dataset (``loopwise eval``) and online over live spans (``loopwise evaluate``)."""
