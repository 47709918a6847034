"""Tests of nnlite.viz: every function returns a Figure and writes a readable PNG."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from PIL import Image

from nnlite import viz

DPI = 60


def check_png(path, fig, min_side=60):
    """The file exists, is a PNG PIL can decode, and is figsize * dpi pixels."""
    assert isinstance(fig, Figure)
    assert os.path.isfile(path) and os.path.getsize(path) > 0
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()
        w, h = im.size
    ew, eh = fig.get_size_inches() * DPI
    assert abs(w - ew) <= 2 and abs(h - eh) <= 2, (w, h, ew, eh)
    assert min_side <= w <= 3000 and min_side <= h <= 3000
    # the only files in the folder are the ones we asked for: no temp files left behind
    assert not [f for f in os.listdir(os.path.dirname(path)) if f.endswith(".tmp")]
    return w, h


def float_nchw(rng, n=12, c=3, h=8, w=8):
    return rng.random((n, c, h, w)).astype(np.float32)


def uint8_nhwc(rng, n=12, c=3, h=8, w=8):
    return rng.integers(0, 256, size=(n, h, w, c), dtype=np.uint8)


# ----------------------------------------------------------------------------- import hygiene

def test_import_nnlite_and_metrics_do_not_import_matplotlib():
    code = textwrap.dedent("""
        import sys
        import nnlite, nnlite.metrics
        bad = sorted(m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib."))
        print(bad)
        sys.exit(1 if bad else 0)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"matplotlib imported: {res.stdout} {res.stderr}"


def test_viz_never_imports_pyplot(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        import nnlite.viz as viz
        rng = np.random.default_rng(0)
        viz.plot_confusion_matrix(np.eye(3, dtype=int), ["a", "b", "c"], dpi=30,
                                  path={str(tmp_path / "cm.png")!r})
        viz.plot_image_grid(rng.random((4, 1, 6, 6)), [0, 1, 0, 1], [0, 0, 0, 1], dpi=30)
        sys.exit(1 if "matplotlib.pyplot" in sys.modules else 0)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


# ----------------------------------------------------------------------------- plot_history

def test_plot_history(tmp_path):
    hist = {"loss": [2.0, 1.5, 1.2, 1.1], "val_loss": [2.1, 1.7, 1.5, 1.6],
            "acc": [0.3, 0.5, 0.6, 0.7], "val_acc": [0.3, 0.45, 0.5, 0.52], "lr": [0.1, 0.1, 0.01, 0.001]}
    path = tmp_path / "sub" / "dir" / "history.png"          # parents do not exist yet
    fig = viz.plot_history(hist, metrics=("loss", "acc", "lr"), path=path, dpi=DPI, title="run")
    check_png(str(path), fig)
    axes = fig.axes
    assert len(axes) == 3
    loss_lines = axes[0].get_lines()
    assert len(loss_lines) == 2
    np.testing.assert_array_equal(loss_lines[0].get_xdata(), [1, 2, 3, 4])     # epochs from 1
    np.testing.assert_array_equal(loss_lines[1].get_ydata(), hist["val_loss"])
    assert axes[2].get_yscale() == "log"


def test_plot_history_partial_and_uneven(tmp_path):
    # only validation accuracy, a train loss longer than the validation loss
    hist = {"loss": [1.0, 0.8, 0.7], "val_loss": [1.1, 0.9], "val_acc": [0.5, 0.6]}
    fig = viz.plot_history(hist, path=tmp_path / "h.png", dpi=DPI)
    check_png(str(tmp_path / "h.png"), fig)
    assert [len(ax.get_lines()) for ax in fig.axes] == [2, 1]
    fig = viz.plot_history(hist, metrics="loss", dpi=DPI)      # no path: nothing written
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    fig = viz.plot_history({"loss": [1.0, 0.9, 0.8], "val_loss": [1.0, None, 0.7]}, metrics="loss", dpi=DPI)
    assert np.isnan(fig.axes[0].get_lines()[1].get_ydata()[1])   # None -> gap


@pytest.mark.parametrize("hist, metrics, exc", [
    ({"loss": [1.0]}, ("acc",), ValueError),
    ({"loss": []}, ("loss",), ValueError),
    ({"loss": [[1.0, 2.0]]}, ("loss",), ValueError),
    ({"loss": ["a", "b"]}, ("loss",), TypeError),
    ([1.0, 2.0], ("loss",), TypeError),
    ({"loss": [1.0]}, (), ValueError),
])
def test_plot_history_bad_input(hist, metrics, exc):
    with pytest.raises(exc):
        viz.plot_history(hist, metrics=metrics, dpi=DPI)


# ----------------------------------------------------------------------------- confusion matrix

def test_plot_confusion_matrix_counts(tmp_path):
    rng = np.random.default_rng(0)
    cm = rng.integers(0, 50, size=(4, 4))
    cm[2, 2] = 400
    names = ["forest", "river", "industrial", "sea"]
    fig = viz.plot_confusion_matrix(cm, names, path=tmp_path / "cm.png", dpi=DPI)
    check_png(str(tmp_path / "cm.png"), fig)
    ax = fig.axes[0]
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}
    assert len(texts) == 16
    for i in range(4):
        for j in range(4):
            assert texts[(i, j)].get_text() == str(cm[i, j])
    # readable text: white on the darkest cell, black on the lightest
    assert to_rgba(texts[(2, 2)].get_color()) == to_rgba("white")
    lightest = np.unravel_index(np.argmin(cm), cm.shape)
    assert to_rgba(texts[lightest].get_color()) == to_rgba("black")
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    assert ax.get_xticklabels()[0].get_rotation() == 45


def test_plot_confusion_matrix_normalized(tmp_path):
    cm = np.array([[3, 1, 0], [0, 0, 0], [2, 2, 4]])    # the middle class has no samples
    fig = viz.plot_confusion_matrix(cm, ["a", "b", "c"], normalize=True, path=tmp_path / "n.png", dpi=DPI)
    check_png(str(tmp_path / "n.png"), fig)
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in fig.axes[0].texts}
    for i in range(3):
        total = sum(cm[i])
        for j in range(3):
            expect = cm[i][j] / total if total else 0.0
            assert texts[(i, j)] == f"{expect:.2f}"


