"""Habits people bring from PyTorch/Keras: ``import nnlite`` then ``nnlite.nn``;
``Conv2d(padding="same"/"valid")``; ``nn.ModuleList``."""
import subprocess
import sys

import numpy as np
import pytest

import nnlite.nn as nn


def test_import_nnlite_then_subpackages():
    code = "import nnlite; print(nnlite.nn.Linear.__name__, nnlite.optim.SGD.__name__, nnlite.fast.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["Linear", "SGD", "nnlite.fast"]
    import nnlite
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        nnlite.nope


@pytest.mark.parametrize("k", [1, 3, 5, (3, 5)])
def test_conv_padding_same_keeps_the_size(k):
    conv = nn.Conv2d(2, 3, k, padding="same", rng=0)
    x = np.random.default_rng(0).random((2, 2, 7, 6), dtype=np.float32)
    assert conv.forward(x).shape == (2, 3, 7, 6)
    ref = nn.Conv2d(2, 3, k, padding=((conv.kernel_size[0] - 1) // 2, (conv.kernel_size[1] - 1) // 2), rng=0)
    assert np.array_equal(conv.forward(x), ref.forward(x))


def test_conv_padding_valid_and_refusals():
    assert nn.Conv2d(1, 1, 3, padding="valid").padding == (0, 0)
    with pytest.raises(ValueError, match='"same" needs stride 1'):
        nn.Conv2d(1, 1, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match='"same" needs stride 1 and odd'):
        nn.Conv2d(1, 1, 2, padding="same")
    with pytest.raises(ValueError, match="padding must be"):
        nn.Conv2d(1, 1, 3, padding="full")


def test_module_list_registers_parameters():
    heads = nn.ModuleList([nn.Linear(4, 2, rng=0), nn.Linear(4, 3, rng=1)])
    heads.append(nn.Linear(4, 1, rng=2))
    assert len(heads) == 3 and [m.out_features for m in heads] == [2, 3, 1]
    assert [n for n, _ in heads.named_parameters()][:2] == ["0.weight", "0.bias"]
    assert len(heads.parameters()) == 6
    with pytest.raises(TypeError, match="must be a Module"):
        heads.append("layer")
    with pytest.raises(NotImplementedError):
        heads.forward(np.zeros((1, 4), np.float32))


def test_model_summary_method_with_or_without_batch_axis():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=0), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 28 * 28, 10, rng=0))
    lines = []
    a = model.summary((1, 28, 28), print_fn=lines.append)
    b = model.summary((None, 1, 28, 28), print_fn=lambda s: None)
    assert a == b and "Total params" in a and str(4 * 9 + 4 + 4 * 28 * 28 * 10 + 10) in a.replace(",", "")
    assert lines
