"""The SDK's process-wide state: configuration, the span processor and the export pipeline.

:func:`configure` attaches one :class:`LoopwiseSpanProcessor` to the app's SDK
``TracerProvider`` when it has one, and otherwise installs a provider of its own as the global
one, so other OpenTelemetry instrumentations in the app are exported to Loopwise as well.
Calling it again updates the settings in place; the processor is never added twice.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import threading
import uuid
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from loopwise._config import Config, resolve
from loopwise._context import current_attributes

logger = logging.getLogger("loopwise")

VERSION = "0.1.0"
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")

# Captured content of live spans by span id, filled on the app's thread and taken by
# LoopwiseSpanProcessor.on_end; serialised later on the export thread.
CONTENT: dict[int, dict[str, Any]] = {}


class LoopwiseSpanProcessor(SpanProcessor):
    """Adds :func:`loopwise.propagate` values to each span and hands ended spans to the export.

    Sampling is by trace id, so a trace is kept or dropped whole, even when the app's provider
    has its own sampler.
    """

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        attrs = current_attributes()
        if attrs:
            span.set_attributes(attrs)

    def on_end(self, span: ReadableSpan) -> None:
        ctx = span.context
        content = CONTENT.pop(ctx.span_id, None) if ctx is not None else None
        rt = self._runtime
        cfg = rt.config
        if not cfg.enabled:
            return
        if cfg.sample_rate < 1.0 and ctx is not None and (ctx.trace_id & 0xFFFFFFFFFFFFFFFF) >= cfg.sample_rate * 2**64:
            return
        pipeline = rt.pipeline or rt.start_pipeline()
        if pipeline is not None:
            pipeline.enqueue_span(span, content)

    def shutdown(self) -> None:
        self._runtime.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._runtime.flush(timeout_millis / 1000)


class Runtime:
    """Holds what :func:`loopwise.configure` set up; one per process."""

    def __init__(self) -> None:
        self.config = Config(enabled=False)
        self.configured = False
        self.pipeline: Any = None  # ExportPipeline, imported lazily with the export machinery
        self.tracer: trace.Tracer | None = None
        self.processor = LoopwiseSpanProcessor(self)
        self._lock = threading.RLock()
        self._atexit = False
        self._explicit: set[str] = set()
        self._private_provider: TracerProvider | None = None

    def configure(self, overrides: dict[str, Any]) -> None:
        with self._lock:
            old = self.config
            cfg = resolve(overrides)
            self._explicit = set(overrides)
            self.config = cfg
            self.configured = True
            if not cfg.enabled:
                self._stop_pipeline()
                return
            if cfg.api_key is None:
                logger.error(
                    "loopwise: no API key. Set LOOPWISE_API_KEY or loopwise.configure(api_key=...) to a key of "
                    "your project (`loopwise up` prints one); until then spans are spooled to %s, not sent.",
                    cfg.spool_dir,
                )
            if self.pipeline is not None:
                from loopwise._export._pipeline import spool_root

                if (spool_root(old), old.spool_max_bytes) == (spool_root(cfg), cfg.spool_max_bytes):
                    self.pipeline.update_config(cfg)
                else:
                    self._stop_pipeline()
            self.tracer = self._attach(cfg)
            # Started now, not on the first span: batches an earlier run spooled during an outage
            # are sent as soon as the app starts, even if it never traces anything.
            self.start_pipeline()
            if not self._atexit:
                atexit.register(self._at_exit)
                self._atexit = True

    def _attach(self, cfg: Config) -> trace.Tracer:
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            if type(provider).__name__ == "ProxyTracerProvider":
                provider = TracerProvider(resource=Resource.create({SERVICE_NAME: cfg.service_name}))
                trace.set_tracer_provider(provider)
            else:  # some other API implementation: keep ours private, next to it
                logger.warning(
                    "loopwise: the global tracer provider is a %s, not the OpenTelemetry SDK's; Loopwise traces "
                    "its own spans only",
                    type(provider).__name__,
                )
                provider = self._private_provider or TracerProvider(
                    resource=Resource.create({SERVICE_NAME: cfg.service_name})
                )
                self._private_provider = provider
        name = provider.resource.attributes.get(SERVICE_NAME)
        if "service_name" in self._explicit and name != cfg.service_name:
            # The resource is fixed when the provider is made: by the app, or by an earlier configure().
            logger.warning(
                "loopwise: service_name=%r is ignored; the tracer provider already names the service %r. "
                "Call loopwise.configure(service_name=...) before the first traced call, or set OTEL_SERVICE_NAME.",
                cfg.service_name,
                name,
            )
        if not self._attached_to(provider):
            provider.add_span_processor(self.processor)
        return provider.get_tracer("loopwise", VERSION)

    def _attached_to(self, provider: TracerProvider) -> bool:
        # Providers have no public list of processors; remember ours on the provider itself, so
        # configure() twice never adds it twice.
        attached: set[int] | None = getattr(provider, "_loopwise_processors", None)
        if attached is None:
            attached = set()
            setattr(provider, "_loopwise_processors", attached)  # noqa: B010 - a marker on a foreign object
        if id(self.processor) in attached:
            return True
        attached.add(id(self.processor))
        return False

    def start_pipeline(self) -> Any:
        """The export pipeline, started on first use; ``None`` while disabled."""
        with self._lock:
            if self.pipeline is None and self.config.enabled and self.configured:
                from loopwise._export._pipeline import ExportPipeline

                self.pipeline = ExportPipeline(self.config)
            return self.pipeline

    def _stop_pipeline(self) -> None:
        # A reconfigure does not wait: what is queued is spooled, and the spool outlives the pipeline.
        pipeline, self.pipeline = self.pipeline, None
        if pipeline is not None:
            pipeline.shutdown(0.0)

    def active_tracer(self) -> trace.Tracer | None:
        """The tracer for :func:`loopwise.observe`, configuring from the environment on first use."""
        if not self.configured:
            self.configure({})
        return self.tracer if self.config.enabled else None

    def flush(self, timeout: float) -> bool:
        pipeline = self.pipeline
        return True if pipeline is None else bool(pipeline.flush(timeout))

    def shutdown(self, timeout: float | None = None) -> bool:
        with self._lock:
            pipeline, self.pipeline = self.pipeline, None
        if pipeline is None:
            return True
        return bool(pipeline.shutdown(self.config.shutdown_timeout_s if timeout is None else timeout))

    def _at_exit(self) -> None:
        try:
            if not self.shutdown() and self.pipeline is None:
                logger.warning(
                    "loopwise: exiting with spans not yet delivered; they stay in %s and are sent by the next run",
                    self.config.spool_dir,
                )
        except Exception:  # never turn the app's exit into a traceback
            logger.exception("loopwise: error during the exit-time flush")

    def after_fork(self) -> None:
        # The child has no export threads; it starts its own pipeline (and spool directory) on first
        # use. It lets go of the parent's spool lock, so that the parent's batches can be adopted if
        # the parent dies while its children live on.
        if self.pipeline is not None:
            self.pipeline.spool.release_after_fork()
        self.pipeline = None
        self._lock = threading.RLock()

    def stats(self) -> dict[str, Any]:
        pipeline = self.pipeline
        return {} if pipeline is None else dict(pipeline.stats())

    def score(
        self,
        trace_id: str,
        name: str,
        value: float | bool | str | None,
        comment: str | None,
        span_id: str | None,
        metadata: dict[str, Any] | None,
        score_id: str | None,
    ) -> str | None:
        tid = str(trace_id).lower()
        if not _HEX32.match(tid) or tid == "0" * 32:
            logger.error("loopwise.score: trace_id must be 32 hex characters (got %r); score not sent", trace_id)
            return None
        if span_id is not None and not _HEX16.match(str(span_id).lower()):
            logger.error("loopwise.score: span_id must be 16 hex characters (got %r); score not sent", span_id)
            return None
        if not name or len(str(name)) > 200:
            logger.error("loopwise.score: name must be 1 to 200 characters; score not sent")
            return None
        payload: dict[str, Any] = {
            "id": score_id or uuid.uuid4().hex,  # the collector's idempotency key: a re-send stores one score
            "trace_id": tid,
            "name": str(name),
            "source": "human",
        }
        if isinstance(value, bool):
            payload["value"] = 1.0 if value else 0.0
        elif isinstance(value, int | float):
            if value != value or value in (float("inf"), float("-inf")):
                logger.error("loopwise.score: value must be finite (got %r); score not sent", value)
                return None
            payload["value"] = float(value)
        elif isinstance(value, str):
            payload["label"] = value[:1000]
        if comment:
            payload["comment"] = str(comment)
        if span_id is not None:
            payload["span_id"] = str(span_id).lower()
        if metadata:
            payload["metadata"] = {str(k): str(v) for k, v in metadata.items()}
        if not self.configured:
            self.configure({})
        if not self.config.enabled:
            return None
        pipeline = self.pipeline or self.start_pipeline()
        if pipeline is None:
            return None
        pipeline.enqueue_score(payload)
        return str(payload["id"])


RUNTIME = Runtime()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=RUNTIME.after_fork)
