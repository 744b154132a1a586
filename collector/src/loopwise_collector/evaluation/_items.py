"""Turn a claimed span into an :class:`EvalItem`: plain text out of stored GenAI messages.

LLM spans store ``gen_ai.input.messages``/``gen_ai.output.messages`` as JSON (``parts`` with
``content``, or the older ``content`` string); other spans store their arguments or return value
as JSON. Evaluators want the words: the last user turn as input, the assistant's text as output,
and the documents the answer should rest on as context (the trace's retrievals, else the prompt).
"""

from __future__ import annotations

import json
from typing import Any

from loopwise_collector.evaluators import EvalItem


def _parts_text(message: dict[str, Any]) -> str:
    parts = message.get("parts")
    if isinstance(parts, list):
        texts = [str(p.get("content", "")) for p in parts if isinstance(p, dict) and p.get("type", "text") == "text"]
        return "\n".join(t for t in texts if t)
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI's [{"type": "text", "text": ...}]
        return "\n".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
    return ""


def _messages(raw: str) -> list[dict[str, Any]] | None:
    try:
        value = json.loads(raw)
    except (ValueError, TypeError):
        return None
    if isinstance(value, list) and value and all(isinstance(m, dict) and "role" in m for m in value):
        return value
    return None


def plain_text(raw: str) -> str:
    """Readable text of a stored value: a JSON string unquoted, messages joined, anything else as is.

    Example:
        >>> plain_text('[{"role": "assistant", "parts": [{"type": "text", "content": "Hi!"}]}]')
        'Hi!'
        >>> plain_text('"just a string"')
        'just a string'
    """
    messages = _messages(raw)
    if messages is not None:
        return "\n".join(t for t in (_parts_text(m) for m in messages) if t)
    try:
        value = json.loads(raw)
    except (ValueError, TypeError):
        return raw
    return value if isinstance(value, str) else raw


def last_user_text(raw: str) -> str:
    """The last user turn of a stored prompt, or the whole value when it is not a conversation.

    Example:
        >>> last_user_text('[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},'
        ...                ' {"role": "user", "content": "c"}]')
        'c'
    """
    messages = _messages(raw)
    if messages is None:
        return plain_text(raw)
    for message in reversed(messages):
        if message.get("role") == "user":
            return _parts_text(message)
    return plain_text(raw)


def item_for(span: dict[str, Any]) -> EvalItem:
    """The item a claimed span (as the claim API returns it) is evaluated as.

    Example:
        >>> item = item_for({"input": '"What is 2+2?"', "output": '"4"', "system_instructions": "",
        ...                  "retrievals": [], "trace_id": "t", "span_id": "s"})
        >>> (item.input, item.output, item.context)
        ('What is 2+2?', '4', ('What is 2+2?',))
    """
    retrievals = tuple(t for t in (plain_text(r) for r in span.get("retrievals", [])) if t)
    if retrievals:
        context = retrievals
    else:  # no retrieval: the prompt itself is what the answer may rely on
        prompt = [plain_text(span.get("system_instructions", "")), plain_text(span.get("input", ""))]
        context = tuple(p for p in prompt if p)
    meta: dict[str, Any] = {
        k: span[k] for k in ("trace_id", "span_id", "name", "model", "variant", "span_type") if k in span
    }
    return EvalItem(
        input=last_user_text(span.get("input", "")),
        output=plain_text(span.get("output", "")),
        reference=None,
        context=context,
        metadata=meta,
    )
