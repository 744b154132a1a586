"""The spool's on-disk format: ordering, integrity, caps and crash leftovers."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopwise_collector.errors import SpoolFullError
from loopwise_collector.ingest.spool import Spool
from loopwise_collector.store import ScoreRecord
from tests.factories import llm_trace

pytestmark = pytest.mark.unit


def test_roundtrip_preserves_records_and_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 30)
    first, second = llm_trace(tags=("a", "b"), attributes={"k": "v"}), llm_trace()
    score = ScoreRecord("demo", "s1", first[0].trace_id, "thumbs", "human", value=1.0, metadata={"m": "1"})
    spool.append("spans", first)
    spool.append("scores", [score])
    spool.append("spans", second)
    reopened = Spool(tmp_path, max_bytes=1 << 30)  # as after a restart
    assert len(reopened) == 3
    out = []
    while (entry := reopened.oldest()) is not None:
        out.append(reopened.load(entry))
        reopened.remove(entry)
    assert out == [("spans", first), ("scores", [score]), ("spans", second)]
    assert reopened.size_bytes == 0


def test_cap_is_enforced_and_nothing_partial_is_left(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=4096)
    with pytest.raises(SpoolFullError):
        spool.append("spans", [s for _ in range(20) for s in llm_trace(input="x" * 1000)])
    assert len(spool) == 0 and list(tmp_path.iterdir()) == []


def test_damaged_file_is_quarantined_not_dropped(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 30)
    spool.append("spans", llm_trace())
    entry = spool.oldest()
    entry.path.write_bytes(entry.path.read_bytes()[:-10] + b"corruption")
    with pytest.raises(ValueError, match="checksum"):
        spool.load(entry)
    assert len(spool) == 0
    assert [p.name for p in (tmp_path / "corrupt").iterdir()] == [entry.path.name]


def test_unfinished_temp_files_are_discarded_at_start(tmp_path: Path) -> None:
    (tmp_path / "00000000000000000001-spans.tmp").write_bytes(b"half a batch")
    spool = Spool(tmp_path, max_bytes=1 << 30)
    assert len(spool) == 0 and not list(tmp_path.glob("*.tmp"))
