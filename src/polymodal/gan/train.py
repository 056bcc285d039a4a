"""The WGAN-GP loop: n_critic critic steps, then one generator step; seeded, checkpointed, resumable.

The project's Trainer takes one loss per step, so the alternating updates live here, with the same run
directory and checkpoints (:mod:`polymodal.train.checkpoint`). One Adam holds two parameter groups,
generator and critic, each with its own learning rate: a step skips every parameter whose gradient is None,
and Adam's moments and step counts are per parameter, so this is exactly two Adams — in one checkpoint.

Critic step k uses real batch ``k mod (N // B)`` of the shuffled pass ``k // (N // B)`` (the shuffle is a
function of the seed and the pass), so a resumed run draws the same batches, and with the restored RNG the
same noise, as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from polymodal.errors import CheckpointError, DataError
from polymodal.gan.data import GANData, load_gan_data
from polymodal.gan.losses import critic_loss, generator_loss
from polymodal.gan.recipe import GANRecipe, gan_recipe_to_dict
from polymodal.gan.sample import GAN, build_gan, generate, save_grid, write_json
from polymodal.gan.score import Scorer, conditional_accuracy, train_classifier
from polymodal.train.checkpoint import atomic_write_text, load_checkpoint, save_checkpoint, save_weights
from polymodal.train.distributed import epoch_order
from polymodal.train.trainer import Callback

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


def write_grid(gan: GAN, recipe: GANRecipe, data: GANData, conds: torch.Tensor, titles: list[str], path: Path) -> None:
    """Rows = conditions, ``grid_columns`` samples each from fixed noise (the same in every epoch's grid, so
    grids show progress); text grids start each row with the caption's real held-out image."""
    k = recipe.evaluation.grid_columns
    fake = generate(gan.generator, conds.repeat_interleave(k, dim=0), seed=recipe.seed + 1)
    if data.bow is not None:
        fake = torch.cat([data.test_images.unsqueeze(1), fake.view(len(conds), k, *fake.shape[1:])], 1).flatten(0, 1)
    save_grid(fake, titles, path)


