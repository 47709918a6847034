"""Module mechanics: naming, modes, state dicts, summary, bad input messages."""
import numpy as np
import pytest

import nnlite.nn as nn
from nnlite import losses


def make_model(rng=0, dtype=np.float32):
    rng = np.random.default_rng(rng)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, rng=rng, dtype=dtype), nn.BatchNorm2d(4, dtype=dtype), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.5, rng=rng), nn.Linear(4 * 4 * 4, 3, rng=rng, dtype=dtype))


def test_named_parameters_are_dotted_and_ordered():
    names = [n for n, _ in make_model().named_parameters()]
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias", "6.weight", "6.bias"]
    assert [n for n, _ in make_model().named_buffers()] == ["1.running_mean", "1.running_var"]
    block = nn.basic_block(2, 4, stride=2)
    assert "0.shortcut.0.weight" in dict(block.named_parameters())


def test_train_eval_propagate():
    m = make_model()
    m.eval()
    assert all(not mod.training for _, mod in m.named_modules())
    m.train()
    assert all(mod.training for _, mod in m.named_modules())


def test_state_dict_round_trip_and_independence():
    a, b = make_model(0), make_model(1)
    a.forward(np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32))  # move BN stats
    state = a.state_dict()
    b.load_state_dict(state)
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    np.testing.assert_array_equal(b[1].running_mean, a[1].running_mean)
    state["0.weight"][...] = 0     # a copy: mutating it does not touch either model
    assert np.any(b[0].weight.data != 0)


def test_load_state_dict_names_first_mismatch_and_loads_nothing():
    a = make_model()
    other = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Dropout(0.5), nn.Linear(64, 5))
    before = a[0].weight.data.copy()
    with pytest.raises(ValueError, match=r"'6.weight'.*\(3, 64\).*\(5, 64\)"):
        a.load_state_dict(other.state_dict())
    np.testing.assert_array_equal(a[0].weight.data, before)   # nothing was written
    bad = a.state_dict()
    bad["1.running_var"] = bad["1.running_var"].astype(np.float64)
    with pytest.raises(ValueError, match="dtype mismatch for '1.running_var'"):
        a.load_state_dict(bad)
    missing = a.state_dict()
    del missing["6.bias"]
    with pytest.raises(KeyError, match="missing keys.*6.bias"):
        a.load_state_dict(missing)


def test_astype_float64_end_to_end():
    m = make_model().astype(np.float64)
    x = np.random.default_rng(0).random((2, 1, 8, 8))
    out = m.forward(x)
    assert out.dtype == np.float64
    loss = losses.SoftmaxCrossEntropy()
    loss.forward(out, np.array([0, 2]))
    assert m.backward(loss.backward()).dtype == np.float64
    assert all(p.grad.dtype == np.float64 for p in m.parameters())


def test_summary_counts_like_keras():
    m = make_model()
    text = nn.summary(m, (1, 8, 8), print_fn=None)
    conv_params = 4 * 1 * 9 + 4
    bn_trainable, bn_buffers = 8, 8
    dense = 64 * 3 + 3
    assert f"Trainable params: {conv_params + bn_trainable + dense:,}" in text
    assert f"Non-trainable params: {bn_buffers}" in text
    assert "(None, 4, 4, 4)" in text and "(None, 3)" in text
    m[6].freeze()
    text = nn.summary(m, (1, 8, 8), print_fn=None)
    assert f"Non-trainable params: {bn_buffers + dense}" in text


@pytest.mark.parametrize("make,x,err,pattern", [
    (lambda: nn.Linear(4, 3), np.zeros((2, 5), np.float32), ValueError, r"\(N, 4\).*\(2, 5\)"),
    (lambda: nn.Linear(4, 3), np.zeros((2, 4), np.float64), TypeError, "float64.*float32"),
    (lambda: nn.Linear(4, 3), np.zeros((2, 4), np.int64), TypeError, "floating dtype"),
    (lambda: nn.Linear(4, 3), [[0.0] * 4], TypeError, "numpy.ndarray"),
    (lambda: nn.Conv2d(3, 8, 3), np.zeros((2, 1, 8, 8), np.float32), ValueError, "3 input channels"),
    (lambda: nn.Conv2d(3, 8, 3), np.zeros((3, 8, 8), np.float32), ValueError, "rank 4"),
    (lambda: nn.Conv2d(1, 2, 5), np.zeros((1, 1, 3, 3), np.float32), ValueError, "does not fit"),
    (lambda: nn.MaxPool2d(2), np.zeros((2, 8), np.float32), ValueError, "rank 4"),
    (lambda: nn.BatchNorm1d(4), np.zeros((2, 5), np.float32), ValueError, "4 features"),
    (lambda: nn.BatchNorm1d(4), np.zeros((1, 4), np.float32), ValueError, "more than one value"),
])
def test_bad_inputs_give_clear_errors(make, x, err, pattern):
    with pytest.raises(err, match=pattern):
        make().forward(x)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="drop probability"):
        nn.Dropout(1.0)
    with pytest.raises(ValueError, match="kernel_size"):
        nn.Conv2d(1, 1, 0)
    with pytest.raises(TypeError, match="Module"):
        nn.Sequential(nn.ReLU(), "relu")
    with pytest.raises(ValueError, match="unknown initializer"):
        nn.Linear(2, 2, init="zeros?")
    with pytest.raises(TypeError, match="rng"):
        nn.Dropout(0.5, rng="seed")


