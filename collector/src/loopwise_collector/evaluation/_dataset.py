"""Reading JSONL datasets for ``loopwise eval``: rows streamed with their line numbers, checked up front.

A dataset is one JSON object per line with ``input``, ``output``, ``reference`` and ``context`` (a
string or a list of strings); other keys ride along into the results. Blank lines are skipped.
:func:`scan` reads the whole file once before anything is evaluated, so a malformed line 90,000 or a
row missing a field is reported in seconds, not after an hour of model inference; the same pass
counts the rows (the progress bar's length) and hashes the bytes (the dataset version).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopwise_collector.errors import LoopwiseError
from loopwise_collector.evaluators import EvalItem

MAX_LINES_SHOWN = 5


class DatasetError(LoopwiseError):
    """A dataset or reference file that cannot be used: unreadable, malformed, empty or missing fields.

    Example:
        >>> DatasetError("data.jsonl:3: malformed JSON").code
        'invalid_dataset'
    """

    status_code = 422
    code = "invalid_dataset"


@dataclass(frozen=True, slots=True)
class Row:
    """One dataset row: its 0-based position among rows, its 1-based line in the file, and the object.

    Example:
        >>> Row(index=0, line=1, data={"output": "hi"}).item().output
        'hi'
    """

    index: int
    line: int
    data: dict[str, Any]

    def item(self) -> EvalItem:
        """The row as an evaluator input."""
        return EvalItem.from_row(self.data)


@dataclass(frozen=True, slots=True)
class MissingField:
    """Rows that lack a field one evaluator requires: how many, and the first few line numbers."""

    evaluator: str
    field: str
    count: int
    lines: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    """What :func:`scan` learned about a dataset file.

    Example:
        >>> info = DatasetInfo(path=Path("qa.jsonl"), rows=2, sha256="ab" * 32)
        >>> info.version, info.name
        ('abababababab', 'qa')
    """

    path: Path
    rows: int
    sha256: str
    missing: tuple[MissingField, ...] = field(default=())

    @property
    def version(self) -> str:
        """12 hex digits of the content hash: the same bytes, the same version."""
        return self.sha256[:12]

    @property
    def name(self) -> str:
        """The file name without its extension."""
        return self.path.stem


def has_field(row: Mapping[str, Any], name: str) -> bool:
    """Whether ``row`` carries ``name`` with a value: not absent, not null, and for ``context`` not empty.

    Example:
        >>> has_field({"output": "", "reference": None}, "output"), has_field({"reference": None}, "reference")
        (True, False)
        >>> has_field({"context": []}, "context")
        False
    """
    value = row.get(name)
    if value is None:
        return False
    if name == "context" and isinstance(value, list | str):
        return bool(value)
    return True


def iter_rows(path: Path) -> Iterator[Row]:
    """Stream the objects of a JSONL file; :class:`DatasetError` names the file and line of a bad one.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "d.jsonl"
        >>> _ = p.write_text('{"output": "a"}\\n\\n{"output": "b"}\\n')
        >>> [(r.index, r.line) for r in iter_rows(p)]
        [(0, 1), (1, 3)]
        >>> _ = p.write_text('{"output": "a"}\\n{"output": \\n')
        >>> list(iter_rows(p))
        Traceback (most recent call last):
        ...
        loopwise_collector.evaluation._dataset.DatasetError: ...d.jsonl:2: malformed JSON (Expecting value at column 12)
    """
    for index, line, data in _parse(path, hasher=None):
        yield Row(index, line, data)


def _parse(path: Path, hasher: Any) -> Iterator[tuple[int, int, dict[str, Any]]]:
    index = 0
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with fh:
        for line_no, raw in enumerate(fh, start=1):
            if hasher is not None:
                hasher.update(raw)
            where = f"{path}:{line_no}"
            try:
                text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise DatasetError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
            if not text.strip():
                continue
            try:
                data = json.loads(text.rstrip("\r\n"))  # so a column past the end is not "line 2, column 1"
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{where}: malformed JSON ({exc.msg} at column {exc.colno})") from exc
            if not isinstance(data, dict):
                raise DatasetError(
                    f"{where}: each line must be a JSON object like "
                    f'{{"input": ..., "output": ..., "reference": ...}}, not a JSON {_json_type(data)}'
                )
            context = data.get("context")
            if context is not None and not (
                isinstance(context, str) or (isinstance(context, list) and all(isinstance(c, str) for c in context))
            ):
                raise DatasetError(f"{where}: 'context' must be a string or a list of strings")
            yield index, line_no, data
            index += 1


def scan(path: Path, requirements: Mapping[str, frozenset[str]]) -> DatasetInfo:
    """Read the whole file once: validate every line, count rows, hash the bytes, and find rows that
    lack a field an evaluator requires (``requirements`` maps evaluator name to its required fields).

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "d.jsonl"
        >>> _ = p.write_text('{"output": "a", "reference": "a"}\\n{"output": "b"}\\n')
        >>> info = scan(p, {"bleu": frozenset({"output", "reference"})})
        >>> info.rows, info.missing[0].field, info.missing[0].lines
        (2, 'reference', (2,))
    """
    hasher = hashlib.sha256()
    counts: dict[tuple[str, str], int] = {}
    lines: dict[tuple[str, str], list[int]] = {}
    checks = [(name, f) for name, fields in requirements.items() for f in sorted(fields)]
    rows = 0
    for _, line_no, data in _parse(path, hasher):
        rows += 1
        for key in checks:
            if not has_field(data, key[1]):
                counts[key] = counts.get(key, 0) + 1
                shown = lines.setdefault(key, [])
                if len(shown) < MAX_LINES_SHOWN:
                    shown.append(line_no)
    missing = tuple(MissingField(name, f, counts[(name, f)], tuple(lines[(name, f)])) for name, f in counts)
    return DatasetInfo(path=path, rows=rows, sha256=hasher.hexdigest(), missing=missing)


def read_reference_texts(path: Path, field_name: str) -> list[str]:
    """The ``field_name`` texts of a reference JSONL file (the baseline window for drift).

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "ref.jsonl"
        >>> _ = p.write_text('{"output": "a"}\\n{"output": "b", "input": "q"}\\n')
        >>> read_reference_texts(p, "output")
        ['a', 'b']
    """
    texts: list[str] = []
    for row in iter_rows(path):
        value = row.data.get(field_name)
        if not isinstance(value, str):
            what = "has no" if value is None else "has a non-string"
            raise DatasetError(f"{path}:{row.line}: reference row {what} {field_name!r} text")
        texts.append(value)
    if not texts:
        raise DatasetError(f"reference file {path} has no rows")
    return texts


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"
