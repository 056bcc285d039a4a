"""The first pass over a table's files in a process pool gives the same examples, and the same bad rows, as one
process does."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import tiny_recipe, write_manifest
from PIL import Image

from polymodal import api
from polymodal.data.cache import MIN_ARRAY, FeatureCache
from polymodal.data.dataset import build_data
from polymodal.data.datasets.fsdd import fsdd_dir
from polymodal.data.examples import ExampleDataset
from polymodal.data.modalities.audio import AudioPreprocessing, AudioTransform
from polymodal.data.modalities.image import ImageTransform
from polymodal.data.prepare import file_cells, prefill
from polymodal.data.screening import screen


def test_a_pool_of_two_gives_the_examples_and_bad_rows_one_process_gives(tmp_path):
    manifest = write_manifest(tmp_path / "m", classes=2, per_class=20)
    (manifest.parent / "junk.png").write_bytes(b"not a png")
    manifest.write_text(manifest.read_text() + "junk.png,0_0.wav,d0\n")
    built = {}
    for workers in (0, 2):
        raw = tiny_recipe(manifest)
        raw["data"].update(on_error="skip", prepare_workers=workers, disk_cache_dir=str(tmp_path / f"cache{workers}"))
        built[workers] = build_data(api.load_recipe(raw))
    one, two = built[0], built[2]
    assert one.skipped == two.skipped and len(one.skipped) == 1 and "junk.png" in one.skipped[0]["error"]
    for split in ("train", "val", "test"):
        a, b = one.splits[split], two.splits[split]
        assert len(a) == len(b)
        for i in range(len(a)):
            xa, xb = a.preprocess(i), b.preprocess(i)
            assert all(torch.equal(xa[k], xb[k]) for k in xa)
    assert len(list((tmp_path / "cache2").rglob("*.safetensors"))) == 80  # 40 PNGs + 40 WAVs, once each


def test_prefill_computes_each_distinct_file_once_into_the_cache(tmp_path):
    for i in range(20):
        Image.new("L", (8, 8), color=i * 10).save(tmp_path / f"{i}.png")
    cells = [str(tmp_path / f"{i % 20}.png") for i in range(40)]  # every file twice
    transforms = {"image": ImageTransform(8, 1, 0.5, 0.5, 1_000_000)}
    assert len(file_cells({"image": cells}, transforms)) == 20
    cache = FeatureCache(tmp_path / "cache")
    seen = []
    assert prefill({"image": cells}, transforms, cache, 2, lambda done, total, s: seen.append((done, total))) == 20
    assert seen[-1] == (20, 20) and len(list((tmp_path / "cache").rglob("*.safetensors"))) == 20
    assert prefill({"image": cells}, transforms, None, 2) == 0  # no cache: nothing to warm
    assert prefill({"image": cells[:4]}, transforms, cache, 2) == 4  # too few to start processes for: in this one


def test_with_send_files_the_pool_sends_file_cells_features_back_and_still_writes_their_entries(tmp_path):
    for i in range(20):
        Image.new("L", (8, 8), color=i * 10).save(tmp_path / f"{i}.png")
    cells = [str(tmp_path / f"{i % 20}.png") for i in range(40)]  # every file twice
    transforms = {"image": ImageTransform(8, 1, 0.5, 0.5, 1_000_000)}
    cache = FeatureCache(tmp_path / "cache")
    assert prefill({"image": cells}, transforms, cache, 2, send_files=True) == 20
    assert len(cache.held) == 20 and len(list((tmp_path / "cache").rglob("*.safetensors"))) == 20
    for i in (6, 26):  # a path is known by its text: another string object of the same path is served too
        for entry in (tmp_path / "cache").rglob("*.safetensors"):
            entry.unlink()  # not read back from disk either
        got = cache.get_or_compute("".join(cells[i]), transforms["image"])
        torch.testing.assert_close(got, transforms["image"](cells[i]))
    assert cache.hits == 2 and cache.misses == 0
    cache.release()
    assert prefill({"image": cells}, transforms, cache, 2) == 20 and not cache.held  # the default: disk only


def test_the_screening_pass_runs_one_thread_and_gives_the_features_of_the_reference_computation():
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype(np.float32) for n in (1200, 3000, 5200, 8000, 12000)]
    transform = AudioTransform(**dataclasses.asdict(AudioPreprocessing(n_mels=32, hop_length=80, max_frames=80)))
    ds = ExampleDataset({"audio": waves}, np.zeros(len(waves), dtype=np.int64), {"audio": transform})
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the reference: torch's threads as a run without one_thread has them
    try:
        reference = [transform(w) for w in waves]
        threads, features = [], transform.features_of
        transform.features_of = lambda w, v: (threads.append(torch.get_num_threads()), features(w, v))[1]
        screen(ds, "train", "raise")
        assert threads == [1] * len(waves)
        assert torch.get_num_threads() == 2  # restored after the pass
    finally:
        torch.set_num_threads(before)
    for i, want in enumerate(reference):
        torch.testing.assert_close(ds.preprocess(i)["audio"], want, rtol=1e-5, atol=1e-5)


def test_the_pool_sends_array_cells_features_back_as_the_reference_computation_gives_them(tmp_path):
    rng = np.random.default_rng(1)
    waves = [rng.standard_normal(n).astype(np.float32) for n in rng.integers(1000, 9000, 24)]
    images = [rng.integers(0, 256, (28, 28), dtype=np.uint8) for _ in range(24)]
    transforms = {
        "audio": AudioTransform(**dataclasses.asdict(AudioPreprocessing(n_mels=32, hop_length=80, max_frames=80))),
        "image": ImageTransform(28, 1, 0.5, 0.5, 1_000_000),
    }
    columns = {"audio": waves, "image": images}
    cache = FeatureCache(tmp_path / "cache")
    assert prefill(columns, transforms, cache, 2) == 48
    assert len(cache.held) == 48  # every array cell, long or short
    assert sum(w.size >= MIN_ARRAY for w in waves) > 0
    # No disk entries: a log-mel (or a 28x28 image) costs less than hashing its array and writing the entry.
    assert not transforms["audio"].cache_arrays and not list((tmp_path / "cache").rglob("*.safetensors"))
    for name, cells in columns.items():
        for cell in cells:
            got = cache.get_or_compute(cell, transforms[name])
            torch.testing.assert_close(got, transforms[name](cell), rtol=1e-5, atol=1e-5)
    assert cache.hits == 48  # each served from what the pool sent back
    cache.release()
    assert not cache.held


@pytest.mark.skipif(fsdd_dir(None) is None, reason="needs local FSDD WAVs")
def test_avdigits_hard_gives_the_same_features_with_the_pool_as_in_one_process(tmp_path, monkeypatch):
    built = {}
    for workers in (0, 2):  # 0: every feature computed by the screening pass in this process, as the reference
        monkeypatch.setenv("POLYMODAL_CACHE", str(tmp_path / f"cache{workers}"))
        built[workers] = build_data(api.load_recipe("avdigits_hard", (f"data.prepare_workers={workers}",)))
    for split in ("train", "val", "test"):
        a, b = built[0].splits[split], built[2].splits[split]
        assert len(a) == len(b)
        for i in range(0, len(a), 7):
            xa, xb = a.preprocess(i), b.preprocess(i)
            assert all(torch.allclose(xa[k], xb[k], rtol=1e-5, atol=1e-5) for k in xa)
