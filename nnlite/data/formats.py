"""Readers for the official on-disk formats of common image-classification data sets.

Every reader returns images as ``uint8`` arrays in **NHWC** layout ``(N, H, W, C)``
(grayscale data gets ``C = 1``) and labels as ``int64`` arrays ``(N,)``. The
high-level loaders in :mod:`nnlite.data.datasets` convert to float NCHW.

Supported formats:

* idx (MNIST, Fashion-MNIST): :func:`read_idx`, :func:`read_idx_images`,
  :func:`read_idx_labels`; raw or gzip, detected by magic bytes.
* CIFAR-10 "python" pickled batches, a ``cifar-10-batches-py`` folder or the
  ``cifar-10-python.tar.gz`` archive: :func:`read_cifar_python_batch`,
  :func:`read_cifar10_python`. Pickles are read with a restricted unpickler that
  only rebuilds plain numpy arrays (:func:`restricted_pickle_load`).
* CIFAR-10 binary batches (``data_batch_1.bin``...), folder or
  ``cifar-10-binary.tar.gz``: :func:`read_cifar10_binary_batch`,
  :func:`read_cifar10_binary`.
* SVHN cropped digits ``.mat``: :func:`read_svhn_mat`.
* HDF5 images/labels: :func:`read_hdf5`.
* ``.npz`` with ``x``/``y``: :func:`read_npz`.
* class-folder image trees, as a folder or ``.zip``: :func:`read_image_folder`
  (decoded with Pillow, cached as ``.npz``).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import re
import tarfile
import warnings
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from .._checks import check_choice
from .._io import atomic_open

__all__ = [
    "read_idx",
    "read_idx_images",
    "read_idx_labels",
    "restricted_pickle_load",
    "RestrictedUnpickler",
    "read_cifar_python_batch",
    "read_cifar10_python",
    "read_cifar10_binary_batch",
    "read_cifar10_binary",
    "read_svhn_mat",
    "read_hdf5",
    "read_npz",
    "read_image_folder",
    "IMAGE_EXTENSIONS",
    "CIFAR10_CLASSES",
]

PathLike = Union[str, os.PathLike]

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm", ".pbm", ".tif", ".tiff", ".webp")

_GZIP_MAGIC = b"\x1f\x8b"


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def _read_bytes(src: Union[PathLike, bytes, bytearray, memoryview]) -> Tuple[bytes, str]:
    """Return (content, description) for a path or an in-memory buffer."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src), "<bytes>"
    if not isinstance(src, (str, os.PathLike)):
        raise TypeError(f"expected a path or bytes, got {type(src).__name__}")
    p = Path(src)
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {p}")
    return p.read_bytes(), str(p)


