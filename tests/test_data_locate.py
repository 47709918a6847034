"""Finding data (search order, errors, verified downloads) and the high-level loaders."""
import dataclasses
import gzip
import hashlib
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

import nnlite.data as nd
from nnlite.data import locate
from nnlite.data.locate import (
    ChecksumError,
    DataNotFoundError,
    download_file,
    find_dataset,
)

NNLITE_DATA = os.environ.get("NNLITE_DATA")
needs_data = pytest.mark.skipif(not NNLITE_DATA, reason="needs NNLITE_DATA (the shared data folder)")

FMNIST_SYSTEM = locate.DATASETS["fashion_mnist"].system_dirs
HAVE_DEBIAN_FMNIST = any(locate.find_idx_files(d) for d in FMNIST_SYSTEM)


def idx_bytes(arr):
    head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def write_mnist_like(folder: Path, n_train=20, n_test=10, seed=0, gz=True, names="-"):
    """Write the 4 idx files; returns (x_train, y_train, x_test, y_test) as uint8 arrays."""
    gen = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = gen.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        for kind, arr, tag in (("images", x, "idx3"), ("labels", y, "idx1")):
            name = f"{prefix}-{kind}{names}{tag}-ubyte" + (".gz" if gz else "")
            data = idx_bytes(arr)
            (folder / name).write_bytes(gzip.compress(data) if gz else data)
        out += [x, y]
    return out


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """Empty $NNLITE_DATA and cache, and no system locations."""
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    monkeypatch.setenv("NNLITE_DATA", str(data))
    monkeypatch.setenv("NNLITE_CACHE", str(cache))
    for name, spec in list(locate.DATASETS.items()):
        monkeypatch.setitem(locate.DATASETS, name,
                            dataclasses.replace(spec, system_dirs=(str(tmp_path / "sys" / name),)))
    return data, cache


# ---------------------------------------------------------------------------
# search order
# ---------------------------------------------------------------------------

def test_explicit_path_dataset_folder_or_parent(isolated, tmp_path):
    write_mnist_like(tmp_path / "mine" / "mnist")
    loc = find_dataset("mnist", tmp_path / "mine" / "mnist")
    assert loc.origin == "explicit path" and loc.path == tmp_path / "mine" / "mnist"
    loc = find_dataset("mnist", str(tmp_path / "mine"))
    assert loc.path == tmp_path / "mine" / "mnist"
    assert os.fspath(loc) == str(tmp_path / "mine" / "mnist")


def test_explicit_path_that_is_wrong_is_an_error_without_fallback(isolated, tmp_path):
    data, _ = isolated
    write_mnist_like(data / "mnist")  # would be found via NNLITE_DATA
    with pytest.raises(DataNotFoundError) as ei:
        find_dataset("mnist", tmp_path / "typo")
    assert str(tmp_path / "typo") in str(ei.value)


def test_env_then_cache_then_system(isolated, tmp_path):
    data, cache = isolated
    sys_dir = Path(locate.DATASETS["fashion_mnist"].system_dirs[0])
    write_mnist_like(sys_dir, seed=3)
    assert find_dataset("fashion_mnist").origin == "system"
    write_mnist_like(cache / "fashion_mnist", seed=2)
    assert find_dataset("fashion-mnist").origin == "cache"
    write_mnist_like(data / "fashion-mnist", seed=1, gz=False, names=".")  # alias + dotted names, raw
    loc = find_dataset("fashion_mnist")
    assert loc.origin == "$NNLITE_DATA" and loc.path == data / "fashion-mnist"
    # and the loader reads what was found there
    x_train, y_train, x_test, y_test = write_mnist_like(tmp_path / "check", seed=1)
    ds = nd.load_fashion_mnist()
    np.testing.assert_array_equal(ds.x_train[:, 0], x_train / np.float32(255))
    np.testing.assert_array_equal(ds.y_test, y_test)
    assert "$NNLITE_DATA" in ds.source and str(data / "fashion-mnist") in ds.source


def test_nnlite_data_may_list_several_roots(isolated, tmp_path, monkeypatch):
    write_mnist_like(tmp_path / "second" / "mnist")
    monkeypatch.setenv("NNLITE_DATA", os.pathsep.join([str(tmp_path / "first"), str(tmp_path / "second")]))
    assert find_dataset("mnist").path == tmp_path / "second" / "mnist"


