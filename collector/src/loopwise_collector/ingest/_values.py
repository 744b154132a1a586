"""OTLP ``AnyValue`` to plain Python values, and those values to the strings the store keeps.

Both wire encodings meet here: the protobuf decoder and the JSON decoder each turn an
``AnyValue`` into a :data:`Value` (``str``, ``bool``, ``int``, ``float``, ``bytes``, ``list``,
``dict`` or ``None`` for an empty value), and everything downstream works on those, so the
attribute mapping is written once.

Example:
    >>> value_to_str(True), value_to_str([1, "a"]), value_to_str("plain")
    ('true', '[1,"a"]', 'plain')
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

Value: TypeAlias = "str | bool | int | float | bytes | list[Value] | dict[str, Value] | None"


def _json_default(obj: object) -> object:
    # json.dumps calls this only for types it cannot encode itself; bytes are the one such type
    # a decoded AnyValue can hold, and OTLP/JSON spells bytes as base64 too.
    if isinstance(obj, bytes | bytearray):
        return base64.b64encode(obj).decode("ascii")
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


# Compact separators keep stored JSON small; ensure_ascii=False keeps prompts in other scripts
# readable (and shorter). JSONEncoder.encode builds a fresh C encoder on every call, which costs
# about 1 µs, more than encoding a short list; building the C encoder once saves that per value.
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_json_default)
# c_make_encoder is json's own accelerator hook: None on interpreters without the C module, and
# missing from the type stubs, hence getattr.
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_c_encoder = (
    _c_make_encoder(
        None,  # no cycle check: decoded values are trees
        _json_default,
        json.encoder.encode_basestring,
        None,
        ":",
        ",",
        False,
        False,
        True,
    )
    if _c_make_encoder is not None
    else None
)


def dumps(obj: object) -> str:
    """Compact JSON text, non-ASCII kept as-is, bytes as base64.

    Example:
        >>> dumps({"a": [1, "é", b"hi"]})
        '{"a":[1,"é","aGk="]}'
    """
    if _c_encoder is None:  # an interpreter without the json C accelerator
        return _encoder.encode(obj)
    return "".join(_c_encoder(obj, 0))


def value_to_str(value: Value) -> str:
    """Render a decoded value as an attribute string: strings as-is, everything else as JSON.

    Bytes become their base64 text and an empty value becomes ``""``.

    Example:
        >>> value_to_str(3), value_to_str(1.5), value_to_str(b"hi"), value_to_str({"k": None})
        ('3', '1.5', 'aGk=', '{"k":null}')
    """
    t = type(value)
    if t is str:
        return value  # type: ignore[return-value]
    # Scalars skip the encoder; repr of an int or a finite float is exactly its JSON text.
    if t is bool:
        return "true" if value else "false"
    if t is int or (t is float and math.isfinite(value)):  # type: ignore[arg-type]
        return repr(value)
    if value is None:
        return ""
    if t is bytes:
        return base64.b64encode(value).decode("ascii")  # type: ignore[arg-type]
    return dumps(value)


def attributes_to_str(raw: Mapping[str, Value]) -> dict[str, str]:
    """Render a whole decoded attribute map as ``dict[str, str]``.

    Example:
        >>> attributes_to_str({"a": "x", "n": 2, "ok": False})
        {'a': 'x', 'n': '2', 'ok': 'false'}
    """
    return {k: v if type(v) is str else value_to_str(v) for k, v in raw.items()}


# --- protobuf ------------------------------------------------------------------------------------


def pb_value(v: AnyValue) -> Value:
    """Decode a protobuf ``AnyValue``.

    Example:
        >>> pb_value(AnyValue(int_value=7)), pb_value(AnyValue(array_value={"values": [{"int_value": 1}]}))
        (7, [1])
        >>> pb_value(AnyValue()) is None
        True
    """
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [s if (s := x.string_value) else pb_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return pb_attributes(v.kvlist_value.values)
    return getattr(v, kind)  # type: ignore[no-any-return]  # the scalar the oneof holds


def pb_attributes(kvs: Iterable[KeyValue]) -> dict[str, Value]:
    """Decode repeated ``KeyValue``s into a dict; a repeated key keeps its last value.

    Example:
        >>> pb_attributes([KeyValue(key="a", value=AnyValue(string_value="x"))])
        {'a': 'x'}
    """
    out: dict[str, Value] = {}
    for kv in kvs:
        v = kv.value
        # Most attributes are strings, and a set oneof member hides the others, so a non-empty
        # string_value is the answer without the WhichOneof call; "" still needs the slow path.
        s = v.string_value
        out[kv.key] = s if s else pb_value(v)
    return out


# --- OTLP/JSON -----------------------------------------------------------------------------------


def _json_str(x: Any) -> Value:
    if type(x) is not str:
        raise ValueError(f"expected a string value, got {type(x).__name__}")
    return x


def _json_bool(x: Any) -> Value:
    if type(x) is not bool:
        raise ValueError(f"expected a boolean value, got {type(x).__name__}")
    return x


def _json_int(x: Any) -> Value:
    # OTLP/JSON sends int64 as a decimal string; plain numbers are common and accepted too.
    if type(x) is int:
        return x
    if type(x) is str or (type(x) is float and x.is_integer()):
        return int(x)
    raise ValueError(f"expected an integer value, got {x!r}")


def _json_double(x: Any) -> Value:
    # Strings carry the non-finite values ("NaN", "Infinity") that JSON numbers cannot.
    if type(x) is float or type(x) is int or type(x) is str:
        return float(x)
    raise ValueError(f"expected a double value, got {x!r}")


def _json_bytes(x: Any) -> Value:
    if type(x) is not str:
        raise ValueError("expected base64 text for a bytes value")
    return base64.b64decode(x, validate=True)


def _json_array(x: Any) -> Value:
    return [json_value(v) for v in (x.get("values") or ())]


def _json_kvlist(x: Any) -> Value:
    return json_attributes(x.get("values"))


# OTLP/JSON uses lowerCamelCase; protobuf's JSON mapping also accepts the proto field names, so
# snake_case is accepted as well, at the cost of a few more dict entries and no extra lookups.
_JSON_VALUE_DECODERS = {
    "stringValue": _json_str,
    "intValue": _json_int,
    "doubleValue": _json_double,
    "boolValue": _json_bool,
    "arrayValue": _json_array,
    "kvlistValue": _json_kvlist,
    "bytesValue": _json_bytes,
    "string_value": _json_str,
    "int_value": _json_int,
    "double_value": _json_double,
    "bool_value": _json_bool,
    "array_value": _json_array,
    "kvlist_value": _json_kvlist,
    "bytes_value": _json_bytes,
}


def json_value(v: Any) -> Value:
    """Decode an OTLP/JSON ``AnyValue`` object; raises ``ValueError`` on a wrong shape.

    Example:
        >>> json_value({"intValue": "42"}), json_value({"arrayValue": {"values": [{"boolValue": True}]}})
        (42, [True])
    """
    s = v.get("stringValue")
    if type(s) is str:
        return s
    for key, x in v.items():
        decode = _JSON_VALUE_DECODERS.get(key)
        if decode is not None and x is not None:
            return decode(x)
    return None


def json_attributes(kvs: Any) -> dict[str, Value]:
    """Decode an OTLP/JSON list of ``{"key", "value"}`` objects; ``None`` means no attributes.

    Example:
        >>> json_attributes([{"key": "a", "value": {"stringValue": "x"}}, {"key": "b", "value": {}}])
        {'a': 'x', 'b': None}
    """
    if not kvs:
        return {}
    if type(kvs) is not list:
        raise ValueError("attributes must be a list of key/value objects")
    out: dict[str, Value] = {}
    for kv in kvs:
        key = kv["key"]
        if type(key) is not str:
            raise ValueError("attribute key must be a string")
        v = kv.get("value")
        out[key] = None if v is None else json_value(v)
    return out
