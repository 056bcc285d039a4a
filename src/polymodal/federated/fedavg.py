"""Federated averaging (McMahan et al. 2017), simulated in one process.

The training split is divided over K clients by a Dirichlet label split. Each round a seeded random
``fraction`` of the clients starts from the global weights, trains ``local_epochs`` on its own shard with a
fresh optimiser (the same step as :class:`~polymodal.train.trainer.Trainer`: forward, head loss, backward,
gradient clipping, scheduled learning rate), and the server replaces the global weights by the average of
the clients' weights, weighted by shard size. The global model is validated after every round; the best
round's weights are kept and tested, and the run directory has the layout of ``polymodal train`` (so
``evaluate`` and ``predict`` work on it).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader

from polymodal.api import RunResult, as_recipe, default_run_dir, run_meta
from polymodal.config import Recipe, TrainerConfig, recipe_to_dict
from polymodal.data.dataset import ExampleDataset, build_data, collate, pin_options
from polymodal.errors import CheckpointError, ConfigError
from polymodal.federated.config import FederatedConfig
from polymodal.federated.partition import dirichlet_split, label_histogram
from polymodal.model import build_model
from polymodal.train.checkpoint import atomic_write_text, load_weights, save_weights
from polymodal.train.distributed import epoch_order
from polymodal.train.optim import build_optimizer, lr_at
from polymodal.train.trainer import Callback, Trainer

log = logging.getLogger(__name__)


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
    model.train()
    for epoch in range(first_epoch, first_epoch + epochs):
        order = shard[epoch_order(len(shard), seed, epoch)]
        batches = [order[i : i + cfg.batch_size].tolist() for i in range(0, len(order), cfg.batch_size)]
        loader = DataLoader(ds, batch_sampler=batches, collate_fn=collate, generator=torch.Generator())
        for inputs, present, y in loader:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, total_steps, cfg)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
                logits = model(inputs, present)
            loss = model.loss(logits, y)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"client loss became {float(loss)}; lower trainer.lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            step += 1
            loss_sum, seen = loss_sum + loss.item() * len(y), seen + len(y)
    return loss_sum / max(1, seen)


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


def train_federated(
    recipe: Recipe | str | Path | dict, run_dir: str | Path | None = None, callback: Callback | None = None
) -> RunResult:
    """Simulate FedAvg for a recipe's ``federated`` section and test the best round's global model.

    Args:
        recipe: A classification recipe (YAML path, built-in name, dict or :class:`Recipe`).
        run_dir: Output folder (default ``runs/<name>-<timestamp>``).
        callback: ``callback("round_end", round=, rounds=, metrics=, improved=)`` after every round.

    Returns:
        A :class:`~polymodal.api.RunResult`; ``best_epoch`` is the best round.
    """
    recipe = as_recipe(recipe)
    if not isinstance(recipe, Recipe):
        raise ConfigError("polymodal federated trains classification recipes, not language models (kind: lm)")
    if recipe.trainer.privacy is not None:
        raise ConfigError("trainer.privacy: DP-SGD is not combined with federated training; remove one of them")
    fed = recipe.federated or FederatedConfig()
    cfg, seed = recipe.trainer, recipe.seed
    run = Path(run_dir) if run_dir is not None else default_run_dir(recipe)
    if (run / "weights.safetensors").exists():
        raise CheckpointError(f"{run} already holds a trained run; choose another --run-dir")
    run.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(seed)
    data = build_data(recipe)
    train, val, test = data.splits["train"], data.splits["val"], data.splits["test"]
    labels = train.targets.numpy()
    if data.target.get("kind", "class") != "class" or labels.ndim != 1:
        raise ConfigError("federated: the Dirichlet label split needs a single-label classification head")
    contexts = {name: t.context() for name, t in data.transforms.items()}
    model = build_model(recipe, train.shapes, data.target, contexts)
    shards = dirichlet_split(labels, fed.clients, fed.alpha, seed)
    histogram = label_histogram(labels, shards, len(data.classes))
    atomic_write_text(run / "recipe.yaml", yaml.safe_dump(recipe_to_dict(pin_options(recipe, data)), sort_keys=False))
    meta = {
        **run_meta(data, model, seed),
        "federated": {"client_sizes": [len(s) for s in shards], "client_labels": histogram.tolist()},
    }
    atomic_write_text(run / "meta.json", json.dumps(meta, indent=2))
    atomic_write_text(run / "transforms.json", json.dumps({n: t.state_dict() for n, t in data.transforms.items()}))

    evaluator = Trainer(model, cfg, run, seed)
    picker = np.random.default_rng(seed + 1)
    per_round = max(1, round(fed.fraction * fed.clients))
    sign = -1.0 if cfg.monitor == "loss" else 1.0
    best, best_round, best_val = -math.inf, 0, {}
    metrics_log = run / "metrics.jsonl"
    metrics_log.unlink(missing_ok=True)
    global_state = {k: v.clone() for k, v in model.state_dict().items()}
    t0 = time.perf_counter()
    for r in range(fed.rounds):
        chosen = sorted(int(k) for k in picker.choice(fed.clients, per_round, replace=False))
        states, weights, losses = [], [], []
        for k in chosen:
            if len(shards[k]) == 0:
                continue
            model.load_state_dict(global_state)
            torch.manual_seed(seed + r * 10_007 + k)  # client k's dropout stream in round r
            total = fed.rounds * fed.local_epochs * math.ceil(len(shards[k]) / cfg.batch_size)
            first = r * fed.local_epochs
            losses.append(local_train(model, train, shards[k], cfg, fed.local_epochs, seed + k, first, total))
            states.append({n: v.detach().clone() for n, v in model.state_dict().items()})
            weights.append(len(shards[k]))
        if states:
            global_state = average(states, weights)
        model.load_state_dict(global_state)
        val_m = evaluator.evaluate(val)
        row = {
            "round": r + 1,
            "clients": chosen,
            "examples": int(sum(weights)),
            "train_loss": float(np.average(losses, weights=weights)) if losses else None,
            "val_loss": val_m["loss"],
            "val_accuracy": val_m.get("accuracy"),
            "val_macro_f1": val_m.get("macro_f1"),
            "seconds": round(time.perf_counter() - t0, 3),
        }
        with open(metrics_log, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        improved = sign * val_m[cfg.monitor] > best
        if improved:
            best, best_round = sign * val_m[cfg.monitor], r + 1
            best_val = {k: v for k, v in val_m.items() if not isinstance(v, (dict, list))}
            save_weights(model, run / "weights.safetensors")
        if callback:
            callback("round_end", round=r, rounds=fed.rounds, metrics=row, improved=improved)
    seconds = time.perf_counter() - t0
    load_weights(model, run / "weights.safetensors")
    test_m = evaluator.evaluate(test)
    record = {
        "test": test_m,
        "best_val": best_val,
        "best_round": best_round,
        "rounds_run": fed.rounds,
        "federated": {**vars(fed), "client_sizes": [len(s) for s in shards]},
        "train_seconds": round(seconds, 3),
    }
    atomic_write_text(run / "metrics.json", json.dumps(record, indent=2))
    return RunResult(run, test_m, best_val, best_round, seconds, data.source, 0, None, evaluator, data)
