"""Gradient-check rows for the self-supervised losses (NT-Xent, BYOL, Barlow Twins).

pred is the stack of two views (2N, D); NT-Xent and Barlow Twins ignore the target (None);
BYOL's target is the target network's projections (no gradient).
"""
from specs import LossSpec, normal

from nnlite import losses


def _none(rng):
    return None


LOSS_SPECS = [
    LossSpec("nt_xent_n1_tau0.5", lambda d: losses.NTXent(0.5), normal(2, 4), _none),
    LossSpec("nt_xent_n3_tau0.1", lambda d: losses.NTXent(0.1), normal(6, 5), _none),
    LossSpec("nt_xent_n5_tau0.05", lambda d: losses.NTXent(0.05), normal(10, 3, scale=2), _none),
    LossSpec("nt_xent_n4_tau1", lambda d: losses.NTXent(1.0), normal(8, 6, scale=0.3), _none),
    LossSpec("byol_n2", lambda d: losses.BYOLLoss(), normal(4, 5), lambda rng: rng.standard_normal((4, 5))),
    LossSpec("byol_n4", lambda d: losses.BYOLLoss(), normal(8, 3, scale=3), lambda rng: rng.standard_normal((8, 3))),
    LossSpec("barlow_n4_l5e-3", lambda d: losses.BarlowTwinsLoss(), normal(8, 5), _none),
    LossSpec("barlow_n6_l0.1", lambda d: losses.BarlowTwinsLoss(0.1), normal(12, 4, scale=2), _none),
    LossSpec("barlow_n3_l1", lambda d: losses.BarlowTwinsLoss(1.0), normal(6, 7), _none),
]
