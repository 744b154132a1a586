"""Reading and validating price files: the JSON shape described in :mod:`loopwise_collector.pricing.table`.

The functions here check the data-file shape and return plain values; ``ModelPrice`` and
``PriceTable`` in :mod:`~loopwise_collector.pricing.table` build themselves from them (and
validate the values once more on construction). :class:`PriceTableError` lives here, below
``table``, so both modules can raise it without importing each other.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date
from os import PathLike
from pathlib import Path
from typing import Any, Final, TypeGuard

CURRENCY: Final = "USD"
UNIT: Final = "per_1m_tokens"
_ENTRY_KEYS: Final = frozenset(
    {"pattern", "match", "provider", "effective_from", "input", "output", "cached_input", "note"}
)
_TABLE_KEYS: Final = frozenset({"version", "currency", "unit", "notes", "models"})


class PriceTableError(ValueError):
    """A price table or entry that cannot be used; the message names the source and the problem.

    Example:
        >>> from loopwise_collector.pricing import PriceTable
        >>> try:
        ...     PriceTable.from_mapping({"models": []}, source="prices.json")
        ... except PriceTableError as exc:
        ...     print(exc)
        prices.json: 'version' is required
    """


def is_price(value: object) -> TypeGuard[float]:
    """Whether ``value`` is a usable price: a finite, non-negative int or float (not a bool).

    Example:
        >>> is_price(0.15), is_price(-1), is_price(True), is_price(float("nan"))
        (True, False, False, False)
    """
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _price_field(entry: Mapping[str, Any], key: str, where: str) -> float:
    value = entry.get(key)
    if not is_price(value):
        raise PriceTableError(f"{where}: {key!r} must be a non-negative number, got {value!r}")
    return float(value)


def read_price_file(path: str | PathLike[str]) -> tuple[str, str]:
    """``(text, source)`` of a price file; ``source`` is the path as error messages name it."""
    source = str(Path(path))
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PriceTableError(f"{source}: cannot read price file: {reason}") from None
    return text, source


def decode_json(text: str, *, source: str) -> Any:
    """The decoded JSON document ``text``; invalid JSON is a :class:`PriceTableError`.

    Example:
        >>> try:
        ...     decode_json("{", source="prices.json")
        ... except PriceTableError as exc:
        ...     print(exc)
        prices.json: invalid JSON at line 1 column 2: Expecting property name enclosed in double quotes
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PriceTableError(f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None


def table_fields(data: Mapping[str, Any], *, source: str) -> tuple[str, list[Any]]:
    """``(version, models)`` of a decoded price file, its top level checked; entries are not."""
    if not isinstance(data, Mapping):
        raise PriceTableError(f"{source}: the top level must be an object, got {type(data).__name__}")
    unknown = sorted(set(data) - _TABLE_KEYS)
    if unknown:
        raise PriceTableError(f"{source}: unknown top-level key(s) {', '.join(map(repr, unknown))}")
    version = data.get("version")
    if version is None:
        raise PriceTableError(f"{source}: 'version' is required")
    if not isinstance(version, str) or not version.strip():
        raise PriceTableError(f"{source}: 'version' must be a non-empty string, got {version!r}")
    if data.get("currency", CURRENCY) != CURRENCY:
        raise PriceTableError(f"{source}: only currency {CURRENCY!r} is supported, got {data['currency']!r}")
    if data.get("unit", UNIT) != UNIT:
        raise PriceTableError(f"{source}: only unit {UNIT!r} is supported, got {data['unit']!r}")
    models = data.get("models")
    if not isinstance(models, list):
        raise PriceTableError(f"{source}: 'models' must be a list of entries")
    return version, models


def entry_fields(entry: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """The ``ModelPrice`` keyword arguments for one entry of a price file's ``models`` list.

    Checks the entry's shape (unknown keys are errors, so a misspelt ``cached_input`` is not
    silently ignored); ``match`` and the pattern itself are checked by ``ModelPrice``.

    Example:
        >>> fields = entry_fields({"pattern": "m", "effective_from": "2025-01-01", "input": 1, "output": 2}, source="f")
        >>> fields["match"], fields["effective_from"], fields["input_per_million"], fields["cached_input_per_million"]
        ('versioned', datetime.date(2025, 1, 1), 1.0, None)
    """
    if not isinstance(entry, Mapping):
        raise PriceTableError(f"{source}: each model entry must be an object, got {type(entry).__name__}")
    pattern = entry.get("pattern")
    where = f"{source}: entry {pattern!r}" if isinstance(pattern, str) else f"{source}: entry"
    unknown = sorted(set(entry) - _ENTRY_KEYS)
    if unknown:
        raise PriceTableError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}")
    for key in ("pattern", "effective_from", "input", "output"):
        if key not in entry:
            raise PriceTableError(f"{where}: {key!r} is required")
    if not isinstance(pattern, str) or not pattern.strip():
        raise PriceTableError(f"{where}: 'pattern' must be a non-empty string")
    raw_date = entry["effective_from"]
    try:
        if not isinstance(raw_date, str):
            raise ValueError
        effective_from = date.fromisoformat(raw_date)
    except ValueError:
        raise PriceTableError(f"{where}: 'effective_from' must be an ISO date (YYYY-MM-DD), got {raw_date!r}") from None
    input_price = _price_field(entry, "input", where)
    output_price = _price_field(entry, "output", where)
    cached_price = None if entry.get("cached_input") is None else _price_field(entry, "cached_input", where)
    match = entry.get("match", "versioned")
    provider = entry.get("provider", "")
    if not isinstance(provider, str):
        raise PriceTableError(f"{where}: 'provider' must be a string, got {provider!r}")
    return {
        "pattern": pattern,
        "match": match,
        "provider": provider,
        "effective_from": effective_from,
        "input_per_million": input_price,
        "output_per_million": output_price,
        "cached_input_per_million": cached_price,
    }
