"""The two storeys of kernels and the switch between them.

* nnlite.functional (textbook) imports only NumPy and nnlite._checks, never the engine;
  the loop references import nothing from the code they check.
* engine == textbook for every kernel the engine tunes (forward and backward, float64 to
  1e-10, C-contiguous and channel-last layouts, inside and outside a threads() block; the
  loop-reference side is in test_kernels_fast.py), and the dtype is kept.
* ``use_kernels`` switches whole models; the same model trained on both storeys ends with
  the same weights.
"""
import ast
import pathlib
import sys

import numpy as np
import pytest

import nnlite
from nnlite import fast as E
from nnlite import functional as T
from nnlite import kernels, nn, parallel, use_kernels
from nnlite.fast import layout
from nnlite.losses import SoftmaxCrossEntropy

PKG = pathlib.Path(nnlite.__file__).parent
TOL = 1e-10


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield ("." * node.level) + (node.module or "")


@pytest.mark.parametrize("path", sorted((PKG / "functional").glob("*.py")), ids=lambda p: p.name)
def test_textbook_storey_imports_only_numpy_and_checks(path):
    for name in _imports(path):
        if name.startswith(".") and not name.startswith(".."):      # a sibling textbook module
            continue
        top = name.split(".")[0]
        assert (name in ("..", ".._checks") or top in ("numpy", "scipy")
                or top in sys.stdlib_module_names), f"{path.name} imports {name}"
    if path.name.startswith("reference"):
        assert not [n for n in _imports(path) if n.startswith(".")], "loop references import checked code"


def channel_last(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def close(a, b):
    return a is None and b is None or (a.shape == b.shape and np.allclose(a, b, rtol=0, atol=TOL))


def _blocks():
    """Run inside and outside a two-worker threads() block."""
    return [None, 2]


@pytest.mark.parametrize("threads", _blocks())
@pytest.mark.parametrize("x_last", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_engine_equals_textbook(threads, x_last, training):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 8, 6, 5)) * 2 + 1
    xin = channel_last(x) if x_last else x
    g, b = rng.random(8) + 0.5, rng.standard_normal(8)
    rm, rv = rng.standard_normal(8), rng.random(8) + 0.5
    d = rng.standard_normal(x.shape)
    with parallel.threads(threads) if threads else _null():
        o1, c1 = E.batchnorm_forward(xin, g, b, training, rm, rv)
        r1 = E.batchnorm_backward(channel_last(d) if x_last else d, c1)
    o2, c2 = T.batchnorm_forward(x, g, b, training, rm, rv)
    r2 = T.batchnorm_backward(d, c2)
    assert close(o1, o2) and all(close(a, c) for a, c in zip(r1, r2))
    if training:
        assert close(c1["batch_var_unbiased"], c2["batch_var_unbiased"])


@pytest.mark.parametrize("threads", _blocks())
@pytest.mark.parametrize("bias", [True, False])
def test_linear_and_relu_engine_equal_textbook(threads, bias):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((300, 200)), rng.standard_normal((120, 200))
    b = rng.standard_normal(120) if bias else None
    d = rng.standard_normal((300, 120))
    with parallel.threads(threads) if threads else _null():
        o1, c1 = E.linear_forward(x, w, b)
        g1 = E.linear_backward(d, c1)
        r1, rc1 = E.relu_forward(o1)
        dr1 = E.relu_backward(d, rc1)
    o2, c2 = T.linear_forward(x, w, b)
    g2 = T.linear_backward(d, c2)
    r2, rc2 = T.relu_forward(o2)
    assert close(o1, o2) and all(close(a, c) for a, c in zip(g1, g2))
    assert close(r1, r2) and close(dr1, T.relu_backward(d, rc2))


@pytest.mark.parametrize("threads", _blocks())
def test_conv_and_pools_engine_equal_textbook_in_a_block(threads):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 3, 12, 12))
    w, b = rng.standard_normal((8, 3, 3, 3)), rng.standard_normal(8)
    with parallel.threads(threads) if threads else _null():
        o1, c1 = E.conv2d_forward(x, w, b, 1, 1)
        p1, pc1 = E.maxpool2d_forward(o1, 2)
        a1, ac1 = E.avgpool2d_forward(o1, 3, 2)
        d = rng.standard_normal(p1.shape)
        da = rng.standard_normal(a1.shape)
        dp1 = E.maxpool2d_backward(d, pc1) + E.avgpool2d_backward(da, ac1)
        g1 = E.conv2d_backward(dp1, c1)
    o2, c2 = T.conv2d_forward(x, w, b, 1, 1)
    p2, pc2 = T.maxpool2d_forward(o2, 2)
    a2, ac2 = T.avgpool2d_forward(o2, 3, 2)
    dp2 = T.maxpool2d_backward(d, pc2) + T.avgpool2d_backward(da, ac2)
    g2 = T.conv2d_backward(dp2, c2)
    assert close(o1, o2) and close(p1, p2) and close(a1, a2) and close(dp1, dp2)
    assert all(close(a, c) for a, c in zip(g1, g2))


