"""A language model's data: a text corpus, tokenised, cut into random training windows and fixed validation
windows (the last ``data.val_fraction`` of the text, as in nanoGPT's 90/10 split)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from polymodal.data.datasets.common import find_local, sha256_file
from polymodal.errors import DataError
from polymodal.gpt.tokenizer import build_tokenizer
from polymodal.kinds.lm.recipe import LMRecipe
from polymodal.runs import text_hash

# Karpathy's tiny Shakespeare (char-rnn), the corpus of nanoGPT's shakespeare_char.
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
CORPORA = {"tinyshakespeare": ("tinyshakespeare", "input.txt", TINY_SHAKESPEARE_SHA256)}
BUILTIN = (*CORPORA, "clipart_captions")


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


@dataclass
class LMData:
    train: WindowDataset
    val: WindowDataset
    tokenizer: Any
    source: str
    data_hash: str = ""  # of the corpus text


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
    return LMData(train, val, tokenizer, source, text_hash(text))
