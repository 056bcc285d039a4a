"""precision: fp16 trains through a gradient scaler whose state the checkpoint keeps; the CPU refuses it in one line.

fp16 is for CUDA GPUs. The scaler path itself is device-agnostic (``torch.amp.GradScaler("cpu")``, CPU fp16
autocast), so these tests exercise it on the CPU by adding the CPU to the devices fp16 is allowed on.
"""

from __future__ import annotations

import json

import pytest
from conftest import assert_same_run, tiny_recipe

from polymodal import api
from polymodal.errors import ConfigError
from polymodal.training import precision, steps


class Crash(Exception):
    pass


def test_fp16_on_the_cpu_is_one_line_that_says_what_to_use(manifest, tmp_path):
    with pytest.raises(ConfigError) as e:
        api.train(tiny_recipe(manifest, precision="fp16", device="cpu", epochs=1), tmp_path / "run")
    assert "fp16 trains on a CUDA GPU" in str(e.value) and "use precision: bf16 or auto" in str(e.value)
    assert "\n" not in str(e.value)


def test_the_scaler_state_is_checkpointed_and_a_killed_fp16_run_resumes_exactly(manifest, tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "FP16_DEVICES", ("cuda", "cpu"))
    # A first scale this large overflows fp16 gradients: the scaler skips steps and halves it until they fit, so
    # the scale a killed run had reached differs from a fresh scaler's and a resume that lost it would diverge.
    monkeypatch.setattr(steps, "INIT_SCALE", 2.0**30)
    raw = tiny_recipe(manifest, precision="fp16", device="cpu", epochs=2, checkpoint_every=5)
    taken = []

    def crash_after_seven(event: str, **info: object) -> None:
        if event == "batch":
            taken.append(1)
            if len(taken) == 7:
                raise Crash

    with pytest.raises(Crash):
        api.train(raw, tmp_path / "killed", callback=crash_after_seven)
    latest = (tmp_path / "killed" / "checkpoints" / "latest").read_text().strip()
    state = json.loads((tmp_path / "killed" / "checkpoints" / latest / "state.json").read_text())
    scale = state["extra"]["grad_scaler"]["scale"]
    assert scale < 2.0**30
    api.train(None, tmp_path / "killed", resume=True)
    api.train(raw, tmp_path / "straight")
    assert_same_run(tmp_path / "killed", tmp_path / "straight")
    record = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    assert 0 < record["data_wait_seconds"] < record["step_seconds"]  # the part of each step spent waiting for data
