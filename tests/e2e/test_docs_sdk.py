"""The SDK guide's examples run: every ```python block of docs/sdk.md, against a real collector.

Blocks run section by section (``## `` headings): each section's blocks, concatenated in page order, in a fresh
interpreter, so every section starts with a clean global OpenTelemetry provider, as a reader's app would. The
environment is what the guide tells the reader to set (``LOOPWISE_ENDPOINT``, ``LOOPWISE_API_KEY``) plus a private
spool directory. After the last block the script flushes and prints the result, and the test requires ``True``:
every span and score the section made reached the collector. Some sections then have their results checked through
the collector's API.

A block preceded by ``<!-- not-run: <reason> -->`` is skipped; there must be few of them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopwise import _config
from tests.support.collector_process import CollectorProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "sdk.md"
KEY = "lw_test_key"
AUTH = {"Authorization": f"Bearer {KEY}"}
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(?P<reason>\S.*?)\s*-->$")
MAX_NOT_RUN = 3
FLUSHED = "DOCS-FLUSHED:"
# Appended to each section: everything the section made must reach the collector.
TRAILER = f"""
import loopwise as _lw

print({FLUSHED!r}, _lw.flush(timeout=30.0), _lw.stats(), flush=True)
"""


@dataclass(frozen=True)
class Block:
    section: str
    line: int  # 1-based line of the opening fence
    code: str
    not_run: str | None  # the marker's reason, or None when the block runs


def parse_blocks(text: str) -> list[Block]:
    """Every fenced ```python block, with its ``## `` section and any not-run marker right above it."""
    blocks: list[Block] = []
    lines = text.splitlines()
    section = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:].strip()
        elif line.strip() == "```python":
            start = i
            body: list[str] = []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            assert i < len(lines), f"docs/sdk.md:{start + 1}: unterminated code block"
            prev = next((lines[j].strip() for j in range(start - 1, -1, -1) if lines[j].strip()), "")
            m = NOT_RUN.match(prev)
            blocks.append(Block(section, start + 1, "\n".join(body) + "\n", m.group("reason") if m else None))
        i += 1
    return blocks


DOC_TEXT = DOC.read_text(encoding="utf-8")
BLOCKS = parse_blocks(DOC_TEXT)
SECTIONS = list(dict.fromkeys(b.section for b in BLOCKS if b.not_run is None))


def section_script(section: str) -> str:
    parts = [f"# --- docs/sdk.md:{b.line} ---\n{b.code}" for b in BLOCKS if b.section == section and not b.not_run]
    return "\n".join(parts) + TRAILER


# --- the collector -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    base = tmp_path_factory.mktemp("docs-sdk")
    proc = CollectorProcess(
        base / "data", env={"LOOPWISE_INIT_PROJECTS": f"demo:{KEY}", "LOOPWISE_INGEST__MAX_DELAY_MS": "50"}
    )
    proc.start()
    yield proc
    proc.stop()


def api(collector: CollectorProcess, path: str, **params: Any) -> Any:
    resp = httpx.get(f"{collector.url}{path}", params=params, headers=AUTH, timeout=10)
    resp.raise_for_status()
    return resp.json()


def traces_named(collector: CollectorProcess, name: str) -> list[dict[str, Any]]:
    return api(collector, "/api/v1/traces", name=name)["data"]


