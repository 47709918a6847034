"""Nearest-neighbour explanations of a classifier's mistakes: local examples and counterexamples.

For a test image x with true class t and predicted class p, its **local example** is its
nearest training image of class t, its **local counterexample** its nearest training image of
class p (for a correctly classified image: of the nearest other class, so the counterexample
is never of the query's own class). Distances are Euclidean in a chosen space: pixels, a
classifier's penultimate features, or an autoencoder's latent codes (see ``embed``).

All searches are batched: squared distances ||q||^2 - 2 q.r + ||r||^2 for a chunk of queries
against all reference rows of one class at a time (one GEMM per chunk and class, at most
``chunk_bytes`` of distances alive), then ``argpartition`` for the k smallest. 10,000 x 60,000
pairs never exist at once. Loops run over classes and chunks only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._checks import check_float_array, check_int

CHUNK_BYTES = 64 * 2**20


def _as_matrix(x, name):
    check_float_array(x, name)
    if x.ndim < 2:
        raise ValueError(f"{name} must have a sample axis and features, got shape {x.shape}")
    return x.reshape(x.shape[0], -1)


def knn_of_class(queries, refs, ref_labels, wanted, k: int = 1, exclude: bool = False,
                 chunk_bytes: int = CHUNK_BYTES):
    """k nearest reference rows of a given class for every query (Euclidean, batched).

    queries: (M, ...) float; refs: (R, ...) float (same features); ref_labels: (R,) ints;
    wanted: (M,) ints, the class to search for each query; ``exclude=True`` searches every
    class EXCEPT ``wanted[i]`` instead. -> (idx (M, k) int64 indices into refs, dist (M, k)
    float64), sorted by distance; -1 / inf where the class has fewer than k rows.
    """
    q, r = _as_matrix(queries, "queries"), _as_matrix(refs, "refs")
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"queries and refs must have the same number of features, got {q.shape[1]} and {r.shape[1]}")
    ref_labels, wanted = np.asarray(ref_labels), np.asarray(wanted)
    if ref_labels.shape != (r.shape[0],) or not np.issubdtype(ref_labels.dtype, np.integer):
        raise ValueError(f"ref_labels must be {r.shape[0]} integer labels, got {ref_labels.dtype} {ref_labels.shape}")
    if wanted.shape != (q.shape[0],) or not np.issubdtype(wanted.dtype, np.integer):
        raise ValueError(f"wanted must be {q.shape[0]} integer labels, got {wanted.dtype} {wanted.shape}")
    k = check_int(k, "k")
    m = q.shape[0]
    idx = np.full((m, k), -1, dtype=np.int64)
    dist = np.full((m, k), np.inf)
    r64, q64 = r.astype(np.float64), q.astype(np.float64)   # distances in float64: no cancellation surprises
    r_sq = np.einsum("ij,ij->i", r64, r64)
    for c in np.unique(wanted):
        rows = np.flatnonzero(wanted == c)
        cols = np.flatnonzero(ref_labels != c) if exclude else np.flatnonzero(ref_labels == c)
        if cols.size == 0:
            continue
        kk = min(k, cols.size)
        rc, rc_sq = r64[cols], r_sq[cols]
        step = max(1, chunk_bytes // (8 * cols.size))
        for s in range(0, rows.size, step):
            qi = rows[s:s + step]
            qc = q64[qi]
            d2 = np.einsum("ij,ij->i", qc, qc)[:, None] - 2.0 * (qc @ rc.T) + rc_sq[None, :]
            np.maximum(d2, 0.0, out=d2)
            part = np.argpartition(d2, kk - 1, axis=1)[:, :kk] if kk < cols.size else np.tile(
                np.arange(cols.size), (qi.size, 1))
            pd = np.take_along_axis(d2, part, axis=1)
            order = np.argsort(pd, axis=1, kind="stable")
            idx[qi, :kk] = cols[np.take_along_axis(part, order, axis=1)]
            dist[qi, :kk] = np.sqrt(np.take_along_axis(pd, order, axis=1))
    return idx, dist


@dataclass
class Explanations:
    """Local examples/counterexamples of queries (indices into the queries and the training set).

    query: (M,) indices of the explained queries; true, pred: (M,) labels; counter_class: (M,)
    class searched for the counterexample (pred, or the nearest other class when pred == true);
    example_idx/example_dist, counter_idx/counter_dist: (M, k); tags: (M,) str (``tag_mistakes``).
    """
    query: np.ndarray
    true: np.ndarray
    pred: np.ndarray
    counter_class: np.ndarray
    example_idx: np.ndarray
    example_dist: np.ndarray
    counter_idx: np.ndarray
    counter_dist: np.ndarray
    space: str = "pixels"
    tags: np.ndarray = None
    rule: dict = field(default_factory=dict)

    def __len__(self):
        return self.query.size


def local_examples(q_feats, y_true, y_pred, train_feats, y_train, k: int = 1, space: str = "pixels",
                   chunk_bytes: int = CHUNK_BYTES) -> Explanations:
    """Local examples (true class) and counterexamples (predicted class; for a correct
    prediction the nearest training image of any OTHER class) of every query.

    q_feats: (M, ...) features of the queries (pixels, penultimate features or latent codes);
    y_true, y_pred: (M,) ints; train_feats: (R, ...) same space; y_train: (R,) ints.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.shape != (q_feats.shape[0],):
        raise ValueError(f"y_true and y_pred must be ({q_feats.shape[0]},), got {y_true.shape} and {y_pred.shape}")
    ex_idx, ex_d = knn_of_class(q_feats, train_feats, y_train, y_true, k, chunk_bytes=chunk_bytes)
    ct_idx, ct_d = knn_of_class(q_feats, train_feats, y_train, y_pred, k, chunk_bytes=chunk_bytes)
    right = y_pred == y_true
    if right.any():                       # correct queries: counterexample from any other class
        oi, od = knn_of_class(q_feats[right], train_feats, y_train, y_true[right], k, exclude=True,
                              chunk_bytes=chunk_bytes)
        ct_idx[right], ct_d[right] = oi, od
    counter_class = np.where(right, np.asarray(y_train)[ct_idx[:, 0]], y_pred)
    return Explanations(np.arange(y_true.size), y_true.copy(), y_pred.copy(), counter_class,
                        ex_idx, ex_d, ct_idx, ct_d, space)


