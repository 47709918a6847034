"""Tests of nnlite.metrics against independent loop computations and hand-worked examples."""
import json
import warnings

import numpy as np
import pytest

from nnlite import metrics as M

SEEDS = [0, 1, 2, 3, 4]


# ----------------------------------------------------------------------------- loop references

def ref_accuracy(y, p):
    hits = 0
    for a, b in zip(y, p):
        hits += int(a == b)
    return hits / len(y)


def ref_top_k(y, scores, k):
    """Rank by decreasing score, ties by increasing index, using Python's sort."""
    hits = 0
    for row, t in zip(scores, y):
        order = sorted(range(len(row)), key=lambda j: (-row[j], j))
        hits += int(t in order[:k])
    return hits / len(y)


def ref_confusion(y, p, c):
    cm = [[0] * c for _ in range(c)]
    for a, b in zip(y, p):
        cm[a][b] += 1
    return np.array(cm)


def ref_prf(cm):
    c = len(cm)
    prec, rec, f1 = [], [], []
    for i in range(c):
        tp = cm[i][i]
        col = sum(cm[r][i] for r in range(c))
        row = sum(cm[i][r] for r in range(c))
        p = tp / col if col else 0.0
        r = tp / row if row else 0.0
        f = 2 * p * r / (p + r) if (p + r) else 0.0
        prec.append(p)
        rec.append(r)
        f1.append(f)
    return np.array(prec), np.array(rec), np.array(f1)


def random_case(seed):
    rng = np.random.default_rng(seed)
    c = int(rng.integers(2, 9))
    n = int(rng.integers(1, 300))
    y = rng.integers(0, c, size=n)
    # mostly right, sometimes wrong: realistic and exercises every cell
    p = np.where(rng.random(n) < 0.6, y, rng.integers(0, c, size=n))
    scores = rng.standard_normal((n, c))
    return rng, c, n, y, p, scores


# ----------------------------------------------------------------------------- random vs loops

@pytest.mark.parametrize("seed", SEEDS)
def test_accuracy_matches_loop(seed):
    _, c, n, y, p, scores = random_case(seed)
    assert M.accuracy(y, p) == pytest.approx(ref_accuracy(y, p))
    pred_from_scores = [max(range(c), key=lambda j: (row[j], -j)) for row in scores]
    assert M.accuracy(y, scores) == pytest.approx(ref_accuracy(y, pred_from_scores))


@pytest.mark.parametrize("seed", SEEDS)
def test_top_k_matches_loop(seed):
    _, c, n, y, p, scores = random_case(seed)
    for k in range(1, c + 1):
        assert M.top_k_accuracy(y, scores, k) == pytest.approx(ref_top_k(y, scores, k))
    assert M.top_k_accuracy(y, scores, c) == 1.0


@pytest.mark.parametrize("seed", SEEDS)
def test_top_k_with_ties_matches_loop_and_accuracy(seed):
    rng = np.random.default_rng(100 + seed)
    c, n = 5, 200
    y = rng.integers(0, c, size=n)
    scores = rng.integers(0, 3, size=(n, c)).astype(np.float64)   # many ties
    for k in range(1, c + 1):
        assert M.top_k_accuracy(y, scores, k) == pytest.approx(ref_top_k(y, scores, k))
    assert M.top_k_accuracy(y, scores, 1) == M.accuracy(y, scores)


@pytest.mark.parametrize("seed", SEEDS)
def test_top_k_is_monotone_in_k(seed):
    _, c, n, y, p, scores = random_case(seed)
    vals = [M.top_k_accuracy(y, scores, k) for k in range(1, c + 1)]
    assert all(a <= b for a, b in zip(vals, vals[1:]))


@pytest.mark.parametrize("seed", SEEDS)
def test_confusion_matrix_matches_loop(seed):
    _, c, n, y, p, _ = random_case(seed)
    cm = M.confusion_matrix(y, p, num_classes=c)
    np.testing.assert_array_equal(cm, ref_confusion(y, p, c))
    assert cm.dtype == np.int64 and cm.shape == (c, c) and cm.sum() == n
    inferred = M.confusion_matrix(y, p)
    k = int(max(y.max(), p.max())) + 1
    np.testing.assert_array_equal(inferred, ref_confusion(y, p, k))


@pytest.mark.parametrize("seed", SEEDS)
def test_precision_recall_f1_matches_loop(seed):
    _, c, n, y, p, _ = random_case(seed)
    cm = ref_confusion(y, p, c)
    got = M.precision_recall_f1(cm)
    for g, r in zip(got, ref_prf(cm.tolist())):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-15)
        assert g.dtype == np.float64 and g.shape == (c,)


