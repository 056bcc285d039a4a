"""Rotary position embeddings (RoPE, Su et al. 2021): each pair of query/key channels is rotated by an angle
proportional to the token's position, so a query·key product depends only on the two tokens' offset.

Relative positions are what let generation run past ``block_size`` with a sliding-window KV cache: a key
rotated once, at its absolute position, stays valid however far the window has moved (learned or sinusoidal
codes are added to the input, so a window shifted by one would change every cached key).
"""

from __future__ import annotations

import torch
from torch import nn

BASE = 10000.0  # the RoPE paper's (and LLaMA's) frequency base


class Rotary(nn.Module):
    """cos/sin of the rotation angles of positions ``start .. start+T-1`` (apply them with :func:`rotate`).

    cos/sin tables are kept for the positions used so far and doubled when generation goes past them. The
    angles are computed in float64: at position 10^5 a float32 angle would be off by ~0.01 rad.

    Args:
        head_dim: Channels per head (even: channels are rotated in pairs).
        length: Positions to tabulate up front (the model's ``block_size``).
    """

    def __init__(self, head_dim: int, length: int) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"gpt: positions: rotary needs an even head width, got n_embd/n_head = {head_dim}")
        self.head_dim = head_dim
        self.register_buffer("cos", torch.empty(0), persistent=False)
        self.register_buffer("sin", torch.empty(0), persistent=False)
        self._build(length)

    def _build(self, length: int) -> None:
        with torch.inference_mode(False), torch.no_grad():  # grown during generation, used again in training
            inv = BASE ** (-torch.arange(0, self.head_dim, 2, dtype=torch.float64) / self.head_dim)  # (D/2,)
            angles = torch.outer(torch.arange(length, dtype=torch.float64), inv)  # (length, D/2)
            cos, sin = angles.cos().float(), angles.sin().float()
            # Full-width tables, sin with the sign of the rotation folded in: see rotate().
            self.cos = torch.cat([cos, cos], dim=1).to(self.cos.device)
            self.sin = torch.cat([-sin, sin], dim=1).to(self.cos.device)

    def forward(self, start: int, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(T, D) cos and signed sin of positions ``start .. start+t-1``."""
        if start + t > self.cos.shape[0]:
            self._build(max(2 * self.cos.shape[0], start + t))
        return self.cos[start : start + t], self.sin[start : start + t]


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """(..., T, D) queries or keys rotated by :class:`Rotary`'s (T, D) tables. Channel i of the first half
    and channel i of the second half form a pair (GPT-NeoX/LLaMA layout): (x1, x2) -> (x1·cos − x2·sin,
    x2·cos + x1·sin), i.e. x·cos + roll(x, D/2)·(−sin, sin) — three operations, which matters when decoding
    one token at a time costs mostly per-operation overhead."""
    if cos.dtype != x.dtype:
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.addcmul(x * cos, x.roll(x.shape[-1] // 2, dims=-1), sin)
