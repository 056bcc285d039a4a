"""The WGAN-GP step: ``n_critic`` critic updates, then one generator update; an epoch is ``steps_per_epoch`` of
them, ended by a sample grid and (with a classifier) the conditional accuracy of generated images.

One Adam holds two parameter groups, generator and critic, each with its own learning rate: a step skips every
parameter whose gradient is None, and Adam's moments and step counts are per parameter, so this is exactly two
Adams in one checkpoint. Critic update k uses real batch ``k mod (N // B)`` of the shuffled pass
``k // (N // B)`` (the shuffle is a function of the seed and the pass), so a resumed run draws the same batches,
and with the restored RNG the same noise, as an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from polymodal.errors import DataError
from polymodal.gan.losses import critic_loss, generator_loss
from polymodal.gan.sample import GAN, generate, save_grid
from polymodal.kinds.gan.data import GANData
from polymodal.kinds.gan.recipe import GANRecipe
from polymodal.kinds.gan.score import Scorer, conditional_accuracy
from polymodal.training.distributed import epoch_order
from polymodal.training.steps import EpochEnd, Monitor, StepResult

SUMS = ("critic_loss", "wasserstein", "gp", "generator_loss")


class RealBatches:
    """Real batch for critic step k: deterministic in (seed, k), whole batches only."""

    def __init__(self, data: GANData, batch_size: int, seed: int) -> None:
        self.data, self.bs, self.seed = data, batch_size, seed
        self.per_pass = len(data.images) // batch_size
        if self.per_pass == 0:
            raise DataError(f"{len(data.images)} training images are fewer than trainer.batch_size {batch_size}")
        self._pass, self._order = -1, torch.empty(0, dtype=torch.long)

    def __call__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        p, i = divmod(k, self.per_pass)
        if p != self._pass:
            self._pass, self._order = p, torch.tensor(epoch_order(len(self.data.images), self.seed, p))
        idx = self._order[i * self.bs : (i + 1) * self.bs]
        return self.data.images[idx], self.data.conds[idx]


def grid_conditions(recipe: GANRecipe, data: GANData) -> tuple[torch.Tensor, list[str]]:
    """One condition per grid row (the first classes, or held-out captions) and the row titles."""
    if data.bow is None:
        rows = list(range(min(recipe.evaluation.grid_rows, len(data.classes))))
        return torch.tensor(rows), [data.classes[r] for r in rows]
    return data.bow.encode(data.test_captions), data.test_captions


def write_grid(gan: GAN, recipe: GANRecipe, data: GANData, path: Path) -> None:
    """Rows = conditions, ``grid_columns`` samples each from fixed noise (the same in every epoch's grid, so
    grids show progress); text grids start each row with the caption's real held-out image."""
    conds, titles = grid_conditions(recipe, data)
    k = recipe.evaluation.grid_columns
    fake = generate(gan.generator, conds.repeat_interleave(k, dim=0), seed=recipe.seed + 1)
    if data.bow is not None:
        fake = torch.cat([data.test_images.unsqueeze(1), fake.view(len(conds), k, *fake.shape[1:])], 1).flatten(0, 1)
    save_grid(fake, titles, path)


class GANStep:
    """A conditional WGAN-GP's training step for the one Trainer loop.

    Args:
        gan: Generator and critic (saved together).
        recipe: The ``kind: gan`` recipe.
        data: Training images and conditions.
        run_path: The run folder (epoch grids go to ``samples/``).
        scorer: The classifier scoring generated images, if the recipe names one.
    """

    monitor: Monitor | None = None  # no validation loss says which epoch is best: the latest weights are kept
    mid_epoch_checkpoints = True

    def __init__(self, gan: GAN, recipe: GANRecipe, data: GANData, run_path: Path, scorer: Scorer | None) -> None:
        cfg = recipe.trainer
        self.model, self.recipe, self.data, self.run_path, self.scorer = gan, recipe, data, run_path, scorer
        self.optimizer: torch.optim.Optimizer | None = torch.optim.Adam(
            [
                {"params": list(gan.generator.parameters()), "lr": cfg.lr_generator},
                {"params": list(gan.critic.parameters()), "lr": cfg.lr_critic},
            ],
            betas=(cfg.beta1, cfg.beta2),
        )
        self.batches = RealBatches(data, cfg.batch_size, recipe.seed)
        self.critic_steps = 0
        self.sums = dict.fromkeys(SUMS, 0.0)

    def units(self, epoch: int) -> Sequence[int]:
        return range(self.recipe.trainer.steps_per_epoch)

    def feed(self, units: Sequence[int]) -> Iterable[int]:
        self.model.train()
        return units

    def step(self, unit: int, step: int) -> StepResult:
        cfg, gan, opt = self.recipe.trainer, self.model, self.optimizer
        assert opt is not None
        for _ in range(cfg.n_critic):
            real, cond = self.batches(self.critic_steps)
            with torch.no_grad():
                fake = gan.generator(torch.randn(len(real), gan.generator.z_dim), cond)
            loss, parts = critic_loss(gan.critic, real, fake, cond, cfg.gp_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()  # generator grads are None: only the critic moves
            self.critic_steps += 1
            for key in ("critic_loss", "wasserstein", "gp"):
                self.sums[key] += parts[key] / cfg.n_critic
        gan.critic.requires_grad_(False)  # critic grads stay None, so this step moves only the generator
        g_loss = generator_loss(gan.critic, gan.generator(torch.randn(len(real), gan.generator.z_dim), cond), cond)
        opt.zero_grad(set_to_none=True)
        g_loss.backward()
        opt.step()
        gan.critic.requires_grad_(True)
        if not math.isfinite(g_loss.item()) or not math.isfinite(parts["critic_loss"]):
            raise FloatingPointError(f"the loss became non-finite at step {step}; lower the learning rates")
        self.sums["generator_loss"] += g_loss.item()
        return StepResult(parts["wasserstein"], len(real), cfg.lr_generator)

    def end_epoch(self, epoch: int, steps: int) -> EpochEnd:
        n = self.recipe.trainer.steps_per_epoch
        row: dict[str, Any] = {k: self.sums[k] / n for k in SUMS}
        every = self.recipe.evaluation.per_class_epoch
        if self.scorer is not None and every:
            scored = conditional_accuracy(self.model.generator, self.data.classes, self.scorer, every, 0)
            row["conditional_accuracy"] = scored["accuracy"]
        write_grid(self.model, self.recipe, self.data, self.run_path / "samples" / f"epoch-{epoch + 1:03d}.png")
        self.sums = dict.fromkeys(SUMS, 0.0)
        return EpochEnd(row)

    def state_dict(self) -> dict[str, Any]:
        return {"critic_steps": self.critic_steps, "sums": dict(self.sums)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.critic_steps = int(state.get("critic_steps", 0))
        self.sums = {k: float((state.get("sums") or {}).get(k, state.get(k, 0.0))) for k in SUMS}

    def summary(self, steps: int) -> dict[str, Any]:
        return {"generator_steps": steps}
