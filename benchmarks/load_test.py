"""Bounded load test of `polymodal serve` on an AV-Digits run: p50/p99 latency, requests/s, errors, server RSS.

The server runs in its own process (`python -m polymodal serve RUN`, 1 torch thread) on 127.0.0.1; the client
is `wrk` (C, one thread, keep-alive connections, a Lua script for the POST body) when it is installed, else an
asyncio raw-socket client in a separate process. Client and server share the machine's cores.

The request is one real AV-Digits test example (an MNIST image and its paired FSDD recording, in the form
the run was trained on: MFCC frames, or a WAV when the run used FSDD WAVs), sent as

- ``json``: ``{"image": [[0..255, ...], ...], "audio": <MFCC frames as a nested list | WAV as base64>}``
- ``multipart``: a PNG file and a ``.npy`` / ``.wav`` file.

Examples:

    python benchmarks/load_test.py --run runs/av --duration 30 --concurrency 1,8
    python benchmarks/load_test.py --duration 20 --concurrency 8 --body json,multipart --batch-ms 0,2
    python benchmarks/load_test.py --run runs/av --engine torch,onnx --workers 1,2 --concurrency 1,8

Without ``--run`` it first trains the avdigits recipe for one epoch into a temporary folder (speed does not
depend on accuracy; the model is the recipe's).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import multiprocessing as mp
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np

LUA = """
wrk.method = "POST"
wrk.path = "/predict"
wrk.headers["Content-Type"] = "{ctype}"
local f = io.open("{body}", "rb")
wrk.body = f:read("*a")
f:close()
"""


def example(run: Path) -> tuple[np.ndarray, object, str]:
    """(image uint8 (28, 28), audio: MFCC array or WAV path, true label) of the run's first test row."""
    from polymodal import api
    from polymodal.registry import DATASETS

    recipe = api.load_recipe(run / "recipe.yaml")
    options = recipe.data.options
    import dataclasses

    table = DATASETS.get(recipe.data.dataset).factory(**dataclasses.asdict(options)).load()
    frame = table.frame
    row = frame[frame["split"] == "test"].iloc[0]
    return row["image"], row["audio"], str(row["label"])


def bodies(run: Path) -> tuple[dict[str, tuple[bytes, str]], str]:
    """``{"json" | "multipart": (body bytes, content type)}`` and the true label."""
    from PIL import Image

    image, audio, label = example(run)
    png = io.BytesIO()
    Image.fromarray(image).save(png, format="PNG")
    if isinstance(audio, np.ndarray):
        json_audio: object = audio.astype(np.float32).round(4).tolist()
        npy = io.BytesIO()
        np.save(npy, audio.astype(np.float32))
        audio_file = ("audio.npy", npy.getvalue(), "application/octet-stream")
    else:
        wav = Path(audio).read_bytes()
        json_audio = base64.b64encode(wav).decode()
        audio_file = ("audio.wav", wav, "audio/wav")
    out = {"json": (json.dumps({"image": image.tolist(), "audio": json_audio}).encode(), "application/json")}
    boundary = uuid.uuid4().hex
    parts = []
    for name, (filename, data, ctype) in {
        "image": ("digit.png", png.getvalue(), "image/png"),
        "audio": audio_file,
    }.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        parts.append(head.encode() + f"Content-Type: {ctype}\r\n\r\n".encode() + data + b"\r\n")
    out["multipart"] = (b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}")
    return out, label


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the worker processes), in MB."""
    total = 0.0
    for p in [pid, *children(pid)]:
        status = Path(f"/proc/{p}/status").read_text()
        total += int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far: the server's own cost per request,
    which other jobs on the machine do not inflate the way they inflate latency."""
    total = 0
    for p in [pid, *children(pid)]:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return total / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids = (task / "children").read_text().split()
        for k in kids:
            found += [int(k), *children(int(k))]
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: bytes, ctype: str) -> dict:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": ctype}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def start_server(run: Path, port: int, batch_ms: float, workers: int, engine: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "polymodal", "serve", str(run), "--port", str(port), "--batch-ms", str(batch_ms)]
    cmd += ["--workers", str(workers), "--engine", engine]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start within 120 s")


