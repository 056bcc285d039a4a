"""``trainer.precision: auto``: bf16 autocast where it is measured faster, fp32 elsewhere.

CPUs differ: one with AMX runs bf16 matrix products several times faster than fp32, one with avx512_bf16 only a
little faster, one with neither several times slower. So on a CPU ``auto`` times a few real training steps of
the run's own model on its own first batch, fp32 and bf16 interleaved, and takes bf16 only when its median step
is at least ``MIN_GAIN`` faster. The answer is cached per machine, torch version and model shape in
``$POLYMODAL_CACHE/../precision.json`` (default ``~/.cache/polymodal/precision.json``), so a second run of the
same recipe skips the probe. The probe leaves the model, its BatchNorm statistics, its gradients and the random
streams exactly as it found them, so a run trains the same whether the answer came from the probe or the cache.
On CUDA, ``auto`` is bf16 when the GPU supports it (Ampere and later), else fp16 with a gradient scaler; under
torchrun on CPUs it is fp32 (every process must agree, and a per-process probe might not). ``fp16`` needs CUDA:
its gradient scaler exists to keep a GPU's fp16 tensor cores usable, and CPUs that are fast in half precision are
fast in bf16, which needs no scaler (:func:`check_precision`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from polymodal.errors import CheckpointError, ConfigError
from polymodal.storage import atomic_write_json

log = logging.getLogger(__name__)
MIN_GAIN = 0.10  # bf16 must save at least 10 % of a step: below that, fp32's exactness is worth more
WARMUP, ROUNDS = 2, 5  # steps per precision before timing, then timed rounds (fp32, bf16, fp32, bf16, ...)


FP16_DEVICES = ("cuda",)  # device types that train in fp16 (with a gradient scaler)


def check_precision(setting: str, device: torch.device) -> None:
    """One ConfigError line for a precision this device does not train in."""
    if setting == "fp16" and device.type not in FP16_DEVICES:
        raise ConfigError(
            f"trainer.precision: fp16 trains on a CUDA GPU (with a gradient scaler), not on {device.type}; use "
            "precision: bf16 or auto"
        )


def cache_file() -> Path:
    features = os.environ.get("POLYMODAL_CACHE")
    root = Path(features).parent if features else Path.home() / ".cache" / "polymodal"
    return root / "precision.json"


def machine_key(model: nn.Module, batch_shapes: str) -> str:
    """What the answer depends on: the CPU (its flags), torch, and the model's size and input shapes."""
    flags = ""
    try:
        info = Path("/proc/cpuinfo").read_text()
        flags = next((line for line in info.splitlines() if line.startswith("flags")), "")
    except OSError:
        pass
    params = sum(p.numel() for p in model.parameters())
    text = f"{platform.machine()}|{flags}|{torch.__version__}|{torch.get_num_threads()}|{type(model).__name__}"
    return hashlib.sha256(f"{text}|{params}|{batch_shapes}".encode()).hexdigest()[:32]


def probe(
    step: Callable[[str], None], rounds: int = ROUNDS, choices: tuple[str, ...] = ("fp32", "bf16")
) -> dict[str, float]:
    """Median seconds of ``step(choice)`` for each choice (fp32 and bf16), interleaved after a warm-up of each."""
    for choice in choices * WARMUP:
        step(choice)
    times: dict[str, list[float]] = {c: [] for c in choices}
    for _ in range(rounds):
        for choice in choices:
            t = time.perf_counter()
            step(choice)
            times[choice].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def measured(model: nn.Module, step: Callable[[str], None], choices: tuple[str, str]) -> dict[str, float]:
    """:func:`probe` of ``choices`` on ``model``, leaving its state, gradients, mode and torch's RNG as found."""
    state, rng, training = copy.deepcopy(model.state_dict()), torch.get_rng_state(), model.training
    try:
        return probe(step, choices=choices)
    finally:
        model.load_state_dict(state)
        model.zero_grad(set_to_none=True)
        torch.set_rng_state(rng)
        model.train(training)


def cached_choice(key: str, field: str, model: nn.Module, step: Callable[[str], None], choices: tuple[str, str]) -> str:
    """The machine's cached answer under ``key`` or, failing that, a :func:`measured` probe's: ``choices[1]`` when its
    median step is at least ``MIN_GAIN`` faster than ``choices[0]``'s. The answer is cached as ``{field: choice,
    "<choice>_ms": median, ...}``."""
    known = known_choices()
    if key in known and known[key].get(field) in choices:
        return known[key][field]
    medians = measured(model, step, choices)
    choice = choices[1] if medians[choices[1]] <= (1.0 - MIN_GAIN) * medians[choices[0]] else choices[0]
    ms = {c: round(1e3 * medians[c], 2) for c in choices}
    log.info("%s auto: %s %.1f ms, %s %.1f ms per step -> %s", field, *[v for c in choices for v in (c, ms[c])], choice)
    remember(key, {field: choice, **{f"{c}_ms": ms[c] for c in choices}})
    return choice


def known_choices() -> dict[str, Any]:
    """This machine's cached answers (:func:`cache_file`), by :func:`machine_key`; empty when unreadable."""
    path = cache_file()
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def remember(key: str, entry: dict[str, Any]) -> None:
    """Add one answer to the machine's cache; a read-only or full home only costs the next run a probe."""
    known, path = known_choices(), cache_file()
    known[key] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, known)
    except (OSError, CheckpointError) as exc:
        log.warning("could not cache the probe's answer in %s (%s)", path, exc)


def resolve_precision(
    setting: str,
    device: torch.device,
    model: nn.Module,
    train_step: Callable[[str], None],
    batch_shapes: str,
    distributed: bool = False,
) -> str:
    """``setting`` itself unless it is ``auto``; then bf16 or fp32 as the module docstring says.

    ``train_step(precision)`` runs one forward and backward on a real batch (no optimiser step); the model's
    state and the random streams are restored afterwards.
    """
    if setting != "auto":
        return setting
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type != "cpu" or distributed:
        return "fp32"
    return cached_choice(machine_key(model, batch_shapes), "precision", model, train_step, ("fp32", "bf16"))
