"""Every registered component, built with its default config on CPU: shape, no NaN, gradients everywhere."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import polymodal.components  # noqa: F401  (registers everything)
from polymodal.data.targets import num_outputs
from polymodal.errors import ConfigError
from polymodal.model import drop_modalities
from polymodal.registry import DATASETS, ENCODERS, FUSIONS, HEADS, MODALITIES, Registry

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
    for logits in getattr(fusion, "unimodal_logits", {}).values():  # trained by their own loss
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
    logits = model({"image": torch.randn(2, 1, 28, 28), "audio": torch.randn(2, 1, 13, 40)})
    assert logits.shape == (2, 2)
    raw["fusion"] = "concat"
    assert not build_model(parse_recipe(raw), shapes, target).encoders["image"].tokens
