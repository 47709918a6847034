"""Gradient-check rows of the attack losses: the DLR loss (untargeted and targeted)."""
import numpy as np

from specs import LossSpec, labels, normal

from nnlite.attacks import DLRLoss

LOSS_SPECS = [
    LossSpec("dlr", lambda d: DLRLoss(), normal(6, 5, scale=2), labels(6, 5)),
    LossSpec("dlr_targeted", lambda d: DLRLoss(target=np.array([1, 2, 3, 4, 0, 1])),
             normal(6, 5, scale=2), labels(6, 5)),
]
