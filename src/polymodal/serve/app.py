"""The REST app over a finished run: ``create_app(run_dir) -> FastAPI``.

Routes: ``POST /predict`` (multipart files and form fields, or a JSON object ``{input: value}``; ``?explain=1``
adds a gradient × input saliency map per input), ``POST /predict/batch`` (JSON ``{"instances": [...]}``),
``POST /generate`` (language-model runs; ``"stream": true`` streams the text), ``POST /chat`` (assistant runs,
streamed answers; :mod:`polymodal.serve.chat`), ``GET /health``,
``GET /metadata`` (the inputs the model expects), ``GET /`` (the demo page), and FastAPI's ``/docs`` and
``/openapi.json``.

All preprocessing is the run's own (:class:`polymodal.kinds.supervised.predictor.RunPredictor`); the hot path is
one request parse, the transforms, and one forward under ``torch.inference_mode``; the transforms and forward run
in worker threads, bounded and with a deadline (:mod:`polymodal.serve.admission`), so the event loop keeps
answering. Every refused request is a JSON 4xx/503 ``{"error": "<one line saying what to do>", "request_id": ...}``
and the server carries on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import torch
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from polymodal.errors import PolymodalError
from polymodal.kinds.base import RunKind, require_verb
from polymodal.kinds.lm.run import LMRun
from polymodal.kinds.supervised.predictor import RunPredictor
from polymodal.runs import RunDir
from polymodal.serve.admission import Admission
from polymodal.serve.batcher import MicroBatcher
from polymodal.serve.chat import add_chat_routes
from polymodal.serve.explain import METHOD, saliency
from polymodal.serve.handlers import JSON, install_error_handlers
from polymodal.serve.inputs import ACCEPTS, FILE_MODALITIES, Uploads, to_value
from polymodal.serve.limits import BodyLimit, Limits, NotForThisModel, RequestError, UnsupportedMediaType
from polymodal.serve.requestid import RequestId

STATIC = Path(__file__).parent / "static"
EXPLAINABLE_HEADS = frozenset({"classification", "multilabel"})  # heads with (B, K) logits per class
ENGINES = ("torch", "onnx")


class GenerateRequest(BaseModel):
    """Body of ``POST /generate`` (the ``polymodal generate`` options)."""

    prompt: str = Field("\n", min_length=1, description="Text to continue.")
    max_tokens: int = Field(200, ge=1, description="New tokens at most.")
    temperature: float = Field(0.8, ge=0, description="0 = greedy.")
    top_k: int = Field(0, ge=0, description="Keep the k most likely tokens (0 = all).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass (1 = off).")
    repetition_penalty: float = Field(1.0, ge=1, description="> 1 discourages repeats.")
    stop: list[str] = Field(default_factory=list, description="Stop after any of these texts.")
    seed: int = Field(0, description="Sampling seed.")
    stream: bool = Field(False, description="Stream the text as it is generated (text/plain chunks).")


def servable(run: Path) -> RunKind:
    """The run's kind, checked to be one that serving applies to (a one-line refusal otherwise)."""
    rundir = RunDir(run)
    kind = require_verb(rundir, "serve")
    rundir.require("weights.safetensors")
    return kind


