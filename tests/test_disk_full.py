"""A write the file system refuses for space is one line naming the folder, and what was written before stays.

The refusal is real, not mocked: a child process runs under ``RLIMIT_FSIZE`` (with SIGXFSZ ignored), so the
kernel fails its writes past the limit with EFBIG, as a full disk fails them with ENOSPC.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml
from conftest import tiny_recipe

LIMITED = """
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, resource.RLIM_INFINITY))
"""


def run_limited(code: str, limit: int, cwd: Path) -> subprocess.CompletedProcess:
    script = LIMITED.format(limit=limit) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_a_checkpoint_refused_for_space_keeps_the_last_complete_one(tmp_path):
    root = tmp_path / "run" / "checkpoints"
    code = f"""
        import torch
        from pathlib import Path
        from polymodal.errors import DiskFull
        from polymodal.training.checkpoint import save_checkpoint, load_checkpoint
        root = Path({str(root)!r})
        model = torch.nn.Linear(64, 64)
        try:
            save_checkpoint(root, 2, model, None, {{"epoch": 1}})
        except DiskFull as exc:
            print("DISKFULL", exc)
        fresh = torch.nn.Linear(64, 64)
        load_checkpoint(root, fresh, None)
        print("LOADED", torch.equal(fresh.weight, saved.weight))
    """
    # The first checkpoint, written with no limit by the same model seed, is the one that must survive.
    first = f"""
        import torch
        from pathlib import Path
        from polymodal.training.checkpoint import save_checkpoint
        torch.manual_seed(0)
        save_checkpoint(Path({str(root)!r}), 1, torch.nn.Linear(64, 64), None, {{"epoch": 0}})
    """
    assert run_limited(first, 1 << 30, tmp_path).returncode == 0
    code = "import torch\ntorch.manual_seed(0)\nsaved = torch.nn.Linear(64, 64)\n" + textwrap.dedent(code)
    out = run_limited(code, 4096, tmp_path)  # the weights (16.6 KB) do not fit
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("DISKFULL cannot write checkpoint step-0000002 in ") and str(root) in lines[0]
    assert "File too large" in lines[0] and "the last complete checkpoint, if any, is kept" in lines[0]
    assert lines[1] == "LOADED True"
    assert (root / "latest").read_text().strip() == "step-0000001"
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step-0000001"]  # no half-written folder left


def test_train_on_a_full_disk_exits_4_with_one_line(tmp_path, manifest):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(manifest, epochs=2)))
    run = tmp_path / "run"
    code = f"""
        from polymodal.cli.main import main
        main(["train", {str(recipe)!r}, "--run-dir", {str(run)!r}])
    """
    out = run_limited(code, 24 * 1024, tmp_path)
    assert out.returncode == 4, out.stderr[-2000:]
    assert out.stderr.count("\n") == 1 and "error: cannot write" in out.stderr and str(run) in out.stderr
    assert "Traceback" not in out.stderr
    assert json.loads((run / "meta.json").read_text())["kind"] == "supervised"  # written before: kept


def test_a_full_disk_only_costs_the_feature_cache_its_entry(tmp_path):
    from conftest import mnist_digits
    from PIL import Image

    Image.fromarray(mnist_digits(3, 1)[0]).save(tmp_path / "three.png")
    code = f"""
        from polymodal.data.cache import FeatureCache
        from polymodal.data.modalities.image import ImageTransform
        cache = FeatureCache({str(tmp_path / "cache")!r})
        x = cache.get_or_compute({str(tmp_path / "three.png")!r}, ImageTransform(28, 1, 0.5, 0.5, 40_000_000))
        print(tuple(x.shape), cache.misses)
    """
    out = run_limited(code, 1024, tmp_path)  # the 28×28 float entry (3.2 KB) does not fit
    assert out.returncode == 0 and out.stdout.split() == ["(1,", "28,", "28)", "1"], out.stderr
    assert "feature cache write failed" in out.stderr and "Traceback" not in out.stderr
    assert not list((tmp_path / "cache").rglob("*.safetensors")) and not list((tmp_path / "cache").rglob(".tmp-*"))
