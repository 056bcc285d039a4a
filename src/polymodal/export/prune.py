"""Global magnitude pruning (L1, unstructured) of every weight matrix and kernel, made permanent."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils import prune


def prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """``(module, parameter name)`` of each weight matrix or kernel: parameters of two or more dimensions
    whose name contains ``weight`` (Linear, Conv, Embedding, attention in-projections, LSTM/GRU gates).
    Biases and norm scales are left alone: they are few, and zeroing a LayerNorm scale silences a feature."""
    found = []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if p.ndim >= 2 and "weight" in name:
                found.append((module, name))
    return found


def prune_global(model: nn.Module, amount: float) -> nn.Module:
    """A copy of ``model`` with the ``amount`` fraction (0 < amount < 1) of smallest-magnitude weights, ranked
    over all prunable tensors together, set to zero for good (no masks or hooks left behind).

    Global ranking prunes layers unevenly: a wide layer with many small weights loses more than a narrow
    one whose every weight matters, which keeps accuracy better than the same fraction per layer.
    """
    pruned = copy.deepcopy(model)
    params = prunable(pruned)
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
    for module, name in params:
        prune.remove(module, name)  # fold weight_orig * mask into a plain parameter
    for module in pruned.modules():
        if isinstance(module, nn.RNNBase):  # its fused weight buffer must point at the replaced parameters
            module.flatten_parameters()
    return pruned


@torch.no_grad()
def sparsity(model: nn.Module) -> tuple[int, int]:
    """(zero entries, total entries) over the prunable tensors of ``model``."""
    zeros = total = 0
    for module, name in prunable(model):
        p = getattr(module, name)
        zeros += int((p == 0).sum())
        total += p.numel()
    return zeros, total