def test_plot_confusion_matrix_many_classes_no_annotation():
    cm = np.arange(40 * 40).reshape(40, 40)
    fig = viz.plot_confusion_matrix(cm, dpi=20)
    assert len(fig.axes[0].texts) == 0


@pytest.mark.parametrize("cm, names, exc", [
    (np.zeros((2, 3)), None, ValueError),
    (np.zeros((2, 2)), ["a"], ValueError),
    (-np.ones((2, 2)), None, ValueError),
    (np.zeros(4), None, ValueError),
])
def test_plot_confusion_matrix_bad_input(cm, names, exc):
    with pytest.raises(exc):
        viz.plot_confusion_matrix(cm, names, dpi=DPI)


# ----------------------------------------------------------------------------- image grid

def _shown_titles(fig):
    return [(ax.get_title(), to_rgba(ax.title.get_color())) for ax in fig.axes if ax.images]


@pytest.mark.parametrize("kind", ["float_rgb", "float_gray", "uint8_rgb", "uint8_gray", "nhw"])
def test_plot_image_grid_layouts(tmp_path, kind):
    rng = np.random.default_rng(1)
    images = {"float_rgb": float_nchw(rng), "float_gray": float_nchw(rng, c=1),
              "uint8_rgb": uint8_nhwc(rng), "uint8_gray": uint8_nhwc(rng, c=1),
              "nhw": rng.random((12, 8, 8))}[kind]
    y = rng.integers(0, 3, 12)
    p = y.copy()
    p[[1, 4, 5, 9]] = (p[[1, 4, 5, 9]] + 1) % 3
    path = tmp_path / f"{kind}.png"
    fig = viz.plot_image_grid(images, y, p, class_names=["cat", "dog", "bird"], path=path, dpi=DPI)
    check_png(str(path), fig)
    shown = _shown_titles(fig)
    names = ["cat", "dog", "bird"]
    expect = [i for i in range(12) if y[i] != p[i]]
    assert len(shown) == len(expect)
    for (title, color), i in zip(shown, expect):
        assert title.replace("\n", " / ") == f"true: {names[y[i]]} / pred: {names[p[i]]}"
        assert color == to_rgba("#d62728")      # wrong -> red
    gray = kind in ("float_gray", "uint8_gray", "nhw")
    arr = [ax for ax in fig.axes if ax.images][0].images[0].get_array()
    assert arr.ndim == (2 if gray else 3)


