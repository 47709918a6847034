"""The three tiers agree: the engine's conv/pool/ReLU kernels (nnlite.fast) and the textbook
kernels (nnlite.functional) both equal the loop references of nnlite.functional.reference
(float64, 1e-10), forward and backward, for random shapes, strides, pads and windows, for
C-contiguous NCHW and channel-last inputs and gradients, and through every internal path
(one image per chunk, several or the whole batch; patches by one window copy or per kernel
offset; bias in the GEMMs or added; dx GEMMs per offset or one for all offsets).
Max-pool ties go to the FIRST maximum."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnlite import fast as F
from nnlite import functional as T
from nnlite.fast import conv as conv_mod
from nnlite.fast.layout import is_nhwc
from nnlite.functional import reference as ref

TOL = 1e-10
SETTINGS = settings(max_examples=50, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def channel_last(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def layouts(a, which):
    return channel_last(a) if which else a


def close(a, b):
    return a.shape == b.shape and np.allclose(a, b, rtol=0, atol=TOL)


@st.composite
def conv_cases(draw):
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    h = draw(st.integers(max(1, kh - 2 * ph), 9))
    w = draw(st.integers(max(1, kw - 2 * pw), 9))
    n, c, co = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    return dict(n=n, c=c, co=co, h=h, w=w, k=(kh, kw), s=(sh, sw), p=(ph, pw),
                bias=draw(st.booleans()), x_last=draw(st.booleans()), d_last=draw(st.booleans()),
                chunk=draw(st.sampled_from([1, 300, 1 << 30])), per_offset=draw(st.sampled_from([0, 6, 1000])),
                bias_in_gemm=draw(st.booleans()),
                transposed_max=draw(st.sampled_from([0, 32, 1000])), dx_as_conv=draw(st.sampled_from([0, 32])),
                seed=draw(st.integers(0, 2 ** 16)))


@SETTINGS
@given(conv_cases())
def test_conv2d_equals_loop_reference(case):
    rng = np.random.default_rng(case["seed"])
    kh, kw = case["k"]
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"]))
    w = rng.standard_normal((case["co"], case["c"], kh, kw))
    b = rng.standard_normal(case["co"]) if case["bias"] else None
    knobs = ("CHUNK_BYTES", "CHUNK_MIN_ROWS", "PATCH_PER_OFFSET_MAX_RUN", "BIAS_IN_GEMM",
             "TRANSPOSED_PATCHES_MAX_K", "DX_AS_CONV_MAX_CHANNELS")
    old = {k: getattr(conv_mod, k) for k in knobs}
    # chunk=1: one image per chunk (a last chunk smaller than the others when n = 3 and the
    # minimum row count asks for 2 images); 1 << 30: the whole batch in one chunk
    new = dict(zip(knobs, (case["chunk"], 2 * case["h"] * case["w"] if case["chunk"] == 1 else 0,
                           case["per_offset"], case["bias_in_gemm"],
                           case["transposed_max"], case["dx_as_conv"])))
    for k, v in new.items():
        setattr(conv_mod, k, v)
    try:
        out, cache = F.conv2d_forward(layouts(x, case["x_last"]), w, b, case["s"], case["p"])
        rout, rcache = ref.conv2d_forward_naive(x, w, b, case["s"], case["p"])
        assert close(out, rout)
        d = rng.standard_normal(out.shape)
        dx, dw, db = F.conv2d_backward(layouts(d, case["d_last"]), cache)
    finally:
        for k, v in old.items():
            setattr(conv_mod, k, v)
        conv_mod.release_workspaces()
    rdx, rdw, rdb = ref.conv2d_backward_naive(d, rcache)
    tout, tcache = T.conv2d_forward(x, w, b, case["s"], case["p"])                # textbook
    tdx, tdw, tdb = T.conv2d_backward(d, tcache)
    assert close(tout, rout)
    for gx, gw, gb in ((dx, dw, db), (tdx, tdw, tdb)):
        assert close(gx, rdx) and close(gw, rdw)
        assert (gb is None) == (b is None)
        if b is not None:
            assert close(gb, rdb)


@st.composite
def depthwise_cases(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    return dict(n=draw(st.integers(1, 5)), c=draw(st.integers(1, 4)), m=draw(st.sampled_from([1, 1, 2])),
                h=draw(st.integers(max(1, kh - 2 * ph), 9)), w=draw(st.integers(max(1, kw - 2 * pw), 9)),
                k=(kh, kw), s=(draw(st.integers(1, 3)), draw(st.integers(1, 3))), p=(ph, pw),
                bias=draw(st.booleans()), x_last=draw(st.booleans()), d_last=draw(st.booleans()),
                chunk=draw(st.sampled_from([1, 1 << 30])), threads=draw(st.sampled_from([None, 2])),
                seed=draw(st.integers(0, 2 ** 16)))


@SETTINGS
@given(depthwise_cases())
def test_depthwise_equals_loop_reference(case):
    """Engine and textbook depthwise conv == the loop reference; chunk=1 byte forces one image
    per chunk (1 << 30: the whole batch in one), inside and outside a two-worker block."""
    from nnlite import parallel
    from nnlite.fast import depthwise as dw_mod
    from nnlite.functional import reference_depthwise as rdw
    rng = np.random.default_rng(case["seed"])
    kh, kw = case["k"]
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"]))
    w = rng.standard_normal((case["c"] * case["m"], 1, kh, kw))
    b = rng.standard_normal(case["c"] * case["m"]) if case["bias"] else None
    rout, rcache = rdw.depthwise_conv2d_forward_naive(x, w, b, case["s"], case["p"])
    d = rng.standard_normal(rout.shape)
    rgrads = rdw.depthwise_conv2d_backward_naive(d, rcache)
    old = dw_mod.CHUNK_BYTES
    dw_mod.CHUNK_BYTES = case["chunk"]
    try:
        with parallel.threads(case["threads"] or 1):
            out, cache = F.depthwise_conv2d_forward(layouts(x, case["x_last"]), w, b, case["s"], case["p"])
            grads = F.depthwise_conv2d_backward(layouts(d, case["d_last"]), cache)
    finally:
        dw_mod.CHUNK_BYTES = old
    tout, tcache = T.depthwise_conv2d_forward(x, w, b, case["s"], case["p"])
    tgrads = T.depthwise_conv2d_backward(d, tcache)
    for o, g in ((out, grads), (tout, tgrads)):
        assert close(o, rout)
        assert close(g[0], rgrads[0]) and close(g[1], rgrads[1])
        assert (g[2] is None) == (b is None) and (b is None or close(g[2], rgrads[2]))


@st.composite
def pool_cases(draw):
    ph, pw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 4))))
    h, w = draw(st.integers(ph, 10)), draw(st.integers(pw, 10))
    return dict(n=draw(st.integers(1, 3)), c=draw(st.integers(1, 3)), h=h, w=w, k=(ph, pw), s=stride,
                ties=draw(st.booleans()), x_last=draw(st.booleans()), d_last=draw(st.booleans()),
                seed=draw(st.integers(0, 2 ** 16)))


@SETTINGS
@given(pool_cases())
def test_pools_equal_loop_reference(case):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"]))
    if case["ties"]:                       # few distinct values: many tied maxima per window
        x = rng.integers(-2, 3, x.shape).astype(np.float64)
    xin = layouts(x, case["x_last"])
    for K in (F, T):
      for fwd, bwd, rfwd, rbwd in (
            (K.maxpool2d_forward, K.maxpool2d_backward, ref.maxpool2d_forward_naive, ref.maxpool2d_backward_naive),
            (K.avgpool2d_forward, K.avgpool2d_backward, ref.avgpool2d_forward_naive, ref.avgpool2d_backward_naive)):
        out, cache = fwd(xin, case["k"], case["s"])
        rout, rcache = rfwd(x, case["k"], case["s"])
        assert close(out, rout), fwd.__module__ + fwd.__name__
        d = rng.standard_normal(out.shape)
        assert close(bwd(layouts(d, case["d_last"]), cache), rbwd(d, rcache)), bwd.__module__ + bwd.__name__


@pytest.mark.parametrize("F", [F, T], ids=["fast", "textbook"])
def test_maxpool_first_maximum_wins(F):
    """All-equal windows: the whole gradient goes to the top-left element of each window."""
    x = np.ones((1, 1, 4, 4))
    for xin in (x, channel_last(x)):
        out, cache = F.maxpool2d_forward(xin, 2)
        dx = F.maxpool2d_backward(np.ones_like(out), cache)
        assert np.array_equal(dx[0, 0], [[1, 0, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
    # overlapping windows: a shared first maximum collects the gradient of every window
    x = np.array([[[[0.0, 5.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]])
    out, cache = F.maxpool2d_forward(x, 2, 1)
    dx = F.maxpool2d_backward(np.ones_like(out), cache)
    assert np.array_equal(dx[0, 0], [[0, 2, 0], [1, 1, 0], [0, 0, 0]])
    assert np.array_equal(dx, ref.maxpool2d_backward_naive(np.ones_like(out), ref.maxpool2d_forward_naive(x, 2, 1)[1]))


@pytest.mark.parametrize("F", [F, T], ids=["fast", "textbook"])
@pytest.mark.parametrize("x_last", [False, True])
def test_relu_backward_fresh_array_and_layout(x_last, F):
    rng = np.random.default_rng(0)
    x = layouts(rng.standard_normal((2, 3, 4, 5)), x_last)
    out, cache = F.relu_forward(x)
    d = layouts(rng.standard_normal(out.shape), x_last)
    d_before = d.copy()
    dx = F.relu_backward(d, cache)
    assert np.array_equal(dx, d * (x > 0)) and np.array_equal(d, d_before)
    assert not np.shares_memory(dx, d)
    assert dx.dtype == d.dtype and (not x_last or is_nhwc(dx))


def test_conv_layouts_and_dtypes_float32():
    """float32 stays float32 through every kernel; conv/pool outputs are channel-last views
    that behave as ordinary NCHW arrays."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 10, 10)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    b = np.zeros(5, np.float32)
    out, cache = F.conv2d_forward(x, w, b, 1, 1)
    assert out.dtype == np.float32 and out.shape == (4, 5, 10, 10) and is_nhwc(out)
    r, rc = F.relu_forward(out)
    p, pc = F.maxpool2d_forward(r, 2)
    assert p.dtype == np.float32 and is_nhwc(p)
    dp = F.maxpool2d_backward(np.ones(p.shape, np.float32), pc)        # C-contiguous gradient
    dr = F.relu_backward(dp, rc)
    dx, dw, db = F.conv2d_backward(dr, cache)
    assert {a.dtype for a in (dp, dr, dx, dw, db)} == {np.dtype(np.float32)}
    assert np.allclose(dx, np.ascontiguousarray(dx))
    ref_out, _ = ref.conv2d_forward_naive(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), 1, 1)
    assert np.allclose(out, ref_out, atol=1e-4)


