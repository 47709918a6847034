"""LARS: layer-wise adaptive rate scaling (You, Gitman & Ginsburg 2017), as used by SimCLR/BYOL.

Update formula (per parameter tensor w with gradient g; eta = trust coefficient):
    g <- g + wd * w                                               (L2 weight decay)
    q = eta * ||w|| / ||g||   if ||w|| > 0 and ||g|| > 0, else 1  (the layer's trust ratio)
    b <- mu * b + q * g                                           (momentum, buffer starts at 0)
    w <- w - lr * b
Convention: the paper's Algorithm 1 with the local lr folded into the momentum buffer as in
SimCLR's and solo-learn's implementations (``lr`` is the global rate, the buffer holds the
scaled gradient). ``exclude_bias_and_norm=True`` (SimCLR's default) gives 1-D parameters
(biases, batch-norm scales and shifts) neither the trust ratio nor weight decay.
"""
from __future__ import annotations

import numpy as np

from .._checks import check_real
from .optimizers import Optimizer

__all__ = ["LARS"]


class LARS(Optimizer):
    """LARS with momentum and weight decay (see the module docstring for the exact update).

    State per parameter: ``momentum_buffer`` (only when momentum != 0).
    """

    _kinds = {"lr": "float", "momentum": "float", "weight_decay": "float", "eta": "float",
              "exclude_bias_and_norm": "bool"}

    def __init__(self, params, lr=None, momentum=0.9, weight_decay=1e-6, eta=1e-3,
                 exclude_bias_and_norm=True):
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta,
                         exclude_bias_and_norm=exclude_bias_and_norm)

    def _check_hyper(self, hp, where):
        super()._check_hyper(hp, where)
        check_real(hp["momentum"], "momentum" + where, 0.0, 1.0, hi_open=True)
        check_real(hp["weight_decay"], "weight_decay" + where, lo=0.0)
        check_real(hp["eta"], "eta" + where, lo=0.0, lo_open=True)

    def _state_spec(self, group):
        return {"momentum_buffer": "param"} if group["momentum"] != 0 else {}

    def _update(self, p, g, st, group):
        w = p.data
        plain = group["exclude_bias_and_norm"] and w.ndim <= 1
        if not plain:
            if group["weight_decay"] != 0:
                g = g + group["weight_decay"] * w
            wn = float(np.sqrt((w.astype(np.float64) ** 2).sum()))
            gn = float(np.sqrt((g.astype(np.float64) ** 2).sum()))
            if wn > 0 and gn > 0:
                g = g * (group["eta"] * wn / gn)
        if group["momentum"] != 0:
            buf = st.get("momentum_buffer")
            if buf is None:
                buf = st["momentum_buffer"] = np.zeros_like(w)
            buf *= group["momentum"]
            buf += g
            g = buf
        w -= group["lr"] * g
