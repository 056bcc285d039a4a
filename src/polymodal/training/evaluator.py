"""Scoring a trained model on a dataset: its outputs (as the model reduces them), targets, loss and metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from polymodal.data.examples import collate
from polymodal.training.distributed import Dist

Batch = tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None, torch.Tensor]


DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """bf16 or fp16 autocast when ``precision`` says so, else a context that changes nothing."""
    dtype = DTYPES.get(precision)
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def to_device(batch: Batch, device: torch.device) -> Batch:
    """The batch on ``device``, moved once (every tensor of it together, ``non_blocking``: from the pinned
    memory a CUDA run's DataLoader fills, the copies overlap the step's compute); on the CPU it is left as is."""
    inputs, present, y = batch
    if device.type == "cpu":
        return inputs, present, y
    move = {k: v.to(device, non_blocking=True) for k, v in inputs.items()}
    flags = None if present is None else {k: v.to(device, non_blocking=True) for k, v in present.items()}
    return move, flags, y.to(device, non_blocking=True)


def pinned(device: torch.device) -> bool:
    """Whether batches for ``device`` are built in page-locked memory (what makes ``non_blocking`` copies
    asynchronous); only CUDA has it."""
    return device.type == "cuda"


class Evaluator:
    """Runs a :class:`~polymodal.contracts.Trainable` model over a dataset without gradients.

    In a distributed run each process scores its share of the rows and every process gets all of them.

    Args:
        model: The model (put in eval mode while scoring).
        batch_size: Rows per forward.
        dist: This process's place in a torchrun job (default: one process).
        precision: ``fp32``, ``bf16`` or ``fp16`` (autocast).
        device: Where the model runs (default: ``dist``'s device); the model is not moved, it must be there.
    """

    def __init__(
        self,
        model: nn.Module,
        batch_size: int = 128,
        dist: Dist | None = None,
        precision: str = "fp32",
        device: torch.device | str | None = None,
    ):
        self.model, self.batch_size, self.precision = model, batch_size, precision
        self.dist = dist or Dist()
        self.device = torch.device(device) if device is not None else self.dist.device

    @torch.no_grad()
    def predict(self, ds: Dataset) -> tuple[np.ndarray, np.ndarray, float]:
        """Outputs (N, ...) as ``model.reduce`` keeps them, targets (N, ...) and the mean loss over ``ds``."""
        self.model.eval()
        self.dist.sync_buffers(self.model)
        device = self.device
        rows = self.dist.eval_rows(len(ds))
        batches = [rows[i : i + self.batch_size] for i in range(0, len(rows), self.batch_size)]
        loader = DataLoader(
            ds, batch_sampler=batches, collate_fn=collate, generator=torch.Generator(), pin_memory=pinned(device)
        )
        # Outputs and the loss stay on the device until the last batch: one copy back instead of a sync per batch.
        outs, targets, loss_sum = [], [], torch.zeros((), dtype=torch.float64, device=device)
        for batch in loader:
            inputs, present, y = to_device(batch, device)
            with autocast(device, self.precision):
                out = self.model(inputs, present)
            loss_sum += self.model.loss(out, y).double() * len(y)
            outs.append(self.model.reduce(out))
            targets.append(y)
        out_np, tgt, total = self.dist.gather_eval(
            len(ds), torch.cat(outs).cpu().numpy(), torch.cat(targets).cpu().numpy(), loss_sum.item()
        )
        return out_np, tgt, total / max(1, len(ds))

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
