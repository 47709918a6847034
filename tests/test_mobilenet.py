"""The MobileNetV2-style builder (issue 17): shapes, names, freezing, summary counts, parameter
groups and a short training run. Gradient checks of the unit and a tiny model: specs_depthwise."""
import numpy as np
import pytest

import nnlite.nn as nn
from nnlite.losses import SoftmaxCrossEntropy
from nnlite.models import (block_names, extract_features, freeze, inverted_residual, mobilenet_v2, param_counts,
                           summary, unfreeze)
from nnlite.models.freeze import block_param_groups
from nnlite.optim import SGD, Adam
from nnlite.train import Trainer


def data(n=48, seed=0, size=8):
    """Three separable classes: the class is the brightest channel."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.random((n, 3, size, size)).astype(np.float32) * 0.5
    x[np.arange(n), y] += 0.5
    return x, y.astype(np.int64)


def small(seed=0, **kw):
    args = dict(widths=(4, 8), units=(1, 2), expansion=2, stem_width=4, num_classes=3, head_hidden=0,
                head_dropout=0, rng=seed)
    return mobilenet_v2(**{**args, **kw})


@pytest.mark.parametrize("size, final", [(32, 4), (64, 8)])
def test_default_shapes_on_32_and_64_pixel_inputs(size, final):
    m = mobilenet_v2(rng=0)
    assert block_names(m) == ["stem", "block1", "block2", "block3", "block4"]
    x = np.zeros((2, 3, size, size), np.float32)
    assert m.forward(x).shape == (2, 64, final, final) == m.output_shape(x.shape)
    assert param_counts(m) == {"total": 124_496, "trainable": 118_960, "non_trainable": 5_536}


def test_units_names_residuals_and_head():
    m = mobilenet_v2(widths=(4, 6, 8), units=(1, 2, 1), expansion=(1, 3, 2), stem_width=4, num_classes=5, rng=0)
    assert block_names(m) == ["stem", "block1", "block2", "block3", "head"]
    assert m.forward(np.zeros((2, 3, 16, 16), np.float32)).shape == (2, 5)
    assert isinstance(m.block1.unit1, nn.Residual)               # stride 1, 4 -> 4: identity shortcut
    assert not isinstance(m.block2.unit1, nn.Residual)           # stride 2
    assert isinstance(m.block2.unit2, nn.Residual)
    names = [n for n, _ in m.named_parameters()]
    assert "block1.unit1.block.depthwise.weight" in names
    assert not any(n.startswith("block1.unit1.block.expand") for n in names)        # t = 1: no expand conv
    assert "block2.unit1.expand.weight" in names and "block2.unit1.project_bn.bias" in names
    assert m.block2.unit1.expand.weight.shape == (12, 4, 1, 1)                       # t = 3
    assert m.block2.unit1.depthwise.weight.shape == (12, 1, 3, 3)
    assert m.block2.unit1.depthwise.stride == (2, 2)
    assert all(getattr(mod, "bias", 0) is None for _, mod in m.named_modules()
               if isinstance(mod, (nn.Conv2d, nn.DepthwiseConv2d)))
    assert extract_features(m, np.zeros((3, 3, 16, 16), np.float32), "block2.unit1.depthwise").shape == (3, 12)


def test_features_reach_inside_a_residual_unit():
    m = mobilenet_v2(widths=(4, 6), units=(1, 2), expansion=3, stem_width=4, rng=0)
    x = np.random.default_rng(0).random((5, 3, 16, 16), dtype=np.float32)
    f = extract_features(m, x, "block2.unit2.block.depthwise", pool="none")
    m.eval()
    h = m.block2.unit1.forward(m.block1.forward(m.stem.forward(x)))
    unit = m.block2.unit2.block
    by_hand = unit.depthwise.forward(unit.expand_relu.forward(unit.expand_bn.forward(unit.expand.forward(h))))
    np.testing.assert_allclose(f, by_hand, rtol=1e-5, atol=1e-6)
    assert f.shape == (5, 18, 8, 8)
    residual_out = extract_features(m, x, "block2.unit2", pool="none")
    np.testing.assert_allclose(residual_out, m.block2.unit2.forward(h), rtol=1e-5, atol=1e-6)
    assert "forward" not in vars(unit.depthwise)                      # the wrapper is gone
    with pytest.raises(KeyError, match="block2.unit9"):
        extract_features(m, x, "block2.unit9")


def test_inverted_residual_adds_the_input_only_when_shapes_agree():
    rng = np.random.default_rng(1)
    unit = inverted_residual(3, 3, 1, expansion=2, rng=0, dtype=np.float64)
    x = rng.standard_normal((2, 3, 5, 5))
    unit.eval()
    np.testing.assert_allclose(unit.forward(x), unit.block.forward(x) + x, rtol=0, atol=1e-12)
    assert inverted_residual(3, 4, 1, rng=0).forward(x.astype(np.float32)).shape == (2, 4, 5, 5)
    assert inverted_residual(3, 3, 2, rng=0).forward(x.astype(np.float32)).shape == (2, 3, 3, 3)


def test_summary_counts_by_hand():
    m = small(num_classes=None, units=(1, 1))
    # stem: conv 4*3*9 + bn 2*4; block1 (4 -> 4, t=2, hidden 8): expand 8*4, dw 8*9, project 4*8, bns 2*(8+8+4);
    # block2 (4 -> 8, stride 2): expand 8*4, dw 8*9, project 8*8, bns 2*(8+8+8); buffers = the bns' sizes again
    params = (108 + 8) + (32 + 72 + 32 + 40) + (32 + 72 + 64 + 48)
    assert params == 508
    assert param_counts(m) == {"total": 508 + 2 * 4 + 40 + 48, "trainable": 508, "non_trainable": 96}
    freeze(m, up_to="block1")
    text = summary(m, (3, 8, 8), print_fn=None)
    assert "block2_unit1_depthwise (DepthwiseConv2d)  (None, 8, 4, 4)" in text
    assert "block2_unit1_expand_relu (ReLU6)" in text
    assert "block1_unit1 (Residual(...))" in text
    assert "Total params: 604 " in text
    assert f"Trainable params: {216:,} " in text                 # block2 only
    assert f"Non-trainable params: {604 - 216:,} " in text
    rows = {line.split()[0]: line.split()[-1] for line in text.splitlines() if "_" in line.split(" ")[0]}
    assert rows["block1_unit1"] == "no" and rows["block2_unit1_depthwise"] == "yes"


@pytest.mark.parametrize("opt_cls", [SGD, Adam])
def test_frozen_blocks_unchanged_by_training_and_unfreeze(opt_cls):
    x, y = data()
    m = small()
    freeze(m, up_to="block1")
    prefix = ("stem", "block1")
    frozen = {n: p.data.copy() for n, p in m.named_parameters() if n.startswith(prefix)}
    bufs = {n: b.copy() for n, b in m.named_buffers() if n.startswith(prefix)}
    others = {n: p.data.copy() for n, p in m.named_parameters() if not n.startswith(prefix)}
    opt = opt_cls(m.parameters(), lr=0.05)
    Trainer(m, SoftmaxCrossEntropy(), opt, batch_size=16, rng=0, progress=False).fit(x, y, epochs=1)
    for n, p in m.named_parameters():
        if n in frozen:
            np.testing.assert_array_equal(p.data, frozen[n])       # bit-identical
            assert not p.grad.any()
        else:
            assert not np.array_equal(p.data, others[n]), n        # every trainable weight moved
    for n, b in m.named_buffers():
        if n in bufs:
            np.testing.assert_array_equal(b, bufs[n])             # frozen BN statistics kept
    out = m.forward(x[:4])
    assert m.backward(np.ones_like(out)) is None                  # the frozen prefix gets no backward pass
    unfreeze(m, "block1")
    freeze(m, "block2.unit1.depthwise")                           # dotted paths reach single layers
    assert all(p.trainable for p in m.block1.parameters())
    assert not m.block2.unit1.depthwise.weight.trainable and m.block2.unit1.project.weight.trainable


def test_block_param_groups():
    m = small()
    groups = block_param_groups(m, lr=0.1, lrs={"block2": 0.01})
    assert [g["name"] for g in groups] == ["stem", "block1", "block2", "head"]
    assert [g["lr"] for g in groups] == [0.1, 0.1, 0.01, 0.1]
    assert sum(len(g["params"]) for g in groups) == len(m.parameters())


def test_a_short_training_run_reduces_the_loss():
    x, y = data(n=60, seed=1)
    m = small(seed=1)
    loss = SoftmaxCrossEntropy()
    opt = Adam(m.parameters(), lr=1e-2)
    m.train()
    losses = []
    for _ in range(25):
        losses.append(loss.forward(m.forward(x), y))
        m.zero_grad()
        m.backward(loss.backward())
        opt.step()
    m.eval()
    final = loss.forward(m.forward(x), y)
    assert losses[-1] < 0.2 * losses[0], losses                   # training mode (batch statistics)
    assert final < 0.5 * losses[0], (losses[0], final)            # eval mode (running statistics)
    assert np.mean(m.forward(x).argmax(1) == y) >= 0.85


def test_builder_argument_errors():
    with pytest.raises(ValueError, match="equal length"):
        mobilenet_v2(widths=(8, 16), units=(1,))
    with pytest.raises(ValueError, match="one int per block"):
        mobilenet_v2(widths=(8, 16), units=(1, 1), expansion=(1, 6, 6))
    with pytest.raises(ValueError, match="expansion must be >= 1, got 0"):
        mobilenet_v2(widths=(8,), units=(1,), expansion=0)
    with pytest.raises(TypeError, match="widths must be an int"):
        mobilenet_v2(widths=(8.5,), units=(1,))
    with pytest.raises(ValueError, match="stride must be >= 1"):
        inverted_residual(4, 4, 0)
