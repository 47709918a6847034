"""Finding data sets on disk (and, only when asked, downloading them).

:func:`find_dataset` looks, in this order:

1. the explicit ``path`` argument (the data set folder itself, a folder that
   contains ``<name>/``, or a data file/archive). When a path is given and it does
   not hold the data, that is an error: there is no silent fallback to other data;
2. ``$NNLITE_DATA/<name>`` (``NNLITE_DATA`` may list several folders separated by
   ``os.pathsep``); folder-name aliases such as ``fashion-mnist`` are accepted;
3. the cache folder ``$NNLITE_CACHE/<name>`` (default ``~/.cache/nnlite``);
4. known system locations (Debian's ``dataset-fashion-mnist`` package installs
   the official idx files in ``/usr/share/datasets/fashion-mnist``);
5. only with ``download=True``: the official URLs, verified by SHA-256 (or by the
   MD5 the publisher lists where no SHA-256 is published), into the cache folder.

If nothing matches, :class:`DataNotFoundError` lists every place looked and how to
get the data.
"""
from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union
from .._io import atomic_open

__all__ = [
    "DataNotFoundError",
    "ChecksumError",
    "DataLocation",
    "DatasetSpec",
    "RemoteFile",
    "DATASETS",
    "data_dirs",
    "cache_dir",
    "find_dataset",
    "download_file",
    "find_idx_files",
]

PathLike = Union[str, os.PathLike]


class DataNotFoundError(FileNotFoundError):
    """A data set could not be found. ``searched`` lists every place looked."""

    def __init__(self, message: str, searched: Sequence[str] = ()):
        super().__init__(message)
        self.searched = list(searched)

    def __str__(self) -> str:  # FileNotFoundError would otherwise print args tuple oddly
        return self.args[0]


class ChecksumError(ValueError):
    """A downloaded file did not match its expected checksum."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of an official distribution: URL, local file name and checksum.

    ``sha256`` is preferred; ``md5`` is used for files whose publisher lists only
    an MD5 and whose SHA-256 could not be derived from a verified copy.
    """

    url: str
    filename: str
    sha256: Optional[str] = None
    md5: Optional[str] = None


@dataclass(frozen=True)
class DatasetSpec:
    """How to recognise and obtain one data set.

    Attributes:
        name: canonical name (``"fashion_mnist"``).
        aliases: folder names accepted under a data root (``"fashion-mnist"``...).
        probe: ``probe(path) -> str | None``: a short description of what was
            recognised at ``path`` (a folder or a file), or ``None``.
        expected: human description of the files that are recognised.
        system_dirs: known system-wide install folders.
        files: official files for ``download=True``.
        how_to_get: advice printed when the data is not found.
    """

    name: str
    aliases: Tuple[str, ...]
    probe: Callable[[Path], Optional[str]]
    expected: str
    system_dirs: Tuple[str, ...] = ()
    files: Tuple[RemoteFile, ...] = ()
    how_to_get: str = ""


@dataclass
class DataLocation:
    """Where a data set was found.

    Attributes:
        name: data set name.
        path: folder (or file) holding the data.
        origin: ``"explicit path"``, ``"$NNLITE_DATA"``, ``"cache"``, ``"system"`` or ``"download"``.
        what: what was recognised there (e.g. ``"idx files"``).
        searched: places looked before (and including) the match.

    Usable wherever a path is expected (implements ``os.fspath``).
    """

    name: str
    path: Path
    origin: str
    what: str
    searched: List[str] = field(default_factory=list)

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)


# ---------------------------------------------------------------------------
# probes
# ---------------------------------------------------------------------------

