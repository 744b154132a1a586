"""The LLM judge against a real OpenAI-protocol server over HTTP, and the human-feedback evaluator.

Why: the judge is only as good as its handling of what real endpoints do: fenced or chatty replies, 5xx and
429s, refused keys, dead ports, slow answers. Each of those is produced here by a real server on loopback
(`tests/support/openai_server.py`, or a deliberately slow one below), never by patching httpx.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from loopwise_collector.evaluators import EvalItem, EvaluatorConfigError, Score, get_evaluator
from loopwise_collector.evaluators.human_feedback import (
    NO_FEEDBACK,
    HumanFeedback,
    normalise_feedback,
    summarize_feedback,
)
from loopwise_collector.evaluators.llm_judge import BUILTIN_PROMPT_VERSION, LLMJudge, parse_verdict
from tests.support.openai_server import OpenAIServer, word_count

pytestmark = pytest.mark.integration

VERDICT = {"score": 0.9, "label": "pass", "reasoning": "Correct and complete."}
KEY = "sk-loopwise-test-SECRET-1234"
# The echo server answers "Echo: <user message>"; with this prompt the user message *is* a verdict, so each
# item's score comes back from the server and batch order can be checked.
ECHO_PROMPT = '{{"score": {output}, "label": "echo", "reasoning": "from {input}"}}'


@pytest.fixture
def server(openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIServer]:
    openai_server.reset()
    for var in ("LOOPWISE_JUDGE_BASE_URL", "OPENAI_BASE_URL", "LOOPWISE_JUDGE_MODEL"):
        monkeypatch.delenv(var, raising=False)
    for var in ("LOOPWISE_JUDGE_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    yield openai_server
    openai_server.reset()


def judge_for(server: OpenAIServer, **params: Any) -> LLMJudge:
    params.setdefault("model", "judge-model")
    params.setdefault("api_key", KEY)
    params.setdefault("backoff", 0.01)
    return LLMJudge(base_url=server.base_url, **params)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the judge: request and verdict ---


def test_judge_sends_a_versioned_prompt_and_reads_the_verdict(server: OpenAIServer) -> None:
    server.api_key = KEY
    server.reply = json.dumps(VERDICT)
    judge = judge_for(server, criteria="factual accuracy")
    item = EvalItem(input="Capital of France?", output="Paris is the capital.", reference="Paris", context=("doc",))

    [score] = judge.evaluate([item])

    assert (score.value, score.label, score.explanation) == (0.9, "pass", "Correct and complete.")
    assert score.metadata["raw_label"] == "pass"
    assert score.metadata["judge_model"] == "judge-model"
    assert score.metadata["prompt_version"] == BUILTIN_PROMPT_VERSION
    assert score.metadata["output_tokens"] == word_count(server.reply)
    assert score.metadata["input_tokens"] > 0
    [request] = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    body = request.body
    assert body["model"] == "judge-model"
    assert body["temperature"] == 0
    assert body["response_format"] == {"type": "json_object"}
    system, user = body["messages"]
    assert system["role"] == "system" and "JSON" in system["content"]
    for text in ("Paris is the capital.", "factual accuracy", "Capital of France?", "[1] doc"):
        assert text in user["content"]


def test_json_mode_and_temperature_can_be_left_out(server: OpenAIServer) -> None:
    server.reply = json.dumps(VERDICT)
    judge_for(server, json_mode=False, max_tokens=50, temperature=None).evaluate([EvalItem(output="x")])
    assert "response_format" not in server.last_request.body
    assert "temperature" not in server.last_request.body
    assert server.last_request.body["max_tokens"] == 50


@pytest.mark.parametrize(
    ("reply", "scale", "value", "label"),
    [
        ('```json\n{"score": 0.25, "label": "fail", "reasoning": "Wrong city."}\n```', "0-1", 0.25, "fail"),
        ('Here is my verdict: {"score": 1, "label": "Pass", "reasoning": "ok"} Hope this helps!', "0-1", 1.0, "pass"),
        ('{"score": "0.5", "label": "partly right", "reasoning": "ok"}', "0-1", 0.5, "partly_right"),
        ('{"Score": 4, "Reasoning": "good"}', "1-5", 0.75, "pass"),
        ('{"rating": "2/5", "label": "weak"}', "1-5", 0.25, "weak"),
    ],
)
def test_judge_reads_verdicts_in_fences_prose_and_strings(
    server: OpenAIServer, reply: str, scale: str, value: float, label: str
) -> None:
    server.reply = reply
    [score] = judge_for(server, scale=scale).evaluate([EvalItem(output="x")])
    assert not score.is_error, score.explanation
    assert score.value == pytest.approx(value)
    assert score.label == label


def test_unparseable_reply_is_an_error_score(server: OpenAIServer) -> None:
    server.reply = "I would rather not say."
    [score] = judge_for(server).evaluate([EvalItem(output="x")])
    assert score.is_error
    assert "could not parse" in score.explanation and "I would rather not say." in score.explanation
    assert score.metadata["prompt_version"] == BUILTIN_PROMPT_VERSION


def test_out_of_scale_score_is_an_error(server: OpenAIServer) -> None:
    server.reply = '{"score": 7, "label": "great"}'
    [score] = judge_for(server, scale="1-5").evaluate([EvalItem(output="x")])
    assert score.is_error and "outside the scale 1-5" in score.explanation


# --- the judge: retries and failures ---


def test_server_error_is_retried(server: OpenAIServer) -> None:
    server.reply = json.dumps(VERDICT)
    server.fail_next(1, status=500)
    [score] = judge_for(server).evaluate([EvalItem(output="x")])
    assert score.value == 0.9
    assert len(server.requests) == 2


def test_rate_limit_honours_retry_after(server: OpenAIServer) -> None:
    server.reply = json.dumps(VERDICT)
    server.fail_next(1, status=429, headers={"retry-after": "0.3"})
    started = time.monotonic()
    [score] = judge_for(server, backoff=0.0).evaluate([EvalItem(output="x")])
    assert score.value == 0.9
    assert time.monotonic() - started >= 0.3
    assert len(server.requests) == 2


def test_retries_are_bounded(server: OpenAIServer) -> None:
    server.fail_next(5, status=503)
    [score] = judge_for(server, max_retries=2).evaluate([EvalItem(output="x")])
    assert score.is_error
    assert "HTTP 503" in score.explanation and "gave up after 3 attempts" in score.explanation
    assert len(server.requests) == 3


def test_refused_key_is_an_error_score_without_the_key(server: OpenAIServer) -> None:
    server.api_key = "the-right-key"
    scores = judge_for(server, concurrency=2).evaluate([EvalItem(output=f"answer {i}") for i in range(6)])
    assert all(s.is_error for s in scores)
    assert "refused the API key" in scores[0].explanation
    for score in scores:
        assert KEY not in score.explanation and KEY not in json.dumps(dict(score.metadata), default=str)
    # A refused key is the same for every item: the batch stops instead of sending the rest.
    assert len(server.requests) <= 2


def test_missing_key_is_explained(server: OpenAIServer) -> None:
    [score] = judge_for(server, api_key=None).evaluate([EvalItem(output="x")])
    assert score.is_error and "none is configured" in score.explanation
    assert "authorization" not in server.last_request.headers


def test_unknown_model_stops_the_batch(server: OpenAIServer) -> None:
    server.fail_next(1, status=404)
    scores = judge_for(server, concurrency=1).evaluate([EvalItem(output="a"), EvalItem(output="b")])
    assert "HTTP 404" in scores[0].explanation and "check base_url" in scores[0].explanation
    assert scores[1].is_error and "not judged" in scores[1].explanation
    assert len(server.requests) == 1


def test_unreachable_server_fails_fast(server: OpenAIServer) -> None:
    judge = LLMJudge(model="m", api_key=KEY, base_url=f"http://127.0.0.1:{closed_port()}/v1", timeout=5)
    started = time.monotonic()
    scores = judge.evaluate([EvalItem(output=f"a{i}") for i in range(10)])
    assert time.monotonic() - started < 5
    assert len(scores) == 10 and all(s.is_error for s in scores)
    assert "could not reach the judge endpoint" in scores[0].explanation


# --- the judge: batches and concurrency ---


def test_batch_keeps_order(server: OpenAIServer) -> None:
    judge = judge_for(server, prompt=ECHO_PROMPT, concurrency=4)
    items = [EvalItem(input=f"item {i}", output=f"0.{i}") for i in range(10)]
    scores = judge.evaluate(items)
    assert [s.value for s in scores] == pytest.approx([i / 10 for i in range(10)])
    assert all(s.label == "echo" for s in scores)
    assert len(server.requests) == 10
    assert judge.aggregate(items, scores)["scored"] == 10


class _SlowHandler(BaseHTTPRequestHandler):
    server: _SlowServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.server.enter()
        try:
            time.sleep(self.server.delay)
        finally:
            self.server.leave()
        reply = json.dumps(VERDICT)
        body = json.dumps({"model": "slow", "choices": [{"message": {"role": "assistant", "content": reply}}]})
        data = body.encode()
        try:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up waiting: that is what the timeout test wants
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _SlowServer(ThreadingHTTPServer):
    """A chat endpoint that takes `delay` seconds per answer and records how many requests overlap."""

    daemon_threads = True

    def __init__(self, delay: float) -> None:
        super().__init__(("127.0.0.1", 0), _SlowHandler)
        self.delay = delay
        self.in_flight = self.max_in_flight = self.total = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.total += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@pytest.fixture
def slow_server() -> Iterator[_SlowServer]:
    server = _SlowServer(delay=0.15)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_concurrency_is_bounded(slow_server: _SlowServer) -> None:
    judge = LLMJudge(model="m", api_key=KEY, base_url=slow_server.base_url, concurrency=3)
    started = time.monotonic()
    scores = judge.evaluate([EvalItem(output=f"a{i}") for i in range(9)])
    elapsed = time.monotonic() - started
    assert [s.value for s in scores] == [0.9] * 9
    assert slow_server.max_in_flight == 3
    assert elapsed < 9 * slow_server.delay  # it did overlap


def test_slow_answer_times_out_into_an_error(slow_server: _SlowServer) -> None:
    slow_server.delay = 1.0
    judge = LLMJudge(model="m", api_key=KEY, base_url=slow_server.base_url, timeout=0.2, max_retries=1, backoff=0)
    started = time.monotonic()
    [score] = judge.evaluate([EvalItem(output="x")])
    assert time.monotonic() - started < 1.5
    assert score.is_error and "did not answer within 0.2 s" in score.explanation
    assert "gave up after 2 attempts" in score.explanation


# --- the judge: configuration and version ---


@pytest.mark.parametrize(
    "prompt",
    ["Is {answer} right?", "Is {output right?", "Rate the answer to {input}.", "{output} {0}", "{output.upper}"],
)
def test_bad_custom_prompt_is_refused(prompt: str) -> None:
    with pytest.raises(EvaluatorConfigError):
        LLMJudge(model="m", prompt=prompt)
    with pytest.raises(EvaluatorConfigError):
        get_evaluator("llm_judge", model="m", prompt=prompt)


def test_version_follows_prompt_and_model_but_not_key() -> None:
    base = LLMJudge(model="a", api_key="k1", base_url="http://judge.local/v1")
    assert base.version == LLMJudge(model="a", api_key="k2", base_url="http://judge.local/v1").version
    others = [
        LLMJudge(model="b", base_url="http://judge.local/v1"),
        LLMJudge(model="a", base_url="http://judge.local/v1", prompt="Is {output} kind?"),
        LLMJudge(model="a", base_url="http://judge.local/v1", criteria="brevity"),
        LLMJudge(model="a", base_url="http://judge.local/v1", scale="1-5"),
    ]
    assert len({base.version, *(o.version for o in others)}) == 5
    custom = LLMJudge(model="a", prompt="Is {output} kind?")
    assert custom.prompt_version != LLMJudge(model="a", prompt="Is {output} polite?").prompt_version
    assert LLMJudge(model="a", prompt="Is {output} kind?", prompt_version="kind-v2").prompt_version == "kind-v2"
    assert "k1" not in json.dumps(dict(base.config())) and "k1" not in repr(base)
    assert set(base.config()) >= {"base_url", "model", "criteria", "prompt_version", "scale"}


def test_settings_come_from_the_environment(server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EvaluatorConfigError, match="LOOPWISE_JUDGE_MODEL"):
        get_evaluator("llm_judge")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://wrong.invalid/v1")
    monkeypatch.setenv("LOOPWISE_JUDGE_BASE_URL", server.base_url + "/")
    monkeypatch.setenv("LOOPWISE_JUDGE_MODEL", "env-model")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server.api_key = KEY
    server.reply = json.dumps(VERDICT)
    judge = get_evaluator("llm_judge")
    assert judge.kind == "llm_judge"
    assert judge.evaluate([EvalItem(output="x")])[0].value == 0.9
    assert server.last_request.body["model"] == "env-model"


def test_custom_prompt_requires_the_fields_it_uses(server: OpenAIServer) -> None:
    server.reply = json.dumps(VERDICT)
    judge = judge_for(server, prompt="Does {output} match {reference}?")
    with_ref, without = judge.evaluate([EvalItem(output="a", reference="a"), EvalItem(output="a")])
    assert with_ref.value == 0.9
    assert without.is_error and "'reference'" in without.explanation
    assert server.last_request.body["messages"][1]["content"] == "Does a match a?"


def test_parse_verdict_prefers_the_object_with_a_score() -> None:
    text = 'Context {"note": "ignore"} then {"verdict": {"score": 0.2, "reasoning": "meh"}}'
    verdict = parse_verdict(text)
    assert (verdict.value, verdict.label, verdict.reasoning) == (0.2, "fail", "meh")


# --- human feedback ---


@pytest.mark.parametrize(
    ("row", "kind", "value"),
    [
        ({"name": "thumbs", "value": 1.0}, "thumbs", 1.0),
        ({"name": "thumbs", "value": 0.0}, "thumbs", 0.0),
        ({"name": "thumbs", "label": "thumbs_up"}, "thumbs", 1.0),
        ({"name": "feedback", "label": "down"}, "thumbs", 0.0),
        ({"name": "vote", "value": True}, "thumbs", 1.0),
        ({"name": "thumbs_down", "value": 1}, "thumbs", 0.0),
        ({"name": "like", "value": 1}, "thumbs", 1.0),
        ({"name": "feedback", "value": 1}, "thumbs", 1.0),
        ({"name": "rating", "value": 1}, "rating", 0.0),
        ({"name": "rating", "value": 3}, "rating", 0.5),
        ({"name": "stars", "value": "5"}, "rating", 1.0),
        ({"name": "csat", "value": 4}, "rating", 0.75),
        ({"name": "helpfulness", "value": 0.3}, "score", 0.3),
        ({"name": "rating", "value": 9}, "ignored", None),
        ({"name": "note", "explanation": "slow answer"}, "comment", None),
        ({"name": "mood", "label": "meh"}, "ignored", None),
    ],
)
def test_feedback_normalisation(row: dict[str, Any], kind: str, value: float | None) -> None:
    feedback = normalise_feedback(row)
    assert (feedback.kind, feedback.value) == (kind, value)


def test_human_feedback_scores_each_item() -> None:
    evaluator = get_evaluator("human_feedback")
    assert evaluator.kind == "human"
    items = [
        EvalItem(metadata={"feedback": [{"name": "thumbs", "value": 1, "comment": "great"}]}),
        EvalItem(metadata={"feedback": [{"name": "thumbs", "value": 0}, {"name": "rating", "value": 5}]}),
        EvalItem(metadata={"feedback": [{"name": "rating", "value": 3, "explanation": "ok-ish"}]}),
        EvalItem(metadata={"feedback": [{"name": "rating", "value": 1}, {"name": "thumbs", "label": "down"}]}),
        EvalItem(output="no feedback at all"),
        EvalItem(metadata={"feedback": [{"name": "comment", "comment": "why so slow?"}]}),
        EvalItem(metadata={"feedback": {"name": "thumbs", "value": 1}}),
    ]
    scores = evaluator.evaluate(items)
    assert [(s.value, s.label) for s in scores[:4]] == [
        (1.0, "positive"),
        (0.5, "mixed"),
        (0.5, "neutral"),
        (0.0, "negative"),
    ]
    assert scores[0].explanation == "great"
    assert scores[1].metadata["thumbs_down"] == 1 and scores[1].metadata["rating_mean"] == 5.0
    assert scores[1].metadata["n"] == 2
    assert scores[4].is_error and scores[4].explanation == NO_FEEDBACK
    assert scores[5].is_error and "why so slow?" in scores[5].explanation and scores[5].metadata["comments"] == 1
    assert scores[6].is_error and "must be a list" in scores[6].explanation


def test_human_feedback_aggregates_per_model_and_variant() -> None:
    def item(trace: str, model: str, variant: str | None, *feedback: dict[str, Any]) -> EvalItem:
        meta = {"trace_id": trace, "model": model, "variant": variant, "feedback": list(feedback)}
        return EvalItem(metadata=meta)

    items = [
        item("t1", "gpt-4o", "a", {"name": "thumbs", "value": 1, "comment": "nice"}),
        item("t2", "gpt-4o", "b", {"name": "rating", "value": 5}, {"name": "rating", "value": 3}),
        item("t3", "llama", "b", {"name": "thumbs", "value": 0}),
        item("t4", "llama", None),
    ]
    evaluator = HumanFeedback()
    result = evaluator.aggregate(items, evaluator.evaluate(items))
    by_model = {g["group"]: g for g in result["by_model"]}
    assert by_model["gpt-4o"]["mean"] == pytest.approx((1.0 + 0.75) / 2)
    assert by_model["gpt-4o"]["rating_mean"] == 4.0 and by_model["gpt-4o"]["comments"] == 1
    assert by_model["llama"]["thumbs_up_rate"] == 0.0 and by_model["llama"]["traces"] == 1
    by_variant = {g["group"]: g for g in result["by_variant"]}
    assert by_variant["a"]["thumbs_up_rate"] == 1.0
    assert by_variant["b"]["n"] == 3 and by_variant["b"]["mean"] == pytest.approx((0.75 + 0.0) / 2)
    assert result["overall"]["traces"] == 3 and result["overall"]["n"] == 4


def test_summarize_feedback_rows() -> None:
    rows: list[dict[str, Any]] = [
        {"trace_id": "t1", "name": "thumbs", "value": 1.0, "label": "", "explanation": "", "variant": "a"},
        {"trace_id": "t1", "name": "thumbs", "value": 1.0, "label": "", "explanation": "", "variant": "a"},
        {"trace_id": "t1", "name": "thumbs", "value": 1.0, "label": "", "explanation": "", "variant": "a"},
        {"trace_id": "t2", "name": "thumbs", "value": 0.0, "label": "", "explanation": "bad", "variant": "a"},
        {"trace_id": "t3", "name": "rating", "value": 2.0, "label": "", "explanation": "", "variant": "b"},
        {"trace_id": "t4", "name": "thumbs", "value": None, "label": "up", "explanation": "", "variant": None},
        {"trace_id": "t5", "name": "bleu", "value": 40.0, "source": "evaluator", "variant": "a"},
    ]
    a, b, none = summarize_feedback(rows, group_by="variant")
    # Three votes on one trace weigh as much as one vote on another.
    assert (a["group"], a["traces"], a["n"], a["mean"]) == ("a", 2, 4, 0.5)
    assert (a["thumbs_up"], a["thumbs_down"], a["thumbs_up_rate"], a["comments"]) == (3, 1, 0.75, 1)
    assert (b["group"], b["ratings"], b["rating_mean"], b["mean"]) == ("b", 1, 2.0, 0.25)
    assert (none["group"], none["thumbs_up"]) == (None, 1)
    by_name = {s["group"]: s for s in summarize_feedback(rows, group_by="name")}
    assert set(by_name) == {"thumbs", "rating"}
    assert summarize_feedback([], group_by="model") == []
    with pytest.raises(ValueError, match="group_by"):
        summarize_feedback(rows, group_by="colour")


def test_scores_are_frozen() -> None:
    score = HumanFeedback().evaluate([EvalItem(metadata={"feedback": [{"name": "thumbs", "value": 1}]})])[0]
    assert isinstance(score, Score)
    with pytest.raises(AttributeError):
        score.value = 0.0  # type: ignore[misc]