def test_plot_image_grid_all_images_colours_and_limits(tmp_path):
    rng = np.random.default_rng(2)
    images = float_nchw(rng, n=30)
    y = rng.integers(0, 4, 30)
    p = np.where(rng.random(30) < 0.5, y, (y + 1) % 4)
    fig = viz.plot_image_grid(images, y, p, only_misclassified=False, max_images=7, ncols=3,
                              path=tmp_path / "g.png", dpi=DPI)
    check_png(str(tmp_path / "g.png"), fig)
    shown = _shown_titles(fig)
    assert len(shown) == 7
    for i, (title, color) in enumerate(shown):
        assert title.replace("\n", " / ") == f"true: {y[i]} / pred: {p[i]}"
        assert color == (to_rgba("#d62728") if y[i] != p[i] else to_rgba("black"))
    # the displayed pixels are the input pixels (NCHW -> HWC)
    first = [ax for ax in fig.axes if ax.images][0].images[0].get_array()
    np.testing.assert_allclose(first, images[0].transpose(1, 2, 0), rtol=1e-6)
    # a random subset with a seed is reproducible and only misclassified ones
    f1 = viz.plot_image_grid(images, y, p, max_images=3, rng=5, dpi=DPI)
    f2 = viz.plot_image_grid(images, y, p, max_images=3, rng=np.random.default_rng(5), dpi=DPI)
    assert _shown_titles(f1) == _shown_titles(f2)
    assert all(c == to_rgba("#d62728") for _, c in _shown_titles(f1))


def test_plot_image_grid_without_labels_and_without_mistakes(tmp_path):
    rng = np.random.default_rng(3)
    images = uint8_nhwc(rng, n=6)
    fig = viz.plot_image_grid(images, path=tmp_path / "plain.png", dpi=DPI)
    check_png(str(tmp_path / "plain.png"), fig)
    assert len([ax for ax in fig.axes if ax.images]) == 6
    y = np.arange(6) % 2
    fig = viz.plot_image_grid(images, y, y, path=tmp_path / "none.png", dpi=DPI)
    check_png(str(tmp_path / "none.png"), fig)
    assert "no misclassified" in " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_plot_image_grid_accepts_scores_for_predictions():
    rng = np.random.default_rng(4)
    images = float_nchw(rng, n=5, c=1)
    scores = rng.standard_normal((5, 3))
    y = scores.argmax(axis=1)
    y[0] = (y[0] + 1) % 3
    fig = viz.plot_image_grid(images, y, scores, dpi=DPI)
    assert len(_shown_titles(fig)) == 1


