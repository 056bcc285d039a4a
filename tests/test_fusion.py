"""Fusion families against their closed forms, and their behaviour with missing modalities."""

from __future__ import annotations

import itertools

import pytest
import torch

from polymodal.fusion.base import masked_softmax
from polymodal.fusion.lowrank import lowrank_product
from polymodal.fusion.tensor import tensor_product
from polymodal.registry import FUSIONS


def outer_by_loops(zs: list[torch.Tensor]) -> torch.Tensor:
    """Π_m [z_m; 1] entry by entry, flattened in row-major order: the definition, with no broadcasting."""
    ext = [torch.cat([z, torch.ones(z.shape[0], 1, dtype=z.dtype)], 1) for z in zs]
    b = zs[0].shape[0]
    out = torch.empty(b, *[e.shape[1] for e in ext], dtype=zs[0].dtype)
    for i in range(b):
        for idx in itertools.product(*[range(e.shape[1]) for e in ext]):
            v = torch.ones((), dtype=zs[0].dtype)
            for e, j in zip(ext, idx, strict=True):
                v = v * e[i, j]
            out[(i, *idx)] = v
    return out.flatten(1)


@pytest.mark.parametrize("dims", [(2, 3), (2, 1, 3)])
def test_tensor_product_is_the_extended_outer_product(dims):
    torch.manual_seed(0)
    zs = [torch.randn(2, d, dtype=torch.float64) for d in dims]
    got = tensor_product(zs)
    assert got.shape == (2, torch.tensor([d + 1 for d in dims]).prod().item())
    assert torch.allclose(got, outer_by_loops(zs))
    # the appended ones keep every modality alone: the last block of entries is z_last itself, then 1
    assert torch.allclose(got[:, -1], torch.ones(2, dtype=torch.float64))
    assert torch.allclose(got[:, -(dims[-1] + 1) : -1], zs[-1])


@pytest.mark.parametrize("dims", [(2, 3), (3, 2, 2)])
def test_lowrank_fusion_equals_full_tensor_fusion_with_the_rank_r_weight(dims):
    """LMF output = (outer product) @ W with W = Σ_r ⊗_m F_m[r], built here explicitly."""
    torch.manual_seed(0)
    rank, out = 3, 4
    zs = [torch.randn(5, d, dtype=torch.float64) for d in dims]
    factors = [torch.randn(rank, d + 1, out, dtype=torch.float64) for d in dims]
    full = torch.zeros(*[d + 1 for d in dims], out, dtype=torch.float64)
    for r in range(rank):
        term = factors[0][r]  # (D_1 + 1, O)
        for f in factors[1:]:
            term = term.unsqueeze(-2) * f[r].view(*([1] * (term.ndim - 1)), f.shape[1], out)
        full += term
    expected = tensor_product(zs) @ full.reshape(-1, out)
    assert torch.allclose(lowrank_product(zs, factors), expected)


def test_lowrank_module_uses_that_product():
    torch.manual_seed(0)
    fusion = FUSIONS.build(
        "lowrank", {"rank": 2, "out_dim": 3, "dropout": 0.0}, in_dims={"a": 2, "b": 3}, num_outputs=4
    )
    fusion.eval()
    e = {"a": torch.randn(4, 2), "b": torch.randn(4, 3)}
    raw = lowrank_product([e["a"], e["b"]], list(fusion.factors)) + fusion.bias
    assert torch.allclose(fusion(e), torch.relu(fusion.norm(raw)), atol=1e-6)


def test_late_vote_takes_the_majority_and_breaks_ties_by_confidence():
    fusion = FUSIONS.build("late", {"combine": "vote", "dropout": 0.0}, in_dims={"a": 2, "b": 2, "c": 2}, num_outputs=3)
    fusion.eval()
    with torch.no_grad():
        for k in "abc":
            fusion.classifiers[k].weight.copy_(torch.eye(3, 2))
            fusion.classifiers[k].bias.zero_()
    # a and b vote class 0, c votes class 1 (very confidently): the majority wins
    e = {"a": torch.tensor([[2.0, 0.0]]), "b": torch.tensor([[1.0, 0.0]]), "c": torch.tensor([[0.0, 9.0]])}
    assert fusion(e).argmax(1).item() == 0
    # with b missing it is 1 vote each: the more confident one (c) wins
    present = {"a": torch.tensor([True]), "b": torch.tensor([False]), "c": torch.tensor([True])}
    assert fusion(e, present).argmax(1).item() == 1


def test_masked_softmax_gives_missing_modalities_no_weight():
    w = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    p = masked_softmax(torch.tensor([[0.0, 5.0, 0.0], [1.0, 2.0, 3.0]]), w)
    assert torch.allclose(p[0], torch.tensor([0.5, 0.0, 0.5])) and torch.equal(p[1], torch.zeros(3))


def test_stacking_base_classifiers_learn_only_from_their_own_loss():
    fusion = FUSIONS.build("stacking", {}, in_dims={"a": 4, "b": 4}, num_outputs=3)
    out = fusion({"a": torch.randn(2, 4), "b": torch.randn(2, 4)})
    out.sum().backward()  # the meta-classifier's loss only
    assert all(p.grad is None for p in fusion.classifiers.parameters())
    assert all(p.grad is not None for p in fusion.meta.parameters())


def test_bottleneck_transformer_output_depends_on_each_modality():
    """With one layer and bottleneck tokens, modality b can reach the output only through the shared tokens
    (and the pooled mean); a change in b must still change the fused vector."""
    torch.manual_seed(0)
    fusion = FUSIONS.build(
        "transformer", {"bottleneck": 2, "layers": 1, "dropout": 0.0}, in_dims={"a": 6, "b": 6}, num_outputs=3
    )
    fusion.eval()
    e = {"a": torch.randn(2, 3, 6), "b": torch.randn(2, 4, 6)}
    base = fusion(e)
    e2 = {**e, "b": e["b"] + 1.0}
    assert not torch.allclose(fusion(e2), base)
