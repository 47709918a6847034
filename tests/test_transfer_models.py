"""Named-block builders, freezing, Keras-style counts, progressive unfreezing, features."""
import numpy as np
import pytest

from nnlite.losses import SoftmaxCrossEntropy
from nnlite.models import (
    ProgressiveUnfreezing,
    block_names,
    extract_features,
    freeze,
    load_features,
    make_optimizer,
    param_counts,
    resnet,
    save_features,
    summary,
    unfreeze,
    vgg,
)
from nnlite.optim import SGD, Adam, ReduceLROnPlateau, StepLR
from nnlite.train import EarlyStopping, ModelCheckpoint, Trainer


def data(n=48, seed=0, size=16):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.random((n, 3, size, size)).astype(np.float32) * 0.5
    x[np.arange(n), y] += 0.5                      # class = brightest channel
    return x, y.astype(np.int64)


def small_vgg(seed=0, bn=True):
    return vgg(widths=(4, 6, 8), convs=(1, 1, 2), num_classes=3, batch_norm=bn, head_hidden=8,
               head_dropout=0.25, rng=seed)


def test_names_and_shapes():
    m = vgg(num_classes=9, rng=0)                   # VGG16 layout
    assert block_names(m) == ["block1", "block2", "block3", "block4", "block5", "head"]
    names = [n for n, _ in m.named_parameters()]
    assert "block3.conv3.weight" in names and "block5.conv3.bias" in names
    text = summary(m, (3, 64, 64), print_fn=None)
    assert "block1_conv1 (Conv2d)" in text and "(None, 512, 2, 2)" in text
    # the report's Figure 2 base: conv params of VGG16 = 14,714,688
    base = sum(p.size for n, p in m.named_parameters() if not n.startswith("head"))
    assert base == 14_714_688
    r = resnet(widths=(4, 8), units=(1, 2), num_classes=3, rng=0)
    assert block_names(r) == ["stem", "block1", "block2", "head"]
    assert r.forward(np.zeros((2, 3, 8, 8), np.float32)).shape == (2, 3)


def test_freeze_unfreeze_counts_and_summary():
    m = small_vgg()
    total = param_counts(m)["total"]
    freeze(m, up_to="block2")
    c1 = param_counts(m)
    b12 = sum(p.size for n, p in m.named_parameters() if n.startswith(("block1", "block2")))
    bufs = sum(np.size(b) for _, b in m.named_buffers())
    assert c1["total"] == total and c1["non_trainable"] == b12 + bufs
    unfreeze(m, "block2")
    c2 = param_counts(m)
    assert c2["trainable"] > c1["trainable"]
    text = summary(m, (3, 16, 16), print_fn=None)
    assert f"Trainable params: {c2['trainable']:,}" in text
    assert f"Non-trainable params: {c2['non_trainable']:,}" in text
    with pytest.raises(KeyError, match="block9"):
        freeze(m, up_to="block9")
    with pytest.raises(KeyError, match="nope"):
        unfreeze(m, "nope")


@pytest.mark.parametrize("opt_cls", [SGD, Adam])
def test_frozen_weights_bit_identical_and_no_gradients(opt_cls):
    x, y = data()
    m = small_vgg()
    freeze(m, up_to="block2")
    frozen = {n: p.data.copy() for n, p in m.named_parameters() if n.startswith(("block1", "block2"))}
    bufs = {n: b.copy() for n, b in m.named_buffers() if n.startswith(("block1", "block2"))}
    others = {n: p.data.copy() for n, p in m.named_parameters() if not n.startswith(("block1", "block2"))}
    opt = opt_cls(m.parameters(), lr=0.05)
    Trainer(m, SoftmaxCrossEntropy(), opt, batch_size=16, rng=0, progress=False).fit(x, y, epochs=2)
    for n, p in m.named_parameters():
        if n in frozen:
            np.testing.assert_array_equal(p.data, frozen[n])       # bit-identical
            assert not p.grad.any()                                 # no gradient computed
    for n, b in m.named_buffers():
        if n in bufs:
            np.testing.assert_array_equal(b, bufs[n])             # frozen BN statistics kept
    assert any(not np.array_equal(p.data, others[n]) for n, p in m.named_parameters() if n in others)


