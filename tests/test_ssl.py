"""nnlite.ssl: augmentation, encoders and heads, the pre-training loop, evaluation tools."""
import numpy as np
import pytest

from nnlite import optim, ssl


# ----------------------------------------------------------------------------------- augment
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_augment_reproducible_dtype_range(dtype):
    x = np.random.default_rng(0).random((8, 3, 16, 16)).astype(dtype)
    aug = ssl.simclr_imagenet(rotation=15, noise_p=0.5)
    a1, a2 = aug.two_views(x, np.random.default_rng(7))
    b1, b2 = aug.two_views(x, np.random.default_rng(7))
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert a1.dtype == dtype and a1.shape == x.shape
    assert a1.min() >= 0 and a1.max() <= 1
    assert not np.allclose(a1, a2)                            # two different views
    c1, _ = aug.two_views(x, np.random.default_rng(8))
    assert not np.allclose(a1, c1)


def test_augment_identity_settings_leave_images_unchanged():
    x = np.random.default_rng(1).random((4, 3, 8, 8)).astype(np.float32)
    ident = ssl.Augment(crop_scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, gray_p=0.0)
    np.testing.assert_allclose(ident(x, 0), x, atol=1e-6)
    flip = ssl.Augment(crop_scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=1.0, jitter_p=0.0, gray_p=0.0)
    np.testing.assert_allclose(flip(x, 0), x[..., ::-1], atol=1e-6)
    gray = ssl.Augment(crop_scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, gray_p=1.0)(x, 0)
    np.testing.assert_allclose(gray[:, 0], gray[:, 1], atol=1e-6)


def test_blur_preserves_constant_images_and_smooths():
    x = np.full((2, 1, 9, 9), 0.3)
    np.testing.assert_allclose(ssl.gaussian_blur(x, np.array([0.5, 2.0])), 0.3)
    d = np.zeros((1, 1, 9, 9))
    d[0, 0, 4, 4] = 1
    out = ssl.gaussian_blur(d, np.array([1.0]), size=3)
    assert out[0, 0, 4, 4] < 1 and out.sum() == pytest.approx(1.0)


def test_augment_bad_arguments():
    with pytest.raises(ValueError, match="crop_scale"):
        ssl.Augment(crop_scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="gray_p"):
        ssl.Augment(gray_p=2.0)


# ----------------------------------------------------------------------------------- models
def test_encoders_heads_and_embed_are_deterministic():
    x = np.random.default_rng(0).random((6, 3, 16, 16)).astype(np.float32)
    for enc in (ssl.resnet(18, (4, 8, 8, 8), rng=0), ssl.resnet((1, 1), (4, 6), rng=0), ssl.small_cnn((4, 8), rng=0)):
        h = enc.forward(x)
        assert h.shape == (6, enc.out_features) and h.dtype == np.float32
        e1, e2 = ssl.embed(enc, x, batch_size=4), ssl.embed(enc, x, batch_size=6)
        np.testing.assert_allclose(e1, e2, rtol=1e-5, atol=1e-6)   # batched = unbatched in eval mode
        assert enc.training                                       # mode restored
    r34 = ssl.resnet(34, (2, 2, 2, 2), rng=0)
    assert sum(1 for _ in r34.layers) == 3 + 16 + 1               # stem, 3+4+6+3 blocks, pooling
    head = ssl.mlp_head(8, 16, 4, rng=0)
    assert head.forward(np.ones((3, 8), np.float32)).shape == (3, 4)
    with pytest.raises(ValueError, match="depth"):
        ssl.resnet(50)


def test_save_embeddings(tmp_path):
    e, y = np.ones((3, 2), np.float32), np.arange(3)
    ssl.save_embeddings(tmp_path / "e.npz", e, y)
    with np.load(tmp_path / "e.npz") as f:
        np.testing.assert_array_equal(f["embeddings"], e)
        np.testing.assert_array_equal(f["labels"], y)


def test_save_embeddings_refuses_bad_input_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "e.npz"
    e = np.ones((3, 2), np.float32)
    ssl.save_embeddings(path, e)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="labels must have shape"):
        ssl.save_embeddings(path, e, np.arange(4))
    with pytest.raises(ValueError, match="rank 2"):
        ssl.save_embeddings(path, np.ones(3, np.float32))
    with pytest.raises(TypeError, match="plain numeric"):
        ssl.save_embeddings(path, e, note=np.array([{"a": 1}], dtype=object))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["e.npz"], "a temporary file was left behind"