def create_app(
    run_dir: str | Path,
    limits: Limits | None = None,
    batch_ms: float = 0.0,
    max_batch: int = 32,
    engine: str = "torch",
    device: str | None = None,
) -> FastAPI:
    """A FastAPI app serving one finished run.

    Args:
        run_dir: A finished run directory (a classifier/regressor/captioner, or a ``kind: lm`` language model).
        limits: Upload size, image pixels, batch rows and generated tokens a request may ask for; requests
            computed at once and their deadline; how long a request's body may take to arrive.
        batch_ms: Micro-batching window in milliseconds (0 = off: each request runs its own forward).
        max_batch: Largest micro-batch.
        engine: ``torch``, or ``onnx``: predictions from an onnxruntime session over the model exported at
            start-up (checked against PyTorch; ~4× faster for small models at batch 1). ``?explain=1`` and
            language models always use PyTorch.
        device: Where the PyTorch model runs (``auto``, ``cpu``, ``cuda[:N]``, ``mps``; default the run's
            ``trainer.device``, the CPU for a language model); the onnx engine runs on the CPU.
    """
    if engine not in ENGINES:
        raise PolymodalError(f"unknown engine '{engine}'; use one of: {', '.join(ENGINES)}")
    run = Path(run_dir)
    limits = limits or Limits()
    kind = servable(run)
    loaded = kind.load(RunDir(run), "cpu" if engine == "onnx" else device)
    app = FastAPI(
        title=f"polymodal: {run.name}",
        description='Predictions from a polymodal run. Errors are JSON `{"error": "...", "request_id": "..."}` '
        "with a 4xx or 503 status.",
        default_response_class=JSON,
    )
    app.add_middleware(BodyLimit, max_bytes=limits.max_upload_bytes, timeout_s=limits.body_timeout_s)
    app.add_middleware(RequestId)  # added last, so outermost: BodyLimit's 413 carries the id too
    counts = install_error_handlers(app)
    admission = Admission(limits.max_in_flight, limits.request_timeout_s)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    started = time.time()
    # A run's use decides its routes: the other use's routes answer with a 404 that says what to call.
    if "generate" in kind.verbs:
        use, stats = "generate", add_lm_routes(app, run, loaded, limits, admission)
        for path in ("/predict", "/predict/batch", "/chat"):
            add_refusal(app, path, 'this run is a language model; POST /generate {"prompt": ...} instead')
    elif "chat" in kind.verbs:
        use, stats = "chat", add_chat_routes(app, run, loaded, limits, admission, read_body)
        for path in ("/predict", "/predict/batch", "/generate"):
            add_refusal(app, path, "this run is an assistant; POST /chat with a message and files instead")
    else:
        use, stats = "predict", add_predict_routes(app, run, loaded, limits, admission, batch_ms, max_batch, engine)
        add_refusal(app, "/generate", "this run is not a language model; POST /predict with its inputs instead")
        add_refusal(app, "/chat", "this run is not an assistant; POST /predict with its inputs instead")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/health", summary="Liveness and what is served")
    async def health() -> dict[str, Any]:
        up = round(time.time() - started, 1)
        live = {**stats(), **admission.stats(), **counts}
        return {"status": "ok", "run": run.name, "kind": kind.name, "use": use, "uptime_s": up, **live}

    return app


def add_refusal(app: FastAPI, path: str, message: str) -> None:
    async def refuse() -> None:
        raise NotForThisModel(message)

    app.post(path, include_in_schema=False)(refuse)


