"""What one training step does: the strategies the one training loop (:class:`~.trainer.Trainer`) calls.

The Trainer owns everything around a step: epochs, resuming mid-epoch, checkpoints, metrics lines, keeping the
best weights, early stopping, TensorBoard and progress events. A :class:`TrainStep` owns the step itself and
what an epoch is made of: ordinary minibatch training (:class:`SupervisedStep`, for supervised, language-model
and pretraining runs), DP-SGD (:class:`PrivateStep`: Poisson batches, per-example clipping and noise), and the
strategies of run kinds with their own step (a GAN's critic and generator updates, a FedAvg round's clients;
see :mod:`polymodal.kinds`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from polymodal.config import TrainerConfig
from polymodal.contracts import ModelOutput
from polymodal.data.examples import collate
from polymodal.data.loading import EpochBatches, Loading, example_seed, guarded, worker_start
from polymodal.errors import ConfigError
from polymodal.privacy.dpsgd import DPSGD
from polymodal.training.distributed import Dist
from polymodal.training.evaluator import Evaluator, autocast, pinned, to_device
from polymodal.training.layout import apply_layout, resolve_layout
from polymodal.training.optim import build_optimizer, lr_at
from polymodal.training.precision import check_precision, resolve_precision

INIT_SCALE = 2.0**16  # fp16's first loss scale (torch's default); it halves on each overflow, doubles after 2,000 steps
Batch = tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None, torch.Tensor]


@dataclass(frozen=True)
class Monitor:
    """Which number of an epoch's metrics row picks the weights to keep, and early stopping.

    Args:
        key: A key of the metrics row, e.g. ``val_accuracy`` or ``val_loss``.
        maximize: Higher is better.
        patience: Stop after this many epochs without improvement (0 = never).
    """

    key: str
    maximize: bool
    patience: int = 0


@dataclass(frozen=True)
class StepResult:
    """One step's training loss (mean over its examples), its examples on this process, its learning rate."""

    loss: float
    examples: int
    lr: float


@dataclass
class EpochEnd:
    """What a step strategy adds to an epoch's metrics row (validation scores, its own sums), and the scalar
    validation metrics kept as ``best_val`` when the epoch is the best so far."""

    row: dict[str, Any]
    val: dict[str, Any] = field(default_factory=dict)


class TrainStep(Protocol):
    """A training strategy.

    Attributes:
        model: The module whose weights are kept (``weights.safetensors``) and checkpointed.
        optimizer: Checkpointed with the model; None when nothing outlives an epoch (FedAvg's clients).
        monitor: How to pick the kept weights; None keeps the latest epoch's.
        mid_epoch_checkpoints: Whether ``checkpoint_every`` applies inside an epoch (False when the step's
            state within an epoch cannot be saved, e.g. a FedAvg round's partial average).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer | None
    monitor: Monitor | None
    mid_epoch_checkpoints: bool

    def units(self, epoch: int) -> Sequence[Any]:
        """The epoch's steps in order (batches of row indices, client ids, step numbers); a function of the
        seed and the epoch, so a resumed run finds the ones it had not taken."""
        ...

    def feed(self, units: Sequence[Any]) -> Iterable[Any]:
        """What :meth:`step` receives for each unit, in order (e.g. a DataLoader over batches of rows)."""
        ...

    def step(self, unit: Any, step: int) -> StepResult:
        """Take training step number ``step`` (0-based over the run) on ``unit``."""
        ...

    def end_epoch(self, epoch: int, steps: int) -> EpochEnd:
        """Epoch ``epoch`` (0-based) is done after ``steps`` steps in all: validate, summarise, reset sums."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state the step carries between steps (saved in every checkpoint)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def summary(self, steps: int) -> dict[str, Any]:
        """What the run's final record adds about this strategy (e.g. the privacy guarantee)."""
        ...


