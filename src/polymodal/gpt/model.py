"""GPT: token embeddings, positions (learned, sinusoidal or rotary), pre-LayerNorm causal self-attention
blocks, an output projection (tied to the embeddings by default).

The whole forward pass is in this file (attention in :mod:`.attention`). Shapes: B batch, T tokens, C width
(n_embd), H heads, V vocab. ``forward(idx, targets=None, prefix=None, cache=None, memory=None, embeds=None,
start=None) -> (logits, loss)``: ``prefix`` (B, P, C) are embeddings placed before the tokens (a projected
image or sound, for conditioned generation, ClipCap-style); ``memory`` (B, M, C) is read through a
cross-attention layer in every block instead (the encoder-decoder variant; needs ``cross_attention: true``);
``cache`` is a :class:`KVCache` that makes each generation step cost one token instead of the whole context.

The options after ``cross_attention`` come from modded-nanogpt's speedrun list and default to nanoGPT's
behaviour, so older runs load unchanged; docs/benchmarks/nanogpt.md has their measured effect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from polymodal.gpt.attention import CausalSelfAttention, CrossAttention
from polymodal.gpt.cache import KVCache
from polymodal.gpt.rotary import Rotary

__all__ = ["GPT", "GPTConfig", "KVCache", "config_problem", "sinusoidal"]


@dataclass
class GPTConfig:
    """Model shape. nanoGPT's CPU configuration is ``n_layer=4, n_head=4, n_embd=128, block_size=64``."""

    vocab_size: Annotated[int, Field(ge=2)] = 65
    block_size: Annotated[int, Field(ge=1)] = 64
    n_layer: Annotated[int, Field(ge=1)] = 4
    n_head: Annotated[int, Field(ge=1)] = 4
    n_embd: Annotated[int, Field(ge=1)] = 128
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    bias: bool = False
    # learned / sinusoidal: codes added to the input; rotary: queries and keys rotated by position, which makes
    # attention depend on offsets only and lets generation roll a KV cache past block_size.
    positions: Literal["learned", "sinusoidal", "rotary"] = "learned"
    tie_weights: bool = True
    cross_attention: bool = False  # a cross-attention layer per block, reading ``memory``
    qk_norm: bool = False  # RMS-normalise each head's queries and keys
    mlp: Literal["gelu", "relu2"] = "gelu"  # relu2: max(x, 0)², cheaper than GELU and as good (Primer)
    logit_softcap: Annotated[float, Field(ge=0)] = 0.0  # > 0: logits = cap·tanh(logits/cap) (Gemma 2); 0 = off


