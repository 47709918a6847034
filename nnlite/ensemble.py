"""Ensembles of models or prediction arrays: voting, fitted weights, stacking, diversity.

Shapes: ``preds`` (M, N) integer labels of M models on N samples; ``probas`` (M, N, C) class
probabilities (rows sum to 1); ``y`` (N,) integer labels.

* `hard_vote`: majority of the labels. **Tie rule**: among the classes with the most
  (weighted) votes the SMALLEST class index wins (as ``numpy.argmax`` and scikit-learn's
  ``VotingClassifier(voting="hard")``).
* `soft_vote`: the (weighted) mean of the probabilities; argmax ties -> smallest class index.
* `fit_vote_weights`: weights on the simplex minimizing the validation log-loss of the
  weighted soft vote (fit them on validation data, never on the data you report).
* `Stacking`: a meta-learner trained ONLY on out-of-fold predictions of the base models
  (k-fold, stratified); the base models are then refit on all the data for prediction.
* `stack_fit`, `cross_fitted`: stacking / weighted voting on precomputed held-out predictions
  (e.g. of fine-tuned networks on a validation set); `cross_fitted` returns, for every sample,
  the prediction of an ensembler fitted on the other folds, an honest estimate on that set.
* `disagreement`: pairwise fraction of samples on which two models' labels differ.
* `classification_reports`: nnlite.metrics reports for every model and ensemble.
"""
from __future__ import annotations

import numpy as np

from ._checks import as_generator, check_int
from .metrics import classification_report

__all__ = [
    "Stacking",
    "classification_reports",
    "cross_fitted",
    "disagreement",
    "fit_vote_weights",
    "hard_vote",
    "soft_vote",
    "stack_features",
    "stack_fit",
    "stratified_folds",
]


def _preds(preds, name="preds"):
    p = np.asarray(preds)
    if p.ndim != 2 or not np.issubdtype(p.dtype, np.integer):
        raise ValueError(f"{name} must be integer labels of shape (M models, N samples), got "
                         f"{p.dtype} {p.shape}")
    if p.size and p.min() < 0:
        raise ValueError(f"{name} holds negative labels")
    return p


def _probas(probas, name="probas"):
    p = np.asarray(probas, dtype=np.float64)
    if p.ndim != 3 or p.shape[0] < 1:
        raise ValueError(f"{name} must have shape (M models, N samples, C classes), got {p.shape}")
    if np.any(p < 0) or not np.allclose(p.sum(axis=2), 1.0, atol=1e-4):
        raise ValueError(f"{name} must hold probabilities (non-negative rows summing to 1)")
    return p


def _weights(weights, m):
    if weights is None:
        return np.full(m, 1.0 / m)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (m,) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be {m} non-negative numbers with a positive sum, got {weights!r}")
    return w / w.sum()


def hard_vote(preds, num_classes: int = None, weights=None) -> np.ndarray:
    """Majority vote (N,) of ``preds`` (M, N); ``weights`` (M,) weight each model's vote.
    Ties go to the smallest class index."""
    p = _preds(preds)
    m, n = p.shape
    c = int(p.max()) + 1 if num_classes is None else check_int(num_classes, "num_classes")
    if p.size and p.max() >= c:
        raise ValueError(f"preds hold label {p.max()} >= num_classes={c}")
    w = _weights(weights, m)
    votes = np.zeros((n, c))
    for i in range(m):                       # loop over models, vectorized over samples
        np.add.at(votes, (np.arange(n), p[i]), w[i])
    return votes.argmax(axis=1).astype(np.int64)


def soft_vote(probas, weights=None) -> np.ndarray:
    """Weighted mean of the probabilities: (M, N, C) -> (N, C)."""
    p = _probas(probas)
    return np.tensordot(_weights(weights, p.shape[0]), p, axes=1)


