"""Masked patch / spectrogram modelling (MAE, SimMIM-style): hide most input patches, rebuild them.

A fraction ``mask_ratio`` of the (H, W) patches of an image — or of the (F, T) time-frequency patches of a
spectrogram — is set to 0 (the normalised mean: images are scaled by mean/std, spectrograms by per-utterance
CMVN) and the encoder reads the whole masked input. Its per-token states go through a light per-token MLP
decoder that predicts the pixels of the cell each token covers; the loss is the mean squared error on the
masked pixels only.

Unlike the original MAE, the encoder also sees the masked positions (as zeros) rather than dropping them:
that is what makes the same objective work for CNNs, whose grid has no tokens to drop (SimMIM takes the same
route for Transformers). Encoders need ``hidden(x) -> (B, N, W)`` and ``grid`` (the (rows, cols) layout of
those tokens over the input): image_vit, image_cnn, audio_cnn, audio_transformer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, NamedTuple

import numpy as np
import torch
from pydantic import Field
from torch import nn

from polymodal.pretrain.base import MaskingObjective, only_input
from polymodal.registry import OBJECTIVES


@dataclass
class MAEConfig:
    """Recipe keys for ``objective: {name: mae}``.

    patch: [rows, cols] of one masking patch in input units (pixels, or mel bands × frames); empty: the
    cell one encoder token covers (a ViT patch; a CNN's downsampled block; a spectrogram frame strip).
    decoder_width: hidden width of the per-token MLP decoder (0: a single linear layer).
    """

    mask_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.75
    patch: list[Annotated[int, Field(ge=1)]] = field(default_factory=list)
    decoder_width: Annotated[int, Field(ge=0)] = 128


def patch_mask(
    batch: int, size: tuple[int, int], patch: tuple[int, int], ratio: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(B, H, W) bool, True where masked: exactly round(ratio · P) of the P = (H//ph)·(W//pw) patches per
    example (at least 1, at most P − 1); pixels past the last whole patch are never masked."""
    (h, w), (ph, pw) = size, patch
    nh, nw = h // ph, w // pw
    n = nh * nw
    k = min(max(1, round(ratio * n)), n - 1)
    rank = torch.rand(batch, n, generator=generator).argsort(1).argsort(1)
    grid = (rank < k).view(batch, nh, nw)
    out = torch.zeros(batch, h, w, dtype=torch.bool)
    out[:, : nh * ph, : nw * pw] = grid.repeat_interleave(ph, 1).repeat_interleave(pw, 2)
    return out


class MAEOutput(NamedTuple):
    pred: torch.Tensor  # (B, C, H', W') reconstruction of the region the token grid covers
    target: torch.Tensor  # (B, C, H', W') the unmasked input there
    mask: torch.Tensor  # (B, H', W') True where the input was masked


@OBJECTIVES.register("mae", MAEConfig)
class MaskedPatchModel(MaskingObjective):
    """Masked input -> encoder tokens -> per-token MLP -> pixels of each token's cell; loss on masked pixels.

    Args:
        encoders: ``{input: encoder}``, one image or spectrogram encoder exposing ``hidden`` and ``grid``.
        in_shapes: ``{input: (C, H, W)}`` (audio: (1, F, T)).
        mask_ratio, patch, decoder_width: See :class:`MAEConfig`.
    """

    INPUTS = 1
    # The encoder's pooled projection (hidden states -> one vector) is not used here: MAE/MLM train the per-token
    # states, and a downstream model that starts from them trains the projection itself.
    UNTRAINED_ENCODER_PARTS = ("proj",)
    # The contract test's inputs (tests/test_contracts.py): tiny, and with per-token states MAE reconstructs.
    EXAMPLE_INPUTS: list[dict[str, Any]] = [
        {"name": "image", "modality": "image", "encoder": {"name": "image_vit", "patch": 7, "width": 16, "heads": 2}}
    ]

    def __init__(
        self,
        encoders: dict[str, nn.Module],
        in_shapes: dict[str, tuple[int, ...]],
        contexts: dict[str, dict[str, Any]],
        transforms: dict[str, Any],
        classes: list[str],
        mask_ratio: float,
        patch: list[int],
        decoder_width: int,
    ) -> None:
        super().__init__()
        self.name, enc = only_input(encoders, "mae")
        shape = tuple(in_shapes[self.name])
        if len(shape) != 3 or not hasattr(enc, "grid"):
            raise ValueError(f"mae: input '{self.name}' must be an image or spectrogram (C, H, W); got {shape}")
        self.encoders = nn.ModuleDict(encoders)
        c, h, w = shape
        self.grid = tuple(enc.grid)
        self.cell = (h // self.grid[0], w // self.grid[1])  # input pixels each token reconstructs
        self.prefix = getattr(enc, "hidden_prefix", 0)  # tokens before the grid (a ViT's CLS)
        if len(patch) not in (0, 2):
            raise ValueError(f"mae: patch must be [rows, cols] or empty, got {patch}")
        self.patch = tuple(patch) if patch else self.cell
        if self.patch[0] > h or self.patch[1] > w or (h // self.patch[0]) * (w // self.patch[1]) < 2:
            raise ValueError(f"mae: patch {list(self.patch)} leaves fewer than 2 patches in a {h}×{w} input")
        self.mask_ratio, self.channels = mask_ratio, c
        out = c * self.cell[0] * self.cell[1]
        d = enc.hidden_dim
        self.decoder = (
            nn.Sequential(nn.LayerNorm(d), nn.Linear(d, decoder_width), nn.GELU(), nn.Linear(decoder_width, out))
            if decoder_width
            else nn.Linear(d, out)
        )

    def forward(self, inputs: dict[str, torch.Tensor], present: Any = None) -> MAEOutput:
        x = inputs[self.name]  # (B, C, H, W)
        b, c, h, w = x.shape
        mask = patch_mask(b, (h, w), self.patch, self.mask_ratio, self.generator())  # (B, H, W)
        tokens = self.encoders[self.name].hidden(x.masked_fill(mask.unsqueeze(1), 0.0))[:, self.prefix :]
        (gh, gw), (ch, cw) = self.grid, self.cell
        pred = self.decoder(tokens).view(b, gh, gw, c, ch, cw)  # (B, gh, gw, C, ch, cw)
        pred = pred.permute(0, 3, 1, 4, 2, 5).reshape(b, c, gh * ch, gw * cw)  # (B, C, H', W')
        return MAEOutput(pred, x[:, :, : gh * ch, : gw * cw], mask[:, : gh * ch, : gw * cw])

    @staticmethod
    def _errors(out: MAEOutput) -> tuple[torch.Tensor, torch.Tensor]:
        se = (out.pred.float() - out.target.float()).pow(2).mean(1)  # (B, H', W'), channels averaged
        return se * out.mask, out.mask.float()

    def loss(self, out: MAEOutput, target: torch.Tensor) -> torch.Tensor:
        se, m = self._errors(out)
        return se.sum() / m.sum().clamp_min(1.0)

    def reduce(self, out: MAEOutput) -> torch.Tensor:
        """Per example (B, 3): squared error summed over masked pixels, the same for predicting the fill value
        0 (the baseline a model that learnt nothing matches), and the masked pixel count."""
        se, m = self._errors(out)
        fill = out.target.float().pow(2).mean(1) * m
        return torch.stack([se.sum((1, 2)), fill.sum((1, 2)), m.sum((1, 2))], 1)

    def metrics(self, outputs: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        se, fill, count = outputs.astype(np.float64).sum(0)
        mse, base = se / max(count, 1.0), fill / max(count, 1.0)
        return {"masked_mse": mse, "fill_mse": base, "explained": 1.0 - mse / base if base else 0.0, "n": len(outputs)}
