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
* every attack returns an ``AttackResult``.
* ``accuracy_vs_eps``, ``adversarial_confusion_matrix``, plotting helpers,
  ``make_adversarial_batch``, the ``AdversarialTraining`` trainer callback (FGSM, PGD, or
  FGSM with random start as in Wong et al. 2020: ``"pgd"`` with ``steps=1``) and the
  ``RobustValidation`` callback (accuracy under attack per epoch, for early stopping).
"""
from .fgsm import AttackResult, fgsm
from .fooling import FoolingResult, fooling_image, fooling_images
from .gradients import input_gradient, per_example_cross_entropy, predict
from .pgd import pgd, project, random_start_delta
from .robustness import (AdversarialTraining, RobustValidation, accuracy_vs_eps, adversarial_confusion_matrix,
                         magnify, make_adversarial_batch, plot_accuracy_vs_eps,
                         plot_adversarial_grid, plot_adversarial_pairs, plot_perturbation,
                         run_attack)

__all__ = ["AttackResult", "FoolingResult", "input_gradient", "per_example_cross_entropy",
           "predict", "fgsm", "pgd", "project", "random_start_delta", "fooling_image",
           "fooling_images", "run_attack", "accuracy_vs_eps", "adversarial_confusion_matrix",
           "plot_accuracy_vs_eps", "plot_adversarial_grid", "plot_adversarial_pairs",
           "plot_perturbation", "magnify", "make_adversarial_batch", "AdversarialTraining",
           "RobustValidation"]
