"""The collector's durable spool: one fsynced file per batch that ClickHouse could not take.

Files are written to a temporary name, fsynced, renamed and the directory fsynced, so a crash
leaves either a whole file or none. Names carry a monotonically increasing sequence, so replay
follows arrival order. A file that fails its checksum is moved to ``corrupt/``, and one ClickHouse keeps rejecting to
``rejected/``; both are logged and kept, never silently dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopwise_collector.errors import SpoolFullError
from loopwise_collector.store.records import SCORE_FIELDS, SPAN_FIELDS, ScoreRecord, SpanRecord

log = logging.getLogger("loopwise.spool")
_FORMAT = 1
_SPAN_TUPLE_FIELDS = frozenset({"tags"})  # JSON turns tuples into lists; restore them on load

Record = SpanRecord | ScoreRecord


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """One spooled batch on disk."""

    path: Path
    size: int


def _encode(kind: str, records: Sequence[Record]) -> bytes:
    names = SPAN_FIELDS if kind == "spans" else SCORE_FIELDS
    body = json.dumps([[getattr(r, n) for n in names] for r in records], separators=(",", ":")).encode()
    header = {
        "format": _FORMAT,
        "kind": kind,
        "count": len(records),
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    return json.dumps(header).encode() + b"\n" + body


def _decode(data: bytes) -> tuple[str, list[Record]]:
    head, _, body = data.partition(b"\n")
    header = json.loads(head)
    if header.get("format") != _FORMAT or hashlib.sha256(body).hexdigest() != header.get("sha256"):
        raise ValueError("spool file header or checksum mismatch")
    rows: list[list[Any]] = json.loads(body)
    if header["kind"] == "spans":
        tags_at = SPAN_FIELDS.index("tags")
        spans: list[Record] = []
        for row in rows:
            row[tags_at] = tuple(row[tags_at])
            spans.append(SpanRecord(*row))
        return "spans", spans
    if header["kind"] == "scores":
        return "scores", [ScoreRecord(*row) for row in rows]
    raise ValueError(f"unknown spool kind {header['kind']!r}")


class Spool:
    """Append-only directory of batch files with a size cap.

    Example:
        >>> import tempfile
        >>> spool = Spool(Path(tempfile.mkdtemp()), max_bytes=1 << 20)
        >>> spool.append("scores", [ScoreRecord("p", "s1", "ab" * 16, "thumbs", "human", value=1.0)])
        >>> entry = spool.oldest()
        >>> spool.load(entry)[0], len(spool)
        ('scores', 1)
    """

    def __init__(self, directory: Path, *, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._seq = time.time_ns()
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.tmp"):  # a crash mid-write: the batch was never acknowledged
            stale.unlink(missing_ok=True)
        self._entries = sorted(
            (SpoolEntry(p, p.stat().st_size) for p in directory.glob("*.batch")), key=lambda e: e.path.name
        )
        self._bytes = sum(e.size for e in self._entries)
        if self._entries:  # keep names increasing even if the clock went back since the last run
            self._seq = max(self._seq, int(self._entries[-1].path.name.split("-", 1)[0]))

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """Bytes currently spooled."""
        return self._bytes

    def append(self, kind: str, records: Sequence[Record]) -> None:
        """Write a batch durably; raises :class:`SpoolFullError` rather than exceed the cap."""
        data = _encode(kind, records)
        with self._lock:
            if self._bytes + len(data) > self.max_bytes:
                raise SpoolFullError(
                    f"spool at {self.directory} is full ({self._bytes} of {self.max_bytes} bytes) while "
                    "ClickHouse is unreachable; retry later"
                )
            self._seq = max(self._seq + 1, time.time_ns())
            final = self.directory / f"{self._seq:020d}-{kind}.batch"
            tmp = final.with_suffix(".tmp")
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
            _fsync_dir(self.directory)
            self._entries.append(SpoolEntry(final, len(data)))
            self._bytes += len(data)

    def oldest(self) -> SpoolEntry | None:
        """The next batch to replay, or ``None`` when empty."""
        with self._lock:
            return self._entries[0] if self._entries else None

    def load(self, entry: SpoolEntry) -> tuple[str, list[Record]]:
        """Read a batch back; a damaged file is quarantined and raises ``ValueError``."""
        try:
            return _decode(entry.path.read_bytes())
        except (ValueError, TypeError, KeyError, json.JSONDecodeError) as exc:
            self.set_aside(entry, "corrupt", f"damaged ({exc})")
            raise ValueError(str(exc)) from exc

    def set_aside(self, entry: SpoolEntry, folder: str, why: str) -> Path:
        """Move a batch that cannot be replayed into ``folder`` (kept for an operator, never deleted)."""
        target = self.directory / folder
        target.mkdir(exist_ok=True)
        os.replace(entry.path, target / entry.path.name)
        log.error("spool file %s %s; moved to %s", entry.path.name, why, target)
        self._forget(entry)
        return target / entry.path.name

    def remove(self, entry: SpoolEntry) -> None:
        """Delete a batch after ClickHouse has it."""
        entry.path.unlink(missing_ok=True)
        self._forget(entry)

    def _forget(self, entry: SpoolEntry) -> None:
        with self._lock:
            if entry in self._entries:
                self._entries.remove(entry)
                self._bytes -= entry.size


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
