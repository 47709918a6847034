"""One table of bad arguments for every public constructor and entry point (issue 13).

Each row: (callable that makes the bad call, expected exception, message fragment). The
fragment is a regex that names the argument and, where it matters, what was expected or
given. Keep it growing with every new public API: a row per argument that can be wrong.
(Attack inputs, e.g. FGSM/PGD on images with NaN, have their own table in test_attacks.py.)
"""
import json
import os

import numpy as np
import pytest

import nnlite.nn as nn
from nnlite import losses, metrics
from nnlite.data import one_hot, stratified_split, stratified_subset, to_float_nchw
from nnlite.data.formats import read_cifar_python_batch, read_idx, read_npz
from nnlite.optim import (LARS, SGD, Adam, AdamW, CosineAnnealingLR, ExponentialLR, LambdaDecay,
                          MultiplicativeDecay, MultiStepLR, ReduceLROnPlateau, RMSprop, StepLR, WarmupCosine,
                          clip_grad_norm, l2_penalty)
from nnlite.sweep import ResultsWriter, Study, read_results, run_study
from nnlite.train import (EarlyStopping, History, ModelCheckpoint, Trainer, load_checkpoint,
                          save_checkpoint)

F32 = np.float32


def lin():
    return nn.Linear(4, 3, rng=0)


def params():
    return lin().parameters()


def opt():
    return SGD(params(), lr=0.1)


def trainer(**kw):
    m = nn.Sequential(nn.Linear(4, 3, rng=0))
    kw.setdefault("progress", False)
    return Trainer(m, losses.SoftmaxCrossEntropy(), SGD(m.parameters(), lr=0.1), **kw)


X = np.zeros((6, 4), F32)
Y = np.array([0, 1, 2, 0, 1, 2])


def fit(**kw):
    args = dict(x=X, y=Y, epochs=1)
    args.update(kw)
    return trainer().fit(**args)


def forwarded(layer, x):
    layer.forward(x)
    return layer


def ckpt_path(tmp="/tmp/nnlite-bad-args"):
    os.makedirs(tmp, exist_ok=True)
    return os.path.join(tmp, f"c{os.getpid()}.npz")


