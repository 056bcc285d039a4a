"""Manifest tables in every supported format, and the one download path (pinned URL + sha256)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pandas as pd
import pytest

from polymodal.data.datasets.common import fetch
from polymodal.data.table import Table, read_table
from polymodal.errors import DataError

FRAME = pd.DataFrame({"image": ["a.png", "b.png"], "text": ["x", ""], "label": [1, 2]})


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_formats_round_trip(tmp_path, suffix):
    p = tmp_path / f"t{suffix}"
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
        FRAME.to_parquet(p)
    elif suffix == ".jsonl":
        FRAME.to_json(p, orient="records", lines=True)
    else:
        FRAME.to_csv(p, sep="\t" if suffix == ".tsv" else ",", index=False)
    got = read_table(p)
    assert list(got.columns) == ["image", "text", "label"] and got["label"].tolist() == [1, 2]


def test_table_errors(tmp_path):
    with pytest.raises(DataError, match="table not found"):
        read_table(tmp_path / "none.csv")
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(DataError, match="unsupported extension"):
        read_table(tmp_path / "t.xlsx")
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(DataError, match="cannot read table"):
        read_table(tmp_path / "bad.jsonl")
    with pytest.raises(DataError, match=r"no column 'img' \(columns: image, text, label\)"):
        Table(FRAME, "label").require(["img"], "table t.csv")


@pytest.fixture
def server(tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "data.txt").write_bytes(b"real bytes\n" * 100)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(tmp_path / "www"), **kw)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_fetch_verifies_sha256_before_saving(server, tmp_path):
    good = hashlib.sha256(b"real bytes\n" * 100).hexdigest()
    dest = tmp_path / "out" / "data.txt"
    assert fetch(f"{server}/data.txt", good, dest).read_bytes() == b"real bytes\n" * 100
    other = tmp_path / "out" / "other.txt"
    with pytest.raises(DataError, match="sha256"):
        fetch(f"{server}/data.txt", "0" * 64, other)
    assert not other.exists() and not list(Path(tmp_path / "out").glob(".*"))
    with pytest.raises(DataError, match="cannot download"):
        fetch(f"{server}/missing.txt", good, tmp_path / "out" / "m.txt")


def test_only_file_cells_are_resolved_against_the_table_folder(tmp_path):
    """A relative path in an image column is a file next to the table; a text cell is the text itself (it used
    to become '/folder/red apple', whose path tokens then filled a text encoder's max_length)."""
    import numpy as np

    from polymodal.config import InputSpec
    from polymodal.data.dataset import input_cells

    frame = pd.DataFrame({"image": ["a.png"], "caption": ["red apple"]})
    rows = np.arange(1)
    image = input_cells(frame, InputSpec(name="image", modality="image", column="image"), rows, tmp_path)
    text = input_cells(frame, InputSpec(name="caption", modality="text", column="caption"), rows, tmp_path)
    assert image == [str(tmp_path / "a.png")] and text == ["red apple"]
