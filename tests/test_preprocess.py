"""Preprocessing: layout conversion, Standardizer, stratified splits, one-hot."""
import numpy as np
import pytest

from nnlite.data.preprocess import (
    Standardizer,
    as_generator,
    one_hot,
    stratified_split,
    stratified_subset,
    to_float_nchw,
    to_uint8_nhwc,
)


def test_as_generator():
    g = np.random.default_rng(3)
    assert as_generator(g) is g
    a, b = as_generator(5), as_generator(np.int64(5))
    assert isinstance(a, np.random.Generator)
    assert a.random() == b.random()
    for bad in (None, 1.5, "3", True, np.random.RandomState(0)):
        with pytest.raises(TypeError, match="Generator"):
            as_generator(bad)
    with pytest.raises(ValueError):
        as_generator(-1)


def test_to_float_nchw_values_and_layout():
    x = np.random.default_rng(0).integers(0, 256, size=(2, 4, 5, 3), dtype=np.uint8)
    y = to_float_nchw(x)
    assert y.shape == (2, 3, 4, 5) and y.dtype == np.float32 and y.flags.c_contiguous
    assert y[1, 2, 3, 4] == np.float32(x[1, 3, 4, 2]) / np.float32(255)
    assert y.min() >= 0 and y.max() <= 1
    assert to_float_nchw(np.full((1, 2, 2), 255, np.uint8), dtype=np.float64).dtype == np.float64
    assert to_float_nchw(np.full((1, 2, 2), 255, np.uint8)).shape == (1, 1, 2, 2)
    np.testing.assert_array_equal(to_uint8_nhwc(y), x)
    with pytest.raises(TypeError, match="uint8"):
        to_float_nchw(x.astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        to_float_nchw(np.zeros((2, 3), np.uint8))
    with pytest.raises(TypeError):
        to_float_nchw([[1, 2]])
    with pytest.raises(TypeError, match="floating"):
        to_float_nchw(x, dtype=np.int32)


def test_standardizer_fits_train_only_and_inverts(tmp_path):
    gen = np.random.default_rng(0)
    scale = np.array([1.0, 2.0, 0.5]).reshape(1, 3, 1, 1)
    shift = np.array([0.1, -3.0, 7.0]).reshape(1, 3, 1, 1)
    train = (gen.standard_normal((64, 3, 6, 6)) * scale + shift).astype(np.float32)
    test = (gen.standard_normal((16, 3, 6, 6)) * scale + shift + 5.0).astype(np.float32)
    s = Standardizer().fit(train)
    assert s.mean.shape == (3,) and s.std.shape == (3,)
    z = s.transform(train)
    assert z.dtype == np.float32 and z.shape == train.shape
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 2, 3)), 1, atol=1e-4)
    # test data uses the *train* statistics, not its own
    zt = s.transform(test)
    np.testing.assert_allclose(zt.mean(axis=(0, 2, 3)),
                               (test.mean(axis=(0, 2, 3)) - s.mean) / s.std, rtol=1e-4)
    assert np.all(zt.mean(axis=(0, 2, 3)) > 1.0)
    np.testing.assert_allclose(s.inverse_transform(zt), test, rtol=1e-5, atol=1e-5)
    # state is plain arrays: round-trip through np.savez
    np.savez(tmp_path / "s.npz", **s.state_dict())
    s2 = Standardizer().load_state_dict(dict(np.load(tmp_path / "s.npz")))
    np.testing.assert_array_equal(s2.transform(test), zt)
    assert s.transform(test.astype(np.float64)).dtype == np.float64


def test_standardizer_errors_and_constant_channel():
    with pytest.raises(ValueError, match="before fit"):
        Standardizer().transform(np.zeros((1, 1, 2, 2), np.float32))
    s = Standardizer().fit(np.zeros((4, 2, 3, 3), np.float32))
    assert np.all(np.isfinite(s.transform(np.ones((1, 2, 3, 3), np.float32))))
    with pytest.raises(ValueError, match="2 channels"):
        s.transform(np.zeros((1, 3, 3, 3), np.float32))
    with pytest.raises(TypeError, match="floating"):
        Standardizer().fit(np.zeros((2, 1, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        Standardizer().fit(np.zeros((2, 2, 2), np.float32))
    f = Standardizer().fit(np.arange(12, dtype=np.float64).reshape(4, 3))  # (N, D) features
    assert f.mean.shape == (3,)
    with pytest.raises(ValueError):
        Standardizer().load_state_dict({"mean": np.zeros(2)})


def test_stratified_split_keeps_class_proportions():
    y = np.repeat(np.arange(4), [100, 50, 30, 20])
    y = y[np.random.default_rng(1).permutation(y.size)]
    tr, va = stratified_split(y, 0.2, rng=0)
    assert tr.dtype == np.int64 and va.dtype == np.int64
    assert np.intersect1d(tr, va).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, va])), np.arange(y.size))
    assert va.size == 40
    np.testing.assert_array_equal(np.bincount(y[va], minlength=4), [20, 10, 6, 4])
    # uneven shares stay within one sample of the exact proportion
    tr, va = stratified_split(y, 0.33, rng=np.random.default_rng(5))
    exact = np.bincount(y) * 0.33
    assert np.all(np.abs(np.bincount(y[va], minlength=4) - exact) < 1.0 + 1e-9)
    assert va.size == round(y.size * 0.33)
    # determinism and dependence on the seed
    a, b, c = (stratified_split(y, 0.2, rng=s)[1] for s in (7, 7, 8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    for bad in (0.0, 1.0, -0.1, "0.2"):
        with pytest.raises(ValueError):
            stratified_split(y, bad, rng=0)
    with pytest.raises(TypeError):
        stratified_split(y.astype(float), 0.2, rng=0)


def test_stratified_subset_first_n_and_random():
    y = np.array([0, 1, 0, 1, 0, 1, 2, 2, 0, 1])
    idx = stratified_subset(y, 5)
    np.testing.assert_array_equal(idx, np.sort(idx))
    np.testing.assert_array_equal(np.bincount(y[idx], minlength=3), [2, 2, 1])
    np.testing.assert_array_equal(idx, [0, 1, 2, 3, 6])  # the first ones of each class
    r = stratified_subset(y, 5, rng=3)
    np.testing.assert_array_equal(np.bincount(y[r], minlength=3), [2, 2, 1])
    np.testing.assert_array_equal(stratified_subset(y, 10), np.arange(10))
    with pytest.raises(ValueError):
        stratified_subset(y, 11)


def test_one_hot():
    y = np.array([[0, 2], [1, 2]])
    oh = one_hot(y, 3)
    assert oh.shape == (2, 2, 3) and oh.dtype == np.float32
    np.testing.assert_array_equal(oh.argmax(-1), y)
    np.testing.assert_array_equal(oh.sum(-1), 1)
    assert one_hot(np.array([1]), 2, dtype=np.int64).dtype == np.int64
    with pytest.raises(ValueError, match=r"\[0, 2\].*\[0, 3\]"):
        one_hot(np.array([0, 3]), 3)
    with pytest.raises(ValueError):
        one_hot(np.array([-1]), 3)
    with pytest.raises(TypeError):
        one_hot(np.array([0.0, 1.0]), 3)
    with pytest.raises(ValueError):
        one_hot(np.array([0]), 0)
