"""Build a tiny GPT-2 (model and tokenizer) offline, for tests that need a real local Hugging Face model.

Why: tests of Hugging Face instrumentation need `transformers.pipeline("text-generation", ...)` to load and run a
real model, but CI has no network and a downloaded checkpoint would be megabytes. This builds one in a few
seconds: a byte-level BPE tokenizer trained on the built-in corpus below, and a 2-layer GPT-2 trained for a few
dozen steps on the same text, so greedy output is corpus-like English rather than one repeated token.

    path = build_tiny_gpt2(tmp_path / "tiny-gpt2")
    generator = transformers.pipeline("text-generation", model=str(path))
    generator("The cat", do_sample=False, max_new_tokens=8)

Everything is seeded, so the saved weights, and therefore greedy generations, are the same on every build (on
the same torch version and CPU). transformers and torch are imported inside the function: importing them costs
seconds, and conftest imports this module in every test session.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerBase

EOS = "<|endoftext|>"
VOCAB_SIZE = 500
N_POSITIONS = 128
SEED = 1234
TRAIN_STEPS = 80
BLOCK = 32

CORPUS = """\
The quick brown fox jumps over the lazy dog.
The cat sat on the mat and looked at the door.
Once upon a time there was a little house in the woods.
A small dog ran across the green field to find the ball.
The sun rises in the east and sets in the west.
Every morning the baker makes fresh bread for the town.
The children played in the park until the evening came.
She opened the window and the cool air filled the room.
He wrote a long letter to his friend who lived far away.
The river flows past the old mill and into the sea.
Birds sing in the trees when the spring comes back.
The train leaves the station at seven in the morning.
We walked along the beach and watched the waves roll in.
The teacher read a story to the class after lunch.
A cup of tea is the best way to start a quiet day.
The farmer planted corn and beans in the spring.
The library is open from nine in the morning until six.
They built a boat and sailed it across the lake.
The moon was bright and the stars were shining above the hills.
My brother likes to read books about ships and the sea.
The garden was full of red roses and yellow flowers.
Please send the report to the team before the meeting.
The model answers questions about the weather and the news.
Hello world, this is a tiny language model for tests.
The server returned a response with the usage of tokens.
Good morning, how are you today? I am fine, thank you.
The old man told the children a story about the king.
Rain fell on the roof all night and the streets were wet.
The market sells apples, bread, cheese and fresh fish.
In the winter the lake freezes and people skate on the ice.
"""


def corpus_lines() -> list[str]:
    """The training sentences, one per line."""
    return [line for line in CORPUS.splitlines() if line.strip()]


def build_tiny_gpt2(directory: Path) -> Path:
    """Train and save a tiny GPT-2 and its tokenizer in `directory` (created if missing); returns `directory`.

    The result loads with `from_pretrained(directory)` and `pipeline("text-generation", model=str(directory))`.
    Nothing touches the network: the tokenizer is trained here and the model is built from a config.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lines = corpus_lines()

    # GPT-2's own pipeline: byte-level pre-tokenization (any text encodes, none is unknown) without a prefix space.
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[EOS],  # id 0
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, even those the corpus lacks
        show_progress=False,
    )
    backend.train_from_iterator(lines, trainer)

    # In transformers 5 GPT2TokenizerFast is GPT2Tokenizer (one tokenizers-backed class); tokenizer_object makes it
    # use our trained backend instead of building an empty one. GPT-2 uses one token for bos, eos and unk, and has
    # no pad token of its own: padding with eos is the usual choice, and the generation config says so too.
    tokenizer = GPT2TokenizerFast(
        tokenizer_object=backend,
        bos_token=EOS,
        eos_token=EOS,
        unk_token=EOS,
        pad_token=EOS,
        model_max_length=N_POSITIONS,
    )

    # A private RNG stream: the build is reproducible, and tests that run after it see torch's global RNG untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        config = GPT2Config(
            n_layer=2,
            n_head=2,
            n_embd=64,
            n_positions=N_POSITIONS,
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        model = GPT2LMHeadModel(config)
        _train(model, tokenizer, lines)
        model.eval()
        model.generation_config.pad_token_id = tokenizer.pad_token_id

    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    # A marker for humans and for tests that want to tell this model from a downloaded one.
    (directory / "loopwise_tiny_gpt2.json").write_text(json.dumps({"seed": SEED, "steps": TRAIN_STEPS}) + "\n")
    return directory


def _train(model: GPT2LMHeadModel, tokenizer: PreTrainedTokenizerBase, lines: list[str]) -> None:
    # A few dozen full-batch AdamW steps on the corpus, as one eos-separated stream cut into blocks: enough for
    # greedy decoding to continue a prompt with corpus words, and well under a second on a CPU.
    import torch

    ids: list[int] = []
    for line in lines:
        ids += [*tokenizer(line)["input_ids"], tokenizer.eos_token_id]
    usable = len(ids) // BLOCK * BLOCK
    batch = torch.tensor(ids[:usable]).view(-1, BLOCK)
    mask = torch.ones_like(batch)  # explicit, or transformers warns that pad and eos share an id
    # transformers 5 derives the loss from the class name and does not recognise "GPT2LMHeadModel": name it, or
    # it warns on every build (and falls back to this very loss anyway).
    model.loss_type = "ForCausalLM"
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    # One thread: this model is too small to gain from more, and on a busy CI box OpenMP threads that spin-wait
    # on each other can turn one second of training into a minute.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(TRAIN_STEPS):
            loss = model(input_ids=batch, attention_mask=mask, labels=batch).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
