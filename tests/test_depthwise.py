"""Depthwise convolution and ReLU6 (issue 17): loop reference, the grouped-conv identity,
PyTorch twins, dtypes, skipped parts, initialization and argument errors.
Gradient checks: specs_depthwise."""
import numpy as np
import pytest

import nnlite.nn as nn
from nnlite import functional as F
from nnlite import use_kernels
from nnlite.functional.depthwise import depthwise_conv2d_backward, depthwise_conv2d_forward
from nnlite.functional.reference_depthwise import depthwise_conv2d_backward_naive, depthwise_conv2d_forward_naive

# (C, m, H, W, k, stride, pad, bias)
GEOMETRIES = [(3, 1, 5, 6, 3, 1, 1, True), (2, 1, 5, 5, 3, 1, 0, False), (3, 1, 7, 6, 3, 2, 1, True),
              (2, 2, 6, 7, 3, 2, 1, False), (3, 2, 5, 4, 3, 1, 1, True), (2, 3, 5, 7, (2, 3), (1, 2), (1, 0), True),
              (4, 1, 4, 4, 1, 1, 0, True), (1, 2, 6, 5, 5, 3, 2, True)]
IDS = [f"C{g[0]}_m{g[1]}_k{g[4]}_s{g[5]}_p{g[6]}_{'bias' if g[7] else 'nobias'}" for g in GEOMETRIES]


def _case(g, dtype=np.float64, seed=0):
    c, m, h, w, k, s, p, bias = g
    rng = np.random.default_rng(seed)
    kh, kw = (k, k) if np.isscalar(k) else k
    x = rng.standard_normal((2, c, h, w)).astype(dtype)
    wt = rng.standard_normal((c * m, 1, kh, kw)).astype(dtype)
    b = rng.standard_normal(c * m).astype(dtype) if bias else None
    return x, wt, b, s, p, rng


@pytest.mark.parametrize("g", GEOMETRIES, ids=IDS)
def test_depthwise_equals_loop_reference(g):
    x, w, b, s, p, rng = _case(g)
    out, cache = depthwise_conv2d_forward(x, w, b, s, p)
    ref, ref_cache = depthwise_conv2d_forward_naive(x, w, b, s, p)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    dout_copy = dout.copy()
    got, want = depthwise_conv2d_backward(dout, cache), depthwise_conv2d_backward_naive(dout, ref_cache)
    for name, a, e in zip(("dx", "dw", "db"), got, want):
        if e is None:
            assert a is None, name
        else:
            assert a.shape == e.shape, name
            np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12, err_msg=name)
    np.testing.assert_array_equal(dout, dout_copy)            # dout is never written


