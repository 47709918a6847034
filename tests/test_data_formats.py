"""Readers of the official formats, exercised on tiny files written here in each format."""
import gzip
import io
import os
import pickle
import struct
import tarfile
import zipfile

import numpy as np
import pytest

from nnlite.data import formats
from nnlite.data.formats import (
    read_cifar10_binary,
    read_cifar10_binary_batch,
    read_cifar10_python,
    read_cifar_python_batch,
    read_hdf5,
    read_idx,
    read_idx_images,
    read_idx_labels,
    read_image_folder,
    read_npz,
    read_svhn_mat,
    restricted_pickle_load,
)


def _rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------
# idx
# ---------------------------------------------------------------------------

def idx_bytes(arr: np.ndarray) -> bytes:
    """Encode a uint8 array as idx written by hand (independent of the reader)."""
    assert arr.dtype == np.uint8
    head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return head + arr.tobytes()


def test_idx_images_and_labels_raw_and_gzip(tmp_path):
    x = _rng().integers(0, 256, size=(7, 5, 4), dtype=np.uint8)
    y = _rng(1).integers(0, 10, size=7).astype(np.uint8)
    # names deliberately misleading: detection must use magic bytes, not suffixes
    (tmp_path / "imgs.gz").write_bytes(idx_bytes(x))
    (tmp_path / "imgs.raw").write_bytes(gzip.compress(idx_bytes(x)))
    (tmp_path / "labels").write_bytes(gzip.compress(idx_bytes(y)))
    for name in ("imgs.gz", "imgs.raw"):
        got = read_idx_images(tmp_path / name)
        assert got.shape == (7, 5, 4, 1) and got.dtype == np.uint8
        np.testing.assert_array_equal(got[..., 0], x)
    lab = read_idx_labels(tmp_path / "labels")
    assert lab.dtype == np.int64
    np.testing.assert_array_equal(lab, y)
    np.testing.assert_array_equal(read_idx(idx_bytes(x)), x)


def test_idx_other_dtypes_big_endian():
    a = np.arange(-3, 3, dtype=">i4").reshape(2, 3)
    data = bytes([0, 0, 0x0C, 2]) + struct.pack(">II", 2, 3) + a.tobytes()
    got = read_idx(data)
    np.testing.assert_array_equal(got, np.arange(-3, 3).reshape(2, 3))


def test_idx_truncated_file_is_a_clear_error(tmp_path):
    x = np.ones((10, 28, 28), np.uint8)
    full = idx_bytes(x)
    (tmp_path / "trunc").write_bytes(full[:-100])
    with pytest.raises(ValueError, match="truncated"):
        read_idx_images(tmp_path / "trunc")
    (tmp_path / "trunc.gz").write_bytes(gzip.compress(full[:-1]))
    with pytest.raises(ValueError, match="truncated"):
        read_idx_images(tmp_path / "trunc.gz")
    # a cut-off gzip stream itself (random pixels, so the stream is long)
    noisy = gzip.compress(idx_bytes(_rng().integers(0, 256, size=(10, 28, 28), dtype=np.uint8)))
    assert len(noisy) > 1000
    (tmp_path / "cut.gz").write_bytes(noisy[:1000])
    with pytest.raises(ValueError, match="gzip"):
        read_idx_images(tmp_path / "cut.gz")


def test_idx_bad_magic_trailing_bytes_and_wrong_kind(tmp_path):
    x = np.zeros((2, 3, 3), np.uint8)
    with pytest.raises(ValueError, match="magic"):
        read_idx(b"\x01\x00\x08\x03" + idx_bytes(x)[4:])
    with pytest.raises(ValueError, match="type code"):
        read_idx(b"\x00\x00\x07\x03" + idx_bytes(x)[4:])
    with pytest.raises(ValueError, match="trailing"):
        read_idx(idx_bytes(x) + b"\x00")
    with pytest.raises(ValueError, match="idx1"):
        read_idx_labels(idx_bytes(x))
    with pytest.raises(ValueError, match="idx3"):
        read_idx_images(idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")
    with pytest.raises(TypeError):
        read_idx(12345)


# ---------------------------------------------------------------------------
# CIFAR python batches + restricted unpickler
# ---------------------------------------------------------------------------

def cifar_batch(n, seed):
    data = _rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in _rng(seed + 100).integers(0, 10, size=n)]
    return data, labels