@pytest.mark.parametrize("seed", SEEDS)
def test_report_matches_loop(seed):
    _, c, n, y, p, _ = random_case(seed)
    rep = M.classification_report(y, p, num_classes=c)
    cm = ref_confusion(y, p, c)
    prec, rec, f1 = ref_prf(cm.tolist())
    support = [sum(1 for t in y if t == i) for i in range(c)]
    np.testing.assert_allclose(rep.precision, prec)
    np.testing.assert_allclose(rep.recall, rec)
    np.testing.assert_allclose(rep.f1, f1)
    np.testing.assert_array_equal(rep.support, support)
    assert rep.accuracy == pytest.approx(ref_accuracy(y, p))
    assert rep.macro["precision"] == pytest.approx(sum(prec) / c)
    assert rep.macro["recall"] == pytest.approx(sum(rec) / c)
    assert rep.macro["f1"] == pytest.approx(sum(f1) / c)
    for key, vals in (("precision", prec), ("recall", rec), ("f1", f1)):
        expect = sum(v * s for v, s in zip(vals, support)) / n
        assert rep.weighted[key] == pytest.approx(expect)
    assert rep.macro["support"] == n and rep.weighted["support"] == n
    # weighted recall is accuracy (a known identity)
    assert rep.weighted["recall"] == pytest.approx(rep.accuracy)


# ----------------------------------------------------------------------------- hand-worked examples

def test_hand_example():
    y = [0, 0, 1, 2, 2, 2]
    p = [0, 1, 1, 2, 2, 0]
    cm = M.confusion_matrix(y, p)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    prec, rec, f1 = M.precision_recall_f1(cm)
    np.testing.assert_allclose(prec, [1 / 2, 1 / 2, 1.0])
    np.testing.assert_allclose(rec, [1 / 2, 1.0, 2 / 3])
    np.testing.assert_allclose(f1, [1 / 2, 2 / 3, 4 / 5])
    assert M.accuracy(y, p) == pytest.approx(4 / 6)
    rep = M.classification_report(y, p, class_names=["a", "b", "c"])
    assert rep.macro["precision"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert rep.weighted["f1"] == pytest.approx((2 * 0.5 + 1 * 2 / 3 + 3 * 0.8) / 6)


def test_top_k_hand_example():
    scores = np.array([[0.1, 0.5, 0.4],
                       [0.3, 0.3, 0.4]])
    y = np.array([2, 1])
    # sample 0: ranking 1, 2, 0 -> true class 2 is second
    # sample 1: ranking 2, 0, 1 (tie 0/1 broken by index) -> true class 1 is third
    assert M.top_k_accuracy(y, scores, 1) == 0.0
    assert M.top_k_accuracy(y, scores, 2) == 0.5
    assert M.top_k_accuracy(y, scores, 3) == 1.0


def test_accuracy_with_scores_ties_go_to_lowest_index():
    scores = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0]])
    assert M.accuracy([0, 1], scores) == 1.0
    assert M.accuracy([1, 2], scores) == 0.0


def test_confusion_matrix_num_classes_pads():
    cm = M.confusion_matrix([0, 1], [1, 1], num_classes=4)
    expect = np.zeros((4, 4), dtype=int)
    expect[0, 1] = 1
    expect[1, 1] = 1
    np.testing.assert_array_equal(cm, expect)


def test_confusion_matrix_empty_with_num_classes():
    cm = M.confusion_matrix(np.array([], dtype=int), np.array([], dtype=int), num_classes=3)
    np.testing.assert_array_equal(cm, np.zeros((3, 3)))


def test_float_confusion_matrix_accepted():
    cm = np.array([[2.5, 0.5], [0.0, 1.0]])
    prec, rec, f1 = M.precision_recall_f1(cm)
    np.testing.assert_allclose(prec, [1.0, 1.0 / 1.5])
    np.testing.assert_allclose(rec, [2.5 / 3.0, 1.0])


# ----------------------------------------------------------------------------- zero division

def test_class_never_predicted_gives_zero_without_warnings():
    y = np.array([0, 1, 2, 2])
    p = np.array([0, 1, 1, 1])          # class 2 is never predicted
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prec, rec, f1 = M.precision_recall_f1(M.confusion_matrix(y, p))
        rep = M.classification_report(y, p)
        str(rep)
    assert prec[2] == 0.0 and rec[2] == 0.0 and f1[2] == 0.0
    assert np.isfinite(rep.precision).all() and rep.precision[2] == 0.0


