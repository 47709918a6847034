"""Transposed convolution, upsampling, reshape layers and BCE (issue 16): loop reference,
the conv adjoint identities, PyTorch twins and argument errors. Gradient checks: specs_autoencoder."""
import numpy as np
import pytest

import nnlite.nn as nn
from nnlite import functional as F
from nnlite.functional.bce import bce
from nnlite.functional.conv_transpose import (conv_transpose2d_backward, conv_transpose2d_forward,
                                              conv_transpose_output_size)
from nnlite.functional.reference_conv_transpose import (conv_transpose2d_backward_naive,
                                                        conv_transpose2d_forward_naive)
from nnlite.functional.upsample import upsample2d_backward, upsample2d_forward
from nnlite.losses import BCE

# (C_in, C_out, H, W, k, stride, pad, output_pad)
GEOMETRIES = [(3, 4, 5, 6, 3, 1, 0, 0), (3, 2, 4, 3, 3, 2, 1, 1), (2, 3, 3, 4, 4, 2, 1, 0),
              (2, 3, 3, 4, (2, 3), (2, 3), (1, 0), (1, 2)), (1, 2, 4, 4, 5, 3, 2, 2)]


def _case(g, dtype=np.float64, seed=0):
    cin, cout, h, w, k, s, p, op = g
    rng = np.random.default_rng(seed)
    kh, kw = (k, k) if np.isscalar(k) else k
    x = rng.standard_normal((2, cin, h, w)).astype(dtype)
    wt = rng.standard_normal((cin, cout, kh, kw)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype)
    return x, wt, b, s, p, op, rng