def write_cifar_py(path, data, labels, protocol=2):
    d = {b"batch_label": b"test batch", b"labels": labels, b"data": data,
         b"filenames": [b"f%d.png" % i for i in range(len(labels))]}
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=protocol)


def expected_hwc(data):
    """Reference conversion written pixel by pixel from the format description."""
    n = data.shape[0]
    out = np.zeros((n, 32, 32, 3), np.uint8)
    for c in range(3):
        for i in range(32):
            out[:, i, :, c] = data[:, c * 1024 + i * 32: c * 1024 + i * 32 + 32]
    return out


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_python_batch_roundtrip(tmp_path, protocol):
    data, labels = cifar_batch(6, 0)
    write_cifar_py(tmp_path / "data_batch_1", data, labels, protocol)
    x, y = read_cifar_python_batch(tmp_path / "data_batch_1")
    assert x.shape == (6, 32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(x, expected_hwc(data))
    np.testing.assert_array_equal(y, labels)
    # one pixel by hand: image 2, row 5, col 7, green
    assert x[2, 5, 7, 1] == data[2, 1024 + 5 * 32 + 7]


def test_cifar_batch_rejects_bad_contents(tmp_path):
    p = tmp_path / "b"
    with open(p, "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(ValueError, match="3072"):
        read_cifar_python_batch(p)
    with open(p, "wb") as f:
        pickle.dump({b"labels": [0]}, f)
    with pytest.raises(ValueError, match="data"):
        read_cifar_python_batch(p)
    with open(p, "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, f)
    with pytest.raises(ValueError, match="uint8"):
        read_cifar_python_batch(p)


class _Pwn:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvalPwn:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("payload_cls", [_Pwn, _EvalPwn])
@pytest.mark.parametrize("protocol", [2, 4])
def test_malicious_pickle_is_refused_and_not_run(tmp_path, payload_cls, protocol):
    marker = tmp_path / "pwned"
    blob = pickle.dumps({b"data": payload_cls(marker), b"labels": [0]}, protocol=protocol)
    (tmp_path / "data_batch_1").write_bytes(blob)
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        read_cifar_python_batch(tmp_path / "data_batch_1")
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        restricted_pickle_load(blob)
    assert not marker.exists()
    # the payload is real: the standard unpickler would have run it
    pickle.loads(blob)
    assert marker.exists()


def test_malicious_pickle_inside_object_array_and_codecs(tmp_path):
    marker = tmp_path / "pwned"
    arr = np.array([_Pwn(marker)], dtype=object)
    with pytest.raises(pickle.UnpicklingError):
        restricted_pickle_load(pickle.dumps({b"data": arr}, protocol=2))
    assert not marker.exists()
    # _codecs.encode is only allowed for latin-1
    import _codecs

    class Enc:
        def __reduce__(self):
            return (_codecs.encode, ("abc", "rot13"))

    with pytest.raises(pickle.UnpicklingError):
        restricted_pickle_load(pickle.dumps(Enc(), protocol=2))


def _write_cifar_py_dir(root, seed=0, n=4):
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    batches = []
    for i in range(1, 6):
        data, labels = cifar_batch(n, seed + i)
        write_cifar_py(d / f"data_batch_{i}", data, labels)
        batches.append((data, labels))
    tdata, tlabels = cifar_batch(n, seed + 50)
    write_cifar_py(d / "test_batch", tdata, tlabels)
    names = [b"c%d" % i for i in range(10)]
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names, b"num_cases_per_batch": n}, f, protocol=2)
    return d, batches, (tdata, tlabels)


def test_cifar10_python_folder_and_tar(tmp_path):
    d, batches, (tdata, tlabels) = _write_cifar_py_dir(tmp_path / "src")
    tar_path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tf:
        tf.add(d, arcname="cifar-10-batches-py")
    exp_x = np.concatenate([expected_hwc(b[0]) for b in batches])
    exp_y = np.concatenate([b[1] for b in batches])
    for root in (d, tmp_path / "src", tar_path):
        x, y, classes = read_cifar10_python(root, "train")
        np.testing.assert_array_equal(x, exp_x)
        np.testing.assert_array_equal(y, exp_y)
        assert classes == [f"c{i}" for i in range(10)]
        xt, yt, _ = read_cifar10_python(root, "test")
        np.testing.assert_array_equal(xt, expected_hwc(tdata))
        np.testing.assert_array_equal(yt, tlabels)
    with pytest.raises(ValueError, match="split"):
        read_cifar10_python(d, "valid")


def test_cifar_tar_is_read_in_memory_not_extracted(tmp_path):
    d, _, _ = _write_cifar_py_dir(tmp_path / "src")
    tar_path = tmp_path / "evil.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tf:
        tf.add(d, arcname="cifar-10-batches-py")
        info = tarfile.TarInfo("../../escaped.txt")
        payload = b"should never be written"
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    work = tmp_path / "work"
    work.mkdir()
    cwd = os.getcwd()
    try:
        os.chdir(work)
        read_cifar10_python(tar_path, "test")
    finally:
        os.chdir(cwd)
    assert not (tmp_path / "escaped.txt").exists()
    assert list(work.iterdir()) == []


def test_cifar_tar_with_malicious_batch(tmp_path):
    marker = tmp_path / "pwned"
    src = tmp_path / "cifar-10-batches-py"
    src.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (src / name).write_bytes(pickle.dumps({b"data": _Pwn(marker), b"labels": [0]}))
    tar_path = tmp_path / "c.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tf:
        tf.add(src, arcname="cifar-10-batches-py")
    with pytest.raises(pickle.UnpicklingError):
        read_cifar10_python(tar_path, "train")
    assert not marker.exists()


# ---------------------------------------------------------------------------
# CIFAR binary
# ---------------------------------------------------------------------------

def cifar_bin_bytes(data, labels):
    return b"".join(bytes([lab]) + row.tobytes() for lab, row in zip(labels, data))


def test_cifar10_binary_batch_and_folder_and_tar(tmp_path):
    d = tmp_path / "cifar-10-batches-bin"
    d.mkdir()
    all_d, all_l = [], []
    for i in range(1, 6):
        data, labels = cifar_batch(3, i)
        (d / f"data_batch_{i}.bin").write_bytes(cifar_bin_bytes(data, labels))
        all_d.append(data)
        all_l += labels
    tdata, tlabels = cifar_batch(2, 99)
    (d / "test_batch.bin").write_bytes(cifar_bin_bytes(tdata, tlabels))
    (d / "batches.meta.txt").write_text("\n".join(f"k{i}" for i in range(10)) + "\n\n")
    x, y = read_cifar10_binary_batch(d / "data_batch_1.bin")
    np.testing.assert_array_equal(x, expected_hwc(all_d[0]))
    tar_path = tmp_path / "cifar-10-binary.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tf:
        tf.add(d, arcname="cifar-10-batches-bin")
    for root in (d, tmp_path, tar_path):
        x, y, classes = read_cifar10_binary(root, "train")
        np.testing.assert_array_equal(x, expected_hwc(np.concatenate(all_d)))
        np.testing.assert_array_equal(y, all_l)
        assert classes[3] == "k3"
        xt, yt, _ = read_cifar10_binary(root, "test")
        np.testing.assert_array_equal(yt, tlabels)


def test_cifar10_binary_bad_size_and_label(tmp_path):
    data, labels = cifar_batch(2, 0)
    blob = cifar_bin_bytes(data, labels)
    with pytest.raises(ValueError, match="multiple of 3073"):
        read_cifar10_binary_batch(blob[:-5])
    with pytest.raises(ValueError, match="label"):
        read_cifar10_binary_batch(bytes([42]) + blob[1:])


# ---------------------------------------------------------------------------
# SVHN
# ---------------------------------------------------------------------------

def test_svhn_mat(tmp_path):
    import scipy.io as scipy_io

    x = _rng().integers(0, 256, size=(5, 32, 32, 3), dtype=np.uint8)
    digits = np.array([0, 1, 9, 0, 5])
    y_file = np.where(digits == 0, 10, digits).reshape(-1, 1).astype(np.uint8)
    scipy_io.savemat(tmp_path / "train_32x32.mat", {"X": np.transpose(x, (1, 2, 3, 0)), "y": y_file})
    gx, gy = read_svhn_mat(tmp_path / "train_32x32.mat")
    assert gx.shape == (5, 32, 32, 3) and gx.dtype == np.uint8
    np.testing.assert_array_equal(gx, x)
    np.testing.assert_array_equal(gy, digits)
    assert gy.dtype == np.int64
    scipy_io.savemat(tmp_path / "bad.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.ones((3, 1))})
    with pytest.raises(ValueError, match="labels"):
        read_svhn_mat(tmp_path / "bad.mat")
    scipy_io.savemat(tmp_path / "nokeys.mat", {"images": np.zeros(3)})
    with pytest.raises(ValueError, match="'X'"):
        read_svhn_mat(tmp_path / "nokeys.mat")


# ---------------------------------------------------------------------------
# HDF5 and npz
# ---------------------------------------------------------------------------

def test_hdf5_default_and_custom_keys(tmp_path):
    import h5py

    x = _rng().integers(0, 256, size=(6, 8, 8, 3), dtype=np.uint8)
    y = np.arange(6) % 3
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["images"] = x
        f["labels"] = y.reshape(-1, 1)
    gx, gy = read_hdf5(tmp_path / "a.h5")
    np.testing.assert_array_equal(gx, x)
    np.testing.assert_array_equal(gy, y)
    # land-cover style file: NCHW float in [0, 1], one-hot labels, user-named keys in a group
    xf = np.transpose(x, (0, 3, 1, 2)).astype(np.float32) / 255
    with h5py.File(tmp_path / "earth_data.h5", "w") as f:
        g = f.create_group("train")
        g["X"] = xf
        g["Y"] = np.eye(3)[y]
    gx, gy = read_hdf5(tmp_path / "earth_data.h5", x_key="train/X", y_key="train/Y")
    np.testing.assert_array_equal(gx, x)
    np.testing.assert_array_equal(gy, y)
    with pytest.raises(KeyError, match="train/X"):
        read_hdf5(tmp_path / "earth_data.h5", x_key="images", y_key="train/Y")
    with pytest.raises(ValueError, match="layout"):
        read_hdf5(tmp_path / "a.h5", layout="HWCN")


def test_hdf5_out_of_range_floats_and_mismatch(tmp_path):
    import h5py

    with h5py.File(tmp_path / "b.h5", "w") as f:
        f["images"] = np.full((2, 4, 4), -3.0)
        f["labels"] = np.array([0, 1])
    with pytest.raises(ValueError, match="uint8"):
        read_hdf5(tmp_path / "b.h5")
    with h5py.File(tmp_path / "c.h5", "w") as f:
        f["images"] = np.zeros((2, 4, 4), np.uint8)
        f["labels"] = np.array([0, 1, 2])
    with pytest.raises(ValueError, match="labels"):
        read_hdf5(tmp_path / "c.h5")


def test_npz_roundtrip_and_pickle_refused(tmp_path):
    x = _rng().integers(0, 256, size=(4, 5, 5, 3), dtype=np.uint8)
    y = np.array([3, 1, 2, 0], dtype=np.int64)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    gx, gy = read_npz(tmp_path / "d.npz")
    np.testing.assert_array_equal(gx, x)
    np.testing.assert_array_equal(gy, y)
    np.savez(tmp_path / "obj.npz", x=np.array([object()] * 4, dtype=object), y=y)
    with pytest.raises(ValueError):
        read_npz(tmp_path / "obj.npz")
    np.savez(tmp_path / "f.npz", x=x.astype(np.float32), y=y)
    with pytest.raises(ValueError, match="uint8"):
        read_npz(tmp_path / "f.npz")


# ---------------------------------------------------------------------------
# image folders / zip
# ---------------------------------------------------------------------------

def _save_png(path, arr):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _make_tree(root, split="train", classes=("dog", "cat", "ant"), per_class=3, seed=0, size=(6, 5)):
    """PNG class folders; returns the expected (x, y, class_names) in reader order."""
    gen = _rng(seed)
    names = sorted(classes)
    xs, ys = [], []
    for c in classes:
        # file numbers chosen so that natural order differs from plain string order
        for k in [2, 10, 1][:per_class]:
            a = gen.integers(0, 256, size=size + (3,), dtype=np.uint8)
            _save_png(root / split / c / f"{k}.png", a)
    for ci, c in enumerate(names):
        for k in sorted([2, 10, 1][:per_class]):
            from PIL import Image

            xs.append(np.asarray(Image.open(root / split / c / f"{k}.png")))
            ys.append(ci)
    return np.stack(xs), np.array(ys), names


def test_image_folder_exact_roundtrip_order_and_cache(tmp_path):
    root = tmp_path / "data"
    ex, ey, names = _make_tree(root)
    cache = tmp_path / "cache"
    x, y, classes = read_image_folder(root, split="train", cache_dir=cache)
    assert classes == ["ant", "cat", "dog"]
    assert x.dtype == np.uint8 and x.shape == (9, 6, 5, 3) and y.dtype == np.int64
    np.testing.assert_array_equal(x, ex)
    np.testing.assert_array_equal(y, ey)
    cached = list(cache.glob("*.npz"))
    assert len(cached) == 1 and not list(cache.glob("*.tmp"))
    # second load comes from the cache: decoding is not called at all
    orig = formats._decode
    formats._decode = lambda *a, **k: (_ for _ in ()).throw(AssertionError("decoded again"))
    try:
        x2, y2, c2 = read_image_folder(root, split="train", cache_dir=cache)
    finally:
        formats._decode = orig
    np.testing.assert_array_equal(x2, ex)
    assert c2 == classes
    # explicit class order
    x3, y3, c3 = read_image_folder(root, split="train", classes=["dog", "ant"], use_cache=False)
    assert c3 == ["dog", "ant"] and x3.shape[0] == 6
    np.testing.assert_array_equal(x3[:3], ex[6:9])
    with pytest.raises(ValueError, match="not found"):
        read_image_folder(root, split="train", classes=["zebra"], use_cache=False)


def test_image_folder_cache_invalidated_when_source_changes(tmp_path):
    root = tmp_path / "data"
    _make_tree(root, seed=0)
    cache = tmp_path / "cache"
    x1, _, _ = read_image_folder(root, split="train", cache_dir=cache)
    # rewrite one file with different content (and a different mtime)
    new = np.full((6, 5, 3), 7, np.uint8)
    p = root / "train" / "ant" / "1.png"
    _save_png(p, new)
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    x2, _, _ = read_image_folder(root, split="train", cache_dir=cache)
    np.testing.assert_array_equal(x2[0], new)
    assert not np.array_equal(x1[0], x2[0])


def test_image_zip_with_prefix_and_splits(tmp_path):
    root = tmp_path / "tree"
    ex, ey, names = _make_tree(root / "mydata", split="train")
    _make_tree(root / "mydata", split="test", seed=5, per_class=2)
    zp = tmp_path / "images.zip"
    with zipfile.ZipFile(zp, "w") as zf:
        for f in sorted(root.rglob("*.png")):
            zf.write(f, f.relative_to(root).as_posix())
    x, y, classes = read_image_folder(zp, split="train", cache_dir=tmp_path / "c")
    np.testing.assert_array_equal(x, ex)
    np.testing.assert_array_equal(y, ey)
    assert classes == names
    xt, yt, _ = read_image_folder(zp, split="test", cache_dir=tmp_path / "c")
    assert xt.shape[0] == 6
    with pytest.raises(ValueError, match="split"):
        read_image_folder(zp, split=None, use_cache=False)
    # stratified first-n subset decodes only what is needed
    xs, ys, _ = read_image_folder(zp, split="train", n=3, use_cache=False)
    np.testing.assert_array_equal(np.bincount(ys), [1, 1, 1])
    np.testing.assert_array_equal(xs, ex[[0, 3, 6]])


def test_image_folder_modes_sizes_and_jpeg(tmp_path):
    from PIL import Image

    root = tmp_path / "mixed"
    _save_png(root / "a" / "0.png", np.full((4, 4), 100, np.uint8))  # grayscale
    _save_png(root / "b" / "0.png", np.zeros((4, 4, 3), np.uint8))
    x, y, _ = read_image_folder(root, use_cache=False)
    assert x.shape == (2, 4, 4, 3)
    np.testing.assert_array_equal(x[0], 100)
    xg, _, _ = read_image_folder(root, mode="L", use_cache=False)
    assert xg.shape == (2, 4, 4, 1)
    _save_png(root / "b" / "1.png", np.zeros((5, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="size"):
        read_image_folder(root, use_cache=False)
    xr, _, _ = read_image_folder(root, size=(8, 8), use_cache=False)
    assert xr.shape == (3, 8, 8, 3)
    # JPEG decodes (lossy) close to the original
    smooth = np.tile(np.linspace(0, 255, 16, dtype=np.uint8), (16, 1))
    jroot = tmp_path / "jpg"
    (jroot / "k").mkdir(parents=True)
    Image.fromarray(np.stack([smooth] * 3, -1)).save(jroot / "k" / "0.jpg", quality=95)
    xj, _, _ = read_image_folder(jroot, use_cache=False)
    assert np.abs(xj[0].astype(int) - smooth[..., None]).mean() < 3
    (jroot / "k" / "1.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="decode"):
        read_image_folder(jroot, use_cache=False)
    with pytest.raises(FileNotFoundError):
        read_image_folder(tmp_path / "missing")


# ---------------------------------------------------------------------------
# issue 13: the restricted unpickler admits only what official batches contain
# ---------------------------------------------------------------------------

class _NdarrayCall:
    """``numpy.ndarray(shape, dtype)`` through REDUCE: uninitialised memory of any size."""

    def __init__(self, shape, dtype="u1"):
        self.shape, self.dtype = shape, dtype

    def __reduce__(self):
        return (np.ndarray, (self.shape, self.dtype))


class _BareReconstruct:
    """numpy's ``_reconstruct`` with a large shape and no state: uninitialised memory."""

    def __reduce__(self):
        return (np.zeros(1).__reduce__()[0], (np.ndarray, (1 << 20,), b"b"))


def test_ndarray_constructor_pickle_is_refused(tmp_path):
    blob = pickle.dumps({b"data": _NdarrayCall((10, 3072)), b"labels": _NdarrayCall((10,), "i8")},
                        protocol=2)
    tiny = pickle.dumps(_NdarrayCall((1 << 22,)), protocol=2)
    assert len(tiny) < 100  # the 83-byte file: megabytes of heap memory
    for b in (blob, tiny, pickle.dumps(_BareReconstruct(), protocol=2)):
        with pytest.raises(pickle.UnpicklingError, match="refused"):
            restricted_pickle_load(b)
    (tmp_path / "data_batch_1").write_bytes(blob)
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        read_cifar_python_batch(tmp_path / "data_batch_1")


@pytest.mark.parametrize("value", [
    np.array([1, 2], dtype=object),                                # object dtype
    np.zeros(2, dtype=[("a", "u1"), ("b", "f4")]),                 # structured
    np.array(["ab", "cd"]),                                        # unicode
    np.zeros(3, dtype="c16"),                                      # complex: not in a batch
])
@pytest.mark.parametrize("protocol", [2, 5])
def test_only_plain_numeric_dtypes_are_rebuilt(value, protocol):
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        restricted_pickle_load(pickle.dumps({b"data": value}, protocol=protocol))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_restricted_unpickler_rebuilds_numeric_arrays_exactly(protocol):
    values = {b"u8": np.arange(12, dtype=np.uint8).reshape(3, 4),
              b"f64_F": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
              b"be": np.arange(5, dtype=">i4"), b"bool": np.array([True, False]),
              b"empty": np.zeros((0, 3072), np.uint8), b"scalar": np.float32(2.5),
              b"list": [1, 2, 3], b"names": [b"airplane", b"cat"]}
    out = restricted_pickle_load(pickle.dumps(values, protocol=protocol))
    for k, v in values.items():
        if isinstance(v, np.ndarray):
            assert isinstance(out[k], np.ndarray) and out[k].dtype == v.dtype
            np.testing.assert_array_equal(out[k], v)
        else:
            assert out[k] == v
    assert out[b"f64_F"].shape == (2, 3) and out[b"scalar"].dtype == np.float32


def test_array_bytes_must_match_shape_and_dtype():
    blob = bytearray(pickle.dumps(np.arange(4, dtype=np.uint8), protocol=2))
    # change the declared shape (4,) -> (5,): the data no longer fits
    at = blob.find(b"K\x04\x85")
    assert at > 0
    blob[at + 1] = 5
    with pytest.raises(pickle.UnpicklingError, match="holds 4 bytes"):
        restricted_pickle_load(bytes(blob))
    with pytest.raises(pickle.UnpicklingError, match="truncated|damaged"):
        restricted_pickle_load(pickle.dumps(np.arange(4), protocol=2)[:-9])


@pytest.mark.parametrize("labels, bad", [([0, -1], -1), ([10, 1], 10), ([3, 255], 255)])
def test_cifar_label_outside_0_to_9_is_refused(tmp_path, labels, bad):
    p = tmp_path / "b"
    with open(p, "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": labels}, f, protocol=2)
    with pytest.raises(ValueError, match=rf"holds label {bad}, outside the valid range 0\.\.9"):
        read_cifar_python_batch(p)
    with open(p, "wb") as f:  # CIFAR-100 fine labels go up to 99
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0, 99]}, f)
    assert read_cifar_python_batch(p, label_key="fine_labels")[1].tolist() == [0, 99]
    with open(p, "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0.5, True]}, f)
    with pytest.raises(ValueError, match="must be a list of ints"):
        read_cifar_python_batch(p)


# ---------------------------------------------------------------------------
# issue 13: an image-folder cache hit is validated
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("forged", [
    lambda x, y: {"x": np.zeros((2, 3)), "y": y},                       # the case
    lambda x, y: {"x": x.astype(np.float64), "y": y},                   # wrong dtype
    lambda x, y: {"x": x[:-1], "y": y},                                 # wrong count
    lambda x, y: {"x": x[:, :, :, :2], "y": y},                         # 2 channels
    lambda x, y: {"x": x[:, :4], "y": y},                               # wrong size
    lambda x, y: {"x": x, "y": y.astype(np.float64)},                   # float labels
])
def test_image_folder_cache_that_does_not_fit_is_rebuilt(tmp_path, forged):
    root = tmp_path / "data"
    ex, ey, _ = _make_tree(root)
    cache = tmp_path / "cache"
    read_image_folder(root, split="train", cache_dir=cache, size=(6, 5))
    (cached,) = cache.glob("*.npz")
    np.savez(cached, **forged(ex, ey), classes=np.array(["ant", "cat", "dog"]))
    with pytest.warns(RuntimeWarning, match="does not fit the folder.*rebuilding"):
        x, y, _ = read_image_folder(root, split="train", cache_dir=cache, size=(6, 5))
    assert x.dtype == np.uint8 and x.shape == (9, 6, 5, 3)
    np.testing.assert_array_equal(x, ex)
    np.testing.assert_array_equal(y, ey)
    with np.load(cached) as z:  # the cache was rewritten with the decoded arrays
        np.testing.assert_array_equal(z["x"], ex)
