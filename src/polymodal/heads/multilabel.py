"""Multi-label classification head: independent sigmoid per label, binary cross-entropy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from polymodal.data.targets import num_outputs
from polymodal.heads.classification import projection
from polymodal.registry import HEADS
from polymodal.schema import Hidden


@dataclass
class MultiLabelConfig:
    """Recipe keys for ``head: {name: multilabel}``."""

    hidden: Hidden = 0
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1
    threshold: Annotated[float, Field(gt=0, lt=1)] = 0.5
    # Up-weight positives in the loss (labels are usually sparse: most are absent from most rows).
    pos_weight: Annotated[float, Field(gt=0)] = 1.0


def multilabel_metrics(y: np.ndarray, pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Subset accuracy, micro/macro precision-recall-F1, Hamming loss and per-label scores for (N, L) 0/1."""
    y, pred = y.astype(bool), pred.astype(bool)
    tp, fp, fn = (y & pred).sum(0), (~y & pred).sum(0), (y & ~pred).sum(0)

    def prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
        p = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=tp + fp > 0)
        r = np.divide(tp, tp + fn, out=np.zeros_like(tp), where=tp + fn > 0)
        f = np.divide(2 * p * r, p + r, out=np.zeros_like(tp), where=p + r > 0)
        return p, r, f

    p, r, f = prf(tp, fp, fn)
    mp, mr, mf = prf(tp.sum(), fp.sum(), fn.sum())
    return {
        "accuracy": float((y == pred).all(1).mean()),  # exact match of the whole label set
        "hamming_loss": float((y != pred).mean()),
        "micro_precision": float(mp),
        "micro_recall": float(mr),
        "micro_f1": float(mf),
        "macro_precision": float(p.mean()),
        "macro_recall": float(r.mean()),
        "macro_f1": float(f.mean()),
        "per_class": {
            c: {"precision": float(a), "recall": float(b), "f1": float(d), "support": int(s)}
            for c, a, b, d, s in zip(classes, p, r, f, y.sum(0), strict=True)
        },
        "n": int(len(y)),
    }


@HEADS.register("multilabel", MultiLabelConfig)
class MultiLabelHead(nn.Module):
    """Map (B, D) to one logit per label (B, L); targets are multi-hot (B, L).

    Args:
        in_dim: Width D of the fused vector.
        target: Target info (``{"kind": "multilabel", "classes": [...]}``).
        hidden: Width of an optional hidden layer (0 = none).
        dropout: Dropout before each linear layer.
        threshold: Probability above which a label is predicted.
        pos_weight: Weight of positive labels in the binary cross-entropy.
        project: False when the fusion already emits logits.
    """

    TARGET = "multilabel"
    EXAMPLE_TARGET: dict[str, Any] = {"kind": "multilabel", "classes": ["a", "b", "c", "d"]}

    def __init__(
        self,
        in_dim: int,
        target: dict[str, Any],
        hidden: int,
        dropout: float,
        threshold: float,
        pos_weight: float,
        project: bool = True,
    ) -> None:
        super().__init__()
        self.classes: list[str] = list(target["classes"])
        self.threshold, self.pos_weight = threshold, pos_weight
        self.net = projection(in_dim, num_outputs(target), hidden, dropout, project)

    @staticmethod
    def example_target(batch: int) -> torch.Tensor:
        return (torch.arange(batch * 4).view(batch, 4) % 3 == 0).float()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)  # (B, L)

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weight = torch.tensor(self.pos_weight, device=logits.device)
        return F.binary_cross_entropy_with_logits(logits.float(), target.float(), pos_weight=weight)

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-label probabilities (B, L)."""
        return logits.float().sigmoid()

    def metrics(self, logits: np.ndarray, target: np.ndarray) -> dict[str, Any]:
        probs = 1 / (1 + np.exp(-logits.astype(np.float64)))
        return multilabel_metrics(target, probs > self.threshold, self.classes)

    def describe(self, logits: torch.Tensor) -> dict[str, Any]:
        """One example's logits (L,) -> ``{"labels": [...above threshold], "probabilities"}``."""
        probs = self.predict(logits)
        return {
            "labels": [c for c, p in zip(self.classes, probs, strict=True) if p > self.threshold],
            "probabilities": {c: float(p) for c, p in zip(self.classes, probs, strict=True)},
        }
