"""Hugging Face ``transformers`` text-generation pipelines, each call traced as an LLM span.

:func:`wrap_pipeline` returns an object that is called like the pipeline, returns what the
pipeline returns and forwards every other attribute (``.model``, ``.tokenizer``, ...) to it.
Each call becomes one ``llm`` span, a child of the span current at the call, carrying:

- ``gen_ai.operation.name``: ``text_completion`` for prompts, ``chat`` for chat messages;
- the provider (``huggingface`` unless told otherwise) and the model's ``name_or_path``;
- ``max_new_tokens`` (as ``gen_ai.request.max_tokens``), ``temperature`` and ``top_p``, when given;
- the prompts or messages, and the generated text only: with the pipeline's default
  ``return_full_text=True`` the prompt that heads each result is not recorded again as output;
- token counts: the prompts' length under the pipeline's own tokenizer (chat messages through its
  chat template) and the length of the generated text, re-tokenized (a stop token the pipeline
  leaves out of the text is not counted). Two batched calls of a fast tokenizer: about 0.1 ms
  for short texts, against the milliseconds to seconds that generation takes.

A batch (a list of prompts or of chats) is one span: every prompt and every generated sequence
is recorded, and the token counts are the batch's sums. An exception from the pipeline is
recorded on the span and re-raised unchanged; a fault of ours is logged on the ``loopwise``
logger and the call goes ahead untraced or with fewer attributes. Inputs the pipeline streams
(a generator, a ``Dataset``) go through untraced, since the pipeline returns before it runs.

This module never imports ``transformers`` itself; it only calls the pipeline it is given.

Example:
    >>> import transformers  # doctest: +SKIP
    >>> from loopwise.integrations.transformers import wrap_pipeline
    >>> generator = wrap_pipeline(transformers.pipeline("text-generation", model="gpt2"))  # doctest: +SKIP
    >>> generator("The cat", max_new_tokens=20, do_sample=False)  # doctest: +SKIP
    [{'generated_text': 'The cat ...'}]
    >>> generator.tokenizer.eos_token  # doctest: +SKIP
    '<|endoftext|>'
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from loopwise._content import to_genai_messages
from loopwise._export._encode import Messages
from loopwise._observe import _end, record_error, start_observation
from loopwise._runtime import RUNTIME
from loopwise._span_api import set_llm_attributes

__all__ = ["TracedPipeline", "wrap_pipeline"]

logger = logging.getLogger("loopwise")
_WHERE = "loopwise.integrations.transformers"

DEFAULT_NAME = "transformers.text-generation"
_TEXT = "text_completion"
_CHAT = "chat"
# Generation keyword arguments recorded on the span, under update_current_llm's parameter names.
_PARAMETERS = (("max_new_tokens", "max_tokens"), ("temperature", "temperature"), ("top_p", "top_p"))


def wrap_pipeline(pipe: Any, *, name: str | None = None, provider: str = "huggingface") -> TracedPipeline:
    """Trace each call of a ``transformers`` text-generation pipeline as an LLM span.

    ``name`` is the span name (default ``transformers.text-generation``) and ``provider`` goes
    on the span as ``gen_ai.provider.name``. Wrapping a wrapped pipeline wraps the pipeline
    inside it again, so calls are never traced twice.

    Example:
        >>> import transformers  # doctest: +SKIP
        >>> import loopwise
        >>> from loopwise.integrations.transformers import wrap_pipeline
        >>> generator = wrap_pipeline(  # doctest: +SKIP
        ...     transformers.pipeline("text-generation", model="Qwen/Qwen2.5-0.5B-Instruct"), name="qwen"
        ... )
        >>> @loopwise.observe
        ... def answer(question: str) -> str:
        ...     reply = generator([{"role": "user", "content": question}], max_new_tokens=64)
        ...     return reply[0]["generated_text"][-1]["content"]
    """
    if isinstance(pipe, TracedPipeline):
        pipe = pipe.__wrapped__
    task = getattr(pipe, "task", None)
    if isinstance(task, str) and task and task != "text-generation":
        logger.warning(
            "loopwise.integrations.transformers: wrap_pipeline expects a text-generation pipeline, got task %r; "
            "its outputs may not be recorded",
            task,
        )
    return TracedPipeline(pipe, name or DEFAULT_NAME, provider)


class TracedPipeline:
    """A text-generation pipeline whose calls are traced; made by :func:`wrap_pipeline`.

    Calling it calls the pipeline with the same arguments and returns its result unchanged.
    Attributes are read from and written to the pipeline; the pipeline itself is
    ``__wrapped__``.
    """

    __slots__ = ("__wrapped__", "_name", "_provider")

    def __init__(self, pipe: Any, name: str, provider: str) -> None:
        object.__setattr__(self, "__wrapped__", pipe)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_provider", provider)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        pipe = self.__wrapped__
        started = self._begin(args, kwargs)
        if started is None:
            return pipe(*args, **kwargs)
        span, token, call = started
        try:
            result = pipe(*args, **kwargs)
        except BaseException as exc:
            record_error(span, exc)
            _end(span, token)
            raise
        if call is not None:
            try:
                call.finish(result)
            except Exception:
                logger.exception("loopwise: could not record the output of %s", self._name)
        _end(span, token)
        return result

    def _begin(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[trace.Span, object, _Call | None] | None:
        try:
            inputs = args[0] if args else kwargs.get("text_inputs", kwargs.get("inputs"))
            if not isinstance(inputs, str | list | tuple):
                return None  # streamed inputs: the pipeline returns an iterator before generating anything
            span = start_observation(self._name, "llm")
            if span is None:
                return None
            token = otel_context.attach(trace.set_span_in_context(span))
        except Exception:
            logger.exception("loopwise: could not start a span for %s", self._name)
            return None
        try:
            call: _Call | None = _Call(span, self.__wrapped__, inputs, kwargs, self._provider)
        except Exception:
            logger.exception("loopwise: could not record the request of %s", self._name)
            call = None
        return span, token, call

    def __getattr__(self, name: str) -> Any:
        if name in TracedPipeline.__slots__:  # not set yet (copy, unpickling): no recursion through the pipeline
            raise AttributeError(name)
        return getattr(self.__wrapped__, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in TracedPipeline.__slots__:
            object.__setattr__(self, name, value)
        else:
            setattr(self.__wrapped__, name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self.__wrapped__, name)

    def __dir__(self) -> list[str]:
        return sorted({*object.__dir__(self), *dir(self.__wrapped__)})

    def __repr__(self) -> str:
        return f"TracedPipeline({self.__wrapped__!r}, name={self._name!r})"


class _Call:
    """One traced call: what was asked, set on the span before the pipeline runs, and its result after."""

    __slots__ = ("batched", "capture", "items", "kwargs", "operation", "pipe", "span")

    def __init__(self, span: trace.Span, pipe: Any, inputs: Any, kwargs: dict[str, Any], provider: str) -> None:
        self.span = span
        self.pipe = pipe
        self.kwargs = kwargs
        self.capture = RUNTIME.config.capture_content
        self.operation, self.items, self.batched = _classify(inputs)
        messages: Messages | None = None
        if self.capture:
            if self.operation == _CHAT:
                messages = Messages([m for conversation in self.items for m in conversation])
            else:
                messages = _Texts(self.items, "user")
        set_llm_attributes(
            span,
            where=_WHERE,
            model=_model_name(pipe),
            provider=provider,
            operation=self.operation,
            input_messages=messages,
            parameters=_parameters(kwargs),
        )

    def finish(self, result: Any) -> None:
        """Record the generated text and the token counts of a successful call."""
        per_input = result if self.batched else [result]
        if type(per_input) is not list or len(per_input) != len(self.items):
            return  # not the shape a text-generation pipeline returns
        completions: list[str] = []
        outputs: list[dict[str, Any]] = []
        id_lengths: list[tuple[int, int]] = []  # return_tensors=True: (sequence length, input index)
        chat = self.operation == _CHAT
        full_text = self._full_text()
        for index, (item, records) in enumerate(zip(self.items, per_input, strict=True)):
            for record in records if type(records) is list else [records]:
                if not isinstance(record, Mapping):
                    continue
                generated = record.get("generated_text")
                if generated is None:
                    ids = record.get("generated_token_ids")
                    if ids is not None:
                        id_lengths.append((len(ids), index))
                    continue
                if chat:
                    message = self._chat_output(item, generated)
                    outputs.append(message)
                    content = message.get("content")
                    if isinstance(content, str):
                        completions.append(content)
                else:
                    text = generated if isinstance(generated, str) else str(generated)
                    completions.append(text[len(item) :] if full_text and text.startswith(item) else text)
        prompt_lengths = self._prompt_lengths()
        output_tokens: int | None = None
        if completions:
            output_tokens = sum(_token_lengths(self.pipe, completions, add_special_tokens=False) or [0])
        if id_lengths and prompt_lengths is not None:
            output_tokens = (output_tokens or 0) + sum(max(n - prompt_lengths[i], 0) for n, i in id_lengths)
        set_llm_attributes(
            self.span,
            where=_WHERE,
            output_messages=self._output_messages(outputs, completions),
            input_tokens=sum(prompt_lengths) if prompt_lengths is not None else None,
            output_tokens=output_tokens,
        )

    def _output_messages(self, chat_messages: list[dict[str, Any]], completions: list[str]) -> Messages | None:
        if not self.capture:
            return None
        if self.operation == _CHAT:
            return Messages(chat_messages, output=True) if chat_messages else None
        return _Texts(completions, "assistant") if completions else None

    def _chat_output(self, conversation: list[Any], generated: Any) -> dict[str, Any]:
        if isinstance(generated, str):  # return_full_text=False: the new text only
            return {"role": "assistant", "content": generated}
        if type(generated) is not list or not generated or not isinstance(generated[-1], Mapping):
            return {"role": "assistant", "content": str(generated)}
        last = dict(generated[-1])
        if self._continues(conversation) and len(generated) == len(conversation):
            # An assistant prefill: the pipeline appended its text to the last message's.
            prefill, content = conversation[-1].get("content"), last.get("content")
            if isinstance(prefill, str) and isinstance(content, str) and content.startswith(prefill):
                last["content"] = content[len(prefill) :]
        return last

    def _continues(self, conversation: list[Any]) -> bool:
        flag = self.kwargs.get("continue_final_message")
        if flag is not None:
            return bool(flag)
        return bool(conversation) and conversation[-1].get("role") == "assistant"

    def _full_text(self) -> bool:
        flag = self.kwargs.get("return_full_text")
        if flag is not None:
            return bool(flag)
        return_type = self.kwargs.get("return_type")
        if return_type is None:
            defaults = getattr(self.pipe, "_postprocess_params", None)
            return_type = defaults.get("return_type") if isinstance(defaults, Mapping) else None
        return getattr(return_type, "name", None) != "NEW_TEXT"

    def _prompt_lengths(self) -> list[int] | None:
        """Each prompt's (or chat's) length in tokens, as the pipeline tokenizes it."""
        if not self.items:
            return None
        if self.operation != _CHAT:
            prefix = self.kwargs.get("prefix")
            if prefix is None:
                defaults = getattr(self.pipe, "_preprocess_params", None)
                prefix = defaults.get("prefix") if isinstance(defaults, Mapping) else None
            texts = [prefix + p for p in self.items] if isinstance(prefix, str) and prefix else self.items
            return _token_lengths(self.pipe, texts, add_special_tokens=self.kwargs.get("add_special_tokens"))
        tokenizer = getattr(self.pipe, "tokenizer", None)
        if tokenizer is None:
            return None
        extra = {k: self.kwargs[k] for k in ("tools", "documents") if self.kwargs.get(k) is not None}
        lengths: list[int] = []
        for conversation in self.items:
            continues = self._continues(conversation)
            if continues:
                extra["continue_final_message"] = True
            else:
                extra.pop("continue_final_message", None)
            ids = tokenizer.apply_chat_template(
                conversation, add_generation_prompt=not continues, tokenize=True, **extra
            )
            if isinstance(ids, Mapping):  # transformers 5 returns a BatchEncoding, 4 a list of ids
                ids = ids["input_ids"]
            if ids and isinstance(ids[0], list):  # a batch of one
                ids = ids[0]
            lengths.append(len(ids))
        return lengths


class _Texts(Messages):
    """Plain prompts or completions, made into one message each on the export thread."""

    __slots__ = ("role",)

    def __init__(self, texts: list[str], role: str) -> None:
        super().__init__(texts)
        self.role = role

    def resolve(self) -> Any:
        return to_genai_messages([{"role": self.role, "content": t} for t in self.messages])


def _classify(inputs: Any) -> tuple[str, list[Any], bool]:
    """(operation, the prompts or chats, whether the pipeline returns one result list per input)."""
    if isinstance(inputs, str):
        return _TEXT, [inputs], False
    items = list(inputs)
    if items and _is_message(items[0]):
        return _CHAT, [items], False  # one conversation
    if items and all(isinstance(c, list | tuple) and c and _is_message(c[0]) for c in items):
        return _CHAT, [list(c) for c in items], True
    return _TEXT, [p if isinstance(p, str) else str(p) for p in items], True


def _is_message(value: Any) -> bool:
    return isinstance(value, Mapping) and "role" in value and "content" in value


def _model_name(pipe: Any) -> str | None:
    model = getattr(pipe, "model", None)
    name = getattr(model, "name_or_path", None)
    if not name:
        name = getattr(getattr(model, "config", None), "_name_or_path", None)
    return str(name) if name else None


def _parameters(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    config = kwargs.get("generation_config")
    params: dict[str, Any] = {}
    for given, recorded in _PARAMETERS:
        value = kwargs.get(given)
        if value is None and config is not None:
            value = getattr(config, given, None)
        if isinstance(value, int | float) and not isinstance(value, bool):
            params[recorded] = value
    return params


def _token_lengths(pipe: Any, texts: list[str], *, add_special_tokens: Any = None) -> list[int] | None:
    """The length of each of ``texts`` under the pipeline's tokenizer, in one batched call."""
    tokenizer = getattr(pipe, "tokenizer", None)
    if tokenizer is None:
        return None
    options: dict[str, Any] = {"return_attention_mask": False, "verbose": False}
    if add_special_tokens is not None:
        options["add_special_tokens"] = bool(add_special_tokens)
    encoded = tokenizer(texts, **options)
    return [len(ids) for ids in encoded["input_ids"]]
