"""The multimodal model with positional tensor inputs: the calling convention of an ONNX graph."""

from __future__ import annotations

import torch
from torch import nn


class GraphModel(nn.Module):
    """``(x_1, ..., x_M[, present]) -> logits``: :class:`polymodal.model.MultimodalModel` without dicts.

    An exported graph takes a flat list of named tensors, so the inputs come positionally in ``names`` order
    (the recipe's order), each a preprocessed batch (B, ...). With ``uses_present`` a last (B, M) bool tensor
    says which inputs each example has (column i = ``names[i]``; False = missing, the input's tensor is then
    a placeholder the model ignores), exactly as ``present`` flags do in training and prediction.

    Args:
        model: A multimodal model whose head returns one logits tensor.
        names: Input names in the order the graph takes them.
        uses_present: Take the presence mask as a last input (models with two or more inputs).
    """

    def __init__(self, model: nn.Module, names: list[str], uses_present: bool) -> None:
        super().__init__()
        self.model, self.names, self.uses_present = model, list(names), uses_present

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        present = None
        if self.uses_present:
            *xs, mask = xs  # mask (B, M) bool
            present = {k: mask[:, i] for i, k in enumerate(self.names)}
        return self.model(dict(zip(self.names, xs, strict=True)), present).logits  # (B, K)