def test_not_found_message_lists_every_place(isolated):
    data, cache = isolated
    with pytest.raises(DataNotFoundError) as ei:
        find_dataset("fashion_mnist")
    err = ei.value
    assert isinstance(err, FileNotFoundError)
    msg = str(err)
    for place in (data / "fashion_mnist", cache / "fashion_mnist",
                  locate.DATASETS["fashion_mnist"].system_dirs[0]):
        assert str(place) in msg
    assert "download=True" in msg and "apt-get install -y dataset-fashion-mnist" in msg
    assert "NNLITE_DATA" in msg
    assert len(err.searched) >= 4


def test_unset_env_is_reported(isolated, monkeypatch):
    monkeypatch.delenv("NNLITE_DATA")
    with pytest.raises(DataNotFoundError, match="NNLITE_DATA: not set"):
        find_dataset("svhn")
    with pytest.raises(ValueError, match="unknown data set"):
        find_dataset("imagenet-22k")


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("NNLITE_CACHE", str(tmp_path / "c"))
    assert nd.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("NNLITE_CACHE")
    assert nd.cache_dir() == Path.home() / ".cache" / "nnlite"


# ---------------------------------------------------------------------------
# verified download (file:// URLs; there is no network here)
# ---------------------------------------------------------------------------

def test_download_file_checks_sha256_and_writes_atomically(tmp_path):
    src = tmp_path / "remote.bin"
    payload = os.urandom(3000)
    src.write_bytes(payload)
    good = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "dl" / "file.bin"
    assert download_file(src.as_uri(), dest, sha256=good) == dest
    assert dest.read_bytes() == payload
    bad_dest = tmp_path / "dl" / "bad.bin"
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        download_file(src.as_uri(), bad_dest, sha256="0" * 64)
    assert not bad_dest.exists()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["file.bin"]  # no .part left over
    with pytest.raises(ValueError, match="sha256"):
        download_file(src.as_uri(), tmp_path / "x")
    # md5 for publishers that list only md5
    assert download_file(src.as_uri(), tmp_path / "m.bin", md5=hashlib.md5(payload).hexdigest()).is_file()
    with pytest.raises(OSError):
        download_file((tmp_path / "missing").as_uri(), tmp_path / "y", sha256=good)


