"""The SDK's disk spool: every batch waits here until the collector has acknowledged it.

Layout under the configured directory::

    <spool_dir>/<pid>-<random>/        one per live process, held by an flock on its "lock" file
        <seq>.<kind>.<items>.<tries>   one batch: gzipped OTLP protobuf, or one JSON score
    <spool_dir>/rejected/              batches the collector refused for good; kept, never deleted

Every batch goes through the spool, whether the collector is up or not, so a batch that was
handed to the SDK survives the app dying at any moment. A process that starts adopts the
directories of processes that died (their lock is free), which is how spans spooled during an
outage reach the collector after a restart of the app. Writes are tmp-file, fsync, rename.

When the directory cannot be used (read-only file system, no permission) the spool keeps the
batches in memory instead, with the same cap, and says so once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

try:  # POSIX; elsewhere orphaned directories are adopted without the liveness check
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("loopwise")

KIND_SPANS = "spans"
KIND_SCORE = "score"
_LOCK = "lock"
_REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Batch:
    """One spooled batch; ``name`` orders batches oldest first."""

    name: str
    kind: str
    items: int
    tries: int
    size: int

    @staticmethod
    def parse(name: str, size: int) -> Batch | None:
        parts = name.split(".")
        if len(parts) != 4 or not parts[2].isdecimal() or not parts[3].isdecimal():
            return None
        return Batch(name, parts[1], int(parts[2]), int(parts[3]), size)


class Spool:
    """Batches on disk (or in memory as a fallback), oldest first, capped in bytes.

    Example:
        >>> import tempfile
        >>> spool = Spool(Path(tempfile.mkdtemp()), max_bytes=1 << 20)
        >>> b = spool.put(KIND_SCORE, 1, b'{"name": "thumbs"}')
        >>> spool.oldest() == b, spool.read(b)
        (True, b'{"name": "thumbs"}')
        >>> spool.remove(b); spool.oldest() is None
        True
        >>> spool.close()
    """

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._batches: dict[str, Batch] = {}
        self._memory: dict[str, bytes] | None = None
        self._seq = 0
        self._lock_fd: int | None = None
        self.dropped_items = 0
        self.dir: Path | None = None
        try:
            self.dir = self._claim_directory(root)
        except OSError as exc:
            logger.error(
                "loopwise: cannot use spool directory %s (%s); batches are kept in memory instead and are lost "
                "if the app exits while the collector is unreachable. Set LOOPWISE_SPOOL_DIR to a writable path.",
                root,
                exc,
            )
            self._memory = {}

    # --- directory ownership ------------------------------------------------------------------
    def _claim_directory(self, root: Path) -> Path:
        root.mkdir(parents=True, exist_ok=True)
        d = root / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        d.mkdir()
        fd = os.open(d / _LOCK, os.O_CREAT | os.O_RDWR, 0o600)
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._lock_fd = fd
        return d

    def adopt_orphans(self) -> int:
        """Move the batches of dead processes' directories into this one; returns how many.

        Example:
            >>> import tempfile
            >>> root = Path(tempfile.mkdtemp())
            >>> dead = Spool(root, 1 << 20); _ = dead.put(KIND_SCORE, 1, b"{}"); dead.close(keep=True)
            >>> alive = Spool(root, 1 << 20)
            >>> alive.adopt_orphans(), alive.pending_items()
            (1, 1)
            >>> alive.close()
        """
        if self.dir is None:
            return 0
        adopted = 0
        try:
            siblings = [p for p in self.root.iterdir() if p.is_dir() and p != self.dir and p.name != _REJECTED]
        except OSError:
            return 0
        for other in siblings:
            fd = self._lock_if_dead(other)
            if fd is None:
                continue
            try:
                for f in sorted(other.iterdir()):
                    if f.name == _LOCK:
                        continue
                    b = Batch.parse(f.name, 0)
                    if b is None:  # a tmp file of a write that never finished: not a batch
                        f.unlink(missing_ok=True)
                        continue
                    with self._lock:
                        target = self.dir / f.name
                        os.replace(f, target)
                        self._batches[f.name] = Batch(b.name, b.kind, b.items, b.tries, target.stat().st_size)
                    adopted += 1
                (other / _LOCK).unlink(missing_ok=True)
                other.rmdir()
            except OSError as exc:
                logger.warning("loopwise: could not adopt spooled batches from %s: %s", other, exc)
            finally:
                os.close(fd)
        if adopted:
            self._enforce_cap()
        return adopted

    @staticmethod
    def _lock_if_dead(other: Path) -> int | None:
        lock = other / _LOCK
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            try:  # a directory whose owner died before it made its lock file
                fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
            except OSError:
                return None
        except OSError:
            return None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # its owner is alive
                os.close(fd)
                return None
        return fd

    # --- batches ------------------------------------------------------------------------------
    def _next_name(self, kind: str, items: int, tries: int = 0) -> str:
        self._seq += 1
        # Wall-clock first so batches adopted from other processes interleave by age.
        return f"{time.time_ns():020d}{self._seq:06d}.{kind}.{items}.{tries}"

    def put(self, kind: str, items: int, data: bytes) -> Batch:
        """Store one batch durably, dropping the oldest batches if the cap is passed."""
        with self._lock:
            name = self._next_name(kind, items)
            batch = Batch(name, kind, items, 0, len(data))
            if self._memory is not None:
                self._memory[name] = data
            else:
                assert self.dir is not None
                tmp = self.dir / f".{name}.tmp"
                fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
                try:
                    os.write(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, self.dir / name)
            self._batches[name] = batch
        self._enforce_cap()
        return batch

    def _enforce_cap(self) -> None:
        with self._lock:
            total = sum(b.size for b in self._batches.values())
            if total <= self.max_bytes:
                return
            dropped_items = 0
            for name in sorted(self._batches):
                if total <= self.max_bytes:
                    break
                b = self._batches.pop(name)
                total -= b.size
                dropped_items += b.items
                self._delete(name)
            self.dropped_items += dropped_items
        logger.warning(
            "loopwise: spool over its %d-byte cap; dropped the oldest %d spans/scores (%d dropped so far). "
            "Is the collector reachable? Raise LOOPWISE_SPOOL_MAX_BYTES to keep more.",
            self.max_bytes,
            dropped_items,
            self.dropped_items,
        )

    def _delete(self, name: str) -> None:
        if self._memory is not None:
            self._memory.pop(name, None)
        elif self.dir is not None:
            with contextlib.suppress(FileNotFoundError):
                (self.dir / name).unlink()

    def oldest(self, skip: set[str] | frozenset[str] = frozenset()) -> Batch | None:
        """The oldest batch not in ``skip``, or ``None``."""
        with self._lock:
            for name in sorted(self._batches):
                if name not in skip:
                    return self._batches[name]
        return None

    def read(self, batch: Batch) -> bytes | None:
        """A batch's bytes; ``None`` if it was dropped meanwhile."""
        if self._memory is not None:
            return self._memory.get(batch.name)
        assert self.dir is not None
        try:
            return (self.dir / batch.name).read_bytes()
        except FileNotFoundError:
            return None

    def remove(self, batch: Batch) -> None:
        """Forget a delivered batch."""
        with self._lock:
            self._batches.pop(batch.name, None)
            self._delete(batch.name)

    def retry_later(self, batch: Batch) -> Batch:
        """Count one more try on ``batch``, keeping its place in the order."""
        with self._lock:
            if batch.name not in self._batches:
                return batch
            stem = batch.name.rsplit(".", 1)[0]
            new = Batch(f"{stem}.{batch.tries + 1}", batch.kind, batch.items, batch.tries + 1, batch.size)
            if self._memory is not None:
                self._memory[new.name] = self._memory.pop(batch.name)
            else:
                assert self.dir is not None
                os.replace(self.dir / batch.name, self.dir / new.name)
            del self._batches[batch.name]
            self._batches[new.name] = new
            return new

    def reject(self, batch: Batch) -> Path | None:
        """Set a batch the collector refused aside under ``rejected/``; returns where it went."""
        with self._lock:
            self._batches.pop(batch.name, None)
            if self._memory is not None:
                self._memory.pop(batch.name, None)  # nowhere durable to set it aside
                return None
            if self.dir is None:
                return None
            target_dir = self.root / _REJECTED
            target_dir.mkdir(exist_ok=True)
            target = target_dir / batch.name
            with contextlib.suppress(FileNotFoundError):
                os.replace(self.dir / batch.name, target)
            return target

    def pending_items(self) -> int:
        with self._lock:
            return sum(b.items for b in self._batches.values())

    def pending_bytes(self) -> int:
        with self._lock:
            return sum(b.size for b in self._batches.values())

    def pending_batches(self) -> int:
        with self._lock:
            return len(self._batches)

    def release_after_fork(self) -> None:
        """In a forked child: close the inherited lock descriptor; the parent keeps its own."""
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None
        self.dir = None  # the directory is the parent's; the child never writes or removes it

    def close(self, keep: bool = True) -> None:
        """Release the directory. Undelivered batches stay for the next process to adopt.

        ``keep=False`` removes the directory when it holds no batch.
        """
        if self.dir is None:
            return
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None
        if not keep or not self._batches:
            with contextlib.suppress(OSError):
                (self.dir / _LOCK).unlink()
                self.dir.rmdir()