# ----------------------------------------------------------------------------------- training
@pytest.mark.parametrize("name", ["simclr", "byol", "barlow"])
def test_pretrain_runs_and_byol_target_gets_no_gradient(name):
    rng = np.random.default_rng(0)
    x = rng.random((32, 3, 8, 8)).astype(np.float32)
    enc = ssl.small_cnn((4, 8), rng=0)
    proj = ssl.mlp_head(8, 16, 8, rng=1)
    if name == "simclr":
        method = ssl.SimCLR(enc, proj, 0.5)
    elif name == "barlow":
        method = ssl.BarlowTwins(enc, proj)
    else:
        method = ssl.BYOL(enc, proj, ssl.mlp_head(8, 16, 8, rng=2))
        t_before = [p.data.copy() for p in method.target_encoder.parameters()]
    before = [p.data.copy() for p in enc.parameters()]
    opt = optim.LARS(method.parameters(), lr=0.5) if name == "barlow" else optim.AdamW(method.parameters(), lr=1e-2)
    hist = ssl.pretrain(method, x, 2, 16, opt, ssl.simclr_cifar(), rng=0, max_steps=3)
    assert hist["total_steps"] == 3 and hist["stopped"] == "max_steps" and np.isfinite(hist["loss"]).all()
    assert any(not np.allclose(b, p.data) for b, p in zip(before, enc.parameters()))
    if name == "byol":
        assert all(not p.trainable and not np.any(p.grad) for p in method.target_encoder.parameters())
        tau = method.tau
        assert ssl.cosine_tau(3, 3) == tau == 1.0                  # the last step of the schedule
        assert any(not np.allclose(b, p.data) for b, p in zip(t_before, method.target_encoder.parameters()))


def test_pretrain_gives_a_schedule_without_length_the_run_s_steps():
    x = np.random.default_rng(0).random((32, 3, 8, 8)).astype(np.float32)
    m = ssl.SimCLR(ssl.small_cnn((4,), rng=0), ssl.mlp_head(4, 8, 4, rng=1))
    opt = optim.SGD(m.parameters(), lr=0.1)
    sched = optim.WarmupCosine(opt, warmup_fraction=0.25)             # no total_steps given
    ssl.pretrain(m, x, 3, 8, opt, ssl.simclr_cifar(), rng=0, schedule=sched, max_steps=10)
    twin = optim.WarmupCosine(optim.SGD(m.parameters(), lr=0.1), warmup_fraction=0.25, total_steps=10)
    for _ in range(10):
        twin.step()
    assert sched.get_last_lr() == twin.get_last_lr()                     # the cosine ended where the run did
    assert sched.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)


def test_pretrain_reproducible():
    def run():
        x = np.random.default_rng(0).random((16, 3, 8, 8)).astype(np.float32)
        enc = ssl.small_cnn((4,), rng=0)
        m = ssl.SimCLR(enc, ssl.mlp_head(4, 8, 4, rng=1))
        ssl.pretrain(m, x, 1, 8, optim.SGD(m.parameters(), lr=0.1), ssl.simclr_cifar(), rng=3)
        return [p.data.copy() for p in enc.parameters()]
    for a, b in zip(run(), run()):
        np.testing.assert_array_equal(a, b)


def test_monitor_logs_knn_and_linear_probe_without_changing_training():
    x = np.random.default_rng(0).random((32, 3, 8, 8)).astype(np.float32)
    y = np.arange(32) % 4

    def run(monitor):
        enc = ssl.small_cnn((4, 8), rng=0)
        m = ssl.SimCLR(enc, ssl.mlp_head(8, 16, 8, rng=1))
        rng = np.random.default_rng(3)
        mon = None if monitor is None else ssl.KNNMonitor(enc, x[:16], y[:16], x[16:], y[16:], k=5, **monitor)
        h = ssl.pretrain(m, x, 2, 16, optim.AdamW(m.parameters(), lr=1e-2), ssl.simclr_cifar(), rng, on_epoch_end=mon)
        return h, [p.data.copy() for p in enc.parameters()], rng.bit_generator.state
    h0, w0, r0 = run(None)
    h1, w1, r1 = run({"linear_probe_epochs": 3, "probe_seed": 1})
    h2, _, _ = run({"linear_probe_epochs": 3, "probe_seed": 1})
    h3, _, _ = run({"every": 2})
    assert r0 == r1 and h0["step_loss"] == h1["step_loss"]          # the training Generator is untouched
    for a, b in zip(w0, w1):
        np.testing.assert_array_equal(a, b)
    assert len(h1["knn"]) == len(h1["linear_probe"]) == 2 and all(0 <= v <= 1 for v in h1["linear_probe"])
    assert h1["linear_probe"] == h2["linear_probe"]                  # its own fixed seed
    assert "knn" not in h0 and "linear_probe" not in h3 and len(h3["knn"]) == 1
    with pytest.raises(ValueError, match="linear_probe_epochs"):
        ssl.KNNMonitor(None, x, y, x, y, linear_probe_epochs=0)


