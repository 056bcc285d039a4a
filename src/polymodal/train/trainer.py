"""The training loop: plain, seeded, resumable.

Per step: forward under optional bf16 autocast, head loss, backward, gradient clipping, optimiser step with
the scheduled learning rate. Per epoch: validation, ``metrics.jsonl`` line, best weights kept, early
stopping. Every ``checkpoint_every`` steps a crash-safe checkpoint; ``resume=True`` continues from it,
skipping the batches of the interrupted epoch that were already used (the epoch order is a function of the
seed and the epoch number, so it is the same after a restart).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from polymodal.config import TrainerConfig
from polymodal.data.dataset import collate
from polymodal.errors import CheckpointError, ConfigError
from polymodal.privacy.dpsgd import DPSGD
from polymodal.train.checkpoint import (
    atomic_write_text,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    save_weights,
)
from polymodal.train.distributed import Dist
from polymodal.train.optim import build_optimizer, lr_at
from polymodal.train.tensorboard import TensorBoardLog

log = logging.getLogger(__name__)
Callback = Callable[..., None]


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` leaves behind: the best epoch and its validation metrics."""

    best_epoch: int
    best_val: dict[str, Any]
    epochs_run: int
    stopped_early: bool
    seconds: float
    step_seconds: float = 0.0  # time inside training steps only (no data decoding on first use, no validation)
    samples: int = 0  # training examples processed
    privacy: dict[str, Any] | None = None  # DP-SGD runs: epsilon at delta, noise multiplier, ... (privacy.dpsgd)


