"""Voting (ties), fitted weights, stacking on out-of-fold predictions only, disagreement, heads."""
import numpy as np
import pytest

from nnlite.classic import LinearSVM, SoftmaxRegression, classic_heads
from nnlite.ensemble import (
    Stacking,
    classification_reports,
    cross_fitted,
    disagreement,
    fit_vote_weights,
    hard_vote,
    soft_vote,
    stratified_folds,
)


def test_hard_vote_majority_and_ties():
    preds = np.array([[0, 1, 2, 2, 1],
                      [0, 2, 1, 2, 0],
                      [1, 2, 0, 0, 2]])
    # sample 0: 0,0,1 -> 0; 1: 1,2,2 -> 2; 2: 2,1,0 tie -> 0; 3: 2,2,0 -> 2; 4: 1,0,2 tie -> 0
    np.testing.assert_array_equal(hard_vote(preds), [0, 2, 0, 2, 0])
    # two models, tie between 3 and 1 -> the smaller label
    np.testing.assert_array_equal(hard_vote(np.array([[3], [1]])), [1])
    # model 2 counts double: sample 3 (2, 2, 0) becomes a 2-2 tie -> 0; sample 4 -> 2
    np.testing.assert_array_equal(hard_vote(preds, weights=[1, 1, 2]), [0, 2, 0, 0, 2])
    with pytest.raises(ValueError, match="num_classes"):
        hard_vote(preds, num_classes=2)
    with pytest.raises(ValueError, match="integer labels"):
        hard_vote(np.zeros((2, 3)))


def test_soft_vote_and_weights():
    p = np.array([[[0.6, 0.4], [0.5, 0.5]],
                  [[0.1, 0.9], [0.5, 0.5]]])
    np.testing.assert_allclose(soft_vote(p), [[0.35, 0.65], [0.5, 0.5]])
    np.testing.assert_allclose(soft_vote(p, weights=[3, 1]), [[0.475, 0.525], [0.5, 0.5]])
    assert soft_vote(p).argmax(axis=1)[1] == 0                        # tie -> smaller class
    with pytest.raises(ValueError, match="probabilities"):
        soft_vote(p * 2)


def noisy_probas(y, acc, rng, c=3):
    pred = np.where(rng.random(y.size) < acc, y, rng.integers(0, c, y.size))
    p = np.full((y.size, c), 0.1)
    p[np.arange(y.size), pred] = 0.8
    return p / p.sum(axis=1, keepdims=True)


def test_fitted_weights_prefer_the_accurate_model():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    probas = np.stack([noisy_probas(y, 0.9, rng), noisy_probas(y, 0.2, rng), noisy_probas(y, 0.2, rng)])
    w = fit_vote_weights(probas, y)
    assert w[0] > 0.8 and np.isclose(w.sum(), 1)
    weighted = cross_fitted(probas, y, "weighted", n_folds=3).argmax(1)
    equal = soft_vote(probas).argmax(1)
    assert (weighted == y).mean() > (equal == y).mean()
    stacked = cross_fitted(probas, y, "stacking", n_folds=3).argmax(1)
    assert (stacked == y).mean() > 0.85


class Leaker:
    """A base model that memorizes its training labels (a lookup by sample id in column 0) and
    is at chance on anything it has not seen: perfect in-sample, useless out of sample."""

    def fit(self, x, y):
        self.table = dict(zip(x[:, 0].tolist(), y.tolist()))
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, x):
        rng = np.random.default_rng(int(x[:, 0].sum()) % 1000)
        lab = np.array([self.table.get(v, rng.integers(0, 3)) for v in x[:, 0].tolist()])
        p = np.full((x.shape[0], 3), 0.01)
        p[np.arange(x.shape[0]), lab] = 0.98
        return p


class Honest(SoftmaxRegression):
    """Softmax regression on the real features only (columns 1:)."""

    def fit(self, x, y):
        return super().fit(x[:, 1:], y)

    def decision_function(self, x):
        return super().decision_function(x[:, 1:])


def make_data(n, seed, offset=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[2, 0], [0, 2], [-2, -2]], dtype=np.float32)
    f = centers[y] + rng.standard_normal((n, 2)).astype(np.float32) * 1.2
    ids = (np.arange(n) + offset).astype(np.float32)[:, None]
    return np.concatenate([ids, f], axis=1), y.astype(np.int64)


def test_stacking_uses_out_of_fold_predictions_only():
    xtr, ytr = make_data(300, 0)
    xte, yte = make_data(300, 1, offset=10_000)
    st = Stacking([Leaker, lambda: Honest(epochs=30)], n_folds=5, rng=0).fit(xtr, ytr)
    # the meta-learner's inputs for the leaker are its out-of-fold predictions: at chance level
    leak_oof = st.oof_[:, :3].argmax(1)
    assert (leak_oof == ytr).mean() < 0.5
    acc = (st.predict(xte) == yte).mean()
    honest = (Honest(epochs=30).fit(xtr, ytr).predict(xte) == yte).mean()
    assert acc >= honest - 0.03
    # the same meta-learner fitted on IN-SAMPLE predictions trusts the leaker and fails on new data
    from nnlite.ensemble import stack_features
    bases = [Leaker().fit(xtr, ytr), Honest(epochs=30).fit(xtr, ytr)]
    meta = SoftmaxRegression(l2=1e-2, epochs=100).fit(stack_features([b.predict_proba(xtr) for b in bases]), ytr)
    naive = (meta.predict(stack_features([b.predict_proba(xte) for b in bases])) == yte).mean()
    assert naive < acc - 0.15


def test_disagreement_and_reports():
    preds = np.array([[0, 1, 2, 0], [0, 1, 1, 1], [2, 2, 2, 2]])
    d = disagreement(preds)
    np.testing.assert_allclose(d, [[0, 0.5, 0.75], [0.5, 0, 1.0], [0.75, 1.0, 0]])
    reps = classification_reports(np.array([0, 1, 2, 0]), {"a": preds[0], "vote": hard_vote(preds)},
                                  class_names=["x", "y", "z"])
    assert reps["a"].to_dict()["accuracy"] == 1.0


def test_folds_are_stratified():
    y = np.repeat([0, 1, 2], [10, 20, 30])
    f = stratified_folds(y, 5, rng=0)
    for k in range(5):
        np.testing.assert_array_equal(np.bincount(y[f == k]), [2, 4, 6])
    with pytest.raises(ValueError, match="fewer than n_folds"):
        stratified_folds(np.array([0, 0, 1]), 2)


@pytest.mark.parametrize("cls", [SoftmaxRegression, LinearSVM])
def test_nnlite_heads_learn(cls):
    x, y = make_data(400, 3)
    xt, yt = make_data(400, 4)
    h = cls(epochs=30).fit(x[:, 1:], y)
    assert (h.predict(xt[:, 1:]) == yt).mean() > 0.8
    p = h.predict_proba(xt[:, 1:])
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-6)


def test_classic_heads_factory():
    heads, msg = classic_heads(seed=0)
    assert "nnlite softmax regression" in heads
    try:
        import sklearn  # noqa: F401
        import xgboost  # noqa: F401
        assert msg is None and {"LogisticRegression", "RandomForest", "SVC (linear)", "XGBoost"} <= set(heads)
    except ImportError:
        assert "pip install" in msg
