"""The REST server: a real uvicorn server on 127.0.0.1, real HTTP requests, the session's tiny trained run."""

from __future__ import annotations

import base64
import http.client
import io
import json
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install -e '.[serve]'")

import httpx  # noqa: E402

from polymodal import api  # noqa: E402
from polymodal.serve import create_app  # noqa: E402
from polymodal.serve.limits import Limits  # noqa: E402
from polymodal.serve.server import build_server  # noqa: E402


class Running:
    """A uvicorn server for ``app`` in a background thread on a free port of 127.0.0.1 (``options``: more
    :func:`build_server` arguments)."""

    def __init__(self, app, **options) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = build_server(app, "127.0.0.1", self.port, **options)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start(app) -> Iterator[Running]:
    with Running(app) as running:
        yield running


@pytest.fixture(scope="module")
def server(trained_run: Path) -> Iterator[Running]:
    limits = Limits(max_upload_bytes=2 * 2**20, max_image_pixels=4_000_000, max_batch=8)
    yield from start(create_app(trained_run, limits))


@pytest.fixture(scope="module")
def client(server: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def files(manifest: Path) -> dict[str, Path]:
    return {"image": manifest.parent / "1_3.png", "audio": manifest.parent / "1_3.wav"}


def multipart(files: dict[str, Path]) -> dict[str, tuple[str, bytes]]:
    return {k: (p.name, p.read_bytes()) for k, p in files.items()}


def good_request(client: httpx.Client, files: dict[str, Path]) -> None:
    r = client.post("/predict", files=multipart(files))
    assert r.status_code == 200 and r.json()["label"] == "d1", r.text


def bomb_png(width: int, height: int) -> bytes:
    """A complete, valid 1-bit PNG of width×height black pixels (~100 KB for 30000², GBs once decoded).

    Compressing every row would take seconds; instead 100 rows are compressed once and the block repeated:
    after a full flush, deflate refers to no earlier data, so identical chunks give identical bytes.
    """
    rows = (b"\x00" + bytes((width + 7) // 8)) * 100  # each row: filter byte 0, then the packed pixels
    z = zlib.compressobj(9)
    first = z.compress(rows) + z.flush(zlib.Z_FULL_FLUSH)  # zlib header + the block
    block = z.compress(rows) + z.flush(zlib.Z_FULL_FLUSH)
    adler = 1
    for _ in range(height // 100):
        adler = zlib.adler32(rows, adler)
    data = first + block * (height // 100 - 1) + b"\x03\x00" + struct.pack(">I", adler)  # empty final block

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def test_bomb_png_is_a_real_png():
    img = __import__("PIL.Image").Image.open(io.BytesIO(bomb_png(300, 200)))
    img.load()  # decodes every row: the stream and its checksum are valid
    assert img.size == (300, 200) and img.mode == "1" and not np.asarray(img).any()


def test_health_metadata_and_docs(client, trained_run):
    assert client.get("/health").json()["status"] == "ok"
    meta = client.get("/metadata").json()
    assert meta["classes"] == ["d0", "d1", "d2"] and meta["head"] == "classification"
    inputs = {i["name"]: i for i in meta["inputs"]}
    assert {k: (v["modality"], v["dtype"], v["file"]) for k, v in inputs.items()} == {
        "image": ("image", "float32", True),
        "audio": ("audio", "float32", True),
    }
    assert inputs["image"]["shape"] == json.loads((trained_run / "meta.json").read_text())["in_shapes"]["image"]
    spec = client.get("/openapi.json").json()
    form = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["image"]["format"] == "binary"
    assert {"/predict", "/predict/batch", "/health", "/metadata"} <= set(spec["paths"])
    assert "/generate" not in spec["paths"]  # a classifier run: /generate only answers with a 404 that says why
    assert "swagger" in client.get("/docs").text.lower()
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert 'fetch("/metadata")' in client.get("/static/app.js").text


def test_predict_files_matches_the_python_api(client, files, trained_run):
    r = client.post("/predict", files=multipart(files))
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    got = r.json()
    want = api.load(trained_run).predict(image=str(files["image"]), audio=str(files["audio"]))
    assert got["label"] == want["label"] == "d1" and got["missing"] == []
    assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-6)
    assert "explanation" not in got


def test_predict_json_arrays_base64_and_data_urls_agree_with_files(client, files):
    by_file = client.post("/predict", files=multipart(files)).json()
    pixels = np.asarray(__import__("PIL.Image").Image.open(files["image"])).tolist()
    wav = base64.b64encode(files["audio"].read_bytes()).decode()
    png = "data:image/png;base64," + base64.b64encode(files["image"].read_bytes()).decode()
    for body in ({"image": pixels, "audio": wav}, {"image": png, "audio": wav}):
        got = client.post("/predict", json=body).json()
        assert got["label"] == by_file["label"]
        assert got["probabilities"] == pytest.approx(by_file["probabilities"], abs=1e-6)


def test_a_missing_input_is_predicted_from_the_others(client, files):
    out = client.post("/predict", files=multipart({"image": files["image"]})).json()
    assert out["missing"] == ["audio"] and abs(sum(out["probabilities"].values()) - 1) < 1e-5
    out = client.post("/predict", json={"image": None, "audio": base64.b64encode(files["audio"].read_bytes()).decode()})
    assert out.json()["missing"] == ["image"]


def test_explain_returns_a_saliency_map_per_input(client, files):
    out = client.post("/predict?explain=1", files=multipart(files)).json()
    assert out["label"] == "d1"
    image = np.asarray(out["explanation"]["image"]["map"])
    audio = np.asarray(out["explanation"]["audio"]["map"])
    assert image.shape == (28, 28) and audio.shape == (16, 40)  # model resolution; audio: (mels, frames)
    for m in (image, audio):
        assert m.min() >= 0 and m.max() == pytest.approx(1.0)
    # The digit's strokes, not the black background (the baseline), carry the signal.
    ink = np.asarray(__import__("PIL.Image").Image.open(files["image"]).convert("L")) > 128
    assert image[ink].mean() > 3 * image[~ink].mean()


def test_batch_equals_single_predictions(client, files, manifest):
    pngs = [manifest.parent / f"{d}_7.png" for d in range(3)]
    rows = [{"image": base64.b64encode(p.read_bytes()).decode()} for p in pngs]
    batch = client.post("/predict/batch", json={"instances": rows}).json()["predictions"]
    single = [client.post("/predict", json=r).json() for r in rows]
    assert [b["label"] for b in batch] == [s["label"] for s in single]
    for b, s in zip(batch, single, strict=True):
        assert b["probabilities"] == pytest.approx(s["probabilities"], abs=1e-5)
    r = client.post("/predict/batch", json={"instances": rows * 3})
    assert r.status_code == 400 and "limit of 8" in r.json()["error"]
    r = client.post("/predict/batch", json={"instances": [rows[0], {"image": "bm90IGFuIGltYWdl"}]})
    assert r.status_code == 422 and r.json()["error"].startswith("instances[1]: ")


def truncated_wav(files: dict[str, Path]) -> bytes:
    return files["audio"].read_bytes()[:30]  # cut inside the fmt chunk


BAD = [  # 30000² and 3000² are multiples of 100 (bomb_png writes rows in hundreds)
    # (what, request kwargs builder, status, words the message must contain)
    ("non-image bytes", lambda f: {"files": {"image": ("x.png", b"not an image at all" * 20)}}, 422, "not an image"),
    ("truncated WAV", lambda f: {"files": {"audio": ("cut.wav", truncated_wav(f))}}, 422, "cut.wav"),
    ("30000×30000 PNG", lambda f: {"files": {"image": ("big.png", bomb_png(30000, 30000))}}, 413, "downscale"),
    ("3000×3000 PNG", lambda f: {"files": {"image": ("big.png", bomb_png(3000, 3000))}}, 413, "3000×3000"),
    ("truncated PNG", lambda f: {"files": {"image": ("t.png", f["image"].read_bytes()[:120])}}, 422, "cannot decode"),
    ("empty upload", lambda f: {"files": {"image": ("e.png", b"")}}, 400, "empty"),
    ("no input", lambda f: {"json": {}}, 422, "no input given"),
    ("unknown input", lambda f: {"json": {"text": "hi", "image": None}}, 422, "unknown input"),
    ("not JSON", lambda f: {"content": b"{oops", "headers": {"content-type": "application/json"}}, 400, "not valid"),
    ("JSON list", lambda f: {"json": [1, 2]}, 400, "JSON object"),
    ("text/plain", lambda f: {"content": b"hi", "headers": {"content-type": "text/plain"}}, 415, "multipart"),
    ("ragged array", lambda f: {"json": {"image": [[1, 2], [3]]}}, 400, "rectangular"),
    ("a server path", lambda f: {"json": {"image": "/etc/passwd"}}, 400, "base64"),
    ("WAV as image", lambda f: {"files": {"image": ("a.wav", f["audio"].read_bytes())}}, 422, "not an image"),
    ("misshapen audio", lambda f: {"json": {"audio": np.zeros((50, 3)).tolist()}}, 422, "shape"),
]


@pytest.mark.parametrize(("what", "build", "status", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_request_is_a_json_4xx_and_the_server_keeps_serving(client, files, what, build, status, words):
    r = client.post("/predict", **build(files))
    assert r.status_code == status, (what, r.status_code, r.text)
    message = r.json()["error"]
    assert "\n" not in message and words in message, message
    good_request(client, files)


def raw_post(port: int, headers: dict[str, str], chunks: list[bytes]) -> tuple[int, dict]:
    """POST with explicit framing; returns (status, JSON) even when the server answers before the body ends."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.putrequest("POST", "/predict")
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.endheaders()
    try:
        for c in chunks:
            conn.send(c)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed before reading the rest: what we want
    r = conn.getresponse()
    out = r.status, json.loads(r.read())
    conn.close()
    return out


def test_a_50_mb_upload_is_refused_without_being_read(server, client, files):
    # Only 1 MB of the declared 50 MB is ever sent: a 413 proves the server decided from the header.
    boundary = "b0undary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="huge.png"\r\n\r\n'.encode()
    status, body = raw_post(
        server.port,
        {"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(50 * 2**20)},
        [head, bytes(2**20)],
    )
    assert status == 413 and "--max-upload-mb" in body["error"]
    good_request(client, files)
    # Chunked (no Content-Length): counted as it arrives, refused once past the 2 MB limit.
    chunk = bytes(2**20)
    frames = [f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for _ in range(4)] + [b"0\r\n\r\n"]
    status, body = raw_post(
        server.port,
        {"Content-Type": f"multipart/form-data; boundary={boundary}", "Transfer-Encoding": "chunked"},
        [f"{len(head):x}\r\n".encode() + head + b"\r\n", *frames],
    )
    assert status == 413
    good_request(client, files)


def test_wrong_routes_and_methods_are_json(client):
    r = client.post("/generate", json={"prompt": "hi"})
    assert r.status_code == 404 and "POST /predict" in r.json()["error"]
    assert client.get("/nope").json()["error"].startswith("no route GET /nope")
    assert client.get("/predict").status_code == 405


def test_accepted_sockets_have_nagle_off(server, files):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("GET", "/health")
    assert conn.getresponse().read()
    # The server runs in this process: look at its side of the open keep-alive connection.
    socks = [p.transport.get_extra_info("socket") for p in server.server.server_state.connections]
    assert socks and all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in socks)
    conn.close()


def test_micro_batching_answers_concurrent_requests_in_fewer_forwards(trained_run, manifest):
    rows = [{"image": base64.b64encode((manifest.parent / f"{i % 3}_{i}.png").read_bytes()).decode()} for i in range(8)]
    predictor = api.load(trained_run)
    want = [predictor.predict(image=str(manifest.parent / f"{i % 3}_{i}.png")) for i in range(8)]
    with (
        Running(create_app(trained_run, Limits(max_in_flight=8), batch_ms=50, max_batch=8)) as running,
        httpx.Client(base_url=running.url, timeout=30) as c,
    ):
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda r: c.post("/predict", json=r).json(), rows))
        health = c.get("/health").json()
    assert [g["label"] for g in got] == [w["label"] for w in want]
    for g, w in zip(got, want, strict=True):
        assert g["probabilities"] == pytest.approx(w["probabilities"], abs=1e-5)
    assert health["micro_batch_ms"] == 50 and 1 <= health["micro_batches"] < 8


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory) -> Path:
    text = "\n\n".join(m.__doc__ or "" for m in (json, io, http.client, threading)) * 2
    corpus = tmp_path_factory.mktemp("lm-corpus") / "docs.txt"
    corpus.write_text(text, encoding="utf-8")
    recipe = {
        "name": "tiny-lm",
        "kind": "lm",
        "data": {"corpus": str(corpus), "steps_per_epoch": 10, "eval_batches": 2},
        "model": {"block_size": 32, "n_layer": 1, "n_head": 2, "n_embd": 32},
        "trainer": {"epochs": 1, "batch_size": 8, "monitor": "loss", "checkpoint_every": 0, "threads": 1},
    }
    return api.train(recipe, tmp_path_factory.mktemp("lm") / "run").run_dir


def test_generate_whole_and_streamed(lm_run):
    import torch

    from polymodal.gpt.generate import generate
    from polymodal.kinds.lm.run import LMRun

    lm = LMRun(lm_run)
    model, tok = lm.model, lm.tokenizer
    want = tok.decode(generate(model, torch.tensor([tok.encode("The ")]), 40, temperature=0.0))
    with Running(create_app(lm_run)) as running, httpx.Client(base_url=running.url, timeout=60) as c:
        assert c.get("/metadata").json()["kind"] == "lm"
        body = {"prompt": "The ", "max_tokens": 40, "temperature": 0}
        assert c.post("/generate", json=body).json()["text"] == want
        with c.stream("POST", "/generate", json={**body, "stream": True}) as r:
            pieces = list(r.iter_text())
        assert "".join(pieces) == want
        stop = want[3]  # a character tokenizer: any generated character is a stop sequence
        out = c.post("/generate", json={**body, "stop": [stop]}).json()
        assert out["text"] == want[: want.index(stop)] and out["stopped_at"] == stop
        r = c.post("/generate", json={**body, "max_tokens": 5000})
        assert r.status_code == 400 and "limit" in r.json()["error"]
        r = c.post("/generate", json={**body, "temperature": -1})
        assert r.status_code == 422 and r.json()["error"].startswith("temperature")
        r = c.post("/predict", json={"prompt": "x"})
        assert r.status_code == 404 and "/generate" in r.json()["error"]
        assert c.post("/generate", json=body).status_code == 200


def test_upload_names_not_temp_paths_in_messages(client):
    r = client.post("/predict", files={"audio": ("my recording.wav", b"RIFF0000WAVEjunk")})
    assert r.status_code == 422
    assert "polymodal-upload" not in r.json()["error"] and "my_recording.wav" in r.json()["error"]


def test_wav_bytes_roundtrip_is_not_needed_for_arrays(client, files):
    # A waveform array at the model's sample rate gives the same prediction as its WAV file.
    wave, sr = sf.read(io.BytesIO(files["audio"].read_bytes()), dtype="float32")
    assert sr == 8000
    by_array = client.post("/predict", json={"audio": wave.tolist()}).json()
    by_file = client.post("/predict", files=multipart({"audio": files["audio"]})).json()
    assert by_array["probabilities"] == pytest.approx(by_file["probabilities"], abs=1e-5)


def test_serve_command_refuses_a_folder_that_is_not_a_run(tmp_path):
    from typer.testing import CliRunner

    from polymodal.cli import app
    from polymodal.errors import CheckpointError

    result = CliRunner().invoke(app, ["serve", str(tmp_path), "--port", "1"])
    assert isinstance(result.exception, CheckpointError) and "no meta.json" in str(result.exception)


def test_onnx_engine_answers_as_the_torch_model_does(trained_run, files, manifest):
    pytest.importorskip("onnxruntime", reason="the export extra is not installed: pip install -e '.[export]'")
    predictor = api.load(trained_run)
    pngs = [manifest.parent / f"{d}_9.png" for d in range(3)]
    with Running(create_app(trained_run, engine="onnx")) as running, httpx.Client(base_url=running.url) as c:
        assert c.get("/health").json()["engine"] == "onnx"
        got = c.post("/predict", files=multipart(files)).json()
        want = predictor.predict(image=str(files["image"]), audio=str(files["audio"]))
        assert got["label"] == want["label"] == "d1"
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-5)
        alone = c.post("/predict", files=multipart({"image": files["image"]})).json()  # audio missing
        assert alone["missing"] == ["audio"]
        assert alone["probabilities"] == pytest.approx(
            predictor.predict(image=str(files["image"]))["probabilities"], abs=1e-5
        )
        rows = [{"image": base64.b64encode(p.read_bytes()).decode()} for p in pngs]
        batch = c.post("/predict/batch", json={"instances": rows}).json()["predictions"]
        for row, png in zip(batch, pngs, strict=True):
            assert row["probabilities"] == pytest.approx(predictor.predict(image=str(png))["probabilities"], abs=1e-5)
        explained = c.post("/predict?explain=1", files=multipart(files)).json()  # saliency: the torch model
        assert np.asarray(explained["explanation"]["image"]["map"]).shape == (28, 28)


def test_an_onnx_graph_that_disagrees_with_the_model_is_refused(trained_run, monkeypatch):
    pytest.importorskip("onnxruntime", reason="the export extra is not installed: pip install -e '.[export]'")
    from polymodal.errors import ExportError, PolymodalError
    from polymodal.export import runtime

    monkeypatch.setattr(runtime, "TOLERANCE", -1.0)  # any difference, even 0, is now too large
    with pytest.raises(ExportError, match="logits differ from the model's by .*; serve with --engine torch"):
        create_app(trained_run, engine="onnx")
    with pytest.raises(PolymodalError, match="unknown engine 'tensorrt'; use one of: torch, onnx"):
        create_app(trained_run, engine="tensorrt")


def test_onnx_engine_refuses_a_caption_head_in_one_line():
    pytest.importorskip("onnxruntime", reason="the export extra is not installed: pip install -e '.[export]'")
    from types import SimpleNamespace

    import torch

    from polymodal.errors import ExportError
    from polymodal.export.runtime import OnnxForward

    captioner = torch.nn.Module()
    captioner.head = SimpleNamespace(reduce=lambda z: z)  # what marks a decode-loop (caption) head
    with pytest.raises(ExportError, match="caption head is a decode loop.*serve with --engine torch"):
        OnnxForward(captioner, {"image": (1, 8, 8)})
