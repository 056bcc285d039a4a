"""The first pass over a table's files in a process pool gives the same examples, and the same bad rows, as one
process does."""

from __future__ import annotations

import torch
from conftest import tiny_recipe, write_manifest
from PIL import Image

from polymodal import api
from polymodal.data.cache import FeatureCache
from polymodal.data.dataset import build_data
from polymodal.data.modalities.image import ImageTransform
from polymodal.data.prepare import file_cells, prefill


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
    assert prefill({"image": cells[:4]}, transforms, cache, 2) == 0  # too few files to start processes for
