"""Server-side cost pricing for spans that report tokens but no client-side cost.

See :mod:`loopwise_collector.pricing.table` for the data-file format and the matching rules.

Example:
    >>> from datetime import date
    >>> PriceTable.bundled().lookup("openai/gpt-4o-mini-2024-07-18", date(2025, 1, 1)).pattern
    'gpt-4o-mini'
"""

from loopwise_collector.pricing._file import PriceTableError
from loopwise_collector.pricing._names import MATCH_MODES, normalize_model
from loopwise_collector.pricing.table import (
    SOURCE_CLIENT,
    SOURCE_TABLE_PREFIX,
    SOURCE_UNPRICED,
    ModelPrice,
    PriceTable,
    apply_prices,
)

__all__ = [
    "MATCH_MODES",
    "SOURCE_CLIENT",
    "SOURCE_TABLE_PREFIX",
    "SOURCE_UNPRICED",
    "ModelPrice",
    "PriceTable",
    "PriceTableError",
    "apply_prices",
    "normalize_model",
]
