"""Nearest-neighbour explanations (nnlite.explain, issue 16) on toy sets with known answers."""
import numpy as np
import pytest

from nnlite.explain import (TAGS, confusion_groups, embed, explain_mistakes, knn_of_class, local_examples,
                            plot_explanations, rank_mistakes, tag_mistakes)


def _brute(q, r, labels, wanted, k, exclude=False):
    d = np.sqrt(((q[:, None, :] - r[None, :, :]) ** 2).sum(-1))
    mask = (labels[None, :] != wanted[:, None]) if not exclude else (labels[None, :] == wanted[:, None])
    d = np.where(mask, np.inf, d)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(d, idx, axis=1)


@pytest.mark.parametrize("exclude", [False, True])
@pytest.mark.parametrize("chunk_bytes", [64, 2**20])
def test_knn_of_class_finds_the_true_nearest_items(exclude, chunk_bytes):
    rng = np.random.default_rng(0)
    refs = rng.standard_normal((300, 6)).astype(np.float32)
    labels = rng.integers(0, 4, 300)
    q = rng.standard_normal((37, 6)).astype(np.float32)
    wanted = rng.integers(0, 4, 37)
    idx, dist = knn_of_class(q, refs, labels, wanted, k=5, exclude=exclude, chunk_bytes=chunk_bytes)
    bi, bd = _brute(q.astype(np.float64), refs.astype(np.float64), labels, wanted, 5, exclude)
    np.testing.assert_allclose(dist, bd, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(idx, bi)
    same = labels[idx] == wanted[:, None]
    assert (not same.any()) if exclude else same.all()


def test_exact_neighbours_on_a_hand_made_set_and_missing_class():
    refs = np.array([[0.0, 0], [10, 0], [0, 10], [1, 0], [9, 0]])
    labels = np.array([0, 1, 2, 0, 1])
    q = np.array([[0.9, 0.0], [8.0, 0.0]])
    idx, dist = knn_of_class(q, refs, labels, np.array([0, 1]), k=2)
    np.testing.assert_array_equal(idx, [[3, 0], [4, 1]])
    np.testing.assert_allclose(dist, [[0.1, 0.9], [1.0, 2.0]], atol=1e-12)
    idx, dist = knn_of_class(q, refs, labels, np.array([2, 3]), k=2)   # class 2 has 1 row, class 3 none
    np.testing.assert_array_equal(idx, [[2, -1], [-1, -1]])
    assert np.isinf(dist[0, 1]) and np.isinf(dist[1]).all()


def test_counterexample_is_never_of_the_query_class():
    rng = np.random.default_rng(1)
    x_train = rng.standard_normal((200, 1, 4, 4))
    y_train = rng.integers(0, 3, 200)
    xq = x_train[:40] + 0.01 * rng.standard_normal((40, 1, 4, 4))   # near duplicates of training images
    y_true = y_train[:40]
    y_pred = np.where(np.arange(40) % 2 == 0, y_true, (y_true + 1) % 3)   # half right, half wrong
    ex = local_examples(xq, y_true, y_pred, x_train, y_train, k=3)
    assert np.all(y_train[ex.counter_idx] != y_true[:, None])
    assert np.all(y_train[ex.example_idx] == y_true[:, None])
    wrong = y_pred != y_true
    assert np.all(y_train[ex.counter_idx[wrong]] == y_pred[wrong][:, None])
    np.testing.assert_array_equal(ex.example_idx[:, 0], np.arange(40))   # its own near duplicate
    assert np.all(ex.counter_class != y_true)


def test_tag_rule_and_groups():
    typical = np.linspace(1.0, 3.0, 101)                # 90 % quantile 2.8, 95 % quantile 2.9
    tags, rule = tag_mistakes([1.0, 5.0, 2.0, 1.9, 2.85], [3.0, 6.0, 2.1, 2.0, 4.0], typical)
    assert list(tags) == ["underfitting", "noise", "overlapping labels", "overlapping labels", "overlapping labels"]
    assert rule["close_threshold"] == pytest.approx(2.8) and rule["far_threshold"] == pytest.approx(2.9)
    y_true = np.array([0, 1, 1, 2, 1, 0, 1])
    y_pred = np.array([0, 2, 2, 2, 2, 1, 0])
    groups = confusion_groups(y_true, y_pred, ["a", "b", "c"], tags=["noise", "underfitting", "noise",
                                                                    "overlapping labels", "noise"])
    assert [(g["true"], g["pred"], g["count"]) for g in groups] == [(1, 2, 3), (0, 1, 1), (1, 0, 1)]
    np.testing.assert_array_equal(groups[0]["indices"], [1, 2, 4])
    assert groups[0]["tags"] == {"overlapping labels": 0, "noise": 2, "underfitting": 1}
    assert groups[0]["true_name"] == "b" and set(groups[0]["tags"]) == set(TAGS)


def test_explain_mistakes_end_to_end(tmp_path):
    rng = np.random.default_rng(2)
    centres = np.array([[0.0] * 4, [3.0] * 4])
    y_train = np.repeat([0, 1], 50)
    x_train = centres[y_train] + 0.3 * rng.standard_normal((100, 4))
    x_train[0], x_train[50] = 1.4, 1.6                 # the two classes overlap around 1.5
    y_typ = np.repeat([0, 1], 10)                      # 20 correctly classified, typical images
    x_typ = centres[y_typ] + 0.3 * rng.standard_normal((20, 4))
    y_test = np.concatenate([[0, 0, 0], y_typ])
    x_test = np.concatenate([np.stack([centres[0], [1.5] * 4, [40.0] * 4]) + 0.01, x_typ])
    y_pred = np.concatenate([[1, 1, 1], y_typ])        # on a class-0 centre / between the classes / far away
    ex = explain_mistakes(x_test, y_test, y_pred, x_train, y_train, k=2)
    np.testing.assert_array_equal(ex.query, [0, 1, 2])
    assert list(ex.tags) == ["underfitting", "overlapping labels", "noise"]
    order = rank_mistakes(ex)
    assert order[0] == 0
    imgs_q = np.clip(x_test.reshape(-1, 1, 2, 2) / 40, 0, 1)
    imgs_t = np.clip(x_train.reshape(100, 1, 2, 2) / 4, 0, 1)
    plot_explanations(imgs_q, imgs_t, ex, order, ["zero", "one"], path=tmp_path / "ex.png")
    assert (tmp_path / "ex.png").stat().st_size > 0


def test_embed_spaces_and_errors():
    import nnlite.nn as nn
    x = np.random.default_rng(0).uniform(0, 1, (5, 1, 4, 4)).astype(np.float32)
    assert embed(x).shape == (5, 16)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 6, rng=0), nn.ReLU(), nn.Linear(6, 3, rng=0))
    feats = embed(x, "features", model=model, batch_size=2)
    np.testing.assert_allclose(feats, np.maximum(x.reshape(5, 16) @ model[1].weight.data.T + model[1].bias.data, 0),
                               rtol=1e-5)
    with pytest.raises(ValueError, match="space"):
        embed(x, "voxels")
    with pytest.raises(ValueError, match="autoencoder"):
        embed(x, "latent")
    with pytest.raises(ValueError, match="features"):
        knn_of_class(x, np.zeros((3, 5), np.float32), np.zeros(3, int), np.zeros(5, int))