@pytest.mark.parametrize("loss,pred,y,err,pattern", [
    (losses.SoftmaxCrossEntropy(), np.zeros((3, 4)), np.array([0, 1, 4]), ValueError, r"label 4.*\[0, 3\]"),
    (losses.SoftmaxCrossEntropy(), np.zeros((3, 4)), np.array([0, 1]), ValueError, r"shape \(3,\)"),
    (losses.SoftmaxCrossEntropy(), np.zeros((3, 4)), np.array([0.0, 1.0, 2.0]), TypeError, "integer"),
    (losses.SoftmaxCrossEntropy(), np.zeros(4), np.array([0]), ValueError, "rank 2"),
    (losses.SoftmaxCrossEntropy(class_weights=[1, 2]), np.zeros((3, 4)), np.array([0, 1, 2]), ValueError, r"\(4,\)"),
    (losses.MulticlassHinge(), np.zeros((2, 3)), np.array([-1, 0]), ValueError, "label -1"),
    (losses.MSE(), np.zeros((2, 3)), np.zeros((3, 2)), ValueError, "shape"),
    (losses.BCEWithLogits(), np.zeros((2,)), np.array([0.0, 2.0]), ValueError, r"\[0, 1\]"),
])
def test_loss_bad_inputs(loss, pred, y, err, pattern):
    with pytest.raises(err, match=pattern):
        loss.forward(pred, y)


def test_residual_branch_mismatch_is_explained():
    block = nn.Residual(nn.Conv2d(2, 4, 3, padding=1))
    with pytest.raises(ValueError, match="projection"):
        block.forward(np.zeros((1, 2, 4, 4), np.float32))


def mlp_first_layer(flag, dtype=np.float64):
    """Linear-ReLU-Linear, the first Linear's needs_input_grad set to ``flag``."""
    rng = np.random.default_rng(3)
    m = nn.Sequential(nn.Linear(6, 5, rng=rng, dtype=dtype), nn.ReLU(), nn.Linear(5, 3, rng=rng, dtype=dtype))
    m[0].needs_input_grad = flag
    return m


def test_linear_needs_input_grad_off_skips_dx_only():
    assert nn.Linear(3, 2).needs_input_grad is True            # the default
    rng = np.random.default_rng(0)
    x, dout = rng.standard_normal((4, 6)), rng.standard_normal((4, 3))
    on, off = mlp_first_layer(True), mlp_first_layer(False)
    on.forward(x), off.forward(x)
    dx = on.backward(dout)
    assert dx.shape == x.shape
    assert off.backward(dout) is None                        # Sequential stops at the first layer
    for (name, p), (_, q) in zip(on.named_parameters(), off.named_parameters()):
        assert p.grad.tobytes() == q.grad.tobytes(), name    # parameter gradients unchanged
    off[0].forward(x)
    assert off[0].backward(rng.standard_normal((4, 5))) is None


def test_gradcheck_with_linear_input_grad_off():
    from nnlite.gradcheck import check_module
    x = np.random.default_rng(1).standard_normal((4, 6))
    report = check_module(mlp_first_layer(False), x, seed=0)
    assert report.ok, str(report)
    assert [r.name for r in report.rows] == ["input", "0.weight", "0.bias", "2.weight", "2.bias"]
    assert report.rows[0].note == "not computed" and report.rows[0].checked == 0
    assert "not computed" in str(report)
    assert check_module(mlp_first_layer(True), x, seed=0).ok   # the input is checked when on