@pytest.mark.parametrize("kwargs, exc", [
    (dict(images=np.zeros((2, 5, 8, 8), np.float32)), ValueError),          # 5 channels
    (dict(images=np.zeros((2, 8, 8, 3), np.float32)), ValueError),          # float NHWC without flag
    (dict(images=np.zeros((2, 3, 8, 8), np.uint8)), ValueError),            # uint8 NCHW without flag
    (dict(images=np.zeros((8, 8))), ValueError),                            # rank 2
    (dict(images=np.zeros((2, 3, 4, 4), bool)), TypeError),
    (dict(images=np.full((2, 4, 4, 3), 300, np.int64)), ValueError),        # out of [0, 255]
    (dict(images=np.zeros((2, 1, 4, 4)), true_labels=[0, 1, 2]), ValueError),
    (dict(images=np.zeros((2, 1, 4, 4)), true_labels=[0.0, 1.0]), TypeError),
    (dict(images=np.zeros((2, 1, 4, 4)), true_labels=[0, 5], class_names=["a", "b"]), ValueError),
    (dict(images=np.zeros((2, 1, 4, 4)), max_images=0), ValueError),
    (dict(images=np.zeros((2, 1, 4, 4)), ncols=-1), ValueError),
])
def test_plot_image_grid_bad_input(kwargs, exc):
    with pytest.raises(exc):
        viz.plot_image_grid(**kwargs, dpi=DPI)


def test_channels_last_override():
    rng = np.random.default_rng(5)
    x = rng.random((3, 8, 8, 3))
    fig = viz.plot_image_grid(x, channels_last=True, dpi=DPI)
    np.testing.assert_allclose([ax for ax in fig.axes if ax.images][0].images[0].get_array(), x[0])


# ----------------------------------------------------------------------------- image rows

def test_plot_image_rows(tmp_path):
    rng = np.random.default_rng(6)
    x = float_nchw(rng, n=4)
    delta = rng.uniform(-0.03, 0.03, size=x.shape)
    rows = [x, np.clip(x + delta, 0, 1), delta]
    fig = viz.plot_image_rows(rows, row_titles=["original", "eps=0.03", "perturbation"],
                              col_titles=["a", "b", "c", "d"], cell_titles=[None, ["p0", "p1", "p2", "p3"], None],
                              rescale=[None, None, "symmetric"], title="FGSM", path=tmp_path / "rows.png", dpi=DPI)
    check_png(str(tmp_path / "rows.png"), fig)
    axes = np.array(fig.axes).reshape(3, 4)
    assert [axes[r, 0].get_ylabel() for r in range(3)] == ["original", "eps=0.03", "perturbation"]
    assert [axes[0, i].get_title() for i in range(4)] == ["a", "b", "c", "d"]
    assert axes[1, 2].get_title() == "p2"
    shown = axes[2, 1].images[0].get_array()
    expect = 0.5 + delta[1].transpose(1, 2, 0) / (2 * np.abs(delta).max())
    np.testing.assert_allclose(shown, expect, rtol=1e-6)


def test_plot_image_rows_mixed_batches(tmp_path):
    rng = np.random.default_rng(7)
    rows = [uint8_nhwc(rng, n=5, c=1), float_nchw(rng, n=3, c=1), float_nchw(rng, n=5, c=3) * 4 - 2]
    fig = viz.plot_image_rows(rows, rescale=[None, None, "minmax"], path=tmp_path / "mixed.png", dpi=DPI)
    check_png(str(tmp_path / "mixed.png"), fig)
    axes = np.array(fig.axes).reshape(3, 5)
    assert [len(ax.images) for ax in axes[1]] == [1, 1, 1, 0, 0]
    arr = np.stack([ax.images[0].get_array() for ax in axes[2]])
    assert arr.min() == pytest.approx(0.0) and arr.max() == pytest.approx(1.0)


@pytest.mark.parametrize("kwargs, exc", [
    (dict(rows=[]), ValueError),
    (dict(rows=np.zeros((2, 1, 4, 4))), TypeError),
    (dict(rows=[np.zeros((2, 1, 4, 4))], row_titles=["a", "b"]), ValueError),
    (dict(rows=[np.zeros((2, 1, 4, 4))], col_titles=["a", "b", "c"]), ValueError),
    (dict(rows=[np.zeros((2, 1, 4, 4))], rescale="log"), ValueError),
    (dict(rows=[np.zeros((2, 1, 4, 4))], rescale=[None, None]), ValueError),
    (dict(rows=[np.zeros((2, 7, 4, 4))]), ValueError),
])
def test_plot_image_rows_bad_input(kwargs, exc):
    with pytest.raises(exc):
        viz.plot_image_rows(**kwargs, dpi=DPI)


