"""Image files as people have them: SVG, transparency, EXIF rotation, 16-bit greyscale, CMYK (issue 14).

Each test writes a real file (mostly an MNIST digit: ink 255 on background 0) and checks pixels after the transform.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from polymodal.config import parse_inputs
from polymodal.data.datasets.mnist import mnist_arrays
from polymodal.data.modalities.image import ImageTransform
from polymodal.errors import ConfigError, DataError


def digit() -> np.ndarray:
    """A real MNIST digit, (28, 28) uint8, that is not symmetric under a quarter turn."""
    return mnist_arrays()[0][0]


def pixels(t: ImageTransform, value) -> np.ndarray:
    """The transform's output back on the 0..255 scale, (H, W) or (H, W, C)."""
    x = (t(value) * t.std + t.mean) * 255
    return x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()


def grey(size: int = 28, max_pixels: int = 10**7, **kw) -> ImageTransform:
    return ImageTransform(size, 1, 0.5, 0.5, max_pixels, **kw)


def cairo_or_skip() -> None:
    try:
        import cairosvg  # noqa: F401
    except (ImportError, OSError) as exc:  # .ci/run installs libcairo2; the Makefile installs the svg extra
        pytest.skip(f"cairosvg cannot run here ({exc}); pip install 'polymodal[svg]', apt-get install libcairo2")


def test_rgba_png_transparent_background_becomes_white_or_the_chosen_colour(tmp_path):
    ink = digit()
    rgba = np.zeros((28, 28, 4), np.uint8)  # black strokes whose alpha is the digit's ink, the rest transparent
    rgba[..., 3] = ink
    p = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(p)
    out = pixels(grey(), str(p))
    assert np.abs(out - (255 - ink.astype(np.float32))).max() <= 1  # black ink on white, nothing lost
    red = pixels(ImageTransform(28, 3, 0.5, 0.5, 10**7, background="#ff0000"), str(p))
    assert np.allclose(red[ink == 0], [255, 0, 0], atol=1)
    # LA (greyscale + alpha) goes the same way.
    Image.fromarray(rgba[..., 2:], "LA").save(p)
    assert np.abs(pixels(grey(), str(p)) - (255 - ink.astype(np.float32))).max() <= 1