def test_class_without_samples_gives_zero_recall_without_warnings():
    y = np.array([0, 0, 1])
    p = np.array([0, 2, 1])             # class 2 has no samples but is predicted once
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prec, rec, f1 = M.precision_recall_f1(M.confusion_matrix(y, p, num_classes=4))
    np.testing.assert_array_equal(rec, [0.5, 1.0, 0.0, 0.0])
    np.testing.assert_array_equal(prec, [1.0, 1.0, 0.0, 0.0])
    np.testing.assert_array_equal(f1[2:], [0.0, 0.0])
    assert not np.isnan(f1).any()


def test_all_zero_confusion_matrix_is_all_zero_metrics():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for arr in M.precision_recall_f1(np.zeros((3, 3), dtype=int)):
            np.testing.assert_array_equal(arr, 0.0)


# ----------------------------------------------------------------------------- report output

def test_report_to_dict_is_json_and_plain():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 4, 50)
    p = rng.integers(0, 4, 50)
    names = ["forest", "river", "sea lake", "highway"]
    rep = M.classification_report(y, p, class_names=names)
    d = rep.to_dict()
    back = json.loads(json.dumps(d))
    assert back == d
    assert back["class_names"] == names
    assert set(back["per_class"]) == set(names)
    for i, name in enumerate(names):
        entry = back["per_class"][name]
        assert type(entry["support"]) is int
        assert entry["precision"] == pytest.approx(rep.precision[i])
        assert entry["f1"] == pytest.approx(rep.f1[i])
    assert type(back["accuracy"]) is float and back["accuracy"] == pytest.approx(rep.accuracy)
    assert back["support"] == 50
    assert back["confusion_matrix"] == M.confusion_matrix(y, p, 4).tolist()

    def plain(o):
        if isinstance(o, dict):
            return all(isinstance(k, str) and plain(v) for k, v in o.items())
        if isinstance(o, list):
            return all(plain(v) for v in o)
        return type(o) in (int, float, str)
    assert plain(d)


def test_report_table_readable():
    y = [0, 0, 1, 2, 2, 2]
    p = [0, 1, 1, 2, 2, 0]
    rep = M.classification_report(y, p, class_names=["forest", "river", "industrial"])
    text = str(rep)
    assert text == rep.table()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    by_name = {ln.split()[0]: ln.split()[1:] for ln in lines[1:4]}
    assert by_name["forest"] == ["0.50", "0.50", "0.50", "2"]
    assert by_name["river"] == ["0.50", "1.00", "0.67", "1"]
    assert by_name["industrial"] == ["1.00", "0.67", "0.80", "3"]
    assert lines[4].split() == ["accuracy", "0.67", "6"]
    assert lines[5].split()[:2] == ["macro", "avg"]
    assert lines[6].split()[:2] == ["weighted", "avg"]
    # columns line up: every row has the same width
    assert len({len(ln) for ln in lines}) == 1
    assert "0.6667" in rep.table(digits=4)
    md = rep.to_markdown()
    assert md.count("\n") == 2 + 3 + 3 and "| forest | 0.50 | 0.50 | 0.50 | 2 |" in md
    assert "ClassificationReport" in repr(rep)


def test_format_confusion_matrix_round_trips():
    rng = np.random.default_rng(3)
    cm = rng.integers(0, 500, size=(4, 4))
    names = ["a", "bb", "a long name", "d"]
    text = M.format_confusion_matrix(cm, names)
    lines = text.splitlines()
    assert len(lines) == 5 and lines[0].startswith("true \\ pred")
    assert lines[0][len("true \\ pred"):].split() == ["a", "bb", "a", "long", "name", "d"]
    for i, name in enumerate(names):
        assert lines[1 + i].startswith(name)
        nums = [int(v) for v in lines[1 + i][len(name):].split()]
        assert nums == cm[i].tolist()
    default = M.format_confusion_matrix(cm)
    assert default.splitlines()[1].split() == ["0"] + [str(v) for v in cm[0]]
    frac = M.format_confusion_matrix(cm / cm.sum(axis=1, keepdims=True))
    vals = np.array([[float(v) for v in ln.split()[1:]] for ln in frac.splitlines()[1:]])
    np.testing.assert_allclose(vals, cm / cm.sum(axis=1, keepdims=True), atol=5e-4)


# ----------------------------------------------------------------------------- scikit-learn, optional

