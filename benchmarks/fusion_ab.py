"""``python -m benchmarks.fusion_ab``: what the engine's fusions buy in the reference models'
training steps: the fused pairs (``Conv2d`` + ``ReLU``, batch norm + ``ReLU``;
``--switch FUSE_RELU``, the default) or batch norm's pending input gradient consumed by the conv
before it (``--switch FUSE_BN_INTO_CONV``), or a max pool's (``--switch FUSE_POOL_INTO_CONV``);
and, in eval-mode forwards under ``nnlite.no_grad()`` (batch 256, the suite's inference rows),
the conv + ReLU + max pool kernel (``--switch FUSE_POOL_NO_GRAD``).

Two copies of each model (same seed), one run with the switch on and one with it off,
alternating step by step inside one ``parallel.threads()`` block (each round: a warm-up step,
then a timed step per contender), so both see the same machine state; prints min and median
step times and the speed-up. The results are bit-identical either way
(``tests/test_fused_relu.py``, ``tests/test_fused_bn_conv.py``).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from nnlite import fast as E
from nnlite import parallel

from .models import INPUTS, nnlite_infer_fn, nnlite_step_fn

#: the engine's fusion switches (module attributes of ``nnlite.fast``)
SWITCHES = ("FUSE_RELU", "FUSE_BN_INTO_CONV", "FUSE_POOL_INTO_CONV", "FUSE_POOL_NO_GRAD")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["fmnist_cnn", "cifar_cnn", "resnet_encoder"],
                   choices=sorted(INPUTS))
    p.add_argument("--switch", choices=SWITCHES, default="FUSE_RELU", help="the fusion to measure")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--batch", type=int, default=None,
                   help="batch size (default 128; 256 for the ResNet encoder and for FUSE_POOL_NO_GRAD)")
    args = p.parse_args(argv)
    before = getattr(E, args.switch)
    try:
        for name in args.models:
            inference = args.switch == "FUSE_POOL_NO_GRAD"
            n = args.batch or (256 if name == "resnet_encoder" or inference else 128)
            make = nnlite_infer_fn if inference else nnlite_step_fn
            # the same seed: two identical models, one run fused and one not
            steps = {"fused": (True, make(name, n)[0]), "unfused": (False, make(name, n)[0])}
            times = {k: [] for k in steps}
            with parallel.threads():
                for _ in range(args.rounds):
                    for label, (fused, step) in steps.items():
                        setattr(E, args.switch, fused)
                        step()
                        t0 = time.perf_counter()
                        step()
                        times[label].append(time.perf_counter() - t0)
            for label, v in times.items():
                print(f"{name} (batch {n}, {args.switch}) {label:8s}: step min {min(v) * 1e3:.1f} ms, median "
                      f"{np.median(v) * 1e3:.1f} ms ({n / min(v):.0f} img/s)")
            print(f"{name} {args.switch} speed-up: {min(times['unfused']) / min(times['fused']):.2f}x (min), "
                  f"{np.median(times['unfused']) / np.median(times['fused']):.2f}x (median)")
    finally:
        setattr(E, args.switch, before)


if __name__ == "__main__":
    main()
