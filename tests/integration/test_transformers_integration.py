"""`loopwise.integrations.transformers.wrap_pipeline` traces a real `transformers` text-generation pipeline.

Why: the wrapper must be invisible to the app (same arguments, same result, the pipeline's own attributes, the
pipeline's exceptions unchanged) while each call becomes one LLM span under the app's span, with the model, the
prompt and only the generated text (not the prompt the pipeline repeats), and token counts. The tiny GPT-2 from
`tests/support/tiny_gpt2.py` runs the real pipeline code offline. In-process tests read the span as the exporter
would send it; one test sends it through the real collector and reads it back from the trace API.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import transformers
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import loopwise
from loopwise import semconv as sc
from loopwise._export._encode import finish_attributes
from loopwise._export._pipeline import ExportPipeline
from loopwise._runtime import RUNTIME
from loopwise.integrations.transformers import TracedPipeline, wrap_pipeline
from tests.support.collector_process import CollectorProcess

pytestmark = pytest.mark.integration

SPAN = "transformers.text-generation"
GREEDY: dict[str, Any] = {"do_sample": False, "max_new_tokens": 8}
# The tiny tokenizer has no chat template; this one renders "role: content" lines and an assistant cue.
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
MEMORY = InMemorySpanExporter()


@pytest.fixture(scope="module")
def generator(tiny_gpt2: Path) -> transformers.Pipeline:
    return transformers.pipeline("text-generation", model=str(tiny_gpt2))


@pytest.fixture(scope="module")
def chat_generator(tiny_gpt2: Path) -> transformers.Pipeline:
    pipe = transformers.pipeline("text-generation", model=str(tiny_gpt2))
    pipe.tokenizer.chat_template = CHAT_TEMPLATE
    return pipe


@dataclass
class Exported:
    """Ended spans, and each one's attributes as the exporter sends them (captured content included)."""

    memory: InMemorySpanExporter
    content: dict[int, Any] = field(default_factory=dict)

    def spans(self, name: str = SPAN) -> list[ReadableSpan]:
        return [s for s in self.memory.get_finished_spans() if s.name == name]

    def only(self, name: str = SPAN) -> ReadableSpan:
        spans = self.spans(name)
        assert len(spans) == 1, [s.name for s in self.memory.get_finished_spans()]
        return spans[0]

    def attributes(self, span: ReadableSpan) -> dict[str, Any]:
        assert span.context is not None
        return finish_attributes(span, self.content.get(span.context.span_id), RUNTIME.config)

    def messages(self, span: ReadableSpan, key: str) -> list[dict[str, Any]]:
        return json.loads(self.attributes(span)[key])


def configure(spool: Path, **settings: Any) -> None:
    defaults: dict[str, Any] = {
        "endpoint": "http://127.0.0.1:9", "api_key": "x", "enabled": True, "sample_rate": 1.0, "capture_content": True
    }  # fmt: skip
    loopwise.configure(spool_dir=spool, **{**defaults, **settings})


@pytest.fixture
def exported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Exported]:
    """Loopwise configured for this test (nothing listens on the endpoint: batches stay spooled), spans recorded."""
    configure(tmp_path / "spool")
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)  # Loopwise's own, or another test's SDK provider it attached to
    if not getattr(provider, "_transformers_test_memory", False):
        provider.add_span_processor(SimpleSpanProcessor(MEMORY))
        provider._transformers_test_memory = True  # type: ignore[attr-defined]
    MEMORY.clear()
    out = Exported(MEMORY)
    enqueue = ExportPipeline.enqueue_span

    def record(self: ExportPipeline, span: ReadableSpan, content: dict[str, Any] | None = None) -> None:
        # The Loopwise processor takes the captured content off the span: keep it to see what is exported.
        assert span.context is not None
        out.content[span.context.span_id] = content
        enqueue(self, span, content)

    monkeypatch.setattr(ExportPipeline, "enqueue_span", record)
    yield out
    loopwise.shutdown(1)
    MEMORY.clear()


def n_tokens(pipe: transformers.Pipeline, text: str, **kwargs: Any) -> int:
    return len(pipe.tokenizer(text, **kwargs)["input_ids"])


def parts(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["role"], "".join(p["content"] for p in m["parts"])) for m in messages]