def validation(val: dict[str, Any]) -> EpochEnd:
    """An epoch row's validation scores (``val_loss``, ``val_accuracy``, ``val_macro_f1``) from an evaluation,
    with its scalar metrics as the ``best_val`` candidate."""
    row = {"val_loss": val["loss"], "val_accuracy": val.get("accuracy"), "val_macro_f1": val.get("macro_f1")}
    return EpochEnd(row, {k: v for k, v in val.items() if not isinstance(v, (dict, list))})


class Stateless:
    """Defaults for a step strategy that carries nothing between steps and adds nothing to the run's record."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None

    def summary(self, steps: int) -> dict[str, Any]:
        return {}


def optimizer_step(
    net: nn.Module,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    cfg: TrainerConfig,
    lr: float,
    device: torch.device,
    scaler: torch.amp.GradScaler | None = None,
) -> float:
    """One plain step: forward (``net``: the model, or DDP around it) under ``cfg.precision``'s autocast, the
    model's loss, backward, gradient clipping, optimiser step with learning rate ``lr``; returns the loss.

    fp16 goes through ``scaler``: the loss is scaled up before backward so small gradients do not underflow, the
    gradients are unscaled before clipping, and a step whose gradients overflowed is skipped (the scale halves).
    The step reads one number back from the device, the loss, at its very end (for the metrics and the NaN
    check): a GPU runs the whole step without waiting for the host in between."""
    inputs, present, y = to_device(batch, device)
    for group in optimizer.param_groups:
        group["lr"] = lr
    with autocast(device, cfg.precision):
        out: ModelOutput = net(inputs, present)
    loss = model.loss(out, y)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    value = loss.item()
    if not math.isfinite(value):  # the run stops here: the weights this step changed are never saved
        raise FloatingPointError(f"loss became {value}; lower trainer.lr")
    return value


def loader(
    ds: Dataset,
    batches: Sequence[list[Any]] | EpochBatches,
    collate_fn: Callable = collate,
    loading: Loading | None = None,
    device: torch.device | None = None,
) -> DataLoader:
    """A DataLoader over given batches of row indices. Its private generator matters: each DataLoader iterator
    draws a base seed, and drawing it from the global RNG would shift the dropout stream of a run resumed
    mid-epoch away from the uninterrupted one. ``loading.workers`` processes (forked, so they share the examples
    preprocessed before training) load the batches when > 0; batches for a CUDA device are built in pinned
    memory, so their copy to the GPU is asynchronous."""
    loading = loading or Loading()
    extra: dict[str, Any] = {}
    if loading.workers:
        extra = {
            "multiprocessing_context": "fork",
            "worker_init_fn": worker_start,
            "persistent_workers": loading.persistent,
            "prefetch_factor": loading.prefetch,
            "timeout": loading.timeout,
        }
    return DataLoader(
        ds,
        batch_sampler=batches,
        collate_fn=collate_fn,
        num_workers=loading.workers,
        generator=torch.Generator(),
        pin_memory=device is not None and pinned(device),
        **extra,
    )


class SupervisedStep(Stateless):
    """Minibatch training of a :class:`~polymodal.contracts.Trainable` model on a dataset of examples.

    Per step: the scheduled learning rate (warmup + cosine over the whole run), :func:`optimizer_step`. Per epoch:
    the validation split scored, its metrics in the row; the monitored metric is ``trainer.monitor``.

    Args:
        model: The model (a multimodal model, a pretraining objective, a language model).
        cfg: The recipe's trainer section.
        train, val: Datasets of ``(inputs, present, target)`` examples. A dataset with ``set_epoch`` draws new
            examples each epoch (language-model windows).
        seed: Seed of the epoch order.
        dist: This process's place in a torchrun job.
    """

    mid_epoch_checkpoints = True

    def __init__(
        self, model: nn.Module, cfg: TrainerConfig, train: Dataset, val: Dataset, seed: int, dist: Dist | None = None
    ) -> None:
        self.model, self.train, self.val, self.seed, self.epoch = model, train, val, seed, 0
        self.dist = dist or Dist()
        self._probe: tuple[Callable[[str], None], str] | None = None
        check_precision(cfg.precision, self.dist.device)
        self.cfg = dataclasses.replace(cfg, precision=self.chosen_precision(cfg))  # "auto" resolved once
        self.cfg = dataclasses.replace(self.cfg, memory_format=self.chosen_layout(self.cfg))
        if self.cfg.memory_format == "channels_last":  # models are built contiguous
            apply_layout(model, "channels_last")  # before DDP, whose buckets follow the parameters' strides
        cfg = self.cfg
        self.net = self.dist.wrap(model)  # what the training forward runs: the model, or DDP around it
        self.optimizer: torch.optim.Optimizer | None = build_optimizer(model, cfg)
        # fp16's narrow range needs the loss scaled (bf16 has fp32's exponent range and does not).
        fp16 = cfg.precision == "fp16"
        self.scaler = torch.amp.GradScaler(self.dist.device.type, init_scale=INIT_SCALE) if fp16 else None
        self.monitor: Monitor | None = Monitor(f"val_{cfg.monitor}", cfg.monitor != "loss", cfg.patience)
        self.evaluator = Evaluator(model, max(cfg.batch_size, 128), self.dist, cfg.precision)
        self.total_steps = len(self.dist.train_batches(len(train), cfg.batch_size, seed, 0)) * cfg.epochs
        self.loading: Loading = getattr(train, "loading", None) or Loading()
        if hasattr(train, "set_epoch"):  # its examples change each epoch in this process: workers must not persist
            self.loading = dataclasses.replace(self.loading, persistent=False)
        self.batches = EpochBatches()
        self._loader: DataLoader | None = None

    def probe_step(self, cfg: TrainerConfig) -> tuple[Callable[[str], None], str]:
        """One forward and backward on the first training batch at a given precision (what the ``auto`` probes
        time), and the batch's shapes; the batch is loaded once for both probes."""
        if self._probe is None:
            self._probe = self.first_batch_step(cfg)
        return self._probe

    def first_batch_step(self, cfg: TrainerConfig) -> tuple[Callable[[str], None], str]:
        first = self.dist.train_batches(len(self.train), cfg.batch_size, self.seed, 0)[0]
        batch = to_device(next(iter(loader(self.train, [first]))), self.dist.device)
        inputs, present, y = batch

        def train_step(precision: str) -> None:
            self.model.train()
            with autocast(self.dist.device, precision):
                out: ModelOutput = self.model(inputs, present)
            self.model.loss(out, y).backward()

        return train_step, str({k: tuple(v.shape) for k, v in inputs.items()})

    def chosen_precision(self, cfg: TrainerConfig) -> str:
        """``cfg.precision``, with ``auto`` measured on this model and its first training batch."""
        if cfg.precision != "auto":
            return cfg.precision
        train_step, shapes = self.probe_step(cfg)
        return resolve_precision(cfg.precision, self.dist.device, self.model, train_step, shapes, self.dist.enabled)

    def chosen_layout(self, cfg: TrainerConfig) -> str:
        """``cfg.memory_format``, with ``auto`` measured at the run's precision (``cfg.precision`` resolved)."""
        if cfg.memory_format != "auto":
            return cfg.memory_format
        train_step, shapes = self.probe_step(cfg)
        return resolve_layout(
            "auto", self.model, lambda: train_step(cfg.precision), shapes, cfg.precision, self.dist.enabled
        )

    def units(self, epoch: int) -> Sequence[list[int]]:
        self.epoch = epoch
        if hasattr(self.train, "set_epoch"):
            self.train.set_epoch(epoch)  # datasets that draw fresh examples each epoch (language-model windows)
        return self.dist.train_batches(len(self.train), self.cfg.batch_size, self.seed, epoch)

    def feed(self, units: Sequence[list[int]]) -> Iterable[Batch]:
        self.model.train()
        if getattr(self.train, "augments", False):  # each row's draws from its own seed: worker count is moot
            units = [[(i, example_seed(self.seed, self.epoch, i)) for i in batch] for batch in units]
        self.batches.set(units)
        if self._loader is None or not (self.loading.workers and self.loading.persistent):
            self._loader = loader(self.train, self.batches, loading=self.loading, device=self.dist.device)
        return guarded(self._loader, self.loading)

    def step(self, unit: Batch, step: int) -> StepResult:
        lr = lr_at(step, self.total_steps, self.cfg)
        assert self.optimizer is not None
        loss = optimizer_step(self.net, self.model, self.optimizer, unit, self.cfg, lr, self.dist.device, self.scaler)
        return StepResult(loss, len(unit[2]), lr)

    def state_dict(self) -> dict[str, Any]:
        """fp16's loss scale and its growth counter (plain numbers): a resumed run scales as the killed one did."""
        return {"grad_scaler": self.scaler.state_dict()} if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state.get("grad_scaler"):
            self.scaler.load_state_dict(state["grad_scaler"])

    def end_epoch(self, epoch: int, steps: int) -> EpochEnd:
        end = validation(self.evaluator.evaluate(self.val))
        end.row["lr"] = self.optimizer.param_groups[0]["lr"] if self.optimizer is not None else None
        return end