def run_wrk(port: int, body: bytes, ctype: str, concurrency: int, duration: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "body").write_bytes(body)
        script = Path(tmp) / "post.lua"
        script.write_text(LUA.format(ctype=ctype, body=Path(tmp) / "body"))
        cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{int(duration)}s", "--latency", "-s", str(script)]
        text = subprocess.run([*cmd, f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=True).stdout
    unit = {"us": 1e-3, "ms": 1.0, "s": 1e3}

    def pct(p: str) -> float:
        found = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if found is None:
            raise RuntimeError(f"no {p}th percentile in wrk's output:\n{text}")
        return float(found.group(1)) * unit[found.group(2)]

    requests = int(re.search(r"(\d+) requests in", text).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    return {"requests": requests, "rps": rps, "p50": pct("50"), "p99": pct("99"), "errors": errors, "client": "wrk"}


async def keep_alive_worker(port: int, request: bytes, until: float, latencies: list, errors: list) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while time.perf_counter() < until:
        t0 = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - t0)
        if not head.startswith(b"HTTP/1.1 200"):
            errors.append(head.split(b"\r\n")[0])
    writer.close()


def python_client(port: int, body: bytes, ctype: str, concurrency: int, duration: float, out: mp.Queue) -> None:
    request = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    errors: list[bytes] = []
    until = time.perf_counter() + duration

    async def main() -> None:
        await asyncio.gather(*(keep_alive_worker(port, request, until, latencies, errors) for _ in range(concurrency)))

    t0 = time.perf_counter()
    asyncio.run(main())
    ms = np.asarray(latencies) * 1e3
    out.put(
        {
            "requests": len(ms),
            "rps": len(ms) / (time.perf_counter() - t0),
            "p50": float(np.percentile(ms, 50)),
            "p99": float(np.percentile(ms, 99)),
            "errors": len(errors),
            "client": "python",
        }
    )


def measure(port: int, body: bytes, ctype: str, concurrency: int, duration: float, client: str) -> dict:
    if client == "wrk":
        return run_wrk(port, body, ctype, concurrency, duration)
    queue: mp.Queue = mp.Queue()
    proc = mp.Process(target=python_client, args=(port, body, ctype, concurrency, duration, queue))
    proc.start()
    result = queue.get(timeout=duration + 60)
    proc.join()
    return result


def train_quick(folder: Path) -> Path:
    from polymodal import api

    run = folder / "avdigits-1epoch"
    recipe = api.load_recipe("avdigits", ("trainer.epochs=1", "trainer.threads=1"))
    api.train(recipe, run)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="a finished AV-Digits run (default: train one epoch into a temp dir)")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds per configuration")
    ap.add_argument("--concurrency", default="8", help="open connections, comma list (e.g. 1,8)")
    ap.add_argument("--body", default="json", help="json, multipart or both (comma list)")
    ap.add_argument("--batch-ms", default="0", help="server micro-batching window(s) in ms, comma list")
    ap.add_argument("--workers", default="1", help="server processes, comma list (e.g. 1,2)")
    ap.add_argument("--engine", default="torch", help="torch, onnx or both (comma list): the server's forward")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring")
    ap.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    args = ap.parse_args()
    client = args.client if args.client != "auto" else ("wrk" if shutil.which("wrk") else "python")
    tmp = None
    run = args.run
    if run is None:
        tmp = tempfile.TemporaryDirectory()
        print("training avdigits for one epoch (the recipe's model; speed does not depend on accuracy) ...")
        run = train_quick(Path(tmp.name))
    payloads, label = bodies(run)
    print(f"run {run}; client {client}; load average before: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs")
    print(f"request bodies: json {len(payloads['json'][0]):,} B, multipart {len(payloads['multipart'][0]):,} B")
    header = (
        "| engine | body | workers | batch ms | concurrency | s | requests | req/s | p50 ms | p99 ms | errors "
        "| server CPU ms/request | RSS MB before → after |"
    )
    rows = [header, "|" + "---|" * 13]
    grid = [
        (engine, int(workers), float(batch_ms))
        for engine in args.engine.split(",")
        for workers in args.workers.split(",")
        for batch_ms in args.batch_ms.split(",")
    ]
    for engine, workers, batch_ms in grid:
        port = free_port()
        server = start_server(run, port, batch_ms, workers, engine)
        try:
            for kind in args.body.split(","):
                body, ctype = payloads[kind]
                answer = post(f"http://127.0.0.1:{port}/predict", body, ctype)
                if answer["label"] != label:
                    print(f"note: the served model says {answer['label']} for this {label}")
                for conc in [int(c) for c in args.concurrency.split(",")]:
                    measure(port, body, ctype, conc, args.warmup, client)
                    before, cpu0 = rss_mb(server.pid), cpu_seconds(server.pid)
                    r = measure(port, body, ctype, conc, args.duration, client)
                    after, cpu = rss_mb(server.pid), cpu_seconds(server.pid) - cpu0
                    rows.append(
                        f"| {engine} | {kind} | {workers} | {batch_ms:g} | {conc} | {args.duration:g} | "
                        f"{r['requests']:,} | "
                        f"{r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['errors']} | "
                        f"{1e3 * cpu / max(r['requests'], 1):.2f} | {before:.0f} → {after:.0f} |"
                    )
                    print(rows[-1], flush=True)
        finally:
            server.terminate()
            server.wait(10)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print("\n".join(rows))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
