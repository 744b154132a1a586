"""The simulated support app behind ``loopwise demo``: real SDK calls around canned content.

Three request handlers, each a root span with children, the way a real LLM app is traced:

- ``support-chat`` (agent): help-center search, a planner LLM that picks a tool, the tool, then
  the answer LLM, streamed for web and mobile chat;
- ``rag-answer``: query embedding, vector search, a streamed answer, a citation check;
- ``summarize-ticket``: the helpdesk API, similar tickets, a summary LLM, a self-hosted triage
  model, and a ticket update.

Faults are raised inside the observed functions, like a provider client or a flaky service
would, so the SDK records them; the handlers recover from some (a retried rate limit, a tool
timeout) and let the others fail the request. Every random choice comes from a per-trace
``random.Random`` derived from the seed, so content is the same whatever the concurrency.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import loopwise
from loopwise import semconv as sc
from loopwise_collector.demo import _corpus as corpus

APPS = ("support-chat", "rag-answer", "summarize-ticket")
_APP_WEIGHTS = (5, 3, 2)
_PLANS = ("free", "pro", "pro", "business")
_REGIONS = ("eu-west-1", "us-east-1", "ap-southeast-2")
_CHANNELS = ("web", "web", "mobile", "email")
APP_VERSION = "2.14.1"


@dataclass(frozen=True, slots=True)
class Model:
    """A model the demo app calls; ``priced`` says whether the collector's price table knows it."""

    name: str
    provider: str
    priced: bool = True


GPT_4O = Model("gpt-4o", "openai")
GPT_4O_MINI = Model("gpt-4o-mini", "openai")
CLAUDE = Model("claude-3-5-sonnet-20241022", "anthropic")
GEMINI = Model("gemini-1.5-flash", "gcp.gemini")
EMBEDDING = Model("text-embedding-3-small", "openai")
# Self-hosted: open-weight models have no list price, so these spans show up as unpriced.
LLAMA = Model("llama-3.1-8b-instruct", "vllm", priced=False)
TRIAGE = Model("acme-triage-ft-v2", "vllm", priced=False)
UNPRICED = frozenset(m.name for m in (GPT_4O, GPT_4O_MINI, CLAUDE, GEMINI, EMBEDDING, LLAMA, TRIAGE) if not m.priced)


@dataclass(frozen=True, slots=True)
class Variant:
    """One arm of the A/B test: the models and prompt versions a user is pinned to."""

    name: str
    answer_model: Model
    rag_model: Model
    summary_model: Model
    answer_prompt: tuple[str, str]
    summary_prompt: tuple[str, str]


VARIANTS = {
    "A": Variant("A", GPT_4O, GPT_4O_MINI, GEMINI, ("support-answer", "3"), ("ticket-summary", "2")),
    "B": Variant("B", CLAUDE, GEMINI, GPT_4O_MINI, ("support-answer-concise", "1"), ("ticket-summary", "3")),
}


@dataclass(frozen=True, slots=True)
class User:
    """An end user (or, for ticket summaries, a support agent) and what sticks to them."""

    id: str
    plan: str
    region: str
    variant: str
    self_hosted_planner: bool  # their organisation routes planning to its own Llama


@dataclass(frozen=True, slots=True)
class Turn:
    """One request: the ``index``-th trace of the run, turn ``turn`` of its session."""

    index: int
    app: str
    user: User
    session_id: str
    turn: int
    channel: str


@dataclass(slots=True)
class TurnResult:
    """What one request sent, for the summary."""

    index: int
    app: str
    user_id: str
    session_id: str
    variant: str
    trace_id: str | None = None
    failed: bool = False  # the request raised: its root span is an error
    error_spans: int = 0
    llm_calls: list[tuple[str, int, int]] = field(default_factory=list)  # (model, input, output tokens)
    feedback: list[Feedback] = field(default_factory=list)  # to send after the run
    scores: list[str] = field(default_factory=list)  # names of the scores sent