class PrivateStep(SupervisedStep):
    """DP-SGD: each step's batch is Poisson-sampled and its gradient is the sum of per-example gradients, each
    clipped, plus Gaussian noise (:class:`polymodal.privacy.dpsgd.DPSGD`); the rest is the supervised step.
    The noise is calibrated to the run's number of steps; every epoch row records the ε spent so far."""

    def __init__(
        self, model: nn.Module, cfg: TrainerConfig, train: Dataset, val: Dataset, seed: int, dist: Dist | None = None
    ) -> None:
        super().__init__(model, cfg, train, val, seed, dist)
        if self.scaler is not None:
            raise ConfigError(
                "trainer.privacy does not take precision: fp16 (its per-example clipping works on "
                "unscaled gradients); use bf16 or fp32"
            )
        if self.dist.world_size > 1:
            raise ConfigError("trainer.privacy does not run under torchrun yet; train it in one process")
        assert cfg.privacy is not None
        self.private = DPSGD(model, cfg.privacy, len(train), cfg.batch_size, self.total_steps, seed)

    def units(self, epoch: int) -> Sequence[list[int]]:
        return self.private.batches(epoch)  # Poisson sampling, as DP-SGD's accounting assumes

    def feed(self, units: Sequence[list[int]]) -> Iterable[Batch]:
        self.model.train()
        return loader(self.train, units, self.private.collate(self.train), device=self.dist.device)

    def step(self, unit: Batch, step: int) -> StepResult:
        lr = lr_at(step, self.total_steps, self.cfg)
        assert self.optimizer is not None
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        inputs, present, y = to_device(unit, self.dist.device)
        loss = self.private.backward(inputs, present, y, lambda: autocast(self.dist.device, self.cfg.precision))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {float(loss)} at step {step}; lower trainer.lr")
        self.optimizer.step()  # the gradients are the privatised ones DPSGD.backward set
        return StepResult(loss.item(), len(y), lr)

    def end_epoch(self, epoch: int, steps: int) -> EpochEnd:
        end = super().end_epoch(epoch, steps)
        end.row["epsilon"] = self.private.epsilon(steps)
        return end

    def summary(self, steps: int) -> dict[str, Any]:
        return {"privacy": self.private.report(steps)}


def supervised_step(
    model: nn.Module, cfg: TrainerConfig, train: Dataset, val: Dataset, seed: int, dist: Dist | None = None
) -> SupervisedStep:
    """The step ``cfg`` asks for: DP-SGD when ``trainer.privacy`` is set, else plain minibatch training."""
    kind = PrivateStep if cfg.privacy is not None else SupervisedStep
    return kind(model, cfg, train, val, seed, dist)
