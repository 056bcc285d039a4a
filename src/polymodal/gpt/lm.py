"""Language-model runs: a text corpus, a tokenizer, a :class:`GPT`, trained by the project's Trainer.

A language-model recipe has ``kind: lm``. An "epoch" is ``data.steps_per_epoch`` batches of random
``block_size`` windows from the training part of the corpus (fresh windows every epoch, as nanoGPT draws
them), followed by validation on a fixed set of windows from the held-out part (the last
``data.val_fraction`` of the text, as in nanoGPT's 90/10 split).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from torch.utils.data import Dataset

from polymodal.config import TrainerConfig, parse_dataclass
from polymodal.data.datasets.common import find_local, sha256_file
from polymodal.errors import CheckpointError, ConfigError, DataError
from polymodal.gpt.model import GPT, GPTConfig
from polymodal.gpt.tokenizer import build_tokenizer, load_tokenizer

# Karpathy's tiny Shakespeare (char-rnn), the corpus of nanoGPT's shakespeare_char.
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
CORPORA = {"tinyshakespeare": ("tinyshakespeare", "input.txt", TINY_SHAKESPEARE_SHA256)}


@dataclass
class LMDataConfig:
    """Where the text comes from and how it is cut into training windows."""

    corpus: str = "tinyshakespeare"  # tinyshakespeare, clipart_captions, or a path to a UTF-8 text file
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1
    tokenizer: Literal["char", "bpe"] = "char"
    vocab_size: Annotated[int, Field(ge=258)] = 1024  # BPE only
    steps_per_epoch: Annotated[int, Field(ge=1)] = 250
    eval_batches: Annotated[int, Field(ge=1)] = 50
    # Characters a pretrained char tokenizer does not know: raise, or drop them from the text (fine-tuning).
    unknown: Literal["raise", "drop"] = "raise"


@dataclass
class LMRecipe:
    """A language-model run: ``kind: lm``, data, model shape, trainer, optional model to start from."""

    name: str
    kind: Literal["lm"] = "lm"
    seed: Annotated[int, Field(ge=0)] = 0
    data: LMDataConfig = field(default_factory=LMDataConfig)
    model: Any = None  # GPTConfig keys except vocab_size (the tokenizer decides it)
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(monitor="loss"))
    init_from: str | None = None  # a finished lm run directory to fine-tune (its tokenizer is reused)


def parse_lm_recipe(raw: dict[str, Any], source: str = "recipe") -> LMRecipe:
    recipe = parse_dataclass(LMRecipe, raw, where="")
    model = dict(recipe.model or {})
    if "vocab_size" in model:
        raise ConfigError(f"{source}: model.vocab_size comes from the tokenizer; remove it")
    recipe.model = parse_dataclass(GPTConfig, model, "model")
    if recipe.trainer.monitor != "loss":
        raise ConfigError(f"{source}: trainer.monitor must be loss for a language model")
    return recipe


def read_corpus(corpus: str) -> tuple[str, str]:
    """(text, source) of a built-in corpus (found locally, checksum verified) or a text file."""
    if corpus == "clipart_captions":
        return clipart_captions()
    if corpus in CORPORA:
        sub, name, sha = CORPORA[corpus]
        root = find_local(sub, name)
        if root is None:
            raise DataError(f"corpus '{corpus}' not found; put {sub}/{name} under $POLYMODAL_DATA or ../shared/data")
        path = root / name
        if sha256_file(path) != sha:
            raise DataError(f"{path} does not match the published checksum of {corpus}; replace the file")
    else:
        path = Path(corpus)
        if not path.is_file():
            raise DataError(f"corpus '{corpus}' is neither a built-in ({', '.join(CORPORA)}) nor a text file")
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def clipart_captions() -> tuple[str, str]:
    """OpenClipArt titles and descriptions (local copy), one "title: description" line per image."""
    import pandas as pd

    from polymodal.data.datasets.clipart import clipart_dir

    root = clipart_dir(None)
    if root is None:
        raise DataError("corpus 'clipart_captions' needs the local OpenClipArt copy (clipart/captions.csv)")
    frame = pd.read_csv(root / "captions.csv", keep_default_na=False)
    pairs = zip(frame["title"], frame["description"], strict=True)
    lines = dict.fromkeys(f"{t.strip()}: {d.strip()}" for t, d in pairs)  # duplicates (one per category) once
    return "\n".join(lines) + "\n", str(root / "captions.csv")


class WindowDataset(Dataset):
    """``count`` windows of ``block + 1`` tokens at random offsets, redrawn for each epoch (``set_epoch``);
    item: ``({"tokens": x}, {}, y)`` with y = x shifted by one."""

    def __init__(self, tokens: torch.Tensor, block: int, count: int, seed: int) -> None:
        if len(tokens) <= block + 1:
            raise DataError(f"the text has {len(tokens)} tokens, too few for block_size {block}; lower it")
        self.tokens, self.block, self.count, self.seed = tokens, block, count, seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        self.offsets = torch.randint(len(self.tokens) - self.block - 1, (self.count,), generator=g)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor], dict[str, bool], torch.Tensor]:
        o = int(self.offsets[i])
        chunk = self.tokens[o : o + self.block + 1]
        return {"tokens": chunk[:-1]}, {}, chunk[1:]


class LanguageModel(nn.Module):
    """A :class:`GPT` behind the Trainer's interface: ``forward(inputs, present)``, ``loss``, ``reduce``,
    ``metrics`` (token accuracy; the loss is the cross-entropy in nats per token)."""

    def __init__(self, gpt: GPT) -> None:
        super().__init__()
        self.gpt = gpt

    def forward(self, inputs: dict[str, torch.Tensor], present: Any = None) -> torch.Tensor:
        return self.gpt(inputs["tokens"])[0]  # (B, T, V)

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float().flatten(0, 1), target.flatten(), ignore_index=-1)

    def reduce(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(-1)  # (B, T): keeping (B, T, V) for a whole split would not fit a large vocab

    def metrics(self, predictions: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        return {"accuracy": float((predictions == targets).mean()), "n": int(targets.size)}


@dataclass
class LMData:
    train: WindowDataset
    val: WindowDataset
    tokenizer: Any
    source: str


def build_lm_data(recipe: LMRecipe, tokenizer: Any = None) -> LMData:
    """Tokenise the corpus (fitting the tokenizer on the training part unless one is given) and cut windows."""
    text, source = read_corpus(recipe.data.corpus)
    cut = int(len(text) * (1 - recipe.data.val_fraction))
    if tokenizer is None:
        tokenizer = build_tokenizer(recipe.data.tokenizer, recipe.data.vocab_size).fit(text[:cut])
    elif recipe.data.unknown == "drop" and hasattr(tokenizer, "index"):
        kept = "".join(c for c in text if c in tokenizer.index)
        text, cut = kept, int(len(kept) * (1 - recipe.data.val_fraction))
    train_ids = torch.tensor(tokenizer.encode(text[:cut]), dtype=torch.long)
    val_ids = torch.tensor(tokenizer.encode(text[cut:]), dtype=torch.long)
    cfg, bs = recipe.model, recipe.trainer.batch_size
    train = WindowDataset(train_ids, cfg.block_size, recipe.data.steps_per_epoch * bs, recipe.seed)
    val = WindowDataset(val_ids, cfg.block_size, recipe.data.eval_batches * bs, recipe.seed + 1)
    return LMData(train, val, tokenizer, source)


def load_lm(run_dir: str | Path) -> tuple[GPT, Any, dict[str, Any]]:
    """(model with its best weights, tokenizer, meta) of a finished language-model run."""
    from polymodal.train.checkpoint import load_weights

    run = Path(run_dir)
    for needed in ("meta.json", "tokenizer.json", "weights.safetensors"):
        if not (run / needed).is_file():
            raise CheckpointError(f"{run} has no {needed}; give a finished language-model run directory")
    meta = json.loads((run / "meta.json").read_text(encoding="utf-8"))
    tokenizer = load_tokenizer(json.loads((run / "tokenizer.json").read_text(encoding="utf-8")))
    model = LanguageModel(GPT(GPTConfig(**meta["model"])))
    load_weights(model, run / "weights.safetensors")
    return model.gpt.eval(), tokenizer, meta
