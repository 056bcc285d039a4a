"""A finished language-model run: its GPT with the kept weights, its tokenizer and meta."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from polymodal.gpt.model import GPT, GPTConfig
from polymodal.gpt.tokenizer import load_tokenizer
from polymodal.kinds.lm.model import LanguageModel
from polymodal.runs import RunDir
from polymodal.storage import load_weights
from polymodal.training.distributed import resolve_device

META: dict[str, type | tuple[type, ...]] = {"model": dict}


class LMRun:
    """``LMRun(run_dir)``: ``.model`` (a :class:`GPT` in eval mode), ``.tokenizer``, ``.meta``.

    Args:
        run_dir: A finished ``kind: lm`` run directory.
        device: Where the GPT runs (``auto``, ``cpu``, ``cuda[:N]``, ``mps``); default the CPU.
    """

    def __init__(self, run_dir: str | Path | RunDir, device: str | None = None) -> None:
        self.rundir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
        self.rundir.require("meta.json", "tokenizer.json", "weights.safetensors")
        self.meta: dict[str, Any] = self.rundir.fields(META)
        self.tokenizer = load_tokenizer(self.rundir.read_json("tokenizer.json"))
        wrapped = LanguageModel(GPT(GPTConfig(**self.meta["model"])))
        load_weights(wrapped, self.rundir.weights)
        self.device = torch.device(resolve_device(device or "cpu"))
        self.model: GPT = wrapped.gpt.to(self.device).eval()

    @property
    def block_size(self) -> int:
        return int(self.meta["model"]["block_size"])
