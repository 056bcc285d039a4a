"""Gradient × input saliency for one prepared example: which pixels / spectrogram cells / time steps moved
the predicted class's logit.

"Input" is measured from a baseline that carries no signal: black for images and video (a normalised
image's black is ``-mean / std``, not 0; without this a black background would light up), and 0 for the
other modalities, whose features are standardised (0 is the mean).

One forward and one backward pass with autograd on the inputs only (``torch.autograd.grad``, so parameter
``.grad`` is never touched and concurrent requests cannot mix gradients). It works for every encoder and
fusion, attention-based or not. Integer inputs (token ids) have no gradient and get no map.
"""

from __future__ import annotations

from typing import Any

import torch

from polymodal.data.modalities.base import Transform
from polymodal.model import MultimodalModel

METHOD = "gradient×input"


def baseline(modality: str, transform: Transform) -> float:
    """The tensor value of "no signal" for an input: black for pixels, 0 for standardised features."""
    if modality in ("image", "video"):
        return -transform.mean / transform.std
    return 0.0


def reduce_map(modality: str, g: torch.Tensor) -> torch.Tensor:
    """|gradient × input| of one example folded to what can be drawn.

    image (C, H, W) -> (H, W); audio (1, F, T) -> (F, T); video (T, C, H, W) -> (H, W), averaged over frames;
    timeseries (T, C + 1) -> (T,) over the value channels (the last channel is the validity mask);
    tabular (N,) -> (N,).
    """
    a = g.abs()
    if modality == "image":
        return a.sum(0)
    if modality == "audio":
        return a.flatten(0, -3).sum(0) if a.ndim > 2 else a
    if modality == "video":
        return a.sum(1).mean(0)
    if modality == "timeseries":
        return a[:, :-1].sum(-1)
    return a.flatten()


def saliency(
    model: MultimodalModel,
    example: dict[str, torch.Tensor],
    present: dict[str, bool],
    modalities: dict[str, str],
    transforms: dict[str, Transform],
) -> dict[str, Any]:
    """``{input: {"map": nested lists in [0, 1], "shape": [...], "method": ...}}`` for the predicted class.

    Args:
        model: The run's model in eval mode; its head must return (B, K) logits.
        example: One example's tensors from :meth:`RunPredictor.prepare` (no batch dimension).
        present: ``{input: given?}``; missing inputs get no map.
        modalities: ``{input: modality}``.
        transforms: The run's fitted transforms (for each input's baseline).
    """
    device = next(model.parameters()).device
    with torch.enable_grad():
        inputs = {k: v.unsqueeze(0).to(device).clone() for k, v in example.items()}
        wanted = [k for k, v in inputs.items() if present[k] and v.is_floating_point()]
        for k in wanted:
            inputs[k].requires_grad_(True)
        flags = {k: torch.tensor([p], device=device) for k, p in present.items()}
        logits = model(inputs, flags).logits  # (1, K)
        if logits.ndim != 2:
            return {}
        score = logits[0].max()  # the predicted class's logit (or the most confident label's)
        grads = torch.autograd.grad(score, [inputs[k] for k in wanted], allow_unused=True) if wanted else []
    out: dict[str, Any] = {}
    for k, g in zip(wanted, grads, strict=True):
        if g is None:
            continue
        x = inputs[k].detach()[0].cpu() - baseline(modalities[k], transforms[k])
        m = reduce_map(modalities[k], g[0].cpu() * x)
        m = m / m.max() if float(m.max()) > 0 else m
        out[k] = {"map": m.double().round(decimals=3).tolist(), "shape": list(m.shape), "method": METHOD}
    return out