def test_prompt_is_a_child_llm_span_with_model_prompt_completion_and_tokens(
    generator: transformers.Pipeline, tiny_gpt2: Path, exported: Exported
) -> None:
    traced = wrap_pipeline(generator)

    @loopwise.observe
    def handler() -> Any:
        return traced("The cat", **GREEDY)

    result = handler()

    assert result == generator("The cat", **GREEDY)  # the pipeline's own result, unchanged
    full = result[0]["generated_text"]
    assert full.startswith("The cat") and len(full) > len("The cat")
    completion = full[len("The cat") :]
    span, root = exported.only(), exported.only("handler")
    assert span.parent is not None and span.parent.span_id == root.context.span_id
    assert span.context.trace_id == root.context.trace_id
    assert span.status.status_code is StatusCode.UNSET
    attrs = exported.attributes(span)
    assert attrs[sc.LOOPWISE_SPAN_TYPE] == "llm"
    assert attrs[sc.GEN_AI_OPERATION_NAME] == "text_completion"
    assert attrs[sc.GEN_AI_PROVIDER_NAME] == "huggingface"
    assert attrs[sc.GEN_AI_REQUEST_MODEL] == str(tiny_gpt2) == generator.model.name_or_path
    assert attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] == 8
    assert sc.GEN_AI_REQUEST_TEMPERATURE not in attrs and sc.GEN_AI_REQUEST_TOP_P not in attrs
    assert parts(exported.messages(span, sc.GEN_AI_INPUT_MESSAGES)) == [("user", "The cat")]
    # Only the generated text is the output: the prompt the pipeline repeats is not recorded twice.
    assert parts(exported.messages(span, sc.GEN_AI_OUTPUT_MESSAGES)) == [("assistant", completion)]
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == n_tokens(generator, "The cat") == 3
    assert attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == n_tokens(generator, completion, add_special_tokens=False)
    assert 1 <= attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] <= 8


def test_sampling_parameters_name_and_provider(generator: transformers.Pipeline, exported: Exported) -> None:
    traced = wrap_pipeline(generator, name="local-gpt2", provider="local")

    result = traced("Once upon a time", do_sample=True, temperature=0.7, top_p=0.9, max_new_tokens=4)

    span = exported.only("local-gpt2")
    assert span.parent is None  # no current span: the LLM span is the trace's root
    attrs = exported.attributes(span)
    assert attrs[sc.GEN_AI_PROVIDER_NAME] == "local"
    assert (attrs[sc.GEN_AI_REQUEST_TEMPERATURE], attrs[sc.GEN_AI_REQUEST_TOP_P]) == (0.7, 0.9)
    assert attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] == 4
    completion = result[0]["generated_text"][len("Once upon a time") :]
    assert parts(exported.messages(span, sc.GEN_AI_OUTPUT_MESSAGES)) == [("assistant", completion)]


def test_return_full_text_false_records_the_result_as_is(generator: transformers.Pipeline, exported: Exported) -> None:
    traced = wrap_pipeline(generator)

    result = traced("The cat", return_full_text=False, **GREEDY)

    completion = result[0]["generated_text"]
    assert not completion.startswith("The cat")
    span = exported.only()
    assert parts(exported.messages(span, sc.GEN_AI_OUTPUT_MESSAGES)) == [("assistant", completion)]
    attrs = exported.attributes(span)
    assert attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == n_tokens(generator, completion, add_special_tokens=False)


def test_batch_of_prompts_is_one_span_with_every_prompt_and_summed_tokens(
    generator: transformers.Pipeline, exported: Exported
) -> None:
    prompts = ["The cat", "Once upon a time", "Hello world"]
    traced = wrap_pipeline(generator)

    result = traced(prompts, **GREEDY)

    assert result == generator(prompts, **GREEDY)
    completions = [r[0]["generated_text"][len(p) :] for p, r in zip(prompts, result, strict=True)]
    span = exported.only()
    attrs = exported.attributes(span)
    assert parts(exported.messages(span, sc.GEN_AI_INPUT_MESSAGES)) == [("user", p) for p in prompts]
    assert parts(exported.messages(span, sc.GEN_AI_OUTPUT_MESSAGES)) == [("assistant", c) for c in completions]
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == sum(n_tokens(generator, p) for p in prompts)
    assert attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == sum(
        n_tokens(generator, c, add_special_tokens=False) for c in completions
    )


def test_several_sequences_per_prompt_are_all_recorded(generator: transformers.Pipeline, exported: Exported) -> None:
    traced = wrap_pipeline(generator)

    result = traced("The cat", do_sample=False, num_beams=2, num_return_sequences=2, max_new_tokens=4)

    completions = [r["generated_text"][len("The cat") :] for r in result]
    span = exported.only()
    assert parts(exported.messages(span, sc.GEN_AI_OUTPUT_MESSAGES)) == [("assistant", c) for c in completions]
    assert exported.attributes(span)[sc.GEN_AI_USAGE_INPUT_TOKENS] == 3  # the prompt once, however many sequences