@pytest.mark.parametrize("threads", _blocks())
@pytest.mark.parametrize("x_last", [False, True], ids=["nchw", "channel-last"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, args", [("sigmoid", ()), ("tanh", ()), ("leaky_relu", (0.1,)), ("relu", ())])
def test_elementwise_activations_engine_is_bit_identical_and_keeps_layout(threads, x_last, dtype, name, args):
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((64, 8, 17, 33)) * 20).astype(dtype)   # > MIN_PARALLEL_SIZE; sigmoid: both branches
    x[0, 0, 0, :3] = 0                                                 # the kinks
    d = rng.standard_normal(x.shape).astype(dtype)
    xin, din = (channel_last(x), channel_last(d)) if x_last else (x, d)
    with parallel.threads(threads) if threads else _null():
        o1, c1 = getattr(E, name + "_forward")(xin, *args)
        g1 = getattr(E, name + "_backward")(din, c1)
    o2, c2 = getattr(T, name + "_forward")(x, *args)
    g2 = getattr(T, name + "_backward")(d, c2)
    assert np.array_equal(o1, o2) and np.array_equal(g1, g2)
    assert o1.dtype == g1.dtype == dtype
    assert layout.is_nhwc(o1) == layout.is_nhwc(g1) == x_last


@pytest.mark.parametrize("threads", _blocks())
@pytest.mark.parametrize("x_last", [False, True], ids=["nchw", "channel-last"])
@pytest.mark.parametrize("geometry", [(3, 1, 1, True), (3, 2, 1, False), ((2, 3), (1, 2), (1, 0), True),
                                      (3, 1, 0, True)], ids=["k3s1p1", "k3s2p1-nobias", "rect", "k3s1p0"])
def test_depthwise_and_relu6_engine_equal_textbook_and_loop_reference(threads, x_last, geometry):
    from nnlite.functional.reference_depthwise import depthwise_conv2d_forward_naive as loop_fwd
    k, s, p, bias = geometry
    kh, kw = (k, k) if isinstance(k, int) else k
    rng = np.random.default_rng(7)
    x = rng.standard_normal((13, 6, 9, 8))                   # 13 images: uneven chunks on 2 workers
    w, b = rng.standard_normal((6, 1, kh, kw)), (rng.standard_normal(6) if bias else None)
    with parallel.threads(threads) if threads else _null():
        o1, c1 = E.depthwise_conv2d_forward(channel_last(x) if x_last else x, w, b, s, p)
        d = rng.standard_normal(o1.shape)
        g1 = E.depthwise_conv2d_backward(channel_last(d) if x_last else d, c1)
        r1, rc1 = E.relu6_forward(o1 * 4)
        dr1 = E.relu6_backward(d, rc1)
    o2, c2 = T.depthwise_conv2d_forward(x, w, b, s, p)
    g2 = T.depthwise_conv2d_backward(d, c2)
    r2, rc2 = T.relu6_forward(o2 * 4)
    assert close(o1, o2) and close(o1, loop_fwd(x, w, b, s, p)[0])
    assert all(close(a, c) for a, c in zip(g1, g2))
    assert close(r1, r2) and close(dr1, T.relu6_backward(d, rc2))
    assert 0 < (dr1 == 0).mean() < 1 and ((r1 == 0) | (r1 == 6)).any()     # both kinks are hit
    assert layout.is_nhwc(o1) and layout.is_nhwc(g1[0])       # channel-last, as the engine's conv


def test_depthwise_engine_skips_parts_keeps_float32_and_runs_multipliers_on_the_textbook():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 3, 7, 7)).astype(np.float32)
    w, b = rng.standard_normal((3, 1, 3, 3)).astype(np.float32), np.zeros(3, np.float32)
    o, c = E.depthwise_conv2d_forward(x, w, b, 2, 1)
    dx, dw, db = E.depthwise_conv2d_backward(np.ones_like(o), c, need_input_grad=False)
    assert dx is None and dw.dtype == db.dtype == o.dtype == np.float32
    dx, dw, db = E.depthwise_conv2d_backward(np.ones_like(o), c, need_weight_grad=False)
    assert dw is None and db is None and dx.dtype == np.float32 and dx.shape == x.shape
    w2 = rng.standard_normal((6, 1, 3, 3))                     # multiplier 2: the textbook kernel
    x2 = x.astype(np.float64)
    o1, c1 = E.depthwise_conv2d_forward(x2, w2, None, 1, 1)
    o2, c2 = T.depthwise_conv2d_forward(x2, w2, None, 1, 1)
    d = rng.standard_normal(o1.shape)
    assert close(o1, o2) and all(close(a, c) for a, c in zip(E.depthwise_conv2d_backward(d, c1),
                                                            T.depthwise_conv2d_backward(d, c2)))
    with pytest.raises(ValueError, match="C\\*m, 1, kh, kw"):
        E.depthwise_conv2d_forward(x, w[:2, :, :, :].repeat(2, axis=1), None)