def test_frozen_block_gets_no_backward_pass(monkeypatch):
    m = small_vgg()
    freeze(m, up_to="block2")
    calls = []
    orig = m.block2.backward
    monkeypatch.setattr(m.block2, "backward", lambda d: calls.append(1) or orig(d), raising=False)
    object.__setattr__(m.block2, "backward", lambda d: calls.append(1) or orig(d))
    out = m.forward(data()[0][:4])
    m.backward(np.ones_like(out))
    assert calls == []
    unfreeze(m, "block2")
    out = m.forward(data()[0][:4])
    m.backward(np.ones_like(out))
    assert calls == [1]


def test_progressive_unfreezing_epochs_lrs_and_counts(tmp_path):
    x, y = data(60)
    m = small_vgg()
    freeze(m, up_to="block3")
    opt = make_optimizer(Adam, m, lr=1e-2)
    assert opt.group_names == ["block1", "block2", "block3", "head"]
    sched = StepLR(opt, step_size=2, gamma=0.5)
    cb = ProgressiveUnfreezing(m, opt, [(2, "block3", 1e-3), (4, ["block2", "block3"], 1e-4)])
    seen = []

    class Probe(EarlyStopping):
        def on_epoch_begin(self, trainer, epoch):
            seen.append((epoch, param_counts(m)["trainable"], [g["lr"] for g in opt.param_groups]))

    ck = ModelCheckpoint(str(tmp_path / "best.npz"), monitor="val_acc", save_best_only=True)
    es = Probe(monitor="val_loss", patience=50)
    Trainer(m, SoftmaxCrossEntropy(), opt, schedule=sched, callbacks=[cb, es, ck], batch_size=20, rng=0,
            progress=False).fit(x, y, epochs=6, val_split=0.25)
    head = sum(p.size for p in m.head.parameters())
    b3 = sum(p.size for p in m.block3.parameters())
    b2 = sum(p.size for p in m.block2.parameters())
    counts = {e: c for e, c, _ in seen}
    assert counts[0] == counts[1] == head
    assert counts[2] == counts[3] == head + b3
    assert counts[4] == counts[5] == head + b3 + b2
    lrs = {e: lr for e, _, lr in seen}
    assert lrs[2][2] == pytest.approx(1e-3)            # block3 at its phase lr when unfrozen
    assert lrs[4][1] == pytest.approx(1e-4) and lrs[4][2] == pytest.approx(1e-4)
    assert lrs[5][2] == pytest.approx(1e-4)           # step decay continues from there (every 2 epochs)
    assert lrs[4][3] == pytest.approx(1e-2 * 0.25)    # the head follows the plain step schedule
    assert [e["epoch"] for e in cb.events] == [2, 4]
    assert ck.last_saved is not None


def test_progressive_with_plateau_and_resume_reapplies_phases():
    x, y = data(40)
    m = small_vgg(bn=False)
    freeze(m, up_to="block3")
    opt = make_optimizer(SGD, m, lr=0.01)
    cb = ProgressiveUnfreezing(m, opt, [(1, "block3", 1e-3)])
    tr = Trainer(m, SoftmaxCrossEntropy(), opt, schedule=ReduceLROnPlateau(opt, patience=0, factor=0.5),
                 callbacks=[cb], batch_size=20, rng=0, progress=False)
    tr.fit(x, y, epochs=3, initial_epoch=2)            # resumed past the phase: applied at once
    assert all(p.trainable for p in m.block3.parameters())
    assert cb.events[0]["epoch"] == 2
    with pytest.raises(KeyError, match="block9"):
        ProgressiveUnfreezing(m, opt, [(1, "block9", 1e-3)])


def test_features_any_layer_batched_and_saved(tmp_path):
    x, y = data(10)
    m = small_vgg()
    m.train()
    f1 = extract_features(m, x, "block3", batch_size=3)
    f2 = extract_features(m, x, "block3", batch_size=10)
    assert f1.shape == (10, 8) and m.training
    np.testing.assert_allclose(f1, f2, rtol=1e-5, atol=1e-6)
    m.eval()
    by_hand = m.block3.forward(m.block2.forward(m.block1.forward(x))).mean(axis=(2, 3))
    np.testing.assert_allclose(f1, by_hand, rtol=1e-5, atol=1e-6)
    assert extract_features(m, x, "block2.conv1", pool="flatten").shape == (10, 6 * 8 * 8)
    assert extract_features(m, x, "head.dense1").shape == (10, 8)
    for suffix in (".npz", ".h5"):
        save_features(tmp_path / f"f{suffix}", f1, y)
        back = load_features(tmp_path / f"f{suffix}")
        np.testing.assert_array_equal(back["features"], f1)
        np.testing.assert_array_equal(back["labels"], y)
    with pytest.raises(KeyError, match="block7"):
        extract_features(m, x, "block7")
