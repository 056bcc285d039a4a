"""DP-SGD (Abadi et al. 2016): per-example gradient clipping, Gaussian noise, Poisson-sampled batches.

Per step every training example joins the batch independently with probability ``q = batch_size / N``
(the sampling the RDP accountant assumes; batch sizes vary and a batch may be empty). Each example's
gradient is computed on its own with ``torch.func`` (``vmap`` over ``grad`` of the model's loss on a batch
of one), scaled down to L2 norm ``max_grad_norm`` = C if larger, summed, and N(0, (σ·C)²) noise is added to
each coordinate; the sum is divided by the *expected* batch size q·N (dividing by the actual size would
leak it). The optimiser then steps on that gradient as usual.

Per-example gradients need a forward pass in which examples do not interact: BatchNorm is refused (use
``norm: group`` on the CNN encoders, or encoders with LayerNorm). The noise comes from torch's default
generator (seeded, restored on resume), which is not a cryptographically secure source.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vmap
from torch.utils._pytree import tree_map
from torch.utils.data import Dataset

from polymodal.config import PrivacyConfig
from polymodal.data.examples import collate
from polymodal.errors import ConfigError
from polymodal.privacy.accountant import epsilon, noise_for_epsilon


def check_per_example(model: nn.Module) -> None:
    """Raise ConfigError if a trainable BatchNorm layer would mix examples within a batch."""
    for name, module in model.named_modules():
        trainable = any(p.requires_grad for p in module.parameters(recurse=False))
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and trainable:
            parts = name.split(".")
            where = f"input '{parts[1]}'s encoder" if parts[0] == "encoders" and len(parts) > 1 else f"'{name}'"
            raise ConfigError(
                f"trainer.privacy: {where} uses BatchNorm, which mixes the examples of a batch and breaks "
                "per-example gradients; set its encoder's norm: group (image_cnn, audio_cnn, ts_cnn) or use an "
                "encoder without BatchNorm"
            )


def poisson_batches(n: int, q: float, steps: int, seed: int, epoch: int) -> list[list[int]]:
    """``steps`` batches, each holding every index of ``range(n)`` independently with probability ``q``.

    A function of (seed, epoch) only, so a resumed run draws the same batches."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch + 7_919)  # its own stream, not the shuffle's
    return [torch.nonzero(torch.rand(n, generator=g) < q).flatten().tolist() for _ in range(steps)]


class _ExampleLoss(nn.Module):
    """The model's loss on one example: adds the batch axis the model expects (B = 1)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: Any, present: Any, target: Any) -> torch.Tensor:
        def one(t: torch.Tensor) -> torch.Tensor:
            return t.unsqueeze(0)

        out = self.model(tree_map(one, inputs), None if present is None else tree_map(one, present))
        return self.model.loss(out, tree_map(one, target))  # out: the model's typed output (ModelOutput)


class DPSGD:
    """Replaces ``loss.backward()`` with privatised gradients in each parameter's ``.grad``.

    Args:
        model: The model being trained (its forward and ``loss`` as the trainer calls them).
        cfg: ``trainer.privacy`` settings.
        n: Number of training examples N.
        batch_size: Expected batch size; the sampling rate is ``q = batch_size / N``.
        steps: Total steps planned (to calibrate the noise to ``target_epsilon``).
        seed: Seed of the Poisson sampling.
    """

    def __init__(self, model: nn.Module, cfg: PrivacyConfig, n: int, batch_size: int, steps: int, seed: int) -> None:
        if cfg.delta >= 1.0 / n:
            raise ConfigError(
                f"trainer.privacy.delta: {cfg.delta} is not below 1/N = {1.0 / n:.3g} ({n} training examples); "
                "a delta that large allows leaking whole examples — lower it"
            )
        check_per_example(model)
        self.model, self.cfg, self.n, self.seed = model, cfg, n, seed
        self.q = min(1.0, batch_size / n)
        self.steps_per_epoch = math.ceil(n / batch_size)
        if cfg.noise_multiplier is not None:
            self.sigma = cfg.noise_multiplier
        else:
            try:
                self.sigma = noise_for_epsilon(cfg.target_epsilon, self.q, steps, cfg.delta)
            except ValueError as exc:
                raise ConfigError(f"trainer.privacy.target_epsilon: {exc}") from None
        self.loss_of = _ExampleLoss(model)
        self.params = {k: p for k, p in self.loss_of.named_parameters() if p.requires_grad}

    def batches(self, epoch: int) -> list[list[int]]:
        """This epoch's Poisson-sampled batches (as many steps as the trainer's shuffled epoch has)."""
        return poisson_batches(self.n, self.q, self.steps_per_epoch, self.seed, epoch)

    def collate(self, ds: Dataset) -> Callable[[list], tuple]:
        """The trainer's collate, extended to an empty batch (zero rows; its step adds only noise)."""

        def fn(batch: list) -> tuple:
            if batch:
                return collate(batch)
            inputs, _, y = collate([ds[0]])
            return {k: v[:0] for k, v in inputs.items()}, None, y[:0]

        return fn

    def per_example_grads(
        self, inputs: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None, y: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """``{parameter name: (B, *shape)}`` gradients of each example's own loss, and the losses (B,)."""
        params = {k: p.detach() for k, p in self.params.items()}
        buffers = dict(self.loss_of.named_buffers())

        def loss(p: dict[str, torch.Tensor], x: Any, pr: Any, t: Any) -> torch.Tensor:
            return functional_call(self.loss_of, (p, buffers), (x, pr, t))

        dims = (None, 0, None if present is None else 0, 0)
        # randomness="different": each example draws its own dropout and modality-dropout masks.
        return vmap(grad_and_value(loss), in_dims=dims, randomness="different")(params, inputs, present, y)

    def backward(
        self,
        inputs: dict[str, torch.Tensor],
        present: dict[str, torch.Tensor] | None,
        y: torch.Tensor,
        autocast: Callable[[], AbstractContextManager] | None = None,
    ) -> torch.Tensor:
        """Set each parameter's ``.grad`` to (Σ clip(g_i) + N(0, σ²C²)) / (q·N); returns the mean loss."""
        c = self.cfg.max_grad_norm
        if len(y):
            with autocast() if autocast else torch.autocast("cpu", enabled=False):
                grads, losses = self.per_example_grads(inputs, present, y)
            norms = torch.stack([g.flatten(1).float().norm(dim=1) for g in grads.values()], 1).norm(dim=1)  # (B,)
            scale = (c / (norms + 1e-6)).clamp(max=1.0)  # (B,)
            loss = losses.float().mean()
        else:
            grads, scale, loss = {}, None, torch.zeros(())
        for name, p in self.params.items():
            total = torch.einsum("b,b...->...", scale, grads[name].float()) if scale is not None else 0.0
            noise = torch.normal(0.0, self.sigma * c, size=p.shape)
            p.grad = ((total + noise) / (self.q * self.n)).to(p.dtype)
        return loss.detach()

    def epsilon(self, steps: int) -> float:
        """ε of the (ε, δ) guarantee after ``steps`` steps."""
        return epsilon(self.q, self.sigma, steps, self.cfg.delta)

    def report(self, steps: int) -> dict[str, Any]:
        """What a run records about its privacy: ε at δ and how it was obtained."""
        return {
            "epsilon": self.epsilon(steps),
            "delta": self.cfg.delta,
            "noise_multiplier": self.sigma,
            "max_grad_norm": self.cfg.max_grad_norm,
            "sample_rate": self.q,
            "steps": steps,
            "sampling": "poisson",
            "accountant": "rdp",
        }