# ----------------------------------------------------------------------------------- evaluation
def test_knn_on_toy_embedding_with_known_neighbours():
    bank = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [-1, 0]], dtype=np.float64)
    y = np.array([0, 0, 1, 1, 2])
    q = np.array([[1, 0.05], [0.05, 1], [-1, 0.1]])
    np.testing.assert_array_equal(ssl.knn_predict(bank, y, q, k=1), [0, 1, 2])
    np.testing.assert_array_equal(ssl.knn_predict(bank, y, q, k=2), [0, 1, 2])
    # weights: with k = 5 the closest neighbours dominate through exp(sim / 0.1)
    np.testing.assert_array_equal(ssl.knn_predict(bank, y, q, k=5, temperature=0.1), [0, 1, 2])
    # a vote the weights decide: query nearer the single class-2 point than to two far class-0 points
    bank2 = np.array([[1, 0], [1, 0.05], [0.2, 1]])
    assert ssl.knn_predict(bank2, np.array([2, 2, 5]), np.array([[0.25, 1]]), k=3, temperature=0.05)[0] == 5
    assert ssl.knn_accuracy(bank, y, q, np.array([0, 1, 0]), k=1) == pytest.approx(2 / 3)
    idx, sim = ssl.retrieve(q[:1], bank, k=2)
    np.testing.assert_array_equal(idx, [[0, 1]])
    assert sim[0, 0] > sim[0, 1]


def test_linear_probe_separates_a_separable_set():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 10)) * 4
    y = rng.integers(0, 4, 400)
    x = centres[y] + rng.standard_normal((400, 10))
    acc, pred, layer = ssl.linear_probe(x[:300], y[:300], x[300:], y[300:], epochs=30, rng=0)
    assert acc >= 0.98 and pred.shape == (100,)
    acc_shuffled, _, _ = ssl.linear_probe(x[:300], rng.permutation(y[:300]), x[300:], y[300:], epochs=30, rng=0)
    assert acc_shuffled < 0.6


def test_kmeans_purity_silhouette():
    rng = np.random.default_rng(0)
    centres = np.eye(3) * 10
    y = np.repeat(np.arange(3), 30)
    x = centres[y] + rng.standard_normal((90, 3)) * 0.3
    _, lab = ssl.kmeans(x, 3, rng=0)
    assert ssl.cluster_purity(y, lab) == 1.0
    assert ssl.cluster_purity(y, np.zeros(90, dtype=int)) == pytest.approx(1 / 3)
    s = ssl.silhouette(x, y, metric="euclidean")
    sklearn = pytest.importorskip("sklearn.metrics")
    assert s == pytest.approx(sklearn.silhouette_score(x, y), rel=1e-10)
    assert ssl.silhouette(x, y) == pytest.approx(sklearn.silhouette_score(x, y, metric="cosine"), rel=1e-10)


def test_ood_split_has_no_class_overlap():
    ind, ood = ssl.ood_class_split(200, 100, rng=3)
    assert len(ind) == len(ood) == 100
    assert not set(ind) & set(ood) and set(ind) | set(ood) == set(range(200))
    ind2, _ = ssl.ood_class_split(200, 100, rng=3)
    np.testing.assert_array_equal(ind, ind2)


def test_tsne_shape():
    pytest.importorskip("sklearn")
    e = np.random.default_rng(0).standard_normal((30, 5))
    assert ssl.tsne(e, rng=0).shape == (30, 2)


def test_tsne_iterations_are_passed_and_checked():
    pytest.importorskip("sklearn")
    e = np.random.default_rng(0).standard_normal((30, 5))
    # fewer iterations give a different (rougher) map; the same number gives the same map
    a, b = ssl.tsne(e, rng=0, iterations=250), ssl.tsne(e, rng=0, iterations=250)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, ssl.tsne(e, rng=0))
    with pytest.raises(ValueError, match="iterations"):
        ssl.tsne(e, rng=0, iterations=100)
