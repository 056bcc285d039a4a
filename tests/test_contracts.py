"""Every registered plug-in against its contract: encoders, fusions, heads, modalities, datasets, pretraining
objectives, GAN generators and critics (built on CPU: shape, no NaN, gradients everywhere), and every run kind
(a tiny run of each through train, load, evaluate, report, its use verb, and a refusal of every other verb)."""

from __future__ import annotations

import copy
import dataclasses
import json
import stat

import numpy as np
import pytest
import torch
from conftest import one_error_line, run_cli

from polymodal import api
from polymodal.config import parse_inputs
from polymodal.data.targets import num_outputs
from polymodal.errors import ConfigError, DataError
from polymodal.kinds.base import VERBS, kind_named
from polymodal.model import drop_modalities
from polymodal.pretrain.base import build_encoders
from polymodal.registry import (
    CRITICS,
    DATASETS,
    ENCODERS,
    FUSIONS,
    GENERATORS,
    HEADS,
    KINDS,
    MODALITIES,
    OBJECTIVES,
    Registry,
)
from polymodal.runs import SCHEMA, RunDir

B = 3


def example_input(cls: type) -> torch.Tensor:
    if hasattr(cls, "example_input"):
        return cls.example_input(B)
    return torch.randn(B, *cls.EXAMPLE_IN_SHAPE)


