"""Span attributes to ``spans`` columns: GenAI conventions first, then legacy and vendor spellings.

Each column lists the attribute keys that may fill it, best first; the best key with a usable
value wins. Keys are dispatched through one dict, so a span costs one lookup per attribute
however many spellings are known. An attribute value ends up in exactly one place, so nothing
is stored twice and nothing is lost:

- the value that fills a column is left out of ``attributes``: the column already holds it, and
  the big ones (messages, ``sc.INPUT_VALUE``) would otherwise double the row;
- a value that loses to a better spelling (``sc.GEN_AI_SYSTEM`` next to ``sc.GEN_AI_PROVIDER_NAME``), or
  that cannot be used (a negative token count, a non-numeric cost), stays in ``attributes`` as sent;
- ``sc.OPENINFERENCE_SPAN_KIND`` is the one exception: it maps onto ``span_type`` lossily (``CHAIN``
  becomes ``span``), so it is kept as well; it is a few bytes.

Example:
    >>> from loopwise import semconv as sc
    >>> cols = map_span_attributes({sc.GEN_AI_SYSTEM: "openai", sc.LEGACY_GEN_AI_USAGE_PROMPT_TOKENS: "12",
    ...                             "custom": 1})
    >>> cols["provider"], cols["input_tokens"], cols["attributes"]
    ('openai', 12, {'custom': '1'})
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any, TypedDict, cast

from loopwise import semconv as sc
from loopwise_collector.ingest._values import Value, dumps, value_to_str


class SpanColumns(TypedDict, total=False):
    """The ``SpanRecord`` fields that come from span attributes; absent keys keep their defaults."""

    span_type: str
    operation: str
    provider: str
    request_model: str
    response_model: str
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int
    reasoning_output_tokens: int
    cost_usd: float
    cost_source: str
    input: str
    output: str
    system_instructions: str
    user_id: str
    session_id: str
    tags: tuple[str, ...]
    variant: str
    prompt_name: str
    prompt_version: str
    attributes: dict[str, str]


# Token columns are UInt64; a count past int64 is garbage, not usage, and would fail the insert.
_COUNT_LIMIT = 1 << 63


def as_count(value: Value) -> int | None:
    """A token count from an int, an integral float or a numeric string; ``None`` if unusable.

    Example:
        >>> as_count(12), as_count(12.0), as_count(" 7 "), as_count(-1), as_count("n/a"), as_count(True)
        (12, 12, 7, None, None, None)
        >>> as_count("1e30") is None
        True
    """
    if isinstance(value, bool):
        return None  # an int subclass, but never a count
    if isinstance(value, int):
        n = value
    elif isinstance(value, float | str):
        try:
            x = float(value)
        except ValueError:
            return None
        if not x.is_integer():  # also rejects NaN and the infinities
            return None
        # int() straight from the text keeps counts above 2**53 exact.
        n = int(value) if isinstance(value, str) and value.strip().lstrip("+-").isdecimal() else int(x)
    else:
        return None  # bytes, arrays, maps: not a count
    return n if 0 <= n < _COUNT_LIMIT else None


def as_cost(value: Value) -> float | None:
    """A non-negative, finite USD amount from a number or a numeric string; ``None`` if unusable.

    Example:
        >>> as_cost(0.0021), as_cost("0.5"), as_cost(-1.0), as_cost("free")
        (0.0021, 0.5, None, None)
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        x = float(value)
    except ValueError:
        return None
    return x if x >= 0.0 and math.isfinite(x) else None


def as_tags(value: Value) -> tuple[str, ...]:
    """Tags from a string array, a JSON-array string or a comma-separated string; de-duplicated.

    Example:
        >>> as_tags(["a", "b", "a"]), as_tags('["x", "y"]'), as_tags("p, q,,")
        (('a', 'b'), ('x', 'y'), ('p', 'q'))
    """
    items: Any = value
    if type(value) is str:
        text = value.strip()
        items = None
        if text.startswith("["):
            try:
                items = json.loads(text)
            except ValueError:
                items = None
        if type(items) is not list:
            items = text.split(",")
    elif type(value) is not list:
        return ()
    tags = []
    for t in items:
        t = (t if type(t) is str else value_to_str(t)).strip()
        if t:
            tags.append(t)
    return tuple(dict.fromkeys(tags))


def _text(value: Value) -> str | None:
    # A string as-is; any other value as its JSON text (a numeric user id, a structured
    # system_instructions or messages array). Empty values fill nothing.
    if type(value) is str:
        return value or None
    return value_to_str(value) or None


def _tags(value: Value) -> tuple[str, ...] | None:
    return as_tags(value) or None


# A converter returns the column value, or None when the attribute cannot fill the column.
_Converter = Callable[[Value], Any]

