"""High-level data set loaders returning ready-to-train arrays.

Every loader returns a :class:`Dataset` whose images are **float32 NCHW in
[0, 1]** (``(N, C, H, W)``, via :func:`~nnlite.data.preprocess.to_float_nchw`)
and labels **int64** ``(N,)``; ``source`` says exactly which files were used.

Subsets for quick runs/CI: ``n_train`` / ``n_test`` take a **class-stratified
"first N"** subset: each class contributes its proportional share, taking that
class's first samples in file order (deterministic, no randomness; see
:func:`~nnlite.data.preprocess.stratified_subset`). Sample order otherwise
follows the files.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from . import formats
from .locate import DataLocation, DataNotFoundError, find_dataset, find_idx_files
from .preprocess import RngLike, stratified_split, stratified_subset, to_float_nchw

__all__ = [
    "Dataset",
    "FASHION_MNIST_CLASSES",
    "MNIST_CLASSES",
    "bundled_path",
    "load_mnist",
    "load_fashion_mnist",
    "load_cifar10",
    "load_svhn",
    "load_hdf5",
    "load_image_folder",
]

PathLike = Union[str, os.PathLike]

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
MNIST_CLASSES = tuple(str(i) for i in range(10))


@dataclass
class Dataset:
    """A train/test pair of arrays.

    x_train: ``(N_train, C, H, W)`` float32 in [0, 1];
    y_train: ``(N_train,)`` int64 class indices;
    x_test: ``(N_test, C, H, W)`` float32 in [0, 1];
    y_test: ``(N_test,)`` int64;
    classes: class names, label ``i`` is ``classes[i]``;
    source: human-readable description of the files used;
    name: data set name.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: List[str]
    source: str
    name: str = ""

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(classes)``)."""
        return len(self.classes)

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, "
                f"classes={len(self.classes)}, source={self.source!r})")


def _subset(x: np.ndarray, y: np.ndarray, n: Optional[int], what: str) -> Tuple[np.ndarray, np.ndarray]:
    if n is None:
        return x, y
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ValueError(f"{what} must be a non-negative int or None, got {n!r}")
    if n >= y.shape[0]:
        return x, y
    idx = stratified_subset(y, int(n))
    return x[idx], y[idx]


def _finish(name, xtr, ytr, xte, yte, classes, source, n_train, n_test) -> Dataset:
    full = (ytr.shape[0], yte.shape[0])
    xtr, ytr = _subset(xtr, ytr, n_train, "n_train")
    xte, yte = _subset(xte, yte, n_test, "n_test")
    if (ytr.shape[0], yte.shape[0]) != full:
        source += f" [stratified first-N subset: {ytr.shape[0]} of {full[0]} train, {yte.shape[0]} of {full[1]} test]"
    return Dataset(to_float_nchw(xtr), ytr.astype(np.int64), to_float_nchw(xte), yte.astype(np.int64),
                   list(classes), source, name)


def _read_classes_txt(folder: Path, default: Sequence[str]) -> List[str]:
    f = folder / "classes.txt"
    if f.is_file():
        names = [ln.split("\t")[0].strip() for ln in f.read_text(encoding="utf-8").splitlines() if ln.strip()]
        if names:
            return names
    return list(default)


def _origin_note(loc: DataLocation) -> str:
    return f" (found via {loc.origin})" if loc.origin != "explicit path" else ""


def _load_mnist_like(loc: DataLocation, label: str):
    """Read train/test from an MNIST-layout folder (npz preferred, else idx)."""
    p = loc.path
    if (p / "train.npz").is_file() and (p / "test.npz").is_file():
        xtr, ytr = formats.read_npz(p / "train.npz")
        xte, yte = formats.read_npz(p / "test.npz")
        return xtr, ytr, xte, yte, f"{label} from {p / 'train.npz'} + test.npz{_origin_note(loc)}"
    idx = find_idx_files(p)
    if idx is None:
        raise DataNotFoundError(f"{p}: no MNIST-style files", loc.searched)
    xtr = formats.read_idx_images(idx["train_images"])
    ytr = formats.read_idx_labels(idx["train_labels"])
    xte = formats.read_idx_images(idx["test_images"])
    yte = formats.read_idx_labels(idx["test_labels"])
    for xs, ys, what in ((xtr, ytr, "train"), (xte, yte, "test")):
        if xs.shape[0] != ys.shape[0]:
            raise ValueError(f"{p}: {what} has {xs.shape[0]} images but {ys.shape[0]} labels")
    names = ", ".join(idx[k].name for k in ("train_images", "train_labels", "test_images", "test_labels"))
    return xtr, ytr, xte, yte, f"{label} from {idx['train_images'].parent} ({names}){_origin_note(loc)}"


def load_mnist(
    path: Optional[PathLike] = None,
    download: bool = False,
    n_train: Optional[int] = None,
    n_test: Optional[int] = None,
) -> Dataset:
    """Load MNIST (60,000 train / 10,000 test, 1x28x28).

    -> :class:`Dataset` with ``x_*`` ``(N, 1, 28, 28)`` float32 in [0, 1], ``y_*`` int64,
    classes ``"0".."9"``.

    Looks for the data with :func:`~nnlite.data.locate.find_dataset` (``path``,
    then ``$NNLITE_DATA/mnist``, cache, ``download=True``). A folder with
    ``train.npz``/``test.npz`` is read directly; otherwise the four official idx
    files (``.gz`` or not, also under ``raw/``).
    """
    loc = find_dataset("mnist", path, download=download)
    xtr, ytr, xte, yte, src = _load_mnist_like(loc, "full MNIST")
    return _finish("mnist", xtr, ytr, xte, yte, _read_classes_txt(loc.path, MNIST_CLASSES), src, n_train, n_test)


def bundled_path() -> Path:
    """Path of the bundled Fashion-MNIST subset (``bundled/fashion_mnist_subset.npz``)."""
    return Path(__file__).resolve().parent / "bundled" / "fashion_mnist_subset.npz"


def _load_bundled_fashion() -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, List[str]]:
    p = bundled_path()
    if not p.is_file():
        raise FileNotFoundError(f"bundled Fashion-MNIST subset is missing: {p}")
    with np.load(p, allow_pickle=False) as z:
        xtr, ytr, xte, yte = z["x_train"], z["y_train"], z["x_test"], z["y_test"]
        classes = [str(c) for c in z["classes"]]
    if xtr.ndim == 3:
        xtr, xte = xtr[..., None], xte[..., None]
    return xtr, ytr.astype(np.int64), xte, yte.astype(np.int64), classes


def load_fashion_mnist(
    path: Optional[PathLike] = None,
    allow_bundled: bool = True,
    download: bool = False,
    n_train: Optional[int] = None,
    n_test: Optional[int] = None,
) -> Dataset:
    """Load Fashion-MNIST (60,000 train / 10,000 test, 1x28x28, 10 clothing classes).

    -> :class:`Dataset` with ``x_*`` ``(N, 1, 28, 28)`` float32 in [0, 1], ``y_*`` int64. Raises
    DataNotFoundError: data not found and the bundled fallback is disabled (or an explicit
    ``path`` is wrong).

    Search order: ``path`` (error if it does not hold the data), ``$NNLITE_DATA/fashion_mnist``
    (or ``fashion-mnist``), the cache folder, ``/usr/share/datasets/fashion-mnist``
    (Debian package ``dataset-fashion-mnist``), the official URLs if ``download=True``.
    If none has the data and ``allow_bundled`` is true (and no explicit ``path``
    was given), the **bundled subset** shipped with nnlite is used
    (8,000 train / 2,000 test, class-balanced) and ``source`` says so, including
    where the full data was looked for.
    """
    try:
        loc = find_dataset("fashion_mnist", path, download=download)
    except DataNotFoundError as e:
        if not allow_bundled or path is not None:
            raise
        xtr, ytr, xte, yte, classes = _load_bundled_fashion()
        src = (f"bundled subset ({ytr.shape[0]} train / {yte.shape[0]} test) from {bundled_path()} - "
               f"the full data was not found: looked in " + "; ".join(e.searched))
        return _finish("fashion_mnist", xtr, ytr, xte, yte, classes, src, n_train, n_test)
    xtr, ytr, xte, yte, src = _load_mnist_like(loc, "full Fashion-MNIST")
    return _finish("fashion_mnist", xtr, ytr, xte, yte, FASHION_MNIST_CLASSES, src, n_train, n_test)


def _cifar_official(p: Path):
    """Try the official python/binary distributions at ``p``; None if absent."""
    cands = []
    if p.is_file():
        cands.append(p)
    else:
        for sub in ("cifar-10-batches-py", "cifar-10-python.tar.gz", "cifar-10-batches-bin",
                    "cifar-10-binary.tar.gz"):
            if (p / sub).exists():
                cands.append(p / sub)
        if (p / "data_batch_1").is_file() or (p / "data_batch_1.bin").is_file():
            cands.append(p)
    for c in cands:
        binary = c.name.startswith("cifar-10-batches-bin") or c.name.startswith("cifar-10-binary") or (
            c.is_dir() and (c / "data_batch_1.bin").is_file() and not (c / "data_batch_1").is_file())
        reader = formats.read_cifar10_binary if binary else formats.read_cifar10_python
        xtr, ytr, classes = reader(c, "train")
        xte, yte, _ = reader(c, "test")
        kind = "binary" if binary else "python"
        return xtr, ytr, xte, yte, classes, f"full CIFAR-10 ({kind} version) from {c}"
    return None


def load_cifar10(
    path: Optional[PathLike] = None,
    exact: bool = False,
    download: bool = False,
    n_train: Optional[int] = None,
    n_test: Optional[int] = None,
    cache_dir: Optional[PathLike] = None,
) -> Dataset:
    """Load CIFAR-10 (3x32x32, 10 classes).

    -> :class:`Dataset` with ``x_*`` ``(N, 3, 32, 32)`` float32 in [0, 1], ``y_*`` int64.

    Sources, in order of preference, in the folder found by
    :func:`~nnlite.data.locate.find_dataset`:

    1. the official python batches (``cifar-10-batches-py/`` or
       ``cifar-10-python.tar.gz``) or binary batches: full and bit-exact;
    2. ``exact=True``: ``train_exact.npz`` / ``test_exact.npz`` (bit-exact subsets);
    3. otherwise ``images.zip`` (JPEG class folders ``.../train/<class>/<k>.jpg``,
       decoded once with Pillow and cached as npz in ``cache_dir``) for train and
       ``test.npz`` for test. These pixels carry JPEG (q75) artefacts, and the
       train images come **grouped by class** (shuffle before training).
       With ``n_train`` only the needed JPEGs are decoded.

    ``exact=True`` never uses the JPEG images.
    """
    loc = find_dataset("cifar10", path, download=download)
    p = loc.path
    note = _origin_note(loc)
    off = _cifar_official(p)
    if off is not None:
        xtr, ytr, xte, yte, classes, src = off
        return _finish("cifar10", xtr, ytr, xte, yte, classes, src + note, n_train, n_test)
    if p.is_file():
        raise ValueError(f"{p}: not a CIFAR-10 archive")
    classes = _read_classes_txt(p, formats.CIFAR10_CLASSES)
    if exact:
        tr, te = p / "train_exact.npz", p / "test_exact.npz"
        if not (tr.is_file() and te.is_file()):
            raise DataNotFoundError(
                f"cifar10 exact=True needs the official batches or train_exact.npz + test_exact.npz in {p}",
                loc.searched)
        xtr, ytr = formats.read_npz(tr)
        xte, yte = formats.read_npz(te)
        src = f"bit-exact CIFAR-10 subsets from {tr} + {te.name}{note}"
        return _finish("cifar10", xtr, ytr, xte, yte, classes, src, n_train, n_test)
    zp, te = p / "images.zip", p / "test.npz"
    if not (zp.is_file() and te.is_file()):
        raise DataNotFoundError(f"cifar10: {p} has neither official batches nor images.zip + test.npz",
                                loc.searched)
    xtr, ytr, _ = formats.read_image_folder(zp, split="train", classes=classes, mode="RGB",
                                            n=n_train, cache_dir=cache_dir)
    xte, yte = formats.read_npz(te)
    src = (f"CIFAR-10 from {zp} (train JPEG q75, decoded, grouped by class) + {te.name} "
           f"(test, JPEG-decoded, official order){note}")
    return _finish("cifar10", xtr, ytr, xte, yte, classes, src, n_train, n_test)


def load_svhn(
    path: Optional[PathLike] = None,
    include_extra: bool = False,
    download: bool = False,
    n_train: Optional[int] = None,
    n_test: Optional[int] = None,
) -> Dataset:
    """Load SVHN cropped digits (``train_32x32.mat`` / ``test_32x32.mat``).

    path: folder holding the ``.mat`` files (else searched like other sets); include_extra:
    append ``extra_32x32.mat`` to the training set -> :class:`Dataset` with ``x_*``
    ``(N, 3, 32, 32)`` float32 in [0, 1] and digit labels 0..9 (the file's label 10 is digit 0).
    """
    loc = find_dataset("svhn", path, download=download)
    p = loc.path if loc.path.is_dir() else loc.path.parent
    tr, te = p / "train_32x32.mat", p / "test_32x32.mat"
    for f in (tr, te):
        if not f.is_file():
            raise DataNotFoundError(f"svhn: {f} is missing", loc.searched)
    xtr, ytr = formats.read_svhn_mat(tr)
    xte, yte = formats.read_svhn_mat(te)
    used = [tr.name, te.name]
    if include_extra:
        ex = p / "extra_32x32.mat"
        xe, ye = formats.read_svhn_mat(ex)
        xtr, ytr = np.concatenate([xtr, xe]), np.concatenate([ytr, ye])
        used.insert(1, ex.name)
    src = f"SVHN from {p} ({', '.join(used)}){_origin_note(loc)}"
    return _finish("svhn", xtr, ytr, xte, yte, MNIST_CLASSES, src, n_train, n_test)


def _split_or_keys(x, y, test_fraction, rng):
    tr, te = stratified_split(y, test_fraction, rng)
    return x[tr], y[tr], x[te], y[te]


def _class_names(classes, y_all: np.ndarray) -> List[str]:
    k = int(y_all.max()) + 1 if y_all.size else 0
    if classes is None:
        return [str(i) for i in range(k)]
    names = [str(c) for c in classes]
    if len(names) < k:
        raise ValueError(f"{len(names)} class names given but labels go up to {k - 1}")
    return names


def load_hdf5(
    path: PathLike,
    x_key: str = "images",
    y_key: str = "labels",
    test_x_key: Optional[str] = None,
    test_y_key: Optional[str] = None,
    classes: Optional[Sequence[str]] = None,
    layout: str = "auto",
    test_fraction: float = 0.2,
    rng: RngLike = 0,
    n_train: Optional[int] = None,
    n_test: Optional[int] = None,
) -> Dataset:
    """Load an image classification set from an HDF5 file (e.g. ``earth_data.h5``).

    path: the HDF5 file;
    x_key, y_key: dataset names of the (training) images and labels;
    test_x_key, test_y_key: dataset names of a separate test split, if not given, a stratified
        ``test_fraction`` of the data is held out with
        :func:`~nnlite.data.preprocess.stratified_split` seeded by ``rng``;
    classes: class names (default ``"0"``, ``"1"``, ...);
    layout: image layout in the file, see :func:`~nnlite.data.formats.read_hdf5`
    -> :class:`Dataset` with float32 NCHW images in [0, 1].
    """
    p = Path(path)
    xtr, ytr = formats.read_hdf5(p, x_key, y_key, layout=layout)
    if (test_x_key is None) != (test_y_key is None):
        raise ValueError("give both test_x_key and test_y_key, or neither")
    if test_x_key is not None:
        xte, yte = formats.read_hdf5(p, test_x_key, test_y_key, layout=layout)
        src = f"HDF5 {p} ({x_key}/{y_key} train, {test_x_key}/{test_y_key} test)"
    else:
        xtr, ytr, xte, yte = _split_or_keys(xtr, ytr, test_fraction, rng)
        src = f"HDF5 {p} ({x_key}/{y_key}, stratified {test_fraction:g} test split, rng={rng!r})"
    names = _class_names(classes, np.concatenate([ytr, yte]))
    return _finish("hdf5", xtr, ytr, xte, yte, names, src, n_train, n_test)


def _has_split(p: Path, split: str) -> bool:
    """Whether folder/zip ``p`` has image files under ``.../<split>/<class>/``."""
    if p.is_dir():
        return (p / split).is_dir()
    if p.is_file() and zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as zf:
            return any(len(parts) >= 3 and parts[-3] == split
                       for parts in (n.split("/") for n in zf.namelist() if not n.endswith("/")))
    return False


def load_image_folder(
    path: PathLike,
    train_split: str = "train",
    test_split: str = "test",
    classes: Optional[Sequence[str]] = None,
    mode: Optional[str] = None,
    size: Optional[Tuple[int, int]] = None,
    test_fraction: float = 0.2,
    rng: RngLike = 0,
    n_train: Optional[int] = None,
    n_test: Optional[int] = None,
    cache_dir: Optional[PathLike] = None,
) -> Dataset:
    """Load class-folder images from a folder or ``.zip`` (decoded once, cached as npz).

    -> :class:`Dataset` with float32 NCHW images in [0, 1].

    If ``path`` has ``<train_split>/`` and ``<test_split>/`` folders
    (``root/train/<class>/<file>``), they are used; otherwise the class folders are
    taken directly under ``path`` and a stratified ``test_fraction`` is held out
    (seeded by ``rng``). Classes are sorted by name unless ``classes`` is given.
    See :func:`~nnlite.data.formats.read_image_folder` for ``mode``/``size``.
    """
    p = Path(path)
    kw = dict(classes=classes, mode=mode, size=size, cache_dir=cache_dir)
    if _has_split(p, train_split) and _has_split(p, test_split):
        xtr, ytr, names = formats.read_image_folder(p, split=train_split, **kw)
        kw["classes"] = names
        xte, yte, _ = formats.read_image_folder(p, split=test_split, **kw)
        src = f"image folders {p} ({train_split}/ and {test_split}/)"
    else:
        x, y, names = formats.read_image_folder(p, split=None, **kw)
        xtr, ytr, xte, yte = _split_or_keys(x, y, test_fraction, rng)
        src = f"image folders {p} (stratified {test_fraction:g} test split, rng={rng!r})"
    return _finish("image_folder", xtr, ytr, xte, yte, names, src, n_train, n_test)