def assert_all_grads(module: torch.nn.Module) -> None:
    missing = [n for n, p in module.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"


@pytest.mark.parametrize("name", ENCODERS.names())
def test_encoder_contract(name):
    entry = ENCODERS.get(name)
    torch.manual_seed(0)
    enc = ENCODERS.build(
        name, {}, in_shape=entry.factory.EXAMPLE_IN_SHAPE, **getattr(entry.factory, "EXAMPLE_CONTEXT", {})
    )
    enc.train()
    out = enc(example_input(entry.factory))
    assert out.shape[0] == B and out.shape[-1] == enc.out_dim and out.ndim in (2, 3)
    assert torch.isfinite(out).all()
    out.float().pow(2).mean().backward()
    assert_all_grads(enc)


@pytest.mark.parametrize("name", ENCODERS.names())
def test_encoder_gives_finite_output_for_the_missing_input_placeholder(name):
    """A missing input reaches its encoder as zeros (for series: no valid step; for text: all padding)."""
    entry = ENCODERS.get(name)
    torch.manual_seed(0)
    enc = ENCODERS.build(
        name, {}, in_shape=entry.factory.EXAMPLE_IN_SHAPE, **getattr(entry.factory, "EXAMPLE_CONTEXT", {})
    ).eval()
    x = example_input(entry.factory)
    assert torch.isfinite(enc(torch.zeros_like(x))).all()


def fusion_inputs() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return {"b_audio": torch.randn(B, 6, requires_grad=True), "a_image": torch.randn(B, 10, requires_grad=True)}


@pytest.mark.parametrize("name", FUSIONS.names())
def test_fusion_contract(name):
    torch.manual_seed(0)
    fusion = FUSIONS.build(name, {}, in_dims={"b_audio": 6, "a_image": 10}, num_outputs=5)
    fusion.train()
    out = fusion(fusion_inputs())
    assert out.shape == (B, fusion.out_dim) and torch.isfinite(out).all()
    if fusion.emits_logits:
        assert fusion.out_dim == 5
    loss = out.pow(2).mean()
    if hasattr(fusion, "forward_with_aux"):  # per-input classifiers, trained by their own loss
        for logits in fusion.forward_with_aux(fusion_inputs())[1].values():
            loss = loss + logits.pow(2).mean()
    loss.backward()
    assert_all_grads(fusion)


@pytest.mark.parametrize("name", FUSIONS.names())
def test_fusion_accepts_token_sequences(name):
    torch.manual_seed(0)
    fusion = FUSIONS.build(name, {}, in_dims={"b_audio": 6, "a_image": 10}, num_outputs=5).eval()
    e = {"b_audio": torch.randn(B, 7, 6), "a_image": torch.randn(B, 4, 10)}  # (B, T, D) tokens
    out = fusion(e)
    assert out.shape == (B, fusion.out_dim) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", FUSIONS.names())
def test_fusion_handles_a_missing_modality(name):
    """A sample whose audio is missing (zero embedding, flag False) gives finite output that does not depend on
    what the audio encoder produced for it; the other samples are unaffected by the flag."""
    torch.manual_seed(0)
    fusion = FUSIONS.build(name, {}, in_dims={"b_audio": 6, "a_image": 10}, num_outputs=5).eval()
    e = fusion_inputs()
    present = {"a_image": torch.tensor([True, True, True]), "b_audio": torch.tensor([True, False, True])}
    zeroed = {**e, "b_audio": e["b_audio"] * present["b_audio"].unsqueeze(1)}
    out = fusion(zeroed, present)
    assert torch.isfinite(out).all()
    other = {**zeroed, "b_audio": zeroed["b_audio"].clone()}
    other["b_audio"][0] += 1.0  # a present sample changes ...
    assert not torch.allclose(fusion(other, present)[0], out[0])
    assert torch.allclose(fusion(other, present)[1], out[1], atol=1e-6)  # ... the missing one does not care
    everyone = {k: torch.ones(B, dtype=torch.bool) for k in e}
    assert torch.allclose(fusion(e, everyone), fusion(e), atol=1e-6)


@pytest.mark.parametrize("name", FUSIONS.names())
def test_fusion_uses_sorted_keys_not_insertion_order(name):
    torch.manual_seed(0)
    fusion = FUSIONS.build(name, {}, in_dims={"b_audio": 6, "a_image": 10}, num_outputs=5).eval()
    e = fusion_inputs()
    assert torch.equal(fusion(e), fusion(dict(reversed(list(e.items())))))


@pytest.mark.parametrize("name", HEADS.names())
def test_head_contract(name):
    torch.manual_seed(0)
    cls = HEADS.get(name).factory
    head = HEADS.build(name, getattr(cls, "EXAMPLE_CONFIG", {}), in_dim=12, target=cls.EXAMPLE_TARGET)
    logits = head(torch.randn(B, 12))
    assert logits.shape[0] == B and torch.isfinite(logits).all()
    if cls.TARGET != "text":  # a caption head emits decoder prefixes, not one score per output
        assert logits.shape == (B, num_outputs(cls.EXAMPLE_TARGET))
    target = cls.example_target(B)
    loss = head.loss(logits, target)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert_all_grads(head)
    kept = head.reduce(logits.detach()) if hasattr(head, "reduce") else logits.detach()
    metrics = head.metrics(kept.numpy(), target.numpy())
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert isinstance(head.describe(logits[0].detach()), dict)


@pytest.mark.parametrize("name", MODALITIES.names())
def test_every_modality_builds_from_defaults(name):
    transform = MODALITIES.build(name, {})
    assert callable(transform) and isinstance(transform.state_dict(), dict)


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_dataset_reports_its_status(name):
    entry = DATASETS.get(name)
    status = entry.factory(**dataclasses.asdict(entry.config())).status()
    assert isinstance(status, str) and status


def test_unknown_names_list_what_exists():
    with pytest.raises(ConfigError) as e:
        ENCODERS.get("image_cnm")
    assert "did you mean 'image_cnn'" in str(e.value) and "audio_cnn" in str(e.value)


def test_registering_twice_is_refused():
    reg: Registry = Registry("thing")

    @dataclasses.dataclass
    class Cfg:
        pass

    reg.register("x", Cfg)(object)
    with pytest.raises(ValueError, match="twice"):
        reg.register("x", Cfg)(object)


def test_modality_dropout_never_drops_every_input():
    torch.manual_seed(0)
    present = {"a": torch.ones(1000, dtype=torch.bool), "b": torch.ones(1000, dtype=torch.bool)}
    present["b"][:100] = False  # already missing: these rows must keep "a"
    out = drop_modalities(present, 0.5)
    dropped_a, dropped_b = ~out["a"], ~out["b"]
    assert not (dropped_a & dropped_b).any()
    assert out["a"][:100].all()
    dropped_b[:100] = False
    rate = (dropped_a | dropped_b).float().mean().item()
    assert 0.4 < rate < 0.6


@pytest.mark.parametrize(
    "name", [n for n in ENCODERS.names() if "tokens" in {f.name for f in dataclasses.fields(ENCODERS.get(n).config)}]
)
def test_token_encoders_emit_sequences_for_attention_fusions(name):
    entry = ENCODERS.get(name)
    ctx = getattr(entry.factory, "EXAMPLE_CONTEXT", {})
    enc = ENCODERS.build(name, {"tokens": True}, in_shape=entry.factory.EXAMPLE_IN_SHAPE, **ctx)
    out = enc(example_input(entry.factory))
    assert out.ndim == 3 and out.shape[0] == B and out.shape[1] > 1 and out.shape[2] == enc.out_dim


def test_attention_fusions_get_token_sequences():
    from polymodal.config import parse_recipe
    from polymodal.model import build_model

    raw = {
        "name": "t",
        "data": {"table": "x.csv"},
        "inputs": [
            {"name": "image", "modality": "image", "encoder": {"name": "image_cnn", "width": 4}},
            {"name": "audio", "modality": "audio", "encoder": {"name": "audio_cnn", "width": 4}},
        ],
        "fusion": "cross_attention",
    }
    target = {"kind": "class", "classes": ["a", "b"]}
    shapes = {"image": (1, 28, 28), "audio": (1, 13, 40)}
    model = build_model(parse_recipe(raw), shapes, target)
    assert model.encoders["image"].tokens and model.encoders["audio"].tokens
    logits = model({"image": torch.randn(2, 1, 28, 28), "audio": torch.randn(2, 1, 13, 40)}).logits
    assert logits.shape == (2, 2)
    raw["fusion"] = "concat"
    assert not build_model(parse_recipe(raw), shapes, target).encoders["image"].tokens


# ---------------------------------------------------------------------------------------------------------
# Modalities (transforms), pretraining objectives, GAN networks: the same checks, from each one's own examples


def fitted(name: str, folder, n: int = 6):
    """Modality ``name``'s transform (its example config) fitted on its own ``n`` example cells; and the cells."""
    cls = MODALITIES.get(name).factory
    transform = MODALITIES.build(name, getattr(cls, "EXAMPLE_CONFIG", {}))
    cells = cls.example_cells(n, folder)
    transform.fit(cells)
    return transform, cells


@pytest.mark.parametrize("name", MODALITIES.names())
def test_modality_contract(name, tmp_path):
    """Cells in, tensors of one shape and dtype out; many cells at once (the first pass's chunks) give what each
    gives alone, bit for bit, with an error in place of a bad cell; what fit learnt round-trips through JSON (a run
    saves it); augmentation and corruption keep the shape."""
    transform, cells = fitted(name, tmp_path, 4)
    xs = [transform(c) for c in cells]
    assert len({tuple(x.shape) for x in xs}) == 1 and len({x.dtype for x in xs}) == 1
    together = transform.many([*cells, str(tmp_path / "missing.file")] if transform.files else cells)
    assert all(torch.equal(a, b) for a, b in zip(together, xs, strict=False))
    assert not transform.files or isinstance(together[-1], DataError)
    assert all(torch.isfinite(x.float()).all() for x in xs)
    cls = MODALITIES.get(name).factory
    again = MODALITIES.build(name, getattr(cls, "EXAMPLE_CONFIG", {}))
    again.load_state_dict(json.loads(json.dumps(transform.state_dict())))
    assert all(torch.equal(again(c), x) for c, x in zip(cells, xs, strict=True))
    assert isinstance(transform.context(), dict) and isinstance(transform.settings(), str)
    torch.manual_seed(0)
    assert transform.augment(xs[0]).shape == xs[0].shape
    noisy = transform.corrupt(cells[0], xs[0], 0.5, np.random.default_rng(0))
    assert noisy.shape == xs[0].shape and torch.isfinite(noisy.float()).all()


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_pretraining_objective_contract(name, tmp_path):
    """Built on its example inputs' real cells: a finite loss that reaches every parameter in training, and
    metrics over a split from what ``reduce`` keeps."""
    cls = OBJECTIVES.get(name).factory
    inputs = parse_inputs(copy.deepcopy(cls.EXAMPLE_INPUTS))
    assert len(inputs) == cls.INPUTS
    transforms, batch = {}, {}
    for spec in inputs:
        transform = MODALITIES.build(spec.modality, spec.preprocessing)
        cells = MODALITIES.get(spec.modality).factory.example_cells(2 * B, tmp_path)
        transform.fit(cells)
        transforms[spec.name], batch[spec.name] = transform, torch.stack([transform(c) for c in cells])
    shapes = {k: tuple(v.shape[1:]) for k, v in batch.items()}
    contexts = {k: t.context() for k, t in transforms.items()}
    torch.manual_seed(0)
    model = OBJECTIVES.build(
        name,
        {},
        encoders=build_encoders(inputs, shapes, contexts),
        in_shapes=shapes,
        contexts=contexts,
        transforms=transforms,
        classes=["even", "odd"],
    )
    y = torch.tensor([0, 1] * B)
    model.train()
    loss = model.loss(model(batch, None), y)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    untrained = tuple(
        f"encoders.{s.name}.{part}." for s in inputs for part in getattr(cls, "UNTRAINED_ENCODER_PARTS", ())
    )
    missing = [n for n, p in model.named_parameters() if p.grad is None and not n.startswith(untrained)]
    assert not missing, f"parameters without gradient: {missing}"
    model.eval()
    with torch.no_grad():
        kept = model.reduce(model(batch, None))
    metrics = model.metrics(kept.numpy(), y.numpy())
    assert metrics and all(np.isfinite(v) for v in metrics.values() if isinstance(v, float))


@pytest.mark.parametrize("generator", GENERATORS.names())
@pytest.mark.parametrize("critic", CRITICS.names())
@pytest.mark.parametrize(("shape", "cond_kind", "cond_dim"), [((1, 28, 28), "label", 10), ((3, 32, 32), "text", 40)])
def test_gan_networks_contract(generator, critic, shape, cond_kind, cond_dim):
    """Images of the asked shape in the generator's tanh range, one finite score each, gradients everywhere,
    and no batch norm in the critic (the gradient penalty is per example)."""
    from polymodal.gan.condition import example_condition

    torch.manual_seed(0)
    context = {"image_shape": shape, "cond_kind": cond_kind, "cond_dim": cond_dim}
    g, d = GENERATORS.build(generator, {}, **context), CRITICS.build(critic, {}, **context)
    c = example_condition(cond_kind, cond_dim, B)
    x = g(torch.randn(B, g.z_dim), c)
    assert x.shape == (B, *shape) and x.min() >= -1 and x.max() <= 1
    score = d(x, c)
    assert score.shape == (B,) and torch.isfinite(score).all()
    score.sum().backward()
    assert_all_grads(g)
    assert_all_grads(d)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in d.modules())


