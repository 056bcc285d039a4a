"""Building blocks shared by the convolutional encoders."""

from __future__ import annotations

from torch import nn


def conv_stack(in_channels: int, width: int, depth: int) -> tuple[nn.Sequential, int]:
    """``depth`` blocks of (conv3×3-BN-ReLU)×2 + 2×2 max-pool, channels doubling; returns (stack, C_out)."""
    layers: list[nn.Module] = []
    c_in = in_channels
    for i in range(depth):
        c_out = width * 2**i
        layers += [
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        ]
        c_in = c_out
    return nn.Sequential(*layers), c_in
