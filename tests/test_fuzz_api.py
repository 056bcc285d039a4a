"""Fuzzing the served app from its own OpenAPI schema (issue 16): schemathesis generates requests for every
operation of ``create_app(run)`` (the session's tiny image + audio classifier, and a tiny language model) and
calls the app in process over ASGI. No request may get a 5xx, and every error is JSON ``{"error": one line}``.

Schemathesis fills /predict's multipart and JSON bodies only from the schema, whose input values are free-form;
a focused Hypothesis test therefore sends /predict JSON bodies built from what each input accepts (arrays,
base64 of real and mutated files, text, nested junk) through httpx's ASGI transport.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import schemathesis
from conftest import mnist_digits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis.checks import not_a_server_error

from polymodal import api
from polymodal.serve import create_app
from polymodal.serve.limits import Limits

LIMITS = Limits(max_upload_bytes=2**20, max_image_pixels=1_000_000, max_batch=8, max_new_tokens=32)
FAST = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
CAMPAIGN = settings(FAST, max_examples=500, derandomize=False)


@pytest.fixture(scope="module")
def predict_app(trained_run: Path) -> Any:
    return create_app(trained_run, LIMITS)


@pytest.fixture(scope="module")
def lm_app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A one-layer character GPT trained for 5 steps on a few lines of text (~2 s)."""
    corpus = tmp_path_factory.mktemp("fuzz-lm") / "text.txt"
    corpus.write_text((json.__doc__ or "") * 4, encoding="utf-8")
    recipe = {
        "name": "fuzz-lm",
        "kind": "lm",
        "data": {"corpus": str(corpus), "steps_per_epoch": 5, "eval_batches": 1},
        "model": {"block_size": 16, "n_layer": 1, "n_head": 1, "n_embd": 16},
        "trainer": {"epochs": 1, "batch_size": 4, "checkpoint_every": 0, "threads": 1},
    }
    return create_app(api.train(recipe, tmp_path_factory.mktemp("fuzz-lm-run") / "run").run_dir, LIMITS)


@pytest.fixture(scope="module")
def predict_schema(predict_app: Any) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", predict_app)


@pytest.fixture(scope="module")
def lm_schema(lm_app: Any) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", lm_app)


def assert_well_formed(status: int, content_type: str, body: bytes, what: str) -> None:
    """No 5xx; an error is a JSON object whose ``error`` is one line of text."""
    assert status < 500, f"{what}: {status} {body[:300]!r}"
    if status >= 400:
        assert content_type.startswith("application/json"), f"{what}: {status} {content_type} {body[:200]!r}"
        error = json.loads(body).get("error")
        assert isinstance(error, str) and error and "\n" not in error, f"{what}: {status} {body[:300]!r}"


def check_case(case: Any) -> None:
    response = case.call()
    case.validate_response(response, checks=[not_a_server_error])
    ctype = response.headers.get("content-type") or [""]  # schemathesis keeps each header as a list
    what = f"{case.method} {case.formatted_path}"
    assert_well_formed(response.status_code, ctype[0] if isinstance(ctype, list) else ctype, response.content, what)


def fuzz_every_operation(schema: Any, profile: settings) -> list[str]:
    """Each operation of the schema, its cases drawn by schemathesis and checked; returns what was fuzzed.

    schemathesis.pytest.from_fixture would parametrize per operation, but schemathesis 4.32 reads pytest's
    private ``Function._nodeid``, gone in pytest 9: the operations are walked here instead."""
    done = []
    for result in schema.get_all_operations():
        operation = result.ok()
        given(operation.as_strategy())(profile(lambda case: check_case(case)))()
        done.append(f"{operation.method.upper()} {operation.path}")
    return done


def test_every_operation_of_a_classifier_app(predict_schema):
    assert {"POST /predict", "POST /predict/batch", "GET /health", "GET /metadata"} <= set(
        fuzz_every_operation(predict_schema, FAST)
    )


def test_every_operation_of_a_language_model_app(lm_schema):
    assert {"POST /generate", "GET /health", "GET /metadata"} <= set(fuzz_every_operation(lm_schema, FAST))


@pytest.mark.slow
def test_campaign_classifier_app(predict_schema):
    fuzz_every_operation(predict_schema, CAMPAIGN)


@pytest.mark.slow
def test_campaign_language_model_app(lm_schema):
    fuzz_every_operation(lm_schema, CAMPAIGN)


# /predict JSON bodies from what each input accepts, sent through httpx's in-process ASGI transport.
def real_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(mnist_digits(1, 1)[0]).save(buf, format="PNG")
    return buf.getvalue()


PNG = real_png()


def png(mutate: int | None = None) -> str:
    """A real MNIST PNG as base64, with one byte inverted at ``mutate`` when given."""
    data = bytearray(PNG)
    if mutate is not None:
        data[mutate % len(data)] ^= 0xFF
    return base64.b64encode(bytes(data)).decode()


junk = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=10,
)
numbers = st.floats(min_value=-1e308, max_value=1e308)
values = st.one_of(
    junk,
    st.lists(numbers, max_size=40),  # a waveform
    st.integers(1, 30).flatmap(lambda w: st.lists(st.lists(numbers, min_size=w, max_size=w), min_size=1, max_size=30)),
    st.integers(0, 400).map(png),
    st.just(png()),
    st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()),
)
bodies = st.dictionaries(st.sampled_from(["image", "audio", "other"]), values, max_size=3)


def post_json(app: Any, path: str, body: Any) -> None:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://fuzz") as client:
            return await client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})

    import anyio

    r = anyio.run(call)
    assert_well_formed(r.status_code, r.headers.get("content-type", ""), r.content, f"POST {path} {body!r:.200}")


def test_predict_json_bodies(predict_app):
    run = FAST(given(bodies)(lambda body: post_json(predict_app, "/predict", body)))
    run()
    given(st.lists(bodies, max_size=3))(
        FAST(lambda rows: post_json(predict_app, "/predict/batch", {"instances": rows}))
    )()


@pytest.mark.slow
def test_campaign_predict_json_bodies(predict_app):
    given(bodies)(CAMPAIGN(lambda body: post_json(predict_app, "/predict", body)))()


def test_the_good_request_is_answered(predict_app):
    """The focused test reaches the model: a real PNG as base64 gets a prediction, not an error."""

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=predict_app), base_url="http://t") as c:
            return await c.post("/predict", json={"image": png(), "audio": np.zeros(800).tolist()})

    import anyio

    r = anyio.run(call)
    assert r.status_code == 200 and "label" in r.json(), r.text