@pytest.mark.parametrize("K", [E, T], ids=["fast", "textbook"])
def test_every_kernel_keeps_float32(K):
    rng = np.random.default_rng(3)
    f = np.float32
    x = rng.standard_normal((4, 3, 8, 8)).astype(f)
    w, b = rng.standard_normal((5, 3, 3, 3)).astype(f), np.zeros(5, f)
    o, c = K.conv2d_forward(x, w, b, 1, 1)
    outs = [o, *K.conv2d_backward(np.ones_like(o), c)]
    for fwd, bwd in ((K.maxpool2d_forward, K.maxpool2d_backward), (K.avgpool2d_forward, K.avgpool2d_backward)):
        p, pc = fwd(o, 2)
        outs += [p, bwd(np.ones_like(p), pc)]
    bo, bc = K.batchnorm_forward(o, np.ones(5, f), np.zeros(5, f), True)
    outs += [bo, *K.batchnorm_backward(np.ones_like(bo), bc)]
    lo, lc = K.linear_forward(x.reshape(4, -1), rng.standard_normal((6, 192)).astype(f), np.zeros(6, f))
    outs += [lo, *K.linear_backward(np.ones_like(lo), lc)]
    assert {a.dtype for a in outs} == {np.dtype(f)}


def test_use_kernels_switch_and_context():
    assert kernels.active_name() == "fast" and kernels.active() is E
    with use_kernels("textbook"):
        assert kernels.active() is T
        with use_kernels("fast"):
            assert kernels.active() is E
        assert kernels.active() is T
    assert kernels.active() is E
    with pytest.raises(ValueError, match="textbook"):
        use_kernels("slow")
    assert kernels.active() is E


def test_a_layer_keeps_its_forward_storey_for_backward():
    """Switching storeys between forward and backward is safe: backward uses the forward's."""
    rng = np.random.default_rng(4)
    conv = nn.Conv2d(2, 3, 3, padding=1, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 2, 5, 5))
    with use_kernels("textbook"):
        out = conv.forward(x)
    assert conv._cache[0] == "textbook"
    dx = conv.backward(np.ones_like(out))                       # the active storey is "fast" here
    out2 = conv.forward(x)
    assert close(out, out2) and close(dx, conv.backward(np.ones_like(out2)))


def _train(storey, steps=4):
    rng = np.random.default_rng(5)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, rng=rng, dtype=np.float64), nn.BatchNorm2d(4, dtype=np.float64),
        nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, rng=rng, dtype=np.float64), nn.ReLU(),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(6, 5, rng=rng, dtype=np.float64))
    data = np.random.default_rng(6)
    x, y = data.random((32, 1, 8, 8)), data.integers(0, 5, 32)
    loss = SoftmaxCrossEntropy()
    with use_kernels(storey):
        for _ in range(steps):
            loss.forward(model.forward(x), y)
            model.zero_grad()
            model.backward(loss.backward())
            for p in model.parameters():
                p.data -= 0.1 * p.grad
    return model


def test_the_same_model_trains_identically_on_both_storeys():
    fast, textbook = _train("fast"), _train("textbook")
    for (name, a), (_, b) in zip(fast.state_dict().items(), textbook.state_dict().items()):
        assert np.allclose(a, b, rtol=0, atol=1e-10), name


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_every_engine_kernel_has_its_textbook_twin_and_is_its_own_function():
    """ENGINE_KERNELS names what the engine tunes: each has a textbook kernel of the same name
    (the contract the tests compare against) and is not simply the re-exported textbook one."""
    for name in E.ENGINE_KERNELS:
        assert callable(getattr(T, name)), name
        assert getattr(E, name) is not getattr(T, name), name
    assert set(T.__all__) <= set(E.__all__)
