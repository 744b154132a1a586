"""The background export: a bounded in-memory queue, a batching thread and a sending thread.

- The app's thread appends ended spans and scores to a deque; that is all it pays.
- The batching thread encodes them (OTLP protobuf, gzip; scores as JSON) and puts each batch in
  the disk spool. Order is kept: spans queued before a score are spooled before it.
- The sending thread delivers spooled batches oldest first and deletes each on a 2xx. While
  the collector is unreachable or answers 5xx/429 it backs off (exponential, with jitter,
  honouring Retry-After) and batches wait on disk, so memory stays flat through an outage.

On 401/403 one error says how to fix the key and batches keep spooling; a batch refused for
good (another 4xx) is set aside under ``rejected/`` and logged, never silently deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from loopwise._config import Config
from loopwise._export._encode import encode_batches
from loopwise._export._spool import KIND_SCORE, KIND_SPANS, Batch, Spool
from loopwise._export._transport import Outcome, Transport, Verdict

logger = logging.getLogger("loopwise")

_BACKOFF_MIN_S = 0.5
_BACKOFF_MAX_S = 30.0
_AUTH_BACKOFF_MAX_S = 60.0
_SCORE_NOT_FOUND_TRIES = 6  # a score for a trace not yet stored waits ~1 minute in all
_ADOPT_EVERY_S = 60.0


def spool_root(config: Config) -> Path:
    """The spool directory for this API key under ``config.spool_dir``.

    Apps share the default spool directory, and batches a dead process left are adopted by the
    next one; keying the directory by API key (hashed; the key itself is not written) means a
    batch is only ever sent to the project it was traced for. The endpoint is not part of it, so
    batches spooled before a collector moves are still sent once the app points at its new URL.

    Example:
        >>> a = spool_root(Config(spool_dir=Path("/s"), api_key="lw_a"))
        >>> a.parent, a == spool_root(Config(spool_dir=Path("/s"), api_key="lw_b"))
        (PosixPath('/s'), False)
    """
    digest = hashlib.sha256((config.api_key or "").encode()).hexdigest()[:16]
    return config.spool_dir / digest


class ExportPipeline:
    """Queue, batcher and sender for one configuration. Thread-safe; never raises into the app.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> p = ExportPipeline(Config(endpoint="http://127.0.0.1:9", spool_dir=Path(tempfile.mkdtemp())))
        >>> p.enqueue_score({"trace_id": "0" * 32, "name": "thumbs", "value": 1.0, "source": "human"})
        >>> p.flush(timeout=0.2)  # nothing listens on port 9: the score waits in the spool
        False
        >>> p.stats()["spool_batches"]
        1
        >>> p.shutdown(timeout=0.1)
        False
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._queue: deque[tuple[ReadableSpan, dict[str, Any] | None] | dict[str, Any]] = deque()
        self._cond = threading.Condition()
        self._room = threading.Condition()
        self._wake = threading.Event()
        self._stopping = False
        self._flush_requests = 0
        self._batcher_busy = False
        self._spans_queued = 0
        self._scores_queued = 0
        self._dropped_queue_full = 0
        self._dropped_internal = 0
        self._delivered_spans = 0
        self._delivered_scores = 0
        self._rejected_items = 0
        self._export_errors = 0
        self._state = "ok"
        self._last_error = ""
        self._last_drop_log = 0.0
        self._backoff_s = 0.0
        self._retry_now = False
        self._lost_at_last_flush = 0
        self._adopted = threading.Event()  # set once an earlier run's batches are in our spool
        self.spool = Spool(spool_root(config), config.spool_max_bytes)
        self._transport = Transport(config.export_timeout_s)
        self._batcher = threading.Thread(target=self._batch_loop, name="loopwise-batcher", daemon=True)
        self._sender = threading.Thread(target=self._send_loop, name="loopwise-sender", daemon=True)
        self._batcher.start()
        self._sender.start()

    def update_config(self, config: Config) -> None:
        """Take new settings (endpoint, key, limits) from the next batch on; the spool stays."""
        self.config = config
        self._transport.timeout_s = config.export_timeout_s

    # --- app thread ---------------------------------------------------------------------------
    def enqueue_span(self, span: ReadableSpan, content: dict[str, Any] | None = None) -> None:
        """Hand an ended span to the export; waits at most ``block_timeout_s`` if the queue is full."""
        q = self._queue
        if len(q) >= self.config.max_queue_size and not self._wait_for_room():
            self._dropped_queue_full += 1
            self._log_drop()
            return
        q.append((span, content))  # deque.append is atomic; the batcher pops with popleft
        self._spans_queued += 1
        if len(q) == self.config.batch_max_spans:
            with self._cond:
                self._cond.notify()

    def enqueue_score(self, payload: dict[str, Any]) -> None:
        """Hand a score (the JSON body for ``POST /api/v1/scores``) to the export."""
        self._queue.append(payload)
        self._scores_queued += 1
        with self._cond:
            self._cond.notify()

    def _wait_for_room(self) -> bool:
        deadline = time.monotonic() + self.config.block_timeout_s
        with self._cond:
            self._cond.notify()  # the batcher may be sleeping out its delay
        with self._room:
            while len(self._queue) >= self.config.max_queue_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopping:
                    return False
                self._room.wait(remaining)
        return True

    def _log_drop(self) -> None:
        now = time.monotonic()
        if now - self._last_drop_log > 10.0:
            self._last_drop_log = now
            logger.warning(
                "loopwise: export queue full (%d spans); dropped %d spans so far. The app ends spans faster "
                "than they can be written to the spool; raise LOOPWISE_MAX_QUEUE_SIZE or LOOPWISE_SAMPLE_RATE.",
                self.config.max_queue_size,
                self._dropped_queue_full,
            )

    # --- batching thread ----------------------------------------------------------------------
    def _batch_loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping and not self._flush_requests:
                    # Producers append without the lock and notify only on a full batch, so an
                    # idle batcher looks again each batch delay rather than waiting for a signal.
                    self._cond.wait(self.config.batch_delay_s)
                deadline = time.monotonic() + self.config.batch_delay_s
                while (
                    len(self._queue) < self.config.batch_max_spans and not self._stopping and not self._flush_requests
                ):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                flushes = self._flush_requests
                self._batcher_busy = True
            items: list[Any] = []
            q = self._queue
            while q:
                items.append(q.popleft())
            with self._room:
                self._room.notify_all()
            try:
                self._spool_items(items)
            except Exception:  # a bug must not stop the export; the batch is counted as dropped
                logger.exception("loopwise: internal error while batching %d items", len(items))
                self._dropped_internal += len(items)
            with self._cond:
                self._batcher_busy = False
                self._flush_requests -= flushes
                self._cond.notify_all()
                if self._stopping and not self._queue:
                    return

    def _spool_items(self, items: list[Any]) -> None:
        spans: list[tuple[ReadableSpan, dict[str, Any] | None]] = []

        def spool_spans() -> None:
            if not spans:
                return
            for start in range(0, len(spans), self.config.batch_max_spans):
                chunk = spans[start : start + self.config.batch_max_spans]
                for count, body in encode_batches(chunk, self.config):
                    self.spool.put(KIND_SPANS, count, body)
            spans.clear()

        for item in items:
            if isinstance(item, dict):
                spool_spans()  # spans queued before the score reach the collector first
                self.spool.put(KIND_SCORE, 1, json.dumps(item).encode())
            else:
                spans.append(item)
        spool_spans()
        self._wake.set()

    # --- sending thread -----------------------------------------------------------------------
    def _send_loop(self) -> None:
        try:
            adopted = self.spool.adopt_orphans()
        finally:
            self._adopted.set()
        if adopted:
            logger.info("loopwise: found %d batches spooled by an earlier run; sending them", adopted)
        last_adopt = time.monotonic()
        retry_at = 0.0  # backing off until then
        not_before: dict[str, float] = {}  # scores waiting for their trace to be stored
        while not self._stopping:
            now = time.monotonic()
            if now - last_adopt > _ADOPT_EVERY_S:
                self.spool.adopt_orphans()  # a sibling process that died meanwhile
                last_adopt = now
            waiting = {n for n, t in not_before.items() if t > now}
            batch = None if now < retry_at else self.spool.oldest(waiting)
            if batch is None:
                wake_at = retry_at if now < retry_at else min((not_before[n] for n in waiting), default=now + 1.0)
                if self._wake.wait(max(0.01, wake_at - now)):
                    self._wake.clear()
                if self._retry_now:  # a flush cuts the backoff short; new data alone does not
                    self._retry_now = False
                    retry_at = 0.0
                continue
            delay = self._handle(batch, self._send(batch), not_before)
            if delay:
                retry_at = time.monotonic() + delay

    def _send(self, batch: Batch) -> Outcome | None:
        data = self.spool.read(batch)
        if data is None:
            return None  # dropped by the cap meanwhile
        headers = {}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        if batch.kind == KIND_SPANS:
            headers["Content-Type"] = "application/x-protobuf"
            headers["Content-Encoding"] = "gzip"
            url = self.config.traces_url
        else:
            headers["Content-Type"] = "application/json"
            url = self.config.scores_url
        return self._transport.post(url, data, headers)

    def _handle(self, batch: Batch, outcome: Outcome | None, not_before: dict[str, float]) -> float:
        """Act on one send; returns how long to back off (0 to go on at once)."""
        if outcome is None:
            return 0.0
        v = outcome.verdict
        if v is Verdict.DELIVERED:
            self.spool.remove(batch)
            not_before.pop(batch.name, None)
            if batch.kind == KIND_SPANS:
                self._delivered_spans += batch.items
            else:
                self._delivered_scores += batch.items
            if self._state != "ok":
                logger.warning("loopwise: collector reachable again; sending the spooled batches")
                self._state = "ok"
            self._backoff_s = 0.0
            return 0.0
        self._export_errors += 1
        self._last_error = f"{outcome.status or ''} {outcome.detail}".strip()
        if v is Verdict.NOT_FOUND and batch.kind == KIND_SCORE:
            if batch.tries + 1 >= _SCORE_NOT_FOUND_TRIES:
                return self._reject(batch, outcome, not_before)
            new = self.spool.retry_later(batch)
            not_before.pop(batch.name, None)
            not_before[new.name] = time.monotonic() + min(2.0 ** (batch.tries + 1), 30.0)
            return 0.0
        if v is Verdict.REJECTED:
            return self._reject(batch, outcome, not_before)
        # RETRY, AUTH, or a 404 on the traces path (a wrong endpoint): keep the batch, back off.
        if v is Verdict.AUTH:
            # Without a key, configure() has already said so; one line is enough.
            if self._state != "auth" and self.config.api_key:
                logger.error(
                    "loopwise: %s (HTTP %s: %s). Set LOOPWISE_API_KEY or loopwise.configure(api_key=...) to a key "
                    "of your project (`loopwise up` prints one). Spans keep spooling in %s until then.",
                    "the collector rejected the API key",
                    outcome.status,
                    outcome.detail,
                    self.spool.dir or "memory",
                )
            self._state = "auth"
            cap = _AUTH_BACKOFF_MAX_S
        else:
            if self._state != "retry":
                hint = " (is LOOPWISE_ENDPOINT the collector's base URL?)" if v is Verdict.NOT_FOUND else ""
                logger.warning(
                    "loopwise: cannot deliver to %s%s: %s. Spooling to %s and retrying in the background.",
                    self.config.endpoint,
                    hint,
                    self._last_error,
                    self.spool.dir or "memory",
                )
                self._state = "retry"
            cap = _BACKOFF_MAX_S
        prev = self._backoff_s
        nxt = min(cap, max(_BACKOFF_MIN_S, prev * 2))
        self._backoff_s = nxt
        delay = nxt * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security
        if outcome.retry_after_s is not None:
            delay = max(delay, min(outcome.retry_after_s, _AUTH_BACKOFF_MAX_S))
        return delay

    def _reject(self, batch: Batch, outcome: Outcome, not_before: dict[str, float]) -> float:
        where = self.spool.reject(batch)
        not_before.pop(batch.name, None)
        self._rejected_items += batch.items
        logger.error(
            "loopwise: the collector refused a batch of %d %s for good (HTTP %s: %s); kept at %s",
            batch.items,
            "spans" if batch.kind == KIND_SPANS else "score",
            outcome.status,
            outcome.detail,
            where or "nowhere (memory spool)",
        )
        return 0.0

    # --- control ------------------------------------------------------------------------------
    def _idle(self) -> bool:
        if not self._adopted.is_set() or self._queue or self._batcher_busy:
            return False
        return self.spool.pending_batches() == 0

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is delivered, or ``timeout`` passes.

        True only if nothing is left to send and nothing was refused or dropped since the
        previous flush.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            self._flush_requests += 1
            self._cond.notify_all()
            while (self._queue or self._batcher_busy or self._flush_requests) and not self._stopped_batcher():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(min(remaining, 0.05))
        self._retry_now = True
        self._wake.set()
        while time.monotonic() < deadline and not self._idle():
            time.sleep(0.005)
        # Batches the collector refused since the last flush were not delivered either.
        lost = self._rejected_items + self.spool.dropped_items + self._dropped_queue_full + self._dropped_internal
        clean = lost == self._lost_at_last_flush
        self._lost_at_last_flush = lost
        return self._idle() and clean

    def _stopped_batcher(self) -> bool:
        return not self._batcher.is_alive()

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Flush for up to ``timeout``, then stop the threads; undelivered batches stay spooled."""
        delivered = self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        with self._room:
            self._room.notify_all()
        self._wake.set()
        self._batcher.join(timeout=max(0.1, timeout))
        self._sender.join(timeout=0.1 if delivered else 0.5)
        self._transport.close()
        self.spool.close(keep=True)
        return delivered

    def stats(self) -> dict[str, Any]:
        """Counters for tests, benchmarks and debugging; see :func:`loopwise.stats`."""
        return {
            "state": self._state,
            "spans_queued": self._spans_queued,
            "spans_delivered": self._delivered_spans,
            "spans_dropped_queue_full": self._dropped_queue_full,
            "items_dropped_internal_error": self._dropped_internal,
            "scores_queued": self._scores_queued,
            "scores_delivered": self._delivered_scores,
            "items_dropped_spool_full": self.spool.dropped_items,
            "items_rejected": self._rejected_items,
            "queue_size": len(self._queue),
            "spool_batches": self.spool.pending_batches(),
            "spool_items": self.spool.pending_items(),
            "spool_bytes": self.spool.pending_bytes(),
            "spool_dir": str(self.spool.dir) if self.spool.dir else None,
            "export_errors": self._export_errors,
            "last_error": self._last_error,
        }
