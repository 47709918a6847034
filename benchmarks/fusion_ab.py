"""``python -m benchmarks.fusion_ab``: what the fused pairs (``Conv2d`` + ``ReLU``, batch norm +
``ReLU``; ``nnlite.fast.FUSE_RELU``) buy in the reference models' training steps.

Two copies of each model (same seed), one run with fusion and one without, alternating step by
step inside one ``parallel.threads()`` block (each round: a warm-up step, then a timed step per
contender), so both see the same machine state; prints min and median step times and the
speed-up. The results are bit-identical either way (``tests/test_fused_relu.py``).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from nnlite import fast as E
from nnlite import parallel

from .models import INPUTS, nnlite_step_fn


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["fmnist_cnn", "cifar_cnn", "resnet_encoder"],
                   choices=sorted(INPUTS))
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--batch", type=int, default=None, help="batch size (default 128; 256 for the ResNet encoder)")
    args = p.parse_args(argv)
    before = E.FUSE_RELU
    try:
        for name in args.models:
            n = args.batch or (256 if name == "resnet_encoder" else 128)
            # the same seed: two identical models, one run fused and one not
            steps = {"fused": (True, nnlite_step_fn(name, n)[0]), "unfused": (False, nnlite_step_fn(name, n)[0])}
            times = {k: [] for k in steps}
            with parallel.threads():
                for _ in range(args.rounds):
                    for label, (fused, step) in steps.items():
                        E.FUSE_RELU = fused
                        step()
                        t0 = time.perf_counter()
                        step()
                        times[label].append(time.perf_counter() - t0)
            for label, v in times.items():
                print(f"{name} (batch {n}) {label:8s}: step min {min(v) * 1e3:.1f} ms, median "
                      f"{np.median(v) * 1e3:.1f} ms ({n / min(v):.0f} img/s)")
            print(f"{name} fusion speed-up: {min(times['unfused']) / min(times['fused']):.2f}x (min), "
                  f"{np.median(times['unfused']) / np.median(times['fused']):.2f}x (median)")
    finally:
        E.FUSE_RELU = before


if __name__ == "__main__":
    main()
