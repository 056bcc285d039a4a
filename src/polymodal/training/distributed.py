"""Data-parallel training across processes started by ``torchrun``.

The Trainer asks one small object, :class:`Dist`, everything that differs between one process and many:
which training batches this process takes, which evaluation rows it scores and how the scores of all
processes are put together, whether it may write files, and how the model is wrapped. ``Dist()`` (one process)
answers exactly as the Trainer did before distributed training existed, so single-process runs are unchanged.

With ``torchrun --nproc_per_node=N`` every process builds the same data (the split and fitted transforms are
deterministic in the seed) and the same model; then

- training: ``DistributedSampler`` (``set_epoch`` each epoch) gives each process a disjoint 1/N of the epoch,
  in batches of ``ceil(batch_size / N)``, so one optimiser step still sees ``batch_size`` examples and the
  number of steps, the learning-rate schedule and the recipe's meaning do not depend on N;
  ``DistributedDataParallel`` averages the gradients, so every process takes the same step;
- evaluation: each process scores rows ``rank, rank + N, ...`` (no padding, every row once) and the outputs are
  all-gathered, so every process computes the same metrics — and takes the same early-stopping decision;
- files: only rank 0 writes (run directory, checkpoints, metrics); the others wait at a barrier where they
  read what rank 0 wrote.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler

from polymodal.errors import ConfigError, PeerLost

TIMEOUT_ENV = "POLYMODAL_DIST_TIMEOUT"  # seconds a process waits for the others in one collective
DEFAULT_TIMEOUT = 1800  # torch's own default for gloo
# How a collective fails when a peer is gone: gloo's transport errors (closed connection, timed-out recv/send).
PEER_FAILURES = ("gloo/transport", "Connection closed by peer", "Connection reset by peer", "Timed out waiting")


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The single-process training order of epoch ``epoch``: a function of seed and epoch only, so a resumed
    run finds the batches it had not used yet."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


@dataclass(frozen=True)
class Dist:
    """This process's place among the training processes; ``Dist()`` is a single process.

    Args:
        rank: Global index of this process (0 writes files).
        world_size: Number of processes.
        local_rank: Index on this machine (selects the GPU when there is one).
        backend: ``gloo`` (CPU) or ``nccl`` (CUDA); empty for a single process.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""
    device_name: str = ""  # a single process's device (resolve_device); empty: the CPU

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        """Where the model and batches live: this process's GPU with NCCL, the device a single process was
        given (``trainer.device``), else the CPU."""
        if self.backend == "nccl":
            return torch.device("cuda", self.local_rank)
        return torch.device(self.device_name or "cpu")

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module the training forward goes through: ``model`` itself, or DDP around it (which broadcasts
        rank 0's parameters now and averages gradients in every backward). Every parameter must receive a
        gradient in every step (``find_unused_parameters`` is off: it costs a graph traversal per step); every
        registered component does — tests/test_contracts.py checks it — and a missing input's encoder still
        runs (its output is zeroed), so it does too."""
        model.to(self.device)  # a no-op on the CPU
        if not self.enabled:
            return model
        ids = [self.local_rank] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def train_batches(self, n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
        """This process's training batches of epoch ``epoch`` (indices into a dataset of ``n`` rows).

        Every process gets the same number of equal-sized batches (the sampler pads its shard with a few
        repeated rows), as DDP needs: a process with one batch more would wait forever for the others.
        """
        if not self.enabled:
            order = epoch_order(n, seed, epoch)
            return [order[i : i + batch_size] for i in range(0, n, batch_size)]
        sampler = DistributedSampler(range(n), num_replicas=self.world_size, rank=self.rank, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        order = list(sampler)
        local = math.ceil(batch_size / self.world_size)
        return [order[i : i + local] for i in range(0, len(order), local)]

    def samples_per_step(self, local_batch: int) -> int:
        """Examples one optimiser step consumed over all processes (their batches are equal-sized)."""
        return local_batch * self.world_size

    def eval_rows(self, n: int) -> list[int]:
        """The rows of an ``n``-row evaluation set this process scores: every ``world_size``-th, no padding."""
        if not self.enabled or n < self.world_size:
            return list(range(n))
        return list(range(self.rank, n, self.world_size))

    def gather_eval(self, n: int, outputs: np.ndarray, targets: np.ndarray, loss_sum: float) -> tuple:
        """All processes' ``eval_rows`` results put back in row order: outputs (n, ...), targets (n, ...) and
        the summed loss; identical on every process."""
        if not self.enabled or n < self.world_size:
            return outputs, targets, loss_sum
        parts: list[Any] = [None] * self.world_size
        dist.all_gather_object(parts, (outputs, targets, loss_sum))
        rows = np.concatenate([np.arange(r, n, self.world_size) for r in range(self.world_size)])
        out = np.empty_like(np.concatenate([p[0] for p in parts]))
        tgt = np.empty_like(np.concatenate([p[1] for p in parts]))
        out[rows] = np.concatenate([p[0] for p in parts])
        tgt[rows] = np.concatenate([p[1] for p in parts])
        return out, tgt, sum(p[2] for p in parts)

    def all_sum(self, *values: float) -> list[float]:
        """Each value summed over all processes (float64 on the CPU, so gloo and NCCL both take it)."""
        if not self.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def rng_states(self) -> list[torch.Tensor]:
        """Every process's CPU RNG state, rank order (for the checkpoint: dropout streams differ per rank)."""
        mine = torch.get_rng_state()
        if not self.enabled:
            return [mine]
        states: list[Any] = [None] * self.world_size
        dist.all_gather_object(states, mine.numpy())
        return [torch.from_numpy(s) for s in states]

    def sync_buffers(self, model: nn.Module) -> None:
        """Copy rank 0's buffers (batch-norm running statistics) to every process before evaluating: DDP
        broadcasts them at the start of each forward, so after the last step each process holds its own."""
        if self.enabled:
            for b in model.buffers():
                dist.broadcast(b, src=0)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def agree(self, value: Any) -> Any:
        """Rank 0's ``value`` on every process (e.g. a run directory named after the clock)."""
        if not self.enabled:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def backend(device: str = "auto") -> str:
    """NCCL when this machine has CUDA (and the recipe does not ask for the CPU), else gloo."""
    return "nccl" if torch.cuda.is_available() and device != "cpu" else "gloo"


def resolve_device(setting: str) -> str:
    """A single process's device for ``trainer.device``; one ConfigError line when the machine lacks it."""
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if setting.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"trainer.device: {setting}, but this machine has no CUDA device (torch.cuda.is_available() is "
                "False: no GPU, or a CPU-only torch); use device: auto or cpu"
            )
        index = int(setting.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"trainer.device: {setting}, but this machine has {torch.cuda.device_count()} CUDA device(s) "
                f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})"
            )
    if setting == "mps" and not has_mps:
        raise ConfigError(
            "trainer.device: mps, but MPS is not available here (it needs Apple silicon); use auto or cpu"
        )
    return setting


