"""Weights in and out: nnlite format, safetensors, Keras 2 / Keras 3 HDF5, PyTorch state_dict."""
import json

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from nnlite.models import Blocks, vgg
from nnlite.nn import BatchNorm2d, Conv2d, DepthwiseConv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
from nnlite.weights import (
    WeightsError,
    load_keras_weights,
    load_safetensors,
    load_torch_state_dict,
    load_weights,
    save_safetensors,
    save_weights,
)


def small_model(seed=0):
    """block1: conv(3->4)+bn+relu+pool; block2: conv(4->6)+relu+pool; head: gap + bn + dense."""
    return vgg(widths=(4, 6), convs=(1, 1), num_classes=3, batch_norm=False, head_hidden=5,
               head_dropout=0.0, rng=seed)


def keras_arrays(rng):
    """Random Keras-layout arrays for `small_model`'s layers (HWIO kernels, (in, out) dense)."""
    r = lambda *s: rng.standard_normal(s).astype(np.float32)
    return {
        "block1_conv1": [("kernel", r(3, 3, 3, 4)), ("bias", r(4))],
        "block2_conv1": [("kernel", r(3, 3, 4, 6)), ("bias", r(6))],
        "head_bn": [("gamma", r(6) + 2), ("beta", r(6)), ("moving_mean", r(6)),
                    ("moving_variance", np.abs(r(6)) + 0.5)],
        "head_dense1": [("kernel", r(6, 5)), ("bias", r(5))],
        "head_logits": [("kernel", r(5, 3)), ("bias", r(3))],
    }


def write_keras2(path, layers, full_model=True, config=None):
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if full_model else f
        names = list(layers) + ["block1_pool"]          # a layer without weights
        root.attrs["layer_names"] = np.array([n.encode() for n in names])
        for name in names:
            g = root.create_group(name)
            vars_ = layers.get(name, [])
            g.attrs["weight_names"] = np.array([f"{name}/{v}:0".encode() for v, _ in vars_])
            for v, a in vars_:
                g.create_dataset(f"{name}/{v}:0", data=a)
        if config is not None:
            f.attrs["model_config"] = json.dumps(config)


def write_keras3(path, layers, nested=None):
    with h5py.File(path, "w") as f:
        top = f.create_group("layers")
        for name, vars_ in layers.items():
            parent = top
            if nested and name in nested:
                parent = top.require_group(nested[name]).require_group("layers")
            vg = parent.create_group(name).create_group("vars")
            for i, (_, a) in enumerate(vars_):
                vg.create_dataset(str(i), data=a)
        top.create_group("block1_pool").create_group("vars")


def by_hand(layers, seed=1):
    """The same weights put into a fresh model by hand (explicit layout conversions)."""
    m = small_model(seed)
    k = dict((n, dict(v)) for n, v in layers.items())
    m.block1.conv1.weight.data[...] = k["block1_conv1"]["kernel"].transpose(3, 2, 0, 1)
    m.block1.conv1.bias.data[...] = k["block1_conv1"]["bias"]
    m.block2.conv1.weight.data[...] = k["block2_conv1"]["kernel"].transpose(3, 2, 0, 1)
    m.block2.conv1.bias.data[...] = k["block2_conv1"]["bias"]
    bn = m.head.bn
    bn.weight.data[...] = k["head_bn"]["gamma"]
    bn.bias.data[...] = k["head_bn"]["beta"]
    bn.running_mean[...] = k["head_bn"]["moving_mean"]
    bn.running_var[...] = k["head_bn"]["moving_variance"]
    bn.eps, bn.momentum = 1e-3, 0.01
    m.head.dense1.weight.data[...] = k["head_dense1"]["kernel"].T
    m.head.dense1.bias.data[...] = k["head_dense1"]["bias"]
    m.head.logits.weight.data[...] = k["head_logits"]["kernel"].T
    m.head.logits.bias.data[...] = k["head_logits"]["bias"]
    return m


X = np.random.default_rng(5).random((4, 3, 8, 8)).astype(np.float32)


def outputs(m):
    m.eval()
    return m.forward(X)


@pytest.mark.parametrize("layout", ["keras2-full", "keras2-weights", "keras3", "keras3-nested"])
def test_keras_import_equals_weights_loaded_by_hand(tmp_path, layout):
    layers = keras_arrays(np.random.default_rng(0))
    path = tmp_path / "w.h5"
    if layout == "keras2-full":
        write_keras2(path, layers)
    elif layout == "keras2-weights":
        write_keras2(path, layers, full_model=False)
    elif layout == "keras3":
        write_keras3(path, layers)
    else:
        write_keras3(path, layers, nested={"block1_conv1": "vgg16", "block2_conv1": "vgg16"})
    m = small_model(0)
    rep = load_keras_weights(path, m)
    assert rep["layout"] == ("keras2" if layout.startswith("keras2") else "keras3")
    assert sorted(k for k, _ in rep["loaded"]) == sorted(layers)
    assert rep["missing"] == [] and rep["skipped"] == []
    np.testing.assert_array_equal(outputs(m), outputs(by_hand(layers)))
    assert m.head.bn.eps == 1e-3 and m.head.bn.momentum == pytest.approx(0.01)
    assert not np.allclose(outputs(m), outputs(small_model(0)))


