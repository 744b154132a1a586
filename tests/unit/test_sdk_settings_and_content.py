"""SDK settings resolution, content capture (snapshot, JSON, truncation) and the built-in redactors."""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import logging
from pathlib import Path

import pytest

import loopwise
from loopwise._config import Config, normalize_endpoint, resolve
from loopwise._content import bind_arguments, finish_text, snapshot, to_genai_messages, to_text
from loopwise._redact import BUILTIN_REDACTORS

pytestmark = pytest.mark.unit


def test_keyword_arguments_win_over_environment_over_defaults() -> None:
    env = {
        "LOOPWISE_ENDPOINT": "https://lw.example.com/v1/traces",
        "LOOPWISE_API_KEY": "lw_env",
        "LOOPWISE_SAMPLE_RATE": "0.25",
        "LOOPWISE_CAPTURE_CONTENT": "false",
        "LOOPWISE_MAX_CONTENT_BYTES": "4096",
        "LOOPWISE_SPOOL_DIR": "/tmp/lw-spool",
        "LOOPWISE_REDACT": "emails,cards",
        "OTEL_SERVICE_NAME": "from-otel",
    }
    cfg = resolve({"api_key": "lw_kw", "sample_rate": 1.0}, env)
    assert cfg.endpoint == "https://lw.example.com"
    assert cfg.traces_url == "https://lw.example.com/v1/traces"
    assert (cfg.api_key, cfg.sample_rate) == ("lw_kw", 1.0)
    assert (cfg.capture_content, cfg.max_content_bytes) == (False, 4096)
    assert cfg.spool_dir == Path("/tmp/lw-spool")
    assert cfg.service_name == "from-otel"
    assert len(cfg.redact) == 2
    assert resolve({}, {}) == Config()


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"LOOPWISE_SAMPLE_RATE": "1.5"}, "sample_rate"),
        ({"LOOPWISE_SAMPLE_RATE": "half"}, "sample_rate"),
        ({"LOOPWISE_ENDPOINT": "localhost:4318"}, "endpoint"),
        ({"LOOPWISE_ENDPOINT": "http://host:port"}, "endpoint"),
        ({"LOOPWISE_CAPTURE_CONTENT": "maybe"}, "capture_content"),
        ({"LOOPWISE_MAX_CONTENT_BYTES": "-1"}, "max_content_bytes"),
        ({"LOOPWISE_REDACT": "ssn"}, "redact"),
    ],
)
def test_unusable_values_log_one_line_and_keep_the_default(
    env: dict[str, str], setting: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="loopwise"):
        cfg = resolve({}, env)
    assert getattr(cfg, setting) == getattr(Config(), setting)
    [record] = caplog.records
    assert next(iter(env)) in record.getMessage()


def test_the_api_key_never_reaches_a_log_or_repr(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="loopwise"):
        cfg = resolve({"api_key": 12345678}, {})
    assert "12345678" not in repr(cfg)
    assert "12345678" not in caplog.text


def test_endpoint_normalisation() -> None:
    assert normalize_endpoint(" http://127.0.0.1:4318/ ") == "http://127.0.0.1:4318"
    assert normalize_endpoint("https://a.b/prefix") == "https://a.b/prefix"
    with pytest.raises(ValueError, match=r"http://127\.0\.0\.1:4318"):
        normalize_endpoint("ftp://x")


def test_snapshot_copies_containers_and_bounds_them() -> None:
    data = {"items": list(range(5000)), "nested": {"a": [1, 2]}}
    snap = snapshot(data)
    data["nested"]["a"].append(3)
    assert snap["nested"]["a"] == [1, 2]
    text = to_text(snap, 100_000)
    assert text.endswith('"... 4000 more"]}') or "4000 more" in text


