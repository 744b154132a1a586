"""Server-side pricing: the bundled table, name matching, effective dates, arithmetic, overrides."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from loopwise_collector.pricing import (
    MATCH_MODES,
    SOURCE_UNPRICED,
    ModelPrice,
    PriceTable,
    PriceTableError,
    apply_prices,
    normalize_model,
)
from loopwise_collector.store.records import SpanRecord

pytestmark = pytest.mark.unit

DAY = date(2025, 9, 1)


def ns(day: date, hour: int = 12, minute: int = 0, second: int = 0) -> int:
    """Nanoseconds since the epoch for a UTC wall-clock time."""
    moment = datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000


def span(**overrides: Any) -> SpanRecord:
    fields: dict[str, Any] = {
        "project_id": "demo",
        "trace_id": "ab" * 16,
        "span_id": "cd" * 8,
        "name": "chat",
        "start_time_ns": ns(DAY),
        "end_time_ns": ns(DAY) + 1_000_000,
    }
    fields.update(overrides)
    return SpanRecord(**fields)


def price(pattern: str, inp: float, out: float, cached: float | None = None, **kw: Any) -> ModelPrice:
    kw.setdefault("effective_from", date(2024, 1, 1))
    return ModelPrice(pattern, input_per_million=inp, output_per_million=out, cached_input_per_million=cached, **kw)


@pytest.fixture(scope="module")
def bundled() -> PriceTable:
    return PriceTable.bundled()


# --- the bundled data file -------------------------------------------------------------------


def raw_bundled() -> dict[str, Any]:
    text = resources.files("loopwise_collector.pricing").joinpath("prices.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def test_bundled_file_is_package_data() -> None:
    assert resources.files("loopwise_collector.pricing").joinpath("prices.json").is_file()


def test_bundled_file_top_level() -> None:
    data = raw_bundled()
    assert isinstance(data["version"], str)
    assert date.fromisoformat(data["version"])  # versions are release dates
    assert data["currency"] == "USD"
    assert data["unit"] == "per_1m_tokens"
    assert len(data["models"]) >= 50


def test_every_bundled_entry_is_valid() -> None:
    allowed = {"pattern", "match", "provider", "effective_from", "input", "output", "cached_input", "note"}
    for entry in raw_bundled()["models"]:
        where = entry.get("pattern")
        assert isinstance(where, str), entry
        assert where == where.strip().lower(), where
        assert set(entry) <= allowed, where
        assert entry.get("match", "versioned") in MATCH_MODES, where
        assert date(2020, 1, 1) <= date.fromisoformat(entry["effective_from"]) <= date.today(), where
        for key in ("input", "output"):
            assert type(entry[key]) in (int, float), where
            assert entry[key] >= 0, where
        cached = entry.get("cached_input")
        if cached is not None:
            assert 0 <= cached <= entry["input"], where  # a cache read never costs more than input
        assert entry["input"] > 0, where  # every listed model charges for input


def test_bundled_table_loads_and_is_cached(bundled: PriceTable) -> None:
    assert bundled is PriceTable.bundled()
    assert bundled.version == raw_bundled()["version"]
    assert bundled.source == f"table:{bundled.version}"
    assert len(bundled.prices) == len(raw_bundled()["models"])
    assert bundled.overrides == ()


def test_each_bundled_pattern_is_priced_at_its_first_date(bundled: PriceTable) -> None:
    # Every pattern must resolve to itself: a pattern shadowed by a more specific one is dead data.
    for entry in bundled.prices:
        if entry.match not in ("exact", "versioned"):
            continue
        found = bundled.lookup(entry.pattern, entry.effective_from)
        assert found is not None, entry.pattern
        assert found.pattern == entry.pattern


def test_bundled_round_trips_through_a_file(bundled: PriceTable, tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(bundled.to_dict()), encoding="utf-8")
    assert PriceTable.from_file(path) == bundled


# --- name normalisation and matching ---------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("gpt-4o", "gpt-4o"),
        ("  GPT-4o-Mini ", "gpt-4o-mini"),
        ("openai/gpt-4o", "gpt-4o"),
        ("models/gemini-1.5-pro-002", "gemini-1.5-pro-002"),
        ("projects/p/locations/us/publishers/google/models/gemini-2.0-flash", "gemini-2.0-flash"),
        ("anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet-20241022-v2"),
        ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", "claude-3-7-sonnet-20250219-v1"),
        ("eu.anthropic.claude-sonnet-4-20250514-v1:0:200k", "claude-sonnet-4-20250514-v1"),
        ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet-v2-20241022"),
        ("anthropic/claude-3.5-sonnet", "claude-3-5-sonnet"),
        ("anthropic/claude-sonnet-4.5", "claude-sonnet-4-5"),
        ("gpt-35-turbo-0125", "gpt-3.5-turbo-0125"),
        ("gemini-2.5-flash", "gemini-2.5-flash"),  # dots stay outside Claude names
        ("openrouter/anthropic/claude-3.5-sonnet:beta", "claude-3-5-sonnet:beta"),
    ],
)
def test_normalize_model(raw: str, normalised: str) -> None:
    assert normalize_model(raw) == normalised


@pytest.mark.parametrize(
    ("model", "pattern"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai/gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-2024-11-20", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o-2024-08-06"),
        ("GPT-4O", "gpt-4o"),
        ("gpt-4-0613", "gpt-4"),
        ("gpt-4-turbo-2024-04-09", "gpt-4-turbo"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("gpt-35-turbo-0125", "gpt-3.5-turbo"),
        ("o1-2024-12-17", "o1"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("o4-mini", "o4-mini"),
        ("text-embedding-3-small", "text-embedding-3-small"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
        ("anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"),
        ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", "claude-3-7-sonnet"),
        ("claude-3-5-haiku@20241022", "claude-3-5-haiku"),
        ("anthropic/claude-3.5-sonnet", "claude-3-5-sonnet"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-3-haiku-20240307", "claude-3-haiku"),
        ("models/gemini-1.5-flash-002", "gemini-1.5-flash"),
        ("gemini-1.5-flash-8b", "gemini-1.5-flash-8b"),
        ("gemini-2.0-flash-lite-001", "gemini-2.0-flash-lite"),
        ("google/gemini-2.5-pro", "gemini-2.5-pro"),
        ("mistral-large-latest", "mistral-large"),
        ("mistral-small-2501", "mistral-small"),
        ("command-r-plus-08-2024", "command-r-plus"),
        ("command-r-08-2024", "command-r"),
    ],
)
def test_real_world_names_resolve(bundled: PriceTable, model: str, pattern: str) -> None:
    found = bundled.lookup(model, date(2025, 12, 1))  # after every listed model's release
    assert found is not None, model
    assert found.pattern == pattern


@pytest.mark.parametrize(
    "model",
    [
        "",
        "mystery-llm",
        "gpt-4oo",  # not a suffix boundary
        "gpt-4-32k",  # a different, pricier model than gpt-4
        "gpt-4o-realtime-preview",  # not a date/build suffix: unpriced, not priced as gpt-4o
        "o3-deep-research",
        "claude-3-5-sonnet:beta",  # OpenRouter variant with its own terms
        "ft:gpt-4o-mini-2024-07-18:acme::abc123",  # fine-tunes are billed differently
        "llama-3.1-70b-instruct",  # host-dependent: project overrides only
        "meta.llama3-70b-instruct-v1:0",
    ],
)
def test_near_misses_stay_unpriced(bundled: PriceTable, model: str) -> None:
    assert bundled.lookup(model, DAY) is None
    assert bundled.price(model=model, at=DAY, input_tokens=100, output_tokens=10) == (None, SOURCE_UNPRICED)


def test_most_specific_pattern_wins() -> None:
    table = PriceTable(
        "t",
        (
            price("gpt-*", 9.0, 9.0, match="glob"),
            price("gpt-4", 1.0, 1.0, match="prefix"),
            price("gpt-4o", 2.0, 2.0),
            price("gpt-4o-mini", 3.0, 3.0),
            price(r"gpt-4o-mini-\d{4}-\d{2}-\d{2}", 4.0, 4.0, match="regex"),
        ),
    )
    assert table.lookup("gpt-4o-mini-2024-07-18", DAY) == table.prices[4]  # longest literal text
    assert table.lookup("gpt-4o-mini", DAY) == table.prices[3]
    assert table.lookup("gpt-4o-2024-08-06", DAY) == table.prices[2]
    assert table.lookup("gpt-4-turbo", DAY) == table.prices[1]  # only the prefix and glob match
    assert table.lookup("gpt-3.5-turbo", DAY) == table.prices[0]
    assert table.lookup("claude-3-haiku", DAY) is None


def test_equal_length_patterns_rank_by_mode() -> None:
    exact = price("gpt-4o", 1.0, 1.0, match="exact")
    versioned = price("gpt-4o", 2.0, 2.0)
    prefix = price("gpt-4o", 3.0, 3.0, match="prefix")
    table = PriceTable("t", (prefix, versioned, exact))
    assert table.lookup("gpt-4o", DAY) == exact
    assert table.lookup("gpt-4o-2024-08-06", DAY) == versioned
    assert table.lookup("gpt-4o-audio", DAY) == prefix


def test_exact_snapshot_beats_family(bundled: PriceTable) -> None:
    at = date(2025, 1, 1)
    snapshot = bundled.lookup("gpt-4o-2024-05-13", at)
    family = bundled.lookup("gpt-4o-2024-11-20", at)
    assert snapshot is not None
    assert family is not None
    assert (snapshot.input_per_million, family.input_per_million) == (5.0, 2.5)


def test_provider_breaks_ties_but_does_not_filter() -> None:
    generic = price("llama-3.1-70b", 0.9, 0.9)
    groq = price("llama-3.1-70b", 0.59, 0.79, provider="groq")
    together = price("llama-3.1-70b", 0.88, 0.88, provider="Together")
    table = PriceTable("t", (generic, groq, together))
    assert table.lookup("llama-3.1-70b", DAY, provider="groq") == groq
    assert table.lookup("llama-3.1-70b", DAY, provider="together") == together  # provider lower-cased
    assert table.lookup("llama-3.1-70b", DAY, provider="fireworks") == generic
    only_groq = PriceTable("t", (groq,))
    # Not a filter: Claude on aws.bedrock is priced by the anthropic entry.
    assert only_groq.lookup("llama-3.1-70b", DAY, provider="fireworks") == groq


def test_bedrock_claude_priced_by_anthropic_entry(bundled: PriceTable) -> None:
    cost, source = bundled.price(
        model="us.anthropic.claude-3-5-sonnet-20241022-v2:0",
        provider="aws.bedrock",
        at=DAY,
        input_tokens=1_000,
        output_tokens=500,
        cache_read_input_tokens=200,
    )
    # 800 * 3.00 + 200 * 0.30 + 500 * 15.00, per 1M tokens
    assert cost == pytest.approx(0.00996, rel=1e-12)
    assert source == bundled.source


@pytest.mark.parametrize(
    ("pattern", "match", "model", "expected"),
    [
        ("o3", "versioned", "o3", True),
        ("o3", "versioned", "o3-2025-04-16", True),
        ("o3", "versioned", "o3-latest", True),
        ("o3", "versioned", "o3-pro", False),
        ("o3", "versioned", "o3-mini-2025-01-31", False),
        ("claude-opus-4", "versioned", "claude-opus-4-1", False),  # short number = new model
        ("claude-opus-4", "versioned", "claude-opus-4-20250514", True),
        ("gemini-1.5-pro", "versioned", "gemini-1.5-pro-002", True),
        ("command-r", "versioned", "command-r-08-2024", True),
        ("gpt-4o", "exact", "gpt-4o-2024-08-06", False),
        ("gpt-4o", "exact", "openai/GPT-4o", True),
        ("gpt-4", "prefix", "gpt-4o", True),
        ("gpt-4*-mini", "glob", "gpt-4.1-mini", True),
        ("gpt-4*-mini", "glob", "gpt-4.1-nano", False),
        (r"my-ft-[0-9]+", "regex", "My-FT-42", True),
        (r"my-ft-[0-9]+", "regex", "my-ft-42-extra", False),  # full match, not search
    ],
)
def test_match_modes(pattern: str, match: str, model: str, expected: bool) -> None:
    assert price(pattern, 1.0, 1.0, match=match).matches(model) is expected


# --- effective dates -------------------------------------------------------------------------


def test_effective_dates_pick_the_price_in_force(bundled: PriceTable) -> None:
    def o3_input(at: date) -> float | None:
        found = bundled.lookup("o3-2025-04-16", at)
        return None if found is None else found.input_per_million

    assert o3_input(date(2025, 4, 15)) is None  # before the first effective date
    assert o3_input(date(2025, 4, 16)) == 10.0  # effective_from is inclusive
    assert o3_input(date(2025, 6, 9)) == 10.0
    assert o3_input(date(2025, 6, 10)) == 2.0  # the June 2025 price cut
    assert o3_input(date(2030, 1, 1)) == 2.0


def test_before_first_date_is_unpriced_not_a_less_specific_model(bundled: PriceTable) -> None:
    # gpt-4o existed before gpt-4o-mini; a mini span dated earlier must not get gpt-4o's price.
    at = date(2024, 7, 17)
    assert bundled.lookup("gpt-4o", at) is not None
    assert bundled.lookup("gpt-4o-mini", at) is None
    assert bundled.price(model="gpt-4o-mini", at=at, input_tokens=10, output_tokens=1) == (None, "unpriced")


def test_lookup_accepts_a_datetime(bundled: PriceTable) -> None:
    moment = datetime(2025, 6, 10, 0, 0, 1, tzinfo=UTC)
    found = bundled.lookup("o3", moment)
    assert found is not None
    assert found.input_per_million == 2.0


def test_entry_order_in_file_does_not_matter() -> None:
    new = price("m", 1.0, 1.0, effective_from=date(2025, 6, 1))
    old = price("m", 4.0, 4.0, effective_from=date(2025, 1, 1))
    table = PriceTable("t", (new, old))
    assert table.lookup("m", date(2025, 3, 1)) == old
    assert table.lookup("m", date(2025, 7, 1)) == new


# --- arithmetic ------------------------------------------------------------------------------


def test_cost_without_cache() -> None:
    p = price("m", 2.0, 8.0)
    assert p.cost(input_tokens=1_000_000, output_tokens=500_000) == 6.0


def test_cached_tokens_are_part_of_input_and_get_the_cached_price() -> None:
    p = price("m", 2.0, 8.0, cached=0.5)
    # 750k uncached * 2.0 + 250k cached * 0.5 + 500k output * 8.0, all per 1M: 1.5 + 0.125 + 4.0
    assert p.cost(input_tokens=1_000_000, output_tokens=500_000, cache_read_input_tokens=250_000) == 5.625


def test_cached_tokens_without_a_cached_price_cost_the_input_price() -> None:
    p = price("m", 2.0, 8.0, cached=None)
    assert p.cost(input_tokens=1_000_000, cache_read_input_tokens=250_000) == 2.0


def test_cache_reads_exceeding_input_mean_input_excludes_them() -> None:
    # Anthropic's API reports input_tokens without cache reads; the inclusive reading would go negative.
    p = price("m", 2.0, 8.0, cached=0.5)
    assert p.cost(input_tokens=250_000, cache_read_input_tokens=1_000_000) == 0.5 + 0.5


def test_negative_counts_count_as_zero() -> None:
    assert price("m", 2.0, 8.0).cost(input_tokens=-5, output_tokens=-5, cache_read_input_tokens=-5) == 0.0


def test_bundled_cost_with_float_prices(bundled: PriceTable) -> None:
    cost, source = bundled.price(
        model="gpt-4o-mini-2024-07-18",
        provider="openai",
        at=DAY,
        input_tokens=1_200,
        output_tokens=300,
        cache_read_input_tokens=200,
    )
    assert cost == pytest.approx((1_000 * 0.15 + 200 * 0.075 + 300 * 0.60) / 1e6, rel=1e-12)
    assert source == bundled.source


def test_price_outcomes(bundled: PriceTable) -> None:
    assert bundled.price(model="gpt-4o", at=DAY, input_tokens=None, output_tokens=None) == (None, "")
    assert bundled.price(model="mystery", at=DAY, input_tokens=None, output_tokens=None) == (None, "")
    assert bundled.price(model="mystery", at=DAY, input_tokens=10, output_tokens=None) == (None, "unpriced")
    assert bundled.price(model="", at=DAY, input_tokens=10, output_tokens=10) == (None, "unpriced")
    # A real zero is a priced zero, not "unpriced".
    assert bundled.price(model="gpt-4o", at=DAY, input_tokens=0, output_tokens=0) == (0.0, bundled.source)
    only_output = bundled.price(model="gpt-4.1", at=DAY, input_tokens=None, output_tokens=1_000_000)
    assert only_output == (8.0, bundled.source)
    only_cached = bundled.price(
        model="gpt-4.1", at=DAY, input_tokens=None, output_tokens=None, cache_read_input_tokens=1_000_000
    )
    assert only_cached == (0.5, bundled.source)


# --- project overrides -----------------------------------------------------------------------


def test_override_wins_and_changes_the_version(bundled: PriceTable) -> None:
    override = price("gpt-4o", 1.0, 4.0, cached=0.25, effective_from=date(2025, 1, 1))
    table = bundled.with_overrides([override], label="acme")
    assert table.version == f"{bundled.version}+acme"
    assert table.source == f"table:{bundled.version}+acme"
    # Wins even over the more specific bundled snapshot entry gpt-4o-2024-08-06.
    assert table.lookup("gpt-4o-2024-08-06", DAY) == override
    cost, source = table.price(model="gpt-4o", at=DAY, input_tokens=1_000_000, output_tokens=1_000_000)
    assert (cost, source) == (5.0, f"table:{bundled.version}+acme")
    # Models the override does not match keep the bundled price.
    assert table.lookup("gpt-4o-mini", DAY) == bundled.lookup("gpt-4o-mini", DAY)
    # The bundled table itself is unchanged.
    assert bundled.lookup("gpt-4o", DAY) != override
    assert bundled.version == raw_bundled()["version"]


def test_override_not_yet_in_force_falls_back_to_the_table(bundled: PriceTable) -> None:
    override = price("gpt-4o", 1.0, 4.0, effective_from=date(2025, 6, 1))
    table = bundled.with_overrides([override], label="acme")
    assert table.lookup("gpt-4o", date(2025, 5, 31)) == bundled.lookup("gpt-4o", date(2025, 5, 31))
    assert table.lookup("gpt-4o", date(2025, 6, 1)) == override


def test_override_can_price_an_unknown_model(bundled: PriceTable) -> None:
    table = bundled.with_overrides([price("llama-3.1-70b", 0.5, 0.5, match="prefix")], label="p1")
    assert table.price(model="llama-3.1-70b-instruct", at=DAY, input_tokens=2_000_000, output_tokens=0) == (
        1.0,
        f"table:{bundled.version}+p1",
    )


def test_overrides_stack_and_replace_same_entries() -> None:
    base = PriceTable("v1", (price("m", 1.0, 1.0),))
    first = base.with_overrides([price("m", 2.0, 2.0), price("n", 3.0, 3.0)], label="a")
    second = first.with_overrides([price("m", 5.0, 5.0)], label="b")
    assert second.version == "v1+a+b"
    assert len(second.overrides) == 2
    found_m, found_n = second.lookup("m", DAY), second.lookup("n", DAY)
    assert found_m is not None
    assert found_m.input_per_million == 5.0
    assert found_n is not None
    assert found_n.input_per_million == 3.0


def test_override_label_required() -> None:
    with pytest.raises(PriceTableError, match="label"):
        PriceTable("v1", ()).with_overrides([], label=" ")


def test_overrides_from_project_json(bundled: PriceTable) -> None:
    entries = [{"pattern": "gpt-4o-mini", "effective_from": "2025-01-01", "input": 0.1, "output": 0.4}]
    table = bundled.with_overrides([ModelPrice.from_dict(e, source="project acme") for e in entries], "acme")
    found = table.lookup("gpt-4o-mini-2024-07-18", DAY)
    assert found is not None
    assert found.input_per_million == 0.1


# --- apply_prices ----------------------------------------------------------------------------


def test_apply_prices_fills_cost_and_source(bundled: PriceTable) -> None:
    record = span(request_model="gpt-4.1", provider="openai", input_tokens=1_000_000, output_tokens=1_000_000)
    [priced] = apply_prices([record], bundled)
    assert (priced.cost_usd, priced.cost_source) == (10.0, bundled.source)
    assert replace(priced, cost_usd=None, cost_source="") == record  # nothing else changed
    assert record.cost_usd is None  # the input is never mutated


def test_apply_prices_leaves_client_cost_alone(bundled: PriceTable) -> None:
    client = span(request_model="gpt-4o", input_tokens=100, output_tokens=10, cost_usd=0.123, cost_source="client")
    [out] = apply_prices([client], bundled)
    assert out is client


@pytest.mark.parametrize(
    "record",
    [
        span(request_model="gpt-4o"),  # no tokens at all
        span(request_model="gpt-4o", input_tokens=5, cost_usd=0.5),  # a cost without a source
        span(request_model="mystery", input_tokens=5, cost_source="unpriced"),  # already decided
        span(request_model="gpt-4o", input_tokens=5, cost_usd=1.0, cost_source="table:old"),
    ],
)
def test_apply_prices_skips_records_with_nothing_to_price(bundled: PriceTable, record: SpanRecord) -> None:
    [out] = apply_prices([record], bundled)
    assert out is record


def test_apply_prices_marks_unknown_models_unpriced(bundled: PriceTable) -> None:
    [out] = apply_prices([span(request_model="mystery-llm", input_tokens=10, output_tokens=5)], bundled)
    assert out.cost_usd is None
    assert out.cost_source == "unpriced"


def test_apply_prices_prefers_the_response_model(bundled: PriceTable) -> None:
    record = span(
        request_model="gpt-4o",
        response_model="gpt-4o-mini-2024-07-18",
        input_tokens=1_000_000,
        output_tokens=0,
    )
    [out] = apply_prices([record], bundled)
    assert out.cost_usd == 0.15


def test_apply_prices_does_not_double_count_reasoning(bundled: PriceTable) -> None:
    plain = span(request_model="o4-mini", input_tokens=0, output_tokens=1_000_000)
    reasoning = replace(plain, reasoning_output_tokens=900_000)
    [a, b] = apply_prices([plain, reasoning], bundled)
    assert a.cost_usd == b.cost_usd == 4.4


def test_apply_prices_uses_the_utc_start_day(bundled: PriceTable) -> None:
    before = span(request_model="o3", input_tokens=1_000_000, start_time_ns=ns(date(2025, 6, 9), 23, 59, 59))
    after = span(request_model="o3", input_tokens=1_000_000, start_time_ns=ns(date(2025, 6, 10), 0, 0, 0))
    [a, b] = apply_prices([before, after], bundled)
    assert (a.cost_usd, b.cost_usd) == (10.0, 2.0)


def test_apply_prices_keeps_order_and_mixes_outcomes(bundled: PriceTable) -> None:
    batch = [
        span(span_id=f"{i:016x}", request_model=model, input_tokens=tokens, output_tokens=tokens)
        for i, (model, tokens) in enumerate(
            [("gpt-4o", 1_000), ("mystery", 1_000), ("claude-3-5-haiku-20241022", 1_000), ("gpt-4o", None)] * 50
        )
    ]
    out = apply_prices(batch, bundled)
    assert [r.span_id for r in out] == [r.span_id for r in batch]
    assert [r.cost_source for r in out[:4]] == [bundled.source, "unpriced", bundled.source, ""]
    assert out[0].cost_usd == pytest.approx((1_000 * 2.5 + 1_000 * 10.0) / 1e6)
    assert out[2].cost_usd == pytest.approx((1_000 * 0.8 + 1_000 * 4.0) / 1e6)
    assert apply_prices([], bundled) == []


def test_lookups_are_memoised_per_model_provider_and_day(bundled: PriceTable) -> None:
    table = bundled.with_overrides([], label="fresh")  # a fresh instance, so a fresh cache
    first = table.lookup("gpt-4o-mini-2024-07-18", DAY, provider="openai")
    assert table.lookup("gpt-4o-mini-2024-07-18", DAY, provider="openai") is first
    assert table.lookup("gpt-4o-mini-2024-07-18", date(2024, 7, 1)) is None  # another day, another answer


# --- bad price files -------------------------------------------------------------------------


VALID_ENTRY = {"pattern": "m", "effective_from": "2025-01-01", "input": 1.0, "output": 2.0}


def table_with(**entry_changes: Any) -> dict[str, Any]:
    entry = {**VALID_ENTRY, **entry_changes}
    return {"version": "v1", "models": [{k: v for k, v in entry.items() if v is not ...}]}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "invalid JSON at line 1"),
        ("[]", "top level must be an object"),
        (json.dumps({"models": []}), "'version' is required"),
        (json.dumps({"version": "", "models": []}), "'version' must be a non-empty string"),
        (json.dumps({"version": "v1"}), "'models' must be a list"),
        (json.dumps({"version": "v1", "models": [], "extra": 1}), "unknown top-level key(s) 'extra'"),
        (json.dumps({"version": "v1", "currency": "EUR", "models": []}), "only currency 'USD'"),
        (json.dumps({"version": "v1", "unit": "per_1k_tokens", "models": []}), "only unit 'per_1m_tokens'"),
        (json.dumps({"version": "v1", "models": ["gpt-4o"]}), "must be an object"),
        (json.dumps(table_with(input=...)), "models[0]: entry 'm': 'input' is required"),
        (json.dumps(table_with(pattern=...)), "'pattern' is required"),
        (json.dumps(table_with(pattern="  ")), "'pattern' must be a non-empty string"),
        (json.dumps(table_with(input=-1)), "'input' must be a non-negative number, got -1"),
        (json.dumps(table_with(output="2.0")), "'output' must be a non-negative number"),
        (json.dumps(table_with(input=True)), "'input' must be a non-negative number, got True"),
        (json.dumps(table_with(cached_input=-0.5)), "'cached_input' must be a non-negative number"),
        (json.dumps(table_with(effective_from="2025-13-01")), "'effective_from' must be an ISO date"),
        (json.dumps(table_with(effective_from=20250101)), "'effective_from' must be an ISO date"),
        (json.dumps(table_with(match="fuzzy")), "match must be one of"),
        (json.dumps(table_with(match="regex", pattern="gpt-(")), "invalid regex"),
        (json.dumps(table_with(provider=7)), "'provider' must be a string"),
        (json.dumps(table_with(cached_input_price=0.5)), "unknown key(s) 'cached_input_price'"),
        (
            json.dumps({"version": "v1", "models": [VALID_ENTRY, VALID_ENTRY]}),
            "duplicate entry for pattern 'm'",
        ),
        ("", "invalid JSON"),
    ],
)
def test_bad_price_file_gives_a_clear_error(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(PriceTableError) as caught:
        PriceTable.from_file(path)
    assert isinstance(caught.value, ValueError)
    message = str(caught.value)
    assert message.startswith(str(path)), message  # names the file
    assert problem in message, message


def test_missing_price_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(ValueError, match=r"nope\.json: cannot read price file"):
        PriceTable.from_file(missing)


def test_valid_user_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"version": "corp-7", "models": [VALID_ENTRY]}), encoding="utf-8")
    table = PriceTable.from_file(str(path))
    assert table.version == "corp-7"
    assert table.price(model="m-latest", at=DAY, input_tokens=1_000_000, output_tokens=0) == (
        1.0,
        "table:corp-7",
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"input_per_million": -1.0},
        {"output_per_million": float("nan")},
        {"cached_input_per_million": float("inf")},
        {"effective_from": datetime(2025, 1, 1, tzinfo=UTC)},
        {"match": "fuzzy"},
        {"pattern": ""},
    ],
)
def test_model_price_validates_on_construction(kwargs: dict[str, Any]) -> None:
    fields: dict[str, Any] = {
        "pattern": "m",
        "effective_from": date(2025, 1, 1),
        "input_per_million": 1.0,
        "output_per_million": 1.0,
    }
    with pytest.raises(PriceTableError):
        ModelPrice(**{**fields, **kwargs})


def test_duplicate_entries_in_a_table_are_rejected() -> None:
    with pytest.raises(PriceTableError, match="duplicate"):
        PriceTable("v1", (price("m", 1.0, 1.0), price("m", 2.0, 2.0)))