def test_keras_bn_convention_read_from_model_config(tmp_path):
    layers = keras_arrays(np.random.default_rng(0))
    cfg = {"class_name": "Functional", "config": {"layers": [
        {"class_name": "BatchNormalization", "config": {"name": "head_bn", "epsilon": 0.01, "momentum": 0.9}}]}}
    write_keras2(tmp_path / "w.h5", layers, config=cfg)
    m = small_model(0)
    load_keras_weights(tmp_path / "w.h5", m)
    assert m.head.bn.eps == 0.01 and m.head.bn.momentum == pytest.approx(0.1)


@pytest.mark.parametrize("writer", [write_keras2, write_keras3])
def test_keras_depthwise_kernel_matches_keras_semantics(tmp_path, writer):
    """Keras DepthwiseConv2D: out[..., c*M + m] = sum_ij x[y+i, x+j, c] * K[i, j, c, m] + b[c*M + m];
    the expected output is computed from the Keras-layout kernel directly (valid padding, stride 1)."""
    rng = np.random.default_rng(3)
    C, M = 3, 2
    K = rng.standard_normal((3, 3, C, M)).astype(np.float32)
    b = rng.standard_normal(C * M).astype(np.float32)
    writer(tmp_path / "dw.h5", {"dw": [("depthwise_kernel", K), ("bias", b)]})
    m = Blocks([("dw", DepthwiseConv2d(C, 3, multiplier=M, rng=0))])
    rep = load_keras_weights(tmp_path / "dw.h5", m)
    assert rep["loaded"] == [("dw", "dw")]
    x = rng.random((2, C, 6, 5)).astype(np.float32)
    win = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3))     # (N, C, 4, 3, 3, 3)
    want = np.einsum("ncyxij,ijcm->ncmyx", win, K).reshape(2, C * M, 4, 3) + b[:, None, None]
    np.testing.assert_allclose(m.forward(x), want, rtol=1e-5, atol=1e-5)
    bad = Blocks([("dw", DepthwiseConv2d(C, 3, multiplier=1, rng=0))])          # multiplier does not fit
    before = bad.dw.weight.data.copy()
    with pytest.raises(WeightsError, match="'dw'.*needs shape"):
        load_keras_weights(tmp_path / "dw.h5", bad)
    np.testing.assert_array_equal(bad.dw.weight.data, before)


def test_keras_name_map(tmp_path):
    layers = keras_arrays(np.random.default_rng(0))
    layers["my_conv"] = layers.pop("block1_conv1")
    write_keras3(tmp_path / "w.weights.h5", layers)
    m = small_model(0)
    rep = load_keras_weights(tmp_path / "w.weights.h5", m, name_map={"my_conv": "block1.conv1"})
    assert ("my_conv", "block1.conv1") in rep["loaded"]
    layers["block1_conv1"] = layers.pop("my_conv")
    np.testing.assert_array_equal(outputs(m), outputs(by_hand(layers)))


@pytest.mark.parametrize("writer", [write_keras2, write_keras3])
def test_keras_mismatch_names_layer_and_changes_nothing(tmp_path, writer):
    layers = keras_arrays(np.random.default_rng(0))
    layers["block2_conv1"][0] = ("kernel", np.zeros((3, 3, 5, 6), np.float32))   # C_in 5 != 4
    writer(tmp_path / "bad.h5", layers)
    m = small_model(0)
    before = m.state_dict()
    with pytest.raises(WeightsError, match="block2_conv1"):
        load_keras_weights(tmp_path / "bad.h5", m)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    assert m.head.bn.eps == 1e-5
    rep = load_keras_weights(tmp_path / "bad.h5", m, skip_mismatch=True)
    assert [k for k, _ in rep["skipped"]] == ["block2_conv1"]
    np.testing.assert_array_equal(m.block2.conv1.weight.data, before["block2.conv1.weight"])
    assert not np.array_equal(m.block1.conv1.weight.data, before["block1.conv1.weight"])


