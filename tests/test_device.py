"""trainer.device: auto picks what the machine has, a device it lacks is one line, and training runs there."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_recipe

from polymodal import api
from polymodal.errors import ConfigError
from polymodal.training.distributed import Dist, resolve_device

HAS_CUDA = torch.cuda.is_available()


def test_resolution_follows_what_the_machine_has(monkeypatch):
    # Isolates the rule: what torch reports about the machine is replaced, nothing else.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(ConfigError, match=r"has 2 CUDA device\(s\) \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ConfigError) as e:
        resolve_device("cuda")
    assert "no CUDA device" in str(e.value) and "use device: auto or cpu" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")
def test_auto_is_the_cpu_here_and_cuda_is_refused_before_anything_is_written(manifest, tmp_path):
    assert resolve_device("auto") in ("cpu", "mps")
    with pytest.raises(ConfigError, match="trainer.device: cuda, but this machine has no CUDA device"):
        api.train(tiny_recipe(manifest, device="cuda"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_an_unknown_device_name_is_a_recipe_error(manifest, tmp_path):
    with pytest.raises(ConfigError) as e:
        api.load_recipe(tiny_recipe(manifest, device="gpu"))
    assert "trainer.device" in str(e.value) and "\n" not in str(e.value)


def test_a_single_process_moves_the_model_to_its_device():
    model = torch.nn.Linear(3, 2)
    assert Dist(device_name="cpu").wrap(model) is model and Dist().device == torch.device("cpu")
    assert Dist(device_name="cuda:1").device == torch.device("cuda", 1)
    assert Dist(backend="nccl", local_rank=3, world_size=4).device == torch.device("cuda", 3)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_training_on_the_gpu_matches_the_cpu(manifest, tmp_path):
    cpu = api.train(tiny_recipe(manifest, epochs=3, device="cpu"), tmp_path / "cpu")
    gpu = api.train(tiny_recipe(manifest, epochs=3, device="cuda"), tmp_path / "gpu")
    assert abs(cpu.test["accuracy"] - gpu.test["accuracy"]) <= 0.1  # same data and seed; kernels differ
    assert api.load(tmp_path / "gpu").predict_batch([{"image": None, "audio": None}], empty_ok=True)


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")
def test_predict_and_evaluate_take_a_device_and_refuse_one_the_machine_lacks(trained_run, capsys):
    from conftest import one_error_line, run_cli

    p = api.load(trained_run, "predict", device="cpu")
    assert p.device == torch.device("cpu") and next(p.model.parameters()).device == p.device
    with pytest.raises(ConfigError, match="no CUDA device"):
        api.load(trained_run, "predict", device="cuda")
    with pytest.raises(ConfigError, match="no CUDA device"):
        api.evaluate(trained_run, device="cuda:0")
    code, _, err = run_cli(capsys, "predict", trained_run, "--device", "cuda", "--image", "x.png")
    assert "no CUDA device" in one_error_line(code, err)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_a_cpu_trained_run_predicts_and_evaluates_on_the_gpu_as_on_the_cpu(trained_run):
    rows = [{"image": None, "audio": None}]
    cpu, gpu = api.load(trained_run, device="cpu"), api.load(trained_run, device="cuda")
    pc, pg = cpu.predict_batch(rows, empty_ok=True)[0], gpu.predict_batch(rows, empty_ok=True)[0]
    assert pc["label"] == pg["label"]
    assert all(abs(pc["probabilities"][k] - pg["probabilities"][k]) < 1e-3 for k in pc["probabilities"])
    ec, eg = api.evaluate(trained_run, device="cpu"), api.evaluate(trained_run, device="cuda")
    assert ec["accuracy"] == eg["accuracy"] and abs(ec["loss"] - eg["loss"]) < 1e-3


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_fp16_with_its_scaler_and_bf16_train_on_the_gpu(manifest, tmp_path):
    fp32 = api.train(tiny_recipe(manifest, epochs=3, device="cuda"), tmp_path / "fp32")
    for precision in ("fp16", "bf16"):
        run = api.train(tiny_recipe(manifest, epochs=3, device="cuda", precision=precision), tmp_path / precision)
        assert abs(run.test["accuracy"] - fp32.test["accuracy"]) <= 0.15  # rounding, not a different model
