"""Optimizers, learning-rate schedules and gradient utilities (PyTorch's formulas and defaults).

* optimizers: :class:`SGD`, :class:`Adam`, :class:`AdamW`, :class:`RMSprop`, :class:`LARS`
  (layer-wise adaptive rate scaling, for self-supervised training) (base :class:`Optimizer`)
* schedules: :class:`LambdaDecay`, :class:`MultiplicativeDecay`, :class:`StepLR`,
  :class:`MultiStepLR`, :class:`ExponentialLR`, :class:`CosineAnnealingLR`,
  :class:`WarmupCosine`, :class:`ReduceLROnPlateau` (base :class:`LRSchedule`)
* gradient utilities: :func:`clip_grad_norm`, :func:`l2_penalty` (with predicate :func:`is_weight`)
"""
from .clip import clip_grad_norm, is_weight, l2_penalty
from .lars import LARS
from .optimizers import SGD, Adam, AdamW, Optimizer, RMSprop
from .schedules import (CosineAnnealingLR, ExponentialLR, LambdaDecay, LRSchedule, MultiStepLR,
                        MultiplicativeDecay, ReduceLROnPlateau, StepLR, WarmupCosine)

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "LARS",
           "LRSchedule", "LambdaDecay", "MultiplicativeDecay", "StepLR", "MultiStepLR",
           "ExponentialLR", "CosineAnnealingLR", "WarmupCosine", "ReduceLROnPlateau",
           "clip_grad_norm", "l2_penalty", "is_weight"]
