"""``no_grad()``: forwards that no backward will follow (as ``torch.no_grad``).

Inside ``with nnlite.no_grad():`` (per thread) a model promises not to run ``backward`` on
what it computes, and the engine may skip what only a backward needs. Today:

* ``nn.Sequential`` runs a ``Conv2d``, an optional ``ReLU`` and a ``MaxPool2d`` after it as one
  engine kernel (``conv2d_forward(..., maxpool=...)``): each chunk of the conv's output is
  pooled while it is in cache, and the whole output is never written (bit-identical
  results; ``nnlite.fast.FUSE_POOL_NO_GRAD`` switches it off for A/B measurements).
* ``Sequential.backward`` after a forward under ``no_grad()`` raises ``RuntimeError`` before
  it touches anything (no gradient is accumulated), as does the ``backward`` of a layer that
  ran fused there.

``Trainer.evaluate`` / ``predict``, ``nnlite.attacks.predict``, the score-based Square attack,
``nnlite.models.extract_features`` and ``Autoencoder.encode`` / ``decode`` run under it.
Layers outside a ``Sequential`` behave as usual.
"""
from __future__ import annotations

import contextlib
import threading

_local = threading.local()

#: The cache a layer keeps after a forward that ran fused under ``no_grad()``: its backward
#: raises (``nnlite._checks.check_backward_ready``).
NO_GRAD_CACHE = ("no_grad", None)


def is_grad_enabled() -> bool:
    """False inside a ``no_grad()`` block of the calling thread."""
    return getattr(_local, "enabled", True)


@contextlib.contextmanager
def no_grad():
    """Run the block's forwards without a backward to follow (see the module docstring).
    Blocks nest; the previous state is restored on exit, also on error."""
    previous = is_grad_enabled()
    _local.enabled = False
    try:
        yield
    finally:
        _local.enabled = previous