_IDX_BASENAMES = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def find_idx_files(folder: PathLike) -> Optional[Dict[str, Path]]:
    """Find the four MNIST-style idx files in ``folder`` or ``folder/raw``.

    Accepts ``train-images-idx3-ubyte`` and ``train-images.idx3-ubyte`` spellings,
    each optionally with ``.gz``.

    Returns:
        ``{"train_images", "train_labels", "test_images", "test_labels"} -> Path``,
        or ``None`` unless all four are present in the same folder.
    """
    folder = Path(folder)
    for d in (folder, folder / "raw"):
        if not d.is_dir():
            continue
        found: Dict[str, Path] = {}
        for key, bases in _IDX_BASENAMES.items():
            for b in bases:
                for cand in (d / b, d / (b + ".gz")):
                    if cand.is_file():
                        found[key] = cand
                        break
                if key in found:
                    break
        if len(found) == 4:
            return found
    return None


# Folder layouts a probe recognises, tried in order: (files relative to the folder, all
# needed; what the probe then reports).
_MNIST_LAYOUTS = ((("train.npz", "test.npz"), "train.npz + test.npz"),)
_CIFAR10_LAYOUTS = (
    (("cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch"), "python batches"),
    (("data_batch_1", "test_batch"), "python batches"),
    (("cifar-10-python.tar.gz",), "cifar-10-python.tar.gz"),
    (("cifar-10-batches-bin/data_batch_1.bin", "cifar-10-batches-bin/test_batch.bin"), "binary batches"),
    (("data_batch_1.bin", "test_batch.bin"), "binary batches"),
    (("cifar-10-binary.tar.gz",), "cifar-10-binary.tar.gz"),
    (("test.npz", "images.zip"), "images.zip + test.npz"),
    (("train_exact.npz", "test_exact.npz"), "train_exact.npz + test_exact.npz"),
)
_TINY_IMAGENET_LAYOUTS = (
    (("val.zip",), "val.zip / train.npz"),
    (("train.npz",), "val.zip / train.npz"),
    (("tiny-imagenet-200/wnids.txt",), "tiny-imagenet-200 folder"),
)


def _first_layout(p: Path, layouts) -> Optional[str]:
    """What the first of ``layouts`` ((file names relative to p, description), ...) whose
    files all exist in folder ``p`` reports; None if none does or p is not a folder."""
    if not p.is_dir():
        return None
    for names, what in layouts:
        if all((p / n).is_file() for n in names):
            return what
    return None


def _probe_mnist_like(p: Path) -> Optional[str]:
    found = _first_layout(p, _MNIST_LAYOUTS)
    if found is None:
        idx = find_idx_files(p)              # None unless p (or p/raw) is a folder holding them
        found = None if idx is None else "idx files in " + str(idx["train_images"].parent)
    return found


def _probe_cifar10(p: Path) -> Optional[str]:
    if p.is_file():
        n = p.name
        if n.endswith((".tar.gz", ".tgz", ".tar")):
            return "archive " + n
        return None
    return _first_layout(p, _CIFAR10_LAYOUTS)


def _probe_svhn(p: Path) -> Optional[str]:
    if p.is_file() and p.suffix == ".mat":
        return "file " + p.name
    if p.is_dir():
        found = [n for n in ("train_32x32.mat", "test_32x32.mat") if (p / n).is_file()]
        if found:
            return " + ".join(found)
    return None


def _probe_tiny_imagenet(p: Path) -> Optional[str]:
    return _first_layout(p, _TINY_IMAGENET_LAYOUTS)


_FMNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"

