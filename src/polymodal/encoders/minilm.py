"""The pretrained all-MiniLM-L6-v2 sentence encoder, loaded offline from its PyPI package."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from polymodal.data.modalities.text import minilm_dir
from polymodal.encoders.frozen import FrozenOutputs
from polymodal.registry import ENCODERS
from polymodal.schema import Width

WIDTH = 384  # MiniLM-L6 hidden size


@dataclass
class MiniLMConfig:
    """Recipe keys for ``encoder: {name: minilm}`` (use with ``preprocessing: {tokenizer: minilm}``)."""

    freeze: bool = True
    out_dim: Width = 128
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1


@ENCODERS.register("minilm", MiniLMConfig)
class MiniLM(nn.Module):
    """Sentence embedding (mean of token states over the attention mask, as sentence-transformers does),
    projected to (B, out_dim).

    Args:
        in_shape: One example's shape (T,) of MiniLM token ids.
        vocab_size, pad_id: From the text transform; must be MiniLM's (30522, 0).
        freeze: Keep the pretrained weights fixed (train only the projection); the sentence embedding of each
            distinct text is then computed once and remembered (polymodal.encoders.frozen).
        out_dim: Embedding width D; dropout: before the projection.
    """

    EXAMPLE_IN_SHAPE = (10,)
    EXAMPLE_CONTEXT = {"vocab_size": 30522, "pad_id": 0}

    def __init__(
        self, in_shape: tuple[int, ...], vocab_size: int, pad_id: int, freeze: bool, out_dim: int, dropout: float
    ) -> None:
        super().__init__()
        if vocab_size != 30522:
            raise ValueError("encoder minilm needs preprocessing.tokenizer: minilm (its own vocabulary)")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a local load needs no "Loading weights" bar in every run's output
        self.bert = AutoModel.from_pretrained(str(minilm_dir()), local_files_only=True)
        self.freeze, self.pad_id = freeze, pad_id
        if freeze:
            self.bert.requires_grad_(False)
        self.remembered = FrozenOutputs()
        self.register_load_state_dict_post_hook(lambda module, keys: module.remembered.clear())
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(WIDTH, out_dim))
        self.out_dim = out_dim

    @staticmethod
    def example_input(batch: int) -> torch.Tensor:
        ids = torch.randint(1000, 30000, (batch, 10))
        ids[:, 0], ids[1:, 6:] = 101, 0  # [CLS] first, some rows padded
        return ids

    def train(self, mode: bool = True) -> MiniLM:
        super().train(mode)
        if self.freeze:
            self.bert.eval()  # no dropout inside a frozen encoder
        return self

    def sentence(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids -> (B, 384) mean of the token states over the attention mask."""
        mask = x != self.pad_id
        mask[:, 0] = True  # an empty text still attends to its first slot
        h = self.bert(input_ids=x, attention_mask=mask.long()).last_hidden_state  # (B, T, 384)
        m = mask.unsqueeze(-1).to(h.dtype)
        return (h * m).sum(1) / m.sum(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.freeze:
            return self.proj(self.sentence(x))  # (B, D)
        with torch.no_grad():
            s = self.remembered(self.sentence, x)  # a frozen encoder is always in eval mode (see train)
        return self.proj(s)  # (B, D)
