"""A full float32 training step of the Fashion-MNIST CNN (the benchmark's reference model)
keeps every activation, every gradient and every parameter float32: no float64 creeps in
(a float64 temporary would double the memory traffic of every kernel it touches)."""
import numpy as np
import pytest

import nnlite.nn as nn
from nnlite import parallel
from nnlite.losses import SoftmaxCrossEntropy


def fmnist_cnn(rng):
    m = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 128, rng=rng), nn.ReLU(), nn.Dropout(0.5, rng=rng),
        nn.Linear(128, 10, rng=rng))
    return m


def sgd_update(model, lr):
    try:
        from nnlite.optim import SGD
    except Exception:                                   # noqa: BLE001 (optim not there yet)
        for p in model.parameters():
            if p.trainable:
                p.data -= np.asarray(lr, dtype=p.data.dtype) * p.grad
        return "in-loop"
    SGD(model.parameters(), lr=lr).step()
    return "nnlite.optim.SGD"


@pytest.mark.parametrize("threads", [1, 2], ids=["sequential", "two-workers"])
def test_fmnist_cnn_training_step_stays_float32(threads, monkeypatch):
    from nnlite.fast import conv as conv_mod
    monkeypatch.setattr(conv_mod, "CHUNK_MIN_ROWS", 0)       # several chunks per worker
    monkeypatch.setattr(conv_mod, "CHUNK_BYTES", 1)
    with parallel.threads(threads):
        _check_step_dtypes()


def _check_step_dtypes():
    rng = np.random.default_rng(0)
    model = fmnist_cnn(rng)
    x = rng.random((8, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 8)
    loss = SoftmaxCrossEntropy()

    acts, grads = [], []
    model.zero_grad()
    h = x
    for layer in model:
        h = layer.forward(h)
        acts.append((type(layer).__name__, h))
    value = loss.forward(h, y)
    assert isinstance(value, float) and np.isfinite(value)
    d = loss.backward()
    grads.append(("loss", d))
    for layer in reversed(model.layers):
        d = layer.backward(d)
        grads.append((type(layer).__name__, d))
    before = {name: p.data.copy() for name, p in model.named_parameters()}
    sgd_update(model, 0.05)

    for name, a in acts:
        assert a.dtype == np.float32, f"{name} output is {a.dtype}"
    for name, g in grads:
        assert g.dtype == np.float32, f"{name} gradient is {g.dtype}"
    assert grads[-1][1].shape == x.shape
    for name, p in model.named_parameters():
        assert p.data.dtype == np.float32, f"{name} data is {p.data.dtype}"
        assert p.grad.dtype == np.float32, f"{name} grad is {p.grad.dtype}"
        assert np.all(np.isfinite(p.grad)), name
        assert not np.array_equal(p.data, before[name]), f"{name} was not updated"
    # every layer cache holds float32 arrays only
    for name, layer in model.named_modules():
        cache = getattr(layer, "_cache", None)
        stack = [cache]
        while stack:
            item = stack.pop()
            if isinstance(item, np.ndarray) and np.issubdtype(item.dtype, np.floating):
                assert item.dtype == np.float32, f"cache of {name or 'model'} holds {item.dtype}"
            elif isinstance(item, (tuple, list)):
                stack.extend(item)
            elif isinstance(item, dict):
                stack.extend(item.values())


def test_first_conv_without_input_grad_still_trains():
    """The benchmark sets needs_input_grad=False on the first conv (no col2im there)."""
    rng = np.random.default_rng(1)
    model = fmnist_cnn(rng)
    model[0].needs_input_grad = False
    x = rng.random((4, 1, 28, 28), dtype=np.float32)
    loss = SoftmaxCrossEntropy()
    model.zero_grad()
    loss.forward(model.forward(x), rng.integers(0, 10, 4))
    model.backward(loss.backward())
    assert model[0].weight.grad.dtype == np.float32 and np.any(model[0].weight.grad != 0)
