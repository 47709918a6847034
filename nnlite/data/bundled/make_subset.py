"""Build ``fashion_mnist_subset.npz`` from the official Fashion-MNIST idx files.

Usage (from the repository root)::

    python nnlite/data/bundled/make_subset.py \
        --src /usr/share/datasets/fashion-mnist --n-train 8000 --n-test 2000 --seed 0

``--src`` is a folder with the four official files (``train-images-idx3-ubyte.gz``
...), e.g. the one installed by Debian's ``dataset-fashion-mnist`` package. The
subset is class-stratified and random within each class (seeded), kept in the
original file order. Output arrays: ``x_train`` (n_train, 28, 28) uint8,
``y_train`` (n_train,) int64, ``x_test``, ``y_test``, ``classes`` (10,) str,
``train_index`` / ``test_index``: positions in the official files.
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from nnlite.data.datasets import FASHION_MNIST_CLASSES
from nnlite.data.formats import read_idx_images, read_idx_labels
from nnlite.data.locate import find_idx_files
from nnlite.data.preprocess import stratified_subset


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", required=True, help="folder with the 4 official idx(.gz) files")
    ap.add_argument("--n-train", type=int, default=8000)
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).with_name("fashion_mnist_subset.npz")))
    a = ap.parse_args(argv)

    files = find_idx_files(a.src)
    if files is None:
        raise SystemExit(f"{a.src}: the 4 idx files were not found")
    gen = np.random.default_rng(a.seed)
    parts = {}
    for split, n in (("train", a.n_train), ("test", a.n_test)):
        x = read_idx_images(files[f"{split}_images"])[..., 0]
        y = read_idx_labels(files[f"{split}_labels"])
        idx = stratified_subset(y, n, rng=gen)
        parts[f"x_{split}"], parts[f"y_{split}"], parts[f"{split}_index"] = x[idx], y[idx], idx
        print(f"{split}: {idx.size} of {y.size}, counts {np.bincount(y[idx], minlength=10).tolist()}")
    np.savez_compressed(a.out, classes=np.asarray(FASHION_MNIST_CLASSES), **parts)
    data = Path(a.out).read_bytes()
    print(f"wrote {a.out}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