# ----------------------------------------------------------------------------- curves and bars

def test_plot_curve(tmp_path):
    eps = [0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255]
    ys = {"FGSM": [0.9, 0.6, 0.4, 0.2, 0.05], "PGD": [0.9, 0.5, 0.2, 0.05, 0.0]}
    fig = viz.plot_curve(eps, ys, "epsilon", "accuracy", errors={"PGD": [0.01, 0.02, 0.03, 0.02, 0.0]},
                         path=tmp_path / "curve.png", dpi=DPI, title="robustness")
    check_png(str(tmp_path / "curve.png"), fig)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "epsilon" and ax.get_ylabel() == "accuracy"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["FGSM", "PGD"]
    assert len(ax.containers) == 1                      # one error-bar container
    fig = viz.plot_curve([1, 10, 100], {"acc": [0.5, 0.6, 0.7]}, logx=True, dpi=DPI)
    assert fig.axes[0].get_xscale() == "log"
    fig = viz.plot_curve(eps, ys, logx="symlog", dpi=DPI)
    assert fig.axes[0].get_xscale() == "symlog"


@pytest.mark.parametrize("args, kwargs, exc", [
    (([0, 1], {"a": [1, 2, 3]}), {}, ValueError),
    (([0, 1], [1, 2]), {}, TypeError),
    (([0, 1], {}), {}, ValueError),
    (([0, 1], {"a": [1, 2]}), dict(logx=True), ValueError),             # x = 0 on a log axis
    (([1, 2], {"a": [1, 2]}), dict(errors={"b": [0, 0]}), ValueError),
    (([1, 2], {"a": [1, 2]}), dict(errors={"a": [0, 0, 0]}), ValueError),
    (([1, 2], {"a": [1, 2]}), dict(errors={"a": [-1, 0]}), ValueError),
    (([[1, 2]], {"a": [1, 2]}), {}, ValueError),
])
def test_plot_curve_bad_input(args, kwargs, exc):
    with pytest.raises(exc):
        viz.plot_curve(*args, **kwargs, dpi=DPI)


def test_plot_bar(tmp_path):
    labels = ["conv2d_forward", "conv2d_backward", "maxpool"]
    fig = viz.plot_bar(labels, [12.0, 30.0, 3.0], log=True, ylabel="ms", path=tmp_path / "bar.png", dpi=DPI)
    check_png(str(tmp_path / "bar.png"), fig)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert heights == [12.0, 30.0, 3.0] and ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == labels
    fig = viz.plot_bar(labels, {"nnlite": [12.0, 30.0, 3.0], "torch": [2.0, 5.0, 0.5]},
                       errors={"torch": [0.1, 0.2, 0.05]}, horizontal=True, path=tmp_path / "grouped.png", dpi=DPI)
    check_png(str(tmp_path / "grouped.png"), fig)
    widths = sorted(p.get_width() for p in fig.axes[0].patches)
    assert widths == sorted([12.0, 30.0, 3.0, 2.0, 5.0, 0.5])


@pytest.mark.parametrize("args, kwargs, exc", [
    ((["a", "b"], [1.0]), {}, ValueError),
    ((["a", "b"], [1.0, 0.0]), dict(log=True), ValueError),
    (([], []), {}, ValueError),
    (("ab", [1.0, 2.0]), {}, TypeError),
    ((["a"], {"s": [1.0, 2.0]}), {}, ValueError),
    ((["a"], [1.0]), dict(errors={"s": [1.0]}), TypeError),
    ((["a"], [1.0]), dict(errors=[-1.0]), ValueError),
])
def test_plot_bar_bad_input(args, kwargs, exc):
    with pytest.raises(exc):
        viz.plot_bar(*args, **kwargs, dpi=DPI)


