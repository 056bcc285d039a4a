"""Building blocks shared by the convolutional encoders."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

Norm = Literal["batch", "group"]


def norm_layer(kind: Norm, channels: int, dims: int = 2) -> nn.Module:
    """BatchNorm (default), or GroupNorm with up to 8 groups: GroupNorm normalises each example on its own,
    which DP-SGD's per-sample gradients need (BatchNorm mixes the examples of a batch)."""
    if kind == "group":
        return nn.GroupNorm(math.gcd(channels, 8), channels)
    return nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm1d(channels)


def conv_stack(in_channels: int, width: int, depth: int, norm: Norm = "batch") -> tuple[nn.Sequential, int]:
    """``depth`` blocks of (conv3×3-norm-ReLU)×2 + 2×2 max-pool, channels doubling; returns (stack, C_out)."""
    layers: list[nn.Module] = []
    c_in = in_channels
    for i in range(depth):
        c_out = width * 2**i
        layers += [
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            norm_layer(norm, c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            norm_layer(norm, c_out),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        ]
        c_in = c_out
    return nn.Sequential(*layers), c_in


def split_mask(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, C + 1) series with a trailing validity channel -> values (B, T, C) and mask (B, T) bool."""
    return x[..., :-1], x[..., -1] > 0.5


def masked_mean_max(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean and max over valid steps of (B, T, D) -> (B, 2D); padding never wins the max, and a row with no
    valid step (an empty series, or the placeholder of a missing input) gives zeros, not -inf."""
    m = mask.unsqueeze(-1).to(h.dtype)
    mean = (h * m).sum(1) / m.sum(1).clamp_min(1.0)
    peak = h.masked_fill(~mask.unsqueeze(-1), torch.finfo(h.dtype).min).amax(1)
    peak = torch.where(mask.any(1, keepdim=True), peak, torch.zeros((), dtype=h.dtype))
    return torch.cat([mean, peak], dim=-1)


def example_series(batch: int, length: int, channels: int) -> torch.Tensor:
    """A random (B, T, C + 1) series whose examples end at different steps (for contract tests)."""
    x = torch.randn(batch, length, channels + 1)
    x[..., -1] = 1.0
    for b in range(batch):
        x[b, length - 2 * b - 1 :, :] = 0.0  # example b has 2b + 1 padded steps
    return x


def example_tokens(batch: int, length: int, vocab_size: int) -> torch.Tensor:
    """Random (B, T) token ids with trailing padding (id 0) of different lengths, one row all padding."""
    ids = torch.randint(2, vocab_size, (batch, length))
    for b in range(batch):
        ids[b, length - 3 * b :] = 0
    ids[-1] = 0
    return ids


def transformer(name: str, width: int, heads: int, layers: int, dropout: float) -> nn.TransformerEncoder:
    """The pre-LN Transformer encoder every token encoder here uses (MLP 2× width, batch first)."""
    if width % heads:
        raise ValueError(f"{name}: width {width} must be divisible by heads {heads}")
    layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout, batch_first=True, norm_first=True)
    # Nested tensors would skip padded positions differently in train and eval; keep one code path.
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


def learned_positions(length: int, width: int) -> nn.Parameter:
    """(1, length, width) position embeddings, initialised small (std 0.02, as in GPT-2/ViT)."""
    return nn.Parameter(torch.randn(1, length, width) * 0.02)