DATASETS: Dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        aliases=("mnist",),
        probe=_probe_mnist_like,
        expected="train.npz + test.npz, or the 4 idx files (optionally .gz, optionally in raw/)",
        files=(
            # SHA-256 of the three files whose MD5 equals the official one; the
            # publisher lists MD5 only, which is used for the train images.
            RemoteFile(_MNIST_URL + "train-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz",
                       md5="f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            RemoteFile(_MNIST_URL + "train-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz",
                       sha256="3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
            RemoteFile(_MNIST_URL + "t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                       sha256="8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
            RemoteFile(_MNIST_URL + "t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                       sha256="f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
        ),
        how_to_get="set NNLITE_DATA to a folder holding mnist/ (train.npz + test.npz or the idx .gz files), "
                   "or pass download=True",
    ),
    "fashion_mnist": DatasetSpec(
        name="fashion_mnist",
        aliases=("fashion_mnist", "fashion-mnist"),
        probe=_probe_mnist_like,
        expected="the 4 idx files train-images-idx3-ubyte.gz ... (or train.npz + test.npz)",
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        files=tuple(
            RemoteFile(_FMNIST_URL + n, n, md5=m) for n, m in (
                # MD5s as published in the Fashion-MNIST README
                ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
                ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
                ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
            )
        ),
        how_to_get="apt-get install -y dataset-fashion-mnist (installs /usr/share/datasets/fashion-mnist), "
                   "or set NNLITE_DATA to a folder holding fashion_mnist/, or pass download=True",
    ),
    "cifar10": DatasetSpec(
        name="cifar10",
        aliases=("cifar10", "cifar-10"),
        probe=_probe_cifar10,
        expected="cifar-10-batches-py/ or cifar-10-python.tar.gz, cifar-10-batches-bin/ or "
                 "cifar-10-binary.tar.gz, or images.zip + test.npz, or train_exact.npz + test_exact.npz",
        files=(
            RemoteFile("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
                       md5="c58f30108f718f92721af3b95e74349a"),
        ),
        how_to_get="set NNLITE_DATA to a folder holding cifar10/, or pass download=True",
    ),
    "svhn": DatasetSpec(
        name="svhn",
        aliases=("svhn",),
        probe=_probe_svhn,
        expected="train_32x32.mat / test_32x32.mat",
        files=(
            RemoteFile("http://ufldl.stanford.edu/housenumbers/train_32x32.mat", "train_32x32.mat",
                       md5="e26dedcc434d2e4c54c9b2d4a06d8373"),
            RemoteFile("http://ufldl.stanford.edu/housenumbers/test_32x32.mat", "test_32x32.mat",
                       md5="eb5a983be6a315427106f1b164d9cef3"),
        ),
        how_to_get="download train_32x32.mat and test_32x32.mat from the SVHN site into "
                   "$NNLITE_DATA/svhn/, or pass download=True",
    ),
    "tiny_imagenet": DatasetSpec(
        name="tiny_imagenet",
        aliases=("tiny_imagenet", "tiny-imagenet", "tiny-imagenet-200"),
        probe=_probe_tiny_imagenet,
        expected="val.zip / train.npz, or tiny-imagenet-200/",
        how_to_get="set NNLITE_DATA to a folder holding tiny_imagenet/",
    ),
}


# ---------------------------------------------------------------------------
# locations
# ---------------------------------------------------------------------------

def data_dirs() -> List[Path]:
    """Folders listed in ``$NNLITE_DATA`` (``os.pathsep``-separated), read at call time."""
    raw = os.environ.get("NNLITE_DATA", "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]


def cache_dir() -> Path:
    """The nnlite cache folder: ``$NNLITE_CACHE`` if set, else ``~/.cache/nnlite``.

    Not created here; writers create it when needed.
    """
    env = os.environ.get("NNLITE_CACHE", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "nnlite"


def _spec(name: str) -> DatasetSpec:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    key = name.lower().replace("-", "_")
    if key == "fashionmnist":
        key = "fashion_mnist"
    if key == "cifar_10":
        key = "cifar10"
    if key not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {sorted(DATASETS)}")
    return DATASETS[key]


def _candidates(base: Path, spec: DatasetSpec) -> List[Path]:
    return [base / a for a in dict.fromkeys((spec.name,) + spec.aliases)]


def _file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_file(
    url: str,
    dest: PathLike,
    sha256: Optional[str] = None,
    md5: Optional[str] = None,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest``, verifying its checksum, writing atomically.

    The body is streamed into a temporary file in ``dest``'s folder while being
    hashed; only if the digest matches is it moved into place with
    :func:`os.replace`. An existing ``dest`` with the right checksum is reused.

    Args:
        url: any URL :mod:`urllib` opens (``https://``, ``http://``, ``file://``).
        dest: target file path.
        sha256: expected hex SHA-256 (preferred).
        md5: expected hex MD5 (only for files whose publisher lists only MD5).

    Returns:
        ``dest`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: no checksum given (unchecked downloads are not allowed).
        ChecksumError: the downloaded bytes do not match (nothing is left behind).
        OSError / urllib.error.URLError: the download failed.
    """
    if not sha256 and not md5:
        raise ValueError("download_file needs sha256= (or md5=) to verify the download")
    algo, expected = ("sha256", sha256) if sha256 else ("md5", md5)
    expected = expected.lower().strip()
    dest = Path(dest)
    if dest.is_file() and _file_digest(dest, algo) == expected:
        return dest
    h = hashlib.new(algo)
    with atomic_open(dest) as out, urllib.request.urlopen(url, timeout=timeout) as resp:
        for chunk in iter(lambda: resp.read(1 << 20), b""):
            h.update(chunk)
            out.write(chunk)
        got = h.hexdigest()
        if got != expected:   # raising inside the block discards the temporary file
            raise ChecksumError(f"{url}: {algo} mismatch, expected {expected}, got {got}; file discarded")
    return dest


def _describe_miss(p: Path) -> str:
    return "missing" if not p.exists() else "present but no recognised files"


def find_dataset(
    name: str,
    path: Optional[PathLike] = None,
    download: bool = False,
    search_system: bool = True,
) -> DataLocation:
    """Locate data set ``name`` (see the module docstring for the search order).

    Args:
        name: ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``, ``"svhn"`` or
            ``"tiny_imagenet"`` (``-``/``_`` variants accepted).
        path: explicit folder/file; if given and it does not hold the data set,
            :class:`DataNotFoundError` is raised at once (no fallback).
        download: allow fetching the official files into ``cache_dir()/<name>``.
        search_system: also look in known system folders.

    Returns:
        :class:`DataLocation` (``.path``, ``.origin``, ``.what``, ``.searched``).

    Raises:
        DataNotFoundError: nothing found; the message lists every place looked
            and how to obtain the data.
    """
    spec = _spec(name)
    searched: List[str] = []

    def hit(p: Path, origin: str) -> Optional[DataLocation]:
        what = spec.probe(p)
        if what:
            searched.append(f"{origin}: {p} (found {what})")
            return DataLocation(spec.name, p, origin, what, list(searched))
        searched.append(f"{origin}: {p} ({_describe_miss(p)})")
        return None

    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        base = Path(path).expanduser()
        for p in [base] + (_candidates(base, spec) if base.is_dir() else []):
            loc = hit(p, "explicit path")
            if loc:
                return loc
        raise DataNotFoundError(
            f"{spec.name}: the given path does not hold the data set (expected {spec.expected}).\n"
            "Looked in:\n  - " + "\n  - ".join(searched),
            searched,
        )

    roots = data_dirs()
    if not roots:
        searched.append("$NNLITE_DATA: not set")
    for r in roots:
        for p in _candidates(r, spec):
            loc = hit(p, "$NNLITE_DATA")
            if loc:
                return loc

    cdir = cache_dir()
    for p in _candidates(cdir, spec):
        loc = hit(p, "cache")
        if loc:
            return loc

    if search_system:
        for d in spec.system_dirs:
            loc = hit(Path(d), "system")
            if loc:
                return loc

    if download and spec.files:
        target = cdir / spec.name
        try:
            for rf in spec.files:
                download_file(rf.url, target / rf.filename, sha256=rf.sha256, md5=rf.md5)
            loc = hit(target, "download")
            if loc:
                return loc
        except (OSError, ValueError) as e:
            searched.append(f"download into {target}: failed ({e})")
    elif download:
        searched.append("download: no official files known for this data set")
    else:
        searched.append("download: not attempted (pass download=True to fetch the official files)")

    raise DataNotFoundError(
        f"{spec.name} not found (expected {spec.expected}).\nLooked in:\n  - "
        + "\n  - ".join(searched)
        + f"\nTo get it: {spec.how_to_get}.",
        searched,
    )