def config_problem(cfg: GPTConfig) -> str | None:
    """A one-line description of what is wrong with ``cfg`` and how to fix it, or None."""
    if cfg.n_embd % cfg.n_head:
        return f"n_embd {cfg.n_embd} must be divisible by n_head {cfg.n_head}; change one of them"
    if cfg.positions == "rotary" and (cfg.n_embd // cfg.n_head) % 2:
        return (
            f"positions: rotary rotates channel pairs, so the head width n_embd/n_head "
            f"({cfg.n_embd}/{cfg.n_head} = {cfg.n_embd // cfg.n_head}) must be even; change n_embd or n_head"
        )
    return None


def sinusoidal(length: int, width: int) -> torch.Tensor:
    """(length, width) fixed sine/cosine position codes (Vaswani et al. 2017)."""
    pos = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
    pe = torch.zeros(length, width)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: width // 2])
    return pe


class ReLU2(nn.Module):
    """max(x, 0)² (So et al. 2021, "Primer"; modded-nanogpt's MLP activation)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x).square()


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        c = cfg.n_embd
        self.ln1 = nn.LayerNorm(c, bias=cfg.bias)
        self.attn = CausalSelfAttention(c, cfg.n_head, cfg.dropout, cfg.bias, cfg.qk_norm)
        if cfg.cross_attention:
            self.ln_x = nn.LayerNorm(c, bias=cfg.bias)
            self.xattn = CrossAttention(c, cfg.n_head, cfg.dropout, cfg.bias)
        self.ln2 = nn.LayerNorm(c, bias=cfg.bias)
        layers = [nn.Linear(c, 4 * c, bias=cfg.bias), ReLU2() if cfg.mlp == "relu2" else nn.GELU()]
        layers.append(nn.Linear(4 * c, c, bias=cfg.bias))
        if cfg.dropout:  # an identity module still costs a call per token when decoding
            layers.append(nn.Dropout(cfg.dropout))
        self.mlp = nn.Sequential(*layers)

    def forward(
        self,
        x: torch.Tensor,
        cache: KVCache | None = None,
        layer: int = 0,
        memory: torch.Tensor | None = None,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        window: int | None = None,
    ) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache, layer, rope, window)
        if memory is not None:
            x = x + self.xattn(self.ln_x(x), memory)
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Decoder-only Transformer language model.

    With ``positions: rotary`` a token attends to at most the last ``block_size`` positions (its own
    included) in every layer: within a training window that is plain causal attention; past it, it is the
    sliding window that a rolling :class:`KVCache` computes one token at a time.

    Args:
        cfg: Model shape (:class:`GPTConfig`).
    """

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        problem = config_problem(cfg)
        if problem:
            raise ValueError(f"gpt: {problem}")
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe: nn.Module | None = None
        self.rotary: Rotary | None = None
        if cfg.positions == "learned":
            self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        elif cfg.positions == "rotary":
            self.rotary = Rotary(cfg.n_embd // cfg.n_head, cfg.block_size)
        else:
            self.register_buffer("pe", sinusoidal(cfg.block_size, cfg.n_embd), persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.lm_head.weight = self.wte.weight  # one matrix reads and writes tokens (Press & Wolf 2017)
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                # GPT-2: residual projections scaled by 1/sqrt(2·layers) so the residual stream's variance
                # does not grow with depth.
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def new_cache(self, rolling: bool | None = None) -> KVCache:
        """An empty KV cache for this model: rolling (past ``block_size``) by default with rotary positions."""
        return KVCache(self.cfg.block_size, self.rotary is not None if rolling is None else rolling)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        prefix: torch.Tensor | None = None,
        cache: KVCache | None = None,
        memory: torch.Tensor | None = None,
        embeds: torch.Tensor | None = None,
        start: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, V) for token ids (B, T) and, with ``targets`` (B, T; -1 = ignore), the mean
        cross-entropy. ``prefix`` (B, P, C) is prepended (its positions get no logits or loss); ``memory``
        (B, M, C) is attended to by every block's cross-attention. ``embeds`` (B, T, C), when given, is used
        instead of ``wte(idx)`` (``idx`` is then ignored): a caller that splices other embeddings among the
        token embeddings — a projected image where a prompt says ``<image>`` — passes the result here.
        ``start``: the position of the first input (default: 0, or the positions a cache has seen); rotary
        models only, which may also take more than ``block_size`` inputs (attending through the window)."""
        if memory is not None and not self.cfg.cross_attention:
            raise ValueError("gpt: memory given but the model has no cross-attention (cross_attention: true)")
        x = self.wte(idx) if embeds is None else embeds  # (B, T, C)
        p = 0 if prefix is None else prefix.shape[1]
        if prefix is not None:
            x = torch.cat([prefix.to(x.dtype), x], dim=1)
        first = start if start is not None else (0 if cache is None else cache.length)
        total = first + x.shape[1]
        rope, window = None, None
        if self.rotary is not None:
            rope, window = self.rotary(first, x.shape[1]), self.cfg.block_size
        elif start:
            raise ValueError("gpt: start= needs positions: rotary (absolute position codes stop at block_size)")
        elif total > self.cfg.block_size:
            raise ValueError(f"gpt: {total} positions exceed block_size {self.cfg.block_size}")
        else:
            pos = torch.arange(first, total, device=x.device)
            x = x + (self.wpe(pos) if self.wpe is not None else self.pe[pos])
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i, memory, rope, window)
        logits = self.lm_head(self.ln_f(x[:, p:]))
        if self.cfg.logit_softcap:
            cap = self.cfg.logit_softcap
            logits = cap * torch.tanh(logits / cap)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def num_params(self, embeddings: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n if embeddings or self.wpe is None else n - self.wpe.weight.numel()
