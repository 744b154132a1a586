"""Background export: queue, disk spool and HTTP to the collector. Internal."""