# column, converter, candidate keys best first
_COLUMNS: tuple[tuple[str, _Converter, tuple[str, ...]], ...] = (
    ("operation", _text, (sc.GEN_AI_OPERATION_NAME,)),
    ("provider", _text, (sc.GEN_AI_PROVIDER_NAME, sc.GEN_AI_SYSTEM, sc.LLM_PROVIDER, sc.LLM_SYSTEM)),
    ("request_model", _text, (sc.GEN_AI_REQUEST_MODEL, sc.LLM_MODEL_NAME)),
    ("response_model", _text, (sc.GEN_AI_RESPONSE_MODEL,)),
    ("system_instructions", _text, (sc.GEN_AI_SYSTEM_INSTRUCTIONS,)),
    ("user_id", _text, (sc.LOOPWISE_USER_ID, sc.OPENINFERENCE_USER_ID)),
    ("session_id", _text, (sc.LOOPWISE_SESSION_ID, sc.OPENINFERENCE_SESSION_ID)),
    ("variant", _text, (sc.LOOPWISE_VARIANT,)),
    ("prompt_name", _text, (sc.LOOPWISE_PROMPT_NAME,)),
    ("prompt_version", _text, (sc.LOOPWISE_PROMPT_VERSION,)),
    ("span_type", _text, (sc.LOOPWISE_SPAN_TYPE,)),
    ("tags", _tags, (sc.LOOPWISE_TAGS, sc.OPENINFERENCE_TAGS)),
    ("cost_usd", as_cost, (sc.LOOPWISE_COST_USD,)),
    (
        "input_tokens",
        as_count,
        (sc.GEN_AI_USAGE_INPUT_TOKENS, sc.LEGACY_GEN_AI_USAGE_PROMPT_TOKENS, sc.LLM_TOKEN_COUNT_PROMPT),
    ),
    (
        "output_tokens",
        as_count,
        (
            sc.GEN_AI_USAGE_OUTPUT_TOKENS,
            sc.LEGACY_GEN_AI_USAGE_COMPLETION_TOKENS,
            sc.LLM_TOKEN_COUNT_COMPLETION,
        ),
    ),
    (
        "cache_read_input_tokens",
        as_count,
        (
            sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
            sc.LEGACY_GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
            sc.LLM_TOKEN_COUNT_CACHE_READ,
        ),
    ),
    (
        "reasoning_output_tokens",
        as_count,
        (sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, sc.LLM_TOKEN_COUNT_REASONING),
    ),
)

# Message columns rank their sources: the current JSON attribute, then each indexed spelling
# ("<prefix><N>.<subkey>", assembled after the pass), then the plain-text values.
_MESSAGE_COLUMNS: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "input",
        sc.GEN_AI_INPUT_MESSAGES,
        (sc.LEGACY_GEN_AI_PROMPT_PREFIX, sc.LLM_INPUT_MESSAGES_PREFIX),
        (sc.INPUT_VALUE, sc.LOOPWISE_INPUT),
    ),
    (
        "output",
        sc.GEN_AI_OUTPUT_MESSAGES,
        (sc.LEGACY_GEN_AI_COMPLETION_PREFIX, sc.LLM_OUTPUT_MESSAGES_PREFIX),
        (sc.OUTPUT_VALUE, sc.LOOPWISE_OUTPUT),
    ),
)
_INDEXED_PREFIXES = tuple(p for _, _, prefixes, _ in _MESSAGE_COLUMNS for p in prefixes)
_OPENINFERENCE_PREFIXES = (sc.LLM_INPUT_MESSAGES_PREFIX, sc.LLM_OUTPUT_MESSAGES_PREFIX)


def _dispatch_table() -> dict[str, tuple[str, int, _Converter]]:
    table: dict[str, tuple[str, int, _Converter]] = {}
    for column, convert, keys in _COLUMNS:
        for rank, key in enumerate(keys):
            table[key] = (column, rank, convert)
    for column, modern, prefixes, values in _MESSAGE_COLUMNS:
        table[modern] = (column, 0, _text)
        for rank, key in enumerate(values, start=1 + len(prefixes)):
            table[key] = (column, rank, _text)
    return table


# attribute key -> (column, rank: lower wins, converter)
_DISPATCH = _dispatch_table()
_NO_RANK = 1 << 30

_OPENINFERENCE_SPAN_TYPES = {
    "LLM": "llm",
    "TOOL": "tool",
    "RETRIEVER": "retrieval",
    "RERANKER": "retrieval",
    "EMBEDDING": "embedding",
    "AGENT": "agent",
    "CHAIN": "span",
}
# Values (not keys) of sc.GEN_AI_OPERATION_NAME that say what kind of span this is.
_OPERATION_SPAN_TYPES = {
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "embeddings": "embedding",
    "execute_tool": "tool",
    "invoke_agent": "agent",
}