def world_size() -> int:
    """The number of processes torchrun started (1 outside torchrun); read from the environment only."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def from_env(device: str = "auto") -> Dist:
    """This process's :class:`Dist`, joining the process group ``torchrun`` describes in the environment
    (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``); a single process on
    ``resolve_device(device)`` when it does not."""
    world = world_size()
    if world <= 1:
        return Dist(device_name=resolve_device(device))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        name = backend(device)
        if name == "nccl":
            torch.cuda.set_device(local_rank)
        rank, attempt = int(os.environ["RANK"]), int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
        if attempt == 0:
            dist.init_process_group(name, timeout=group_timeout())
        else:  # see attempt_store: the restarted group must not read the failed group's addresses
            store = attempt_store(attempt)
            dist.init_process_group(name, store=store, rank=rank, world_size=world, timeout=group_timeout())
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank, dist.get_backend())


def group_timeout() -> dt.timedelta:
    """How long a process waits for the others in one collective (``POLYMODAL_DIST_TIMEOUT`` seconds, default
    30 minutes) before it gives up: the bound on a hang when another machine dies without closing its connections
    (power loss, network partition; tests/test_multinode.py)."""
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        seconds = float(raw) if raw else DEFAULT_TIMEOUT
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ConfigError(f"{TIMEOUT_ENV}={raw!r}: give a number of seconds above 0 (default {DEFAULT_TIMEOUT})")
    return dt.timedelta(seconds=seconds)


@contextmanager
def peers_watched(d: Dist) -> Iterator[None]:
    """Turn the process group's failure into one :class:`PeerLost` line: another process of the job died or
    stopped answering (a SIGKILL, a lost machine, a network partition after ``POLYMODAL_DIST_TIMEOUT``)."""
    try:
        yield
    except RuntimeError as exc:  # DistError, or DDP's backward re-raising gloo's error as a plain RuntimeError
        if not d.enabled or not (isinstance(exc, dist.DistError) or any(m in str(exc) for m in PEER_FAILURES)):
            raise
        cause = re.sub(r"^\[[^\]]*\]\s*", "", " ".join(str(exc).split()))[:240]  # without gloo's [file:line]
        raise PeerLost(
            f"rank {d.rank} of {d.world_size}: another training process stopped answering ({cause}); the run "
            "stopped — start the job again with `polymodal train --resume --run-dir RUN` to continue from its last "
            f"checkpoint ({TIMEOUT_ENV} bounds the wait, now {group_timeout().total_seconds():.0f} s)"
        ) from None


def attempt_store(attempt: int) -> dist.Store:
    """The rendezvous store seen through a prefix for this restart ``attempt``.

    torchrun (``--max-restarts``) keeps one TCP store for all attempts and gives restarted workers no fresh
    namespace in it, so a restarted gloo/NCCL group reads the failed group's peer addresses and cannot connect
    (pytorch/pytorch#135712: "Gloo connectFullMesh failed ... Connection refused"). On one node every worker
    gets the agent's restart count, so a prefix per attempt keeps the rounds apart.
    """
    timeout = dt.timedelta(minutes=10)
    client = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False, timeout=timeout)
    return dist.PrefixStore(f"polymodal/attempt-{attempt}", client)


def restarted(run_dir: Path) -> bool:
    """True when torchrun has started this worker again after a failure (``torchrun --max-restarts=N`` sets
    ``TORCHELASTIC_RESTART_COUNT``) and ``run_dir`` holds a checkpoint to continue from."""
    again = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0
    return again and (run_dir / "checkpoints" / "latest").is_file()


def is_main_process() -> bool:
    """True unless this is a non-zero rank of a torchrun job (safe to call before the group exists)."""
    return int(os.environ.get("RANK", "0")) == 0


def shutdown() -> None:
    """Leave the process group (all processes together); a no-op when there is none."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def finish() -> None:
    """End a torchrun worker: leave the group, flush, and exit at once. Letting the interpreter tear down the
    gloo threads instead sometimes aborted a worker with SIGABRT after training had finished; this sequence
    ended 40 of 40 runs cleanly (design notes). Returns (doing nothing) in a single process."""
    if not dist.is_initialized():
        return
    shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
