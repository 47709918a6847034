"""Evaluation of embeddings (any (N, D) array): weighted k-NN, linear probe, retrieval,
k-means purity and silhouette, t-SNE (scikit-learn, optional).

All functions are vectorised over the samples (chunked over query rows to bound memory).
"""
from __future__ import annotations

import inspect

import numpy as np

from .._checks import as_generator, check_float_array, check_int, check_real


def _unit(e):
    e = np.asarray(e, dtype=np.float64) if np.asarray(e).dtype != np.float32 else np.asarray(e)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def knn_predict(train_emb, train_y, test_emb, k=200, temperature=0.1, num_classes=None, chunk=1024):
    """Weighted k-NN on cosine similarity (InstDisc / solo-learn): for each test embedding, the k
    most similar bank embeddings vote for their class with weight exp(sim / temperature).

    train_emb: (M, D), train_y: (M,) ints, test_emb: (Q, D) -> predicted labels (Q,) int64.
    Ties in similarity are broken by bank order (argpartition); k is clipped to M.
    """
    check_float_array(train_emb, "train_emb", ndim=2)
    check_float_array(test_emb, "test_emb", ndim=2)
    train_y = np.asarray(train_y)
    if train_y.shape != (len(train_emb),):
        raise ValueError(f"train_y must have shape ({len(train_emb)},), got {train_y.shape}")
    k = min(check_int(k, "k"), len(train_emb))
    check_real(temperature, "temperature", lo=0.0, lo_open=True)
    c = int(train_y.max()) + 1 if num_classes is None else check_int(num_classes, "num_classes")
    bank, out = _unit(train_emb), []
    for i in range(0, len(test_emb), chunk):
        sim = _unit(test_emb[i:i + chunk]) @ bank.T                      # (q, M)
        idx = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        w = np.exp(np.take_along_axis(sim, idx, axis=1).astype(np.float64) / temperature)
        votes = np.zeros((len(idx), c))
        np.add.at(votes, (np.repeat(np.arange(len(idx)), k), train_y[idx].ravel()), w.ravel())
        out.append(votes.argmax(axis=1))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def knn_accuracy(train_emb, train_y, test_emb, test_y, k=200, temperature=0.1):
    """Fraction of test embeddings whose weighted k-NN prediction equals test_y."""
    pred = knn_predict(train_emb, train_y, test_emb, k, temperature,
                       num_classes=int(max(np.max(train_y), np.max(test_y))) + 1)
    return float(np.mean(pred == np.asarray(test_y)))