ROWS = [
    # -- layers: constructors -----------------------------------------------------------------
    ("Linear(3.5, 3)", lambda: nn.Linear(3.5, 3), TypeError, r"in_features must be an int, got float"),
    ("Linear('3', 3)", lambda: nn.Linear("3", 3), TypeError, r"in_features must be an int, got str"),
    ("Linear(3, -2)", lambda: nn.Linear(3, -2), ValueError, r"out_features must be >= 1, got -2"),
    ("Linear(3, 0)", lambda: nn.Linear(3, 0), ValueError, r"out_features must be >= 1, got 0"),
    ("Linear(bias='no')", lambda: nn.Linear(3, 2, bias="no"), TypeError, r"bias must be a bool"),
    ("Linear(init=?)", lambda: nn.Linear(2, 2, init="zeros?"), ValueError, "unknown initializer"),
    ("Linear(rng='seed')", lambda: nn.Linear(2, 2, rng="seed"), TypeError, "rng must be"),
    ("Conv2d(1.0, 4, 3)", lambda: nn.Conv2d(1.0, 4, 3), TypeError, r"in_channels must be an int"),
    ("Conv2d(1, -4, 3)", lambda: nn.Conv2d(1, -4, 3), ValueError, r"out_channels must be >= 1"),
    ("Conv2d kernel None", lambda: nn.Conv2d(1, 4, None), TypeError,
     r"kernel_size must be a non-negative int or a pair of ints, got NoneType"),
    ("Conv2d kernel 3.0", lambda: nn.Conv2d(1, 4, 3.0), TypeError, r"kernel_size .* got float"),
    ("Conv2d kernel (3, 2.5)", lambda: nn.Conv2d(1, 4, (3, 2.5)), TypeError, r"kernel_size .*holding float"),
    ("Conv2d kernel 0", lambda: nn.Conv2d(1, 1, 0), ValueError, "kernel_size"),
    ("Conv2d kernel (3, 3, 3)", lambda: nn.Conv2d(1, 1, (3, 3, 3)), ValueError, r"kernel_size .*3 values"),
    ("Conv2d stride 0", lambda: nn.Conv2d(1, 1, 3, stride=0), ValueError, "stride"),
    ("Conv2d padding -1", lambda: nn.Conv2d(1, 1, 3, padding=-1), ValueError, "padding"),
    ("Conv2d padding 'full'", lambda: nn.Conv2d(1, 1, 3, padding="full"), ValueError, "padding"),
    ("MaxPool2d(2.5)", lambda: nn.MaxPool2d(2.5), TypeError, r"kernel_size .* got float"),
    ("MaxPool2d(None)", lambda: nn.MaxPool2d(None), TypeError, r"kernel_size .* got NoneType"),
    ("AvgPool2d(stride=0)", lambda: nn.AvgPool2d(2, stride=0), ValueError, "stride"),
    ("Dropout('0.5')", lambda: nn.Dropout("0.5"), TypeError, r"drop probability\) must be a real number, got str"),
    ("Dropout(1.0)", lambda: nn.Dropout(1.0), ValueError, r"drop probability\) must be in \[0.0, 1.0\)"),
    ("Dropout(nan)", lambda: nn.Dropout(float("nan")), ValueError, "drop probability.*finite"),
    ("LeakyReLU('a')", lambda: nn.LeakyReLU("a"), TypeError, r"negative_slope must be a real number, got str"),
    ("LeakyReLU(inf)", lambda: nn.LeakyReLU(float("inf")), ValueError, r"negative_slope must be a finite"),
    ("Softmax(axis=1.0)", lambda: nn.Softmax(axis=1.0), TypeError, "axis must be an int"),
    ("BatchNorm1d(eps=-1)", lambda: nn.BatchNorm1d(4, eps=-1), ValueError, r"eps must be in \(0.0, inf\), got -1"),
    ("BatchNorm1d(eps=0)", lambda: nn.BatchNorm1d(4, eps=0), ValueError, r"eps must be in \(0.0"),
    ("BatchNorm2d(momentum=2)", lambda: nn.BatchNorm2d(4, momentum=2), ValueError, r"momentum must be in \[0.0, 1.0\]"),
    ("BatchNorm1d('4')", lambda: nn.BatchNorm1d("4"), TypeError, "num_features must be an int"),
    ("BatchNorm1d(0)", lambda: nn.BatchNorm1d(0), ValueError, "num_features must be >= 1"),
    ("Normalize(std=[nan])", lambda: nn.Normalize([0.5], [float("nan")]), ValueError,
     r"std must be finite and > 0, got nan at index 0"),
    ("Normalize(std=[0])", lambda: nn.Normalize([0.5], [0.0]), ValueError, r"std must be finite and > 0"),
    ("Normalize(mean=[inf])", lambda: nn.Normalize([np.inf], [1.0]), ValueError, r"mean must be finite"),
    ("Normalize(mean='a')", lambda: nn.Normalize("a", [1.0]), TypeError, r"mean must hold real numbers"),
    ("Normalize lengths", lambda: nn.Normalize([0, 0], [1.0]), ValueError, "same length"),
    ("Sequential('relu')", lambda: nn.Sequential(nn.ReLU(), "relu"), TypeError, "Module"),
    # -- layers: backward before forward, bad dout ------------------------------------------------
    ("Linear.backward first", lambda: lin().backward(np.zeros((2, 3), F32)), RuntimeError, "call forward first"),
    ("Conv2d.backward first", lambda: nn.Conv2d(1, 1, 3).backward(np.zeros((1, 1, 2, 2), F32)),
     RuntimeError, "call forward first"),
    ("BatchNorm1d.backward first", lambda: nn.BatchNorm1d(3).backward(np.zeros((2, 3), F32)),
     RuntimeError, "call forward first"),
    ("ReLU.backward first", lambda: nn.ReLU().backward(np.zeros(3, F32)), RuntimeError, "call forward first"),
    ("MaxPool2d.backward first", lambda: nn.MaxPool2d(2).backward(np.zeros((1, 1, 1, 1), F32)),
     RuntimeError, "call forward first"),
    ("Dropout.backward first", lambda: nn.Dropout(0.5, rng=0).backward(np.zeros(3, F32)),
     RuntimeError, "call forward first"),
    ("Normalize.backward first", lambda: nn.Normalize([0.0], [1.0]).backward(np.zeros((1, 1), F32)),
     RuntimeError, "call forward first"),
    ("Linear dout list", lambda: forwarded(lin(), np.zeros((2, 4), F32)).backward([[0.0] * 3] * 2),
     TypeError, r"Linear.backward: dout must be a numpy.ndarray .* got list"),
    ("Linear dout shape", lambda: forwarded(lin(), np.zeros((2, 4), F32)).backward(np.zeros((2, 4), F32)),
     ValueError, r"Linear.backward: dout must have the forward output's shape \(2, 3\), got \(2, 4\)"),
    ("Linear dout ints", lambda: forwarded(lin(), np.zeros((2, 4), F32)).backward(np.zeros((2, 3), int)),
     TypeError, "dout must have a floating dtype"),
    ("Conv2d dout shape", lambda: forwarded(nn.Conv2d(1, 2, 3, rng=0), np.zeros((1, 1, 5, 5), F32)).backward(
        np.zeros((1, 2, 5, 5), F32)), ValueError, r"shape \(1, 2, 3, 3\), got \(1, 2, 5, 5\)"),
    ("BatchNorm2d dout shape", lambda: forwarded(nn.BatchNorm2d(2), np.ones((2, 2, 3, 3), F32)).backward(
        np.zeros((2, 2, 3), F32)), ValueError, "BatchNorm2d.backward: dout must have"),
    ("ReLU dout list", lambda: forwarded(nn.ReLU(), np.zeros((2, 3), F32)).backward([1.0]), TypeError, "got list"),
    ("MaxPool2d dout shape", lambda: forwarded(nn.MaxPool2d(2), np.zeros((1, 1, 4, 4), F32)).backward(
        np.zeros((1, 1, 4, 4), F32)), ValueError, r"shape \(1, 1, 2, 2\)"),
    ("Dropout dout shape", lambda: forwarded(nn.Dropout(0.5, rng=0), np.zeros((2, 3), F32)).backward(
        np.zeros((3, 2), F32)), ValueError, r"Dropout.backward: dout must have the forward output's shape"),
    ("Normalize dout list", lambda: forwarded(nn.Normalize([0.0], [1.0]), np.zeros((2, 1), F32)).backward(
        [[1.0], [1.0]]), TypeError, "got list"),
    # -- Module ---------------------------------------------------------------------------------------
    ("load_state_dict(path)", lambda: lin().load_state_dict("weights.npz"), TypeError,
     r"expects state: a dict of arrays .* got str; to read a file use nnlite.train.load_checkpoint"),
    ("load_state_dict(None)", lambda: lin().load_state_dict(None), TypeError, r"a dict of arrays .* got NoneType"),
    ("load_state_dict shape", lambda: lin().load_state_dict({"weight": np.zeros((2, 2), F32),
                                                             "bias": np.zeros(3, F32)}),
     ValueError, r"shape mismatch for 'weight'"),
    ("load_state_dict strict='no'", lambda: lin().load_state_dict(lin().state_dict(), strict="no"),
     TypeError, "strict must be a bool"),
    # -- losses ---------------------------------------------------------------------------------------
    ("CE label_smoothing -0.1", lambda: losses.SoftmaxCrossEntropy(label_smoothing=-0.1), ValueError,
     r"label_smoothing must be in \[0.0, 1.0\]"),
    ("CE label_smoothing '0.1'", lambda: losses.SoftmaxCrossEntropy(label_smoothing="0.1"), TypeError,
     "label_smoothing must be a real number"),
    ("CE class_weights nan", lambda: losses.SoftmaxCrossEntropy(class_weights=[1.0, np.nan]), ValueError,
     r"class_weights must be finite, got nan at index 1"),
    ("CE class_weights < 0", lambda: losses.SoftmaxCrossEntropy(class_weights=[1.0, -2.0]), ValueError,
     r"class_weights must be >= 0, got -2.0 at index 1"),
    ("CE class_weights zeros", lambda: losses.SoftmaxCrossEntropy(class_weights=[0.0, 0.0]), ValueError,
     "at least one positive"),
    ("CE class_weights str", lambda: losses.SoftmaxCrossEntropy(class_weights="ab"), TypeError,
     "class_weights must hold real numbers"),
    ("Hinge margin -1", lambda: losses.MulticlassHinge(margin=-1), ValueError, r"margin must be in \[0.0"),
    ("BCEWithLogits nan target", lambda: losses.BCEWithLogits().forward(np.zeros(2), np.array([0.0, np.nan])),
     ValueError, "BCEWithLogits: target must be finite, got nan"),
    ("MSE inf target", lambda: losses.MSE().forward(np.zeros(2), np.array([0.0, np.inf])), ValueError,
     "MSE: target must be finite"),
    ("loss.backward first", lambda: losses.MSE().backward(), RuntimeError, "call forward first"),
    # -- optimizers, schedules, gradient tools --------------------------------------------------------
    ("SGD(params=None)", lambda: SGD(None, lr=0.1), TypeError, "params"),
    ("SGD(lr=-1)", lambda: SGD(params(), lr=-1.0), ValueError, "lr"),
    ("SGD(lr='0.1')", lambda: SGD(params(), lr="0.1"), TypeError, "lr"),
    ("SGD(momentum=1.5)", lambda: SGD(params(), lr=0.1, momentum=1.5), ValueError, "momentum"),
    ("Adam(betas=(1.0, 0.9))", lambda: Adam(params(), betas=(1.0, 0.9)), ValueError, "betas"),
    ("Adam(eps=-1)", lambda: Adam(params(), eps=-1.0), ValueError, "eps"),
    ("AdamW(weight_decay=nan)", lambda: AdamW(params(), weight_decay=float("nan")), ValueError, "weight_decay"),
    ("RMSprop(alpha=2)", lambda: RMSprop(params(), alpha=2.0), ValueError, "alpha"),
    ("LARS(eta=0)", lambda: LARS(params(), lr=0.1, eta=0.0), ValueError, "eta"),
    ("LARS(momentum=1)", lambda: LARS(params(), lr=0.1, momentum=1.0), ValueError, "momentum"),
    ("optimizer.load_state_dict(path)", lambda: opt().load_state_dict("opt.npz"), TypeError,
     "expects a dict of arrays, got str"),
    ("optimizer.check_state_dict(None)", lambda: opt().check_state_dict(None), TypeError,
     "expects a dict of arrays, got NoneType"),
    ("StepLR(step_size=0)", lambda: StepLR(opt(), step_size=0), ValueError, "step_size must be >= 1"),
    ("StepLR(optimizer=None)", lambda: StepLR(None, 1), TypeError, "needs an nnlite.optim.Optimizer"),
    ("MultiStepLR([])", lambda: MultiStepLR(opt(), []), ValueError, "milestones must be a non-empty"),
    ("MultiplicativeDecay(gamma=-1)", lambda: MultiplicativeDecay(opt(), -1.0), ValueError, "gamma"),
    ("ExponentialLR(gamma=0)", lambda: ExponentialLR(opt(), 0.0), ValueError, "gamma"),
    ("LambdaDecay('f')", lambda: LambdaDecay(opt(), "f"), TypeError, "lr_lambda"),
    ("CosineAnnealingLR(T_max=0)", lambda: CosineAnnealingLR(opt(), T_max=0), ValueError, "T_max must be >= 1"),
    ("CosineAnnealingLR(T_max=2.5)", lambda: CosineAnnealingLR(opt(), T_max=2.5), TypeError, "T_max must be an int"),
    ("WarmupCosine(5, 3)", lambda: WarmupCosine(opt(), 5, 3), ValueError, "warmup_steps must be < total_steps"),
    ("WarmupCosine.set_total_steps fixed", lambda: WarmupCosine(opt(), 1, 10).set_total_steps(20), TypeError,
     "build it with total_steps=None"),
    ("ReduceLROnPlateau(factor=2)", lambda: ReduceLROnPlateau(opt(), factor=2.0), ValueError, "factor"),
    ("ReduceLROnPlateau(mode='low')", lambda: ReduceLROnPlateau(opt(), mode="low"), ValueError, "mode"),
    ("schedule.load_state_dict([])", lambda: StepLR(opt(), 1).load_state_dict([]), TypeError,
     "expects a dict of arrays, got list"),
    ("schedule.check_state_dict({})", lambda: StepLR(opt(), 1).check_state_dict({}), ValueError,
     "missing key 'last_epoch'"),
    ("clip_grad_norm(max_norm=-1)", lambda: clip_grad_norm(params(), -1.0), ValueError, "max_norm"),
    ("l2_penalty(reg=-1)", lambda: l2_penalty(params(), -1.0), ValueError, "reg"),
    # -- Trainer ----------------------------------------------------------------------------------------
    ("Trainer(model=None)", lambda: Trainer(None, losses.MSE(), opt()), TypeError, "model must be an nnlite Module"),
    ("Trainer(loss=None)", lambda: Trainer(lin(), None, opt()), TypeError, "loss must have forward"),
    ("Trainer(optimizer=None)", lambda: Trainer(lin(), losses.MSE(), None), TypeError, "optimizer must have step"),
    ("Trainer(callbacks=5)", lambda: trainer(callbacks=5), TypeError,
     "callbacks must be a list of Callback or None, got int"),
    ("Trainer(callbacks=EarlyStopping())", lambda: trainer(callbacks=EarlyStopping()), TypeError,
     r"pass \[callback\]"),
    ("Trainer(callbacks=['x'])", lambda: trainer(callbacks=["x"]), TypeError,
     r"callbacks\[0\] must be an nnlite Callback"),
    ("Trainer(batch_size=0)", lambda: trainer(batch_size=0), ValueError, "batch_size must be a positive int, got 0"),
    ("Trainer(batch_size=2.5)", lambda: trainer(batch_size=2.5), TypeError,
     "batch_size must be a positive int, got float"),
    ("Trainer(eval_batch_size=-1)", lambda: trainer(eval_batch_size=-1), ValueError, "eval_batch_size"),
    ("Trainer(rng=-1)", lambda: trainer(rng=-1), ValueError, "rng seed must be >= 0"),
    ("Trainer(rng=1.5)", lambda: trainer(rng=1.5), TypeError, "rng must be"),
    ("Trainer(transform=5)", lambda: trainer(transform=5), TypeError, "transform must be callable"),
    ("Trainer(grad_clip=-1)", lambda: trainer(grad_clip=-1), ValueError, "grad_clip must be a positive number"),
    ("Trainer(l2=-1)", lambda: trainer(l2=-1.0), ValueError, "l2 must be a non-negative number"),
    ("Trainer(progress='yes')", lambda: trainer(progress="yes"), ValueError, "progress must be"),
    ("Trainer(schedule_interval='batch')", lambda: trainer(schedule_interval="batch"), ValueError,
     "schedule_interval must be 'epoch' or 'step'"),
    ("Trainer(threads=0)", lambda: trainer(threads=0), ValueError, "threads must be a positive int"),
    ("Trainer(schedule=5)", lambda: trainer(schedule=5), TypeError, "schedule must have a step"),
    ("fit(x, None)", lambda: fit(y=None), TypeError, "y must be a numpy.ndarray .*got None"),
    ("fit(x=list)", lambda: fit(x=X.tolist()), TypeError, "x must be a numpy.ndarray, got list"),
    ("fit(y short)", lambda: fit(y=Y[:3]), ValueError, r"y must have one entry per sample of x: expected length 6"),
    ("fit(epochs=-1)", lambda: fit(epochs=-1), ValueError, "epochs must be a non-negative int"),
    ("fit(epochs=2.0)", lambda: fit(epochs=2.0), TypeError, "epochs must be a non-negative int, got float"),
    ("fit(epochs=1, initial_epoch=3)", lambda: fit(epochs=1, initial_epoch=3), ValueError,
     "initial_epoch=3 is after epochs=1"),
    ("fit(initial_epoch=-1)", lambda: fit(initial_epoch=-1), ValueError, "initial_epoch must be a non-negative int"),
    ("fit(val_split=1.5)", lambda: fit(val_split=1.5), ValueError, r"val_split must be a number in \[0, 1\)"),
    ("fit(val_split=0.01) empty", lambda: fit(val_split=0.01), ValueError, "leaves an empty validation set"),
    ("fit(val_data + val_split)", lambda: fit(val_data=(X, Y), val_split=0.2), ValueError,
     "either val_data or val_split"),
    ("fit(validation_data=x)", lambda: fit(validation_data=X), TypeError, "validation_data must be a pair"),
    ("fit(val_data + validation_data)", lambda: fit(val_data=(X, Y), validation_data=(X, Y)), ValueError,
     "either val_data or validation_data"),
    ("fit(x empty)", lambda: fit(x=X[:0], y=Y[:0]), ValueError, "x holds no samples"),
    ("evaluate(y=None)", lambda: trainer().evaluate(X, None), TypeError, "y must be a numpy.ndarray"),
    ("predict(batch_size=0)", lambda: trainer().predict(X, batch_size=0), ValueError, "batch_size must be a positive"),
    ("predict(x=list)", lambda: trainer().predict([[0.0] * 4]), TypeError, "x must be a numpy.ndarray"),
    # -- callbacks and History ------------------------------------------------------------------------
    ("EarlyStopping(patience=-1)", lambda: EarlyStopping(patience=-1), ValueError,
     "patience must be a non-negative int"),
    ("EarlyStopping(patience=1.5)", lambda: EarlyStopping(patience=1.5), ValueError, "patience"),
    ("EarlyStopping(mode='lowest')", lambda: EarlyStopping(mode="lowest"), ValueError,
     "mode must be 'auto', 'min' or 'max'"),
    ("EarlyStopping(min_delta=-1)", lambda: EarlyStopping(min_delta=-1), ValueError,
     "min_delta must be a non-negative"),
    ("EarlyStopping(monitor=3)", lambda: EarlyStopping(monitor=3), TypeError, "monitor must be a str"),
    ("EarlyStopping(restore_best_weights='y')", lambda: EarlyStopping(restore_best_weights="y"), TypeError,
     "restore_best_weights must be a bool"),
    ("EarlyStopping val_loss w/o validation", lambda: trainer(callbacks=[EarlyStopping()]).fit(X, Y, epochs=1),
     ValueError, "monitors 'val_loss', but fit has no validation data"),
    ("ModelCheckpoint(3)", lambda: ModelCheckpoint(3), TypeError, "path must be a str or os.PathLike"),
    ("ModelCheckpoint('')", lambda: ModelCheckpoint(""), ValueError, "path must be a non-empty"),
    ("ModelCheckpoint('{epoch')", lambda: ModelCheckpoint("{epoch.npz"), ValueError, "not a valid str.format pattern"),
    ("ModelCheckpoint(save_best_only='yes')", lambda: ModelCheckpoint("a.npz", save_best_only="yes"), TypeError,
     "save_best_only must be a bool"),
    ("ModelCheckpoint('{val_loss}') w/o validation",
     lambda: trainer(callbacks=[ModelCheckpoint("/nonexistent/{val_loss:.2f}.npz")]).fit(X, Y, epochs=1),
     ValueError, r"uses \{val_loss\}, but fit has no validation data"),
    ("History({'loss': 'x'})", lambda: History({"loss": ["x"]}), TypeError, r"history\['loss'\]\[0\] must be a number"),
    ("History(epoch=[-1])", lambda: History({"loss": [1.0]}, epoch=[-1]), ValueError, "epoch"),
    # -- checkpoints ------------------------------------------------------------------------------------
    ("save_checkpoint(3.5, m)", lambda: save_checkpoint(3.5, lin()), TypeError, "path must be a str or os.PathLike"),
    ("save_checkpoint(p, 'model')", lambda: save_checkpoint(ckpt_path(), "model"), TypeError,
     "model must be an nnlite Module"),
    ("save_checkpoint(epoch=-1)", lambda: save_checkpoint(ckpt_path(), lin(), epoch=-1), ValueError,
     "epoch must be a non-negative int or None"),
    ("save_checkpoint(extra=[1])", lambda: save_checkpoint(ckpt_path(), lin(), extra=[1]), TypeError,
     "extra must be a JSON-serializable dict"),
    ("save_checkpoint(optimizer=5)", lambda: save_checkpoint(ckpt_path(), lin(), optimizer=5), TypeError,
     "optimizer must have a state_dict"),
    ("load_checkpoint(p, None)", lambda: load_checkpoint(ckpt_path(), None), TypeError,
     "model must be an nnlite Module"),
    ("load_checkpoint(strict='yes')", lambda: load_checkpoint(ckpt_path(), lin(), strict="yes"), TypeError,
     "strict must be a bool"),
    ("load_checkpoint(trainer=5)", lambda: load_checkpoint(ckpt_path(), lin(), trainer=5), TypeError,
     "trainer must be an nnlite Trainer"),
    ("load_checkpoint(optimizer=5)", lambda: load_checkpoint(ckpt_path(), lin(), optimizer=5), TypeError,
     "optimizer must have a load_state_dict"),
    # -- data -------------------------------------------------------------------------------------------
    ("stratified_split(f=1.5)", lambda: stratified_split(Y, 1.5, rng=0), ValueError,
     r"val_fraction must be a number in \(0, 1\)"),
    ("stratified_split(float y)", lambda: stratified_split(Y.astype(float), 0.2, rng=0), TypeError, "integer"),
    ("stratified_split(rng=None)", lambda: stratified_split(Y, 0.5, rng="a"), TypeError, "rng"),
    ("stratified_subset(n=-1)", lambda: stratified_subset(Y, -1), ValueError, r"n must be in \[0, 6\]"),
    ("stratified_subset(n=2.0)", lambda: stratified_subset(Y, 2.0), TypeError, "n must be an int"),
    ("one_hot(num_classes=0)", lambda: one_hot(Y, 0), ValueError, "num_classes"),
    ("to_float_nchw(float)", lambda: to_float_nchw(np.zeros((1, 2, 2, 3))), (TypeError, ValueError), "uint8"),
    ("read_idx(bytes)", lambda: read_idx(b"\x00\x00\x08"), ValueError, "idx"),
    ("read_npz(missing)", lambda: read_npz("/nonexistent/file.npz"), FileNotFoundError, "file.npz"),
    ("read_cifar_python_batch(label 10)", lambda: read_cifar_python_batch(
        __import__("pickle").dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]})), ValueError,
     r"holds label 10, outside the valid range 0\.\.9"),
    # -- metrics ----------------------------------------------------------------------------------------
    ("accuracy(lengths)", lambda: metrics.accuracy(Y, Y[:3]), ValueError,
     "y_true and y_pred_or_scores must have the same number of samples, got 6 and 3"),
    ("accuracy(empty)", lambda: metrics.accuracy(Y[:0], Y[:0]), ValueError, "accuracy needs at least one sample"),
    ("top_k_accuracy(k=0)", lambda: metrics.top_k_accuracy(Y, np.zeros((6, 3)), 0), ValueError, "k"),
    ("confusion_matrix(num_classes=2)", lambda: metrics.confusion_matrix(Y, Y, num_classes=2), ValueError, "label"),
    ("confusion_matrix(float)", lambda: metrics.confusion_matrix(Y.astype(float) + 0.5, Y), (TypeError, ValueError),
     "integer"),
    ("classification_report(names)", lambda: metrics.classification_report(Y, Y, class_names=["a"]), ValueError,
     r"y_true holds label 2, outside the valid range \[0, 0\] for 1 classes"),
    # -- sweeps -----------------------------------------------------------------------------------------
    ("Study(baseline=5)", lambda: Study(5), TypeError, "baseline"),
    ("Study(seeds=[-1])", lambda: Study({"a": 1}, seeds=[-1]), ValueError, "seeds must be non-negative ints"),
    ("run_study(trial_fn=5)", lambda: run_study(Study({"a": 1}), 5, "/tmp/x.jsonl"), TypeError,
     "trial_fn must be callable"),
    ("run_study(results_path=3)", lambda: run_study(Study({"a": 1}), print, 3), TypeError, "results_path"),
    ("read_results(3)", lambda: read_results(3), TypeError, "results_path must be a str or os.PathLike"),
    ("ResultsWriter(None)", lambda: ResultsWriter(None), TypeError, "results_path must be a str or os.PathLike"),
]


