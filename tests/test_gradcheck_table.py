"""Every layer, container and loss in the spec table passes a float64 numerical gradient
check on its input and every parameter (max relative error <= 1e-6, see nnlite.gradcheck),
on both storeys of kernels (the engine, nnlite.fast, and the textbook, nnlite.functional),
and the same table in float32 keeps every output and gradient float32."""
import numpy as np
import pytest

from nnlite import use_kernels

from nnlite.gradcheck import DEFAULT_TOL, check_gradients, check_module

from specs import LAYER_SPECS, LOSS_SPECS

LAYER_CASES = [(s, mode) for s in LAYER_SPECS for mode in s.modes]


@pytest.mark.parametrize("storey", ["fast", "textbook"])
@pytest.mark.parametrize("spec,mode", LAYER_CASES, ids=[f"{s.name}-{m}" for s, m in LAYER_CASES])
def test_layer_gradients_float64(spec, mode, storey):
    rng = np.random.default_rng(0)
    module = spec.make(rng, np.float64)
    x = spec.make_input(rng, np.float64)
    with use_kernels(storey):
        report = check_module(module, x, mode=mode, seed=1, max_coords=150)
    assert len(report.rows) == 1 + len(module.parameters())
    assert report.ok, str(report)
    assert report.max_error <= DEFAULT_TOL


@pytest.mark.parametrize("spec", LOSS_SPECS, ids=[s.name for s in LOSS_SPECS])
def test_loss_gradients_float64(spec):
    rng = np.random.default_rng(0)
    loss = spec.make(np.float64)
    pred = spec.make_pred(rng, np.float64)
    target = spec.make_target(rng)
    loss.forward(pred, target)
    analytic = loss.backward().copy()
    report = check_gradients(lambda: loss.forward(pred, target), {"pred": pred}, {"pred": analytic},
                             max_coords=None, title=spec.name)
    assert report.ok, str(report)


@pytest.mark.parametrize("storey", ["fast", "textbook"])
@pytest.mark.parametrize("spec,mode", LAYER_CASES, ids=[f"{s.name}-{m}" for s, m in LAYER_CASES])
def test_layer_dtypes_float32(spec, mode, storey):
    rng = np.random.default_rng(0)
    module = spec.make(rng, np.float32)
    module.train(mode == "train")
    x = spec.make_input(rng, np.float32)
    with use_kernels(storey):
        out = module.forward(x)
        dx = module.backward(np.ones_like(out))
    assert out.dtype == np.float32
    assert dx.dtype == np.float32 and dx.shape == x.shape
    for name, p in module.named_parameters():
        assert p.data.dtype == np.float32 and p.grad.dtype == np.float32, name
    for name, b in module.named_buffers():
        assert b.dtype == np.float32, name


@pytest.mark.parametrize("spec", LOSS_SPECS, ids=[s.name for s in LOSS_SPECS])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_grad_dtype(spec, dtype):
    rng = np.random.default_rng(0)
    loss = spec.make(dtype)
    value = loss.forward(spec.make_pred(rng, dtype), spec.make_target(rng))
    assert isinstance(value, float) and np.isfinite(value)
    assert loss.backward().dtype == dtype


def test_gradcheck_catches_a_wrong_backward():
    """The checker itself must be able to fail: a layer with a subtly wrong backward."""
    import nnlite.nn as nn

    class BadTanh(nn.Tanh):
        def backward(self, dout):
            return super().backward(dout) * 1.001

    report = check_module(BadTanh(), np.random.default_rng(0).standard_normal((3, 4)))
    assert not report.ok
    assert "FAIL" in str(report)
