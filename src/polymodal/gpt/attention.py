"""The GPT's attention layers: causal self-attention (optionally with rotary positions, QK-norm, a KV cache
and a sliding window) and cross-attention to a fixed memory. Shapes: B batch, T tokens, C width, H heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from polymodal.gpt.cache import KVCache
from polymodal.gpt.rotary import rotate


def window_mask(t: int, past: int, window: int | None, device: torch.device) -> torch.Tensor:
    """(T, past+T) bool: query i (at position past+i) sees key j when 0 ≤ (past+i) − j < ``window``."""
    offset = torch.arange(past, past + t, device=device).unsqueeze(1) - torch.arange(past + t, device=device)
    return (offset >= 0) & (offset < window) if window is not None else offset >= 0


class CausalSelfAttention(nn.Module):
    """Causal multi-head self-attention.

    Args:
        n_embd, n_head: Width and heads.
        dropout: Attention and residual dropout.
        bias: Biases in the projections.
        qk_norm: RMS-normalise each head's queries and keys (no scale): the attention logits stay bounded,
            which lets Muon and high learning rates train without loss spikes (modded-nanogpt, OLMo 2).
    """

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = False, qk_norm: bool = False):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"gpt: n_embd {n_embd} must be divisible by n_head {n_head}")
        self.n_head, self.dropout, self.qk_norm = n_head, dropout, qk_norm
        self.qkv = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_drop = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        cache: KVCache | None = None,
        layer: int = 0,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        window: int | None = None,
    ) -> torch.Tensor:
        """``rope``: (T, C/H/2) cos/sin of this chunk's positions; ``window``: the most recent positions a
        token may see (None: all of them)."""
        b, t, c = x.shape
        d = c // self.n_head
        qkv = self.qkv(x).view(b, t, 3, self.n_head, d).permute(2, 0, 3, 1, 4)  # (3, B, H, T, D)
        qk, v = qkv[:2], qkv[2]  # queries and keys normalised and rotated together: half the operations
        if self.qk_norm:
            qk = F.rms_norm(qk, (d,))
        if rope is not None:
            qk = rotate(qk, *rope)
        q, k = qk[0], qk[1]
        drop = self.dropout if self.training else 0.0
        past = 0  # held positions before this chunk, placed before its keys
        if cache is not None and cache.seen(layer):
            if t == 1:  # one new token sees every held position (the window of a rolling cache), in any order
                k, v = cache.update(layer, k, v)
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
                return self.proj(y.transpose(1, 2).reshape(b, t, c))
            pk, pv = cache.past(layer)
            cache.write(layer, k, v)
            past, k, v = pk.shape[2], torch.cat([pk, k], dim=2), torch.cat([pv, v], dim=2)
        elif cache is not None:
            cache.write(layer, k, v)
        mask = None
        if past or (window is not None and t > window):
            mask = window_mask(t, past, window, x.device)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop, is_causal=mask is None)
        y = self.proj(y.transpose(1, 2).contiguous().view(b, t, c))
        return self.resid_drop(y) if drop else y


class CrossAttention(nn.Module):
    """Tokens (B, T, C) attend to every memory position (B, M, C); no mask, no cache needed (M is fixed)."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = False) -> None:
        super().__init__()
        self.n_head, self.dropout = n_head, dropout
        self.q = nn.Linear(n_embd, n_embd, bias=bias)
        self.kv = nn.Linear(n_embd, 2 * n_embd, bias=bias)
        self.proj = nn.Linear(n_embd, n_embd, bias=bias)

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        h = self.n_head
        q = self.q(x).view(b, t, h, c // h).transpose(1, 2)  # (B, H, T, C/H)
        k, v = (z.view(b, -1, h, c // h).transpose(1, 2) for z in self.kv(memory).split(c, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).contiguous().view(b, t, c))
