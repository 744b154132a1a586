"""Model-name normalisation and the pattern match modes of the price table.

The rules are described in :mod:`loopwise_collector.pricing.table`; this module holds the pieces
that only look at names: :func:`normalize_model`, what a ``versioned`` pattern may be followed by,
and how specific a pattern is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

MATCH_MODES: Final[tuple[str, ...]] = ("exact", "versioned", "prefix", "glob", "regex")
"""The accepted values of ``ModelPrice.match``."""

# Tie-break rank of each mode when two patterns have the same literal length.
MODE_RANK: Final[Mapping[str, int]] = {"exact": 4, "versioned": 3, "prefix": 2, "glob": 1, "regex": 0}
# What may follow a ``versioned`` pattern: dates (2024-08-06, 20241022, 08-2024), build numbers
# (0613, 001, 2411), ``latest`` and ``v2``-style revisions. One- and two-digit parts are not
# allowed on their own: in ``claude-opus-4-1`` or ``claude-sonnet-4-5`` they are a different model.
VERSION_SUFFIX: Final = re.compile(r"(?:-(?:\d{4}-\d{2}-\d{2}|\d{2}-\d{4}|\d{3,8}|latest|v\d+(?:\.\d+)?))+")
# Bedrock model ids: optional cross-region inference prefix, then the vendor.
_BEDROCK_PREFIX: Final = re.compile(
    r"^(?:(?:us|eu|apac|us-gov|global|jp|au|ca)\.)?"
    r"(?:anthropic|meta|mistral|amazon|cohere|ai21|deepseek|openai|writer|qwen)\."
)
# Bedrock's ``:0`` / ``:0:200k`` revision suffix. Only a digit after the colon, so OpenRouter's
# ``:free`` or a fine-tune's ``ft:`` id never collapse onto a list-priced base model.
_DEPLOYMENT_SUFFIX: Final = re.compile(r":\d.*$")
_DOTTED_VERSION: Final = re.compile(r"(?<=\d)\.(?=\d)")


def normalize_model(model: str) -> str:
    """The model name as price patterns see it.

    Example:
        >>> normalize_model("us.anthropic.claude-3-5-sonnet-20241022-v2:0")
        'claude-3-5-sonnet-20241022-v2'
        >>> normalize_model("OpenAI/GPT-4o"), normalize_model("anthropic/claude-3.5-sonnet")
        ('gpt-4o', 'claude-3-5-sonnet')
        >>> normalize_model("claude-3-5-sonnet-v2@20241022")
        'claude-3-5-sonnet-v2-20241022'
    """
    name = model.strip().lower()
    # OpenRouter / LiteLLM ``vendor/model``, Gemini ``models/model``, Vertex resource paths.
    name = name.rsplit("/", 1)[-1]
    name = _BEDROCK_PREFIX.sub("", name, count=1)
    name = _DEPLOYMENT_SUFFIX.sub("", name, count=1)
    # Vertex AI spells snapshots ``claude-3-5-sonnet-v2@20241022``.
    name = name.replace("@", "-")
    if name.startswith("claude"):
        # OpenRouter writes ``claude-3.5-sonnet``; Anthropic's own ids use hyphens throughout.
        name = _DOTTED_VERSION.sub("-", name)
    elif name.startswith("gpt-35-"):
        name = "gpt-3.5-" + name[len("gpt-35-") :]  # Azure OpenAI model names drop the dot
    return name


def literal_length(pattern: str, match: str) -> int:
    """How much literal text ``pattern`` has: its length, less glob metacharacters.

    Example:
        >>> literal_length("gpt-4o*", "glob"), literal_length("gpt-4o*", "prefix")
        (6, 7)
    """
    if match == "glob":
        return sum(ch not in "*?[]" for ch in pattern)
    return len(pattern)


def provider_rank(entry_provider: str, span_provider: str) -> int:
    """Tie-break between equally specific patterns: own provider 2, provider-less 1, another 0.

    Example:
        >>> provider_rank("openai", "openai"), provider_rank("", "openai"), provider_rank("azure", "openai")
        (2, 1, 0)
    """
    if not entry_provider:
        return 1
    return 2 if entry_provider == span_provider else 0