class Trainer:
    """Trains a model and writes weights, checkpoints and metrics to ``run_dir``.

    The model is a :class:`MultimodalModel` or anything with the same four calls: ``forward(inputs, present)``,
    ``loss(out, target)``, ``reduce(out)`` (what evaluation keeps of a batch's output) and
    ``metrics(kept_outputs, targets)`` (e.g. :class:`polymodal.gpt.lm.LanguageModel`).

    Args:
        model: The model to train.
        cfg: Trainer settings from the recipe.
        run_dir: Output folder (``weights.safetensors``, ``metrics.jsonl``, ``checkpoints/``).
        seed: Seed for initial RNG and the per-epoch shuffle.
        callback: Optional ``callback(event, **info)`` for progress display; the library itself never prints.
            Only rank 0 of a distributed run calls it.
        dist: This process's place in a ``torchrun`` job (:mod:`polymodal.train.distributed`); default one process.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        cfg: TrainerConfig,
        run_dir: Path,
        seed: int,
        callback: Callback | None = None,
        dist: Dist | None = None,
    ) -> None:
        self.model, self.cfg, self.run_dir, self.seed = model, cfg, Path(run_dir), seed
        self.dist = dist or Dist()
        self.callback = callback if callback and self.dist.is_main else (lambda event, **info: None)
        self.net = self.dist.wrap(model)  # what the training forward runs: the model, or DDP around it
        self.optimizer = build_optimizer(model, cfg)
        self.ckpt_root = self.run_dir / "checkpoints"
        self.weights_path = self.run_dir / "weights.safetensors"
        if cfg.tensorboard:  # fail before training starts when the package is missing
            TensorBoardLog.check()

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.dist.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16")

    def _loader(self, ds: Dataset, batches: list[list[int]], collate_fn: Callable = collate) -> DataLoader:
        # A private generator: each DataLoader iterator draws a base seed, and drawing it from the global RNG
        # would shift the dropout stream of a run resumed mid-epoch away from the uninterrupted one.
        return DataLoader(ds, batch_sampler=batches, collate_fn=collate_fn, num_workers=0, generator=torch.Generator())

    @torch.no_grad()
    def predict(self, ds: Dataset, batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray, float]:
        """Outputs (N, ...) as ``model.reduce`` keeps them, targets (N, ...) and mean loss over ``ds``.

        In a distributed run each process scores its share of the rows and every process gets all of them."""
        self.model.eval()
        self.dist.sync_buffers(self.model)
        bs = batch_size or max(self.cfg.batch_size, 128)
        rows = self.dist.eval_rows(len(ds))
        batches = [rows[i : i + bs] for i in range(0, len(rows), bs)]
        outs, targets, loss_sum = [], [], 0.0
        for inputs, present, y in self._loader(ds, batches):
            inputs, present, y = self._to_device(inputs, present, y)
            with self.autocast():
                logits = self.model(inputs, present)
            loss_sum += float(self.model.loss(logits, y)) * len(y)
            outs.append(self.model.reduce(logits).cpu())
            targets.append(y.cpu())
        out, tgt, loss_sum = self.dist.gather_eval(
            len(ds), torch.cat(outs).numpy(), torch.cat(targets).numpy(), loss_sum
        )
        return out, tgt, loss_sum / max(1, len(ds))

    def _to_device(self, inputs: dict, present: dict | None, y: torch.Tensor) -> tuple:
        """The batch on this process's device; on the CPU (every single-process run) it is left as it is."""
        dev = self.dist.device
        if dev.type == "cpu":
            return inputs, present, y
        move = {k: v.to(dev, non_blocking=True) for k, v in inputs.items()}
        flags = None if present is None else {k: v.to(dev, non_blocking=True) for k, v in present.items()}
        return move, flags, y.to(dev, non_blocking=True)

    def evaluate(self, ds: Dataset) -> dict[str, Any]:
        """The model's metrics (at least ``accuracy``) plus ``loss`` on ``ds``."""
        outs, y, loss = self.predict(ds)
        return {"loss": loss, **self.model.metrics(outs, y)}

    def fit(self, train_ds: Dataset, val_ds: Dataset, resume: bool = False) -> FitResult:
        cfg = self.cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        steps_per_epoch = len(self.dist.train_batches(len(train_ds), cfg.batch_size, self.seed, 0))
        total_steps = steps_per_epoch * cfg.epochs
        private = None
        if cfg.privacy is not None:  # DP-SGD: noise calibrated to this run's steps (polymodal.privacy)
            if self.dist.world_size > 1:
                raise ConfigError("trainer.privacy does not run under torchrun yet; train it in one process")
            private = DPSGD(self.model, cfg.privacy, len(train_ds), cfg.batch_size, total_steps, self.seed)
        sign = -1.0 if cfg.monitor == "loss" else 1.0  # compare as "higher is better"
        st: dict[str, Any] = {
            "epoch": 0,
            "batch": 0,
            "step": 0,
            "best": -math.inf,
            "best_epoch": -1,
            "bad_epochs": 0,
            "best_val": {},
            "seconds": 0.0,
        }
        if resume:
            st = load_checkpoint(self.ckpt_root, self.model, self.optimizer, rank=self.dist.rank)
            saved_world = st.get("world_size", 1)
            if saved_world != self.dist.world_size and st["batch"]:
                raise CheckpointError(
                    f"the checkpoint was written mid-epoch by {saved_world} process(es); resume with "
                    f"{saved_world} (torchrun --nproc_per_node={saved_world}) or from an epoch-end checkpoint"
                )
            log.info("resumed at epoch %d batch %d (step %d)", st["epoch"], st["batch"], st["step"])
        else:
            # Rank r draws dropout from seed + r: one stream per process, and rank 0's is the single-process one.
            torch.manual_seed(self.seed + self.dist.rank)
        st["world_size"] = self.dist.world_size
        metrics_log = self.run_dir / "metrics.jsonl"
        if self.dist.is_main and not resume and metrics_log.exists():
            metrics_log.unlink()
        elif self.dist.is_main and resume and metrics_log.exists():
            # A kill between an epoch's metrics line and its checkpoint would repeat that epoch: drop lines
            # the checkpoint does not cover, so the resumed run writes each epoch exactly once. A kill in the
            # middle of appending a line leaves it torn: drop that too.
            kept = [ln for ln in metrics_log.read_text(encoding="utf-8").splitlines() if epoch_of(ln) <= st["epoch"]]
            atomic_write_text(metrics_log, "".join(ln + "\n" for ln in kept))
        t_start = time.perf_counter() - st["seconds"]
        emit: Callback = self.callback
        board = None
        if cfg.tensorboard:  # a callback that logs scalars, then passes each event on to the display
            board = emit = TensorBoardLog(self.run_dir / "tb", self.callback, st["step"] if resume else None)
        stopped_early = False
        while st["epoch"] < cfg.epochs:
            epoch = st["epoch"]
            if hasattr(train_ds, "set_epoch"):
                train_ds.set_epoch(epoch)  # datasets that draw fresh examples each epoch (language-model windows)
            batches = self.dist.train_batches(len(train_ds), cfg.batch_size, self.seed, epoch)
            if private is not None:
                batches = private.batches(epoch)  # Poisson sampling, as DP-SGD's accounting assumes
            emit("epoch_start", epoch=epoch, epochs=cfg.epochs, batches=len(batches), done=st["batch"])
            self.model.train()
            # A checkpoint holds the epoch's loss so far summed over all processes: rank 0 carries it on.
            loss_sum, seen = (st.get("loss_sum", 0.0), st.get("seen", 0)) if self.dist.is_main else (0.0, 0)
            t_step = time.perf_counter()
            collate_fn = private.collate(train_ds) if private is not None else collate
            for inputs, present, y in self._loader(train_ds, batches[st["batch"] :], collate_fn):
                lr = lr_at(st["step"], total_steps, cfg)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                inputs, present, y = self._to_device(inputs, present, y)
                if private is not None:  # DP-SGD: clipped per-example gradients plus noise, set in .grad
                    loss = private.backward(inputs, present, y, self.autocast)
                else:
                    with self.autocast():
                        logits = self.net(inputs, present)
                    loss = self.model.loss(logits, y)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss became {float(loss)} at step {st['step']}; lower trainer.lr")
                if private is None:
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if cfg.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                self.optimizer.step()
                st["step"] += 1
                st["batch"] += 1
                st["samples"] = st.get("samples", 0) + self.dist.samples_per_step(len(y))
                st["step_seconds"] = st.get("step_seconds", 0.0) + time.perf_counter() - t_step
                batch_loss = loss.item()
                loss_sum, seen = loss_sum + batch_loss * len(y), seen + len(y)
                emit("batch", step=st["step"], loss=batch_loss, lr=lr)
                if cfg.checkpoint_every and st["step"] % cfg.checkpoint_every == 0 and st["batch"] < len(batches):
                    total_loss, total_seen = self.dist.all_sum(loss_sum, seen)
                    st.update(loss_sum=total_loss, seen=int(total_seen), seconds=time.perf_counter() - t_start)
                    self._checkpoint(st)
                t_step = time.perf_counter()  # the next step's time starts with fetching its batch
            val = self.evaluate(val_ds)
            total_loss, total_seen = self.dist.all_sum(loss_sum, seen)  # over all processes
            row = {
                "epoch": epoch + 1,
                "step": st["step"],
                "train_loss": total_loss / max(1, total_seen),
                "val_loss": val["loss"],
                "val_accuracy": val.get("accuracy"),
                "val_macro_f1": val.get("macro_f1"),
                "lr": self.optimizer.param_groups[0]["lr"],
                "seconds": round(time.perf_counter() - t_start, 3),
            }
            if private is not None:
                row["epsilon"] = private.epsilon(st["step"])
            if self.dist.is_main:
                with open(metrics_log, "a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
            score = sign * val[cfg.monitor]
            improved = score > st["best"]
            if improved:
                st.update(
                    best=score,
                    best_epoch=epoch + 1,
                    bad_epochs=0,
                    best_val={k: v for k, v in val.items() if not isinstance(v, (dict, list))},
                )
                if self.dist.is_main:
                    save_weights(self.model, self.weights_path)
            else:
                st["bad_epochs"] += 1
            emit("epoch_end", epoch=epoch, metrics=row, improved=improved)
            st.update(epoch=epoch + 1, batch=0, loss_sum=0.0, seen=0, seconds=time.perf_counter() - t_start)
            stopped_early = bool(cfg.patience) and st["bad_epochs"] >= cfg.patience
            if stopped_early:
                st["epoch"] = cfg.epochs  # a resumed run must not train on past the stop
            self._checkpoint(st)
            if stopped_early:
                log.info("early stop after epoch %d: no %s gain for %d epochs", epoch + 1, cfg.monitor, cfg.patience)
                break
        if board is not None:
            board.close()
        self.dist.barrier()  # rank 0 has written the best weights; every process reads them
        load_weights(self.model, self.weights_path)
        return FitResult(
            st["best_epoch"],
            st["best_val"],
            st["epoch"],
            stopped_early,
            time.perf_counter() - t_start,
            st.get("step_seconds", 0.0),
            st.get("samples", 0),
            private.report(st["step"]) if private is not None else None,
        )

    def _checkpoint(self, st: dict[str, Any]) -> None:
        """Rank 0 writes the checkpoint, with every process's RNG state (gathered from all of them)."""
        rng = self.dist.rng_states()
        if self.dist.is_main:
            save_checkpoint(self.ckpt_root, st["step"], self.model, self.optimizer, st, rng=rng)


def epoch_of(line: str) -> float:
    """The epoch of a ``metrics.jsonl`` line; infinity for a blank or torn one (so it is dropped)."""
    try:
        return json.loads(line)["epoch"]
    except (ValueError, KeyError, TypeError):
        return math.inf