def test_token_ids_output_counts_the_new_ids(generator: transformers.Pipeline, exported: Exported) -> None:
    traced = wrap_pipeline(generator)

    result = traced("The cat", return_tensors=True, **GREEDY)

    ids = result[0]["generated_token_ids"]  # the prompt's ids, then the generated ones
    attrs = exported.attributes(exported.only())
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == 3
    assert attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == len(ids) - 3 == 8
    assert sc.GEN_AI_OUTPUT_MESSAGES not in attrs  # no text to record


def test_chat_messages(chat_generator: transformers.Pipeline, exported: Exported) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "The cat"}]
    traced = wrap_pipeline(chat_generator)

    result = traced(messages, **GREEDY)

    conversation = result[0]["generated_text"]
    assert conversation[:2] == messages and conversation[2]["role"] == "assistant"
    reply = conversation[2]["content"]
    span = exported.only()
    attrs = exported.attributes(span)
    assert attrs[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert parts(exported.messages(span, sc.GEN_AI_INPUT_MESSAGES)) == [("system", "Be brief."), ("user", "The cat")]
    assert parts(exported.messages(span, sc.GEN_AI_OUTPUT_MESSAGES)) == [("assistant", reply)]
    prompt_ids = chat_generator.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == len(prompt_ids["input_ids"]) > n_tokens(chat_generator, "The cat")
    assert attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == n_tokens(chat_generator, reply, add_special_tokens=False)


def test_batch_of_chats_and_assistant_prefill(chat_generator: transformers.Pipeline, exported: Exported) -> None:
    chats = [
        [{"role": "user", "content": "The cat"}],
        [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "The dog"}],  # a prefill
    ]
    traced = wrap_pipeline(chat_generator)

    result = traced(chats, **GREEDY)

    reply = result[0][0]["generated_text"][-1]["content"]
    prefilled = result[1][0]["generated_text"][-1]["content"]
    assert len(result[1][0]["generated_text"]) == 2 and prefilled.startswith("The dog")
    span = exported.only()
    assert parts(exported.messages(span, sc.GEN_AI_INPUT_MESSAGES)) == [
        ("user", "The cat"), ("user", "Hello"), ("assistant", "The dog")
    ]  # fmt: skip
    # The prefilled message's output is what the model added to it.
    outputs = parts(exported.messages(span, sc.GEN_AI_OUTPUT_MESSAGES))
    assert outputs == [("assistant", reply), ("assistant", prefilled[len("The dog") :])]


def test_pipeline_error_is_recorded_and_re_raised_unchanged(
    generator: transformers.Pipeline, exported: Exported
) -> None:
    traced = wrap_pipeline(generator)

    with pytest.raises(ValueError, match="not_a_generate_kwarg") as raised:
        traced("The cat", not_a_generate_kwarg=1, max_new_tokens=2)

    span = exported.only()
    assert span.status.status_code is StatusCode.ERROR
    (event,) = [e for e in span.events if e.name == "exception"]
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == str(raised.value)
    attrs = exported.attributes(span)
    assert parts(exported.messages(span, sc.GEN_AI_INPUT_MESSAGES)) == [("user", "The cat")]  # recorded up front
    assert sc.GEN_AI_OUTPUT_MESSAGES not in attrs and sc.GEN_AI_USAGE_OUTPUT_TOKENS not in attrs