# ---------------------------------------------------------------------------------------------------------
# Run kinds: each trains its own tiny example; then every verb either works or is refused in one line

VERB_ARGS = {
    "evaluate": [],
    "report": [],
    "predict": ["--image", "x.png"],
    "generate": ["--prompt", "x"],
    "sample": ["--label", "1"],
    "chat": ["--message", "hello"],
    "export": ["--no-eval"],
    "serve": ["--port", "8765"],
}


def test_every_verb_has_arguments_here():
    assert set(VERB_ARGS) == set(VERBS)


@pytest.mark.parametrize("name", KINDS.names())
def test_run_kind_contract(name, tmp_path, capsys):
    """train → the run directory (schema, kind, provenance, history, files readable by all) → the saved recipe
    reloads as its kind → evaluate and report → its own use verb → a one-line refusal for every other verb."""
    kind = kind_named(name)
    raw = kind.example(tmp_path)
    assert raw.get("kind", "supervised") == name
    run = tmp_path / "run"
    res = api.train(raw, run)
    assert res.kind == name and res.split == kind.split and res.metrics and res.epochs_run >= 1
    rundir = RunDir(run)
    meta = rundir.meta()
    assert meta["schema"] == SCHEMA and meta["kind"] == name and meta["data_hash"].startswith("sha256:")
    assert [r["epoch"] for r in rundir.history()] == list(range(1, res.epochs_run + 1))
    assert rundir.record()["kind"] == name and rundir.final_metrics() == (res.split, res.metrics)
    assert api.load_recipe(rundir.recipe_file).kind == name
    for path in [run, *run.rglob("*")]:  # a run directory is for sharing: nothing private to its owner
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & (0o055 if path.is_dir() else 0o044) == (0o055 if path.is_dir() else 0o044), (path, oct(mode))

    code, out, err = run_cli(capsys, "evaluate", run, "--json")
    assert code == 0, err
    assert isinstance(json.loads(out), dict) and (run / "report.html").is_file()
    page = (run / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and raw["name"] in page
    use = kind.example_use(run, tmp_path)
    if use:
        code, out, err = run_cli(capsys, *use)
        assert code == 0, err
    for verb, args in VERB_ARGS.items():
        if verb in kind.verbs:
            continue
        code, out, err = run_cli(capsys, verb, run, *args)
        line = one_error_line(code, err, status=4)  # the run directory is the problem
        assert f"is a kind: {name} run" in line and f"`polymodal {verb}` is for" in line, verb
