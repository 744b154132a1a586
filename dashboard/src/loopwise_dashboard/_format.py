"""Readable numbers: durations, dollars, token counts and rates, one spelling everywhere."""

from __future__ import annotations

from datetime import datetime

DASH = "—"


def fmt_ms(ms: float | None) -> str:
    """A duration in milliseconds, in ms below a second and in s above.

    Example:
        >>> fmt_ms(0.4367), fmt_ms(12.345), fmt_ms(812.4), fmt_ms(1234.5), fmt_ms(None)
        ('0.437 ms', '12.3 ms', '812 ms', '1.23 s', '—')
    """
    if ms is None:
        return DASH
    if ms < 1:
        return f"{ms:.3f} ms"
    if ms < 100:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.2f} s"


def fmt_usd(usd: float | None) -> str:
    """A cost in US dollars with enough digits to tell small costs apart.

    Example:
        >>> fmt_usd(0.039249), fmt_usd(0.00000032), fmt_usd(12.5), fmt_usd(None), fmt_usd(0)
        ('$0.0392', '$0.00000032', '$12.50', '—', '$0.00')
    """
    if usd is None:
        return DASH
    if usd == 0 or abs(usd) >= 1:
        return f"${usd:,.2f}"
    # Three significant digits: LLM calls often cost fractions of a cent.
    return f"${usd:.3g}" if abs(usd) >= 1e-4 else f"${usd:.8f}".rstrip("0")


def fmt_int(n: int | float | None) -> str:
    """A count with thousands separators, abbreviated from a million on.

    Example:
        >>> fmt_int(14218), fmt_int(2_500_000), fmt_int(None)
        ('14,218', '2.50M', '—')
    """
    if n is None:
        return DASH
    if abs(n) >= 1_000_000:
        return f"{n / 1_000_000:.2f}M"
    return f"{int(n):,}"


def fmt_pct(rate: float | None) -> str:
    """A 0 to 1 rate as a percentage.

    Example:
        >>> fmt_pct(0.0825), fmt_pct(0), fmt_pct(None)
        ('8.25%', '0%', '—')
    """
    if rate is None:
        return DASH
    if rate == 0:
        return "0%"
    return f"{rate * 100:.3g}%"


def fmt_time(value: datetime) -> str:
    """A UTC timestamp to the second, as the tables show it.

    Example:
        >>> from datetime import UTC
        >>> fmt_time(datetime(2026, 11, 22, 8, 2, 3, 426622, tzinfo=UTC))
        '2026-11-22 08:02:03'
    """
    return value.strftime("%Y-%m-%d %H:%M:%S")
