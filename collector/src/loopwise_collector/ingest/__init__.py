"""Ingest: OTLP decoding, pricing hand-off, group-commit writing and the outage spool."""
