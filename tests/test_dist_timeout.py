"""A lost peer of a distributed run: the wait is bounded (POLYMODAL_DIST_TIMEOUT) and the failure is one line."""

from __future__ import annotations

import datetime as dt

import pytest

from polymodal.errors import ConfigError, PeerLost
from polymodal.training import distributed
from polymodal.training.distributed import Dist, group_timeout, peers_watched

GLOO_TIMEOUT = "[/__w/pytorch/third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 20000ms"


def test_the_timeout_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(distributed.TIMEOUT_ENV, raising=False)
    assert group_timeout() == dt.timedelta(seconds=1800)
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "20")
    assert group_timeout() == dt.timedelta(seconds=20)
    for bad in ("0", "-5", "ten", "nan"):
        monkeypatch.setenv(distributed.TIMEOUT_ENV, bad)
        with pytest.raises(ConfigError, match="POLYMODAL_DIST_TIMEOUT=.*give a number of seconds above 0"):
            group_timeout()


def test_a_failed_collective_becomes_one_line_that_says_to_resume(monkeypatch):
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "20")
    with pytest.raises(PeerLost) as lost, peers_watched(Dist(rank=1, world_size=2, backend="gloo")):
        raise RuntimeError(GLOO_TIMEOUT + "\nmore\nlines")
    message = str(lost.value)
    assert "\n" not in message and "[/" not in message  # gloo's source location is dropped
    assert message.startswith("rank 1 of 2: another training process stopped answering (Timed out waiting 20000ms")
    assert "polymodal train --resume --run-dir RUN" in message and "now 20 s" in message
    assert lost.value.exit_code == 4


def test_other_errors_and_single_processes_are_left_alone():
    with pytest.raises(RuntimeError, match="a bug"), peers_watched(Dist(rank=0, world_size=2, backend="gloo")):
        raise RuntimeError("a bug")
    with pytest.raises(RuntimeError, match="Timed out"), peers_watched(Dist()):
        raise RuntimeError(GLOO_TIMEOUT)
