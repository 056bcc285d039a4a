"""``trainer.memory_format``: 2-D convolutions in channels-last (NHWC) layout where that is measured faster.

oneDNN on CPUs (and cuDNN under autocast) run convolutions fastest on channels-last tensors; in the default
contiguous (NCHW) layout each convolution converts its input and output. Setting the model's 4-D weights to
channels-last is enough: a convolution whose weight is channels-last returns a channels-last output, so the whole
conv stack runs in that layout while inputs, linear layers and everything saved stay as they are (checkpoints
write contiguous copies; a saved model loads into either layout). Figures: docs/benchmarks/multibench.md.

``auto`` times a few real training steps of the run's own model on its first batch, both layouts interleaved at
the run's resolved precision, and takes channels-last when its median step is at least ``MIN_GAIN`` faster; the
answer is cached with the precision probe's (:mod:`polymodal.training.precision`). A model without 2-D
convolutions stays contiguous without a probe, and so does a torchrun process (every process must agree). Values
do not depend on the layout except by floating-point rounding (convolution algorithms differ); resume is exact
within one layout.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from polymodal.training.precision import cached_choice, machine_key

LAYOUTS = ("contiguous", "channels_last")


def has_conv2d(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def apply_layout(model: nn.Module, layout: str) -> None:
    """Put ``model``'s 4-D parameters and buffers in ``layout`` (in place; the parameters stay the same objects)."""
    model.to(memory_format=torch.channels_last if layout == "channels_last" else torch.contiguous_format)


def resolve_layout(
    setting: str,
    model: nn.Module,
    train_step: Callable[[], None],
    batch_shapes: str,
    precision: str,
    distributed: bool = False,
) -> str:
    """``setting`` itself unless it is ``auto``; then channels_last or contiguous as the module docstring says.
    ``train_step()`` runs one forward and backward on a real batch at the run's precision; the model's state and
    the random streams are restored afterwards and the model left contiguous (the caller applies the answer)."""
    if setting != "auto":
        return setting
    if distributed or not has_conv2d(model):
        return "contiguous"
    key = "layout|" + machine_key(model, f"{batch_shapes}|{precision}")

    def step(layout: str) -> None:
        apply_layout(model, layout)
        train_step()

    try:
        return cached_choice(key, "layout", model, step, LAYOUTS)
    finally:
        apply_layout(model, "contiguous")