def _maybe_gunzip(data: bytes, what: str) -> bytes:
    """Decompress ``data`` if it starts with the gzip magic bytes."""
    if data[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(data)
        except (EOFError, OSError, gzip.BadGzipFile) as e:
            raise ValueError(f"{what}: corrupt or truncated gzip stream ({e})") from e
    return data


def _as_labels(y, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and y.size and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise ValueError(f"{what}: labels must be integers, got dtype {y.dtype}")
    return y.astype(np.int64, copy=False).reshape(-1)


# ---------------------------------------------------------------------------
# idx (MNIST / Fashion-MNIST)
# ---------------------------------------------------------------------------

# idx type code -> big-endian numpy dtype
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(src: Union[PathLike, bytes]) -> np.ndarray:
    """Read any idx file (the MNIST container format).

    src: path to the file, or its bytes -> array of shape ``dims`` in native byte order (uint8
    for type 0x08). Raises ValueError: bad magic number, unknown type code, or a data length
    that does not match the header (e.g. a truncated download).

    Layout: 2 zero bytes, 1 type byte (0x08 = uint8 ...), 1 byte ``ndim``, then
    ``ndim`` big-endian uint32 dimensions, then the data in C order. The file may
    be gzip-compressed; this is detected from the content (magic ``1f 8b``), not
    from the file name.
    """
    raw, what = _read_bytes(src)
    data = _maybe_gunzip(raw, what)
    if len(data) < 4:
        raise ValueError(f"{what}: too short to be an idx file ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"{what}: not an idx file (magic starts with {data[:4].hex()}, expected 0000tttd)"
        )
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{what}: unknown idx type code 0x{code:02x}")
    if ndim == 0:
        raise ValueError(f"{what}: idx header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{what}: truncated idx header ({len(data)} bytes, need {header})")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dt = _IDX_DTYPES[code]
    expected = header + int(np.prod(dims, dtype=np.int64)) * dt.itemsize
    if len(data) < expected:
        raise ValueError(
            f"{what}: truncated idx file: header says dims {dims} -> {expected} bytes, "
            f"but the (decompressed) content has only {len(data)} bytes"
        )
    if len(data) > expected:
        raise ValueError(
            f"{what}: idx file has {len(data) - expected} unexpected trailing bytes "
            f"(header dims {dims} -> {expected} bytes, got {len(data)})"
        )
    arr = np.frombuffer(data, dtype=dt, offset=header).reshape(dims)
    return arr.astype(dt.newbyteorder("="))


def _read_idx_uint8(src: Union[PathLike, bytes], ndim: int, kind: str) -> np.ndarray:
    """:func:`read_idx` checked to give an ``ndim``-D uint8 array (an idx``ndim``-ubyte file,
    magic ``0x0000080<ndim>``, of ``kind`` "image" or "label"); ValueError otherwise."""
    arr = read_idx(src)
    if arr.dtype != np.uint8 or arr.ndim != ndim:
        raise ValueError(
            f"expected an idx{ndim}-ubyte {kind} file (magic 0x0000080{ndim}), got dtype {arr.dtype} "
            f"with {arr.ndim} dims {arr.shape}"
        )
    return arr


def read_idx_images(src: Union[PathLike, bytes]) -> np.ndarray:
    """Read an idx3-ubyte image file (e.g. ``train-images-idx3-ubyte[.gz]``).

    -> ``(N, H, W, 1)`` uint8. Raises ValueError: if the file is not a 3-D uint8 idx file (magic
    ``0x00000803``) or is truncated.
    """
    return _read_idx_uint8(src, 3, "image")[..., None]


def read_idx_labels(src: Union[PathLike, bytes]) -> np.ndarray:
    """Read an idx1-ubyte label file (e.g. ``train-labels-idx1-ubyte[.gz]``).

    -> ``(N,)`` int64. Raises ValueError: if the file is not a 1-D uint8 idx file (magic
    ``0x00000801``) or is truncated.
    """
    return _read_idx_uint8(src, 1, "label").astype(np.int64)


# ---------------------------------------------------------------------------
# restricted pickle (CIFAR python batches)
# ---------------------------------------------------------------------------

def _latin1_encode(text, encoding="latin1"):
    """Stand-in for ``_codecs.encode`` limited to latin-1, which protocol <= 2
    pickles written by Python 3 use to store ``bytes`` objects."""
    if not isinstance(text, str) or str(encoding).lower().replace("_", "-") not in (
        "latin1", "latin-1", "iso-8859-1", "iso8859-1"
    ):
        raise pickle.UnpicklingError(
            f"refused: _codecs.encode only allowed for latin-1 text, got encoding {encoding!r}"
        )
    return text.encode("latin-1")


#: dtypes a restricted pickle may rebuild: plain numbers (bool, ints, floats), any byte order.
_PICKLE_DTYPE_KINDS = "biuf"
#: Largest array a restricted pickle may rebuild (elements); the CIFAR batches hold 30.7 M.
MAX_PICKLED_ELEMENTS = 1 << 28


def _refuse(why: str) -> pickle.UnpicklingError:
    return pickle.UnpicklingError(f"refused to load pickle: {why} (only plain numeric numpy "
                                  "arrays can be read from pickled data)")


class _NdarrayToken:
    """Stands for ``numpy.ndarray`` inside a restricted pickle: it can only be passed to
    ``_reconstruct`` (calling ``ndarray(shape)`` would hand out uninitialised memory)."""

    def __call__(self, *args, **kwargs):
        raise _refuse("numpy.ndarray(...) may not be called")


_NDARRAY = _NdarrayToken()


class _DtypeBuilder:
    """``numpy.dtype(spec, align, copy)`` + ``__setstate__``, limited to plain numeric dtypes."""

    def __init__(self, spec, align=False, copy=False, *rest):
        if isinstance(spec, bytes):
            spec = spec.decode("latin-1")
        if not isinstance(spec, str) or rest:
            raise _refuse(f"dtype spec {spec!r:.40} is not a plain type code")
        try:
            dt = np.dtype(spec)
        except TypeError:
            raise _refuse(f"unknown dtype {spec!r:.40}") from None
        if dt.kind not in _PICKLE_DTYPE_KINDS or dt.fields is not None or dt.subdtype is not None:
            raise _refuse(f"dtype {dt} is not a plain numeric dtype")
        self.dtype = dt

    def __setstate__(self, state):
        # numpy's dtype state: (version, byteorder, subarray, names, fields, elsize, alignment, flags)
        if (not isinstance(state, tuple) or len(state) not in (8, 9) or state[0] not in (3, 4)
                or state[2] is not None or state[3] is not None or state[4] is not None):
            raise _refuse("dtype state with sub-arrays, fields or an unknown layout")
        order = state[1]
        if isinstance(order, bytes):
            order = order.decode("latin-1")
        if order not in ("<", ">", "|", "="):
            raise _refuse(f"dtype byte order {order!r:.10}")
        if order in "<>":
            self.dtype = self.dtype.newbyteorder(order)


def _as_dtype(d) -> np.dtype:
    if not isinstance(d, _DtypeBuilder):
        raise _refuse(f"array dtype {type(d).__name__} was not built by numpy.dtype")
    return d.dtype


def _check_shape(shape) -> tuple:
    if (not isinstance(shape, tuple) or len(shape) > 32
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        raise _refuse(f"array shape {shape!r:.60} is not a tuple of non-negative ints")
    size = 1
    for n in shape:
        size *= n
    if size > MAX_PICKLED_ELEMENTS:
        raise _refuse(f"array of {size} elements is larger than {MAX_PICKLED_ELEMENTS}")
    return shape


def _filled(raw, dtype: np.dtype, shape: tuple, fortran: bool) -> np.ndarray:
    """A new array of ``shape``/``dtype`` copied from exactly as many bytes as it needs."""
    if isinstance(raw, (bytearray, memoryview, pickle.PickleBuffer)):
        raw = bytes(raw)
    if not isinstance(raw, bytes):
        raise _refuse(f"array data must be bytes, got {type(raw).__name__}")
    size = 1
    for n in shape:
        size *= n
    if len(raw) != size * dtype.itemsize:
        raise _refuse(f"array data holds {len(raw)} bytes, shape {shape} of {dtype} needs "
                      f"{size * dtype.itemsize}")
    flat = np.frombuffer(raw, dtype=dtype, count=size)
    return flat.reshape(shape, order="F" if fortran else "C").copy(order="K")


class _ArrayBuilder:
    """``_reconstruct(ndarray, (0,), b'b')`` + ``__setstate__``: numpy's documented array
    reducer, rebuilt from the state's bytes with every size checked (no numpy code runs on
    the untrusted state)."""

    def __init__(self, subtype, shape, dtype_code):
        if subtype is not _NDARRAY:
            raise _refuse("_reconstruct of anything but numpy.ndarray")
        if shape != (0,) or dtype_code not in (b"b", "b"):
            raise _refuse(f"_reconstruct with shape {shape!r:.40}, dtype {dtype_code!r:.10} "
                          "(numpy writes (0,), b'b')")
        self.array = None

    def __setstate__(self, state):
        # (version, shape, dtype, is_fortran, rawdata) or without the version
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]
        if not isinstance(state, tuple) or len(state) != 4:
            raise _refuse("array state is not (shape, dtype, is_fortran, data)")
        shape, dtype, fortran, raw = state
        if not isinstance(fortran, bool):
            raise _refuse("array state's is_fortran must be a bool")
        self.array = _filled(raw, _as_dtype(dtype), _check_shape(shape), fortran)


def _frombuffer(buf, dtype, shape, order):
    """numpy's protocol-5 array reducer, with the sizes checked."""
    if order not in ("C", "F"):
        raise _refuse(f"array order {order!r:.10}")
    return _filled(buf, _as_dtype(dtype), _check_shape(shape), order == "F")


def _scalar(dtype, raw=None):
    """numpy's scalar reducer (``numpy.uint8(3)`` etc.), with the size checked."""
    dt = _as_dtype(dtype)
    return _filled(raw, dt, (), False)[()]


def _empty_bytes(*args):
    """``bytes()``: how protocol-2 pickles written by Python 3 store ``b''`` (e.g. the data
    of an empty array); any argument is refused."""
    if args:
        raise _refuse("bytes(...) with arguments")
    return b""


def _numpy_pickle_callables() -> Dict[Tuple[str, str], object]:
    """What a pickled plain numeric array, dtype or scalar references, each replaced by a
    checked stand-in."""
    allowed = {("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _DtypeBuilder,
               ("_codecs", "encode"): _latin1_encode,
               ("__builtin__", "bytes"): _empty_bytes, ("builtins", "bytes"): _empty_bytes}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = _ArrayBuilder
        allowed[(mod, "scalar")] = _scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(mod, "_frombuffer")] = _frombuffer
    return allowed


def _finish(obj, depth=0):
    """Replace the array stand-ins in the unpickled containers by their arrays."""
    if depth > 100:
        raise _refuse("containers nested deeper than 100 levels")
    if isinstance(obj, _ArrayBuilder):
        if obj.array is None:
            raise _refuse("an array was reconstructed without its data")
        return obj.array
    if isinstance(obj, (_DtypeBuilder, _NdarrayToken)):
        raise _refuse(f"a bare {type(obj).__name__[1:]} object")
    if isinstance(obj, dict):
        return {_finish(k, depth + 1): _finish(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finish(v, depth + 1) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_finish(v, depth + 1) for v in obj)
    if isinstance(obj, (set, frozenset)):
        return type(obj)(_finish(v, depth + 1) for v in obj)
    return obj


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds only plain containers and plain numeric numpy arrays.

    Dicts, lists, tuples, str, bytes, ints, floats are built by pickle opcodes
    and never reach :meth:`find_class`. Global lookups are allowed only for what
    numpy's documented reducers of a numeric array, dtype or scalar reference
    (``numpy[._]core.multiarray._reconstruct`` / ``scalar``,
    ``numpy[._]core.numeric._frombuffer``, ``numpy.ndarray``, ``numpy.dtype``),
    ``_codecs.encode`` restricted to latin-1 and ``bytes()`` without arguments
    (Python 3's protocol-2 spelling of ``b''``), and each is replaced by a checked
    stand-in: ``ndarray`` cannot be called (no uninitialised memory), ``_reconstruct``
    only takes numpy's own ``(ndarray, (0,), b'b')``, dtypes must be plain numbers
    (bool, int, uint, float; no object, structured or sub-array dtypes), and an
    array's bytes must match its shape and dtype exactly (at most
    ``MAX_PICKLED_ELEMENTS`` elements). Anything else (``os.system``,
    ``builtins.eval``, arbitrary classes) raises :class:`pickle.UnpicklingError`
    *before* it could be called. Use :meth:`load` (it returns real arrays).
    """

    _ALLOWED = None

    def find_class(self, module, name):
        """Return the checked stand-in for ``module.name``; refuse anything else."""
        allowed = RestrictedUnpickler._ALLOWED
        if allowed is None:
            allowed = RestrictedUnpickler._ALLOWED = _numpy_pickle_callables()
        key = (module, name)
        if key in allowed:
            return allowed[key]
        raise pickle.UnpicklingError(
            f"refused to load pickle: global {module}.{name} is not allowed "
            "(only plain numpy arrays can be read from pickled data)"
        )

    def persistent_load(self, pid):
        """Persistent ids are never allowed."""
        raise pickle.UnpicklingError("refused to load pickle: persistent ids are not allowed")

    def load(self):
        """Unpickle, then turn the array stand-ins into ndarrays."""
        return _finish(super().load())


def restricted_pickle_load(src: Union[PathLike, bytes], encoding: str = "bytes"):
    """Unpickle ``src`` (a path or bytes) with :class:`RestrictedUnpickler`.

    Raises pickle.UnpicklingError: the data references anything but plain numeric numpy arrays,
    or an array's bytes do not match its shape and dtype.

    ``encoding='bytes'`` keeps Python 2 ``str`` objects as ``bytes`` (so the
    original CIFAR batches, pickled by Python 2, come back with ``b'data'`` keys).
    """
    raw, _ = _read_bytes(src)
    try:
        return RestrictedUnpickler(io.BytesIO(raw), encoding=encoding).load()
    except pickle.UnpicklingError:
        raise
    except (EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            UnicodeDecodeError, RecursionError) as e:
        raise pickle.UnpicklingError(f"damaged pickle data: {type(e).__name__}: {e}") from None


def _key(d: dict, name: str):
    for k in (name.encode(), name):
        if k in d:
            return d[k]
    raise KeyError(name)


#: Number of classes behind each CIFAR label key (CIFAR-10; CIFAR-100 fine and coarse).
_CIFAR_NUM_CLASSES = {"labels": 10, "fine_labels": 100, "coarse_labels": 20}


def read_cifar_python_batch(src: Union[PathLike, bytes], label_key: str = "labels") -> Tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR "python version" batch (``data_batch_1`` ... ``test_batch``).

    -> ``x``: ``(N, 32, 32, 3)`` uint8; ``y``: ``(N,)`` int64. Raises pickle.UnpicklingError:
    the pickle references forbidden globals or is damaged; ValueError: missing keys, wrong
    shapes or dtypes, labels out of range.

    The batch is a pickled dict with ``b'data'``: ``(N, 3072)`` uint8 rows holding
    the 1024 red, then 1024 green, then 1024 blue values of a 32x32 image in
    row-major order, and ``b'labels'``: a list of ``N`` ints (CIFAR-100 uses
    ``label_key='fine_labels'`` or ``'coarse_labels'``). Read with
    :class:`RestrictedUnpickler`; keys may be bytes or str. Labels must lie in
    0..9 (0..99 fine, 0..19 coarse).
    """
    what = str(src) if isinstance(src, (str, os.PathLike)) else "<bytes>"
    obj = restricted_pickle_load(src)
    if not isinstance(obj, dict):
        raise ValueError(f"{what}: expected a pickled dict, got {type(obj).__name__}")
    try:
        data = _key(obj, "data")
        labels = _key(obj, label_key)
    except KeyError as e:
        raise ValueError(
            f"{what}: CIFAR batch needs keys b'data' and b'{label_key}', found {sorted(map(repr, obj))}"
        ) from e
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        raise ValueError(
            f"{what}: b'data' must be a uint8 array, got "
            f"{getattr(data, 'dtype', type(data).__name__)}"
        )
    if data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{what}: b'data' must have shape (N, 3072), got {data.shape}")
    if isinstance(labels, np.ndarray) and labels.ndim != 1:
        raise ValueError(f"{what}: b'{label_key}' must be a list of ints, got an array of shape "
                         f"{labels.shape}")
    if not isinstance(labels, np.ndarray) and not (
            isinstance(labels, (list, tuple))
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in labels)):
        raise ValueError(f"{what}: b'{label_key}' must be a list of ints, got "
                         f"{type(labels).__name__}")
    y = _as_labels(labels, what)
    if y.shape[0] != data.shape[0]:
        raise ValueError(f"{what}: {data.shape[0]} images but {y.shape[0]} labels")
    k = _CIFAR_NUM_CLASSES.get(label_key)
    if k is not None and y.size and (y.min() < 0 or y.max() >= k):
        bad = int(y[(y < 0) | (y >= k)][0])
        raise ValueError(f"{what}: b'{label_key}' holds label {bad}, outside the valid range "
                         f"0..{k - 1} of a CIFAR batch")
    x = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return x, y


class _Source:
    """Read named files from a folder or (in memory) from a tar archive."""

    def __init__(self, root: Path, subdir: str):
        self.root = root
        self._tar_members: Optional[Dict[str, bytes]] = None
        if root.is_file():
            if not tarfile.is_tarfile(root):
                raise ValueError(f"{root}: expected a folder or a .tar(.gz) archive")
            self.kind = "tar"
            self.desc = str(root)
        else:
            if not root.is_dir():
                raise FileNotFoundError(f"no such file or folder: {root}")
            self.kind = "dir"
            self.dir = root / subdir if (root / subdir).is_dir() else root
            self.desc = str(self.dir)

    def _load_tar(self, wanted: Sequence[str]) -> None:
        members: Dict[str, bytes] = {}
        with tarfile.open(self.root, "r:*") as tf:
            for m in tf:
                base = m.name.rsplit("/", 1)[-1]
                if m.isfile() and base in wanted and base not in members:
                    f = tf.extractfile(m)
                    if f is not None:
                        members[base] = f.read()
        self._tar_members = members

    def read(self, name: str, wanted: Sequence[str]) -> bytes:
        if self.kind == "dir":
            p = self.dir / name
            if not p.is_file():
                raise FileNotFoundError(f"{p} is missing")
            return p.read_bytes()
        if self._tar_members is None:
            self._load_tar(wanted)
        if name not in self._tar_members:
            raise FileNotFoundError(f"{self.root}: archive has no member named .../{name}")
        return self._tar_members[name]

    def has(self, name: str) -> bool:
        if self.kind == "dir":
            return (self.dir / name).is_file()
        return self._tar_members is not None and name in self._tar_members


def _split_files(split: str, names: Dict[str, List[str]]) -> List[str]:
    check_choice(split, "split", sorted(names))
    return names[split]


_CIFAR_PY_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
_CIFAR_BIN_FILES = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}


def read_cifar10_python(root: PathLike, split: str = "train") -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """Read a CIFAR-10 python-version split.

    root: the ``cifar-10-batches-py`` folder, a folder containing it, or the
        ``cifar-10-python.tar.gz`` archive (members are read into memory, nothing is extracted
        to disk);
    split: ``"train"`` (``data_batch_1..5`` concatenated in order) or ``"test"``
        (``test_batch``)
    -> ``x`` ``(N, 32, 32, 3)`` uint8, ``y`` ``(N,)`` int64, and the class names (from
    ``batches.meta`` when present, else the standard CIFAR-10 names).
    """
    return _read_cifar10_split(root, split, _CIFAR_PY_FILES, "cifar-10-batches-py",
                               read_cifar_python_batch, "batches.meta", _python_meta_classes)


def _python_meta_classes(raw: bytes) -> Optional[List[str]]:
    """Class names from a pickled ``batches.meta`` (its ``label_names``), None if absent."""
    meta = restricted_pickle_load(raw)
    try:
        names = _key(meta, "label_names")
        return [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    except (KeyError, TypeError):
        return None


def _text_meta_classes(raw: bytes) -> Optional[List[str]]:
    """Class names from ``batches.meta.txt`` (one per non-empty line), None unless 10."""
    lines = [ln.strip() for ln in raw.decode("utf-8", "replace").splitlines()]
    lines = [ln for ln in lines if ln]
    return lines if len(lines) == 10 else None


def _read_cifar10_split(root: PathLike, split: str, files_by_split: Dict[str, List[str]], folder: str,
                        read_batch, meta_name: str, parse_meta) -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """Read the batches of ``split`` (in order) from the ``folder`` distribution at ``root``.

    files_by_split: {"train": [...], "test": [...]} batch file names; read_batch(bytes) ->
    (x (n, 32, 32, 3) uint8, y (n,) int64); parse_meta(bytes) -> class names or None, applied
    to ``meta_name`` when present (else the standard CIFAR-10 names).
    Returns the concatenated ``x`` (N, 32, 32, 3), ``y`` (N,) and the class names.
    """
    files = _split_files(split, files_by_split)
    src = _Source(Path(root), folder)
    wanted = files + [meta_name]
    batches = [read_batch(src.read(name, wanted)) for name in files]
    classes = parse_meta(src.read(meta_name, wanted)) if src.has(meta_name) else None
    return (np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches]),
            list(CIFAR10_CLASSES) if classes is None else classes)


