"""Is this the data set it claims to be? Content checks for MNIST, Fashion-MNIST and CIFAR-10.

Two checks, both cheap next to training:

* **files** (:func:`identify_file`, :func:`check_files`): the official idx files are known by
  the SHA-256 of their *decompressed* bytes (the same whoever recompressed them: Debian's
  ``dataset-fashion-mnist`` and the publishers' ``.gz`` differ only in the gzip header), and by
  the MD5s the publishers list for their ``.gz`` files. A file that is another data set's
  official file is refused.
* **content** (:func:`check_content`): image shape, labels 0..9, and the mean pixel value of
  the training images, a fingerprint that tells the sets apart even on a 200-image subset
  (MNIST 0.131, Fashion-MNIST 0.286, CIFAR-10 0.473 on [0, 1]).

:func:`check_dataset` runs both and raises :class:`WrongDataError` (a ``ValueError``) with a
message saying what the data looks like instead.
"""
from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from .locate import DATASETS, DataNotFoundError, find_dataset, find_idx_files

__all__ = ["WrongDataError", "KNOWN_IDX_SHA256", "FINGERPRINTS", "identify_file", "check_files",
           "check_content", "check_dataset"]

PathLike = Union[str, os.PathLike]


class WrongDataError(ValueError):
    """The data found is not the data set asked for (e.g. MNIST digits given as Fashion-MNIST)."""


#: SHA-256 of the decompressed official idx files -> (data set, file). Computed from Debian's
#: dataset-fashion-mnist 0.0~git20200523 (the publisher's files; size 47,040,016 / 60,008 /
#: 7,840,016 / 10,008 bytes) and from the bit-exact MNIST idx files.
KNOWN_IDX_SHA256: Dict[str, Tuple[str, str]] = {
    "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888": ("fashion_mnist", "train-images-idx3-ubyte"),
    "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9": ("fashion_mnist", "train-labels-idx1-ubyte"),
    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b": ("fashion_mnist", "t10k-images-idx3-ubyte"),
    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34": ("fashion_mnist", "t10k-labels-idx1-ubyte"),
    "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db": ("mnist", "train-images-idx3-ubyte"),
    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5": ("mnist", "train-labels-idx1-ubyte"),
    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7": ("mnist", "t10k-images-idx3-ubyte"),
    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2": ("mnist", "t10k-labels-idx1-ubyte"),
}

#: Per data set: one image's shape (C, H, W) and the mean pixel value (images in [0, 1]) of the
#: full training set, with the tolerance accepted (subsets of a few hundred images stay within
#: about 0.01 of it; the sets' means are 0.15 apart).
FINGERPRINTS: Dict[str, dict] = {
    "mnist": {"shape": (1, 28, 28), "mean": 0.1307, "tol": 0.05, "what": "MNIST digits"},
    "fashion_mnist": {"shape": (1, 28, 28), "mean": 0.2860, "tol": 0.05, "what": "Fashion-MNIST clothing"},
    "cifar10": {"shape": (3, 32, 32), "mean": 0.4734, "tol": 0.06, "what": "CIFAR-10 photos"},
}


def _gz_md5s() -> Dict[str, Tuple[str, str]]:
    out = {}
    for name, spec in DATASETS.items():
        for rf in spec.files:
            if rf.md5:
                out[rf.md5] = (name, rf.filename)
    return out


def _digest(data_iter, algo: str) -> str:
    h = hashlib.new(algo)
    for chunk in data_iter:
        h.update(chunk)
    return h.hexdigest()


def _chunks(f):
    return iter(lambda: f.read(1 << 20), b"")


def identify_file(path: PathLike) -> Optional[Tuple[str, str]]:
    """(data set, official file name) if ``path`` is a known official idx file (plain or
    ``.gz``), else None."""
    path = Path(path)
    if path.suffix == ".gz":
        with open(path, "rb") as f:
            hit = _gz_md5s().get(_digest(_chunks(f), "md5"))
        if hit:
            return hit
        with gzip.open(path, "rb") as f:
            return KNOWN_IDX_SHA256.get(_digest(_chunks(f), "sha256"))
    with open(path, "rb") as f:
        return KNOWN_IDX_SHA256.get(_digest(_chunks(f), "sha256"))