@pytest.mark.parametrize("seed", SEEDS)
def test_against_sklearn(seed):
    skm = pytest.importorskip("sklearn.metrics")
    _, c, n, y, p, scores = random_case(seed)
    labels = np.arange(c)
    assert M.accuracy(y, p) == pytest.approx(skm.accuracy_score(y, p))
    np.testing.assert_array_equal(M.confusion_matrix(y, p, c), skm.confusion_matrix(y, p, labels=labels))
    pr, rc, f1, sup = skm.precision_recall_fscore_support(y, p, labels=labels, zero_division=0)
    rep = M.classification_report(y, p, num_classes=c)
    np.testing.assert_allclose(rep.precision, pr)
    np.testing.assert_allclose(rep.recall, rc)
    np.testing.assert_allclose(rep.f1, f1)
    np.testing.assert_array_equal(rep.support, sup)
    d = skm.classification_report(y, p, labels=labels, zero_division=0, output_dict=True)
    assert rep.macro["f1"] == pytest.approx(d["macro avg"]["f1-score"])
    assert rep.weighted["precision"] == pytest.approx(d["weighted avg"]["precision"])
    if c > 2:
        for k in range(1, c):
            assert M.top_k_accuracy(y, scores, k) == pytest.approx(
                skm.top_k_accuracy_score(y, scores, k=k, labels=labels))


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("call, exc", [
    (lambda: M.accuracy([0, 1, 2], [0, 1]), ValueError),                       # lengths differ
    (lambda: M.accuracy([[0, 1]], [0, 1]), ValueError),                        # y_true rank 2
    (lambda: M.accuracy([0, 1], np.zeros((2, 2, 2))), ValueError),             # rank 3
    (lambda: M.accuracy([0.0, 1.0], [0, 1]), TypeError),                       # float labels
    (lambda: M.accuracy([0, -1], [0, 1]), ValueError),                         # negative label
    (lambda: M.accuracy([0, 3], np.zeros((2, 3))), ValueError),                # label >= C
    (lambda: M.accuracy([0, 1], np.full((2, 2), np.nan)), ValueError),         # NaN scores
    (lambda: M.accuracy([], []), ValueError),                                  # empty
    (lambda: M.top_k_accuracy([0, 1], np.zeros((2, 3)), -1), ValueError),      # negative k
    (lambda: M.top_k_accuracy([0, 1], np.zeros((2, 3)), 0), ValueError),       # k = 0
    (lambda: M.top_k_accuracy([0, 1], np.zeros((2, 3)), 4), ValueError),       # k > C
    (lambda: M.top_k_accuracy([0, 1], np.zeros((2, 3)), 1.5), TypeError),     # k not int
    (lambda: M.top_k_accuracy([0, 1], np.zeros(3), 1), ValueError),            # scores rank 1
    (lambda: M.top_k_accuracy([0, 1, 2], np.zeros((2, 3)), 1), ValueError),    # lengths differ
    (lambda: M.top_k_accuracy([0, 5], np.zeros((2, 3)), 1), ValueError),       # label >= C
    (lambda: M.confusion_matrix([0, 1], [0, 1, 1]), ValueError),
    (lambda: M.confusion_matrix([0, 3], [0, 1], num_classes=3), ValueError),
    (lambda: M.confusion_matrix([0, 1], [0, 3], num_classes=3), ValueError),
    (lambda: M.confusion_matrix([0, 1], [0, 1], num_classes=0), ValueError),
    (lambda: M.confusion_matrix([], []), ValueError),
    (lambda: M.confusion_matrix([0, 1], np.zeros((2, 2))), ValueError),        # scores, not labels
    (lambda: M.precision_recall_f1(np.zeros((2, 3))), ValueError),             # not square
    (lambda: M.precision_recall_f1(np.zeros(3)), ValueError),
    (lambda: M.precision_recall_f1(-np.ones((2, 2))), ValueError),
    (lambda: M.precision_recall_f1(np.array([["a"]])), TypeError),
    (lambda: M.classification_report([0, 1], [0, 1], class_names=["a"]), ValueError),
    (lambda: M.classification_report([0, 1], [0, 1], class_names=["a", "a"]), ValueError),
    (lambda: M.classification_report([0, 1], [0, 1], class_names="ab"), TypeError),
    (lambda: M.classification_report([0, 1], [0, 1], class_names=["a", "b"], num_classes=3), ValueError),
    (lambda: M.classification_report([], []), ValueError),
    (lambda: M.classification_report([0, 1], [0, 1]).table(digits=-1), ValueError),
    (lambda: M.format_confusion_matrix(np.zeros((2, 2), int), ["a", "b", "c"]), ValueError),
    (lambda: M.format_confusion_matrix(np.zeros((2, 3), int)), ValueError),
])
def test_bad_input_raises(call, exc):
    with pytest.raises(exc):
        call()


def test_error_messages_name_expected_and_given():
    with pytest.raises(ValueError, match=r"same number of samples.*3 and 2"):
        M.accuracy([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match=r"k must be >= 1, got -2"):
        M.top_k_accuracy([0], np.zeros((1, 2)), -2)
    with pytest.raises(ValueError, match=r"label 3.*\[0, 2\]"):
        M.confusion_matrix([0, 3], [0, 1], num_classes=3)