def read_cifar10_binary_batch(src: Union[PathLike, bytes]) -> Tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 binary batch (``data_batch_1.bin`` ... ``test_batch.bin``).

    -> ``x`` ``(N, 32, 32, 3)`` uint8, ``y`` ``(N,)`` int64. Raises ValueError: the size is not
    a positive multiple of 3073 bytes, or a label is outside 0..9.

    Each record is 3073 bytes: 1 label byte (0..9) then 3072 pixel bytes
    (1024 R, 1024 G, 1024 B, row-major 32x32).
    """
    raw, what = _read_bytes(src)
    rec = 3073
    if len(raw) == 0 or len(raw) % rec:
        raise ValueError(
            f"{what}: CIFAR-10 binary batch size must be a positive multiple of {rec} bytes, "
            f"got {len(raw)} (truncated or wrong file?)"
        )
    a = np.frombuffer(raw, dtype=np.uint8).reshape(-1, rec)
    y = a[:, 0].astype(np.int64)
    if y.max() > 9:
        raise ValueError(f"{what}: label byte {int(y.max())} out of range 0..9 (CIFAR-100 binary is not supported)")
    x = np.ascontiguousarray(a[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return x, y


def read_cifar10_binary(root: PathLike, split: str = "train") -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """Read a CIFAR-10 binary-version split.

    root: the ``cifar-10-batches-bin`` folder, a folder containing it, or the
        ``cifar-10-binary.tar.gz`` archive (read in memory);
    split: ``"train"`` (``data_batch_1..5.bin``) or ``"test"`` (``test_batch.bin``)
    -> ``x`` ``(N, 32, 32, 3)`` uint8, ``y`` ``(N,)`` int64, class names (from
    ``batches.meta.txt`` when present).
    """
    return _read_cifar10_split(root, split, _CIFAR_BIN_FILES, "cifar-10-batches-bin",
                               read_cifar10_binary_batch, "batches.meta.txt", _text_meta_classes)


# ---------------------------------------------------------------------------
# SVHN .mat
# ---------------------------------------------------------------------------

def read_svhn_mat(path: PathLike) -> Tuple[np.ndarray, np.ndarray]:
    """Read an SVHN cropped-digits file (``train_32x32.mat``, ``test_32x32.mat``, ``extra_32x32.mat``).

    -> ``x`` ``(N, 32, 32, 3)`` uint8, ``y`` ``(N,)`` int64 with digits 0..9 (label 10 mapped to
    0).

    The file (MATLAB v5, read with :func:`scipy.io.loadmat`) holds ``X``:
    ``(32, 32, 3, N)`` uint8 and ``y``: ``(N, 1)`` with labels 1..10, where 10
    stands for the digit 0.
    """
    import scipy.io

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {p}")
    try:
        mat = scipy.io.loadmat(str(p))
    except NotImplementedError as e:  # MATLAB v7.3 (HDF5) files
        raise ValueError(f"{p}: MATLAB v7.3 files are not supported; the official SVHN files are v5") from e
    except Exception as e:
        raise ValueError(f"{p}: not a readable .mat file ({e})") from e
    if "X" not in mat or "y" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"{p}: expected variables 'X' and 'y', found {keys}")
    X, y = mat["X"], mat["y"]
    if X.ndim != 4 or X.shape[2] != 3:
        raise ValueError(f"{p}: X must have shape (H, W, 3, N), got {X.shape}")
    if X.dtype != np.uint8:
        raise ValueError(f"{p}: X must be uint8, got {X.dtype}")
    y = _as_labels(y, str(p))
    if y.shape[0] != X.shape[3]:
        raise ValueError(f"{p}: X holds {X.shape[3]} images but y has {y.shape[0]} labels")
    if y.size and (y.min() < 0 or y.max() > 10):
        raise ValueError(f"{p}: SVHN labels must be in 1..10 (or 0..9), got [{y.min()}, {y.max()}]")
    y = np.where(y == 10, 0, y).astype(np.int64)
    x = np.ascontiguousarray(np.transpose(X, (3, 0, 1, 2)))
    return x, y


# ---------------------------------------------------------------------------
# HDF5 and npz
# ---------------------------------------------------------------------------

def _to_uint8_nhwc(x: np.ndarray, layout: str, what: str) -> np.ndarray:
    layouts = ("auto", "NHWC", "NCHW", "NHW")
    check_choice(layout, "layout", layouts)
    if x.ndim == 3:
        if layout not in ("auto", "NHW"):
            raise ValueError(f"{what}: layout {layout} needs a 4-D array, got shape {x.shape}")
        x = x[..., None]
    elif x.ndim == 4:
        if layout == "NHW":
            raise ValueError(f"{what}: layout NHW needs a 3-D array, got shape {x.shape}")
        if layout == "NCHW" or (
            layout == "auto" and x.shape[1] in (1, 3, 4) and x.shape[3] not in (1, 3, 4)
        ):
            x = x.transpose(0, 2, 3, 1)
    else:
        raise ValueError(f"{what}: images must be 3-D or 4-D, got shape {x.shape}")
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if x.dtype.kind in "iuf":
        if x.size == 0:
            return np.ascontiguousarray(x.astype(np.uint8))
        lo, hi = float(x.min()), float(x.max())
        if x.dtype.kind == "f" and lo >= 0.0 and hi <= 1.0:
            x = np.rint(x.astype(np.float64) * 255.0)
        elif lo >= 0.0 and hi <= 255.0:
            x = np.rint(x.astype(np.float64))
        else:
            raise ValueError(
                f"{what}: cannot convert {x.dtype} images with values in [{lo}, {hi}] to uint8 "
                "(expected [0, 1] floats or [0, 255])"
            )
        return np.ascontiguousarray(x.astype(np.uint8))
    raise ValueError(f"{what}: unsupported image dtype {x.dtype}")


def _labels_from_any(y: np.ndarray, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        # one-hot (or soft) labels -> class index; must be exactly one-hot
        if not (np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1)):
            raise ValueError(f"{what}: 2-D labels of shape {y.shape} are not one-hot")
        return y.argmax(axis=1).astype(np.int64)
    return _as_labels(y, what)


def read_hdf5(
    path: PathLike,
    x_key: str = "images",
    y_key: str = "labels",
    layout: str = "auto",
) -> Tuple[np.ndarray, np.ndarray]:
    """Read an image array and a label array from an HDF5 file.

    path: the ``.h5``/``.hdf5`` file;
    x_key: dataset path of the images (may include groups, e.g. ``"train/x"``);
    y_key: dataset path of the labels;
    layout: ``"NHWC"``, ``"NCHW"``, ``"NHW"`` (grayscale) or ``"auto"`` (4-D arrays whose axis 1
        is 1, 3 or 4 and axis 3 is not are taken as NCHW, otherwise NHWC)
    -> ``x`` ``(N, H, W, C)`` uint8, ``y`` ``(N,)`` int64.
    Raises KeyError: a key is missing (the message lists the datasets in the file); ValueError:
    shapes/dtypes that cannot be interpreted.

    Images are converted to uint8: uint8 is kept, floats in ``[0, 1]`` are
    scaled by 255 and rounded, other numbers in ``[0, 255]`` are rounded; any
    other range raises. Labels may be ``(N,)``, ``(N, 1)`` or one-hot ``(N, K)``.
    """
    import h5py

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {p}")
    with h5py.File(p, "r") as f:
        names: List[str] = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        for k in (x_key, y_key):
            if k not in f or not isinstance(f[k], h5py.Dataset):
                raise KeyError(f"{p}: no dataset named {k!r}; datasets in the file: {names}")
        x = f[x_key][()]
        y = f[y_key][()]
    x = _to_uint8_nhwc(np.asarray(x), layout, f"{p}:{x_key}")
    y = _labels_from_any(y, f"{p}:{y_key}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{p}: {x.shape[0]} images ({x_key}) but {y.shape[0]} labels ({y_key})")
    return x, y


def read_npz(path: PathLike, x_key: str = "x", y_key: str = "y") -> Tuple[np.ndarray, np.ndarray]:
    """Read an ``.npz`` holding ``x`` ``(N, H, W, C)`` uint8 and ``y`` ``(N,)`` int.

    -> ``x`` ``(N, H, W, C)`` uint8, ``y`` ``(N,)`` int64.

    Loaded with ``allow_pickle=False`` (object arrays are refused). A 3-D ``x``
    gets a channel axis.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {p}")
    try:
        with np.load(p, allow_pickle=False) as z:
            if x_key not in z.files or y_key not in z.files:
                raise ValueError(f"{p}: expected arrays {x_key!r} and {y_key!r}, found {z.files}")
            x, y = z[x_key], z[y_key]
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{p}: not a readable .npz file ({e})") from e
    if x.dtype != np.uint8:
        raise ValueError(f"{p}: {x_key!r} must be uint8, got {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"{p}: {x_key!r} must have shape (N, H, W, C), got {x.shape}")
    y = _as_labels(y, str(p))
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"{p}: {x.shape[0]} images but {y.shape[0]} labels")
    return x, y