def one_trace(collector: CollectorProcess, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The newest trace whose root is ``name``, and its spans by start time."""
    found = traces_named(collector, name)
    assert found, f"no trace named {name!r} in the collector"
    return found[0], api(collector, f"/api/v1/traces/{found[0]['trace_id']}")["spans"]


def clean_env(spool: Path, collector: CollectorProcess) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPWISE_", "OTEL_", "OPENAI_"))}
    env.update(
        {
            "LOOPWISE_ENDPOINT": collector.url,
            "LOOPWISE_API_KEY": KEY,
            "LOOPWISE_SPOOL_DIR": str(spool),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


# --- checks of what some sections made, through the collector's API ----------------------------------------------
def check_quickstart(collector: CollectorProcess) -> None:
    trace, spans = one_trace(collector, "answer_question")
    assert trace["span_count"] == 2
    assert (trace["user_id"], trace["session_id"], trace["models"]) == ("user-42", "sess-1", ["gpt-4o-mini"])
    assert trace["input_tokens"] == 14 and trace["output_tokens"] == 9
    llm = next(s for s in spans if s["name"] == "call_model")
    assert llm["span_type"] == "llm" and llm["cost_source"].startswith("table:")
    assert trace["cost_usd"] == pytest.approx((14 * 0.15 + 9 * 0.60) / 1e6)
    assert "Can I return my order?" in llm["input"] and "30 days" in llm["output"]
    assert spans[0]["service_name"] == "support-bot"


def check_observe(collector: CollectorProcess) -> None:
    _, spans = one_trace(collector, "handle ticket")
    assert [s["name"] for s in spans] == ["handle ticket", "lookup_order"]
    assert spans[0]["span_type"] == "agent"
    assert json.loads(spans[0]["input"]) == {"text": "Where is my order?", "order_id": "A-1001"}
    _, spans = one_trace(collector, "research")
    assert sorted(s["name"] for s in spans) == ["research", "search", "search"]
    _, spans = one_trace(collector, "stream_answer")
    assert spans[0]["output"] == "Returns are free."
    assert float(spans[0]["attributes"]["loopwise.stream.time_to_first_chunk_ms"]) >= 40
    assert spans[0]["attributes"]["loopwise.stream.chunks"] == "3"
    _, spans = one_trace(collector, "astream_answer")
    assert spans[0]["output"] == "Shipping takes 2 days."
    _, spans = one_trace(collector, "Retriever.search")
    assert json.loads(spans[0]["output"]) == ["doc-7"]
    assert spans[0]["attributes"]["loopwise.metadata.index"] == "policies-v2"
    assert json.loads(spans[0]["input"]) == {"query": "return policy"}  # no self


def check_llm(collector: CollectorProcess) -> None:
    _, spans = one_trace(collector, "chat gpt-4o-mini")
    s = spans[0]
    assert (s["model"], s["request_model"], s["provider"]) == ("gpt-4o-mini-2024-07-18", "gpt-4o-mini", "openai")
    assert (s["input_tokens"], s["output_tokens"], s["cache_read_input_tokens"]) == (1200, 40, 1024)
    assert (s["prompt_name"], s["prompt_version"]) == ("ticket-summary", "4")
    assert s["system_instructions"] == "Summarize support tickets in one sentence."
    assert s["cost_source"].startswith("table:") and s["cost_usd"] > 0
    _, spans = one_trace(collector, "local_generate")
    assert (spans[0]["cost_usd"], spans[0]["cost_source"]) == (pytest.approx(0.00002), "client")
    _, spans = one_trace(collector, "stream_completion")
    assert (spans[0]["output"], spans[0]["input_tokens"], spans[0]["output_tokens"]) == ("Sure, here you go.", 3, 5)


def check_propagation(collector: CollectorProcess) -> None:
    trace, _ = one_trace(collector, "handle_request")
    assert (trace["user_id"], trace["session_id"], trace["variants"]) == ("user-7", "sess-9", ["prompt-b"])
    assert trace["tags"] == ["priority", "refunds"]
    trace, _ = one_trace(collector, "check_cart")
    assert (trace["span_count"], trace["user_id"]) == (3, "user-8")
    trace, spans = one_trace(collector, "fan_out")
    assert (trace["span_count"], trace["session_id"]) == (4, "sess-42")
    assert all(s["session_id"] == "sess-42" for s in spans)


def check_feedback(collector: CollectorProcess) -> None:
    trace, _ = one_trace(collector, "chat")
    scores = api(collector, "/api/v1/scores", trace_id=trace["trace_id"])["data"]
    by_name = {s["name"]: s for s in scores}
    assert by_name["thumbs_up"]["value"] == 1.0 and by_name["thumbs_up"]["comment"] == "clear answer"
    assert by_name["thumbs_up"]["source"] == "human"
    assert by_name["category"]["label"] == "returns"


def check_export(collector: CollectorProcess) -> None:
    assert traces_named(collector, "during_outage"), "the span spooled during the outage was not delivered"


def check_redaction(collector: CollectorProcess) -> None:
    _, spans = one_trace(collector, "support_reply")
    assert json.loads(spans[0]["input"]) == {"message": "Call me on [REDACTED_PHONE]"}
    assert spans[0]["output"] == "We emailed [REDACTED_EMAIL] about ORD-*** and refunded card [REDACTED_CARD]."


def check_capture_off(collector: CollectorProcess) -> None:
    _, spans = one_trace(collector, "private_completion")
    assert (spans[0]["input"], spans[0]["output"], spans[0]["input_tokens"]) == ("", "", 5)


def check_beside_otel(collector: CollectorProcess) -> None:
    trace, spans = one_trace(collector, "POST /checkout")
    assert [s["name"] for s in spans] == ["POST /checkout", "reserve_stock"]
    assert spans[0]["service_name"] == "checkout" and trace["user_id"] == "user-5"


def check_integrations(collector: CollectorProcess) -> None:
    for root, question in (("answer", "What is the capital of France?"), ("answer_streamed", "And of Italy?")):
        _, spans = one_trace(collector, root)
        assert [s["name"] for s in spans] == [root, "openai.chat"]
        llm = spans[1]
        assert (llm["model"], llm["provider"], llm["span_type"]) == ("gpt-4o-mini", "openai", "llm")
        # The fake server counts words: the question, and the reply "Echo: <question>".
        words = len(question.split())
        assert (llm["input_tokens"], llm["output_tokens"]) == (words, words + 1)
        assert question in llm["input"] and f"Echo: {question}" in llm["output"]
        assert llm["cost_source"].startswith("table:")
    _, spans = one_trace(collector, "complete")
    assert [s["name"] for s in spans] == ["complete", "transformers.text-generation"]
    llm = spans[1]
    assert (llm["provider"], llm["operation"], llm["span_type"]) == ("huggingface", "text_completion", "llm")
    assert llm["input_tokens"] > 0 and llm["output_tokens"] > 0
    assert "The quick brown fox" in llm["input"]


CHECKS: dict[str, Callable[[CollectorProcess], None]] = {
    "Quickstart": check_quickstart,
    "Tracing functions with `@observe`": check_observe,
    "LLM spans": check_llm,
    "Context propagation": check_propagation,
    "Feedback: `loopwise.score`": check_feedback,
    "Export and durability": check_export,
    "Redaction": check_redaction,
    "Turning content capture off": check_capture_off,
    "Beside your own OpenTelemetry setup": check_beside_otel,
    "Integrations": check_integrations,
}


def eventually(check: Callable[[], None], timeout: float = 15.0) -> None:
    # flush() returning True means acknowledged; reads may still trail the writer by one insert.
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# --- tests --------------------------------------------------------------------------------------------------------
def integrations_setup(request: pytest.FixtureRequest, cwd: Path, env: dict[str, str]) -> None:
    """What the integrations' examples expect of the reader's machine, with no network.

    ``OpenAI()`` reads its server and key from the environment: here the fake OpenAI API of tests/support. The
    pipeline loads ``./my-model``: here the tiny GPT-2 of tests/support, and the Hub stays offline.
    """
    server = request.getfixturevalue("openai_server")
    server.reset()
    env.update({"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-docs-test"})
    shutil.copytree(request.getfixturevalue("tiny_gpt2"), cwd / "my-model")
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})


@pytest.mark.parametrize("section", SECTIONS)
def test_section_examples_run(
    section: str, collector: CollectorProcess, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    script = tmp_path / "example.py"
    script.write_text(section_script(section), encoding="utf-8")
    env = clean_env(tmp_path / "spool", collector)
    if section == "Integrations":
        integrations_setup(request, tmp_path, env)
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}\n--- collector ---\n{collector.log_tail()}"
    assert proc.returncode == 0, output
    assert "Traceback" not in proc.stderr, output
    flushed = [line for line in proc.stdout.splitlines() if line.startswith(FLUSHED)]
    assert flushed and flushed[-1].startswith(f"{FLUSHED} True"), output
    if section in CHECKS:
        eventually(lambda: CHECKS[section](collector))


def test_every_check_names_a_section() -> None:
    assert set(CHECKS) <= set(SECTIONS)


def test_blocks_compile_and_not_run_markers_are_few() -> None:
    assert len(BLOCKS) >= 20
    for block in BLOCKS:
        compile(block.code, f"docs/sdk.md:{block.line}", "exec")
    skipped = [b for b in BLOCKS if b.not_run]
    assert len(skipped) <= MAX_NOT_RUN, [f"docs/sdk.md:{b.line}: {b.not_run}" for b in skipped]
    # A marker that is not right above a python block would silently skip nothing.
    markers = [i for i, line in enumerate(DOC_TEXT.splitlines()) if NOT_RUN.match(line.strip())]
    assert len(markers) == len(skipped)


def test_parse_blocks_honours_not_run_markers() -> None:
    text = "\n".join(
        [
            "## One",
            "```python",
            "a = 1",
            "```",
            "<!-- not-run: needs an OpenAI key -->",
            "",
            "```python",
            "b = 2",
            "```",
            "## Two",
            "```bash",
            "echo no",
            "```",
            "```python",
            "c = 3",
            "```",
        ]
    )
    blocks = parse_blocks(text)
    assert [(b.section, b.code, b.not_run) for b in blocks] == [
        ("One", "a = 1\n", None),
        ("One", "b = 2\n", "needs an OpenAI key"),
        ("Two", "c = 3\n", None),
    ]


def settings_table() -> dict[str, tuple[str, str]]:
    """The configure table of docs/sdk.md: keyword -> (environment variable cell, default cell)."""
    rows: dict[str, tuple[str, str]] = {}
    for line in DOC_TEXT.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"`[a-z_]+`", cells[0]) and "`LOOPWISE_" in cells[1]:
            rows[cells[0].strip("`")] = (cells[1], cells[2])
    return rows


def test_settings_table_matches_config() -> None:
    rows = settings_table()
    assert set(rows) == set(_config.SETTINGS), "docs/sdk.md's settings table and loopwise._config.SETTINGS differ"
    defaults = _config.Config()
    for name in _config.SETTINGS:
        env_cell, default_cell = rows[name]
        env_var = _config._FIELDS[name][1]
        assert re.match(rf"`{env_var}`", env_cell), f"{name}: the table says {env_cell}, the code {env_var}"
        value = getattr(defaults, name)
        if isinstance(value, bool):
            assert f"`{str(value).lower()}`" in default_cell, f"{name}: default {value} not in {default_cell!r}"
        elif isinstance(value, int | float | str):
            assert f"`{value}`" in default_cell, f"{name}: default {value!r} not in {default_cell!r}"
    assert f"`{_config.DEFAULT_ENDPOINT}`" in rows["endpoint"][1]
    assert "loopwise/spool" in rows["spool_dir"][1]
    assert "unset" in rows["api_key"][1] and "none" in rows["redact"][1]
