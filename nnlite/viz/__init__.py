"""Plotting for nnlite: training curves, confusion matrices, image grids, curves and bars.

This subpackage is the only part of nnlite that imports matplotlib; ``import nnlite`` and
``import nnlite.metrics`` do not load it. Figures are ``matplotlib.figure.Figure`` objects
drawn on an Agg canvas directly (pyplot is never used, the global backend is never
changed, no window ever opens). Every plotting function returns its Figure and, given
``path``, saves it atomically (parent directories created; PNG for ``.png``).

Experiment figures (:mod:`~nnlite.viz.experiments`): ``plot_ablation`` (one parameter varied,
error bars over seeds, a reference series such as a course report's numbers) and
``plot_attack_curves`` (accuracy vs attack strength: colour = model, line style = attack).

Image conventions: float images are NCHW in [0, 1], integer (uint8) images NHWC in
[0, 255]; C is 1 (grayscale) or 3 (RGB).
"""
from ._common import save_figure
from .experiments import plot_ablation, plot_attack_curves
from .plots import (metric_label, plot_bar, plot_confusion_matrix, plot_curve, plot_history,
                    plot_image_grid, plot_image_rows)

__all__ = ["plot_history", "plot_confusion_matrix", "plot_image_grid", "plot_curve", "plot_bar",
           "plot_image_rows", "save_figure", "plot_ablation", "plot_attack_curves", "metric_label"]