# ---------------------------------------------------------------------------
# image folders (directory or zip) with an npz cache
# ---------------------------------------------------------------------------

_NUM_RE = re.compile(r"(\d+)")


def _natural_key(s: str):
    """Sort key so that ``img_2`` < ``img_10`` (numbers compared by value)."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in _NUM_RE.split(s) if t != ""]


def _list_folder(root: Path, split: Optional[str]) -> Tuple[Dict[str, List[str]], List[Tuple[str, int, int]]]:
    """class -> sorted file paths, plus a fingerprint list of (relpath, size, mtime_ns)."""
    base = root / split if split else root
    if not base.is_dir():
        raise FileNotFoundError(
            f"{base} does not exist" + (f" (no split folder {split!r} in {root})" if split else "")
        )
    by_class: Dict[str, List[str]] = {}
    fp: List[Tuple[str, int, int]] = []
    for cdir in sorted(base.iterdir()):
        if not cdir.is_dir() or cdir.name.startswith("."):
            continue
        files = [f for f in cdir.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS]
        files.sort(key=lambda f: _natural_key(f.name))
        by_class[cdir.name] = [str(f) for f in files]
        for f in files:
            st = f.stat()
            fp.append((str(f.relative_to(root)), st.st_size, st.st_mtime_ns))
    return by_class, fp


def _list_zip(zf: zipfile.ZipFile, zpath: Path, split: Optional[str]) -> Dict[str, List[str]]:
    """Group image members of a zip by their parent folder (= class).

    With ``split``, only members ``.../<split>/<class>/<file>`` count. Without it,
    all image members must share one grandparent folder, else it is ambiguous.
    """
    groups: Dict[str, Dict[str, List[str]]] = {}
    for name in zf.namelist():
        if name.endswith("/"):
            continue
        parts = name.split("/")
        base = parts[-1]
        dot = base.rfind(".")              # base[dot:] is Path(name).suffix, without a Path per member (60,000)
        if not 0 < dot < len(base) - 1 or base[dot:].lower() not in IMAGE_EXTENSIONS:
            continue
        if len(parts) < 2 or any(p in ("..", "") for p in parts[:-1]) or base.startswith("."):
            continue
        if split is not None:
            if len(parts) < 3 or parts[-3] != split:
                continue
        parent = "/".join(parts[:-2])
        groups.setdefault(parent, {}).setdefault(parts[-2], []).append(name)
    if not groups:
        raise ValueError(
            f"{zpath}: no image files found"
            + (f" under a folder named {split!r} (layout .../{split}/<class>/<file>)" if split else
               " in class folders (layout .../<class>/<file>)")
        )
    if len(groups) > 1:
        raise ValueError(
            f"{zpath}: images found under several roots {sorted(groups)}; pass split= to choose one"
        )
    by_class = next(iter(groups.values()))
    for c in by_class:
        by_class[c].sort(key=lambda n: _natural_key(n.rsplit("/", 1)[-1]))
    return by_class


def _decode(data_or_path, mode: Optional[str], size: Optional[Tuple[int, int]], what: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(data_or_path) as im:
            im.load()
            target = mode or ("L" if im.mode in ("L", "1", "I", "I;16", "F") else "RGB")
            if im.mode != target:
                im = im.convert(target)
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.BILINEAR)
            a = np.asarray(im, dtype=np.uint8)
    except Exception as e:  # PIL raises many different errors for bad files
        raise ValueError(f"cannot decode image {what}: {e}") from e
    return a[..., None] if a.ndim == 2 else a


def _cache_file(cache_dir: Path, key: dict) -> Path:
    h = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return cache_dir / f"imagefolder-{h}.npz"


def _atomic_savez(path: Path, **arrays) -> None:
    with atomic_open(path) as f:
        np.savez(f, **arrays)


def _cache_fits(cx, cy, y: np.ndarray, size) -> bool:
    """A cache hit is used only if it is what decoding would give: x uint8 (N, H, W, C) with
    C in 1/3/4 and (H, W) == size when given, y int64 equal to the folder's labels."""
    if not (isinstance(cx, np.ndarray) and isinstance(cy, np.ndarray)):
        return False
    if cx.dtype != np.uint8 or cx.ndim != 4 or cx.shape[0] != y.shape[0] or cx.shape[3] not in (1, 3, 4):
        return False
    if size is not None and tuple(cx.shape[1:3]) != tuple(size):
        return False
    return cy.dtype == np.int64 and cy.shape == y.shape and bool(np.array_equal(cy, y))