def test_need_grad_flags_and_1x1_view_path():
    rng = np.random.default_rng(2)
    x = channel_last(rng.standard_normal((2, 4, 5, 6)))
    w = rng.standard_normal((3, 4, 1, 1))
    out, cache = F.conv2d_forward(x, w, None, 1, 0)
    d = rng.standard_normal(out.shape)
    dx, dw, db = F.conv2d_backward(d, cache, need_input_grad=False)
    assert dx is None and db is None and dw.shape == w.shape
    dx, dw, db = F.conv2d_backward(d, cache, need_weight_grad=False)
    assert dw is None and dx.shape == x.shape
    _, rc = ref.conv2d_forward_naive(np.ascontiguousarray(x), w, None, 1, 0)
    assert close(dx, ref.conv2d_backward_naive(d, rc)[0])


def test_public_im2col_col2im_are_adjoint():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 6, 5))
    cols, (ho, wo) = T.im2col(x, 3, 2, (2, 1), (1, 0))
    g = rng.standard_normal(cols.shape)
    dx = T.col2im(g, x.shape, 3, 2, (2, 1), (1, 0))
    assert np.isclose(np.sum(cols * g), np.sum(x * dx))


@pytest.mark.parametrize("x_last", [False, True])
def test_strided_1x1_conv_gradient_is_channel_last(x_last):
    """A ResNet projection shortcut (1x1, stride 2, 32 input channels: a patch length of a
    first layer's size) is not a first layer: its dx is channel-last, like the 3x3 block's dx
    it is added to, and equals the loop reference."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 32, 6, 6))
    w = rng.standard_normal((4, 32, 1, 1))
    out, cache = F.conv2d_forward(layouts(x, x_last), w, None, 2, 0)
    d = rng.standard_normal(out.shape)
    dx, dw, _ = F.conv2d_backward(channel_last(d), cache)
    rout, rcache = ref.conv2d_forward_naive(x, w, None, 2, 0)
    rdx, rdw, _ = ref.conv2d_backward_naive(d, rcache)
    assert is_nhwc(out) and is_nhwc(dx)
    assert close(out, rout) and close(dx, rdx) and close(dw, rdw)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_last", [False, True])
def test_global_avgpool_engine_keeps_the_layout(x_last, dtype):
    """Engine global average pooling == textbook == the mean; its gradient is stored like the
    input (channel-last in, channel-last out), dtype kept."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, 5, 6)).astype(dtype)
    out, cache = F.global_avgpool_forward(layouts(x, x_last))
    tout, tcache = T.global_avgpool_forward(x)
    d = rng.standard_normal(out.shape).astype(dtype)
    dx, tdx = F.global_avgpool_backward(d, cache), T.global_avgpool_backward(d, tcache)
    tol = 1e-6 if dtype == np.float32 else TOL
    assert out.dtype == dx.dtype == dtype and out.shape == (3, 4) and dx.shape == x.shape
    assert np.allclose(out, tout, rtol=tol, atol=tol) and np.allclose(out, x.mean(axis=(2, 3)), atol=tol)
    assert np.allclose(dx, tdx, rtol=tol, atol=tol)
    assert is_nhwc(dx) == x_last and (x_last or dx.flags.c_contiguous)