def test_palette_png_with_transparency_key_composites_without_a_pillow_warning(tmp_path):
    ink = digit()
    index = np.select([ink > 170, ink > 0], [1, 2], 0).astype(np.uint8)  # 0 paper, 1 stroke, 2 stroke edge
    p = tmp_path / "palette.png"
    img = Image.fromarray(index, "P")
    img.putpalette([0, 0, 0, 0, 0, 255, 255, 0, 0] + [0, 0, 0] * 253)  # black paper, blue stroke, red edge
    img.save(p, transparency=bytes([0, 255, 128]))  # paper transparent, edge half: Pillow reads it back as bytes
    assert isinstance(Image.open(p).info["transparency"], bytes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's "Transparency expressed in bytes" warning would fail here
        out = pixels(ImageTransform(28, 3, 0.5, 0.5, 10**7), str(p))
    assert np.allclose(out[index == 0], 255, atol=1)  # the transparent black paper shows the white background
    assert np.allclose(out[index == 1], [0, 0, 255], atol=1)
    assert np.allclose(out[index == 2], [255, 127, 127], atol=2)  # half red over white
    # One fully transparent index (Pillow reads it as an int key), in greyscale: the paper is white too.
    img.save(p, transparency=0)
    assert Image.open(p).info["transparency"] == 0
    assert np.allclose(pixels(grey(), str(p))[index == 0], 255, atol=1)


@pytest.mark.parametrize("mode", ["L", "RGB", "I;16"])
def test_colour_key_transparency_of_greyscale_rgb_and_16bit_pngs_shows_the_background(tmp_path, mode):
    ink = digit()
    p = tmp_path / f"key-{mode}.png"
    paper = {"L": 0, "RGB": (0, 0, 0), "I;16": 0}[mode]  # the digit's paper is the transparency key
    img = Image.fromarray(ink.astype(np.uint16) * 16) if mode == "I;16" else Image.fromarray(ink).convert(mode)
    img.save(p, transparency=paper)
    assert Image.open(p).mode == mode and "transparency" in Image.open(p).info
    out = pixels(grey(background="#808080"), str(p))
    assert np.allclose(out[ink == 0], 128, atol=1) and out[ink == 255].min() >= 254


def test_exif_orientation_brings_a_sideways_jpeg_back_upright(tmp_path):
    upright = digit()
    p = tmp_path / "sideways.jpg"
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # stored turned a quarter left
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation 6: a viewer turns it a quarter right to show it
    stored.save(p, quality=95, exif=exif)
    out = pixels(grey(), str(p))
    assert np.abs(out - upright).mean() < 4  # JPEG noise only
    assert np.abs(np.asarray(stored, np.float32) - upright).mean() > 20  # the tag mattered: unrotated is far off


def test_16bit_greyscale_png_is_scaled_by_its_range_not_clipped(tmp_path):
    ink = digit().astype(np.uint16)
    p = tmp_path / "deep.png"
    Image.fromarray(ink * 16).save(p)  # a 12-bit scan in a 16-bit PNG: 0..4080
    assert Image.open(p).mode == "I;16"
    out = pixels(grey(), str(p))
    assert np.abs(out - ink).max() <= 1  # convert("L") alone would clip every ink pixel above 15 to white
    # Mode I (32-bit) as Pillow gives for some TIFFs and older PNG readers: the same stretch.
    assert np.abs(pixels(grey(), Image.fromarray(ink.astype(np.int32) * 16 + 1000)) - ink).max() <= 1


def test_cmyk_jpeg_converts_to_the_right_colours(tmp_path):
    p = tmp_path / "cmyk.jpg"
    cmyk = np.zeros((28, 28, 4), np.uint8)
    cmyk[:, :14] = (0, 255, 255, 0)  # pure red
    cmyk[:, 14:] = (255, 255, 0, 0)  # pure blue
    Image.fromarray(cmyk, "CMYK").save(p, quality=95)
    assert Image.open(p).mode == "CMYK"
    out = pixels(ImageTransform(28, 3, 0.5, 0.5, 10**7), str(p))
    assert np.allclose(out[4:24, 2:10], [255, 0, 0], atol=8) and np.allclose(out[4:24, 18:26], [0, 0, 255], atol=8)


SVG = """<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 20 10">
  <rect x="0" y="0" width="10" height="10" fill="black"/>
</svg>"""


def test_svg_rasterised_at_the_target_size_with_a_white_background(tmp_path):
    cairo_or_skip()
    p = tmp_path / "half.svg"
    p.write_text(SVG.format(w=200_000, h=100_000))  # declares 20 billion pixels; drawn at 28×28 only
    out = pixels(grey(max_pixels=1000), str(p))
    assert out.shape == (28, 28)
    assert np.allclose(out[:, :13], 0, atol=1) and np.allclose(out[:, 15:], 255, atol=1)  # left black, right white
    # Found by content too (an upload or a hashed file name may have no .svg suffix), in colour.
    q = tmp_path / "upload.bin"
    q.write_text(SVG.format(w=20, h=10))
    rgb = pixels(ImageTransform(32, 3, 0.5, 0.5, 10**7, background="lime"), str(q))
    assert rgb.shape == (32, 32, 3) and np.allclose(rgb[:, 20:], [0, 255, 0], atol=1)


def test_svg_errors_are_one_line_and_say_what_to_do(tmp_path, monkeypatch):
    cairo_or_skip()
    p = tmp_path / "broken.svg"
    p.write_text("<svg xmlns='http://www.w3.org/2000/svg'><rect")
    with pytest.raises(DataError, match=r"^cannot rasterise SVG .*broken\.svg.*browser$") as e:
        grey()(str(p))
    assert "\n" not in str(e.value)
    p.write_text(SVG.format(w=20, h=10))
    with pytest.raises(DataError, match="max_pixels"):
        grey(max_pixels=100)(str(p))  # even 28×28 is over this limit
    # Without cairosvg installed (a None entry makes its import fail, as an absent package does).
    monkeypatch.setitem(sys.modules, "cairosvg.parser", None)
    with pytest.raises(DataError, match=r"pip install 'polymodal\[svg\]'.*libcairo2") as e:
        grey()(str(p))
    assert "\n" not in str(e.value)


def test_background_key_is_validated_and_changes_the_cache_key():
    white, black = grey(), grey(background="black")
    assert white.settings() != black.settings()
    assert grey(background="#FFFFFF").settings() == white.settings()  # same colour, same cached tensors
    [spec] = parse_inputs([{"name": "img", "modality": "image", "encoder": "image_cnn", "preprocessing": {}}])
    assert spec.preprocessing.background == "white"
    with pytest.raises(ConfigError, match=r"inputs\.img\.preprocessing\.background.*#rrggbb"):
        parse_inputs(
            [{"name": "img", "modality": "image", "encoder": "image_cnn", "preprocessing": {"background": "whte"}}]
        )
    # A plain 8-bit digit (no alpha) is untouched by the background colour.
    assert torch.equal(white(digit()), black(digit()))


def test_an_image_far_longer_than_wide_is_refused_before_decoding(tmp_path):
    """A 1×100000 PNG (a few hundred bytes) was accepted and squeezed into a square; now one DataError line."""
    strip = tmp_path / "strip.png"
    Image.new("L", (100_000, 1), 255).save(strip)
    t = ImageTransform(28, 1, 0.5, 0.5, 40_000_000)
    with pytest.raises(DataError, match=r"strip.png is 100000×1 pixels, an aspect ratio over 100:1; crop it"):
        t(str(strip))
    with pytest.raises(DataError, match="aspect ratio over 100:1"):
        t(np.zeros((1, 500), np.uint8))
    Image.new("L", (2000, 40), 255).save(tmp_path / "wide.png")  # 50:1 is still a picture (a banner)
    assert t(str(tmp_path / "wide.png")).shape == (1, 28, 28)
