"""The tiny GPT-2 built offline by `tests/support/tiny_gpt2.py` loads through the stock `transformers.pipeline`,
generates deterministically, and its byte-level tokenizer round-trips any text.

Why: tests of Hugging Face instrumentation rely on this checkpoint standing in for a downloaded model, so its
loading and behaviour are checked here once, through the public transformers API.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import transformers

from tests.support.tiny_gpt2 import build_tiny_gpt2

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def generator(tiny_gpt2: Path) -> transformers.Pipeline:
    return transformers.pipeline("text-generation", model=str(tiny_gpt2))


def test_checkpoint_files(tiny_gpt2: Path) -> None:
    names = {path.name for path in tiny_gpt2.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    config = json.loads((tiny_gpt2 / "config.json").read_text())
    assert (config["model_type"], config["n_layer"], config["n_head"], config["n_embd"]) == ("gpt2", 2, 2, 64)
    assert config["n_positions"] == 128
    assert 400 <= config["vocab_size"] <= 512


def test_pipeline_generates_deterministically(generator: transformers.Pipeline) -> None:
    first = generator("The cat", do_sample=False, max_new_tokens=8)
    second = generator("The cat", do_sample=False, max_new_tokens=8)

    assert first == second
    text = first[0]["generated_text"]
    assert text.startswith("The cat")  # the pipeline returns the prompt and its continuation
    assert len(text) > len("The cat")


def test_generate_respects_max_new_tokens(tiny_gpt2: Path) -> None:
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_gpt2)
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_gpt2)
    inputs = tokenizer("Once upon a time", return_tensors="pt")

    output = model.generate(**inputs, do_sample=False, max_new_tokens=8)

    new_tokens = output.shape[1] - inputs["input_ids"].shape[1]
    assert 1 <= new_tokens <= 8
    assert model.config.vocab_size == len(tokenizer)


def test_rebuild_is_identical(tiny_gpt2: Path, tmp_path: Path) -> None:
    again = build_tiny_gpt2(tmp_path / "again")

    assert (again / "model.safetensors").read_bytes() == (tiny_gpt2 / "model.safetensors").read_bytes()
    assert (again / "tokenizer.json").read_text() == (tiny_gpt2 / "tokenizer.json").read_text()


@pytest.mark.parametrize(
    "text",
    [
        "Hello world, this is a tiny language model for tests.",
        "  leading spaces,\ttabs and\nnewlines  ",
        "Unseen words: xylophone zeugma quokka 1234567890",
        "Unicode: café, naïve, 日本語, emoji \U0001f680",
    ],
)
def test_tokenizer_round_trips(tiny_gpt2: Path, text: str) -> None:
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_gpt2)

    ids = tokenizer(text)["input_ids"]

    assert tokenizer.decode(ids) == text
    assert tokenizer.unk_token_id not in ids  # byte-level: no text is out of vocabulary


def test_special_tokens(tiny_gpt2: Path) -> None:
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_gpt2)

    assert isinstance(tokenizer, transformers.GPT2TokenizerFast)
    assert tokenizer.eos_token == tokenizer.bos_token == tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.eos_token_id == 0
    assert tokenizer.model_max_length == 128
    assert tokenizer.decode([tokenizer.eos_token_id], skip_special_tokens=True) == ""
    assert tokenizer("Hello")["input_ids"][0] != tokenizer.bos_token_id  # GPT-2 adds no bos by default
