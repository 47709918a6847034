"""``python -m benchmarks.profile``: where a training step's time goes, per kind of layer, in
nnlite and in PyTorch, for the reference models.

nnlite: every leaf layer's ``forward`` and ``backward`` is wrapped with a timer (a fused pair,
e.g. ``Conv2d`` + ``ReLU`` on the engine storey, is timed as its first layer: the ReLU then
takes ~0 ms; a batch norm whose input gradient goes to the conv before it unwritten, a
``PendingGrad``, has it computed, and timed, inside that conv's backward), plus the loss and
the SGD update. PyTorch: ``torch.profiler`` over the same
steps, each operator's *self* CPU time (time in the operator minus its children, on the calling
thread; the intra-op worker threads run inside it) assigned to a kind of layer by its name
(``TORCH_KINDS``); what matches none is "other". Both run inside their usual settings (nnlite
in a ``parallel.threads()`` block, PyTorch with ``torch.set_num_threads(threads)``), after
warm-up steps, interleaved round by round; the tables give the median per step over the rounds.

The two columns do not add up to the benchmark's step times exactly: the timers and the
profiler cost a little, and PyTorch's autograd bookkeeping outside the operators is "other".
What the table is for: which kind of layer holds the remaining gap (the ratio column).
"""
from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np

from nnlite import parallel
from nnlite.losses import SoftmaxCrossEntropy

from .harness import load_torch
from .models import INPUTS, batch, make_sgd, nnlite_model, nnlite_step_fn, torch_step_fn

#: kind of layer -> substrings of PyTorch operator names (first match wins, in this order)
TORCH_KINDS = (
    ("conv backward", ("convolution_backward",)),
    ("conv forward", ("convolution", "conv2d")),
    ("batch norm backward", ("batch_norm_backward",)),
    ("batch norm forward", ("batch_norm",)),
    ("relu backward", ("threshold_backward",)),
    ("relu forward", ("relu", "clamp_min")),
    ("max pool backward", ("max_pool2d_with_indices_backward",)),
    ("max pool forward", ("max_pool2d",)),
    ("avg pool", ("adaptive_avg_pool", "mean", "avg_pool")),
    ("dense", ("addmm", "aten::mm", "aten::t", "linear")),
    ("loss", ("log_softmax", "nll_loss", "cross_entropy")),
    ("dropout", ("dropout", "bernoulli", "aten::mul", "aten::div")),
    ("SGD update", ("_foreach", "aten::add_", "sgd")),
    ("zero grad", ("zero_", "fill_")),
)

#: nnlite layer class -> kind of layer (forward / backward appended)
NNLITE_KINDS = {"Conv2d": "conv", "BatchNorm2d": "batch norm", "BatchNorm1d": "batch norm", "ReLU": "relu",
                "MaxPool2d": "max pool", "GlobalAvgPool2d": "avg pool", "Linear": "dense", "Dropout": "dropout"}


def _leaves(module, prefix=""):
    kids = list(module._modules.items())
    if not kids:
        yield prefix.rstrip("."), module
        return
    for name, child in kids:
        yield from _leaves(child, prefix + name + ".")


def nnlite_profile(name, n, rounds, warmup=2):
    """{kind: [ms per step, one per round]} for nnlite's training step; "step (wall)" is the
    timed step's wall time, "step (wall, no timers)" that of an untimed twin run alternately."""
    model = nnlite_model(name, np.random.default_rng(0))
    x, y = batch(name, n)
    loss = SoftmaxCrossEntropy()
    update, _ = make_sgd(model)
    plain_step, _ = nnlite_step_fn(name, n)
    acc = defaultdict(float)

    def timed(fn, kind):
        def run(*args, **kwargs):
            t = time.perf_counter()
            out = fn(*args, **kwargs)
            acc[kind] += time.perf_counter() - t
            return out
        return run

    for _, layer in _leaves(model):
        kind = NNLITE_KINDS.get(type(layer).__name__, "other")
        # instance attributes shadow the class methods; forward_relu is what Sequential calls
        # for a fused pair, so the pair is timed as the first layer's forward; backward_pending
        # is a batch norm's backward before a Conv2d (its dx then computed, and timed, in the
        # conv's backward)
        for method, suffix in (("forward", "forward"), ("forward_relu", "forward"), ("backward", "backward"),
                               ("backward_pending", "backward")):
            if hasattr(layer, method):
                object.__setattr__(layer, method, timed(getattr(layer, method), f"{kind} {suffix}"))
    per_round = defaultdict(list)

    def step():
        t = time.perf_counter()
        model.zero_grad()
        acc["zero grad"] += time.perf_counter() - t
        out = model.forward(x)
        t = time.perf_counter()
        loss.forward(out, y)
        d = loss.backward()
        acc["loss"] += time.perf_counter() - t
        model.backward(d)
        t = time.perf_counter()
        update()
        acc["SGD update"] += time.perf_counter() - t

    with parallel.threads():
        for r in range(warmup + rounds):
            acc.clear()
            t0 = time.perf_counter()
            step()
            total = time.perf_counter() - t0
            t0 = time.perf_counter()
            plain_step()
            plain = time.perf_counter() - t0
            if r >= warmup:
                for kind, s in acc.items():
                    per_round[kind].append(s * 1e3)
                per_round["step (wall)"].append(total * 1e3)
                per_round["step (wall, no timers)"].append(plain * 1e3)
    return per_round