@pytest.mark.parametrize("g", GEOMETRIES)
def test_conv_transpose_equals_loop_reference(g):
    x, w, b, s, p, op, rng = _case(g)
    out, cache = conv_transpose2d_forward(x, w, b, s, p, op)
    ref, ref_cache = conv_transpose2d_forward_naive(x, w, b, s, p, op)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    for got, want in zip(conv_transpose2d_backward(dout, cache), conv_transpose2d_backward_naive(dout, ref_cache)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("g", GEOMETRIES)
def test_conv_transpose_is_the_conv_input_gradient_and_its_backward_the_conv(g):
    """Same weights w (C_in, C_out, kh, kw), read as a conv C_out -> C_in: conv_transpose(x) is
    conv2d's dx for dout = x, and conv_transpose's dx for dout = y is conv2d(y)."""
    x, w, _, s, p, op, rng = _case(g)
    out, cache = conv_transpose2d_forward(x, w, None, s, p, op)
    _, conv_cache = F.conv2d_forward(np.zeros_like(out), w, None, s, p)
    dx_conv, _, _ = F.conv2d_backward(x, conv_cache, need_weight_grad=False)
    np.testing.assert_allclose(out, dx_conv, rtol=1e-12, atol=1e-12)
    y = rng.standard_normal(out.shape)
    conv_y, _ = F.conv2d_forward(y, w, None, s, p)
    dx, _, _ = conv_transpose2d_backward(y, cache, need_weight_grad=False)
    np.testing.assert_allclose(dx, conv_y, rtol=1e-12, atol=1e-12)
    # adjointness <conv(y), x> == <y, conv_transpose(x)>
    assert np.isclose(np.sum(conv_y * x), np.sum(y * out), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_transpose_keeps_dtype_and_skips_parts(dtype):
    x, w, b, s, p, op, rng = _case(GEOMETRIES[1], dtype)
    out, cache = conv_transpose2d_forward(x, w, b, s, p, op)
    assert out.dtype == dtype
    dx, dw, db = conv_transpose2d_backward(np.ones_like(out), cache, need_input_grad=False)
    assert dx is None and dw.dtype == dtype and db.dtype == dtype
    dx, dw, db = conv_transpose2d_backward(np.ones_like(out), cache, need_weight_grad=False)
    assert dx.dtype == dtype and dw is None and db is None


def test_conv_transpose_errors():
    with pytest.raises(ValueError, match="output_padding"):
        conv_transpose_output_size(4, 3, 2, 1, 2)
    with pytest.raises(ValueError, match="empty output"):
        conv_transpose_output_size(1, 1, 1, 1, 0)
    with pytest.raises(ValueError, match="output_padding must be smaller than stride"):
        nn.ConvTranspose2d(2, 3, 3, stride=1, output_padding=1)
    layer = nn.ConvTranspose2d(2, 3, 3, rng=0)
    with pytest.raises(ValueError, match="2 input channels"):
        layer.forward(np.zeros((1, 3, 4, 4), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        layer.forward(np.zeros((1, 2, 4, 4), np.float64))
    with pytest.raises(ValueError, match="shape"):
        conv_transpose2d_forward(np.zeros((1, 2, 3, 3)), np.zeros((3, 2, 3, 3)))


def test_layer_output_shape_and_decoder_sizes():
    layer = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1, rng=0)
    x = np.zeros((5, 4, 7, 7), np.float32)
    assert layer.forward(x).shape == layer.output_shape(x.shape) == (5, 2, 14, 14)
    up = nn.Upsample(1.5, "bilinear")
    assert up.forward(x).shape == up.output_shape(x.shape) == (5, 4, 10, 10)


UPSAMPLE_CASES = [("nearest", 2, None), ("nearest", 3, None), ("nearest", 1.7, None), ("nearest", None, (9, 5)),
                  ("bilinear", 2, None), ("bilinear", 2.5, None), ("bilinear", (1.5, 3), None),
                  ("bilinear", 0.6, None), ("bilinear", None, (9, 5))]


@pytest.mark.parametrize("mode,scale,size", UPSAMPLE_CASES)
def test_upsample_matches_pytorch_interpolate(mode, scale, size):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 5, 4))
    out, cache = upsample2d_forward(x, scale, mode, size)
    xt = torch.tensor(x, requires_grad=True)
    kw = {"align_corners": False} if mode == "bilinear" else {}
    ot = torch.nn.functional.interpolate(xt, scale_factor=scale, size=size, mode=mode, **kw)
    np.testing.assert_allclose(out, ot.detach().numpy(), rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    ot.backward(torch.tensor(dout))
    np.testing.assert_allclose(upsample2d_backward(dout, cache), xt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_upsample_nearest_x2_is_repeat_and_bilinear_keeps_constants():
    x = np.random.default_rng(0).standard_normal((2, 1, 3, 4)).astype(np.float32)
    out, _ = upsample2d_forward(x, 2, "nearest")
    np.testing.assert_array_equal(out, x.repeat(2, axis=2).repeat(2, axis=3))
    assert out.dtype == np.float32
    c = np.full((1, 2, 3, 3), 0.7)
    np.testing.assert_allclose(upsample2d_forward(c, 2.5, "bilinear")[0], 0.7, rtol=1e-12)


def test_upsample_errors():
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError, match="mode"):
        nn.Upsample(2, "bicubic")
    with pytest.raises(ValueError, match="exactly one"):
        upsample2d_forward(x, 2, "nearest", (8, 8))
    with pytest.raises(ValueError, match="scale_factor"):
        nn.Upsample(-1)
    with pytest.raises(TypeError, match="N, C, H, W"):
        upsample2d_forward(np.zeros((4, 4)), 2)


@pytest.mark.parametrize("g", GEOMETRIES)
def test_conv_transpose_layer_matches_pytorch(g):
    torch = pytest.importorskip("torch")
    cin, cout, h, w, k, s, p, op = g
    layer = nn.ConvTranspose2d(cin, cout, k, stride=s, padding=p, output_padding=op, rng=3, dtype=np.float64)
    layer.bias.data[...] = np.random.default_rng(4).standard_normal(cout)
    tl = torch.nn.ConvTranspose2d(cin, cout, k, stride=s, padding=p, output_padding=op).double()
    with torch.no_grad():
        tl.weight.copy_(torch.tensor(layer.weight.data))
        tl.bias.copy_(torch.tensor(layer.bias.data))
    x = np.random.default_rng(5).standard_normal((2, cin, h, w))
    out = layer.forward(x)
    xt = torch.tensor(x, requires_grad=True)
    ot = tl(xt)
    np.testing.assert_allclose(out, ot.detach().numpy(), rtol=1e-10, atol=1e-12)
    dout = np.random.default_rng(6).standard_normal(out.shape)
    ot.backward(torch.tensor(dout))
    dx = layer.backward(dout)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad, tl.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, tl.bias.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_reshape_and_unflatten():
    x = np.arange(24, dtype=np.float32).reshape(2, 12)
    r = nn.Unflatten(1, (3, 2, 2))
    out = r.forward(x)
    assert out.shape == (2, 3, 2, 2) and out.dtype == np.float32
    np.testing.assert_array_equal(out[1, 2, 1], [22, 23])
    assert r.backward(out).shape == (2, 12)
    with pytest.raises(ValueError, match="12 values per sample"):
        r.forward(np.zeros((2, 10), np.float32))
    with pytest.raises(ValueError, match="dim=1"):
        nn.Unflatten(2, (3, 4))
    with pytest.raises(ValueError, match="shape"):
        nn.Reshape((3, 0))


def test_bce_matches_pytorch_and_checks_range():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.99, (4, 1, 5, 5))
    t = rng.uniform(0, 1, p.shape)
    value, grad = bce(p, t)
    pt = torch.tensor(p, requires_grad=True)
    lt = torch.nn.functional.binary_cross_entropy(pt, torch.tensor(t))
    lt.backward()
    assert np.isclose(value, lt.item(), rtol=1e-12)
    np.testing.assert_allclose(grad, pt.grad.numpy(), rtol=1e-10)
    loss = BCE()
    assert np.isfinite(loss.forward(np.array([0.0, 1.0], np.float32), np.array([0.0, 1.0])))
    assert loss.backward().dtype == np.float32 and np.all(np.isfinite(loss.backward()))
    with pytest.raises(ValueError, match="prob must lie in"):
        bce(np.array([1.5]), np.array([1.0]))
    with pytest.raises(ValueError, match="shape"):
        bce(np.array([0.5, 0.5]), np.array([1.0]))


@pytest.mark.parametrize("g", GEOMETRIES + [(16, 8, 7, 7, 3, 2, 1, 1), (4, 3, 5, 5, 1, 1, 0, 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_engine_conv_transpose_equals_textbook(g, dtype):
    """nnlite.fast.conv_transpose (the engine conv's input-gradient path) == the textbook kernel."""
    from nnlite import parallel
    from nnlite.fast import conv_transpose as engine
    x, w, b, s, p, op, rng = _case(g, dtype)
    out, cache = conv_transpose2d_forward(x, w, b, s, p, op)
    dout = rng.standard_normal(out.shape).astype(dtype)
    want = conv_transpose2d_backward(dout, cache)
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4)
    for threads in (1, 2):
        with parallel.threads(threads):
            got_out, got_cache = engine.conv_transpose2d_forward(x, w, b, s, p, op)
            got = engine.conv_transpose2d_backward(dout, got_cache)
        assert got_out.dtype == dtype
        np.testing.assert_allclose(got_out, out, **tol)
        for a, e in zip(got, want):
            assert a.dtype == dtype
            np.testing.assert_allclose(a, e, **tol)
    dx, dw, db = engine.conv_transpose2d_backward(dout, got_cache, need_weight_grad=False)
    assert dw is None and db is None and dx.shape == x.shape


def test_layer_runs_the_active_storey():
    import nnlite
    layer = nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1, rng=0, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4))
    outs = {}
    for storey in ("textbook", "fast"):
        with nnlite.use_kernels(storey):
            outs[storey] = layer.forward(x)
        assert layer._cache[0] == storey
        layer.zero_grad()
        dx = layer.backward(np.ones_like(outs[storey]))      # backward uses the forward's storey
        assert dx.shape == x.shape
    np.testing.assert_allclose(outs["fast"], outs["textbook"], rtol=1e-12)
    with pytest.raises(ValueError, match="shape"):
        layer.backward(np.ones((2, 2, 3, 3)))