def read_image_folder(
    root: PathLike,
    split: Optional[str] = None,
    classes: Optional[Sequence[str]] = None,
    mode: Optional[str] = None,
    size: Optional[Tuple[int, int]] = None,
    n: Optional[int] = None,
    cache_dir: Optional[PathLike] = None,
    use_cache: bool = True,
) -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """Decode a tree of class sub-folders of image files, from a folder or a ``.zip``.

    root: folder or ``.zip`` file;
    split: name of the split folder (``"train"``, ``"test"``, ``"val"``...), or ``None`` when
        the class folders are directly under ``root``;
    classes: class names in label order (label ``i`` = ``classes[i]``), each must exist as a
        folder. Folders not listed are ignored;
    mode: ``"RGB"``, ``"L"`` or ``None`` (auto: grayscale files stay 1-channel, if a set mixes
        grayscale and colour, grayscale images are replicated to 3 channels);
    size: ``(H, W)`` to resize every image to (bilinear), ``None`` requires all images to have
        the same size;
    n: decode only a class-stratified subset of ``n`` images, the first files of each class (see
        :func:`nnlite.data.preprocess.stratified_subset`);
    cache_dir: where decoded arrays are cached as ``.npz`` (default
        :func:`nnlite.data.locate.cache_dir` ``/ "decoded"``). The cache key includes the
        absolute source path, its size and mtime (every file's for a folder) and the arguments
        above. Written atomically;
    use_cache: set ``False`` to always decode and never write a cache
    -> ``x`` ``(N, H, W, C)`` uint8, ``y`` ``(N,)`` int64, class names.
    Raises FileNotFoundError: ``root`` or the split folder is missing; ValueError: no images,
    unknown class names, undecodable files, mixed sizes.

    Layout: ``root/[<split>/]<class>/<file>`` for a folder; for a zip, members
    ``[<prefix>/][<split>/]<class>/<file>`` (e.g. ``cifar10/train/cat/0001.jpg``).
    Files within a class are taken in natural name order (``2.jpg`` before
    ``10.jpg``); classes in sorted name order unless ``classes`` is given.
    """
    from .preprocess import stratified_subset

    root = Path(root).expanduser()
    if mode not in (None, "RGB", "L"):
        raise ValueError(f"mode must be None, 'RGB' or 'L', got {mode!r}")
    if size is not None:
        if len(size) != 2 or any(int(s) <= 0 for s in size):
            raise ValueError(f"size must be (H, W) positive ints, got {size!r}")
        size = (int(size[0]), int(size[1]))
    if not root.exists():
        raise FileNotFoundError(f"no such file or folder: {root}")

    is_zip = root.is_file()
    if is_zip and not zipfile.is_zipfile(root):
        raise ValueError(f"{root}: expected a folder or a .zip file")

    zf = zipfile.ZipFile(root) if is_zip else None
    try:
        if is_zip:
            by_class = _list_zip(zf, root, split)
            st = root.stat()
            fingerprint = [str(root.resolve()), st.st_size, st.st_mtime_ns]
        else:
            by_class, files_fp = _list_folder(root, split)
            fingerprint = [str(root.resolve()),
                           hashlib.sha256(json.dumps(files_fp).encode()).hexdigest()]
        if classes is None:
            class_names = sorted(by_class)
        else:
            class_names = [str(c) for c in classes]
            missing = [c for c in class_names if c not in by_class]
            if missing:
                raise ValueError(
                    f"{root}: class folders {missing[:10]} not found (found {sorted(by_class)[:10]}...)"
                )
        if not class_names:
            raise ValueError(f"{root}: no class folders found" + (f" in split {split!r}" if split else ""))
        members: List[str] = []
        labels: List[int] = []
        for i, c in enumerate(class_names):
            members.extend(by_class[c])
            labels.extend([i] * len(by_class[c]))
        y = np.asarray(labels, dtype=np.int64)
        if y.size == 0:
            raise ValueError(f"{root}: no image files found in the class folders")
        if n is not None:
            keep = stratified_subset(y, int(n))
            members = [members[i] for i in keep]
            y = y[keep]

        cache_path = None
        if use_cache:
            if cache_dir is None:
                from .locate import cache_dir as _default_cache_dir
                cdir = _default_cache_dir() / "decoded"
            else:
                cdir = Path(cache_dir)
            key = {"v": 1, "src": fingerprint, "split": split, "classes": class_names,
                   "mode": mode, "size": size, "n": n}
            cache_path = _cache_file(cdir, key)
            if cache_path.is_file():
                try:
                    with np.load(cache_path, allow_pickle=False) as z:
                        cx, cy = z["x"], z["y"]
                    if _cache_fits(cx, cy, y, size):
                        return cx, cy, class_names
                    warnings.warn(f"image cache {cache_path} does not fit the folder (x "
                                  f"{getattr(cx, 'dtype', '?')} {getattr(cx, 'shape', '?')}); "
                                  "rebuilding it", RuntimeWarning, stacklevel=2)
                except Exception:  # corrupt cache: fall through and rebuild
                    pass

        imgs: List[np.ndarray] = []
        for m in members:
            if is_zip:
                with zf.open(m) as fh:
                    imgs.append(_decode(io.BytesIO(fh.read()), mode, size, f"{root}:{m}"))
            else:
                imgs.append(_decode(m, mode, size, m))
    finally:
        if zf is not None:
            zf.close()

    shapes = {a.shape[:2] for a in imgs}
    if len(shapes) > 1:
        first = imgs[0].shape[:2]
        bad = next(i for i, a in enumerate(imgs) if a.shape[:2] != first)
        raise ValueError(
            f"{root}: images have different sizes (e.g. {first} and {imgs[bad].shape[:2]} "
            f"for {members[bad]}); pass size=(H, W) to resize"
        )
    chans = {a.shape[2] for a in imgs}
    if len(chans) > 1:
        imgs = [np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a for a in imgs]
    x = np.stack(imgs)

    if cache_path is not None:
        try:
            _atomic_savez(cache_path, x=x, y=y, classes=np.asarray(class_names, dtype=str))
        except OSError as e:
            warnings.warn(f"could not write image cache {cache_path}: {e}", RuntimeWarning)
    return x, y, class_names