def linear_probe(train_emb, train_y, test_emb, test_y=None, epochs=100, lr=0.1, weight_decay=1e-4,
                 batch_size=256, rng=0):
    """Softmax regression on frozen features (standardised with the training mean/std), trained
    by nnlite's Adam on mini-batches with its own short schedule (cosine lr decay).

    Returns (test accuracy or None, predictions (Q,), the trained ``nn.Linear``)."""
    from .. import nn, optim
    from ..functional.losses import softmax_cross_entropy
    rng = as_generator(rng)
    xtr = np.asarray(train_emb, dtype=np.float32)
    mu, sd = xtr.mean(axis=0), xtr.std(axis=0) + 1e-6
    xtr = (xtr - mu) / sd
    xte = (np.asarray(test_emb, dtype=np.float32) - mu) / sd
    ytr = np.asarray(train_y)
    c = int(max(ytr.max(), -1 if test_y is None else np.max(test_y))) + 1
    layer = nn.Linear(xtr.shape[1], c, rng=rng)
    layer.weight.data[...] = 0
    opt = optim.AdamW(layer.parameters(), lr=lr, weight_decay=weight_decay)
    steps = max(1, -(-len(xtr) // batch_size))
    total = epochs * steps
    k = 0
    for _ in range(check_int(epochs, "epochs")):
        perm = rng.permutation(len(xtr))
        for s in range(steps):
            b = perm[s * batch_size:(s + 1) * batch_size]
            layer.zero_grad()
            _, dlogits = softmax_cross_entropy(layer.forward(xtr[b]), ytr[b])
            layer.backward(dlogits)
            opt.lr = lr * 0.5 * (1 + np.cos(np.pi * k / total))
            opt.step()
            k += 1
    pred = layer.forward(xte).argmax(axis=1)
    acc = None if test_y is None else float(np.mean(pred == np.asarray(test_y)))
    return acc, pred, layer


def retrieve(query_emb, bank_emb, k=5, exclude_self=False):
    """The k most cosine-similar bank rows of each query: (indices (Q, k), similarities (Q, k)),
    most similar first. exclude_self: the query is row i of the bank (queries = bank[idx]) is
    not known here, so pass exclude_self=True only when query_emb IS bank_emb[:Q]."""
    sim = _unit(query_emb) @ _unit(bank_emb).T
    if exclude_self:
        sim[np.arange(len(sim)), np.arange(len(sim))] = -np.inf
    idx = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(sim, idx, axis=1)


def kmeans(emb, n_clusters, rng=0, iters=50):
    """k-means (scipy.cluster.vq.kmeans2, k-means++ init, seeded) on L2-normalised embeddings:
    (centroids (K, D), labels (N,))."""
    from scipy.cluster.vq import kmeans2
    seed = int(as_generator(rng).integers(2 ** 31))
    return kmeans2(_unit(emb).astype(np.float64), check_int(n_clusters, "n_clusters"), iter=iters,
                   minit="++", seed=seed)


def cluster_purity(labels_true, labels_pred):
    """Purity = (1/N) sum over clusters of the count of its most common true class."""
    t, p = np.asarray(labels_true), np.asarray(labels_pred)
    table = np.zeros((p.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(table, (p, t), 1)
    return float(table.max(axis=1).sum() / len(t))


def silhouette(emb, labels, metric="cosine"):
    """Mean silhouette s_i = (b_i - a_i) / max(a_i, b_i) (a: mean distance to its own cluster,
    b: smallest mean distance to another cluster); cosine distance 1 - cos by default, else
    euclidean. Singletons get s_i = 0 (scikit-learn's convention). O(N^2) memory: subsample."""
    labels = np.asarray(labels)
    e = np.asarray(emb, dtype=np.float64)
    if metric == "cosine":
        u = _unit(e)
        d = 1 - u @ u.T
    else:
        sq = (e ** 2).sum(axis=1)
        d = np.sqrt(np.maximum(sq[:, None] + sq[None] - 2 * e @ e.T, 0))
    ids, inv = np.unique(labels, return_inverse=True)
    onehot = np.eye(len(ids))[inv]                                         # (N, K)
    sums, counts = d @ onehot, onehot.sum(axis=0)
    own = counts[inv]
    a = sums[np.arange(len(e)), inv] / np.maximum(own - 1, 1)
    mean_other = sums / counts
    mean_other[np.arange(len(e)), inv] = np.inf
    b = mean_other.min(axis=1)
    s = np.where(own > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(s.mean())


def tsne(emb, rng=0, perplexity=30.0, threads=1, iterations=None):
    """2-D t-SNE by scikit-learn's TSNE (optional extra ``nnlite[ssl]``): emb (N, D) -> (N, 2).

    iterations: gradient steps (at least 250, the early-exaggeration phase); None keeps
    scikit-learn's default (1000). Smoke tests pass 250: a third of the time, a rougher map.

    threads: OpenMP threads of its Barnes-Hut gradient (through threadpoolctl, which
    scikit-learn requires); None leaves scikit-learn's default (every core). 1 by default: the
    iterations are short, and with more threads than idle cores OpenMP's waiting makes it far
    slower (250 points on 2 busy cores: 43 s of CPU with 2 threads, 1.2 s with 1).
    ImportError with the install command when scikit-learn is absent."""
    try:
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("t-SNE needs scikit-learn: pip install 'nnlite[ssl]' "
                          "(or pip install 'scikit-learn>=1.3')") from err
    threads = None if threads is None else check_int(threads, "threads")
    steps = {}
    if iterations is not None:
        iterations = check_int(iterations, "iterations", minimum=250)
        # scikit-learn 1.5 renamed n_iter to max_iter
        steps = {"max_iter" if "max_iter" in inspect.signature(TSNE).parameters else "n_iter": iterations}
    seed = int(as_generator(rng).integers(2 ** 31))
    perplexity = min(perplexity, max(2.0, (len(emb) - 1) / 3))
    with threadpool_limits(limits=threads, user_api="openmp"):
        return TSNE(2, perplexity=perplexity, init="pca", random_state=seed, **steps).fit_transform(
            np.asarray(emb, np.float64))


def ood_class_split(num_classes, n_in, rng=0):
    """A random split of class ids 0..num_classes-1 into in-distribution (n_in) and OOD classes
    (sorted arrays, disjoint, covering every class)."""
    perm = as_generator(rng).permutation(check_int(num_classes, "num_classes"))
    n_in = check_int(n_in, "n_in")
    if n_in >= num_classes:
        raise ValueError(f"n_in must be < num_classes={num_classes}, got {n_in}")
    return np.sort(perm[:n_in]), np.sort(perm[n_in:])


class KNNMonitor:
    """An ``on_epoch_end`` callback for :func:`pretrain`: the encoder's k-NN (and optionally
    linear-probe) accuracy per epoch, logged as ``knn`` (and ``linear_probe``).

    encoder: x (N, C, H, W) -> (N, D); bank_x: (M, C, H, W), bank_y: (M,) ints; test_x: (Q, C, H, W),
    test_y: (Q,); k, temperature: of :func:`knn_accuracy`; every: run after every ``every``-th epoch;
    batch_size: of :func:`embed`; linear_probe_epochs: None (off) or the epochs of a short
    :func:`linear_probe` trained on the bank embeddings and scored on the test embeddings;
    probe_seed: its int seed.  Embeddings in eval mode, no augmentation (the encoder's train/eval
    flags are restored). The probe draws from a fresh Generator of ``probe_seed`` at every call,
    never from the training Generator, and the monitor changes no weight or buffer: training
    with or without it is identical.
    """

    def __init__(self, encoder, bank_x, bank_y, test_x, test_y, k=200, temperature=0.1, every=1,
                 batch_size=256, linear_probe_epochs=None, probe_seed=0):
        self.k = check_int(k, "k")
        self.temperature = check_real(temperature, "temperature", lo=0.0, lo_open=True)
        self.every, self.batch_size = check_int(every, "every"), check_int(batch_size, "batch_size")
        self.linear_probe_epochs = (None if linear_probe_epochs is None
                                    else check_int(linear_probe_epochs, "linear_probe_epochs"))
        self.probe_seed = check_int(probe_seed, "probe_seed", minimum=0)
        if len(bank_x) != len(bank_y) or len(test_x) != len(test_y):
            raise ValueError(f"bank_x/bank_y and test_x/test_y must have equal lengths, got "
                             f"{len(bank_x)}/{len(bank_y)} and {len(test_x)}/{len(test_y)}")
        self.encoder = encoder
        self.data = (bank_x, bank_y, test_x, test_y)

    def __call__(self, epoch, logs):
        if (epoch + 1) % self.every:
            return
        from .models import embed
        bx, by, tx, ty = self.data
        eb = embed(self.encoder, bx, self.batch_size)
        et = embed(self.encoder, tx, self.batch_size)
        logs["knn"] = knn_accuracy(eb, by, et, ty, self.k, self.temperature)
        if self.linear_probe_epochs is not None:
            logs["linear_probe"], _, _ = linear_probe(eb, by, et, ty, epochs=self.linear_probe_epochs,
                                                      rng=self.probe_seed)
