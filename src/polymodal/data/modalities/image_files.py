"""Image files as people have them, brought to plain 8-bit greyscale or RGB.

- SVG (and gzipped .svgz) rasterised by cairosvg straight at the transform's size, so a huge declared size never
  allocates a huge canvas;
- EXIF orientation applied, so a phone photo stored sideways comes back upright;
- alpha (RGBA, LA, PA) and transparency keys (palette, greyscale, RGB PNGs) composited onto a background colour;
- 16-bit and 32-bit greyscale (I;16, I, F) stretched from their own min..max to 0..255 instead of clipped;
- CMYK and every other Pillow mode converted by Pillow.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageColor, ImageOps, UnidentifiedImageError

from polymodal.errors import DataError

# What Pillow raises on a damaged file: OSError for most, SyntaxError from the PNG plugin ("broken PNG file"),
# ValueError, EOFError, struct.error and zlib.error from the decoders (found by the fuzz campaign).
PIL_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)

SVG_SUFFIXES = (".svg", ".svgz")
# Modes whose samples do not fit in 8 bits: Pillow's convert("L") clips them at 255 instead of scaling.
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def check_colour(value: str) -> str:
    """``value`` unchanged if it names a colour (a recipe validator: a typo fails when the recipe is read)."""
    parse_colour(value)
    return value


def parse_colour(value: str) -> tuple[int, int, int]:
    """An RGB triple from a colour name or ``#rgb``/``#rrggbb``/``rgb(...)`` text (Pillow's colour syntax)."""
    try:
        rgb = ImageColor.getrgb(value)
    except ValueError:
        raise ValueError(f"not a colour: {value!r}; use a name such as white or black, or #rrggbb") from None
    return rgb[0], rgb[1], rgb[2]


def is_svg(path: Path) -> bool:
    """By suffix, else by content: uploads and hashed file names may carry no suffix."""
    if path.suffix.lower() in SVG_SUFFIXES:
        return True
    with path.open("rb") as f:
        head = f.read(1024).lstrip()
    return head.startswith((b"<svg", b"<?xml")) and b"<svg" in head


def rasterise_svg(path: Path, size: int, max_pixels: int) -> Image.Image:
    """An RGBA ``size``×``size`` rendering of the SVG, stretched like a raster image would be by the resize."""
    if size * size > max_pixels:
        raise DataError(f"SVG {path}: a {size}×{size} rendering is over max_pixels={max_pixels}; raise max_pixels")
    try:
        from cairosvg.parser import Tree
        from cairosvg.surface import PNGSurface
    except (ImportError, OSError) as exc:  # OSError: cairocffi imports but finds no libcairo
        raise DataError(
            f"cannot read SVG {path}: {exc}; install cairosvg (pip install 'polymodal[svg]') and the cairo "
            "library (Debian/Ubuntu: apt-get install libcairo2)"
        ) from None
    try:
        # unsafe=False: no XML entities, no external files or URLs (only data: URLs), at most 100k references.
        tree = Tree(bytestring=path.read_bytes(), unsafe=False)
        # The root viewport is size×size; "none" maps the drawing onto all of it, as the raster resize does.
        tree["preserveAspectRatio"] = "none"
        out = io.BytesIO()
        PNGSurface(tree, out, 96, output_width=size, output_height=size).finish()
    except Exception as exc:  # cairosvg raises XML, value and cairo errors alike for a broken file
        reason = str(exc).replace("\n", " ")
        raise DataError(f"cannot rasterise SVG {path}: {reason}; check that it opens in a browser") from None
    with Image.open(io.BytesIO(out.getvalue())) as img:
        img.load()
        return img.copy()


def upright(img: Image.Image) -> Image.Image:
    """The image as its EXIF orientation tag says to show it (unchanged without the tag)."""
    return ImageOps.exif_transpose(img) if img.getexif().get(ExifTags.Base.Orientation, 1) != 1 else img


def flatten(img: Image.Image, mode: str, background: tuple[int, int, int]) -> Image.Image:
    """``img`` as 8-bit ``mode`` ("L" or "RGB"), transparent parts showing ``background``."""
    if img.mode in WIDE_MODES:
        img = stretch_to_8bit(img)
    if img.mode in ALPHA_MODES or "transparency" in img.info:
        # Straight to RGBA: converting a palette image with a transparency key to L or RGB warns and drops it.
        base = Image.new("RGBA", img.size, (*background, 255))
        img = Image.alpha_composite(base, img.convert("RGBA"))
    return img if img.mode == mode else img.convert(mode)


def stretch_to_8bit(img: Image.Image) -> Image.Image:
    """A wide greyscale image as L, its own min..max mapped to 0..255 (a 12-bit scan stored in 16 bits uses its
    full range, not a sixteenth of it); a transparency key becomes an alpha channel (LA)."""
    arr = np.asarray(img, dtype=np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.clip(arr, 0, 255)  # flat image: nothing to stretch
    grey = Image.fromarray(np.rint(scaled).astype(np.uint8), "L")
    key = img.info.get("transparency")
    if isinstance(key, int):
        alpha = Image.fromarray(np.where(arr == key, 0, 255).astype(np.uint8), "L")
        grey = Image.merge("LA", (grey, alpha))
    return grey
