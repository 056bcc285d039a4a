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
from polymodal.privacy.dpsgd import DPSGD
from polymodal.train.checkpoint import (
    atomic_write_text,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    save_weights,
)
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


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


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
    """

    def __init__(
        self, model: torch.nn.Module, cfg: TrainerConfig, run_dir: Path, seed: int, callback: Callback | None = None
    ) -> None:
        self.model, self.cfg, self.run_dir, self.seed = model, cfg, Path(run_dir), seed
        self.callback = callback or (lambda event, **info: None)
        self.optimizer = build_optimizer(model, cfg)
        self.ckpt_root = self.run_dir / "checkpoints"
        self.weights_path = self.run_dir / "weights.safetensors"
        if cfg.tensorboard:  # fail before training starts when the package is missing
            TensorBoardLog.check()

    def autocast(self) -> torch.autocast:
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16")

    def _loader(self, ds: Dataset, batches: list[list[int]], collate_fn: Callable = collate) -> DataLoader:
        # A private generator: each DataLoader iterator draws a base seed, and drawing it from the global RNG
        # would shift the dropout stream of a run resumed mid-epoch away from the uninterrupted one.
        return DataLoader(ds, batch_sampler=batches, collate_fn=collate_fn, num_workers=0, generator=torch.Generator())

    @torch.no_grad()
    def predict(self, ds: Dataset, batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray, float]:
        """Outputs (N, ...) as ``model.reduce`` keeps them, targets (N, ...) and mean loss over ``ds``."""
        self.model.eval()
        bs = batch_size or max(self.cfg.batch_size, 128)
        batches = [list(range(i, min(i + bs, len(ds)))) for i in range(0, len(ds), bs)]
        outs, targets, loss_sum = [], [], 0.0
        for inputs, present, y in self._loader(ds, batches):
            with self.autocast():
                logits = self.model(inputs, present)
            loss_sum += float(self.model.loss(logits, y)) * len(y)
            outs.append(self.model.reduce(logits))
            targets.append(y)
        return torch.cat(outs).numpy(), torch.cat(targets).numpy(), loss_sum / max(1, len(ds))

    def evaluate(self, ds: Dataset) -> dict[str, Any]:
        """The model's metrics (at least ``accuracy``) plus ``loss`` on ``ds``."""
        outs, y, loss = self.predict(ds)
        return {"loss": loss, **self.model.metrics(outs, y)}

    def fit(self, train_ds: Dataset, val_ds: Dataset, resume: bool = False) -> FitResult:
        cfg = self.cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        steps_per_epoch = math.ceil(len(train_ds) / cfg.batch_size)
        total_steps = steps_per_epoch * cfg.epochs
        private = None
        if cfg.privacy is not None:  # DP-SGD: noise calibrated to this run's steps (polymodal.privacy)
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
            st = load_checkpoint(self.ckpt_root, self.model, self.optimizer)
            log.info("resumed at epoch %d batch %d (step %d)", st["epoch"], st["batch"], st["step"])
        else:
            torch.manual_seed(self.seed)
        metrics_log = self.run_dir / "metrics.jsonl"
        if not resume and metrics_log.exists():
            metrics_log.unlink()
        elif resume and metrics_log.exists():
            # A kill between an epoch's metrics line and its checkpoint would repeat that epoch: drop lines
            # the checkpoint does not cover, so the resumed run writes each epoch exactly once.
            lines = metrics_log.read_text(encoding="utf-8").splitlines()
            kept = [ln for ln in lines if ln.strip() and json.loads(ln)["epoch"] <= st["epoch"]]
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
            order = epoch_order(len(train_ds), self.seed, epoch)
            batches = [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
            if private is not None:
                batches = private.batches(epoch)  # Poisson sampling, as DP-SGD's accounting assumes
            emit("epoch_start", epoch=epoch, epochs=cfg.epochs, batches=len(batches), done=st["batch"])
            self.model.train()
            loss_sum, seen = st.get("loss_sum", 0.0), st.get("seen", 0)
            t_step = time.perf_counter()
            collate_fn = private.collate(train_ds) if private is not None else collate
            for inputs, present, y in self._loader(train_ds, batches[st["batch"] :], collate_fn):
                lr = lr_at(st["step"], total_steps, cfg)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                if private is not None:  # DP-SGD: clipped per-example gradients plus noise, set in .grad
                    loss = private.backward(inputs, present, y, self.autocast)
                else:
                    with self.autocast():
                        logits = self.model(inputs, present)
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
                st["samples"] = st.get("samples", 0) + len(y)
                st["step_seconds"] = st.get("step_seconds", 0.0) + time.perf_counter() - t_step
                batch_loss = loss.item()
                loss_sum, seen = loss_sum + batch_loss * len(y), seen + len(y)
                emit("batch", step=st["step"], loss=batch_loss, lr=lr)
                if cfg.checkpoint_every and st["step"] % cfg.checkpoint_every == 0 and st["batch"] < len(batches):
                    st.update(loss_sum=loss_sum, seen=seen, seconds=time.perf_counter() - t_start)
                    save_checkpoint(self.ckpt_root, st["step"], self.model, self.optimizer, st)
                t_step = time.perf_counter()  # the next step's time starts with fetching its batch
            val = self.evaluate(val_ds)
            row = {
                "epoch": epoch + 1,
                "step": st["step"],
                "train_loss": loss_sum / max(1, seen),
                "val_loss": val["loss"],
                "val_accuracy": val.get("accuracy"),
                "val_macro_f1": val.get("macro_f1"),
                "lr": self.optimizer.param_groups[0]["lr"],
                "seconds": round(time.perf_counter() - t_start, 3),
            }
            if private is not None:
                row["epsilon"] = private.epsilon(st["step"])
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
                save_weights(self.model, self.weights_path)
            else:
                st["bad_epochs"] += 1
            emit("epoch_end", epoch=epoch, metrics=row, improved=improved)
            st.update(epoch=epoch + 1, batch=0, loss_sum=0.0, seen=0, seconds=time.perf_counter() - t_start)
            stopped_early = bool(cfg.patience) and st["bad_epochs"] >= cfg.patience
            if stopped_early:
                st["epoch"] = cfg.epochs  # a resumed run must not train on past the stop
            save_checkpoint(self.ckpt_root, st["step"], self.model, self.optimizer, st)
            if stopped_early:
                log.info("early stop after epoch %d: no %s gain for %d epochs", epoch + 1, cfg.monitor, cfg.patience)
                break
        if board is not None:
            board.close()
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
