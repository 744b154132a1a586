"""A small app instrumented with the SDK, run as its own process by the end-to-end tests.

``python -m tests.support.sdk_app tree``: one trace using every function kind, threads, asyncio
tasks, an LLM span and a caught error; prints the trace id.
``python -m tests.support.sdk_app emit N [--wait S]``: N spans in traces of 10; with ``--wait``,
keeps flushing for up to S seconds and exits 0 only once everything is delivered.
``python -m tests.support.sdk_app drain S``: starts the SDK and flushes what earlier runs spooled.

Settings come from ``LOOPWISE_*`` variables, like a real app's.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import loopwise


@loopwise.observe(as_type="retrieval")
def retrieve(query: str) -> list[str]:
    return [f"doc about {query}", "refund policy: 30 days"]


@loopwise.observe(as_type="llm")
def generate(question: str, docs: list[str]) -> str:
    answer = "Refunds are accepted within 30 days."
    loopwise.update_current_llm(
        model="gpt-4o-mini",
        provider="openai",
        input_messages=[{"role": "system", "content": "Answer from the docs."}, {"role": "user", "content": question}],
        output_messages=[{"role": "assistant", "content": answer, "finish_reason": "stop"}],
        input_tokens=42,
        output_tokens=9,
    )
    return answer


@loopwise.observe
def stream_words(text: str) -> Iterator[str]:
    for word in text.split():
        yield word + " "


@loopwise.observe(as_type="tool")
async def lookup(order: int) -> dict[str, int]:
    await asyncio.sleep(0.001)
    return {"order": order, "days_since_purchase": 12}


@loopwise.observe(as_type="agent")
async def agent_step(orders: list[int]) -> list[dict[str, int]]:
    return list(await asyncio.gather(*(asyncio.create_task(lookup(o)) for o in orders)))


@loopwise.observe
async def async_tokens(n: int) -> AsyncIterator[int]:
    for i in range(n):
        await asyncio.sleep(0)
        yield i


@loopwise.observe(as_type="tool")
def flaky_tool() -> None:
    raise TimeoutError("inventory service timed out after 2.0s")


_TRACE_IDS: list[str] = []


@loopwise.observe(name="support-request")
def handle(question: str) -> str:
    _TRACE_IDS.append(loopwise.get_current_trace_id() or "")  # as an app keeps it for feedback
    with loopwise.propagate(user_id="user-7", session_id="sess-1", tags=["e2e"], variant="B"):
        docs = retrieve(question)
        answer = generate(question, docs)
        streamed = "".join(stream_words(answer))
        asyncio.run(_async_part())
        with ThreadPoolExecutor(2) as pool:  # a copied context carries the parent into the thread
            for f in [pool.submit(contextvars.copy_context().run, retrieve, q) for q in ("a", "b")]:
                f.result()
        t = threading.Thread(target=contextvars.copy_context().run, args=(retrieve, "thread"))
        t.start()
        t.join()
        with contextlib.suppress(TimeoutError):
            flaky_tool()
        return streamed.strip()


async def _async_part() -> None:
    await agent_step([1, 2])
    [x async for x in async_tokens(3)]


@loopwise.observe
def leaf(i: int) -> int:
    return i


@loopwise.observe
def root(i: int) -> None:
    for j in range(9):
        leaf(j)


def _flush_until(deadline_s: float) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if loopwise.flush(1.0):
            return True
    return False


def main(argv: list[str]) -> int:
    loopwise.configure(batch_delay_s=0.1)
    mode = argv[0]
    if mode == "tree":
        handle("Can I get a refund?")
        print(json.dumps({"trace_id": _TRACE_IDS[-1], "delivered": loopwise.flush(15)}), flush=True)
        return 0
    if mode == "emit":
        n = int(argv[1])
        t0 = time.perf_counter()
        for i in range(n // 10):
            root(i)
        print(json.dumps({"emitted": n, "seconds": time.perf_counter() - t0}), flush=True)
        if "--wait" in argv:
            ok = _flush_until(float(argv[argv.index("--wait") + 1]))
            print(json.dumps({"delivered": ok, **loopwise.stats()}), flush=True)
            return 0 if ok else 1
        return 0
    if mode == "drain":
        ok = _flush_until(float(argv[1]))
        print(json.dumps({"delivered": ok, **loopwise.stats()}), flush=True)
        return 0 if ok else 1
    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
