"""Request values -> the raw values :meth:`RunPredictor.prepare` takes (file paths, arrays, strings, rows).

The model's own transforms do all decoding and preprocessing. This module only turns what arrived over HTTP
into what those transforms already accept, and refuses what a server must not pass on:

- uploaded bytes (a multipart file, or base64 / a data URL in JSON): an image is decoded in memory into the
  PIL image its transform takes, and a ``.npy`` array loaded (no pickle); anything else (WAV/FLAC/OGG, video,
  CSV) is written to a per-request temporary folder (on tmpfs when there is one) and handed over as a path,
  so it is read exactly as files in a table are;
- an image's width × height is read from its header and refused before it is decoded;
- a JSON string is text for a text input and base64 for a file input, never a server-side path;
- JSON arrays of numbers become numpy arrays (a uint8 image (H, W[, C]), a waveform, an MFCC or sensor table).
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from polymodal.data.arrays import MAX_IMAGE_ELEMENTS, MAX_SERIES_ELEMENTS, check_finite, list_shape
from polymodal.data.arrays import load_npy as load_checked_npy
from polymodal.data.modalities.audio import MAX_SAMPLE_RATE, MAX_SECONDS
from polymodal.data.modalities.image import check_pixel_array
from polymodal.data.modalities.image_files import PIL_ERRORS
from polymodal.errors import DataError
from polymodal.serve.limits import PayloadTooLarge, RequestError

FILE_MODALITIES = frozenset({"image", "audio", "video"})

# What each modality accepts, shown by /metadata and in error messages.
ACCEPTS = {
    "image": "a file (PNG/JPEG/WebP/BMP), base64 or a data URL, or a JSON array (H, W[, C]) of 0-255 numbers",
    "audio": "a file (WAV/FLAC/OGG, or .npy features), base64, or a JSON array: waveform (samples,) or (frames, F)",
    "video": "a file (MP4/WebM/AVI/MKV/MOV) or base64",
    "text": "a string",
    "timeseries": "a JSON array (time, channels) of numbers, an object of such streams, or a .npy/.csv file",
    "tabular": "a JSON object {column: value}",
}

# Leading bytes -> file suffix: the readers pick .npy features and video containers by suffix.
MAGIC = [
    (b"\x93NUMPY", ".npy"),
    (b"\x1a\x45\xdf\xa3", ".webm"),
    (b"\x89PNG", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"RIFF", ".wav"),
    (b"fLaC", ".flac"),
    (b"OggS", ".ogg"),
]
# A RAM-backed folder for uploads that must be files: on a busy disk a temporary folder costs milliseconds.
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
# Numbers a JSON array may hold per modality, checked on the nested lists' shape before numpy copies them.
MAX_ELEMENTS = {
    "image": MAX_IMAGE_ELEMENTS,
    "timeseries": MAX_SERIES_ELEMENTS,
    "audio": MAX_SECONDS * MAX_SAMPLE_RATE,  # what a file's reader would decode at most
}
DATA_URL = re.compile(r"^data:[\w.+-]+/[\w.+-]+(;[\w-]+=[\w.-]+)*;base64,")


def sniff_suffix(data: bytes, filename: str | None) -> str:
    """A file suffix for uploaded bytes: the upload's own, else one guessed from the leading bytes."""
    suffix = Path(filename or "").suffix.lower()
    if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix):
        return suffix
    if data[4:8] == b"ftyp":
        return ".mp4"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return ".avi"
    return next((s for magic, s in MAGIC if data.startswith(magic)), ".bin")


