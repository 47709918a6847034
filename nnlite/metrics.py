"""Classification metrics in pure, vectorized NumPy.

Conventions used throughout this module:

- Class labels are integers in ``[0, C)``; a label array has shape ``(N,)``.
- Scores (logits, probabilities, anything where larger means "more likely") have shape
  ``(N, C)``; a prediction from scores is ``scores.argmax(axis=1)``, so ties go to the
  lowest class index (NumPy's ``argmax`` rule).
- A confusion matrix ``cm`` has shape ``(C, C)`` with **rows = true class** and
  **columns = predicted class**: ``cm[i, j]`` counts samples of class ``i`` predicted as ``j``.
- Wherever a ratio has a zero denominator (precision of a class that is never predicted,
  recall of a class with no samples, F1 when both are zero) the value is defined as ``0.0``,
  silently: no warning is raised and no NaN is produced.

Nothing here imports matplotlib; plotting lives in :mod:`nnlite.viz`.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ._checks import check_int, check_labels

__all__ = [
    "accuracy",
    "top_k_accuracy",
    "confusion_matrix",
    "precision_recall_f1",
    "classification_report",
    "ClassificationReport",
    "format_confusion_matrix",
]


# ----------------------------------------------------------------------------- validation

def _as_labels(y, name: str) -> np.ndarray:
    """``y`` as a 1-D int64 array of labels >= 0 (see ``check_labels``)."""
    return check_labels(y, name=name).astype(np.int64, copy=False)


def _as_scores(s, name: str) -> np.ndarray:
    """Return ``s`` as a real 2-D array of shape (N, C) with C >= 1 and no NaN, or raise."""
    arr = np.asarray(s)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of scores with shape (N, C), "
                         f"got shape {arr.shape} (rank {arr.ndim})")
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.floating)
                                     or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must hold real-valued scores, got dtype {arr.dtype}")
    if arr.shape[1] < 1:
        raise ValueError(f"{name} must have at least one class column, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN; scores must be real numbers (inf is allowed)")
    return arr


def _check_same_length(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{name_a} and {name_b} must have the same number of samples, "
                         f"got {a.shape[0]} and {b.shape[0]}")


def _check_nonempty(n: int, what: str) -> None:
    if n == 0:
        raise ValueError(f"{what} needs at least one sample, got N=0")


def _as_confusion(cm, name: str = "cm") -> np.ndarray:
    arr = np.asarray(cm)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name} must be a square 2-D confusion matrix of shape (C, C), got shape {arr.shape}")
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer)
                                     or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{name} must hold numbers (counts), got dtype {arr.dtype}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} must have at least one class, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ValueError(f"{name} must hold finite numbers, found NaN or inf")
    if (arr < 0).any():
        raise ValueError(f"{name} must hold non-negative counts, found minimum {arr.min()}")
    return arr


def _names(class_names, num_classes: int) -> List[str]:
    """Class names as a list of ``num_classes`` distinct strings (default "0", "1", ...)."""
    if class_names is None:
        return [str(i) for i in range(num_classes)]
    if isinstance(class_names, (str, bytes)):
        raise TypeError("class_names must be a sequence of names, got a single string")
    names = [str(n) for n in class_names]
    if len(names) != num_classes:
        raise ValueError(f"class_names must have one name per class ({num_classes}), got {len(names)}")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"class_names must be distinct, got {dup!r} more than once")
    return names


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Element-wise num / den as float64, with 0.0 wherever den == 0 (no warning)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


# ----------------------------------------------------------------------------- metrics

def accuracy(y_true, y_pred_or_scores) -> float:
    """mean(y_true == y_pred): the fraction of samples whose prediction equals the true label.

    y_true: (N,) int labels >= 0; y_pred_or_scores: (N,) predicted int labels or (N, C)
    scores -> float in [0, 1].  With scores the prediction is ``argmax(axis=1)`` (ties go to
    the lowest class index) and every true label must be in ``[0, C)``. ValueError for a
    wrong rank, different N, N == 0, negative labels, labels >= C with scores or NaN scores;
    TypeError for non-integer labels or non-numeric scores.
    """
    y_true = _as_labels(y_true, "y_true")
    p = np.asarray(y_pred_or_scores)
    if p.ndim == 2:
        scores = _as_scores(p, "y_pred_or_scores")
        _check_same_length(y_true, scores, "y_true", "y_pred_or_scores")
        check_labels(y_true, num_classes=scores.shape[1], name="y_true")
        y_pred = scores.argmax(axis=1)
    elif p.ndim == 1:
        y_pred = _as_labels(p, "y_pred_or_scores")
        _check_same_length(y_true, y_pred, "y_true", "y_pred_or_scores")
    else:
        raise ValueError("y_pred_or_scores must be labels of shape (N,) or scores of shape (N, C), "
                         f"got shape {p.shape} (rank {p.ndim})")
    _check_nonempty(y_true.shape[0], "accuracy")
    return float(np.mean(y_true == y_pred))


def top_k_accuracy(y_true, scores, k: int) -> float:
    """mean over n of [#{j : s[n, j] > s[n, t]} + #{j < t : s[n, j] == s[n, t]} < k], t = y_true[n].

    y_true: (N,) int labels in [0, C); scores: (N, C) real class scores (logits or
    probabilities); k: int, 1 <= k <= C -> float in [0, 1].  The fraction of samples whose
    true class is among the ``k`` highest-scoring classes, ranked by decreasing score with
    ties broken by increasing class index (the ``argmax`` rule), so
    ``top_k_accuracy(y, s, 1) == accuracy(y, s)`` exactly and ``k == C`` always gives 1.0.
    """
    y_true = _as_labels(y_true, "y_true")
    s = _as_scores(scores, "scores")
    _check_same_length(y_true, s, "y_true", "scores")
    n, c = s.shape
    k = check_int(k, "k")
    if k > c:
        raise ValueError(f"k must be at most the number of classes C={c}, got k={k}")
    _check_nonempty(n, "top_k_accuracy")
    check_labels(y_true, num_classes=c, name="y_true")
    true_score = s[np.arange(n), y_true][:, None]                      # (N, 1)
    higher = (s > true_score).sum(axis=1)                              # strictly better classes
    lower_index = np.arange(c)[None, :] < y_true[:, None]              # (N, C)
    tied_before = ((s == true_score) & lower_index).sum(axis=1)        # ties ranked first
    return float(np.mean(higher + tied_before < k))


def confusion_matrix(y_true, y_pred, num_classes: Optional[int] = None) -> np.ndarray:
    """cm[i, j] = #{n : y_true[n] == i and y_pred[n] == j}.

    y_true, y_pred: (N,) int labels >= 0; num_classes: int C or None
    -> cm: (C, C) int64, rows = true class, columns = predicted class, ``cm.sum() == N``.
    For scores (N, C) pass ``scores.argmax(axis=1)``. ``num_classes`` defaults to
    ``max(y_true.max(), y_pred.max()) + 1``; when given, every label must be below it
    (classes that never occur get zero rows/columns).
    """
    y_true = _as_labels(y_true, "y_true")
    y_pred = _as_labels(y_pred, "y_pred")
    _check_same_length(y_true, y_pred, "y_true", "y_pred")
    if num_classes is None:
        _check_nonempty(y_true.shape[0], "confusion_matrix without num_classes")
        c = int(max(y_true.max(), y_pred.max())) + 1
    else:
        c = check_int(num_classes, "num_classes")
        check_labels(y_true, num_classes=c, name="y_true")
        check_labels(y_pred, num_classes=c, name="y_pred")
    flat = np.bincount(y_true * c + y_pred, minlength=c * c)
    return flat.reshape(c, c).astype(np.int64, copy=False)


def precision_recall_f1(cm) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """precision_i = tp / predicted, recall_i = tp / actual, F1_i = 2 tp / (predicted + actual).

    cm: (C, C) non-negative counts (int or float, e.g. sample-weighted), rows true, columns
    predicted -> (precision, recall, f1): three float64 arrays of shape (C,).
    For class ``i``: ``tp = cm[i, i]``, ``predicted = cm[:, i].sum()``,
    ``actual = cm[i, :].sum()``; F1 is the harmonic mean of precision and recall. A zero
    denominator gives 0.0 (a class never predicted has precision 0; a class with no samples
    has recall 0; both zero gives F1 0), without warnings.
    """
    cm = _as_confusion(cm)
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    actual = cm.sum(axis=1).astype(np.float64)
    precision = _safe_divide(tp, predicted)
    recall = _safe_divide(tp, actual)
    f1 = _safe_divide(2.0 * tp, predicted + actual)
    return precision, recall, f1


# ----------------------------------------------------------------------------- report

_AVG_NAMES = ("macro avg", "weighted avg")


class ClassificationReport:
    """Per-class precision / recall / F1 / support plus accuracy, macro and weighted averages.

    Build it with :func:`classification_report`. Attributes (``C`` = number of classes):

    - ``class_names`` : list of C str
    - ``precision``, ``recall``, ``f1`` : float64 arrays of shape (C,)
    - ``support`` : int64 array of shape (C,), the number of true samples of each class
    - ``confusion`` : int64 array of shape (C, C), rows true, columns predicted
    - ``accuracy`` : float, ``trace(confusion) / N``
    - ``macro`` : dict with "precision", "recall", "f1" = unweighted mean over all C classes
      (classes with no samples and no predictions count with 0), and "support" = N
    - ``weighted`` : dict, the same means weighted by ``support``, and "support" = N

    ``str(report)`` / ``report.table()`` give a fixed-width text table, ``report.to_markdown()``
    a Markdown table, and ``report.to_dict()`` a JSON-serializable dict of plain Python
    floats, ints, strings and lists.
    """

    def __init__(self, confusion: np.ndarray, class_names: Sequence[str]):
        cm = _as_confusion(confusion, "confusion")
        names = _names(class_names, cm.shape[0])
        n = cm.sum()
        if n <= 0:
            raise ValueError("a classification report needs at least one sample, got an all-zero confusion matrix")
        self.confusion = cm
        self.class_names = names
        self.precision, self.recall, self.f1 = precision_recall_f1(cm)
        self.support = cm.sum(axis=1)
        self.accuracy = float(np.trace(cm) / n)
        w = self.support / n
        total = int(n) if np.issubdtype(cm.dtype, np.integer) else float(n)
        self.macro = {"precision": float(self.precision.mean()), "recall": float(self.recall.mean()),
                      "f1": float(self.f1.mean()), "support": total}
        self.weighted = {"precision": float(w @ self.precision), "recall": float(w @ self.recall),
                         "f1": float(w @ self.f1), "support": total}

    @property
    def num_classes(self) -> int:
        """Number of classes C."""
        return len(self.class_names)

    @property
    def total(self):
        """Total number of samples N (the sum of the supports)."""
        return self.macro["support"]

    def to_dict(self) -> Dict:
        """JSON-serializable summary (plain floats, ints, str and lists only).

        Layout::

            {"class_names": [...],
             "per_class": {name: {"precision": f, "recall": f, "f1": f, "support": n}, ...},
             "accuracy": f,
             "macro avg": {"precision": f, "recall": f, "f1": f, "support": N},
             "weighted avg": {...same keys...},
             "support": N,
             "confusion_matrix": [[...], ...]}   # rows true, columns predicted
        """
        def num(v):
            return int(v) if np.issubdtype(np.asarray(v).dtype, np.integer) else float(v)

        per_class = {
            name: {"precision": float(self.precision[i]), "recall": float(self.recall[i]),
                   "f1": float(self.f1[i]), "support": num(self.support[i])}
            for i, name in enumerate(self.class_names)
        }
        return {
            "class_names": list(self.class_names),
            "per_class": per_class,
            "accuracy": self.accuracy,
            "macro avg": dict(self.macro),
            "weighted avg": dict(self.weighted),
            "support": self.total,
            "confusion_matrix": [[num(v) for v in row] for row in self.confusion],
        }

    def _rows(self, digits: int):
        f = f"{{:.{digits}f}}"
        rows = [(name, f.format(self.precision[i]), f.format(self.recall[i]), f.format(self.f1[i]),
                 _fmt_count(self.support[i])) for i, name in enumerate(self.class_names)]
        summary = [("accuracy", "", "", f.format(self.accuracy), _fmt_count(self.total))]
        for label, d in zip(_AVG_NAMES, (self.macro, self.weighted)):
            summary.append((label, f.format(d["precision"]), f.format(d["recall"]),
                            f.format(d["f1"]), _fmt_count(d["support"])))
        return rows, summary

    def table(self, digits: int = 2) -> str:
        """Fixed-width text table: one row per class, then accuracy, macro avg and weighted avg.

        ``digits`` is the number of decimals shown for the ratios (>= 0).
        """
        digits = check_int(digits, "digits", minimum=0)
        rows, summary = self._rows(digits)
        header = ("precision", "recall", "f1-score", "support")
        name_w = max(len(r[0]) for r in rows + summary)
        col_w = max(max(len(h) for h in header), *(len(v) for r in rows + summary for v in r[1:])) + 1

        def line(cells):
            return cells[0].rjust(name_w) + "".join(c.rjust(col_w) for c in cells[1:])

        out = [line(("",) + header), ""]
        out += [line(r) for r in rows]
        out.append("")
        out += [line(r) for r in summary]
        return "\n".join(out) + "\n"

    def to_markdown(self, digits: int = 2) -> str:
        """The same table as :meth:`table` in Markdown (for ``report.md`` files)."""
        digits = check_int(digits, "digits", minimum=0)
        rows, summary = self._rows(digits)

        def esc(s):
            return s.replace("|", "\\|")

        out = ["| class | precision | recall | f1-score | support |",
               "|---|---:|---:|---:|---:|"]
        out += ["| " + " | ".join([esc(r[0])] + list(r[1:])) + " |" for r in rows]
        out += ["| **" + r[0] + "** | " + " | ".join(r[1:]) + " |" for r in summary]
        return "\n".join(out) + "\n"

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return (f"ClassificationReport(num_classes={self.num_classes}, support={self.total}, "
                f"accuracy={self.accuracy:.4f}, macro_f1={self.macro['f1']:.4f})")


def _fmt_count(v) -> str:
    v = np.asarray(v)
    if np.issubdtype(v.dtype, np.integer):
        return str(int(v))
    return f"{float(v):g}"


def classification_report(y_true, y_pred, class_names: Optional[Sequence[str]] = None,
                          num_classes: Optional[int] = None) -> ClassificationReport:
    """Per-class precision, recall, F1 and support, with accuracy and macro / weighted averages.

    y_true, y_pred: (N,) int labels, N >= 1; class_names: sequence of C distinct str or None
    (default "0", "1", ...; its length fixes C); num_classes: int C or None (used when
    ``class_names`` is not given, default ``max label + 1``; if both are given they must
    agree) -> ClassificationReport.  For scores (N, C) pass ``scores.argmax(axis=1)``.
    ``print(report)`` shows a table like scikit-learn's ``classification_report``;
    ``report.to_dict()`` is JSON-serializable. Zero-division cases are 0.0 (see the module
    docstring); macro averages are over all C classes.
    """
    if class_names is not None:
        if isinstance(class_names, (str, bytes)):
            raise TypeError("class_names must be a sequence of names, got a single string")
        c = len(class_names)
        if num_classes is not None and num_classes != c:
            raise ValueError(f"num_classes={num_classes} disagrees with len(class_names)={c}")
        num_classes = c
    yt = _as_labels(y_true, "y_true")
    _check_nonempty(yt.shape[0], "classification_report")
    cm = confusion_matrix(yt, y_pred, num_classes=num_classes)
    return ClassificationReport(cm, _names(class_names, cm.shape[0]))


def format_confusion_matrix(cm, class_names: Optional[Sequence[str]] = None) -> str:
    """Render a confusion matrix as a fixed-width text table.

    cm: (C, C) non-negative counts or fractions; class_names: C distinct str or None
    (default "0", "1", ...) -> str, one line per true class plus a header line, ending in a
    newline.  Rows are true classes, columns predicted classes; the top-left cell reads
    ``true \\ pred``. Integer matrices print as integers, float matrices (e.g.
    row-normalized) with 3 decimals.
    """
    cm = _as_confusion(cm)
    names = _names(class_names, cm.shape[0])
    if np.issubdtype(cm.dtype, np.integer):
        cells = [[str(int(v)) for v in row] for row in cm]
    else:
        cells = [[f"{float(v):.3f}" for v in row] for row in cm]
    corner = "true \\ pred"
    first_w = max(len(corner), *(len(n) for n in names))
    col_w = [max(len(names[j]), *(len(row[j]) for row in cells)) + 2 for j in range(len(names))]
    lines = [corner.ljust(first_w) + "".join(n.rjust(w) for n, w in zip(names, col_w))]
    for name, row in zip(names, cells):
        lines.append(name.ljust(first_w) + "".join(v.rjust(w) for v, w in zip(row, col_w)))
    return "\n".join(lines) + "\n"
