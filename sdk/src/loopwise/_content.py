"""Captured content: a cheap snapshot on the app's thread, serialising on the export thread.

The app's thread only copies containers (so a list the app mutates after the call is recorded
as it was) and keeps references to everything else. Turning values into JSON, redacting and
truncating happen later, on the export thread. Nothing here raises: a value that cannot be
serialised becomes its ``repr``, and one whose ``repr`` fails becomes a placeholder.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# Containers are copied up to these bounds on the app's thread; past them the copy says how
# much it left out, so a 1M-element list costs the app the same as a 1,000-element one.
_MAX_ITEMS = 1000
_MAX_DEPTH = 8
_ATOMS = (str, int, float, bool, type(None), bytes)


class Elided:
    """Marks what the snapshot left out of a container."""

    __slots__ = ("count",)

    def __init__(self, count: int) -> None:
        self.count = count


def snapshot(value: Any, depth: int = 0) -> Any:
    """A copy of ``value``'s containers, bounded in size and depth; leaves are kept by reference.

    Example:
        >>> args = {"q": "hi", "docs": ["a", "b"]}
        >>> snap = snapshot(args)
        >>> args["docs"].append("c")
        >>> snap
        {'q': 'hi', 'docs': ['a', 'b']}
    """
    t = type(value)
    if t in _ATOMS:
        return value
    if depth >= _MAX_DEPTH:
        return value  # kept by reference; serialised later, with repr as the fallback
    try:
        if t is dict:
            out: dict[Any, Any] = {}
            for i, (k, v) in enumerate(value.items()):
                if i == _MAX_ITEMS:
                    out["..."] = Elided(len(value) - _MAX_ITEMS)
                    break
                out[k] = snapshot(v, depth + 1)
            return out
        if t is list or t is tuple:
            items = [snapshot(v, depth + 1) for v in value[:_MAX_ITEMS]]
            if len(value) > _MAX_ITEMS:
                items.append(Elided(len(value) - _MAX_ITEMS))
            return items
    except Exception:  # a dict mutated by another thread mid-copy: keep the reference
        return value
    return value


def _default(value: Any) -> Any:
    # json.dumps calls this for anything it cannot encode itself.
    if isinstance(value, Elided):
        return f"... {value.count} more"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)[:_MAX_ITEMS]
    dump = getattr(value, "model_dump", None)  # pydantic v2 models, OpenAI client objects
    if callable(dump):
        try:
            return dump(mode="json")
        except Exception:  # noqa: S110 - fall through to the next representation
            pass
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return safe_repr(value)


def safe_repr(value: Any) -> str:
    """``repr(value)``, or a placeholder when ``repr`` itself fails.

    Example:
        >>> class Bad:
        ...     def __repr__(self):
        ...         raise RuntimeError("no")
        >>> safe_repr(Bad())
        '<unrepresentable Bad>'
    """
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


def _clip_strings(value: Any, limit: int, depth: int = 0) -> Any:
    # Long strings are cut before json.dumps, so a 100 MB argument costs the export thread a
    # slice, not a 100 MB encode that would be truncated anyway.
    t = type(value)
    if t is str:
        return value if len(value) <= limit else value[:limit]
    if depth > _MAX_DEPTH + 1:
        return value
    if t is dict:
        return {k: _clip_strings(v, limit, depth + 1) for k, v in value.items()}
    if t is list:
        return [_clip_strings(v, limit, depth + 1) for v in value]
    return value


def to_text(value: Any, limit: int) -> str:
    """Serialise a snapshot: a string stays as it is, anything else becomes JSON.

    Example:
        >>> to_text({"n": 1, "when": __import__("datetime").date(2026, 11, 22)}, 100)
        '{"n": 1, "when": "2026-11-22"}'
        >>> to_text(object.__new__(type("Opaque", (), {"__repr__": lambda s: "<opaque>"})), 100)
        '"<opaque>"'
    """
    if type(value) is str:
        return value
    try:
        return json.dumps(_clip_strings(value, limit), default=_default, ensure_ascii=False)
    except Exception:  # circular references, keys that are not strings, a failing model_dump
        return json.dumps(safe_repr(value), ensure_ascii=False)


def finish_text(text: str, redactors: Sequence[Callable[[str], str]], limit: int) -> tuple[str, bool]:
    """Redact, then truncate to ``limit`` UTF-8 bytes; returns the text and whether it was cut.

    A failing redactor drops the text rather than risk exporting what it was meant to hide.

    Example:
        >>> finish_text("héllo world", [], 6)
        ('héllo', True)
        >>> finish_text("a@b.co", [lambda t: t.replace("@", " at ")], 100)
        ('a at b.co', False)
    """
    for redact in redactors:
        try:
            text = redact(text)
        except Exception:
            return "[redaction failed; content dropped]", False
    if len(text) * 4 <= limit:  # cannot be over the limit: skip the encode
        return text, False
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return text, False
    return raw[:limit].decode("utf-8", "ignore"), True


def bind_arguments(signature: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments by parameter name, without ``self`` and ``cls``; positional fallback if binding fails.

    Example:
        >>> import inspect
        >>> def f(self, q, *rest, k=1): ...
        >>> bind_arguments(inspect.signature(f), ("obj", "hi", 2), {"k": 3})
        {'q': 'hi', 'rest': [2], 'k': 3}
    """
    try:
        bound = signature.bind_partial(*args, **kwargs)
    except Exception:
        return {"args": list(args), "kwargs": dict(kwargs)}
    out: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        if name in ("self", "cls"):
            continue
        param = signature.parameters[name]
        if param.kind is param.VAR_POSITIONAL:
            out[name] = list(value)
        elif param.kind is param.VAR_KEYWORD:
            out.update(value)
        else:
            out[name] = value
    return out


def to_genai_messages(messages: Any, output: bool = False) -> Any:
    """Chat messages in OpenAI's shape to the GenAI conventions' ``role`` + ``parts`` shape.

    Messages already in the GenAI shape, and anything that is not a list of dicts, pass through.

    Example:
        >>> to_genai_messages([{"role": "user", "content": "Hi"}])
        [{'role': 'user', 'parts': [{'type': 'text', 'content': 'Hi'}]}]
    """
    if type(messages) is not list:
        return messages
    out: list[Any] = []
    for m in messages:
        if type(m) is not dict or "parts" in m or "role" not in m:
            out.append(m)
            continue
        parts: list[dict[str, Any]] = []
        content = m.get("content")
        if isinstance(content, str):
            if content:
                parts.append({"type": "text", "content": content})
        elif isinstance(content, list):  # multi-part content: text, images
            for p in content:
                if isinstance(p, dict) and p.get("type") == "text":
                    parts.append({"type": "text", "content": p.get("text", "")})
                else:
                    parts.append(p if isinstance(p, dict) else {"type": "text", "content": str(p)})
        for call in m.get("tool_calls") or ():
            if isinstance(call, dict):
                fn = call.get("function") or {}
                parts.append(
                    {
                        "type": "tool_call",
                        "id": call.get("id"),
                        "name": fn.get("name"),
                        "arguments": fn.get("arguments"),
                    }
                )
        if m.get("role") == "tool":
            parts = [{"type": "tool_call_response", "id": m.get("tool_call_id"), "response": content}]
        msg: dict[str, Any] = {"role": m["role"], "parts": parts}
        if output and "finish_reason" in m:
            msg["finish_reason"] = m["finish_reason"]
        out.append(msg)
    return out