def test_anything_serialises_and_nothing_raises() -> None:
    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    class Bad:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    cyclic: list[object] = []
    cyclic.append(cyclic)
    value = {
        "when": dt.datetime(2026, 11, 22, 9, 0),
        "point": Point(1, 2),
        "blob": b"\x00\x01",
        "tags": {"b", "a"},
        "bad": Bad(),
        "fn": len,
    }
    text = to_text(value, 10_000)
    assert '"when": "2026-11-22T09:00:00"' in text
    assert '"point": {"x": 1, "y": 2}' in text
    assert '"blob": "<2 bytes>"' in text and '"tags": ["a", "b"]' in text
    assert "<unrepresentable Bad>" in text and "built-in function len" in text
    assert to_text(cyclic, 100)  # circular: falls back to repr, never raises


def test_truncation_is_by_utf8_bytes_and_flagged() -> None:
    text, cut = finish_text("ü" * 100, [], 51)
    assert cut and len(text.encode()) <= 51 and text == "ü" * 25
    huge = to_text({"doc": "x" * 10_000_000}, 1000)  # cut before JSON encoding, not after
    assert len(huge) < 1100
    assert finish_text("ok", [], 10) == ("ok", False)


def test_a_failing_redactor_drops_the_content() -> None:
    def broken(_: str) -> str:
        raise ValueError("oops")

    assert finish_text("card 4111 1111 1111 1111", [broken], 100)[0] == "[redaction failed; content dropped]"


def test_bind_arguments_names_parameters_and_drops_self() -> None:
    class Service:
        def answer(self, question: str, *docs: str, top_k: int = 3, **extra: object) -> None: ...

    sig = inspect.signature(Service.answer)
    bound = bind_arguments(sig, (Service(), "q", "d1", "d2"), {"top_k": 5, "lang": "en"})
    assert bound == {"question": "q", "docs": ["d1", "d2"], "top_k": 5, "lang": "en"}
    assert bind_arguments(sig, (), {"nope": 1, "x": 2, "self": 0, "question": 1, "zz": 0}) is not None


def test_openai_messages_become_genai_parts() -> None:
    msgs = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "image_url", "image_url": {"url": "u"}}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]
    out = to_genai_messages(msgs)
    assert out[0] == {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]}
    assert out[1]["parts"][0] == {"type": "text", "content": "Hi"}
    assert out[2]["parts"] == [{"type": "tool_call", "id": "c1", "name": "f", "arguments": "{}"}]
    assert out[3]["parts"] == [{"type": "tool_call_response", "id": "c1", "response": "42"}]
    genai = [{"role": "user", "parts": [{"type": "text", "content": "x"}]}]
    assert to_genai_messages(genai) == genai


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail ana@example.com now", "mail [REDACTED_EMAIL] now"),
        ("a.b-c+d@sub.example.org", "[REDACTED_EMAIL]"),
        ("call +44 20 7946 0958 today", "call [REDACTED_PHONE] today"),
        ("call (415) 555-0132", "call [REDACTED_PHONE]"),
        ("call +14155550132", "call [REDACTED_PHONE]"),
        ("visa 4111-1111-1111-1111 ok", "visa [REDACTED_CARD] ok"),
        ("amex 378282246310005", "amex [REDACTED_CARD]"),
    ],
)
def test_builtin_redactors_catch_pii(text: str, expected: str) -> None:
    out = text
    for redact in BUILTIN_REDACTORS["pii"]:
        out = redact(out)
    assert out == expected


@pytest.mark.parametrize(
    "text",
    [
        "order 20261122 shipped",  # a date-like id
        "ref 1234 5678 9012 3456",  # 16 digits that fail the Luhn check
        "version 3.11.7 and port 4318",
        "user@localhost",  # no domain
        "trace 4bf92f3577b34da6a3ce929d0e0e4736",
        "price 1,299.00 USD",
    ],
)
def test_builtin_redactors_leave_ordinary_text_alone(text: str) -> None:
    out = text
    for redact in BUILTIN_REDACTORS["pii"]:
        out = redact(out)
    assert out == text


def test_public_redactors_are_exported() -> None:
    assert loopwise.redact_emails("x@y.io") == "[REDACTED_EMAIL]"
    assert loopwise.redact_card_numbers("4111111111111111") == "[REDACTED_CARD]"
    assert loopwise.redact_phone_numbers("+1 415 555 0132") == "[REDACTED_PHONE]"