def _torch_kind(op):
    for kind, keys in TORCH_KINDS:
        if any(k in op for k in keys):
            return kind
    return "other"


def torch_profile(torch, name, n, rounds, warmup=2):
    """{kind: [ms per step, one per round]} for PyTorch's training step (self CPU time)."""
    from torch.profiler import ProfilerActivity, profile
    step, _ = torch_step_fn(name, torch, n)
    for _ in range(warmup):
        step()
    per_round = defaultdict(list)
    for _ in range(rounds):
        t0 = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        total = time.perf_counter() - t0
        acc = defaultdict(float)
        for ev in prof.key_averages():
            acc[_torch_kind(ev.key)] += ev.self_cpu_time_total / 1e3
        for kind, ms in acc.items():
            per_round[kind].append(ms)
        per_round["step (wall, profiled)"].append(total * 1e3)
    return per_round


ORDER = ("conv forward", "conv backward", "batch norm forward", "batch norm backward", "relu forward",
         "relu backward", "max pool forward", "max pool backward", "avg pool forward", "avg pool backward",
         "avg pool", "dense forward", "dense backward", "dense", "dropout forward", "dropout backward", "dropout",
         "loss", "SGD update", "zero grad", "other")


def table(name, nn_prof, torch_prof):
    """The profile as text: one row per kind, nnlite ms, PyTorch ms, ratio."""
    med = {k: float(np.median(v)) for k, v in nn_prof.items()}
    tmed = {k: float(np.median(v)) for k, v in (torch_prof or {}).items()}
    kinds = [k for k in ORDER if k in med or k in tmed]
    lines = [f"{name}: median ms per training step",
             f"{'kind of layer':22s} | {'nnlite ms':>9s} | {'torch ms':>8s} | nnlite/torch",
             f"{'-' * 22}-|-{'-' * 9}-|-{'-' * 8}-|-------------"]
    for k in kinds:
        a, b = med.get(k), tmed.get(k)
        ratio = f"{a / b:.2f}" if a is not None and b else "-"
        lines.append(f"{k:22s} | {'-' if a is None else f'{a:9.2f}':>9s} | "
                     f"{'-' if b is None else f'{b:8.2f}':>8s} | {ratio}")
    lines.append(f"{'sum of the rows':22s} | {sum(med.get(k, 0) for k in kinds):9.2f} | "
                 f"{sum(tmed.get(k, 0) for k in kinds):8.2f} |")
    wall = med.get("step (wall)")
    twall = tmed.get("step (wall, profiled)")
    lines.append(f"{'step, wall clock':22s} | {wall:9.2f} | {'-' if twall is None else f'{twall:8.2f}':>8s} | "
                 "(torch: with the profiler on)")
    lines.append(f"{'step, no timers':22s} | {med['step (wall, no timers)']:9.2f} | {'':8s} | "
                 "(nnlite: an untimed twin, alternating)")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["fmnist_cnn", "cifar_cnn", "resnet_encoder"],
                   choices=sorted(INPUTS))
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=2, help="PyTorch intra-op threads (nnlite: its block's default)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 128; 256 for the ResNet encoder)")
    args = p.parse_args(argv)
    torch = load_torch(args.threads)
    for name in args.models:
        n = args.batch or (256 if name == "resnet_encoder" else 128)
        nn_prof = nnlite_profile(name, n, args.rounds)
        torch_prof = torch_profile(torch, name, n, args.rounds) if torch is not None else None
        print(table(f"{name} (batch {n}, float32)", nn_prof, torch_prof))
        if torch is None:
            print("(PyTorch is not installed: pip install -e '.[bench]' for its column)")
        print()


if __name__ == "__main__":
    main()
