"""``python -m benchmarks.mobilenet_ab``: what the engine's depthwise conv and ReLU6 buy in a
MobileNetV2 training step.

MobileNetV2 (``nnlite.models.mobilenet_v2(num_classes=10)``, the land-cover example's network),
batch 128 of 32x32 images, float32, SGD, inside ``parallel.threads()``. In each round the step
runs once with the engine's depthwise/ReLU6 kernels and once with the textbook ones swapped into
the engine storey (everything else unchanged), each after one warm-up step; prints min and
median times. Interleaved, so both contenders see the same machine state.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from nnlite import fast as E
from nnlite import functional as T
from nnlite import parallel
from nnlite.losses import SoftmaxCrossEntropy
from nnlite.models.mobilenet import mobilenet_v2
from nnlite.optim import SGD

NAMES = ("depthwise_conv2d_forward", "depthwise_conv2d_backward", "relu6_forward", "relu6_backward")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--batch", type=int, default=128)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    model = mobilenet_v2(rng=rng, num_classes=10)
    x = rng.random((args.batch, 3, 32, 32), dtype=np.float32)
    y = rng.integers(0, 10, args.batch)
    loss, opt = SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.01)
    kernels = {"engine": {k: getattr(E, k) for k in NAMES}, "textbook": {k: getattr(T, k) for k in NAMES}}

    def step():
        model.zero_grad()
        loss.forward(model.forward(x), y)
        model.backward(loss.backward())
        opt.step()

    times = {k: [] for k in kernels}
    try:
        with parallel.threads():
            for _ in range(args.rounds):
                for name, ks in kernels.items():
                    for k, f in ks.items():
                        setattr(E, k, f)
                    step()
                    t0 = time.perf_counter()
                    step()
                    times[name].append(time.perf_counter() - t0)
    finally:
        for k, f in kernels["engine"].items():
            setattr(E, k, f)
    for name, v in times.items():
        print(f"{name:9s} depthwise + ReLU6: step min {min(v):.3f} s, median {np.median(v):.3f} s "
              f"({args.batch / min(v):.0f} img/s)")
    print(f"engine speed-up (min): {min(times['textbook']) / min(times['engine']):.2f}x")


if __name__ == "__main__":
    main()
