"""POST /chat on an assistant run: streamed answers from multipart and JSON requests, history, and every bad
input as a 4xx one-liner after which the server goes on answering."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
import httpx  # noqa: E402
from test_serve import Running  # noqa: E402

from polymodal.serve import create_app  # noqa: E402


@pytest.fixture(scope="module")
def served(assistant_run) -> Iterator[tuple[httpx.Client, Path]]:
    run, folder = assistant_run
    with Running(create_app(run)) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        yield client, folder


def wav(folder: Path, digit: int) -> Path:
    return next((folder / "fsdd" / "recordings").glob(f"{digit}_*"))


def png(folder: Path) -> Path:
    from conftest import mnist_digits
    from PIL import Image

    path = folder / "seven.png"
    if not path.exists():
        Image.fromarray(mnist_digits(7, 1)[0]).save(path)
    return path


def test_chat_streams_an_answer_from_uploaded_files(served):
    client, folder = served
    files = {"audio": ("a.wav", wav(folder, 3).read_bytes()), "image": ("i.png", png(folder).read_bytes())}
    with client.stream("POST", "/chat", data={"message": "What is their sum?"}, files=files) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        pieces = list(r.iter_text())
    streamed = "".join(pieces)
    body = {
        "message": "What is their sum?",
        "audio": base64.b64encode(wav(folder, 3).read_bytes()).decode(),
        "image": "data:image/png;base64," + base64.b64encode(png(folder).read_bytes()).decode(),
        "stream": False,
    }
    r = client.post("/chat", json=body)
    assert r.status_code == 200 and r.json()["answer"] == streamed  # greedy: the same answer both ways
    history = [{"question": "What digit is spoken?", "answer": "3"}] * 40  # more than the window holds
    r = client.post("/chat", json={**body, "history": history})
    assert r.status_code == 200 and r.json()["dropped_turns"] > 0
    assert client.get("/metadata").json()["use"] == "chat"
    assert client.get("/health").json()["use"] == "chat"


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"message": ""}, 422, "empty"),
        ({"message": "What is <image>?"}, 422, "special token"),
        ({"message": "what is it " * 80}, 422, "context holds"),
        ({"message": "hi", "image": "WAV"}, 422, "image"),  # replaced by a WAV's bytes below
        ({"message": "hi", "audio": "PNG"}, 422, "audio"),  # replaced by a PNG's bytes below
        ({"message": "hi", "video": "AAAA"}, 400, "unknown field 'video'"),
        ({"message": "hi", "history": [{"question": 1}]}, 400, "history"),
        ({"question": "hi"}, 400, "unknown field"),
        ({}, 400, "message"),
    ],
)
def test_bad_chat_requests_are_one_line_4xx_and_the_server_goes_on(served, body, status, words):
    client, folder = served
    files = {"WAV": wav(folder, 1), "PNG": png(folder)}
    body = {k: base64.b64encode(files[v].read_bytes()).decode() if v in ("WAV", "PNG") else v for k, v in body.items()}
    r = client.post("/chat", json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert words in error and "\n" not in error and r.json()["request_id"]
    ok = client.post("/chat", json={"message": "Do they match?", "stream": False})
    assert ok.status_code == 200 and isinstance(ok.json()["answer"], str)


def test_other_routes_say_to_use_chat(served):
    client, _ = served
    r = client.post("/predict", json={})
    assert r.status_code == 404 and "POST /chat" in r.json()["error"]
    assert "POST /chat" in json.loads(client.post("/generate", json={"prompt": "x"}).text)["error"]
