"""Fuzzing every registered modality's reader (issue 16): random bytes, mutations of a real file of the modality
(a PNG of a real MNIST digit, a WAV, an H.264 MP4, a .npy and a .csv series), odd in-memory arrays (any shape
and dtype, NaN/inf/±1e308) and odd cells give a tensor of the expected shape or one ``DataError`` line, never
another exception, within the per-example deadline (2 s, tests/conftest.py). Also the server's request-value
conversion (``polymodal.serve.inputs.to_value``) on random JSON values, then the transform, as /predict does.
"""

from __future__ import annotations

import base64
import io
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import mnist_digits, tone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from polymodal.data.modalities.video import moving_digit, write_mp4
from polymodal.errors import DataError, PolymodalError
from polymodal.registry import MODALITIES
from polymodal.serve.inputs import Uploads, to_value

FOLDER = Path(tempfile.mkdtemp(prefix="polymodal-fuzz-"))
CI = settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CAMPAIGN = settings(CI, max_examples=2000, derandomize=False)


def real_files() -> dict[str, bytes]:
    """One real, valid file per reader."""
    buf = io.BytesIO()
    Image.fromarray(mnist_digits(3, 1)[0]).save(buf, format="PNG")
    wav = io.BytesIO()
    sf.write(wav, tone(2, seed=0, seconds=0.3), 8000, format="WAV", subtype="PCM_16")
    mp4 = FOLDER / "digit.mp4"
    write_mp4(mp4, moving_digit(mnist_digits(5, 1)[0], 4), np.zeros(800, np.float32), 8000)
    npy = io.BytesIO()
    np.save(npy, np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32))
    csv = "time,x,y\n" + "".join(f"{i / 10},{math.sin(i)},{math.cos(i)}\n" for i in range(20))
    return {".png": buf.getvalue(), ".wav": wav.getvalue(), ".mp4": mp4.read_bytes(), ".npy": npy.getvalue(),
            ".csv": csv.encode()}  # fmt: skip


REAL = real_files()
# The modality each file suffix is read by, and the transform settings (small, for speed).
READERS = {".png": "image", ".wav": "audio", ".npy": "timeseries", ".csv": "timeseries", ".mp4": "video"}
CONFIG: dict[str, dict[str, Any]] = {
    "image": {"size": 16, "channels": 1},
    "audio": {"n_mels": 16, "n_fft": 128, "hop_length": 64, "max_frames": 20},
    "video": {"num_frames": 3, "size": 16, "channels": 1},
    "text": {"tokenizer": "char", "max_length": 12, "min_frequency": 1},
    "timeseries": {"max_length": 16},
    "tabular": {"categorical": ["parity"]},
}


def transform(modality: str) -> Any:
    t = MODALITIES.build(modality, CONFIG[modality])
    if modality in ("text", "tabular"):  # fitted on real cells, as training would
        t.fit(MODALITIES.get(modality).factory.example_cells(20, FOLDER))
    return t


TRANSFORMS = {name: transform(name) for name in MODALITIES.names()}


def expected_shape(modality: str, x: torch.Tensor) -> bool:
    return {
        "image": lambda: x.shape == (1, 16, 16),
        "audio": lambda: x.ndim == 3 and x.shape[0] == 1 and x.shape[2] == 20,  # F: n_mels, or an array's own
        "video": lambda: x.shape == (3, 1, 16, 16),
        "text": lambda: x.shape == (12,) and x.dtype == torch.int64,
        "timeseries": lambda: x.ndim == 2 and x.shape[0] == 16 and x.shape[1] >= 2,
        "tabular": lambda: x.shape == (len(TRANSFORMS["tabular"].numeric) + 1,),
    }[modality]()


def shown(cell: Any) -> str:
    """The failing cell in an assertion message (hypothesis prints no arguments of the tests' inner lambdas)."""
    if isinstance(cell, np.ndarray):
        return f"array {cell.dtype} {cell.shape} {np.array2string(cell.ravel()[:8])}"
    return repr(cell)[:300]