# ----------------------------------------------------------------------------- saving

def test_save_overwrites_atomically_and_checks_suffix(tmp_path):
    path = tmp_path / "fig.png"
    path.write_bytes(b"old")
    fig = viz.plot_bar(["a"], [1.0], path=path, dpi=DPI)
    check_png(str(path), fig)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(tmp_path)) == ["fig.png"]
    with pytest.raises(ValueError):
        viz.save_figure(fig, tmp_path / "fig.jpeg")
    with pytest.raises(TypeError):
        viz.save_figure("not a figure", tmp_path / "x.png")
    out = viz.save_figure(fig, str(tmp_path / "again.svg"))
    assert os.path.getsize(out) > 0


def test_failed_save_leaves_no_temp_file(tmp_path, monkeypatch):
    fig = viz.plot_bar(["a"], [1.0], dpi=DPI)

    def boom(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(fig, "savefig", boom)
    with pytest.raises(RuntimeError):
        viz.save_figure(fig, tmp_path / "f.png")
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- readable figures (issue 14)

def test_plot_history_reads_like_prose_and_marks_the_restored_epoch(tmp_path):
    hist = {"loss": [2.0, 1.5, 1.2, 1.1, 1.0], "val_loss": [2.1, 1.7, 1.5, 1.6, 1.7],
            "acc": [0.3, 0.5, 0.6, 0.7, 0.75], "val_acc": [0.3, 0.45, 0.55, 0.52, 0.5]}
    fig = viz.plot_history(hist, path=tmp_path / "h.png", dpi=DPI, mark_epoch=3)
    check_png(str(tmp_path / "h.png"), fig)
    loss_ax, acc_ax = fig.axes
    assert acc_ax.get_ylabel() == "accuracy" and acc_ax.get_title() == "accuracy"
    assert loss_ax.get_ylabel() == "loss"
    for ax in (loss_ax, acc_ax):
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)          # integer epoch ticks
        assert ax.get_legend() is None                                     # legend off the data
        marks = [ln for ln in ax.get_lines() if list(ln.get_xdata()) == [3, 3]]
        assert marks, "a vertical line at the restored epoch"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["train", "validation", "restored: epoch 3"]
    ring = [ln for ln in acc_ax.get_lines() if list(ln.get_xdata()) == [3]]
    assert ring and ring[0].get_ydata()[0] == pytest.approx(0.55)           # on the validation curve
    # one epoch: a single integer tick, not 0.96 ... 1.04
    one = viz.plot_history({"loss": [1.0], "val_loss": [0.9]}, metrics="loss", dpi=DPI)
    ax = one.axes[0]
    shown = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert shown == [1.0]
    with pytest.raises(ValueError):
        viz.plot_history(hist, mark_epoch=0, dpi=DPI)
    with pytest.raises(TypeError):
        viz.plot_history(hist, mark_epoch=2.5, dpi=DPI)


def test_metric_label():
    assert viz.metric_label("acc") == "accuracy"
    assert viz.metric_label("val_acc") == "validation accuracy"
    assert viz.metric_label("top5_acc") == "top-5 accuracy"
    assert viz.metric_label("lr") == "learning rate"