@pytest.mark.parametrize("call, exc, fragment", [pytest.param(c, e, f, id=i) for i, c, e, f in ROWS])
def test_bad_argument_raises_a_clear_error(call, exc, fragment):
    with pytest.raises(exc, match=fragment):
        call()


def test_the_table_covers_the_public_constructors():
    """Every public class of nn (layers), losses, optim, train callbacks has at least one row."""
    import nnlite.optim as optim
    import nnlite.train as train
    ids = " ".join(i for i, *_ in ROWS)
    names = {"Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Dropout",
             "LeakyReLU", "Softmax", "Normalize", "Sequential", "SoftmaxCrossEntropy", "MulticlassHinge",
             "Trainer", "EarlyStopping", "ModelCheckpoint", "History", "save_checkpoint", "load_checkpoint",
             "stratified_split", "Study", "run_study", "read_results", "ResultsWriter"}
    names |= {n for n in optim.__all__ if n[0].isupper() and n not in ("Optimizer", "LRSchedule")}
    aliases = {"SoftmaxCrossEntropy": "CE", "MulticlassHinge": "Hinge"}
    missing = sorted(n for n in names if aliases.get(n, n) not in ids)
    assert not missing, f"add rows for {missing}"
    assert "fit(" in ids and "evaluate(" in ids and "predict(" in ids
    assert set(train.__all__) >= {"Trainer", "EarlyStopping", "ModelCheckpoint", "History"}


def test_accepted_spellings_still_work(tmp_path):
    """The checks refuse only what is wrong: the usual spellings are accepted."""
    nn.Linear(np.int64(3), 2, bias=np.True_)
    nn.Conv2d(1, 2, (3, 3), stride=[1, 1], padding=np.int32(1))
    nn.Dropout(0)
    nn.Dropout(np.float32(0.25))
    nn.LeakyReLU(0)
    nn.BatchNorm1d(3, eps=1e-3, momentum=0)
    nn.Normalize(np.array([0.5, 0.5, 0.5]), (0.25, 0.25, 0.25))
    losses.SoftmaxCrossEntropy(label_smoothing=0, class_weights=np.array([1, 0, 2]))
    Trainer(lin(), losses.MSE(), opt(), callbacks=None, progress=False)
    path = tmp_path / "c.npz"
    save_checkpoint(path, lin(), epoch=np.int64(2), extra={"a": [1, 2]})
    assert json.loads(json.dumps(load_checkpoint(path, lin())["extra"])) == {"a": [1, 2]}
