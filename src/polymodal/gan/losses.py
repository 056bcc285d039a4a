"""WGAN-GP objectives (Gulrajani et al. 2017, "Improved Training of Wasserstein GANs", Algorithm 1)."""

from __future__ import annotations

from collections.abc import Callable

import torch

Critic = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def gradient_penalty(
    critic: Critic,
    real: torch.Tensor,
    fake: torch.Tensor,
    cond: torch.Tensor,
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """E[(‖∇_x̂ D(x̂, c)‖₂ − 1)²] at x̂ = ε·real + (1 − ε)·fake, one ε ~ U[0, 1] per example.

    The penalty is on the gradient with respect to the *input*, one norm per example, so it is kept in the
    graph (``create_graph``) and its own gradient reaches the critic's weights. Multiply by λ outside.

    Args:
        critic: ``critic(x, c) -> (B,)`` scores.
        real, fake: (B, ...) images; ``fake`` should be detached from the generator.
        cond: The batch's conditions, the same for the real and the fake half of each interpolate.
        eps: (B,) mixing weights (drawn uniformly when None; given in tests).

    Returns:
        A scalar tensor.
    """
    b = real.shape[0]
    if eps is None:
        eps = torch.rand(b, device=real.device)
    eps = eps.view(b, *([1] * (real.dim() - 1))).to(real.dtype)
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    scores = critic(mixed, cond)
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def critic_loss(
    critic: Critic, real: torch.Tensor, fake: torch.Tensor, cond: torch.Tensor, gp_weight: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """D(fake) − D(real) + λ·GP, to minimise; also the Wasserstein estimate D(real) − D(fake) and the GP."""
    d_real, d_fake = critic(real, cond).mean(), critic(fake, cond).mean()
    gp = gradient_penalty(critic, real, fake, cond)
    loss = d_fake - d_real + gp_weight * gp
    return loss, {"critic_loss": loss.item(), "wasserstein": (d_real - d_fake).item(), "gp": gp.item()}


def generator_loss(critic: Critic, fake: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """−D(G(z, c), c), to minimise."""
    return -critic(fake, cond).mean()
