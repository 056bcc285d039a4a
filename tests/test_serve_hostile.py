"""The REST server under hostile or unlucky clients: heavy requests, too many at once, slow ones, vanishing ones.

Real uvicorn servers on 127.0.0.1, real sockets, the session's tiny trained run. The heavy request is real work:
a /predict/batch of 16 smooth 3900×3900 PNGs (~300 KB of base64 each), which the image transform decodes and
resizes in ~2 s on one core.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install -e '.[serve]'")

import httpx  # noqa: E402
from conftest import one_error_line, run_cli  # noqa: E402
from test_serve import Running, multipart  # noqa: E402

from polymodal.serve import create_app  # noqa: E402
from polymodal.serve.admission import Admission, Busy, Overdue  # noqa: E402
from polymodal.serve.limits import Limits  # noqa: E402

HEAVY_ROWS, SIDE = 16, 3900
TIMEOUT_S = 1.0  # header and body timeouts of the servers here
HEX16 = re.compile(r"[0-9a-f]{16}")


@pytest.fixture(scope="module")
def heavy() -> bytes:
    """A /predict/batch JSON body that takes the server seconds of real decoding and resizing."""
    from PIL import Image

    y, x = np.mgrid[0:SIDE, 0:SIDE]
    pixels = np.stack([x * 255 // SIDE, y * 255 // SIDE, (x + y) % 256], -1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=1)
    row = {"image": base64.b64encode(buf.getvalue()).decode()}
    return json.dumps({"instances": [row] * HEAVY_ROWS}).encode()


@pytest.fixture(scope="module")
def light(manifest: Path) -> dict[str, tuple[str, bytes]]:
    return multipart({"image": manifest.parent / "1_3.png", "audio": manifest.parent / "1_3.wav"})


def limits(**kw: float) -> Limits:
    base = {"max_batch": HEAVY_ROWS, "max_in_flight": 2, "header_timeout_s": TIMEOUT_S, "body_timeout_s": TIMEOUT_S}
    return Limits(**{**base, **kw})


@pytest.fixture(scope="module")
def server(trained_run: Path) -> Iterator[Running]:
    with Running(create_app(trained_run, limits()), header_timeout_s=TIMEOUT_S) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def post_heavy(url: str, body: bytes) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=60) as c:
        return c.post("/predict/batch", content=body, headers={"content-type": "application/json"})


def wait_for(client: httpx.Client, key: str, value: int, within_s: float = 15.0) -> dict:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        health = client.get("/health").json()
        if health[key] == value:
            return health
        time.sleep(0.02)
    raise AssertionError(f"/health {key} did not become {value} within {within_s} s: {health}")


def one_line_error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert "\n" not in body["error"] and body["request_id"] == r.headers["x-request-id"], body
    return body["error"]


def test_health_answers_while_a_heavy_request_computes(server, client, heavy):
    with ThreadPoolExecutor(1) as pool:
        job = pool.submit(post_heavy, server.url, heavy)
        wait_for(client, "in_flight", 1)
        waits = []
        for _ in range(5):
            t0 = time.perf_counter()
            health = client.get("/health").json()
            waits.append(time.perf_counter() - t0)
            assert health["in_flight"] == 1  # the heavy request was still computing while /health answered
            time.sleep(0.05)
        r = job.result()
    assert r.status_code == 200 and len(r.json()["predictions"]) == HEAVY_ROWS, r.text
    assert max(waits) < 0.5, waits


def test_one_request_past_max_in_flight_is_a_503_with_retry_after(server, client, heavy, light):
    with ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(post_heavy, server.url, heavy) for _ in range(2)]
        wait_for(client, "in_flight", 2)
        refused = client.post("/predict", files=light)
        assert "--max-in-flight" in one_line_error(refused, 503)
        assert refused.headers["retry-after"] == "1"
        assert all(j.result().status_code == 200 for j in jobs)
    assert client.post("/predict", files=light).json()["label"] == "d1"
    assert client.get("/health").json()["refused_busy"] >= 1


def test_past_the_deadline_a_503_and_the_slot_is_held_until_the_work_ends(trained_run, heavy, light):
    app = create_app(trained_run, limits(max_in_flight=1, request_timeout_s=0.5))
    with Running(app) as running, httpx.Client(base_url=running.url, timeout=30) as c:
        t0 = time.perf_counter()
        late = post_heavy(running.url, heavy)
        took = time.perf_counter() - t0
        assert "took longer than the server's limit of 0.5 s" in one_line_error(late, 503)
        assert took < 1.5, took  # answered at the deadline, not when the work ended
        assert c.get("/health").json()["in_flight"] == 1  # the thread still runs and still holds the slot
        assert c.post("/predict", files=light).status_code == 503
        wait_for(c, "in_flight", 0)
        assert c.post("/predict", files=light).json()["label"] == "d1"
        assert c.get("/health").json()["over_deadline"] == 1


def read_until_closed(sock: socket.socket, within_s: float) -> bytes:
    sock.settimeout(within_s)
    data = b""
    while chunk := sock.recv(4096):  # a timeout here (the server kept the connection) raises and fails the test
        data += chunk
    return data


def test_slowloris_connections_are_closed_within_the_header_timeout(server, client, light):
    opened = time.monotonic()
    socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(50)]
    for i, s in enumerate(socks):
        if i % 5:  # and every fifth sends nothing at all
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nX-Slow: aaaa")
    assert client.post("/predict", files=light).json()["label"] == "d1"  # served while they hang
    try:
        answers = [read_until_closed(s, opened + TIMEOUT_S + 3 - time.monotonic()) for s in socks]
    finally:
        for s in socks:
            s.close()
    assert time.monotonic() - opened < TIMEOUT_S + 3
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), answers[:2]
    body = json.loads(answers[1].split(b"\r\n\r\n", 1)[1])
    assert "headers did not arrive" in body["error"] and HEX16.fullmatch(body["request_id"])


def raw_response(data: bytes) -> tuple[int, dict[str, str], dict]:
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body)


def test_a_stalled_body_is_a_408_within_the_body_timeout(server, client):
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        t0 = time.monotonic()
        s.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n"
            b"X-Request-ID: stall-1\r\n\r\n" + b'{"image": '
        )
        status, headers, body = raw_response(read_until_closed(s, TIMEOUT_S + 3))
    assert TIMEOUT_S * 0.9 < time.monotonic() - t0 < TIMEOUT_S + 3
    assert status == 408 and headers["connection"] == "close" and headers["x-request-id"] == "stall-1"
    assert body["request_id"] == "stall-1" and "--body-timeout-s" in body["error"] and "\n" not in body["error"]
    assert client.get("/health").json()["server_errors"] == 0


def test_clients_that_hang_up_mid_body_leave_one_debug_line_each_and_no_traceback(server, client, caplog):
    before = client.get("/health").json()["client_disconnects"]
    uvicorn_log = logging.getLogger("uvicorn")  # uvicorn's loggers do not propagate to the root (caplog)
    uvicorn_log.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.DEBUG, logger="polymodal.serve"):
            for i in range(5):
                with socket.create_connection(("127.0.0.1", server.port)) as s:
                    s.sendall(
                        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Content-Length: 1000\r\nX-Request-ID: gone-%d\r\n\r\n" % i + b'{"image": [[0, 0'
                    )
            health = wait_for(client, "client_disconnects", before + 5)
            time.sleep(0.1)  # any traceback uvicorn would log comes after the app returned
    finally:
        uvicorn_log.removeHandler(caplog.handler)
    assert health["server_errors"] == 0
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()], caplog.text
    gone = [r for r in caplog.records if "disconnected" in r.getMessage()]
    assert len(gone) == 5 and all(r.levelno == logging.DEBUG and "\n" not in r.getMessage() for r in gone)
    assert {r.getMessage().split()[1].rstrip(":") for r in gone} == {f"gone-{i}" for i in range(5)}


def test_every_json_error_has_the_request_id_and_an_incoming_id_is_echoed(server, client):
    r = client.get("/nope", headers={"X-Request-ID": "trace.abc-123_x"})
    assert r.headers["x-request-id"] == "trace.abc-123_x" and one_line_error(r, 404).startswith("no route")
    for odd in ("has space", "x" * 65, "ünï".encode("latin-1"), ""):
        r = client.post("/predict", content=b"{oops", headers={"X-Request-ID": odd, "content-type": "application/json"})
        one_line_error(r, 400)
        assert HEX16.fullmatch(r.headers["x-request-id"]), r.headers  # replaced, never echoed
    r = client.post("/predict", files={"image": ("x.png", b"not an image at all" * 20)})
    one_line_error(r, 422)
    r = client.post("/predict", content=b"hi", headers={"content-type": "text/plain"})
    one_line_error(r, 415)
    # BodyLimit answers before the app: its 413 carries the id as well.
    r = client.post("/predict", content=bytes(11 * 2**20), headers={"content-type": "application/json"})
    assert "--max-upload-mb" in one_line_error(r, 413)
    ok = client.get("/health")
    assert ok.status_code == 200 and HEX16.fullmatch(ok.headers["x-request-id"])
    assert len({client.get("/health").headers["x-request-id"] for _ in range(3)}) == 3


def test_admission_refuses_past_max_in_flight_and_frees_a_slot_only_when_the_thread_ends():
    # The unit alone, with a sleeping thread for work: the servers above exercise it with real requests.
    async def scenario() -> None:
        admission = Admission(max_in_flight=1, timeout_s=0.1)
        ended = threading.Event()

        def slow() -> str:
            time.sleep(0.4)
            ended.set()
            return "done"

        with pytest.raises(Overdue, match="limit of 0.1 s"):
            await admission.run(lambda: admission.in_thread(slow))
        assert admission.in_flight == 1 and not ended.is_set()
        with pytest.raises(Busy, match="retry after 1 s"):
            await admission.run(lambda: admission.in_thread(slow))
        while admission.in_flight:
            await asyncio.sleep(0.01)
        assert ended.is_set()
        admission.timeout_s = 5
        assert await admission.run(lambda: admission.in_thread(lambda: "fast")) == "fast"
        assert admission.stats() == {"in_flight": 0, "max_in_flight": 1, "refused_busy": 1, "over_deadline": 1}

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--max-in-flight", "0", "greater than or equal to 1"),
        ("--request-timeout-s", "0", "greater than or equal to 0.001"),
        ("--header-timeout-s", "-1", "greater than or equal to 0.001"),
        ("--body-timeout-s", "soon", "valid number"),
    ],
)
def test_serve_flags_out_of_range_are_one_usage_line(trained_run, capsys, flag, value, says):
    line = one_error_line(*run_cli(capsys, "serve", trained_run, flag, value)[::2])
    assert flag in line and says in line


def test_serve_flags_reach_the_limits(trained_run, capsys, monkeypatch):
    from polymodal.serve import server

    got = {}
    monkeypatch.setattr(server, "serve", lambda run, host, port, workers, threads, lim, *_: got.update(vars(lim)))
    flags = ["--max-in-flight", "7", "--request-timeout-s", "2.5", "--header-timeout-s", "3", "--body-timeout-s", "4"]
    assert run_cli(capsys, "serve", trained_run, *flags)[0] == 0
    assert {k: got[k] for k in ("max_in_flight", "request_timeout_s", "header_timeout_s", "body_timeout_s")} == {
        "max_in_flight": 7,
        "request_timeout_s": 2.5,
        "header_timeout_s": 3.0,
        "body_timeout_s": 4.0,
    }
