"""Server-side cost pricing: a versioned price table and the arithmetic that applies it.

Spans that carry token counts but no client-side cost (``loopwise.cost.usd``) are priced here, on
ingest, from a price table. The bundled table is ``prices.json`` next to this module; a deployment
may replace it (``PriceTable.from_file``, e.g. from ``LOOPWISE_PRICES_FILE``) and a project may
layer its own negotiated prices on top (``PriceTable.with_overrides``).

Every priced span records where its cost came from in ``cost_source``:

- ``client``: the application sent the cost; the server never touches it;
- ``table:<version>``: priced here, from the table with that version (``2026-11-22+acme``
  when a project override is layered on);
- ``unpriced``: tokens were reported but no price applies, so ``cost_usd`` stays ``None``:
  an unknown model never shows up as a silent $0;
- ``""``: no token counts at all, nothing to price.

Data file format (``prices.json``; JSON, so per-entry comments go in an optional ``note``)::

    {"version": "2026-11-22",          # required; becomes cost_source "table:2026-11-22"
     "currency": "USD",                # optional; only USD is accepted
     "unit": "per_1m_tokens",          # optional; only per_1m_tokens is accepted
     "notes": "free text",             # optional
     "models": [
       {"pattern": "gpt-4o-mini",      # required, matched against the normalised model name
        "match": "versioned",          # optional: exact | versioned (default) | prefix | glob | regex
        "provider": "openai",          # optional; see "Providers" below
        "effective_from": "2024-07-18",# required, ISO date (UTC)
        "input": 0.15,                 # required, USD per 1M input tokens
        "output": 0.60,                # required, USD per 1M output tokens
        "cached_input": 0.075,         # optional, USD per 1M cache-read tokens; null: billed as input
        "note": "free text"}]}         # optional

Matching, in order:

1. The model name is normalised (:func:`normalize_model`): lower case, no ``openai/`` or
   ``models/`` path prefix, no Bedrock ``[region.]vendor.`` prefix or ``:0`` suffix, Vertex
   ``@version`` becomes ``-version``, OpenRouter's dotted Claude versions become Anthropic's
   hyphenated ones, Azure's ``gpt-35`` becomes ``gpt-3.5``.
2. ``match`` decides how a pattern matches the normalised name:
   ``exact`` (equal), ``versioned`` (equal, or followed only by date/build suffixes such as
   ``-2024-08-06``, ``-20241022``, ``-0613``, ``-002``, ``-08-2024``, ``-latest``, ``-v2``),
   ``prefix`` (the name starts with the pattern), ``glob`` (:mod:`fnmatch`) or ``regex``
   (:func:`re.fullmatch`, case-insensitive). ``versioned`` is the default because it handles
   snapshot names without letting ``o3`` price ``o3-pro`` or ``gpt-4`` price ``gpt-4-32k``.
3. Among matching patterns the most specific wins: the longest literal text, ties broken by
   mode (exact > versioned > prefix > glob > regex). So ``gpt-4o-mini-2024-07-18`` is priced
   as ``gpt-4o-mini``, not ``gpt-4o``.
4. Within the winning pattern the entry with the latest ``effective_from`` on or before the
   span's UTC start date applies. A span older than the pattern's first entry is unpriced:
   falling back to a less specific pattern would price it as a different model.

Project overrides are a layer above the table: when any override pattern matches a model and has
an entry effective at the span's date, it wins, however specific the bundled entries are;
otherwise the table below applies.

Providers: ``provider`` uses ``gen_ai.provider.name`` spellings (``openai``, ``anthropic``,
``gcp.gemini``, ...). It only breaks ties between equally specific patterns: an entry for the
span's own provider beats a provider-less one, which beats one for another provider. It is not a
filter, because the same model is served by several providers at the list price (Claude on
``aws.bedrock``, GPT on ``azure.ai.openai``).

Example:
    >>> table = PriceTable.bundled()
    >>> table.price(model="gpt-4o-mini-2024-07-18", provider="openai", at=date(2025, 1, 1),
    ...             input_tokens=1_000_000, output_tokens=0, cache_read_input_tokens=None)
    (0.15, 'table:2026-11-22')
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import cache
from importlib import resources
from os import PathLike
from typing import Any, Final

from loopwise_collector.pricing._file import (
    CURRENCY,
    UNIT,
    PriceTableError,
    decode_json,
    entry_fields,
    is_price,
    read_price_file,
    table_fields,
)
from loopwise_collector.pricing._names import (
    MATCH_MODES,
    MODE_RANK,
    VERSION_SUFFIX,
    literal_length,
    normalize_model,
    provider_rank,
)
from loopwise_collector.store.records import SpanRecord

SOURCE_CLIENT: Final = "client"
SOURCE_UNPRICED: Final = "unpriced"
SOURCE_TABLE_PREFIX: Final = "table:"

_TOKENS_PER_UNIT: Final = 1_000_000
_NS_PER_DAY: Final = 86_400 * 1_000_000_000
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
# Distinct (model, provider, day) keys per day are few (tens to hundreds), so a plain dict that is
# dropped when full is enough; it cannot grow without bound under junk model names.
_CACHE_MAX: Final = 65_536
_MISSING: Final = object()


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """The price of one model pattern from one date on, in USD per 1M tokens.

    ``cached_input_per_million`` is the cache-read price; ``None`` means cached tokens cost the
    same as other input tokens. Values are validated on construction (:class:`PriceTableError`).

    Example:
        >>> p = ModelPrice("gpt-4o-mini", date(2024, 7, 18), 0.15, 0.60, 0.075, provider="openai")
        >>> p.matches("openai/gpt-4o-mini-2024-07-18"), p.matches("gpt-4o")
        (True, False)
        >>> p.cost(input_tokens=2_000_000, output_tokens=1_000_000)
        0.9
    """

    pattern: str
    effective_from: date
    input_per_million: float
    output_per_million: float
    cached_input_per_million: float | None = None
    match: str = "versioned"
    provider: str = ""
    _compiled: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        what = f"price {self.pattern!r}"
        if not isinstance(self.pattern, str) or not self.pattern.strip():
            raise PriceTableError(f"{what}: pattern must be a non-empty string")
        if self.match not in MATCH_MODES:
            raise PriceTableError(f"{what}: match must be one of {', '.join(MATCH_MODES)}, got {self.match!r}")
        if not isinstance(self.provider, str):
            raise PriceTableError(f"{what}: provider must be a string")
        # datetime is a date subclass, but comparing one with a date raises TypeError at lookup.
        if isinstance(self.effective_from, datetime) or not isinstance(self.effective_from, date):
            raise PriceTableError(f"{what}: effective_from must be a datetime.date")
        for name in ("input_per_million", "output_per_million", "cached_input_per_million"):
            value = getattr(self, name)
            if value is None and name == "cached_input_per_million":
                continue
            if not is_price(value):
                raise PriceTableError(f"{what}: {name} must be a non-negative finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        object.__setattr__(self, "provider", self.provider.strip().lower())
        pattern = self.pattern.strip()
        if self.match == "regex":
            try:
                compiled = re.compile(pattern, re.IGNORECASE)
            except re.error as exc:
                raise PriceTableError(f"{what}: invalid regex: {exc}") from None
            object.__setattr__(self, "_compiled", compiled)
        else:
            pattern = pattern.lower()
            if self.match == "glob":
                object.__setattr__(self, "_compiled", re.compile(fnmatch.translate(pattern)))
        object.__setattr__(self, "pattern", pattern)

    @property
    def specificity(self) -> tuple[int, int]:
        """Sort key among matching patterns: literal length, then mode rank (higher wins).

        Example:
            >>> ModelPrice("gpt-4o-mini", date(2024, 7, 18), 0.15, 0.6).specificity
            (11, 3)
        """
        return (literal_length(self.pattern, self.match), MODE_RANK[self.match])

    def matches(self, model: str) -> bool:
        """Whether this pattern matches ``model`` (normalised first), ignoring dates.

        Example:
            >>> ModelPrice("o3", date(2025, 6, 10), 2.0, 8.0).matches("o3-2025-04-16")
            True
            >>> ModelPrice("o3", date(2025, 6, 10), 2.0, 8.0).matches("o3-pro")
            False
        """
        return self._matches_normalised(normalize_model(model))

    def _matches_normalised(self, name: str) -> bool:
        pattern = self.pattern
        if self.match == "exact":
            return name == pattern
        if self.match == "versioned":
            return name == pattern or (
                name.startswith(pattern) and VERSION_SUFFIX.fullmatch(name, len(pattern)) is not None
            )
        if self.match == "prefix":
            return name.startswith(pattern)
        assert self._compiled is not None  # glob and regex are compiled in __post_init__
        return self._compiled.fullmatch(name) is not None

    def cost(self, input_tokens: int = 0, output_tokens: int = 0, cache_read_input_tokens: int = 0) -> float:
        """USD cost of one call at this price.

        Token semantics follow the OpenTelemetry GenAI conventions:

        - ``input_tokens`` (``gen_ai.usage.input_tokens``) *includes* the cache reads, so
          ``input - cached`` tokens pay the input price and ``cached`` tokens the cached price
          (the input price when ``cached_input_per_million`` is ``None``). When ``cached`` exceeds
          ``input`` the inclusive reading is impossible, so the sender must have followed
          Anthropic's API, where input excludes cache reads: then all ``input`` tokens pay the
          input price.
        - ``output_tokens`` already includes reasoning tokens
          (``gen_ai.usage.reasoning.output_tokens`` is a breakdown), so they are not added again.
        - Cache writes have no semconv attribute and are billed as plain input.

        Negative counts are treated as zero. The result is not rounded.

        Example:
            >>> p = ModelPrice("m", date(2025, 1, 1), 2.0, 8.0, cached_input_per_million=0.5)
            >>> p.cost(input_tokens=1_000_000, output_tokens=500_000, cache_read_input_tokens=500_000)
            5.25
        """
        inp = max(input_tokens, 0)
        out = max(output_tokens, 0)
        cached = max(cache_read_input_tokens, 0)
        uncached = inp if cached > inp else inp - cached
        cached_price = self.cached_input_per_million
        if cached_price is None:
            cached_price = self.input_per_million
        return (
            uncached * self.input_per_million + cached * cached_price + out * self.output_per_million
        ) / _TOKENS_PER_UNIT

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any], *, source: str = "<mapping>") -> ModelPrice:
        """One entry of a price file's ``models`` list (the JSON shape in the module docstring).

        Raises :class:`PriceTableError` naming ``source`` and the problem; unknown keys are errors,
        so a misspelt ``cached_input`` is not silently ignored.

        Example:
            >>> ModelPrice.from_dict({"pattern": "my-ft", "match": "exact", "effective_from": "2025-01-01",
            ...                       "input": 1, "output": 2}).output_per_million
            2.0
        """
        fields = entry_fields(entry, source=source)
        try:
            return cls(**fields)
        except PriceTableError as exc:
            raise PriceTableError(f"{source}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """The entry in the data-file shape; ``ModelPrice.from_dict`` reads it back.

        Example:
            >>> ModelPrice("o3", date(2025, 6, 10), 2.0, 8.0, 0.5).to_dict()["effective_from"]
            '2025-06-10'
        """
        return {
            "pattern": self.pattern,
            "match": self.match,
            "provider": self.provider,
            "effective_from": self.effective_from.isoformat(),
            "input": self.input_per_million,
            "output": self.output_per_million,
            "cached_input": self.cached_input_per_million,
        }


def _entry_key(price: ModelPrice) -> tuple[str, str, str, date]:
    return (price.pattern, price.match, price.provider, price.effective_from)


def _check_unique(prices: tuple[ModelPrice, ...], what: str) -> None:
    seen: set[tuple[str, str, str, date]] = set()
    for price in prices:
        if not isinstance(price, ModelPrice):
            raise PriceTableError(f"{what}: expected ModelPrice, got {type(price).__name__}")
        key = _entry_key(price)
        if key in seen:
            raise PriceTableError(
                f"{what}: duplicate entry for pattern {price.pattern!r} ({price.match}, "
                f"provider {price.provider!r}) effective {price.effective_from.isoformat()}"
            )
        seen.add(key)


def _resolve_tier(tier: tuple[ModelPrice, ...], name: str, provider: str, at: date) -> ModelPrice | None:
    """The entry of ``tier`` for ``name`` at ``at``: most specific pattern, then latest date."""
    best_rank: tuple[tuple[int, int], int] | None = None
    best_key: tuple[str, str, str] | None = None
    for price in tier:
        if not price._matches_normalised(name):
            continue
        rank = (price.specificity, provider_rank(price.provider, provider))
        # Strictly greater: on a full tie the entry listed first wins, deterministically.
        if best_rank is None or rank > best_rank:
            best_rank, best_key = rank, (price.pattern, price.match, price.provider)
    if best_key is None:
        return None
    chosen: ModelPrice | None = None
    for price in tier:
        if (price.pattern, price.match, price.provider) != best_key or price.effective_from > at:
            continue
        if chosen is None or price.effective_from > chosen.effective_from:
            chosen = price
    return chosen


@dataclass(frozen=True, slots=True)
class PriceTable:
    """An immutable, versioned set of model prices, with an optional layer of project overrides.

    Lookups are memoised per (model, provider, UTC day), so pricing a batch costs one dict lookup
    per span after the first span of each model. The cache is private to the instance and
    bounded; a table is safe to share between threads.

    Example:
        >>> table = PriceTable.bundled()
        >>> table.lookup("claude-3-5-sonnet-20241022", date(2025, 1, 1)).pattern
        'claude-3-5-sonnet'
        >>> table.lookup("no-such-model", date(2025, 1, 1)) is None
        True
    """

    version: str
    prices: tuple[ModelPrice, ...]
    overrides: tuple[ModelPrice, ...] = ()
    _cache: dict[tuple[str, str, int], ModelPrice | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not isinstance(self.version, str) or not self.version.strip():
            raise PriceTableError("price table: version must be a non-empty string")
        object.__setattr__(self, "version", self.version.strip())
        object.__setattr__(self, "prices", tuple(self.prices))
        object.__setattr__(self, "overrides", tuple(self.overrides))
        _check_unique(self.prices, f"price table {self.version}")
        _check_unique(self.overrides, f"price table {self.version} overrides")

    @property
    def source(self) -> str:
        """The ``cost_source`` of spans priced by this table.

        Example:
            >>> PriceTable("v1", ()).source
            'table:v1'
        """
        return SOURCE_TABLE_PREFIX + self.version

    @classmethod
    def bundled(cls) -> PriceTable:
        """The table shipped with the collector (``prices.json``), parsed once per process.

        Example:
            >>> PriceTable.bundled() is PriceTable.bundled()
            True
        """
        return _bundled()

    @classmethod
    def from_file(cls, path: str | PathLike[str]) -> PriceTable:
        """A whole table from a JSON file of the bundled shape (e.g. ``LOOPWISE_PRICES_FILE``).

        It replaces the bundled table; to layer a file over it instead, use
        ``PriceTable.bundled().with_overrides(PriceTable.from_file(p).prices, label=...)``.
        Raises :class:`PriceTableError` (a ``ValueError``) naming the file and the problem.

        Example:
            >>> try:
            ...     PriceTable.from_file("/nonexistent/prices.json")
            ... except PriceTableError as exc:
            ...     print(exc)
            /nonexistent/prices.json: cannot read price file: No such file or directory
        """
        text, source = read_price_file(path)
        return cls._from_json(text, source=source)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "<mapping>") -> PriceTable:
        """A table from already-decoded JSON of the bundled shape (e.g. an API request body).

        Example:
            >>> t = PriceTable.from_mapping({"version": "v1", "models": [
            ...     {"pattern": "m", "effective_from": "2025-01-01", "input": 1, "output": 2}]})
            >>> (t.version, len(t.prices))
            ('v1', 1)
        """
        version, models = table_fields(data, source=source)
        prices = tuple(ModelPrice.from_dict(entry, source=f"{source}: models[{i}]") for i, entry in enumerate(models))
        try:
            return cls(version=version, prices=prices)
        except PriceTableError as exc:
            raise PriceTableError(f"{source}: {exc}") from None

    @classmethod
    def _from_json(cls, text: str, *, source: str) -> PriceTable:
        return cls.from_mapping(decode_json(text, source=source), source=source)

    def with_overrides(self, overrides: Iterable[ModelPrice], label: str) -> PriceTable:
        """This table with a project's prices layered on top; the version becomes ``version+label``.

        An override applies wherever its pattern matches and it is in effect, however specific
        the table's own entries are. Overrides already present stay, unless a new one has the same
        (pattern, match, provider, effective_from).

        Example:
            >>> t = PriceTable.bundled().with_overrides(
            ...     [ModelPrice("gpt-4o", date(2025, 1, 1), 2.0, 8.0)], label="acme")
            >>> t.source
            'table:2026-11-22+acme'
            >>> t.lookup("gpt-4o-2024-11-20", date(2025, 3, 1)).input_per_million
            2.0
        """
        if not isinstance(label, str) or not label.strip():
            raise PriceTableError("with_overrides: label must be a non-empty string")
        new = tuple(overrides)
        _check_unique(new, f"overrides {label!r}")
        replaced = {_entry_key(p) for p in new}
        kept = tuple(p for p in self.overrides if _entry_key(p) not in replaced)
        return PriceTable(version=f"{self.version}+{label.strip()}", prices=self.prices, overrides=new + kept)

    def lookup(self, model: str, at: date, provider: str = "") -> ModelPrice | None:
        """The price in effect for ``model`` on the UTC date ``at``, or ``None`` when unpriced.

        Example:
            >>> t = PriceTable.bundled()
            >>> [t.lookup("o3", day).input_per_million for day in (date(2025, 5, 1), date(2025, 7, 1))]
            [10.0, 2.0]
        """
        return self._lookup_day(model, provider, at.toordinal() - _EPOCH_ORDINAL)

    def price(
        self,
        *,
        model: str,
        at: date,
        input_tokens: int | None,
        output_tokens: int | None,
        cache_read_input_tokens: int | None = None,
        provider: str = "",
    ) -> tuple[float | None, str]:
        """``(cost_usd, cost_source)`` for one call; see :meth:`ModelPrice.cost` for the arithmetic.

        - ``(cost, "table:<version>")`` when a price applies;
        - ``(None, "unpriced")`` when any token count is given but no price applies;
        - ``(None, "")`` when every token count is ``None``: nothing to price.

        Example:
            >>> t = PriceTable.bundled()
            >>> t.price(model="mystery-llm", at=date(2025, 1, 1), input_tokens=10, output_tokens=5)
            (None, 'unpriced')
            >>> t.price(model="gpt-4o", at=date(2025, 1, 1), input_tokens=None, output_tokens=None)
            (None, '')
        """
        return self._price_day(
            model,
            provider,
            at.toordinal() - _EPOCH_ORDINAL,
            input_tokens,
            output_tokens,
            cache_read_input_tokens,
        )

    def price_span(
        self,
        model: str,
        provider: str,
        start_time_ns: int,
        input_tokens: int | None,
        output_tokens: int | None,
        cache_read_input_tokens: int | None,
    ) -> tuple[float | None, str]:
        """:meth:`price` for a span starting at ``start_time_ns`` (UTC): the ingest hot path's form.

        Example:
            >>> PriceTable.bundled().price_span("gpt-4o-mini", "openai", 1_735_689_600 * 10**9, 10**6, 0, None)[0]
            0.15
        """
        return self._price_day(
            model, provider, start_time_ns // _NS_PER_DAY, input_tokens, output_tokens, cache_read_input_tokens
        )

    def _lookup_day(self, model: str, provider: str, day: int) -> ModelPrice | None:
        key = (model, provider, day)
        hit = self._cache.get(key, _MISSING)
        if hit is not _MISSING:
            return hit  # type: ignore[return-value]  # _MISSING is the only non-price value
        name = normalize_model(model)
        span_provider = provider.strip().lower()
        at = date.fromordinal(day + _EPOCH_ORDINAL)
        found = _resolve_tier(self.overrides, name, span_provider, at) if self.overrides else None
        if found is None:
            found = _resolve_tier(self.prices, name, span_provider, at)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[key] = found
        return found

    def _price_day(
        self,
        model: str,
        provider: str,
        day: int,
        input_tokens: int | None,
        output_tokens: int | None,
        cache_read_input_tokens: int | None,
    ) -> tuple[float | None, str]:
        if input_tokens is None and output_tokens is None and cache_read_input_tokens is None:
            return None, ""
        entry = self._lookup_day(model, provider, day)
        if entry is None:
            return None, SOURCE_UNPRICED
        cost = entry.cost(input_tokens or 0, output_tokens or 0, cache_read_input_tokens or 0)
        return cost, SOURCE_TABLE_PREFIX + self.version

    def to_dict(self) -> dict[str, Any]:
        """The table in the data-file shape (overrides first, as they take precedence).

        Example:
            >>> PriceTable("v1", ()).to_dict()
            {'version': 'v1', 'currency': 'USD', 'unit': 'per_1m_tokens', 'models': []}
        """
        return {
            "version": self.version,
            "currency": CURRENCY,
            "unit": UNIT,
            "models": [p.to_dict() for p in (*self.overrides, *self.prices)],
        }


@cache
def _bundled() -> PriceTable:
    text = resources.files(__package__ or "loopwise_collector.pricing").joinpath("prices.json")
    return PriceTable._from_json(text.read_text(encoding="utf-8"), source="loopwise_collector/pricing/prices.json")


def apply_prices(records: Iterable[SpanRecord], table: PriceTable) -> list[SpanRecord]:
    """Price a batch of spans on the server; returns a new list in the same order.

    Only spans without a cost of their own are priced: ``cost_source == ""``, ``cost_usd is
    None`` and at least one of input, output or cache-read tokens present. They get
    ``cost_usd``/``cost_source`` from :meth:`PriceTable.price` at their UTC start date (via
    ``dataclasses.replace``; the input records are never mutated). Every other record is
    returned as is: a client cost is never overwritten, and an already-priced or ``unpriced``
    span is not re-priced.

    Example:
        >>> r = SpanRecord(project_id="p", trace_id="ab" * 16, span_id="cd" * 8, name="chat",
        ...                start_time_ns=1_735_689_600_000_000_000, end_time_ns=1_735_689_601_000_000_000,
        ...                request_model="gpt-4o-mini", input_tokens=1_000_000, output_tokens=0)
        >>> [(s.cost_usd, s.cost_source) for s in apply_prices([r], PriceTable.bundled())]
        [(0.15, 'table:2026-11-22')]
    """
    price_span = table.price_span
    priced: list[SpanRecord] = []
    append = priced.append
    for record in records:
        if (
            record.cost_source
            or record.cost_usd is not None
            or (record.input_tokens is None and record.output_tokens is None and record.cache_read_input_tokens is None)
        ):
            append(record)
            continue
        cost, source = price_span(
            record.model,
            record.provider,
            record.start_time_ns,
            record.input_tokens,
            record.output_tokens,
            record.cache_read_input_tokens,
        )
        append(replace(record, cost_usd=cost, cost_source=source))
    return priced