def test_keras_bad_files(tmp_path):
    m = small_model(0)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("images", data=np.zeros(3))
    with pytest.raises(WeightsError, match="neither a Keras 2"):
        load_keras_weights(tmp_path / "other.h5", m)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(WeightsError, match="not a readable HDF5"):
        load_keras_weights(tmp_path / "junk.h5", m)
    layers = keras_arrays(np.random.default_rng(0))
    write_keras2(tmp_path / "k2.h5", layers)
    with h5py.File(tmp_path / "k2.h5", "a") as f:      # a listed weight that is missing
        del f["model_weights/head_bn/head_bn/beta:0"]
    before = m.state_dict()
    with pytest.raises(WeightsError, match="head_bn"):
        load_keras_weights(tmp_path / "k2.h5", m)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    layers = keras_arrays(np.random.default_rng(0))
    layers["head_bn"] = layers["head_bn"][:2]           # center/scale only: not supported
    write_keras3(tmp_path / "k3.h5", layers)
    with pytest.raises(WeightsError, match="head_bn.*4"):
        load_keras_weights(tmp_path / "k3.h5", m)
    with pytest.raises(WeightsError, match="strict"):
        write_keras3(tmp_path / "k3b.h5", {"block1_conv1": keras_arrays(np.random.default_rng(0))["block1_conv1"]})
        load_keras_weights(tmp_path / "k3b.h5", m, strict=True)


@pytest.mark.parametrize("suffix", [".npz", ".h5", ".safetensors"])
def test_native_and_safetensors_round_trip(tmp_path, suffix):
    if suffix == ".safetensors":
        pytest.importorskip("safetensors")
    a, b = small_model(0), small_model(1)
    a.head.bn.running_mean[...] = 0.3
    path = tmp_path / f"m{suffix}"
    save_weights(path, a)
    rep = load_weights(path, b)
    assert rep["missing"] == [] and rep["unexpected"] == []
    np.testing.assert_array_equal(outputs(a), outputs(b))
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(v, b.state_dict()[k])


def test_safetensors_readable_by_safetensors_and_bad_files(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    a = small_model(0)
    save_safetensors(tmp_path / "m.safetensors", a)
    raw = st.load_file(str(tmp_path / "m.safetensors"))
    assert set(raw) == set(a.state_dict())
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    b = small_model(1)
    before = b.state_dict()
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        load_safetensors(tmp_path / "bad.safetensors", b)
    other = vgg(widths=(4, 7), convs=(1, 1), num_classes=3, head_hidden=5, head_dropout=0.0, rng=0)
    save_safetensors(tmp_path / "other.safetensors", other)
    with pytest.raises(WeightsError, match="block2.conv1.weight"):
        load_safetensors(tmp_path / "other.safetensors", b)
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_native_bad_file_changes_nothing(tmp_path):
    a, b = small_model(0), small_model(1)
    save_weights(tmp_path / "m.npz", a)
    data = (tmp_path / "m.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    before = b.state_dict()
    with pytest.raises(WeightsError):
        load_weights(tmp_path / "cut.npz", b)
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    with pytest.raises(ValueError, match="must end in"):
        save_weights(tmp_path / "m.txt", a)


def test_torch_state_dict_import_matches_torch_outputs(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                             torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 3))
    with torch.no_grad():
        tm[1].running_mean.uniform_(-1, 1)
        tm[1].running_var.uniform_(0.5, 2)
        tm[1].weight.uniform_(0.5, 2)
    tm.eval()
    torch.save(tm.state_dict(), tmp_path / "m.pt")
    nm = Sequential(Conv2d(3, 4, 3, padding=1), BatchNorm2d(4), ReLU(), MaxPool2d(2), Flatten(), Linear(64, 3))
    rep = load_torch_state_dict(tmp_path / "m.pt", nm)
    assert rep["missing"] == [] and rep["unexpected"] == []
    nm.eval()
    with torch.no_grad():
        ref = tm(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(nm.forward(X), ref, rtol=1e-5, atol=1e-5)
    # a dict of tensors with a name map into a named model
    named = Blocks([("features", Sequential(Conv2d(3, 4, 3, padding=1), BatchNorm2d(4), ReLU(), MaxPool2d(2),
                                            Flatten())), ("fc", Linear(64, 3))])
    sd = tm.state_dict()
    rep = load_torch_state_dict(sd, named, name_map=lambda k: ("fc" + k[1:]) if k.startswith("5.")
                                else "features." + k)
    named.eval()
    np.testing.assert_allclose(named.forward(X), ref, rtol=1e-5, atol=1e-5)
    bad = dict(sd)
    bad["5.weight"] = torch.zeros(3, 65)
    before = nm.state_dict()
    with pytest.raises(WeightsError, match="5.weight"):
        load_torch_state_dict(bad, nm)
    for k, v in nm.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(WeightsError, match="weights_only"):
        load_torch_state_dict(tmp_path / "junk.pt", nm)