class Uploads:
    """A per-request temporary folder for uploaded bytes; ``close()`` removes it.

    Error messages from the readers name the temporary path; :meth:`clean` puts the upload's name back.
    """

    def __init__(self) -> None:
        self.folder: Path | None = None

    def save(self, name: str, data: bytes, filename: str | None) -> str:
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="polymodal-upload-", dir=SCRATCH))
        (self.folder / name).mkdir()
        stem = re.sub(r"[^\w.-]", "_", Path(filename or "").stem)[:80] or name
        path = self.folder / name / f"{stem}{sniff_suffix(data, filename)}"
        path.write_bytes(data)
        return str(path)

    def clean(self, message: str) -> str:
        """``message`` with each temporary path shortened to the uploaded file's name."""
        return re.sub(re.escape(f"{self.folder}/") + r"[^/]+/", "", message) if self.folder else message

    def close(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


def open_image(name: str, data: bytes, max_pixels: int) -> Image.Image:
    """Uploaded image bytes -> a decoded PIL image, refused from its header alone when over ``max_pixels``
    (``Image.open`` reads the header; no pixel is decoded until ``load``)."""
    try:
        img = Image.open(io.BytesIO(data))
        width, height = img.size
    except Image.DecompressionBombError:
        width = height = None
    except PIL_ERRORS:
        raise DataError(
            f"input '{name}': the uploaded bytes are not an image Pillow can read; send a PNG, JPEG, WebP or BMP file"
        ) from None
    if width is None or width * height > max_pixels:
        size = f"{width}×{height} pixels" if width is not None else "over Pillow's decompression-bomb limit"
        raise PayloadTooLarge(
            f"input '{name}': image is {size}, over the server's limit of {max_pixels:,} pixels; downscale it"
        )
    try:
        img.load()
    except PIL_ERRORS as exc:
        detail = " ".join(str(exc).split())
        raise DataError(
            f"input '{name}': cannot decode the uploaded image ({detail}); send the complete file"
        ) from None
    return img


def load_npy(name: str, data: bytes, modality: str) -> np.ndarray:
    """An uploaded numeric .npy array, its declared shape and dtype checked from the header before loading."""
    limit = MAX_ELEMENTS.get(modality, MAX_SERIES_ELEMENTS)
    arr = load_checked_npy(data, f"input '{name}' (.npy)", limit, f"a {modality} input")
    check_finite(arr, f"input '{name}' (.npy)", "send finite numbers within float32's range")
    return arr


def decode_base64(name: str, text: str) -> bytes:
    try:
        return base64.b64decode(DATA_URL.sub("", text.strip(), count=1), validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(
            f"input '{name}': a string for a file input must be base64 or a data URL; upload the file instead"
        ) from None


def as_array(name: str, value: list, limit: int = MAX_SERIES_ELEMENTS) -> np.ndarray:
    """A JSON array as float32, at most ``limit`` numbers, all finite (1e308 would become inf in float32)."""
    shape = list_shape(value)
    if math.prod(shape) > limit:
        raise PayloadTooLarge(f"input '{name}': the JSON array {shape} has over {limit:,} numbers; downsample it")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise RequestError(f"input '{name}': the JSON array must be numbers of one rectangular shape") from None
    if arr.size == 0:
        raise RequestError(f"input '{name}': the JSON array is empty; leave the input out to mark it missing")
    check_finite(arr, f"input '{name}'", "send finite numbers within float32's range")
    return arr.astype(np.float32)


def to_value(name: str, modality: str, value: Any, uploads: Uploads, max_pixels: int) -> Any:
    """One request value (already JSON-decoded, or uploaded bytes) -> a value the input's transform accepts."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None  # missing: the model predicts from the other inputs
    if isinstance(value, tuple):  # (bytes, filename) from a multipart file part
        data, filename = value
        if modality not in FILE_MODALITIES | {"timeseries"}:
            raise RequestError(f"input '{name}' is {modality}: send it as a form field, not a file")
        if not data:
            raise RequestError(f"input '{name}': the upload is empty; send the file's bytes")
        if modality == "image":
            return open_image(name, data, max_pixels)
        if data.startswith(b"\x93NUMPY"):
            return load_npy(name, data, modality)
        return uploads.save(name, data, filename)
    if modality == "text":
        if not isinstance(value, str):
            raise RequestError(f"input '{name}' is text: send a string")
        return value
    if modality == "tabular":
        if not isinstance(value, dict):
            raise RequestError(f"input '{name}' is tabular: send {ACCEPTS['tabular']}")
        return value
    if isinstance(value, str) and modality in FILE_MODALITIES:
        return to_value(name, modality, (decode_base64(name, value), None), uploads, max_pixels)
    if isinstance(value, list):
        arr = as_array(name, value, MAX_ELEMENTS.get(modality, MAX_SERIES_ELEMENTS))
        if modality == "image":
            if arr.ndim not in (2, 3):
                raise RequestError(f"input '{name}': an image array must be (H, W) or (H, W, C), got {arr.shape}")
            if arr.shape[0] * arr.shape[1] > max_pixels:
                raise PayloadTooLarge(f"input '{name}': image array is over {max_pixels:,} pixels; downscale it")
            check_pixel_array(f"input '{name}'", arr)
        return arr
    if isinstance(value, dict) and modality == "timeseries":
        return {k: as_array(f"{name}.{k}", v) for k, v in value.items()}
    raise RequestError(f"input '{name}' is {modality}: send {ACCEPTS.get(modality, 'a supported value')}")