def tensor_or_data_error(modality: str, cell: Any) -> torch.Tensor | None:
    """The transform's tensor (checked for shape) or None after checking the refusal is one DataError line."""
    try:
        x = TRANSFORMS[modality](cell)
    except Exception as exc:  # noqa: BLE001  the point: anything else is a bug
        assert type(exc) is DataError, f"{modality}: {type(exc).__name__}: {exc} from {shown(cell)}"
        assert str(exc) and "\n" not in str(exc), repr(str(exc))
        return None
    assert isinstance(x, torch.Tensor) and expected_shape(modality, x), (modality, getattr(x, "shape", x))
    return x


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with 1-4 edits: a bit flipped, bytes inserted, a span deleted, or the file cut short."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        if not out:
            break
        i = draw(st.integers(0, len(out) - 1))
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if op == "flip":
            out[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            out[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del out[i : i + draw(st.integers(1, 64))]
        else:
            del out[i:]
    return bytes(out)


def file_cases(suffix: str) -> st.SearchStrategy[bytes]:
    return st.one_of(mutated(REAL[suffix]), st.binary(max_size=300), st.just(REAL[suffix][:40]))


def check_file(suffix: str, data: bytes) -> None:
    path = FOLDER / f"case{suffix}"
    path.write_bytes(data)
    tensor_or_data_error(READERS[suffix], str(path))


def test_the_real_files_read():
    for suffix in READERS:
        assert tensor_or_data_error(READERS[suffix], str(FOLDER.joinpath(f"real{suffix}"))) is None  # missing: refused
        (FOLDER / f"real{suffix}").write_bytes(REAL[suffix])
        assert tensor_or_data_error(READERS[suffix], str(FOLDER / f"real{suffix}")) is not None


@pytest.mark.parametrize("suffix", list(READERS))
def test_random_and_mutated_files_read_or_are_one_data_error(suffix):
    given(file_cases(suffix))(CI(lambda data: check_file(suffix, data)))()


@pytest.mark.slow
@pytest.mark.parametrize("suffix", list(READERS))
def test_campaign_random_and_mutated_files(suffix):
    given(file_cases(suffix))(CAMPAIGN(lambda data: check_file(suffix, data)))()


# In-memory arrays: any dtype a table or a request could hold, shapes with empty and unit sides, and the edges of
# floating point planted in them.
DTYPES = ["uint8", "int16", "int64", "uint64", "float16", "float32", "float64", "bool", "complex64", "<U3", "object"]


@st.composite
def odd_arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=9))
    if dtype.kind == "O":
        return np.array(draw(st.lists(st.one_of(st.integers(), st.text(max_size=3), st.none()), max_size=5)), object)
    arr = draw(hnp.arrays(dtype, shape))
    if arr.size and dtype.kind == "f":
        specials = st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 65504.0])
        for i in draw(st.lists(st.integers(0, arr.size - 1), max_size=3)):
            arr.flat[i] = draw(specials)
    return arr


ARRAY_MODALITIES = ["image", "audio", "timeseries"]  # the ones whose cells may be arrays


def check_cell(modality: str, cell: Any) -> None:
    tensor_or_data_error(modality, cell)


@pytest.mark.parametrize("modality", ARRAY_MODALITIES)
def test_odd_arrays_read_or_are_one_data_error(modality):
    given(odd_arrays())(CI(lambda arr: check_cell(modality, arr)))()


@pytest.mark.slow
@pytest.mark.parametrize("modality", ARRAY_MODALITIES)
def test_campaign_odd_arrays(modality):
    given(odd_arrays())(CAMPAIGN(lambda arr: check_cell(modality, arr)))()


# Other cells: what a table, a Parquet file or a pandas frame can put in a cell.
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=20,
)
cells = st.one_of(
    json_values, st.binary(max_size=40), st.builds(lambda xs: np.array(xs, object), st.lists(json_values))
)
rows = st.dictionaries(st.sampled_from(["ink", "centre", "parity", "other"]), json_values, max_size=4)


@pytest.mark.parametrize("modality", sorted(MODALITIES.names()))
def test_any_cell_reads_or_is_one_data_error(modality):
    given(st.one_of(cells, rows))(CI(lambda cell: check_cell(modality, cell)))()


@pytest.mark.slow
@pytest.mark.parametrize("modality", sorted(MODALITIES.names()))
def test_campaign_any_cell(modality):
    given(st.one_of(cells, rows))(CAMPAIGN(lambda cell: check_cell(modality, cell)))()


# The serve layer: a JSON value (or an upload) -> the transform's value -> the tensor, as POST /predict does it.
def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


request_values = st.one_of(
    json_values,
    st.lists(st.lists(st.floats(), max_size=6), max_size=6),
    st.sampled_from(list(REAL.values())).flatmap(mutated).map(b64),
    st.sampled_from(list(REAL.values())).map(lambda d: "data:application/octet-stream;base64," + b64(d)),
    st.tuples(st.binary(max_size=64), st.one_of(st.none(), st.text(max_size=12))),  # a multipart upload
)


def check_request_value(modality: str, value: Any) -> None:
    uploads = Uploads()
    try:
        try:
            converted = to_value("x", modality, value, uploads, max_pixels=1_000_000)
        except Exception as exc:  # noqa: BLE001
            assert isinstance(exc, PolymodalError), f"{modality}: {type(exc).__name__}: {exc} from {shown(value)}"
            assert "\n" not in str(exc), repr(str(exc))
            return
        if converted is not None:
            tensor_or_data_error(modality, converted)
    finally:
        uploads.close()


@pytest.mark.parametrize("modality", sorted(MODALITIES.names()))
def test_request_values_convert_or_are_one_typed_error(modality):
    for value in ([[1e308, -1e308]], "data:image/png;base64,!!!", (b"\x93NUMPY", "x.npy")):
        check_request_value(modality, value)
    given(request_values)(CI(lambda v: check_request_value(modality, v)))()


@pytest.mark.slow
@pytest.mark.parametrize("modality", sorted(MODALITIES.names()))
def test_campaign_request_values(modality):
    given(request_values)(CAMPAIGN(lambda v: check_request_value(modality, v)))()