def fit_vote_weights(probas, y, steps: int = 300, lr: float = 0.5) -> np.ndarray:
    """Weights w (M,) on the simplex minimizing -mean log (sum_m w_m P_m[n, y_n]).

    w = softmax(a), a fitted by gradient descent from a = 0 (equal weights):
    dL/dw_m = -mean_n P_m[n, y_n] / p_n,  dL/da = w * (dL/dw - w . dL/dw).
    """
    p = _probas(probas)
    y = np.asarray(y)
    if y.shape != (p.shape[1],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be integer labels of shape ({p.shape[1]},), got {y.dtype} {y.shape}")
    py = p[:, np.arange(p.shape[1]), y]                 # (M, N)
    a = np.zeros(p.shape[0])
    for _ in range(check_int(steps, "steps")):
        w = np.exp(a - a.max())
        w /= w.sum()
        mix = np.maximum(w @ py, 1e-12)
        g = -(py / mix).mean(axis=1)
        a -= lr * w * (g - w @ g)
    w = np.exp(a - a.max())
    return w / w.sum()


def stratified_folds(y, n_folds: int, rng=0) -> np.ndarray:
    """Fold index (N,) in [0, n_folds): each class's samples are shuffled and dealt round-robin."""
    y = np.asarray(y)
    k = check_int(n_folds, "n_folds", 2)
    rng = as_generator(rng)
    fold = np.empty(y.shape[0], dtype=np.int64)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if idx.size < k:
            raise ValueError(f"class {c} has {idx.size} samples, fewer than n_folds={k}")
        fold[rng.permutation(idx)] = np.arange(idx.size) % k
    return fold


def _default_meta():
    from .classic import SoftmaxRegression
    return SoftmaxRegression(l2=1e-2, epochs=100)


def stack_features(probas_list):
    """Meta-learner input (N, M*C): the base models' log-probabilities side by side."""
    return np.concatenate([np.log(np.clip(p, 1e-7, 1.0)) for p in probas_list], axis=1)


class Stacking:
    """Stacked generalization (Wolpert 1992) with out-of-fold predictions only.

    base: list of factories ``() -> model`` (models with ``fit(x, y)`` and ``predict_proba``);
    meta: factory of the meta-learner (default: nnlite `SoftmaxRegression` on the base models'
    log-probabilities). ``fit(x, y)``: for each of ``n_folds`` stratified folds every base model
    is trained on the other folds and predicts the held-out fold; the meta-learner is trained on
    these out-of-fold predictions (``oof_``, (N, M*C) log-probabilities) only; then every base
    model is refit on all of (x, y) for ``predict``/``predict_proba``.
    """

    def __init__(self, base, meta=None, n_folds: int = 5, rng=0):
        self.base = list(base)
        if not self.base or not all(callable(b) for b in self.base):
            raise TypeError("base must be a non-empty list of factories () -> model")
        self.meta = meta or _default_meta
        self.n_folds = check_int(n_folds, "n_folds", 2)
        self.rng = rng

    def fit(self, x, y):
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        c = len(self.classes_)
        folds = stratified_folds(y, self.n_folds, self.rng)
        oof = np.zeros((len(self.base), y.shape[0], c))
        for k in range(self.n_folds):
            tr, te = folds != k, folds == k
            for i, make in enumerate(self.base):
                model = make().fit(x[tr], y[tr])
                oof[i, te] = model.predict_proba(x[te])
        self.oof_ = stack_features(list(oof))
        self.meta_ = self.meta().fit(self.oof_, y)
        self.base_ = [make().fit(x, y) for make in self.base]
        return self

    def predict_proba(self, x):
        return self.meta_.predict_proba(stack_features([m.predict_proba(x) for m in self.base_]))

    def predict(self, x):
        return self.classes_[self.predict_proba(x).argmax(axis=1)]


def stack_fit(probas, y, meta=None):
    """A meta-learner fitted on held-out predictions ``probas`` (M, N, C) of already-trained
    models (predictions on data none of them trained on). Returns the fitted meta-learner, which
    takes `stack_features` of new predictions; to score on the same set use `cross_fitted`."""
    p = _probas(probas)
    return (meta or _default_meta)().fit(stack_features(list(p)), np.asarray(y))


def cross_fitted(probas, y, kind: str = "stacking", n_folds: int = 5, rng=0, meta=None) -> np.ndarray:
    """Honest ensemble probabilities (N, C) on a held-out set: each fold's samples are combined
    by a weighted soft vote (``kind="weighted"``, weights from `fit_vote_weights`) or a stacking
    meta-learner (``kind="stacking"``) fitted on the OTHER folds only."""
    p = _probas(probas)
    y = np.asarray(y)
    if kind not in ("stacking", "weighted"):
        raise ValueError(f"kind must be 'stacking' or 'weighted', got {kind!r}")
    folds = stratified_folds(y, n_folds, rng)
    out = np.zeros(p.shape[1:])
    for k in range(n_folds):
        tr, te = folds != k, folds == k
        if kind == "weighted":
            out[te] = soft_vote(p[:, te], fit_vote_weights(p[:, tr], y[tr]))
        else:
            m = stack_fit(p[:, tr], y[tr], meta)
            q = np.zeros((int(te.sum()), p.shape[2]))
            q[:, m.classes_] = m.predict_proba(stack_features(list(p[:, te])))
            out[te] = q
    return out


def disagreement(preds) -> np.ndarray:
    """(M, M) matrix: fraction of samples on which models i and j predict different labels."""
    p = _preds(preds)
    return (p[:, None, :] != p[None, :, :]).mean(axis=2)


def classification_reports(y, predictions: dict, class_names=None) -> dict:
    """``{name: nnlite.metrics.ClassificationReport}`` for every ``{name: labels (N,)}``."""
    return {name: classification_report(y, np.asarray(pred), class_names=class_names)
            for name, pred in predictions.items()}
