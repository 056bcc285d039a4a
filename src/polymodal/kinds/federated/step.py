"""Federated averaging (McMahan et al. 2017), simulated in one process, as a step strategy of the one Trainer.

An epoch of the Trainer is a communication round; its steps are the clients chosen for the round (a seeded
random ``fraction`` of them). Each client starts from the global weights and trains ``local_epochs`` on its
own shard with a fresh optimiser, by :func:`~polymodal.training.steps.optimizer_step` (the step of centralised
training: forward, loss, backward, clipping, the scheduled learning rate over the client's steps of the whole
run). At the round's end the server replaces the global weights by the clients' average, weighted by shard size,
and the global model is validated. Checkpoints are taken at round ends (a round's partial average is not
saved): a resumed run redoes the interrupted round, which is a function of the seed, the round and the global
weights, so it ends where an uninterrupted run does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from polymodal.config import TrainerConfig
from polymodal.data.examples import ExampleDataset
from polymodal.kinds.federated.recipe import FederatedConfig
from polymodal.training.distributed import Dist, epoch_order
from polymodal.training.evaluator import Evaluator
from polymodal.training.optim import build_optimizer, lr_at
from polymodal.training.precision import check_precision
from polymodal.training.steps import EpochEnd, Monitor, Stateless, StepResult, loader, optimizer_step, validation


def average(states: list[dict[str, torch.Tensor]], weights: list[int]) -> dict[str, torch.Tensor]:
    """Weighted mean of floating-point tensors (in float64); integer buffers (BatchNorm step counters)
    are taken from the last client."""
    total = float(sum(weights))
    out = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            acc = sum(s[key].double() * (w / total) for s, w in zip(states, weights, strict=True))
            out[key] = acc.to(last.dtype)
        else:
            out[key] = last.clone()
    return out


def local_train(
    model: nn.Module,
    ds: ExampleDataset,
    shard: np.ndarray,
    cfg: TrainerConfig,
    epochs: int,
    seed: int,
    first_epoch: int,
    total_steps: int,
) -> float:
    """Train ``model`` in place on ``ds[shard]`` for ``epochs`` epochs; returns the mean training loss.

    The epoch order is ``epoch_order`` over the shard and the learning rate follows ``lr_at`` over the
    client's ``total_steps`` across all rounds, so one client holding all data for one round and one epoch
    takes exactly the steps of one centralised epoch.
    """
    optimizer = build_optimizer(model, cfg)
    steps_per_epoch = math.ceil(len(shard) / cfg.batch_size)
    step, loss_sum, seen = first_epoch * steps_per_epoch, 0.0, 0
    device = next(model.parameters()).device
    model.train()
    for epoch in range(first_epoch, first_epoch + epochs):
        order = shard[epoch_order(len(shard), seed, epoch)]
        batches = [order[i : i + cfg.batch_size].tolist() for i in range(0, len(order), cfg.batch_size)]
        for batch in loader(ds, batches):
            loss = optimizer_step(model, model, optimizer, batch, cfg, lr_at(step, total_steps, cfg), device)
            step += 1
            loss_sum, seen = loss_sum + loss * len(batch[2]), seen + len(batch[2])
    return loss_sum / max(1, seen)


class FedAvgStep(Stateless):
    """FedAvg for the Trainer: units are a round's clients, the epoch end averages and validates.

    Args:
        model: The global model (its weights are the global state between rounds).
        cfg: The recipe's trainer section (each client's local training).
        fed: The federated section.
        train, val: The training split (sharded over clients) and the validation split.
        shards: Each client's rows of ``train``.
        seed: The recipe's seed.
    """

    optimizer: torch.optim.Optimizer | None = None  # each client's optimiser lives for one round
    mid_epoch_checkpoints = False

    def __init__(
        self,
        model: nn.Module,
        cfg: TrainerConfig,
        fed: FederatedConfig,
        train: ExampleDataset,
        val: ExampleDataset,
        shards: list[np.ndarray],
        seed: int,
    ) -> None:
        self.model, self.cfg, self.fed, self.train, self.val = model, cfg, fed, train, val
        self.shards, self.seed = shards, seed
        self.monitor: Monitor | None = Monitor(f"val_{cfg.monitor}", cfg.monitor != "loss", cfg.patience)
        check_precision(cfg.precision, torch.device("cpu"))  # clients train on the CPU
        self.evaluator = Evaluator(model, max(cfg.batch_size, 128), Dist(), cfg.precision)
        self.round, self.chosen = 0, []
        self.states: list[dict[str, torch.Tensor]] = []
        self.weights: list[int] = []
        self.global_state: dict[str, torch.Tensor] = {}

    def choose(self, r: int) -> list[int]:
        """The clients of round ``r``: the r-th draw of a generator seeded once (replayed from round 0)."""
        picker = np.random.default_rng(self.seed + 1)
        per_round = max(1, round(self.fed.fraction * self.fed.clients))
        for _ in range(r + 1):
            chosen = sorted(int(k) for k in picker.choice(self.fed.clients, per_round, replace=False))
        return chosen

    def units(self, epoch: int) -> Sequence[int]:
        self.round, self.chosen = epoch, self.choose(epoch)
        self.states, self.weights = [], []
        self.global_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return [k for k in self.chosen if len(self.shards[k])]

    def feed(self, units: Sequence[int]) -> Iterable[int]:
        return units

    def step(self, unit: int, step: int) -> StepResult:
        k, r, fed, cfg = unit, self.round, self.fed, self.cfg
        self.model.load_state_dict(self.global_state)
        torch.manual_seed(self.seed + r * 10_007 + k)  # client k's dropout stream in round r
        total = fed.rounds * fed.local_epochs * math.ceil(len(self.shards[k]) / cfg.batch_size)
        first = r * fed.local_epochs
        loss = local_train(self.model, self.train, self.shards[k], cfg, fed.local_epochs, self.seed + k, first, total)
        self.states.append({n: v.detach().clone() for n, v in self.model.state_dict().items()})
        self.weights.append(len(self.shards[k]))
        return StepResult(loss, len(self.shards[k]), lr_at(first, total, cfg))

    def end_epoch(self, epoch: int, steps: int) -> EpochEnd:
        self.model.load_state_dict(average(self.states, self.weights) if self.states else self.global_state)
        end = validation(self.evaluator.evaluate(self.val))
        end.row = {"round": epoch + 1, "clients": self.chosen, "examples": int(sum(self.weights)), **end.row}
        self.states, self.weights = [], []
        return end
