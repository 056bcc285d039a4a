"""Two machines on one box: network namespaces joined by a veth pair, one ``torchrun --nnodes 2`` node in each.

Each namespace is a host with its own network stack (10.77.0.1 and 10.77.0.2, nothing else reachable); the nodes
meet through torchrun's c10d rendezvous on node A and train with one gloo process each. The file system is
shared, as a cluster's would be (the run folder and the feature cache). Needs root (``ip netns``); slow.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_distributed import ddp_recipe, uninterrupted_ddp_run, wait_for_checkpoint  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow
PORT = 29500  # each namespace has its own ports: nothing else on the box can hold it
TIMEOUT = 20  # POLYMODAL_DIST_TIMEOUT for these jobs: how long the survivor waits for a silent peer
WAIT = 300  # the most any one job may take on a busy 2-core box


def cannot_make_namespaces() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces (ip netns add)"
    if shutil.which("ip") is None:
        return "needs the `ip` command (iproute2)"
    probe = f"pm-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=30)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=30)
    return None


class TwoHosts:
    """Namespaces ``pm<pid>a``/``pm<pid>b`` with 10.77.0.1/24 and 10.77.0.2/24 on a veth pair; :meth:`close` removes
    them (and the veth with them) and kills every job started through :meth:`torchrun`."""

    ADDR = ("10.77.0.1", "10.77.0.2")

    def __init__(self) -> None:
        tag = f"pm{os.getpid()}"
        self.ns, self.dev = (f"{tag}a", f"{tag}b"), (f"{tag}va", f"{tag}vb")  # interface names: at most 15 chars
        self.jobs: list[subprocess.Popen] = []
        self.ip("link", "add", self.dev[0], "type", "veth", "peer", "name", self.dev[1])
        for node in (0, 1):
            self.ip("netns", "add", self.ns[node])
            self.ip("link", "set", self.dev[node], "netns", self.ns[node])
            self.ip("-n", self.ns[node], "addr", "add", f"{self.ADDR[node]}/24", "dev", self.dev[node])
            self.ip("-n", self.ns[node], "link", "set", "lo", "up")
            self.link(node, "up")

    @staticmethod
    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)

    def link(self, node: int, state: str) -> None:
        self.ip("-n", self.ns[node], "link", "set", self.dev[node], state)

    def torchrun(self, node: int, rdzv_id: str, log: Path, *args: str) -> subprocess.Popen:
        """``torchrun --nnodes 2`` on ``node`` (0 hosts the rendezvous), in its own session so a kill takes the
        agent and its worker at once, as a machine's crash would."""
        cmd = ["ip", "netns", "exec", self.ns[node], sys.executable, "-m", "torch.distributed.run"]
        cmd += ["--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-id", rdzv_id]
        cmd += ["--rdzv-endpoint", f"{self.ADDR[0]}:{PORT}", "--local-addr", self.ADDR[node]]
        # is_host: torchrun guesses who hosts the store from the machine's hostname, which both namespaces share
        cmd += ["--rdzv-conf", f"is_host={int(node == 0)},join_timeout={WAIT}", "-m", "polymodal", *args]
        env = {
            **os.environ,
            "GLOO_SOCKET_IFNAME": self.dev[node],  # else gloo binds to the address the shared hostname resolves to
            "OMP_NUM_THREADS": "1",
            "POLYMODAL_DIST_TIMEOUT": str(TIMEOUT),
        }
        with open(log, "w") as out:
            job = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.jobs.append(job)
        return job

    def both(self, rdzv_id: str, logs: Path, *args: str) -> tuple[subprocess.Popen, subprocess.Popen]:
        return self.torchrun(0, rdzv_id, logs / f"{rdzv_id}-a.log", *args), self.torchrun(
            1, rdzv_id, logs / f"{rdzv_id}-b.log", *args
        )

    def close(self) -> None:
        for job in self.jobs:
            if job.poll() is None:
                os.killpg(job.pid, signal.SIGKILL)
            job.wait(timeout=30)
        for ns in self.ns:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.dev[0]], capture_output=True, timeout=30)  # if never moved


@pytest.fixture
def hosts():
    reason = cannot_make_namespaces()
    if reason:
        pytest.skip(reason)
    made = None
    try:
        made = TwoHosts()
        yield made
    finally:
        if made is not None:
            made.close()
        else:  # a failure half-way through setting up: remove whatever exists
            tag = f"pm{os.getpid()}"
            for ns in (f"{tag}a", f"{tag}b"):
                subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
            subprocess.run(["ip", "link", "del", f"{tag}va"], capture_output=True, timeout=30)


def finished(jobs: tuple[subprocess.Popen, ...], logs: list[Path]) -> None:
    for job, log in zip(jobs, logs, strict=True):
        assert job.wait(timeout=WAIT) == 0, log.read_text()[-4000:]


def same_epochs(a: Path, b: Path) -> None:
    """Every metrics line and the test metrics are identical, bit for bit (the wall-clock seconds aside)."""

    def rows(run: Path) -> list[dict]:
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]

    assert rows(a) == rows(b)
    ta, tb = (json.loads((r / "metrics.json").read_text())["test"] for r in (a, b))
    assert ta["loss"] == tb["loss"] and ta["confusion_matrix"] == tb["confusion_matrix"]


def test_two_nodes_train_like_one_and_resume_after_a_node_dies(hosts, ddp_recipe, uninterrupted_ddp_run, tmp_path):  # noqa: F811
    train = ("train", str(ddp_recipe))

    # 1. Two nodes, one process each, give the result of one node with two processes.
    run = tmp_path / "two-nodes"
    jobs = hosts.both("straight", tmp_path, *train, "--run-dir", str(run))
    finished(jobs, [tmp_path / "straight-a.log", tmp_path / "straight-b.log"])
    same_epochs(run, uninterrupted_ddp_run)

    # 2. Node B's machine dies mid-training without closing its connections (link down, then SIGKILL): node A's
    #    worker gives up after POLYMODAL_DIST_TIMEOUT with one error line, and its torchrun exits.
    killed = tmp_path / "killed"
    a, b = hosts.both("killed", tmp_path, *train, "--run-dir", str(killed))
    wait_for_checkpoint(a, killed, tmp_path / "killed-a.log")
    t0 = time.monotonic()
    hosts.link(1, "down")
    os.killpg(b.pid, signal.SIGKILL)
    b.wait(timeout=30)
    assert a.wait(timeout=TIMEOUT + 120) != 0
    waited = time.monotonic() - t0
    assert not (killed / "metrics.json").exists(), "the run finished before node B was killed"
    log = (tmp_path / "killed-a.log").read_text()
    errors = [ln for ln in log.splitlines() if ln.startswith("error: rank ")]
    assert len(errors) == 1 and "another training process stopped answering" in errors[0], log[-4000:]
    assert f"POLYMODAL_DIST_TIMEOUT bounds the wait, now {TIMEOUT} s" in errors[0]
    assert TIMEOUT - 2 <= waited <= TIMEOUT + 120, waited

    # 3. The machine is back: both nodes resume from the last checkpoint and end where the uninterrupted run did.
    hosts.link(1, "up")
    jobs = hosts.both("resumed", tmp_path, "train", "--resume", "--run-dir", str(killed))
    finished(jobs, [tmp_path / "resumed-a.log", tmp_path / "resumed-b.log"])
    same_epochs(killed, uninterrupted_ddp_run)
