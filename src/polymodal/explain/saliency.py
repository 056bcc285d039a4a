"""Gradient × input saliency per modality (Shrikumar et al. 2016; Simonyan et al. 2014 for the gradient).

For each input, ``x ⊙ ∂score/∂x`` attributes the score to every input position; summed over one input it
is a first-order estimate of how much that modality moved the score away from an all-zero input. Token
inputs (integer ids) cannot be differentiated, so the product is taken with the output of the encoder's
first ``nn.Embedding`` instead and summed over the embedding width: one value per token.

The score is the logit of the predicted class for a classification head, and the negative loss on the
true target for every other head (multi-label, multi-task, caption), so the attributions say what drives
the model's answer.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from polymodal.contracts import ModelOutput


def first_embedding(encoder: nn.Module) -> nn.Embedding | None:
    return next((m for m in encoder.modules() if isinstance(m, nn.Embedding)), None)


def saliency_score(model: nn.Module, out: ModelOutput, target: torch.Tensor) -> torch.Tensor:
    """One scalar whose gradient is the attribution target, summed over the batch (samples are independent
    in eval mode, so each sample's gradient is its own)."""
    if getattr(model.head, "TARGET", None) == "class":
        logits = out.logits.float()
        return logits.gather(1, logits.argmax(1, keepdim=True)).sum()
    return -model.loss(out, target) * len(target)


def gradient_x_input(
    model: nn.Module,
    inputs: dict[str, torch.Tensor],
    target: torch.Tensor,
    present: dict[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Signed gradient × input for every input of a :class:`~polymodal.model.MultimodalModel`.

    Args:
        model: The model (put in eval mode here; its parameters are left untouched).
        inputs: ``{input: (B, ...)}`` as the collate function builds them.
        target: (B, ...) targets (used by heads other than classification).
        present: Optional presence flags.

    Returns:
        ``{input: tensor}`` with the input's own shape (B, ...) for float inputs and (B, T) for token ids.
    """
    model.eval()
    leaves: dict[str, torch.Tensor] = {}
    handles = []
    for name, x in inputs.items():
        if x.is_floating_point():
            leaves[name] = x.detach().clone().requires_grad_(True)
            continue
        emb = first_embedding(model.encoders[name])
        if emb is None:
            raise ValueError(f"saliency: input '{name}' holds integers but its encoder has no nn.Embedding")

        def keep(module: nn.Module, args: Any, output: torch.Tensor, name: str = name) -> None:
            output.retain_grad()
            leaves[name] = output  # (B, T, W)

        handles.append(emb.register_forward_hook(keep))
    feed = {k: leaves.get(k, v) for k, v in inputs.items()}
    try:
        with torch.enable_grad():
            out = model(feed, present)
            model.zero_grad(set_to_none=True)
            saliency_score(model, out, target).backward()
    finally:
        for h in handles:
            h.remove()
    result = {}
    for name, leaf in leaves.items():
        grad = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
        gx = (grad * leaf).detach()
        result[name] = gx if inputs[name].is_floating_point() else gx.sum(-1)  # tokens: (B, T)
    model.zero_grad(set_to_none=True)
    return result


def modality_shares(saliency: dict[str, torch.Tensor]) -> dict[str, float]:
    """Each input's share of the total |gradient × input|, averaged over the samples (sums to 1)."""
    mass = {k: v.abs().flatten(1).sum(1) for k, v in saliency.items()}  # each (B,)
    total = torch.stack(list(mass.values())).sum(0).clamp_min(1e-12)
    return {k: float((m / total).mean()) for k, m in mass.items()}
