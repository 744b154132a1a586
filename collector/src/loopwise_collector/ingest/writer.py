"""Group-commit writer: every acknowledged batch is in ClickHouse or fsynced in the spool.

Requests hand their records to :meth:`BatchWriter.submit` and wait on the returned future. A
background thread gathers records from concurrent requests into one insert, flushing when
``batch_rows`` have gathered or the oldest has waited ``max_delay``; under load that gives inserts
of at least ``batch_rows`` rows (ClickHouse wants few large inserts), and no record waits longer
than ``max_delay`` plus one insert. After a quiet spell a request is written at once, so a lone
request at low load is not held for ``max_delay``.

When an insert fails the batch goes to the spool and the writer turns *degraded*: new batches go
straight to the spool, so replay keeps arrival order, and a replay thread drains the spool, oldest
first, once ClickHouse answers again. Replays may repeat rows that reached ClickHouse before a
failure was reported; the ``ReplacingMergeTree`` tables collapse such repeats.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from loopwise_collector.errors import LoopwiseError, StoreError, StoreUnavailableError
from loopwise_collector.ingest.spool import Record, Spool
from loopwise_collector.observability import CollectorMetrics
from loopwise_collector.store.clickhouse import ClickHouseStore
from loopwise_collector.store.records import ScoreRecord, SpanRecord

log = logging.getLogger("loopwise.ingest")


@dataclass(slots=True)
class _Pending:
    kind: str
    records: Sequence[Record]
    future: Future[None]
    since: float = field(default_factory=time.monotonic)


class BatchWriter:
    """Batches records into large inserts and falls back to the spool during outages.

    Example:
        >>> writer = BatchWriter(store, spool, CollectorMetrics())  # doctest: +SKIP
        >>> writer.start()  # doctest: +SKIP
        >>> writer.submit("spans", records).result()  # durable once this returns  # doctest: +SKIP
    """

    def __init__(
        self,
        store: ClickHouseStore,
        spool: Spool,
        metrics: CollectorMetrics,
        *,
        batch_rows: int = 10_000,
        max_delay: float = 0.5,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
        max_rejections: int = 5,
    ) -> None:
        self.store = store
        self.spool = spool
        self.metrics = metrics
        self.batch_rows = batch_rows
        self.max_delay = max_delay
        self._last_insert = 0.0  # monotonic time the last batch was taken for writing
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.max_rejections = max_rejections
        self._rejections: dict[str, int] = {}
        self._cond = threading.Condition()
        self._pending: list[_Pending] = []
        self._pending_rows = 0
        self._stopping = False
        self._mode_lock = threading.Lock()
        self._degraded = len(spool) > 0  # left over from a previous run: replay before trusting ClickHouse
        self._wake_replay = threading.Event()
        self._threads: list[threading.Thread] = []
        self.last_error: str | None = None
        self._update_gauges()

    # --- public -------------------------------------------------------------------------------
    @property
    def degraded(self) -> bool:
        """True while ClickHouse is unreachable or the spool still holds batches."""
        return self._degraded

    def start(self) -> None:
        """Start the writer and replay threads."""
        for target, name in ((self._write_loop, "loopwise-writer"), (self._replay_loop, "loopwise-replay")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        if self._degraded:
            log.warning("spool holds %d batches from a previous run; replaying", len(self.spool))
            self._wake_replay.set()

    def submit(self, kind: str, records: Sequence[Record]) -> Future[None]:
        """Queue records; the future resolves once they are durable, or fails with a LoopwiseError."""
        future: Future[None] = Future()
        if not records:
            future.set_result(None)
            return future
        with self._cond:
            if self._stopping:
                future.set_exception(StoreUnavailableError("collector is shutting down"))
                return future
            self._pending.append(_Pending(kind, records, future))
            self._pending_rows += len(records)
            if self._pending_rows >= self.batch_rows or len(self._pending) == 1:
                self._cond.notify()
        return future

    def stop(self, timeout: float = 10.0) -> None:
        """Flush what is queued (to ClickHouse or the spool) and stop the threads."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._wake_replay.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    # --- writer thread ------------------------------------------------------------------------
    def _take_batch(self) -> list[_Pending]:
        with self._cond:
            while True:
                if self._pending:
                    now = time.monotonic()
                    waited = now - self._pending[0].since
                    # After a quiet spell (no insert for max_delay) write at once: a lone request,
                    # such as a score, need not wait for company that is not coming. Inserts still
                    # come at most about once per max_delay unless batch_rows fill up first.
                    idle = now - self._last_insert >= self.max_delay
                    # Scores come one request each, from people clicking feedback, and in few rows;
                    # holding them buys no larger insert of spans.
                    scores_only = all(p.kind == "scores" for p in self._pending)
                    full = self._pending_rows >= self.batch_rows
                    if self._stopping or full or waited >= self.max_delay or idle or scores_only:
                        batch, self._pending, self._pending_rows = self._pending, [], 0
                        return batch
                    self._cond.wait(self.max_delay - waited)
                elif self._stopping:
                    return []
                else:
                    self._cond.wait()

    def _write_loop(self) -> None:
        while True:
            batch = self._take_batch()
            if not batch:
                return
            self._last_insert = time.monotonic()
            for kind in ("spans", "scores"):
                items = [p for p in batch if p.kind == kind]
                if items:
                    self._commit(kind, items)

    def _commit(self, kind: str, items: list[_Pending]) -> None:
        records: list[Record] = [r for p in items for r in p.records]
        error: LoopwiseError | None = None
        if not self._degraded:
            try:
                self._insert(kind, records)
            except StoreError as exc:
                error = exc
            else:
                for p in items:
                    p.future.set_result(None)
                return
        try:
            with self._mode_lock:
                self.spool.append(kind, records)
                if not self._degraded:
                    log.error("ClickHouse insert failed (%s); spooling to %s", error, self.spool.directory)
                    self.last_error = str(error)
                self._degraded = True
            self.metrics.spooled_batches.inc()
            self._update_gauges()
            self._wake_replay.set()
        except LoopwiseError as exc:
            for p in items:
                p.future.set_exception(exc)
            return
        except OSError as exc:
            log.error("cannot write the spool at %s: %s", self.spool.directory, exc)
            for p in items:
                p.future.set_exception(StoreUnavailableError(f"ClickHouse and the spool are both unavailable: {exc}"))
            return
        for p in items:
            p.future.set_result(None)

    def _insert(self, kind: str, records: Sequence[Record]) -> None:
        started = time.perf_counter()
        try:
            if kind == "spans":
                self.store.insert_spans([r for r in records if isinstance(r, SpanRecord)])
                self.metrics.spans_inserted.inc(len(records))
            else:
                self.store.insert_scores([r for r in records if isinstance(r, ScoreRecord)])
                self.metrics.scores_inserted.inc(len(records))
        except StoreError:
            self.metrics.insert_failures.inc()
            raise
        except Exception as exc:  # a bug must not kill the writer thread and strand every waiting request
            self.metrics.insert_failures.inc()
            raise StoreError(f"cannot write a batch of {kind}: {exc!r}") from exc
        self.metrics.insert_rows.observe(len(records))
        self.metrics.insert_seconds.observe(time.perf_counter() - started)

    # --- replay thread ------------------------------------------------------------------------
    def _replay_loop(self) -> None:
        delay = self.retry_initial
        while True:
            self._wake_replay.wait(delay if self._degraded else None)
            self._wake_replay.clear()
            if self._stopping and not self._degraded:
                return
            if not self._degraded:
                continue
            delay = self.retry_initial if self._drain() else min(delay * 2, self.retry_max)
            if self._stopping:
                return

    def _drain(self) -> bool:
        """Replay spooled batches oldest first; True when the spool emptied."""
        while (entry := self.spool.oldest()) is not None:
            try:
                kind, records = self.spool.load(entry)
            except ValueError:
                continue  # quarantined and logged by the spool
            try:
                self._insert(kind, records)
            except StoreUnavailableError as exc:
                self.last_error = str(exc)
                return False
            except StoreError as exc:
                # ClickHouse is up but refuses this batch. Retry a few times (it may be transient),
                # then set it aside so one bad batch cannot block every batch behind it.
                self.last_error = str(exc)
                tries = self._rejections.get(entry.path.name, 0) + 1
                self._rejections[entry.path.name] = tries
                if tries < self.max_rejections:
                    log.error("ClickHouse rejected spooled batch %s (try %d): %s", entry.path.name, tries, exc)
                    return False
                self.spool.set_aside(entry, "rejected", f"was rejected {tries} times ({exc})")
                self._rejections.pop(entry.path.name, None)
                self.metrics.rejected_batches.inc()
                self._update_gauges()
                continue
            self.spool.remove(entry)
            self.metrics.replayed_batches.inc()
            self._update_gauges()
            if self._stopping:
                return False
        with self._mode_lock:
            if self.spool.oldest() is None:
                if self._degraded:
                    log.warning("ClickHouse is back; spool drained")
                self._degraded = False
                self.last_error = None
        self._update_gauges()
        return not self._degraded

    def _update_gauges(self) -> None:
        self.metrics.spool_bytes.set(self.spool.size_bytes)
        self.metrics.spool_files.set(len(self.spool))
        self.metrics.degraded.set(1 if self._degraded else 0)