def test_find_dataset_download_into_cache(isolated, tmp_path, monkeypatch):
    data, cache = isolated
    remote = tmp_path / "remote"
    x_train, y_train, x_test, y_test = write_mnist_like(remote, seed=7)
    files = tuple(
        locate.RemoteFile(p.as_uri(), p.name, sha256=hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(remote.iterdir())
    )
    spec = dataclasses.replace(locate.DATASETS["fashion_mnist"], files=files)
    monkeypatch.setitem(locate.DATASETS, "fashion_mnist", spec)
    with pytest.raises(DataNotFoundError, match="not attempted"):
        find_dataset("fashion_mnist")
    loc = find_dataset("fashion_mnist", download=True)
    assert loc.origin == "download" and loc.path == cache / "fashion_mnist"
    ds = nd.load_fashion_mnist(allow_bundled=False)  # now found in the cache
    np.testing.assert_array_equal(ds.y_train, y_train)
    np.testing.assert_array_equal(ds.x_test[:, 0], x_test / np.float32(255))
    # a checksum mismatch is reported as not found, and nothing is kept
    bad = tuple(dataclasses.replace(f, sha256="f" * 64) for f in files)
    monkeypatch.setitem(locate.DATASETS, "mnist", dataclasses.replace(locate.DATASETS["mnist"], files=bad))
    with pytest.raises(DataNotFoundError, match="mismatch"):
        find_dataset("mnist", download=True)
    assert not (cache / "mnist").exists() or not any((cache / "mnist").iterdir())


# ---------------------------------------------------------------------------
# Fashion-MNIST: Debian files and the bundled subset (always available)
# ---------------------------------------------------------------------------

def test_bundled_fallback_says_so(isolated):
    ds = nd.load_fashion_mnist()
    assert ds.source.startswith("bundled subset")
    assert "not found" in ds.source and "looked in" in ds.source
    assert ds.x_train.shape[1:] == (1, 28, 28) and ds.x_train.dtype == np.float32
    assert ds.x_test.shape[1:] == (1, 28, 28)
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0 and ds.x_train.max() > 0.9
    assert ds.y_train.dtype == np.int64
    counts = np.bincount(ds.y_train, minlength=10)
    assert counts.min() == counts.max() == ds.y_train.size // 10
    assert len(ds.classes) == 10 and ds.classes[9] == "Ankle boot"
    with pytest.raises(DataNotFoundError):
        nd.load_fashion_mnist(allow_bundled=False)
    small = nd.load_fashion_mnist(n_train=100, n_test=50)
    np.testing.assert_array_equal(np.bincount(small.y_train), [10] * 10)
    assert "subset" in small.source


def test_bundled_file_is_what_its_readme_says():
    z = np.load(nd.bundled_path(), allow_pickle=False)
    assert z["x_train"].dtype == np.uint8 and z["x_train"].shape[1:] == (28, 28)
    assert z["y_train"].dtype == np.int64
    assert z["x_train"].shape[0] + z["x_test"].shape[0] >= 10000
    assert nd.bundled_path().stat().st_size < 5_000_000
    for split in ("train", "test"):
        idx = z[f"{split}_index"]
        assert np.all(np.diff(idx) > 0)  # sorted, unique positions in the official files


def test_bundled_subset_matches_official_files():
    z = np.load(nd.bundled_path(), allow_pickle=False)
    if not HAVE_DEBIAN_FMNIST:
        # without the official files, check what can be checked: labels and balance
        assert set(np.unique(z["y_test"])) == set(range(10))
        assert np.all(z["test_index"] < 10000) and np.all(z["train_index"] < 60000)
        return
    files = locate.find_idx_files(next(d for d in FMNIST_SYSTEM if locate.find_idx_files(d)))
    xt = nd.read_idx_images(files["test_images"])[..., 0]
    yt = nd.read_idx_labels(files["test_labels"])
    np.testing.assert_array_equal(z["x_test"], xt[z["test_index"]])
    np.testing.assert_array_equal(z["y_test"], yt[z["test_index"]])


def test_fashion_mnist_full_from_system_else_bundled(monkeypatch, tmp_path):
    """Debian's dataset-fashion-mnist when installed, else the bundled subset, never an error."""
    monkeypatch.delenv("NNLITE_DATA", raising=False)
    monkeypatch.setenv("NNLITE_CACHE", str(tmp_path))
    ds = nd.load_fashion_mnist()
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.x_train.shape[1:] == (1, 28, 28) and ds.x_test.shape[1:] == (1, 28, 28)
    if not HAVE_DEBIAN_FMNIST:
        assert ds.source.startswith("bundled subset")
        return
    assert ds.source.startswith("full Fashion-MNIST from ")
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    np.testing.assert_array_equal(np.bincount(ds.y_train), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(ds.y_test), [1000] * 10)
    assert 0.28 < ds.x_train.mean() < 0.29  # the well-known mean pixel value 0.286


# ---------------------------------------------------------------------------
# the shared data folder (only when NNLITE_DATA is set, as in CI)
# ---------------------------------------------------------------------------

@needs_data
def test_mnist_from_nnlite_data():
    ds = nd.load_mnist(n_train=1000)
    assert ds.x_test.shape == (10000, 1, 28, 28) and ds.x_test.dtype == np.float32
    np.testing.assert_array_equal(
        np.bincount(ds.y_test), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    assert ds.x_train.shape == (1000, 1, 28, 28)
    assert "MNIST" in ds.source
    # the raw official idx files agree with the npz
    raw = nd.find_dataset("mnist").path / "raw"
    if (raw / "t10k-images-idx3-ubyte.gz").is_file():
        x_raw = nd.read_idx_images(raw / "t10k-images-idx3-ubyte.gz")
        np.testing.assert_array_equal(nd.to_float_nchw(x_raw), ds.x_test)


@needs_data
def test_cifar10_from_nnlite_data(tmp_path):
    ds = nd.load_cifar10(exact=True, n_test=100)
    assert ds.x_train.shape[1:] == (3, 32, 32) and ds.x_test.shape == (100, 3, 32, 32)
    assert "bit-exact" in ds.source
    assert ds.classes[0] == "airplane" and ds.classes[9] == "truck"
    ds2 = nd.load_cifar10(n_train=200, n_test=10, cache_dir=tmp_path)
    np.testing.assert_array_equal(np.bincount(ds2.y_train), [20] * 10)
    assert "JPEG" in ds2.source and list(tmp_path.glob("*.npz"))


# ---------------------------------------------------------------------------
# high-level loaders on files written here
# ---------------------------------------------------------------------------

def test_load_mnist_idx_under_raw_and_subsets(isolated, tmp_path):
    x_train, y_train, x_test, y_test = write_mnist_like(tmp_path / "m" / "raw", n_train=40, n_test=20)
    ds = nd.load_mnist(tmp_path / "m", n_train=20, n_test=10)
    assert ds.x_train.shape == (20, 1, 28, 28)
    np.testing.assert_array_equal(np.bincount(ds.y_train), [2] * 10)
    # stratified first-N: the first two of each class, in file order
    np.testing.assert_array_equal(ds.x_train[:, 0], x_train[:20] / np.float32(255))
    assert "raw" in ds.source and "subset" in ds.source


def test_load_cifar10_python_batches(isolated, tmp_path):
    d = tmp_path / "c" / "cifar-10-batches-py"
    d.mkdir(parents=True)
    gen = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = gen.integers(0, 256, size=(10, 3072), dtype=np.uint8)
        with open(d / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": list(range(10))}, f, protocol=2)
    ds = nd.load_cifar10(tmp_path / "c")
    assert ds.x_train.shape == (50, 3, 32, 32) and ds.x_test.shape == (10, 3, 32, 32)
    assert "python version" in ds.source
    with open(d / "test_batch", "rb") as f:
        tb = pickle.load(f)
    np.testing.assert_array_equal(ds.x_test.reshape(10, -1), tb[b"data"] / np.float32(255))


def test_load_svhn_hdf5_and_image_folder(isolated, tmp_path):
    import scipy.io

    sv = tmp_path / "svhn"
    sv.mkdir()
    gen = np.random.default_rng(0)
    for name, n in (("train_32x32.mat", 20), ("test_32x32.mat", 10)):
        scipy.io.savemat(sv / name, {"X": gen.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8),
                                     "y": (np.arange(n) % 10 + 1).reshape(-1, 1)})
    ds = nd.load_svhn(sv)
    assert ds.x_train.shape == (20, 3, 32, 32) and set(ds.y_test) == set(range(10))

    import h5py

    with h5py.File(tmp_path / "earth_data.h5", "w") as f:
        f["x"] = gen.integers(0, 256, size=(50, 8, 8, 3), dtype=np.uint8)
        f["y"] = np.arange(50) % 5
    ds = nd.load_hdf5(tmp_path / "earth_data.h5", x_key="x", y_key="y", test_fraction=0.2, rng=0,
                      classes=["a", "b", "c", "d", "e"])
    assert ds.x_train.shape == (40, 3, 8, 8) and ds.x_test.shape == (10, 3, 8, 8)
    np.testing.assert_array_equal(np.bincount(ds.y_test), [2] * 5)
    with pytest.raises(ValueError, match="class names"):
        nd.load_hdf5(tmp_path / "earth_data.h5", x_key="x", y_key="y", classes=["a"])

    from PIL import Image

    root = tmp_path / "folders"
    for split, n in (("train", 4), ("test", 2)):
        for c in ("b", "a"):
            (root / split / c).mkdir(parents=True)
            for k in range(n):
                Image.fromarray(np.full((5, 5, 3), 10 * k, np.uint8)).save(root / split / c / f"{k}.png")
    ds = nd.load_image_folder(root, cache_dir=tmp_path / "cache")
    assert ds.classes == ["a", "b"] and ds.x_train.shape == (8, 3, 5, 5) and ds.x_test.shape == (4, 3, 5, 5)
    flat = tmp_path / "flat"
    for c in ("x", "y"):
        (flat / c).mkdir(parents=True)
        for k in range(5):
            Image.fromarray(np.full((3, 3), k, np.uint8)).save(flat / c / f"{k}.png")
    ds = nd.load_image_folder(flat, test_fraction=0.4, rng=1, cache_dir=tmp_path / "cache")
    assert ds.x_train.shape == (6, 1, 3, 3) and ds.x_test.shape == (4, 1, 3, 3)