def add_predict_routes(
    app: FastAPI,
    run: Path,
    predictor: RunPredictor,
    limits: Limits,
    admission: Admission,
    batch_ms: float,
    max_batch: int,
    engine: str = "torch",
) -> Callable[[], dict[str, Any]]:
    """/metadata, /predict and /predict/batch for a supervised model; returns the live counters /health shows."""
    forward = None
    if engine == "onnx":
        from polymodal.export.runtime import OnnxForward

        forward = OnnxForward(
            predictor.model, predictor.meta["in_shapes"], predictor.meta.get("in_dtypes"), torch.get_num_threads()
        )

    def run_batch(prepared: list[Any]) -> list[dict[str, Any]]:
        return predictor.run(prepared, forward)

    modalities = predictor.inputs
    head = predictor.recipe.head.name
    explainable = head in EXPLAINABLE_HEADS
    batcher = MicroBatcher(run_batch, batch_ms, max_batch) if batch_ms > 0 else None
    metadata = {
        "kind": predictor.rundir.kind,
        "use": "predict",
        "run": run.name,
        "head": head,
        "target": predictor.target,
        "classes": predictor.classes,
        "inputs": [
            {
                "name": name,
                "modality": modality,
                "file": modality in FILE_MODALITIES,
                "dtype": predictor.meta.get("in_dtypes", {}).get(name, "float32"),
                "shape": predictor.meta["in_shapes"][name],
                "accepts": ACCEPTS.get(modality, ""),
            }
            for name, modality in modalities.items()
        ],
        "explain": METHOD if explainable else None,
        "engine": engine,
        "data_source": predictor.meta.get("data_source"),
        "limits": vars(limits),
    }

    # The stricter of the server's pixel limit and the recipe's own (preprocessing.max_pixels).
    pixels = {
        k: min(limits.max_image_pixels, getattr(t, "max_pixels", limits.max_image_pixels))
        for k, t in predictor.transforms.items()
    }

    def values_from(raw: dict[str, Any], uploads: Uploads) -> dict[str, Any]:
        return {k: to_value(k, modalities[k], v, uploads, pixels[k]) if k in modalities else v for k, v in raw.items()}

    def prepare(raw: dict[str, Any], where: str = "") -> Any:
        uploads = Uploads()
        try:
            return predictor.prepare(**values_from(raw, uploads))
        except PolymodalError as exc:
            raise type(exc)(where + uploads.clean(str(exc))) from None
        finally:
            uploads.close()

    @app.get("/metadata", summary="The inputs this model expects: names, modalities, dtypes, shapes; its classes")
    async def get_metadata() -> dict[str, Any]:
        return metadata

    @app.post(
        "/predict",
        summary="Predict one example",
        description="Send each input as a multipart file / form field, or a JSON object `{input: value}`. "
        "Inputs left out are missing (the model predicts from the others). `?explain=1` adds a "
        "gradient × input saliency map per input.",
        openapi_extra=predict_schema(metadata["inputs"]),
    )
    async def predict(request: Request, explain: bool = False) -> dict[str, Any]:
        if explain and not explainable:
            raise RequestError(f"explain needs a classification or multilabel head; this run's head is '{head}'")
        raw = await read_body(request, modalities, limits)

        def explained(result: dict[str, Any], prepared: Any) -> dict[str, Any]:
            if explain:
                example, present, _ = prepared
                result["explanation"] = saliency(predictor.model, example, present, modalities, predictor.transforms)
            return result

        def whole() -> dict[str, Any]:
            prepared = prepare(raw)
            return explained(run_batch([prepared])[0], prepared)

        async def work() -> dict[str, Any]:
            if batcher is None:
                return await admission.in_thread(whole)  # one thread hop for the whole request
            prepared = await admission.in_thread(prepare, raw)
            result = await batcher.submit(prepared)
            return await admission.in_thread(explained, result, prepared) if explain else result

        return await admission.run(work)

    @app.post(
        "/predict/batch",
        summary="Predict several examples in one forward",
        description='JSON `{"instances": [{input: value, ...}, ...]}`; returns `{"predictions": [...]}` in order.',
    )
    async def predict_batch(request: Request) -> dict[str, Any]:
        body = await read_json(request)
        rows = body.get("instances") if isinstance(body, dict) else None
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            raise RequestError('send {"instances": [{input: value, ...}, ...]} with at least one instance')
        if len(rows) > limits.max_batch:
            raise RequestError(f"{len(rows)} instances is over the server's limit of {limits.max_batch}; split them")

        def whole() -> list[dict[str, Any]]:
            return run_batch([prepare(r, f"instances[{i}]: ") for i, r in enumerate(rows)])

        return {"predictions": await admission.run(lambda: admission.in_thread(whole))}

    return lambda: {
        "engine": engine,
        "micro_batch_ms": batch_ms,
        "micro_batches": batcher.batches if batcher else None,
    }


def predict_schema(inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """OpenAPI request body for /predict built from the run's inputs, so /docs offers a file picker per file input."""
    form = {
        i["name"]: {"type": "string", **({"format": "binary"} if i["file"] else {"description": i["accepts"]})}
        for i in inputs
    }
    body = {i["name"]: {"description": i["accepts"]} for i in inputs}
    return {
        "requestBody": {
            "content": {
                "multipart/form-data": {"schema": {"type": "object", "properties": form}},
                "application/json": {"schema": {"type": "object", "properties": body}},
            }
        }
    }


async def read_json(request: Request) -> Any:
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"the body is not valid JSON ({exc}); send a JSON object") from None