def explain_mistakes(q_feats, y_true, y_pred, train_feats, y_train, k: int = 1, space: str = "pixels",
                     chunk_bytes: int = CHUNK_BYTES, **rule) -> Explanations:
    """``local_examples`` of the MISCLASSIFIED queries only (``query`` holds their indices),
    tagged by ``tag_mistakes`` (keyword arguments go to the rule). The rule's distance scale
    comes from the correctly classified queries' local-example distances (their distance to
    their own class), so it is measured in the same space."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    wrong = np.flatnonzero(y_true != y_pred)
    right = np.flatnonzero(y_true == y_pred)
    ex = local_examples(q_feats[wrong], y_true[wrong], y_pred[wrong], train_feats, y_train, k, space, chunk_bytes)
    ex.query = wrong
    if right.size:
        ref = right if right.size <= 2000 else right[np.linspace(0, right.size - 1, 2000).astype(int)]
        _, typical = knn_of_class(q_feats[ref], train_feats, y_train, y_true[ref], 1, chunk_bytes=chunk_bytes)
        typical = typical[:, 0]
    else:
        typical = ex.example_dist[:, 0]
    ex.tags, ex.rule = tag_mistakes(ex.example_dist[:, 0], ex.counter_dist[:, 0], typical, **rule)
    return ex


TAGS = ("overlapping labels", "noise", "underfitting")


def tag_mistakes(d_example, d_counter, typical, far_quantile: float = 0.95, close_quantile: float = 0.9,
                 margin: float = 0.8):
    """The documented rule tagging each mistake (d_e: distance to its local example, d_c: to its
    local counterexample; ``typical``: nearest-own-class distances of correctly classified images):

    1. **noise** if min(d_e, d_c) > the ``far_quantile`` (95 %) of ``typical``: the image is far
       from every training image of both classes, unlike almost any correctly classified image;
    2. **underfitting** if d_e <= the ``close_quantile`` (90 %) of ``typical`` AND
       d_e < ``margin`` * d_c: a training image of the true class is as close as for correctly
       classified images and clearly closer than any of the predicted class, so a model that
       fitted its training data better would be right;
    3. **overlapping labels** otherwise: training images of both classes lie about equally close
       (the classes overlap there; often the label itself is debatable).
    Returns (tags (M,) str array, rule dict with the thresholds used).
    """
    d_e, d_c, typical = (np.asarray(a, dtype=np.float64) for a in (d_example, d_counter, typical))
    if not 0 < close_quantile < far_quantile < 1 or not 0 < margin <= 1:
        raise ValueError(f"need 0 < close_quantile < far_quantile < 1 and 0 < margin <= 1, got "
                         f"{close_quantile}, {far_quantile}, {margin}")
    if typical.size == 0:
        raise ValueError("typical must hold at least one distance")
    far, close = np.quantile(typical, far_quantile), np.quantile(typical, close_quantile)
    tags = np.full(d_e.shape, TAGS[0], dtype=object)
    under = (d_e <= close) & (d_e < margin * d_c)
    noise = np.minimum(d_e, d_c) > far
    tags[under] = TAGS[2]
    tags[noise] = TAGS[1]
    rule = {"far_threshold": float(far), "close_threshold": float(close), "margin": margin,
            "far_quantile": far_quantile, "close_quantile": close_quantile}
    return tags.astype(str), rule


def confusion_groups(y_true, y_pred, class_names=None, tags=None):
    """Mistakes grouped by confusion pair (true, pred), most frequent first.

    -> list of dicts {true, pred, true_name, pred_name, count, indices (into y_true),
    tags: {tag: count}} (tags only when given, aligned with the mistakes in index order).
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    wrong = np.flatnonzero(y_true != y_pred)
    if tags is not None and len(tags) != wrong.size:
        raise ValueError(f"tags must have one entry per mistake ({wrong.size}), got {len(tags)}")
    pairs = np.stack([y_true[wrong], y_pred[wrong]], axis=1) if wrong.size else np.zeros((0, 2), int)
    uniq, inv, counts = np.unique(pairs, axis=0, return_inverse=True, return_counts=True)
    inv = np.asarray(inv).reshape(-1)
    groups = []
    for g in np.argsort(-counts, kind="stable"):
        t, p = (int(v) for v in uniq[g])
        members = wrong[inv == g]
        entry = {"true": t, "pred": p, "count": int(counts[g]), "indices": members,
                 "true_name": class_names[t] if class_names else str(t),
                 "pred_name": class_names[p] if class_names else str(p)}
        if tags is not None:
            tg = np.asarray(tags)[inv == g]
            entry["tags"] = {name: int(np.count_nonzero(tg == name)) for name in TAGS}
        groups.append(entry)
    return groups


