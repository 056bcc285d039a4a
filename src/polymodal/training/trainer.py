"""The training loop: one for every kind of run; seeded, checkpointed, resumable.

Per epoch: the step strategy's units (batches, clients, generator steps) are taken in order, each through
:meth:`TrainStep.step`; then :meth:`TrainStep.end_epoch` validates, the metrics row is appended to
``metrics.jsonl``, the monitored number decides whether the weights are kept and whether to stop early, and a
checkpoint is written. Every ``checkpoint_every`` steps a mid-epoch checkpoint too. ``resume=True`` continues
from the latest checkpoint, skipping the units of the interrupted epoch that were already taken (each epoch's
units are a function of the seed and the epoch number, so they are the same after a restart) with the model,
optimizer, RNG of every process and the step's own state restored: a resumed run ends exactly where an
uninterrupted one does.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from polymodal.data.loading import Loading, worker_error
from polymodal.errors import CheckpointError
from polymodal.runs import RunDir
from polymodal.storage import load_weights, save_weights
from polymodal.training.checkpoint import load_checkpoint, save_checkpoint
from polymodal.training.distributed import Dist
from polymodal.training.mlflow import MLflowLog
from polymodal.training.state import LoopState
from polymodal.training.steps import TrainStep
from polymodal.training.tensorboard import TensorBoardLog

log = logging.getLogger(__name__)
Callback = Callable[..., None]


class LoopConfig(Protocol):
    """The trainer section keys the loop itself reads (every kind's trainer section has them)."""

    epochs: int
    checkpoint_every: int
    threads: int
    tensorboard: bool
    time_limit: float
    mlflow: bool


@dataclass(frozen=True)
class Loop:
    """The loop's settings, when they are not a recipe's trainer section (a FedAvg run's epochs are rounds)."""

    epochs: int
    checkpoint_every: int = 0
    threads: int = 0
    tensorboard: bool = False
    time_limit: float = 0.0
    mlflow: bool = False


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` leaves behind: the kept epoch and its validation metrics, and the cost."""

    best_epoch: int
    best_val: dict[str, Any]
    epochs_run: int
    stopped_early: bool
    seconds: float
    step_seconds: float = 0.0  # time inside training steps only (no first-use data decoding, no validation)
    data_seconds: float = 0.0  # the part of step_seconds spent waiting for the next batch
    samples: int = 0  # training examples processed, over all processes
    summary: dict[str, Any] = field(default_factory=dict)  # the step strategy's own record (e.g. privacy)


def settings(cfg: Any) -> dict[str, Any]:
    """The trainer section's scalar settings (hyperparameters for TensorBoard and MLflow)."""
    values = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(vars(cfg))
    return {k: v for k, v in values.items() if isinstance(v, (int, float, str, bool))}


class Trainer:
    """Trains with a step strategy and writes weights, checkpoints and metrics to the run directory.

    Args:
        step: The training strategy (see :mod:`polymodal.training.steps`).
        cfg: Epochs, checkpoint interval, threads, TensorBoard (a recipe's trainer section, or a :class:`Loop`).
        run: The run directory.
        seed: Seed of the global RNG at the start of a new run (process r draws from ``seed + r``).
        callback: Optional ``callback(event, **info)`` for progress display (``epoch_start``, ``batch``,
            ``epoch_end``); the library never prints. Only rank 0 of a distributed run calls it.
        dist: This process's place in a ``torchrun`` job; default one process.
    """

    def __init__(
        self,
        step: TrainStep,
        cfg: LoopConfig,
        run: RunDir,
        seed: int,
        callback: Callback | None = None,
        dist: Dist | None = None,
    ) -> None:
        self.step, self.cfg, self.run, self.seed = step, cfg, run, seed
        self.dist = dist or Dist()
        self.callback: Callback = callback if callback and self.dist.is_main else (lambda event, **info: None)
        if cfg.tensorboard:  # fail before training starts when the package is missing
            TensorBoardLog.check()
        if cfg.mlflow:
            MLflowLog.check()

    def _resume(self) -> LoopState:
        st = load_checkpoint(
            self.run.checkpoints, self.step.model, self.step.optimizer, self.dist.rank, LoopState.from_json
        )
        if st.world_size != self.dist.world_size and st.batch:
            raise CheckpointError(
                f"the checkpoint was written mid-epoch by {st.world_size} process(es); resume with "
                f"{st.world_size} (torchrun --nproc_per_node={st.world_size}) or from an epoch-end checkpoint"
            )
        self.step.load_state_dict(st.extra)
        log.info("resumed at epoch %d batch %d (step %d)", st.epoch, st.batch, st.step)
        return st

    def fit(self, resume: bool = False) -> FitResult:
        try:
            return self._fit(resume)
        except RuntimeError as exc:  # torch's SIGCHLD handler raises a loading worker's death wherever we are
            error = worker_error(exc, getattr(self.step, "loading", Loading(workers=1)))
            if error is None:
                raise
            raise error from None

    def _fit(self, resume: bool) -> FitResult:
        cfg, step, dist = self.cfg, self.step, self.dist
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if resume:
            st = self._resume()
        else:
            st = LoopState()
            torch.manual_seed(self.seed + dist.rank)  # one dropout stream per process; rank 0's is the 1-process one
        st.world_size = dist.world_size
        if dist.is_main:
            # A kill between an epoch's metrics line and its checkpoint would repeat that epoch: keep only the
            # lines the checkpoint covers, so the resumed run writes each epoch once (torn lines go too).
            self.run.keep_history(st.epoch) if resume else self.run.clear_history()
        t_start = time.perf_counter() - st.seconds
        emit: Callback = self.callback
        board, tracker = None, None
        if cfg.tensorboard:  # a callback that logs scalars, then passes each event on to the display
            board = emit = TensorBoardLog(self.run / "tb", self.callback, st.step if resume else None)
        if cfg.mlflow and dist.is_main:
            tracker = emit = MLflowLog(self.run, emit, settings(cfg))
        emit(
            "fit_start",
            parameters=sum(p.numel() for p in step.model.parameters()),
            device=str(dist.device),
            processes=dist.world_size,
            epochs=cfg.epochs,
            start_epoch=st.epoch,
            monitor=step.monitor.key if step.monitor is not None else None,
        )
        while not st.stopped and st.epoch < cfg.epochs:
            epoch = st.epoch
            units = step.units(epoch)
            emit("epoch_start", epoch=epoch, epochs=cfg.epochs, batches=len(units), done=st.batch)
            # A checkpoint holds the epoch's loss so far summed over all processes: rank 0 carries it on.
            loss_sum, seen = (st.loss_sum, st.seen) if dist.is_main else (0.0, 0)
            t_step = time.perf_counter()
            for unit in step.feed(units[st.batch :]):
                st.data_seconds += time.perf_counter() - t_step
                out = step.step(unit, st.step)
                st.step += 1
                st.batch += 1
                st.samples += dist.samples_per_step(out.examples)
                st.step_seconds += time.perf_counter() - t_step
                loss_sum, seen = loss_sum + out.loss * out.examples, seen + out.examples
                emit("batch", step=st.step, loss=out.loss, lr=out.lr)
                every = cfg.checkpoint_every
                if every and st.step % every == 0 and st.batch < len(units) and step.mid_epoch_checkpoints:
                    total_loss, total_seen = dist.all_sum(loss_sum, seen)
                    st.loss_sum, st.seen = total_loss, int(total_seen)
                    st.seconds = time.perf_counter() - t_start
                    self._checkpoint(st)
                t_step = time.perf_counter()  # the next step's time starts with fetching its batch
            end = step.end_epoch(epoch, st.step)
            total_loss, total_seen = dist.all_sum(loss_sum, seen)  # over all processes
            row = {
                "epoch": epoch + 1,
                "step": st.step,
                "train_loss": total_loss / total_seen if total_seen else None,
                **end.row,
                "seconds": round(time.perf_counter() - t_start, 3),
            }
            if dist.is_main:
                self.run.append_metrics(row)
            improved = self._keep(st, row, end.val, epoch)
            emit("epoch_end", epoch=epoch, metrics=row, improved=improved)
            st.epoch, st.batch, st.loss_sum, st.seen = epoch + 1, 0, 0.0, 0
            st.seconds = time.perf_counter() - t_start
            patience = step.monitor.patience if step.monitor is not None else 0
            out_of_time = bool(cfg.time_limit) and st.seconds >= cfg.time_limit
            st.stopped = (bool(patience) and st.bad_epochs >= patience) or out_of_time
            self._checkpoint(st)
            if st.stopped:
                log.info("early stop after epoch %d: no %s gain for %d epochs", epoch + 1, step.monitor, patience)
        if board is not None:
            board.close(settings(cfg), st.best_val)
        if tracker is not None:
            tracker.close()
        dist.barrier()  # rank 0 has written the kept weights; every process reads them
        load_weights(step.model, self.run.weights)
        return FitResult(
            st.best_epoch,
            st.best_val,
            st.epoch,
            st.stopped,
            time.perf_counter() - t_start,
            st.step_seconds,
            st.data_seconds,
            st.samples,
            step.summary(st.step),
        )

    def _keep(self, st: LoopState, row: dict[str, Any], val: dict[str, Any], epoch: int) -> bool:
        """Save the weights when the monitored number improved (or always, with no monitor); True if improved."""
        monitor = self.step.monitor
        improved = False
        if monitor is not None:
            score = float(row[monitor.key]) * (1.0 if monitor.maximize else -1.0)
            improved = score > st.best
            if improved:
                st.best, st.best_epoch, st.bad_epochs, st.best_val = score, epoch + 1, 0, val
            else:
                st.bad_epochs += 1
        else:
            st.best_epoch = epoch + 1  # the latest weights are the ones kept
        if (improved or monitor is None) and self.dist.is_main:
            save_weights(self.step.model, self.run.weights)
        return improved

    def _checkpoint(self, st: LoopState) -> None:
        """Rank 0 writes the checkpoint, with every process's RNG state (gathered from all of them)."""
        st.extra = self.step.state_dict()
        rng = self.dist.rng_states()
        if self.dist.is_main:
            save_checkpoint(self.run.checkpoints, st.step, self.step.model, self.step.optimizer, st.to_json(), rng=rng)
