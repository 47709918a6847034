"""Adversarial attacks and robustness tools.

Conventions: eps, step sizes and perturbation norms are in the model's INPUT units (pixels in
[0, 1] by default; keep normalization inside the model with ``nnlite.nn.Normalize``);
adversarial inputs are clipped to ``clip=(0, 1)`` (configurable, ``None`` to disable).
Gradients are of the SUM of per-example losses (per-example gradients), computed in eval mode
without touching parameter gradients, batch-norm statistics or training modes.

* ``input_gradient(model, x, y=None, loss=None, target_class=None) -> (grad, logits)``
* ``fgsm(model, x, y=None, *, eps, targeted=False, target=None, clip=(0, 1), batch_size=512)``
* ``pgd(model, x, y=None, *, eps, step_size, steps, norm="inf"|"2", random_start=True,
  restarts=1, targeted=False, target=None, clip=(0, 1), rng=None, batch_size=512)``
* ``fooling_image`` / ``fooling_images``: normalized ascent on a target class score.
* ``apgd(model, x, y=None, *, eps, loss="ce"|"dlr", norm, steps=100, restarts=1, ...)``: Auto-PGD
  (Croce & Hein 2020), CE or DLR loss (``DLRLoss``; kernel ``nnlite.functional.dlr``).
* ``square_attack(model, x, y=None, *, eps, n_queries=5000, p_init=0.8, ...)``: score-based, L-inf.
* ``carlini_wagner(model, x, y=None, ...)`` (L2) and ``deepfool(model, x, y=None, ...)``: minimal
  perturbations.
* ``robust_accuracy(model, x, y, eps, attacks=("apgd-ce", "apgd-dlr", "square"))``: worst-case
  ensemble with ``gradient_masking_checks``; returns a ``RobustReport``.
* every attack returns an ``AttackResult``; shared helpers live in ``nnlite.attacks.base``.
* ``accuracy_vs_eps``, ``adversarial_confusion_matrix``, plotting helpers,
  ``make_adversarial_batch``, the ``AdversarialTraining`` trainer callback (FGSM, PGD, or
  FGSM with random start as in Wong et al. 2020: ``"pgd"`` with ``steps=1``) and the
  ``RobustValidation`` callback (accuracy under attack per epoch, for early stopping).
"""
from .apgd import DLRLoss, apgd, apgd_checkpoints
from .base import AttackResult
from .ensemble import RobustReport, gradient_masking_checks, robust_accuracy
from .fgsm import fgsm
from .minimal import carlini_wagner, deepfool
from .square import square_attack
from .fooling import FoolingResult, fooling_image, fooling_images
from .gradients import input_gradient, per_example_cross_entropy, predict
from .pgd import pgd, project, random_start_delta
from .robustness import (AdversarialTraining, RobustValidation, accuracy_vs_eps, adversarial_confusion_matrix,
                         magnify, make_adversarial_batch, plot_accuracy_vs_eps,
                         plot_adversarial_grid, plot_adversarial_pairs, plot_attack_comparison,
                         plot_minimal_norms, plot_perturbation,
                         run_attack)

__all__ = ["AttackResult", "FoolingResult", "input_gradient", "per_example_cross_entropy",
           "predict", "fgsm", "pgd", "project", "random_start_delta", "fooling_image",
           "fooling_images", "run_attack", "accuracy_vs_eps", "adversarial_confusion_matrix",
           "plot_accuracy_vs_eps", "plot_adversarial_grid", "plot_adversarial_pairs",
           "plot_perturbation", "plot_attack_comparison", "plot_minimal_norms", "magnify",
           "make_adversarial_batch", "AdversarialTraining",
           "RobustValidation", "apgd", "apgd_checkpoints", "DLRLoss", "square_attack",
           "carlini_wagner", "deepfool", "robust_accuracy", "gradient_masking_checks", "RobustReport"]