def check_files(name: str, folder: PathLike) -> List[str]:
    """Check the idx files in ``folder`` (or ``folder/raw``) against the known official files.

    Returns a line per file ("train-images-idx3-ubyte.gz: official fashion_mnist file" or
    "...: not a known official file"); raises :class:`WrongDataError` when a file is another
    data set's official file. No idx files: ``[]``.
    """
    found = find_idx_files(folder) if Path(folder).is_dir() else None
    if not found:
        return []
    lines = []
    for key, path in found.items():
        hit = identify_file(path)
        if hit is None:
            lines.append(f"{path.name}: not a known official file (content checked by statistics only)")
        elif hit[0] != name:
            raise WrongDataError(
                f"{path} is the official {hit[0]} file {hit[1]}, not {name}: the folder "
                f"{Path(path).parent} holds {FINGERPRINTS.get(hit[0], {}).get('what', hit[0])}. "
                f"Point --data (or $NNLITE_DATA) at the {name} files.")
        else:
            lines.append(f"{path.name}: official {name} file (SHA-256/MD5 verified)")
    return lines


def check_content(name: str, ds) -> str:
    """Check a loaded :class:`~nnlite.data.Dataset` (float NCHW images in [0, 1]) against the
    fingerprint of data set ``name``; returns a one-line description of what was checked.

    Raises:
        WrongDataError: wrong image shape, labels outside 0..9, or a mean pixel value that is
            another data set's (e.g. MNIST digits loaded as Fashion-MNIST).
    """
    if name not in FINGERPRINTS:
        raise ValueError(f"name must be one of {sorted(FINGERPRINTS)}, got {name!r}")
    fp = FINGERPRINTS[name]
    x = np.asarray(ds.x_train)
    if tuple(x.shape[1:]) != fp["shape"]:
        raise WrongDataError(f"{name}: images of shape {fp['shape']} expected, got {tuple(x.shape[1:])} "
                             f"(data: {ds.source})")
    for part, y in (("train", ds.y_train), ("test", ds.y_test)):
        y = np.asarray(y)
        if y.size and (y.min() < 0 or y.max() > 9):
            raise WrongDataError(f"{name}: {part} labels must be 0..9, got {y.min()}..{y.max()} "
                                 f"(data: {ds.source})")
    mean = float(x.mean(dtype=np.float64))
    close = [k for k, f in FINGERPRINTS.items() if f["shape"] == fp["shape"]]
    nearest = min(close, key=lambda k: abs(FINGERPRINTS[k]["mean"] - mean))
    if nearest != name or abs(mean - fp["mean"]) > fp["tol"]:
        looks = (f"it looks like {FINGERPRINTS[nearest]['what']} (mean {FINGERPRINTS[nearest]['mean']:.3f})"
                 if nearest != name else "it matches no known data set")
        raise WrongDataError(
            f"this is not {fp['what']}: the training images' mean pixel value is {mean:.3f}, "
            f"{name}'s is {fp['mean']:.3f}; {looks}. Data: {ds.source}. "
            f"Point --data (or $NNLITE_DATA) at the {name} files.")
    return f"content check: {fp['what']} (mean pixel {mean:.3f}, expected {fp['mean']:.3f} +- {fp['tol']})"


def check_dataset(name: str, ds, path: Optional[PathLike] = None) -> List[str]:
    """:func:`check_content`, then, unless ``ds`` is the bundled subset, :func:`check_files` on
    the folder the loader used (``path`` or the one :func:`~nnlite.data.find_dataset` finds).
    Returns the lines describing what was verified; raises :class:`WrongDataError`."""
    lines = [check_content(name, ds)]
    if str(ds.source).lower().startswith("bundled") or name == "cifar10":
        return lines
    try:
        loc = find_dataset(name, path)
    except DataNotFoundError:
        return lines
    folder = loc.path if loc.path.is_dir() else loc.path.parent
    files = check_files(name, folder)
    if files and all("official" in f and "not a known" not in f for f in files):
        return lines + [f"files: the {len(files)} official {name} idx files (SHA-256/MD5 verified)"]
    return lines + files
