"""Scoring a trained model on a dataset: its outputs (as the model reduces them), targets, loss and metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from polymodal.data.dataset import collate
from polymodal.training.distributed import Dist

Batch = tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None, torch.Tensor]


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """bf16 autocast when ``precision`` is ``bf16``, else a context that changes nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def to_device(batch: Batch, device: torch.device) -> Batch:
    """The batch on ``device``; on the CPU (every single-process run today) it is left as it is."""
    inputs, present, y = batch
    if device.type == "cpu":
        return inputs, present, y
    move = {k: v.to(device, non_blocking=True) for k, v in inputs.items()}
    flags = None if present is None else {k: v.to(device, non_blocking=True) for k, v in present.items()}
    return move, flags, y.to(device, non_blocking=True)


class Evaluator:
    """Runs a :class:`~polymodal.contracts.Trainable` model over a dataset without gradients.

    In a distributed run each process scores its share of the rows and every process gets all of them.

    Args:
        model: The model (put in eval mode while scoring).
        batch_size: Rows per forward.
        dist: This process's place in a torchrun job (default: one process).
        precision: ``fp32`` or ``bf16`` (autocast).
    """

    def __init__(self, model: nn.Module, batch_size: int = 128, dist: Dist | None = None, precision: str = "fp32"):
        self.model, self.batch_size, self.precision = model, batch_size, precision
        self.dist = dist or Dist()

    @torch.no_grad()
    def predict(self, ds: Dataset) -> tuple[np.ndarray, np.ndarray, float]:
        """Outputs (N, ...) as ``model.reduce`` keeps them, targets (N, ...) and the mean loss over ``ds``."""
        self.model.eval()
        self.dist.sync_buffers(self.model)
        device = self.dist.device
        rows = self.dist.eval_rows(len(ds))
        batches = [rows[i : i + self.batch_size] for i in range(0, len(rows), self.batch_size)]
        loader = DataLoader(ds, batch_sampler=batches, collate_fn=collate, num_workers=0, generator=torch.Generator())
        outs, targets, loss_sum = [], [], 0.0
        for batch in loader:
            inputs, present, y = to_device(batch, device)
            with autocast(device, self.precision):
                out = self.model(inputs, present)
            loss_sum += float(self.model.loss(out, y)) * len(y)
            outs.append(self.model.reduce(out).cpu())
            targets.append(y.cpu())
        out_np, tgt, loss_sum = self.dist.gather_eval(
            len(ds), torch.cat(outs).numpy(), torch.cat(targets).numpy(), loss_sum
        )
        return out_np, tgt, loss_sum / max(1, len(ds))

    def evaluate(self, ds: Dataset) -> dict[str, Any]:
        """The model's metrics on ``ds`` (at least ``accuracy`` for classifiers) plus its ``loss``."""
        outs, y, loss = self.predict(ds)
        return {"loss": loss, **self.model.metrics(outs, y)}


def modality_ablation(evaluator: Evaluator, ds: Any) -> dict[str, float]:
    """Accuracy with each input removed (treated as missing in every row); empty for a single input."""
    names = list(ds.columns)
    if len(names) < 2:
        return {}
    return {name: evaluator.evaluate(ds.view(removed=frozenset({name})))["accuracy"] for name in names}
