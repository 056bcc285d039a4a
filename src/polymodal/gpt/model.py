"""GPT: token + position embeddings, pre-LayerNorm causal self-attention blocks, tied output projection.

The whole forward pass is in this file. Shapes: B batch, T tokens, C width (n_embd), H heads, V vocab.
``forward(idx, targets=None, prefix=None, cache=None, memory=None) -> (logits, loss)``: ``prefix``
(B, P, C) are embeddings placed before the tokens (a projected image or sound, for conditioned generation,
ClipCap-style); ``memory`` (B, M, C) is read through a cross-attention layer in every block instead (the
encoder-decoder variant; needs ``cross_attention: true``); ``cache`` is a :class:`KVCache` that makes
each generation step cost one token instead of the whole context.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn


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
    positions: Literal["learned", "sinusoidal"] = "learned"
    tie_weights: bool = True
    cross_attention: bool = False  # a cross-attention layer per block, reading ``memory``


class KVCache:
    """Keys and values of every layer for the positions seen so far.

    Buffers of (B, H, ``capacity``, C/H) per layer are allocated on a layer's first update and filled in
    place; :meth:`update` returns views of the filled part. Growing them with ``torch.cat`` instead would
    copy the whole past at every generated token.

    Args:
        capacity: Most positions the cache holds (the model's ``block_size``).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.k: list[torch.Tensor] = []
        self.v: list[torch.Tensor] = []
        self.n: list[int] = []

    @property
    def length(self) -> int:
        """Positions cached (in layer 0, which a forward pass updates first)."""
        return self.seen(0)

    def seen(self, layer: int) -> int:
        return self.n[layer] if layer < len(self.n) else 0

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append this step's (B, H, T_new, C/H) keys/values for ``layer``; return all cached ones."""
        if layer == len(self.k):
            b, h, _, d = k.shape
            self.k.append(k.new_empty(b, h, self.capacity, d))
            self.v.append(v.new_empty(b, h, self.capacity, d))
            self.n.append(0)
        n, t = self.n[layer], k.shape[2]
        if n + t > self.capacity:
            raise ValueError(f"gpt: KV cache holds {self.capacity} positions; {n + t} requested")
        self.k[layer][:, :, n : n + t] = k
        self.v[layer][:, :, n : n + t] = v
        self.n[layer] = n + t
        return self.k[layer][:, :, : n + t], self.v[layer][:, :, : n + t]

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows ``index`` (beam search reorders its hypotheses every step)."""
        self.k = [k.index_select(0, index) for k in self.k]
        self.v = [v.index_select(0, index) for v in self.v]


def sinusoidal(length: int, width: int) -> torch.Tensor:
    """(length, width) fixed sine/cosine position codes (Vaswani et al. 2017)."""
    pos = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
    pe = torch.zeros(length, width)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: width // 2])
    return pe


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        if cfg.n_embd % cfg.n_head:
            raise ValueError(f"gpt: n_embd {cfg.n_embd} must be divisible by n_head {cfg.n_head}")
        self.n_head, self.dropout = cfg.n_head, cfg.dropout
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))  # (B, H, T, C/H)
        past = 0
        if cache is not None:
            past = cache.seen(layer)
            k, v = cache.update(layer, k, v)
        if past == 0:
            mask, causal = None, True
        elif t == 1:
            mask, causal = None, False  # one new token may see every cached position
        else:  # several new tokens after a cached past: causal among themselves, all of the past visible
            total = past + t
            mask = torch.ones(t, total, dtype=torch.bool, device=x.device).tril(diagonal=past)
            causal = False
        drop = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop, is_causal=causal)
        y = y.transpose(1, 2).contiguous().view(b, t, c)
        return self.resid_drop(self.proj(y))


class CrossAttention(nn.Module):
    """Tokens (B, T, C) attend to every memory position (B, M, C); no mask, no cache needed (M is fixed)."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head, self.dropout = cfg.n_head, cfg.dropout
        self.q = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.kv = nn.Linear(cfg.n_embd, 2 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        h = self.n_head
        q = self.q(x).view(b, t, h, c // h).transpose(1, 2)  # (B, H, T, C/H)
        k, v = (z.view(b, -1, h, c // h).transpose(1, 2) for z in self.kv(memory).split(c, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).contiguous().view(b, t, c))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        if cfg.cross_attention:
            self.ln_x = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
            self.xattn = CrossAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias),
            nn.GELU(),
            nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias),
            nn.Dropout(cfg.dropout),
        )

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0, memory: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache, layer)
        if memory is not None:
            x = x + self.xattn(self.ln_x(x), memory)
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Decoder-only Transformer language model.

    Args:
        cfg: Model shape (:class:`GPTConfig`).
    """

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        if cfg.positions == "learned":
            self.wpe: nn.Module | None = nn.Embedding(cfg.block_size, cfg.n_embd)
        else:
            self.wpe = None
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

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        prefix: torch.Tensor | None = None,
        cache: KVCache | None = None,
        memory: torch.Tensor | None = None,
        embeds: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, V) for token ids (B, T) and, with ``targets`` (B, T; -1 = ignore), the mean
        cross-entropy. ``prefix`` (B, P, C) is prepended (its positions get no logits or loss); ``memory``
        (B, M, C) is attended to by every block's cross-attention. ``embeds`` (B, T, C), when given, is used
        instead of ``wte(idx)`` (``idx`` is then ignored): a caller that splices other embeddings among the
        token embeddings — a projected image where a prompt says ``<image>`` — passes the result here."""
        if memory is not None and not self.cfg.cross_attention:
            raise ValueError("gpt: memory given but the model has no cross-attention (cross_attention: true)")
        x = self.wte(idx) if embeds is None else embeds  # (B, T, C)
        p = 0 if prefix is None else prefix.shape[1]
        if prefix is not None:
            x = torch.cat([prefix.to(x.dtype), x], dim=1)
        start = 0 if cache is None else cache.length
        total = start + x.shape[1]
        if total > self.cfg.block_size:
            raise ValueError(f"gpt: {total} positions exceed block_size {self.cfg.block_size}")
        pos = torch.arange(start, total, device=x.device)
        x = x + (self.wpe(pos) if self.wpe is not None else self.pe[pos])
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i, memory)
        x = self.ln_f(x[:, p:])
        if targets is None:
            return self.lm_head(x), None
        logits = self.lm_head(x)
        loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def num_params(self, embeddings: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n if embeddings or self.wpe is None else n - self.wpe.weight.numel()