def _nest(flat: dict[str, Value]) -> dict[str, Any] | list[Any] | None:
    """``{"tool_calls.0.name": x}`` to ``{"tool_calls": [{"name": x}]}``; ``None`` on a conflict.

    A conflict is a key that is both a leaf and a branch (``a`` and ``a.b``); the caller then
    keeps the flat keys, which lose nothing.
    """
    root: dict[str, Any] = {}
    for path, value in flat.items():
        *branches, leaf = path.split(".")
        node = root
        for part in branches:
            child = node.setdefault(part, {})
            if type(child) is not dict:
                return None
            node = child
        if leaf in node:
            return None
        node[leaf] = value
    return _listify(root)


def _listify(node: dict[str, Any]) -> dict[str, Any] | list[Any]:
    # Branches whose keys are all indexes were arrays on the sender's side.
    for k, v in node.items():
        if type(v) is dict:
            node[k] = _listify(v)
    if node and all(k.isdecimal() for k in node):
        return [node[k] for k in sorted(node, key=int)]
    return node


def _assemble_indexed(raw: Mapping[str, Value], prefix: str, keys: list[str]) -> tuple[str, list[str]]:
    """Indexed message attributes under ``prefix`` as a JSON list, and the keys it used."""
    messages: dict[int, dict[str, Value]] = {}
    used: list[str] = []
    openinference = prefix in _OPENINFERENCE_PREFIXES
    start = len(prefix)
    for key in keys:
        index, _, sub = key[start:].partition(".")
        if not sub or not index.isdecimal():
            continue  # a non-indexed key under the prefix is not a message part: it stays an attribute
        # OpenInference nests each message one level deeper: <prefix><N>.message.role.
        if openinference and sub.startswith(sc.OPENINFERENCE_MESSAGE_PREFIX):
            sub = sub[len(sc.OPENINFERENCE_MESSAGE_PREFIX) :]
        messages.setdefault(int(index), {})[sub] = raw[key]
        used.append(key)
    if not messages:
        return "", used
    return dumps([_nest(m) or m for _, m in sorted(messages.items())]), used


def map_span_attributes(raw: Mapping[str, Value]) -> SpanColumns:
    """Map decoded span attributes onto ``SpanRecord`` columns; ``raw`` is left as it is.

    The result always holds ``attributes`` (what no column took, as strings); other keys are
    present only when an attribute supplied them.

    Example:
        >>> from loopwise import semconv as sc
        >>> cols = map_span_attributes({sc.GEN_AI_OPERATION_NAME: "chat", sc.LOOPWISE_TAGS: ["beta"]})
        >>> cols["span_type"], cols["tags"], cols["attributes"]
        ('llm', ('beta',), {})
    """
    cols: dict[str, Any] = {}
    winners: dict[str, str] = {}  # column -> the key whose value it holds
    attributes: dict[str, str] = {}
    dispatch = _DISPATCH
    for key, v in raw.items():
        spec = dispatch.get(key)
        if spec is not None:
            column, rank, convert = spec
            c = convert(v)
            if c is not None:
                won = winners.get(column)
                if won is None or rank < dispatch[won][1]:
                    if won is not None:  # the better spelling came later: the earlier one is kept raw
                        attributes[won] = value_to_str(raw[won])
                    winners[column] = key
                    cols[column] = c
                    continue
        attributes[key] = v if type(v) is str else value_to_str(v)

    # Indexed messages are assembled only when no current-convention attribute filled the column,
    # so spans on the current conventions never pay for the prefix scan.
    indexed: list[str] | None = None
    for column, _, prefixes, _ in _MESSAGE_COLUMNS:
        won = winners.get(column)
        won_rank = _NO_RANK if won is None else dispatch[won][1]
        if won_rank == 0:
            continue
        if indexed is None:
            indexed = [k for k in attributes if k.startswith(_INDEXED_PREFIXES)]
        if not indexed:
            break
        for rank, prefix in enumerate(prefixes, start=1):
            if won_rank < rank:
                break
            text, used = _assemble_indexed(raw, prefix, [k for k in indexed if k.startswith(prefix)])
            if text:
                for key in used:
                    del attributes[key]
                if won is not None:
                    attributes[won] = value_to_str(raw[won])
                cols[column] = text
                break

    if "cost_usd" in cols:
        cols["cost_source"] = "client"
    if "span_type" not in cols:
        kind = raw.get(sc.OPENINFERENCE_SPAN_KIND)
        if type(kind) is str and kind:
            cols["span_type"] = _OPENINFERENCE_SPAN_TYPES.get(kind.upper(), "span")
        else:
            span_type = _OPERATION_SPAN_TYPES.get(cols.get("operation", ""))
            if span_type:
                cols["span_type"] = span_type
    cols["attributes"] = attributes
    return cast(SpanColumns, cols)
