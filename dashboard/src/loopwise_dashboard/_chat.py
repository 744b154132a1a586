"""Turn span inputs and outputs into chat messages when they hold OpenTelemetry GenAI message JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ChatMessage:
    """One message to show with ``st.chat_message``: a role and its text (Markdown-safe)."""

    role: str
    text: str


def _part_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    if not isinstance(part, dict):
        return json.dumps(part)
    kind = part.get("type", "text")
    if kind == "text" and isinstance(part.get("content"), str):
        return str(part["content"])
    if kind == "tool_call":
        args = part.get("arguments")
        return f"🔧 `{part.get('name', 'tool')}({json.dumps(args) if args is not None else ''})`"
    if kind == "tool_call_response":
        return f"↩ tool result: `{json.dumps(part.get('response', part.get('result')))}`"
    return f"```json\n{json.dumps(part, indent=2)}\n```"


def _message(raw: Any) -> ChatMessage | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("role"), str):
        return None
    if isinstance(raw.get("parts"), list):  # semantic conventions >= 1.37
        text = "\n\n".join(_part_text(p) for p in raw["parts"])
    elif isinstance(raw.get("content"), str):  # the older OpenAI-style shape
        text = raw["content"]
    elif isinstance(raw.get("content"), list):
        text = "\n\n".join(_part_text(p) for p in raw["content"])
    else:
        return None
    return ChatMessage(role=raw["role"], text=text)


def parse_messages(text: str) -> list[ChatMessage] | None:
    """The chat messages in a span's ``input``/``output``, or ``None`` when it is not message JSON.

    Example:
        >>> parse_messages('[{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]')
        [ChatMessage(role='user', text='Hi')]
        >>> parse_messages('{"query": "refund"}') is None
        True
    """
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, dict) and "role" in data:
        data = [data]
    if not isinstance(data, list) or not data:
        return None
    messages = [_message(item) for item in data]
    if any(m is None for m in messages):
        return None
    return [m for m in messages if m is not None]


def pretty(text: str) -> tuple[str, str]:
    """Text and the language to show it in: indented JSON when it parses, else plain text.

    Example:
        >>> pretty('{"a": 1}')
        ('{\\n  "a": 1\\n}', 'json')
    """
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False), "json"
    except ValueError:
        return text, "text"


def system_text(text: str) -> str:
    """System instructions as text: the GenAI JSON list of parts joined, or the text as sent.

    Example:
        >>> system_text('[{"type": "text", "content": "Be brief."}]'), system_text("Be kind."), system_text("")
        ('Be brief.', 'Be kind.', '')
    """
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, list):
        return "\n\n".join(_part_text(p) for p in data)
    return text


def show_value(title: str, text: str, system: str = "") -> None:
    """Render a span's input or output: GenAI messages as a chat (system text first), else pretty text or JSON."""
    import streamlit as st  # only the pages draw; parsing stays importable without a script run

    st.markdown(f"**{title}**")
    if not text and not system:
        st.caption("(empty)")
        return
    messages = parse_messages(text) or []
    if messages or (system and not text):
        if system:
            with st.chat_message("system", avatar=":material/settings:"):
                st.markdown(system)
        for m in messages:
            with st.chat_message(m.role):
                st.markdown(m.text)
        return
    body, language = pretty(text)
    st.code(body, language=language, wrap_lines=True)
