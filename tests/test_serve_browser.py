"""The demo page end to end in headless Chromium: pick an image and a recording, press Predict, read the page."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("no chromium: install it (apt-get install chromium) to test the demo page", allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[serve]'")
pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")

from playwright.sync_api import sync_playwright  # noqa: E402
from test_serve import Running  # noqa: E402

from polymodal import api  # noqa: E402
from polymodal.serve import create_app  # noqa: E402

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_demo_page_predicts_an_uploaded_digit_and_draws_its_saliency(trained_run, manifest):
    image, audio = manifest.parent / "2_5.png", manifest.parent / "2_5.wav"  # a real MNIST 2 and its recording
    want = api.load(trained_run).predict(image=str(image), audio=str(audio))
    with Running(create_app(trained_run)) as server, sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        browser = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=FLAGS, timeout=60_000
        )
        try:
            page = browser.new_page()
            page.goto(server.url + "/")
            page.wait_for_selector("#form:not([hidden])")
            page.set_input_files("#input-image", str(image))
            page.set_input_files("#input-audio", str(audio))
            page.click("#predict")
            page.wait_for_selector("#result[data-done='1']", timeout=30_000)
            assert page.inner_text("#error") == ""
            assert page.inner_text("#label") == want["label"] == "d2"
            bars = page.query_selector_all("#probs .row")
            assert [b.get_attribute("data-class") for b in bars] == ["d0", "d1", "d2"]
            shown = [float(b.query_selector(".value").inner_text()) for b in bars]
            assert shown == pytest.approx([want["probabilities"][c] for c in ("d0", "d1", "d2")], abs=1e-3)
            assert page.get_attribute("#probs .row.top", "data-class") == "d2"
            # The image canvas shows the digit with the red saliency map drawn over it.
            page.wait_for_selector("#map-image[data-ready='1']")
            rgba = page.evaluate(
                "() => { const c = document.getElementById('map-image');"
                " return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }"
            )
            px = np.asarray(rgba, dtype=np.float32).reshape(-1, 4)
            redness = px[:, 0] - px[:, 2]
            assert (redness > 60).mean() > 0.02  # saliency overlay present
            assert (px[:, :3].max(1) < 40).mean() > 0.2  # the black MNIST background shows through
            assert page.query_selector("#map-audio") is not None
            # Leaving the recording out: the page reports it missing and still predicts from the image.
            page.set_input_files("#input-audio", [])
            page.evaluate("document.getElementById('result').dataset.done = ''")
            page.click("#predict")
            page.wait_for_selector("#result[data-done='1']")
            assert "audio" in page.inner_text("#missing")
            # A file that is not an image: the page shows the server's one-line error.
            page.set_input_files("#input-image", {"name": "x.png", "mimeType": "image/png", "buffer": b"not a png"})
            page.click("#predict")
            page.wait_for_function("document.getElementById('error').textContent.length > 0")
            assert page.inner_text("#error").startswith("422: input 'image'")
        finally:
            browser.close()


def test_chat_panel_answers_about_dropped_files_and_shows_errors(assistant_run, tmp_path):
    """An assistant run's page: pick a real PNG and WAV, ask, read the streamed answer (the same greedy answer the
    Python chat gives); a typed special token and a file of the wrong kind are one-line errors, and the chat goes
    on with its history (the second answer matches a Python chat that had the first turn)."""
    from conftest import mnist_digits
    from PIL import Image

    run, folder = assistant_run
    image, audio = tmp_path / "five.png", next((folder / "fsdd" / "recordings").glob("5_*"))
    Image.fromarray(mnist_digits(5, 1)[0]).save(image)
    expected = api.load(run, "chat").chat()
    expected.attach("image", str(image))
    expected.attach("audio", str(audio))
    first = "".join(expected.ask("What is their sum?"))
    second = "".join(expected.ask("Which is larger?"))
    with Running(create_app(run)) as server, sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        browser = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=FLAGS, timeout=60_000
        )
        try:
            page = browser.new_page()
            page.goto(server.url + "/")
            page.wait_for_selector("#chat:not([hidden])")
            assert page.is_hidden("#form")
            page.set_input_files("#chat-file", [str(image), str(audio)])
            assert "image: five.png" in page.inner_text("#attached") and audio.name in page.inner_text("#attached")
            page.fill("#message", "What is their sum?")
            page.click("#send")
            page.wait_for_selector(".turn.answer[data-done='1']", timeout=30_000)
            assert page.inner_text(".turn.answer") == first and page.inner_text("#error") == ""
            page.fill("#message", "What is <image>?")
            page.click("#send")
            page.wait_for_function("document.getElementById('error').textContent.length > 0")
            assert page.inner_text("#error").startswith("422:") and "special token" in page.inner_text("#error")
            page.fill("#message", "Which is larger?")
            page.click("#send")
            page.wait_for_function("document.querySelectorAll(\".turn.answer[data-done='1']\").length == 2")
            assert page.query_selector_all(".turn.answer")[1].inner_text() == second
            assert page.inner_text("#error") == ""
            # A WAV's bytes under an image's name: the server reads it as an image and refuses it in one line.
            page.set_input_files("#chat-file", {"name": "x.png", "mimeType": "image/png", "buffer": audio.read_bytes()})
            page.fill("#message", "What digit is written?")
            page.click("#send")
            page.wait_for_function("document.getElementById('error').textContent.length > 0")
            assert page.inner_text("#error").startswith("422:") and "image" in page.inner_text("#error")
            assert len(page.query_selector_all(".turn.answer")) == 2
        finally:
            browser.close()