def train_gan(recipe: GANRecipe, run: Path, resume: bool, callback: Callback | None = None) -> dict[str, Any]:
    """Train a conditional WGAN-GP; returns the final record (also written to ``metrics.json``)."""
    cfg = recipe.trainer
    emit = callback or (lambda event, **info: None)
    run.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(recipe.seed)
    vocab_file = run / "vocab.json"
    bow_state = json.loads(vocab_file.read_text(encoding="utf-8")) if resume and vocab_file.is_file() else None
    data = load_gan_data(recipe, bow_state)
    shape = tuple(data.images.shape[1:])
    gan = build_gan(recipe, shape, recipe.data.condition, data.cond_dim)
    g_params, d_params = list(gan.generator.parameters()), list(gan.critic.parameters())
    opt = torch.optim.Adam(
        [{"params": g_params, "lr": cfg.lr_generator}, {"params": d_params, "lr": cfg.lr_critic}],
        betas=(cfg.beta1, cfg.beta2),
    )
    if not resume:
        atomic_write_text(run / "recipe.yaml", yaml.safe_dump(gan_recipe_to_dict(recipe), sort_keys=False))
    if data.bow is not None:
        write_json(vocab_file, data.bow.state_dict())
    from polymodal.api import environment

    meta = {
        "kind": "gan",
        "image_shape": list(shape),
        "condition": recipe.data.condition,
        "cond_dim": data.cond_dim,
        "classes": data.classes,
        "data_source": data.source,
        "train_images": len(data.images),
        "seed": recipe.seed,
        "parameters": {"generator": sum(p.numel() for p in g_params), "critic": sum(p.numel() for p in d_params)},
        **environment(),
    }
    write_json(run / "meta.json", meta)
    scorer = None
    if recipe.evaluation.classifier is not None:
        emit("model_start", name="classifier")
        scorer = Scorer(train_classifier(recipe, run, callback))
        emit("model_start", name="gan")

    st: dict[str, Any] = {"epoch": 0, "gen_in_epoch": 0, "step": 0, "critic_steps": 0, "seconds": 0.0}
    st.update(dict.fromkeys(SUMS, 0.0))
    metrics_log = run / "metrics.jsonl"
    if resume:
        if not (run / "checkpoints" / "latest").is_file():
            raise CheckpointError(f"no checkpoint in {run / 'checkpoints'}; start without --resume")
        st = load_checkpoint(run / "checkpoints", gan, opt)
        if metrics_log.exists():  # drop epochs the checkpoint does not cover (a kill between the two writes)
            lines = [ln for ln in metrics_log.read_text(encoding="utf-8").splitlines() if ln.strip()]
            kept = [ln for ln in lines if json.loads(ln)["epoch"] <= st["epoch"]]
            atomic_write_text(metrics_log, "".join(ln + "\n" for ln in kept))
    elif metrics_log.exists():
        metrics_log.unlink()
    batches = RealBatches(data, cfg.batch_size, recipe.seed)
    grid_conds, grid_titles = grid_conditions(recipe, data)
    t_start = time.perf_counter() - st["seconds"]
    gan.train()
    while st["epoch"] < cfg.epochs:
        emit("epoch_start", epoch=st["epoch"], epochs=cfg.epochs, batches=cfg.steps_per_epoch, done=st["gen_in_epoch"])
        while st["gen_in_epoch"] < cfg.steps_per_epoch:
            for _ in range(cfg.n_critic):
                real, cond = batches(st["critic_steps"])
                with torch.no_grad():
                    fake = gan.generator(torch.randn(len(real), gan.generator.z_dim), cond)
                loss, parts = critic_loss(gan.critic, real, fake, cond, cfg.gp_weight)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()  # generator grads are None: only the critic moves
                st["critic_steps"] += 1
                for key in ("critic_loss", "wasserstein", "gp"):
                    st[key] += parts[key] / cfg.n_critic
            gan.critic.requires_grad_(False)  # critic grads stay None, so this step moves only the generator
            g_loss = generator_loss(gan.critic, gan.generator(torch.randn(len(real), gan.generator.z_dim), cond), cond)
            opt.zero_grad(set_to_none=True)
            g_loss.backward()
            opt.step()
            gan.critic.requires_grad_(True)
            if not math.isfinite(g_loss.item()) or not math.isfinite(parts["critic_loss"]):
                raise FloatingPointError(f"the loss became non-finite at step {st['step']}; lower the learning rates")
            st["generator_loss"] += g_loss.item()
            st["step"] += 1
            st["gen_in_epoch"] += 1
            emit("batch", step=st["step"], loss=parts["wasserstein"], lr=cfg.lr_generator)
            mid_epoch = st["gen_in_epoch"] < cfg.steps_per_epoch  # the epoch end writes its own checkpoint
            if cfg.checkpoint_every and st["step"] % cfg.checkpoint_every == 0 and mid_epoch:
                st["seconds"] = time.perf_counter() - t_start
                save_checkpoint(run / "checkpoints", st["step"], gan, opt, st)
        epoch = st["epoch"] + 1
        n = st["gen_in_epoch"]
        row: dict[str, Any] = {"epoch": epoch, "step": st["step"], **{k: st[k] / n for k in SUMS}}
        if scorer is not None and recipe.evaluation.per_class_epoch:
            scored = conditional_accuracy(gan.generator, data.classes, scorer, recipe.evaluation.per_class_epoch, 0)
            row["conditional_accuracy"] = scored["accuracy"]
        row["seconds"] = round(time.perf_counter() - t_start, 3)
        write_grid(gan, recipe, data, grid_conds, grid_titles, run / "samples" / f"epoch-{epoch:03d}.png")
        with open(metrics_log, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        save_weights(gan, run / "weights.safetensors")
        emit("epoch_end", epoch=epoch - 1, metrics=row, improved=False, info=epoch_info(row))
        st.update(epoch=epoch, gen_in_epoch=0, seconds=time.perf_counter() - t_start, **dict.fromkeys(SUMS, 0.0))
        save_checkpoint(run / "checkpoints", st["step"], gan, opt, st)
    write_grid(gan, recipe, data, grid_conds, grid_titles, run / "samples.png")
    record: dict[str, Any] = {"epochs_run": st["epoch"], "generator_steps": st["step"], "train_seconds": st["seconds"]}
    if scorer is not None:
        scored = conditional_accuracy(gan.generator, data.classes, scorer, recipe.evaluation.per_class, recipe.seed)
        record.update(
            conditional_accuracy=scored["accuracy"],
            generated_images=scored["n"],
            per_class=scored["per_class"],
            classifier_test_accuracy=scorer.real_test_accuracy,
        )
    write_json(run / "metrics.json", record)
    return record


def epoch_info(row: dict[str, Any]) -> str:
    text = f"W {row['wasserstein']:.3f}  gp {row['gp']:.3f}  G {row['generator_loss']:.3f}"
    if "conditional_accuracy" in row:
        text += f"  cond acc {row['conditional_accuracy']:.3f}"
    return text