def rank_mistakes(ex: Explanations, by: str = "margin"):
    """Order of the explained mistakes (indices into ``ex``): ``"margin"`` sorts by
    d_e - d_c ascending (true class much closer than the predicted one first: the most
    surprising mistakes), ``"distance"`` by min(d_e, d_c) descending (the most isolated first)."""
    d_e, d_c = ex.example_dist[:, 0], ex.counter_dist[:, 0]
    if by == "margin":
        return np.argsort(d_e - d_c, kind="stable")
    if by == "distance":
        return np.argsort(-np.minimum(d_e, d_c), kind="stable")
    raise ValueError(f"by must be 'margin' or 'distance', got {by!r}")


def embed(x, space: str = "pixels", model=None, autoencoder=None, batch_size: int = 512):
    """Features of images x (N, ...) in a space: ``"pixels"`` (flattened), ``"features"`` (the
    input of the last layer of a ``Sequential`` classifier ``model``, eval mode, batched) or
    ``"latent"`` (``autoencoder.encode``). -> (N, D) array."""
    check_float_array(x, "x")
    if space == "pixels":
        return x.reshape(x.shape[0], -1)
    if space == "latent":
        if autoencoder is None:
            raise ValueError("space='latent' needs an autoencoder")
        return autoencoder.encode(x, batch_size)
    if space == "features":
        if model is None or not hasattr(model, "layers"):
            raise ValueError("space='features' needs a Sequential classifier as model")
        body = model.layers[:-1]
        saved = [(m, m.training) for _, m in model.named_modules()]
        model.eval()
        try:
            outs = []
            for s in range(0, x.shape[0], batch_size):
                h = x[s:s + batch_size]
                for layer in body:
                    h = layer.forward(h)
                outs.append(np.array(h, copy=True).reshape(h.shape[0], -1))
        finally:
            for m, flag in saved:
                object.__setattr__(m, "training", flag)
        return np.concatenate(outs)
    raise ValueError(f"space must be 'pixels', 'features' or 'latent', got {space!r}")


def plot_explanations(x_query, x_train, ex: Explanations, rows, class_names=None, path=None, title=None):
    """Figure rows "sample | local example | local counterexample" for the mistakes ``rows``
    (indices into ``ex``), each cell titled with its label and (for the neighbours) distance."""
    from ..viz import plot_image_rows

    rows = np.asarray(rows, dtype=int)
    if rows.size == 0:
        raise ValueError("rows must name at least one explained mistake")

    def name(c):
        return class_names[int(c)] if class_names else str(int(c))

    q = ex.query[rows]
    batches = [np.stack([x_query[q[i]], x_train[ex.example_idx[r, 0]], x_train[ex.counter_idx[r, 0]]])
               for i, r in enumerate(rows)]
    cells = []
    for r in rows:
        tag = f" [{ex.tags[r]}]" if ex.tags is not None else ""
        cells.append([f"true {name(ex.true[r])}\npred {name(ex.pred[r])}{tag}",
                      f"{name(ex.true[r])}\nd={ex.example_dist[r, 0]:.2f}",
                      f"{name(ex.counter_class[r])}\nd={ex.counter_dist[r, 0]:.2f}"])
    return plot_image_rows(batches, row_titles=[f"#{int(i)}" for i in q],
                           col_titles=["sample", "local example", "local counterexample"],
                           cell_titles=cells, path=path,
                           title=title or f"Nearest training images ({ex.space})")
