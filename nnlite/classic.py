"""Classical heads on fixed features: nnlite's softmax regression and linear SVM, and the
scikit-learn / XGBoost models of the optional extra ``classic``.

Every head has the scikit-learn interface ``fit(x, y) -> self``, ``predict(x) -> (N,)`` and
``predict_proba(x) -> (N, C)``, so `nnlite.ensemble` combines any of them.
"""
from __future__ import annotations

import numpy as np

from ._checks import as_generator, check_int
from .losses import MulticlassHinge, SoftmaxCrossEntropy
from .nn.layers import Linear

__all__ = ["CLASSIC_INSTALL", "LinearSVM", "SoftmaxRegression", "classic_heads"]

CLASSIC_INSTALL = ("the scikit-learn / XGBoost heads need the optional extra 'classic': "
                   "pip install 'nnlite[classic]'  (= pip install scikit-learn xgboost)")


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class _LinearHead:
    """Standardize the features (statistics of the training set), then one ``Linear`` layer
    trained with Adam on mini-batches by ``nnlite.train.Trainer``; ``l2`` is the explicit
    L2 penalty on the weight (not the bias)."""
    _loss = None

    def __init__(self, l2: float = 1e-3, epochs: int = 60, lr: float = 1e-2, batch_size: int = 128,
                 rng=0, dtype=np.float32):
        self.l2, self.lr = float(l2), float(lr)
        self.epochs, self.batch_size = check_int(epochs, "epochs"), check_int(batch_size, "batch_size")
        self.rng, self.dtype = rng, np.dtype(dtype)

    def _prep(self, x):
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 2:
            raise ValueError(f"features must be 2-D (N, D), got shape {x.shape}")
        return (x - self.mean_) / self.std_

    def fit(self, x, y):
        from .optim import Adam
        from .train import Trainer
        x = np.asarray(x, dtype=self.dtype)
        y = np.asarray(y)
        if x.ndim != 2 or y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"fit needs x (N, D) and integer labels y (N,), got {x.shape} and {y.shape} {y.dtype}")
        self.classes_ = np.unique(y)
        self.mean_ = x.mean(axis=0)
        self.std_ = x.std(axis=0) + np.asarray(1e-6, self.dtype)
        yi = np.searchsorted(self.classes_, y).astype(np.int64)
        rng = as_generator(self.rng)
        self.layer_ = Linear(x.shape[1], len(self.classes_), rng=rng, dtype=self.dtype, init="he_normal")
        self.layer_.weight.data *= np.asarray(0.1, self.dtype)
        opt = Adam(self.layer_.parameters(), lr=self.lr)
        Trainer(self.layer_, self._loss(), opt, batch_size=self.batch_size, rng=rng, progress=False,
                l2=self.l2).fit(self._prep(x), yi, epochs=self.epochs)
        return self

    def decision_function(self, x):
        self.layer_.eval()
        return self.layer_.forward(self._prep(x))

    def predict(self, x):
        return self.classes_[self.decision_function(x).argmax(axis=1)]

    def predict_proba(self, x):
        return _softmax(self.decision_function(x).astype(np.float64))


class SoftmaxRegression(_LinearHead):
    """Multinomial logistic regression: softmax cross-entropy + L2 on standardized features."""
    _loss = SoftmaxCrossEntropy


class LinearSVM(_LinearHead):
    """Linear multiclass SVM (Weston-Watkins hinge, margin 1) + L2 on standardized features.
    ``predict_proba`` is the softmax of the scores: a ranking, not calibrated probabilities."""
    _loss = MulticlassHinge


def classic_heads(seed: int = 0, n_jobs: int = 1, include_nnlite: bool = True):
    """The report's heads: ``{"softmax regression", "linear SVM (hinge)"}`` (nnlite) and, when the
    extra ``classic`` is installed, scikit-learn's LogisticRegression, RandomForest (100 trees),
    SVC (linear kernel) and XGBoost's XGBClassifier. Returns ``(heads, missing_message)``;
    the message is None when everything is installed."""
    heads, missing = {}, []
    if include_nnlite:
        heads["nnlite softmax regression"] = SoftmaxRegression(rng=seed)
        heads["nnlite linear SVM (hinge)"] = LinearSVM(rng=seed)
    try:
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC
        heads["LogisticRegression"] = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        heads["RandomForest"] = RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=n_jobs)
        heads["SVC (linear)"] = make_pipeline(StandardScaler(), SVC(kernel="linear", random_state=seed))
    except ImportError:
        missing.append("scikit-learn")
    try:
        from xgboost import XGBClassifier
        heads["XGBoost"] = XGBClassifier(n_estimators=200, max_depth=4, learning_rate=0.1,
                                         random_state=seed, n_jobs=n_jobs, verbosity=0)
    except ImportError:
        missing.append("xgboost")
    msg = None if not missing else f"not installed: {', '.join(missing)}; " + CLASSIC_INSTALL
    return heads, msg