def test_exception_is_the_same_object(
    generator: transformers.Pipeline, exported: Exported, monkeypatch: pytest.MonkeyPatch
) -> None:
    class OutOfMemory(RuntimeError):
        pass

    error = OutOfMemory("CUDA out of memory")

    def generate(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(generator.model, "generate", generate)
    traced = wrap_pipeline(generator)

    @loopwise.observe
    def handler() -> Any:
        return traced("The cat", **GREEDY)

    with pytest.raises(OutOfMemory) as raised:
        handler()

    assert raised.value is error
    assert raised.traceback[-1].name == "generate"  # the traceback still ends where it was raised
    span = exported.only()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "OutOfMemory: CUDA out of memory"
    assert exported.only("handler").status.status_code is StatusCode.ERROR
    assert trace.get_current_span() is trace.INVALID_SPAN  # the LLM span's context was detached


def test_attribute_passthrough(generator: transformers.Pipeline, exported: Exported) -> None:
    traced = wrap_pipeline(generator)

    assert isinstance(traced, TracedPipeline) and traced.__wrapped__ is generator
    assert traced.model is generator.model and traced.tokenizer is generator.tokenizer
    assert traced.task == "text-generation"
    assert traced.tokenizer.decode(traced.tokenizer("The cat")["input_ids"]) == "The cat"
    assert {"model", "tokenizer", "task"} <= set(dir(traced))
    with pytest.raises(AttributeError):
        _ = traced.no_such_attribute
    traced.loopwise_test_marker = 1  # writes reach the pipeline
    assert generator.loopwise_test_marker == 1
    del traced.loopwise_test_marker
    assert not hasattr(generator, "loopwise_test_marker")
    again = wrap_pipeline(traced, name="inner")
    assert again.__wrapped__ is generator  # wrapping twice does not trace twice
    again("The cat", max_new_tokens=2, do_sample=False)
    assert len(exported.spans("inner")) == 1 and exported.spans() == []
    assert "TracedPipeline" in repr(traced)


def test_streamed_inputs_pass_through_untraced(generator: transformers.Pipeline, exported: Exported) -> None:
    traced = wrap_pipeline(generator)

    results = list(traced((p for p in ["The cat", "Hello"]), **GREEDY))

    assert [r[0]["generated_text"][:5] for r in results] == ["The c", "Hello"]
    assert exported.spans() == []


def test_capture_content_off_keeps_tokens_and_drops_text(
    generator: transformers.Pipeline, exported: Exported, tmp_path: Path
) -> None:
    configure(tmp_path / "spool", capture_content=False)
    traced = wrap_pipeline(generator)

    traced("The cat", **GREEDY)

    attrs = exported.attributes(exported.only())
    assert sc.GEN_AI_INPUT_MESSAGES not in attrs and sc.GEN_AI_OUTPUT_MESSAGES not in attrs
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == 3 and attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] >= 1


def test_disabled_tracing_is_a_plain_call(generator: transformers.Pipeline, exported: Exported, tmp_path: Path) -> None:
    configure(tmp_path / "spool", enabled=False)
    traced = wrap_pipeline(generator)

    assert traced("The cat", **GREEDY) == generator("The cat", **GREEDY)
    assert exported.memory.get_finished_spans() == ()


def test_end_to_end_through_the_collector(generator: transformers.Pipeline, tiny_gpt2: Path, tmp_path: Path) -> None:
    collector = CollectorProcess(
        tmp_path / "data", env={"LOOPWISE_INIT_PROJECTS": "demo:lw_test_key", "LOOPWISE_INGEST__MAX_DELAY_MS": "50"}
    )
    collector.start()
    try:
        configure(tmp_path / "spool", endpoint=collector.url, api_key="lw_test_key")
        traced = wrap_pipeline(generator)

        @loopwise.observe
        def answer(prompt: str) -> tuple[str | None, Any]:
            return loopwise.get_current_trace_id(), traced(prompt, **GREEDY)

        trace_id, result = answer("The cat")
        assert loopwise.flush(10)
        completion = result[0]["generated_text"][len("The cat") :]
        auth = {"Authorization": "Bearer lw_test_key"}
        spans: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while len(spans) < 2 and time.monotonic() < deadline:
            response = httpx.get(f"{collector.url}/api/v1/traces/{trace_id}", headers=auth, timeout=10)
            spans = response.json().get("spans", []) if response.status_code == 200 else []
            time.sleep(0.1 if len(spans) < 2 else 0)
        by_name = {s["name"]: s for s in spans}
        assert set(by_name) == {"answer", SPAN}, spans
        root, llm = by_name["answer"], by_name[SPAN]
        assert llm["parent_span_id"] == root["span_id"] and root["parent_span_id"] is None
        assert (llm["span_type"], llm["operation"], llm["status"]) == ("llm", "text_completion", "unset")
        assert (llm["model"], llm["provider"]) == (str(tiny_gpt2), "huggingface")
        assert json.loads(llm["input"]) == [{"role": "user", "parts": [{"type": "text", "content": "The cat"}]}]
        assert json.loads(llm["output"]) == [{"role": "assistant", "parts": [{"type": "text", "content": completion}]}]
        assert llm["input_tokens"] == 3
        assert llm["output_tokens"] == n_tokens(generator, completion, add_special_tokens=False) >= 1
    finally:
        loopwise.shutdown(1)
        collector.stop()