@pytest.mark.parametrize("g", GEOMETRIES, ids=IDS)
def test_depthwise_is_a_conv_with_a_block_diagonal_weight(g):
    """Output channel c*m + k of the depthwise conv = the full conv whose weight is zero except
    w_full[c*m + k, c] = w[c*m + k, 0] (PyTorch's groups=C), forward and every gradient."""
    x, w, b, s, p, rng = _case(g, seed=1)
    c, m = x.shape[1], w.shape[0] // x.shape[1]
    full = np.zeros((c * m, c) + w.shape[2:])
    full[np.arange(c * m), np.arange(c * m) // m] = w[:, 0]
    out, cache = depthwise_conv2d_forward(x, w, b, s, p)
    ref, ref_cache = F.conv2d_forward(x, full, b, s, p)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = depthwise_conv2d_backward(dout, cache)
    rdx, rdw, rdb = F.conv2d_backward(dout, ref_cache)
    np.testing.assert_allclose(dx, rdx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw[:, 0], rdw[np.arange(c * m), np.arange(c * m) // m], rtol=1e-12, atol=1e-12)
    assert (db is None) == (b is None) and (db is None or np.allclose(db, rdb, rtol=1e-12, atol=1e-12))


@pytest.mark.parametrize("g", GEOMETRIES, ids=IDS)
def test_depthwise_matches_pytorch_grouped_conv(g):
    torch = pytest.importorskip("torch")
    x, w, b, s, p, rng = _case(g, seed=2)
    out, cache = depthwise_conv2d_forward(x, w, b, s, p)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = depthwise_conv2d_backward(dout, cache)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    bt = None if b is None else torch.tensor(b, requires_grad=True)
    ot = torch.nn.functional.conv2d(xt, wt, bt, stride=s, padding=p, groups=x.shape[1])
    ot.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, ot.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=1e-12, atol=1e-12)
    if b is not None:
        np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("storey", ["fast", "textbook"])
def test_depthwise_layer_matches_pytorch_layer(storey):
    """nn.DepthwiseConv2d == torch.nn.Conv2d(C, C*m, k, groups=C) with the same weights, in float32
    (to float32 rounding) on both storeys; gradients accumulate into Parameter.grad."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    layer = nn.DepthwiseConv2d(4, 3, stride=2, padding=1, multiplier=2, rng=rng)
    layer.bias.data[...] = rng.standard_normal(8).astype(np.float32)
    tl = torch.nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=4)
    with torch.no_grad():
        tl.weight.copy_(torch.tensor(layer.weight.data))
        tl.bias.copy_(torch.tensor(layer.bias.data))
    x = rng.standard_normal((3, 4, 9, 8)).astype(np.float32)
    with use_kernels(storey):
        out = layer.forward(x)
        dout = rng.standard_normal(out.shape).astype(np.float32)
        dx = layer.backward(dout)
    xt = torch.tensor(x, requires_grad=True)
    ot = tl(xt)
    ot.backward(torch.tensor(dout))
    assert out.dtype == dx.dtype == layer.weight.grad.dtype == np.float32
    np.testing.assert_allclose(out, ot.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.weight.grad, tl.weight.grad.numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(layer.bias.grad, tl.bias.grad.numpy(), rtol=1e-5, atol=1e-4)


def test_relu6_matches_pytorch_at_and_between_the_kinks():
    torch = pytest.importorskip("torch")
    x = np.array([[-3.0, -0.0, 0.0, 1e-9, 2.5, 6.0 - 1e-9, 6.0, 6.5, 100.0]])
    layer = nn.ReLU6()
    out = layer.forward(x)
    dout = np.arange(1.0, 10.0)[None]
    dx = layer.backward(dout)
    xt = torch.tensor(x, requires_grad=True)
    ot = torch.nn.functional.relu6(xt)
    ot.backward(torch.tensor(dout))
    np.testing.assert_array_equal(out, ot.detach().numpy())
    np.testing.assert_array_equal(dx, xt.grad.numpy())
    assert dx[0, 2] == 0 and dx[0, 6] == 0 and dx[0, 4] == 5               # 0 at both kinks


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depthwise_and_relu6_keep_dtype_and_skip_parts(dtype):
    x, w, b, s, p, _ = _case(GEOMETRIES[3], dtype)
    b = np.zeros(w.shape[0], dtype)
    out, cache = depthwise_conv2d_forward(x, w, b, s, p)
    assert out.dtype == dtype
    dx, dw, db = depthwise_conv2d_backward(np.ones_like(out), cache, need_input_grad=False)
    assert dx is None and dw.dtype == dtype and db.dtype == dtype
    dx, dw, db = depthwise_conv2d_backward(np.ones_like(out), cache, need_weight_grad=False)
    assert dx.dtype == dtype and dx.shape == x.shape and dw is None and db is None
    y, c = F.relu6_forward(x * 10)
    assert y.dtype == dtype and F.relu6_backward(np.ones_like(y), c).dtype == dtype


def test_layer_needs_input_grad_freezing_and_backward_twice():
    rng = np.random.default_rng(4)
    layer = nn.DepthwiseConv2d(3, 3, padding="same", multiplier=2, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 3, 5, 5))
    out = layer.forward(x)
    assert out.shape == (2, 6, 5, 5) == layer.output_shape(x.shape)
    d = rng.standard_normal(out.shape)
    dx1 = layer.backward(d)
    dx2 = layer.backward(d)
    np.testing.assert_array_equal(dx1, dx2)
    np.testing.assert_allclose(layer.weight.grad, 2 * depthwise_conv2d_backward(d, layer._cache[1])[1])
    layer.needs_input_grad = False
    assert layer.backward(d) is None
    layer.zero_grad()
    layer.weight.trainable = layer.bias.trainable = False
    layer.needs_input_grad = True
    assert layer.backward(d).shape == x.shape
    assert not layer.weight.grad.any() and not layer.bias.grad.any()


def test_he_init_uses_the_depthwise_fan_in():
    """fan_in = kh*kw (one input channel per filter, as PyTorch for groups=C): std = sqrt(2 / 9)."""
    layer = nn.DepthwiseConv2d(4000, 3, rng=0)
    assert layer.weight.shape == (4000, 1, 3, 3) and layer.weight.data.dtype == np.float32
    assert abs(layer.weight.data.std() / np.sqrt(2 / 9) - 1) < 0.02
    assert not layer.bias.data.any()
    assert nn.DepthwiseConv2d(2, 3, bias=False).bias is None


def test_depthwise_argument_errors():
    x = np.zeros((2, 3, 5, 5))
    w = np.zeros((6, 1, 3, 3))
    with pytest.raises(ValueError, match=r"w must have shape \(C\*m, 1, kh, kw\) with C = 3"):
        depthwise_conv2d_forward(x, np.zeros((4, 1, 3, 3)))
    with pytest.raises(ValueError, match=r"w must have shape \(C\*m, 1, kh, kw\)"):
        depthwise_conv2d_forward(x, np.zeros((3, 3, 3, 3)))
    with pytest.raises(TypeError, match="float32 but the weights w are float64"):
        depthwise_conv2d_forward(x.astype(np.float32), w)
    with pytest.raises(ValueError, match=r"b must have shape \(6,\)"):
        depthwise_conv2d_forward(x, w, np.zeros(3))
    with pytest.raises(ValueError, match="stride must be >= 1"):
        depthwise_conv2d_forward(x, w, stride=0)
    with pytest.raises(ValueError, match="pad must be a non-negative int"):
        depthwise_conv2d_forward(x, w, pad=-1)
    with pytest.raises(ValueError, match="x must have rank 4"):
        depthwise_conv2d_forward(x[0], w)
    with pytest.raises(TypeError, match="x must be a numpy.ndarray"):
        depthwise_conv2d_forward(x.tolist(), w)
    with pytest.raises(ValueError, match="does not fit"):
        depthwise_conv2d_forward(x[:, :, :2, :2], w)
    with pytest.raises(ValueError, match="multiplier must be >= 1, got 0"):
        nn.DepthwiseConv2d(3, 3, multiplier=0)
    with pytest.raises(TypeError, match="channels must be an int"):
        nn.DepthwiseConv2d(3.0, 3)
    with pytest.raises(ValueError, match='padding="same" needs stride 1'):
        nn.DepthwiseConv2d(3, 3, stride=2, padding="same")
    layer = nn.DepthwiseConv2d(3, 3, rng=0)
    with pytest.raises(ValueError, match="expects 3 input channels"):
        layer.forward(np.zeros((1, 4, 5, 5), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        layer.forward(np.zeros((1, 3, 5, 5)))
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.zeros((1, 3, 3, 3), np.float32))