def test_plot_ablation_keeps_small_differences_small(tmp_path):
    vals = [0.0, 1e-3, 1e-2, 1e-1]
    fig = viz.plot_ablation(vals, [0.4098, 0.4101, 0.4100, 0.4111], stds=[0.002, 0.001, 0.003, 0.002],
                            n=[3, 3, 3, 3], baseline=0, reference=[0.4098, 0.4103, None, 0.4108],
                            param_label="Regularization coefficient", path=tmp_path / "a.png", dpi=DPI)
    check_png(str(tmp_path / "a.png"), fig)
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    assert hi - lo >= 5.0                                  # at least 5 points: 0.1 is not full height
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "0.001", "0.01", "0.1"]
    assert list(ax.get_xticks()) == [0, 1, 2, 3]           # evenly spaced: no overlapping log labels
    assert "Regularization coefficient" in ax.get_xlabel() and ax.get_ylabel() == "test accuracy (%)"
    assert "Test accuracy vs regularization coefficient" == ax.get_title()
    assert ax.containers and ax.containers[0].has_yerr      # error bars: seeds repeat
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["nnlite (mean ± std over 3 seeds)", "course report", "baseline"]
    assert {t.get_text() for t in ax.texts} >= {"40.98", "41.11"}
    # one seed: no error bars; a wide range is shown as it is
    fig = viz.plot_ablation([128, 256], [0.30, 0.45], baseline=1, dpi=DPI)
    ax = fig.axes[0]
    assert not ax.containers[0].has_yerr
    lo, hi = ax.get_ylim()
    assert lo < 30 and hi > 45 and hi - lo < 30


@pytest.mark.parametrize("kwargs, exc", [
    (dict(values=[], means=[]), TypeError),
    (dict(values=[1, 2], means=[0.1]), ValueError),
    (dict(values=[1, 2], means=[0.1, 0.2], stds=[0.1]), ValueError),
    (dict(values=[1, 2], means=[0.1, 0.2], stds=[-0.1, 0.1]), ValueError),
    (dict(values=[1, 2], means=[0.1, 0.2], baseline=2), ValueError),
    (dict(values=[1, 2], means=[0.1, 0.2], param_label=3), TypeError),
])
def test_plot_ablation_bad_input(kwargs, exc):
    with pytest.raises(exc):
        viz.plot_ablation(kwargs.pop("values"), kwargs.pop("means"), dpi=DPI, **kwargs)


def test_plot_attack_curves_colour_is_model_line_style_is_attack(tmp_path):
    eps = [0.0, 0.01, 0.02, 0.03]
    curves = [{"model": "standard", "attack": "FGSM", "x": eps, "y": [0.9, 0.5, 0.2, 0.1]},
              {"model": "standard", "attack": "PGD", "x": eps, "y": [0.9, 0.4, 0.1, 0.02]},
              {"model": "robust", "attack": "FGSM", "x": eps, "y": [0.85, 0.7, 0.6, 0.5]},
              {"model": "robust", "attack": "PGD", "x": eps, "y": [0.85, 0.7, 0.6, 0.5]}]  # identical
    fig = viz.plot_attack_curves(curves, title="accuracy under attack", path=tmp_path / "att.png", dpi=DPI)
    check_png(str(tmp_path / "att.png"), fig)
    lines = fig.axes[0].get_lines()
    assert len(lines) == 4
    colors = [to_rgba(ln.get_color()) for ln in lines]
    assert colors[0] == colors[1] and colors[2] == colors[3] and colors[0] != colors[2]
    assert lines[0].get_linestyle() == lines[2].get_linestyle() != lines[1].get_linestyle()
    # the identical robust curves stay distinguishable: other marker, hollow, drawn on top
    assert lines[3].get_marker() != lines[2].get_marker()
    assert to_rgba(lines[3].get_markerfacecolor()) == to_rgba("white")
    assert lines[3].get_zorder() > lines[2].get_zorder()
    # legends outside the axes (figure legends), one for models, one for attacks
    titles = sorted(leg.get_title().get_text() for leg in fig.legends)
    assert titles == ["attack (line style)", "model (colour)"]
    assert not fig.axes[0].get_legend()
    with pytest.raises(ValueError):
        viz.plot_attack_curves([{"model": "m", "attack": "a", "x": [0, 1], "y": [1]}], dpi=DPI)
    with pytest.raises(TypeError):
        viz.plot_attack_curves([], dpi=DPI)