async def read_body(request: Request, modalities: dict[str, str], limits: Limits) -> dict[str, Any]:
    """The request's ``{input: value}``: JSON as is; multipart files as ``(bytes, filename)``, form fields as
    text for text inputs and JSON (numbers, arrays, objects) or base64 for the rest."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        body = await read_json(request)
        if not isinstance(body, dict):
            raise RequestError("send a JSON object {input: value, ...} (see GET /metadata for the inputs)")
        return body
    if not ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise UnsupportedMediaType(
            f"unsupported content type '{ctype or 'none'}'; send multipart/form-data (files) or application/json"
        )
    form = await request.form(max_files=len(modalities), max_fields=2 * len(modalities) + 8)
    raw: dict[str, Any] = {}
    for key, value in form.multi_items():
        if key in raw:
            raise RequestError(f"input '{key}' was sent twice; send each input once")
        if isinstance(value, UploadFile):
            data = await value.read()
            raw[key] = None if not data and not value.filename else (data, value.filename)
        elif modalities.get(key) == "text" or not value.strip():
            raw[key] = value
        else:
            try:
                raw[key] = orjson.loads(value)
            except orjson.JSONDecodeError:
                raw[key] = value  # base64 for a file input; anything else is refused by to_value
    await form.close()
    return raw


def add_lm_routes(
    app: FastAPI, run: Path, lm: LMRun, limits: Limits, admission: Admission
) -> Callable[[], dict[str, Any]]:
    """/metadata and /generate for a language model (see :mod:`polymodal.gpt.generate`); returns what
    /health shows."""
    from polymodal.gpt.generate import stream

    model, tokenizer = lm.model, lm.tokenizer
    metadata = {
        "kind": lm.rundir.kind,
        "use": "generate",
        "run": run.name,
        "inputs": [{"name": "prompt", "modality": "text", "file": False, "dtype": "str", "accepts": "a string"}],
        "vocab_size": tokenizer.vocab_size,
        "block_size": lm.block_size,
        "limits": vars(limits),
    }

    @app.get("/metadata", summary="What this language model takes")
    async def get_metadata() -> dict[str, Any]:
        return metadata

    def tokens(req: GenerateRequest) -> Iterator[str]:
        """Decoded text pieces as tokens come (a BPE token may end inside a character: wait for the rest)."""
        ids = torch.tensor([tokenizer.encode(req.prompt)], dtype=torch.long)
        stops = [tokenizer.encode(s) for s in req.stop if s]
        gen = torch.Generator().manual_seed(req.seed)
        pending: list[int] = []
        for tok in stream(
            model,
            ids,
            req.max_tokens,
            req.temperature,
            req.top_k or None,
            req.top_p,
            req.repetition_penalty,
            stops or None,
            generator=gen,
        ):
            pending.append(tok)
            text = tokenizer.decode(pending)
            if "\ufffd" not in text:
                pending = []
                yield text

    @app.post("/generate", summary="Continue a prompt (language-model runs)")
    async def generate(req: GenerateRequest) -> Any:
        if req.max_tokens > limits.max_new_tokens:
            raise RequestError(f"max_tokens {req.max_tokens} is over the server's limit of {limits.max_new_tokens}")
        tokenizer.encode(req.prompt)  # an unknown character is a 422 before any streaming starts
        if req.stream:
            return StreamingResponse(tokens(req), media_type="text/plain; charset=utf-8")
        text = await admission.run(lambda: admission.in_thread(lambda: "".join(tokens(req))))
        ended = next((s for s in req.stop if s and text.endswith(s)), "")
        return {"prompt": req.prompt, "text": text.removesuffix(ended) if ended else text, "stopped_at": ended or None}

    return lambda: {"block_size": metadata["block_size"]}