@dataclass(frozen=True, slots=True)
class Feedback:
    """One human score a user gives a trace."""

    trace_id: str
    name: str
    value: bool | int
    comment: str | None
    metadata: dict[str, str]


class RateLimitError(Exception):
    """What a provider client raises on HTTP 429."""


class BadRequestError(Exception):
    """What a provider client raises on HTTP 400, e.g. a prompt over the context window."""


def plan_sessions(traces: int, seed: int) -> list[list[Turn]]:
    """Split ``traces`` requests into sessions of users, deterministically for ``seed``.

    Example:
        >>> sessions = plan_sessions(20, seed=7)
        >>> sum(len(s) for s in sessions), sessions == plan_sessions(20, seed=7)
        (20, True)
    """
    rng = random.Random(f"loopwise-demo:{seed}")  # noqa: S311 - demo content, not security
    users = []
    for i in range(max(4, traces // 6)):
        plan = rng.choice(_PLANS)
        users.append(
            User(
                id=f"user-{rng.randrange(16**6):06x}",
                plan=plan,
                region=rng.choice(_REGIONS),
                variant="A" if i % 2 == 0 else "B",  # sticky per user, half and half
                self_hosted_planner=plan == "business" and rng.random() < 0.6,
            )
        )
    agents = [User(f"agent-{name}", "internal", "eu-west-1", "AB"[i % 2], False)
              for i, name in enumerate(("maria", "kenji", "olu", "sven"))]  # fmt: skip
    sessions: list[list[Turn]] = []
    index = 0
    while index < traces:
        app = rng.choices(APPS, weights=_APP_WEIGHTS)[0]
        user = rng.choice(agents if app == "summarize-ticket" else users)
        length = {"support-chat": rng.randint(1, 5), "rag-answer": rng.randint(1, 2)}.get(app, 1)
        length = min(length, traces - index)
        session_id = f"sess-{rng.randrange(16**8):08x}"
        channel = "helpdesk" if app == "summarize-ticket" else rng.choice(_CHANNELS)
        sessions.append([Turn(index + k, app, user, session_id, k, channel) for k in range(length)])
        index += length
    return sessions


def tokens(text: str) -> int:
    """A rough token count (4 characters a token), as a tokenizer would report it.

    Example:
        >>> tokens("How do I rotate an API key?")
        7
    """
    return max(1, round(len(text) / 4))


class _Sim:
    """Per-request randomness, simulated latency and the result being filled in."""

    def __init__(self, turn: Turn, seed: int, error_rate: float, latency_scale: float) -> None:
        self.turn = turn
        self.rng = random.Random(f"loopwise-demo:{seed}:{turn.index}")  # noqa: S311
        self.scale = latency_scale
        self.result = TurnResult(turn.index, turn.app, turn.user.id, turn.session_id, turn.user.variant)
        faults = {
            "support-chat": ("tool_timeout", "tool_timeout", "rate_limit", "rate_limit_hard", "stream_reset"),
            "rag-answer": ("retrieval_down", "rate_limit", "stream_reset"),
            "summarize-ticket": ("tool_timeout", "context_length"),
        }[turn.app]
        if turn.channel == "email":  # answered without streaming
            faults = tuple(f for f in faults if f != "stream_reset")
        self.fault = self.rng.choice(faults) if self.rng.random() < error_rate else None

    def sleep(self, lo_ms: float, hi_ms: float) -> None:
        ms = self.rng.uniform(lo_ms, hi_ms) * self.scale
        if ms > 0:
            time.sleep(ms / 1000)

    def hexid(self, n: int) -> str:
        return f"{self.rng.getrandbits(4 * n):0{n}x}"

    def fail(self, exc: BaseException) -> BaseException:
        self.result.error_spans += 1
        return exc


def _llm_details(sim: _Sim, model: Model, messages: list[dict[str, Any]], prompt: tuple[str, str] | None) -> int:
    loopwise.update_current_span(name=f"chat {model.name}")
    loopwise.update_current_llm(
        model=model.name, provider=model.provider, input_messages=messages,
        prompt_name=prompt[0] if prompt else None, prompt_version=prompt[1] if prompt else None,
        parameters={"temperature": 0.2, "max_tokens": 512},
    )  # fmt: skip
    return sum(tokens(str(m.get("content") or "")) + 4 for m in messages)


def _llm_usage(sim: _Sim, model: Model, input_tokens: int, reply: str, turn: int) -> None:
    output_tokens = tokens(reply) + sim.rng.randint(0, 6)
    cached = (input_tokens // 2) // 128 * 128 if turn > 0 and model.provider in ("openai", "anthropic") else None
    prefix = "msg_" if model.provider == "anthropic" else "chatcmpl-"
    loopwise.update_current_llm(
        response_model=model.name, output_messages=[{"role": "assistant", "content": reply}],
        input_tokens=input_tokens, output_tokens=output_tokens, cached_input_tokens=cached or None,
        response_id=prefix + sim.hexid(24), finish_reasons=["stop"],
    )  # fmt: skip
    sim.result.llm_calls.append((model.name, input_tokens, output_tokens))


def _provider_errors(sim: _Sim, model: Model, input_tokens: int) -> None:
    """Raise the provider error the request's fault calls for, if any."""
    if sim.fault in ("rate_limit", "rate_limit_hard"):
        if sim.fault == "rate_limit":
            sim.fault = None  # the client's retry goes through
        sim.result.llm_calls.append((model.name, 0, 0))
        raise sim.fail(RateLimitError(
            f"Error code: 429 - Rate limit reached for {model.name} in organization org-acme on tokens per min "
            f"(TPM): Limit 450000, Used 449120, Requested {input_tokens}. Please try again in 1.2s."
        ))  # fmt: skip
    if sim.fault == "context_length":
        sim.result.llm_calls.append((model.name, 0, 0))
        raise sim.fail(BadRequestError(
            f"Error code: 400 - This model's maximum context length is 128000 tokens. However, your messages "
            f"resulted in {128000 + sim.rng.randint(200, 9000)} tokens. Please reduce the length of the messages."
        ))  # fmt: skip


@loopwise.observe(name="chat", as_type="llm", capture_input=False)
def chat(
    sim: _Sim,
    model: Model,
    messages: list[dict[str, Any]],
    reply: str,
    prompt: tuple[str, str] | None = None,
    may_fail: bool = False,
) -> str:
    """One non-streamed chat completion; ``may_fail`` lets the request's fault hit this call."""
    input_tokens = _llm_details(sim, model, messages, prompt)
    sim.sleep(6, 18)
    if may_fail:
        _provider_errors(sim, model, input_tokens)
    _llm_usage(sim, model, input_tokens, reply, sim.turn.turn)
    return reply


@loopwise.observe(name="chat", as_type="llm", capture_input=False)
def chat_stream(
    sim: _Sim, model: Model, messages: list[dict[str, Any]], reply: str, prompt: tuple[str, str] | None = None
) -> Iterator[str]:
    """One streamed chat completion: chunks of a few words, like server-sent deltas."""
    input_tokens = _llm_details(sim, model, messages, prompt)
    sim.sleep(8, 25)  # time to first token
    _provider_errors(sim, model, input_tokens)
    words = reply.split(" ")
    chunks = [" ".join(words[i : i + 3]) + " " for i in range(0, len(words), 3)]
    for n, chunk in enumerate(chunks):
        if sim.fault == "stream_reset" and n == 3:
            raise sim.fail(ConnectionResetError(
                f"peer closed connection without sending complete message body (incomplete chunked read) "
                f"after {n} chunks"
            ))  # fmt: skip
        yield chunk
        sim.sleep(0.2, 0.8)
    _llm_usage(sim, model, input_tokens, reply, sim.turn.turn)


@loopwise.observe(name="embeddings", as_type="embedding", capture_input=False)
def embed(sim: _Sim, text: str) -> list[float]:
    """Embed the query (the vector is made up; its size is what a real one would have)."""
    loopwise.update_current_span(name=f"embeddings {EMBEDDING.name}", input=text)
    loopwise.update_current_llm(
        model=EMBEDDING.name, provider=EMBEDDING.provider, operation="embeddings", input_tokens=tokens(text)
    )
    # update_current_llm marks the span an LLM call; this one is an embedding.
    loopwise.update_current_span(attributes={sc.LOOPWISE_SPAN_TYPE: "embedding"})
    sim.sleep(2, 6)
    sim.result.llm_calls.append((EMBEDDING.name, tokens(text), 0))
    vector = [round(sim.rng.uniform(-0.1, 0.1), 4) for _ in range(1536)]
    loopwise.update_current_span(output={"dimensions": len(vector), "head": vector[:4]})
    return vector


@loopwise.observe(name="retrieve", as_type="retrieval", capture_input=False)
def retrieve(sim: _Sim, name: str, query: str, doc_ids: tuple[str, ...], k: int = 3) -> list[dict[str, Any]]:
    """Vector search over the help center: the right articles first, one distractor."""
    loopwise.update_current_span(name=name, input={"query": query, "top_k": k, "index": "help-center-v7"})
    sim.sleep(3, 12)
    if sim.fault == "retrieval_down":
        raise sim.fail(ConnectionError("vector store qdrant.internal:6333 unreachable: [Errno 111] Connection refused"))
    others = [d for d in corpus.DOCS if d not in doc_ids]
    ids = [*doc_ids, sim.rng.choice(others)][:k]
    score = sim.rng.uniform(0.82, 0.93)
    docs = []
    for doc_id in ids:
        doc = corpus.DOCS[doc_id]
        docs.append({"id": doc.id, "title": doc.title, "score": round(score, 3), "text": doc.text})
        score -= sim.rng.uniform(0.04, 0.15)
    return docs


@loopwise.observe(name="tool", as_type="tool", capture_input=False)
def call_tool(sim: _Sim, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """A call into one of the app's back-end services."""
    loopwise.update_current_span(name=name, input=arguments, metadata={"service": name.split("_")[-1] + "-api"})
    if sim.fault == "tool_timeout":
        sim.sleep(15, 25)
        sim.fault = None
        raise sim.fail(TimeoutError(f"{name}: upstream did not respond within 2.0 s (GET /internal/{name})"))
    sim.sleep(2, 10)
    rng = sim.rng
    canned: dict[str, dict[str, Any]] = {
        "get_account": {"status": "active", "sso": rng.random() < 0.3, "two_factor": rng.random() < 0.5},
        "get_subscription": {"plan": sim.turn.user.plan, "renews": "2025-07-01", "seats": rng.randint(2, 80)},
        "lookup_invoices": {
            "invoices": [
                {"id": f"INV-{rng.randint(10000, 99999)}", "total_usd": rng.choice([49.0, 99.0, 249.0, 412.37])}
                for _ in range(2)
            ]
        },
        "create_refund": {"refund_id": f"re_{sim.hexid(12)}", "status": "pending", "eta_days": 7},
        "list_api_keys": {"keys": [{"name": "ci", "last_used": "2h ago"}, {"name": "zapier", "last_used": "9d ago"}]},
        "check_api_usage": {"limit_rpm": 600, "peak_rpm": rng.randint(560, 900), "429s_last_hour": rng.randint(3, 400)},
        "list_webhook_failures": {"failed": rng.randint(0, 40), "retrying": rng.randint(0, 12)},
        "start_export": {"export_id": f"exp_{sim.hexid(10)}", "status": "queued"},
        "get_service_status": {"incident": "INC-2291", "component": "dashboard", "state": "investigating"},
        "fetch_ticket": {"status": "open", "messages": rng.randint(1, 4)},
        "update_ticket": {"ok": True},
        "check_citations": {"ok": True},
    }
    return {"name": name, **canned.get(name, {"ok": True}), **arguments}


# --- request handlers -----------------------------------------------------------------------------


@loopwise.observe(name="support-chat", as_type="agent", capture_input=False)
def support_chat(sim: _Sim, question: str, q: corpus.Question, history: list[dict[str, Any]]) -> str:
    """Multi-turn support chat: search, plan, call a tool, answer (streamed in chat channels)."""
    sim.result.trace_id = loopwise.get_current_trace_id()
    variant = VARIANTS[sim.turn.user.variant]
    loopwise.update_current_span(input={"message": question, "turn": sim.turn.turn})
    docs = retrieve(sim, "search_help_center", question, q.docs)
    planner = LLAMA if sim.turn.user.self_hosted_planner else GPT_4O_MINI
    args = dict(q.tool_args)
    decision = json.dumps({"tool": q.tool, "arguments": args})
    chat(sim, planner, [{"role": "system", "content": corpus.PLANNER_PROMPT},
                        {"role": "user", "content": question}], decision, ("tool-router", "5"))  # fmt: skip
    try:
        tool_result: dict[str, Any] = call_tool(sim, q.tool, args)
        reply = q.answer
    except TimeoutError as exc:  # degrade: answer from the articles alone
        tool_result = {"error": str(exc)}
        reply = (
            "I couldn't reach our account system just now, so I can't check your details. From our help "
            f"center: {docs[0]['text'].split('. ')[0]}. Want me to open a ticket so an agent follows up?"
        )
    context = "\n\n".join(f"[{d['id']}] {d['title']}\n{d['text']}" for d in docs)
    messages = [
        {"role": "system", "content": corpus.SYSTEM_PROMPTS[variant.name] + "\n\nArticles:\n" + context},
        *history,
        {"role": "user", "content": question},
        {"role": "tool", "tool_call_id": "call_" + sim.hexid(12), "content": json.dumps(tool_result)},
    ]
    for attempt in range(2):
        try:
            if sim.turn.channel in ("web", "mobile"):
                return "".join(chat_stream(sim, variant.answer_model, messages, reply, variant.answer_prompt)).strip()
            return chat(sim, variant.answer_model, messages, reply, variant.answer_prompt, may_fail=True)
        except RateLimitError:
            if attempt == 1:
                raise
            sim.sleep(10, 20)  # the client's backoff before its one retry
    raise AssertionError("unreachable")


@loopwise.observe(name="rag-answer", capture_input=False)
def rag_answer(sim: _Sim, question: str, q: corpus.Question) -> str:
    """Docs-site search box: embed, search, stream an answer with citations, check them."""
    sim.result.trace_id = loopwise.get_current_trace_id()
    variant = VARIANTS[sim.turn.user.variant]
    loopwise.update_current_span(input={"query": question})
    embed(sim, question)
    docs = retrieve(sim, "vector_search", question, q.docs, k=4)
    context = "\n\n".join(f"[{d['id']}] {d['text']}" for d in docs)
    reply = f"{q.answer} [{q.docs[0]}]"
    messages = [
        {"role": "system", "content": corpus.SYSTEM_PROMPTS["B"] + "\n\nArticles:\n" + context},
        {"role": "user", "content": question},
    ]
    prompt = ("docs-answer", "7" if variant.name == "A" else "8")
    for attempt in range(2):
        try:
            answer = "".join(chat_stream(sim, variant.rag_model, messages, reply, prompt)).strip()
            break
        except RateLimitError:
            if attempt == 1:
                raise
            sim.sleep(10, 20)
    call_tool(sim, "check_citations", {"cited": [q.docs[0]], "retrieved": [d["id"] for d in docs]})
    return answer


@loopwise.observe(name="summarize-ticket", capture_input=False)
def summarize_ticket(sim: _Sim, ticket: corpus.Ticket) -> dict[str, str]:
    """Helpdesk triage: fetch the ticket, find similar ones, summarise, classify, update."""
    sim.result.trace_id = loopwise.get_current_trace_id()
    variant = VARIANTS[sim.turn.user.variant]
    loopwise.update_current_span(input={"ticket_id": ticket.id})
    call_tool(sim, "fetch_ticket", {"ticket_id": ticket.id})
    similar = retrieve(sim, "similar_tickets", ticket.subject, (), k=2)
    thread = "\n".join(ticket.thread)
    triage = {"summary": ticket.summary, "category": ticket.category, "priority": ticket.priority}
    messages = [
        {"role": "system", "content": corpus.SUMMARY_PROMPT},
        {"role": "user", "content": f"Subject: {ticket.subject}\n\n{thread}\n\nSimilar: {[d['id'] for d in similar]}"},
    ]
    chat(sim, variant.summary_model, messages, ticket.summary, variant.summary_prompt, may_fail=True)
    chat(sim, TRIAGE, [{"role": "user", "content": ticket.summary}], json.dumps(triage))
    call_tool(sim, "update_ticket", {"ticket_id": ticket.id, "category": ticket.category, "priority": ticket.priority})
    return triage


def run_session(session: list[Turn], seed: int, error_rate: float, feedback_rate: float, latency_scale: float,
                done: Any) -> None:  # fmt: skip
    """Run a session's turns in order, calling ``done(result)`` after each."""
    history: list[dict[str, Any]] = []
    for turn in session:
        sim = _Sim(turn, seed, error_rate, latency_scale)
        user = turn.user
        tags = ["demo", turn.app, user.plan, turn.channel]
        metadata = {"app_version": APP_VERSION, "region": user.region, "plan": user.plan, "channel": turn.channel,
                    "turn": turn.turn}  # fmt: skip
        good = True
        with loopwise.propagate(user_id=user.id, session_id=turn.session_id, tags=tags, variant=user.variant,
                                metadata=metadata):  # fmt: skip
            try:
                if turn.app == "summarize-ticket":
                    summarize_ticket(sim, sim.rng.choice(corpus.TICKETS))
                else:
                    q = sim.rng.choice(corpus.QUESTIONS)
                    question = (sim.rng.choice(corpus.FOLLOW_UPS) if turn.turn else "") + q.text
                    if turn.app == "rag-answer":
                        rag_answer(sim, question, q)
                    else:
                        answer = support_chat(sim, question, q, history)
                        history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
            except Exception:  # the app's error page; the root span already records the failure
                sim.result.failed = True
                sim.result.error_spans += 1
            good = sim.result.error_spans == 0 and sim.rng.random() < 0.8
        _feedback(sim, good, feedback_rate)
        done(sim.result)


def _feedback(sim: _Sim, good: bool, feedback_rate: float) -> None:
    """Some users rate the answer: thumbs up or down with an optional comment, or 1 to 5 stars."""
    trace_id = sim.result.trace_id
    if trace_id is None or sim.rng.random() >= feedback_rate:
        return
    meta = {"channel": sim.turn.channel, "app": sim.turn.app}
    if sim.rng.random() < 0.65:
        comment = sim.rng.choice(corpus.THUMBS_UP_COMMENTS if good else corpus.THUMBS_DOWN_COMMENTS)
        sim.result.feedback.append(Feedback(trace_id, "thumbs", good, comment or None, meta))
    else:
        stars = sim.rng.choice((4, 5, 5) if good else (1, 2, 2, 3))
        sim.result.feedback.append(Feedback(trace_id, "rating", stars, None, meta))


def send_feedback(results: list[TurnResult]) -> None:
    """Send the feedback users gave, through ``loopwise.score``.

    It goes after all requests, as users rate answers some time after reading them; that also
    lets the SDK spool each trace's spans in a few large batches rather than one per score.
    """
    for result in results:
        for f in result.feedback:
            if loopwise.score(trace_id=f.trace_id, name=f.name, value=f.value, comment=f.comment, metadata=f.metadata):
                result.scores.append(f.name)
