"""Tests for nnlite.optim learning-rate schedules.

Part 1 checks values against independently written expectations (no torch); part 2 compares
50 values with torch.optim.lr_scheduler when torch is installed.
"""
import io
import math

import numpy as np
import pytest

from nnlite.nn import Parameter
from nnlite.optim import (SGD, Adam, CosineAnnealingLR, ExponentialLR, LambdaDecay, MultiStepLR,
                          MultiplicativeDecay, ReduceLROnPlateau, StepLR, WarmupCosine)


def make_opt(lrs=(0.1,)):
    groups = [{"params": [Parameter(np.zeros(2))], "lr": lr} for lr in lrs]
    return SGD(groups, lr=lrs[0])


def collect(sched, n):
    """lr of group 0..k at t = 0 .. n-1 (the constructor sets t = 0)."""
    out = [sched.get_last_lr()]
    for _ in range(n - 1):
        sched.step()
        out.append(sched.get_last_lr())
    return np.array(out)


# =============================================================================================
# Part 1: closed-form / hand expectations
# =============================================================================================
class TestValues:
    def test_multiplicative_decay_is_repeated_multiplication(self):
        opt = make_opt((0.1, 0.02))
        got = collect(MultiplicativeDecay(opt, 0.9), 30)
        want, lr = [], np.array([0.1, 0.02])
        for _ in range(30):
            want.append(lr.copy())
            lr = lr * 0.9
        np.testing.assert_allclose(got, want, rtol=1e-13)
        assert opt.param_groups[1]["lr"] == got[-1, 1]

    def test_exponential_and_lambda_shorthand_equal_multiplicative(self):
        a = collect(MultiplicativeDecay(make_opt(), 0.9), 30)
        b = collect(ExponentialLR(make_opt(), 0.9), 30)
        c = collect(LambdaDecay(make_opt(), 0.9), 30)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)

    def test_lambda_decay(self):
        got = collect(LambdaDecay(make_opt((1.0, 2.0)), [lambda t: 1.0 / (t + 1), lambda t: t % 2]), 30)
        np.testing.assert_allclose(got[:, 0], [1.0 / k for k in range(1, 31)], rtol=1e-15)
        np.testing.assert_array_equal(got[:, 1], [2.0 * (t % 2) for t in range(30)])

    def test_step_lr(self):
        got = collect(StepLR(make_opt((1.0,)), step_size=3, gamma=0.5), 30)[:, 0]
        want = [1, 1, 1, .5, .5, .5, .25, .25, .25, .125, .125, .125]
        np.testing.assert_array_equal(got[:12], want)
        np.testing.assert_allclose(got, np.repeat(0.5 ** np.arange(10), 3), rtol=1e-15)

    def test_multistep_lr_unsorted_and_repeated_milestones(self):
        got = collect(MultiStepLR(make_opt((1.0,)), [20, 5, 12, 12], gamma=0.1), 30)[:, 0]
        want = [1.0] * 5 + [0.1] * 7 + [1e-3] * 8 + [1e-4] * 10
        np.testing.assert_allclose(got, want, rtol=1e-13)

    def test_cosine(self):
        base, eta, T = 0.1, 0.01, 10
        got = collect(CosineAnnealingLR(make_opt((base,)), T_max=T, eta_min=eta), 31)[:, 0]
        # (1 + cos x)/2 == cos^2(x/2)
        want = [eta + (base - eta) * math.cos(math.pi * t / (2 * T)) ** 2 for t in range(31)]
        np.testing.assert_allclose(got, want, rtol=1e-13)
        assert got[0] == base and got[5] == pytest.approx(0.055) and got[10] == pytest.approx(eta)
        assert np.all(np.diff(got[:11]) < 0) and np.all(np.diff(got[10:21]) > 0)
        assert got[20] == pytest.approx(base)  # PyTorch's form is periodic past T_max

    def test_warmup_cosine(self):
        base, eta, W, T, f = 0.1, 0.001, 5, 25, 0.2
        got = collect(WarmupCosine(make_opt((base,)), W, T, warmup_start_factor=f, eta_min=eta), 30)[:, 0]
        np.testing.assert_allclose(got[:W + 1], np.linspace(f * base, base, W + 1), rtol=1e-13)
        cos_part = [eta + (base - eta) * math.cos(math.pi * (t - W) / (2 * (T - W))) ** 2
                    for t in range(W, T + 1)]
        np.testing.assert_allclose(got[W:T + 1], cos_part, rtol=1e-13)
        np.testing.assert_array_equal(got[T:], eta)  # stays at eta_min after total_steps

    def test_warmup_from_zero_and_without_warmup(self):
        got = collect(WarmupCosine(make_opt((1.0,)), 4, 10, warmup_start_factor=0.0), 5)[:, 0]
        np.testing.assert_allclose(got, [0.0, 0.25, 0.5, 0.75, 1.0], rtol=1e-15)
        a = collect(WarmupCosine(make_opt(), 0, 12, eta_min=0.01), 13)
        b = collect(CosineAnnealingLR(make_opt(), 12, eta_min=0.01), 13)
        np.testing.assert_allclose(a, b, rtol=1e-15)

    def test_lr_at_does_not_change_anything(self):
        opt = make_opt()
        s = StepLR(opt, 2)
        assert s.lr_at(4) == [pytest.approx(0.001)]
        assert s.last_epoch == 0 and opt.lr == 0.1

    def test_written_lr_is_python_float(self):
        opt = make_opt()
        s = ExponentialLR(opt, np.float64(0.5))
        s.step()
        assert type(opt.param_groups[0]["lr"]) is float and opt.lr == 0.05
        assert all(type(x) is float for x in s.get_last_lr())


class TestPlateau:
    def _run(self, metrics, **kw):
        opt = make_opt((1.0,))
        s = ReduceLROnPlateau(opt, **kw)
        out = []
        for m in metrics:
            s.step(m)
            out.append(s.get_last_lr()[0])
        return out, opt, s

    def test_constant_metric_no_cooldown(self):
        got, _, _ = self._run([1.0] * 10, factor=0.5, patience=2)
        assert got == [1, 1, 1, .5, .5, .5, .25, .25, .25, .125]

    def test_equal_metric_is_not_an_improvement(self):
        # improvement is strict: with threshold=0 an unchanged metric is a bad epoch
        got, _, _ = self._run([2.0] * 5, factor=0.5, patience=1, threshold=0.0)
        assert got == [1, 1, .5, .5, .25]
        got, _, _ = self._run([2.0] * 5, mode="max", factor=0.5, patience=1, threshold=0.0,
                              threshold_mode="abs")
        assert got == [1, 1, .5, .5, .25]

    def test_cooldown(self):
        got, _, _ = self._run([1.0] * 12, factor=0.5, patience=2, cooldown=1)
        assert got == [1, 1, 1, .5, .5, .5, .5, .25, .25, .25, .25, .125]

    def test_improvement_resets_and_rel_threshold(self):
        # rel threshold 0.1: an improvement must beat best*0.9
        metrics = [10, 9.5, 9.2, 9.1, 8.0, 7.9, 7.9, 7.9, 7.0, 7.0]
        got, _, s = self._run(metrics, factor=0.5, patience=2, threshold=0.1)
        assert got == [1, 1, 1, .5, .5, .5, .5, .25, .25, .25]
        assert s.best == 7.0 and s.num_bad_epochs == 1  # 7.0 < 0.9*8.0 improved; then one bad

    def test_max_mode_abs_threshold(self):
        metrics = [0.5, 0.55, 0.58, 0.6, 0.75, 0.8]  # +0.05 steps do not beat best + 0.1
        got, _, s = self._run(metrics, mode="max", threshold=0.1, threshold_mode="abs",
                              factor=0.1, patience=2)
        assert got == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1]) and s.best == 0.75

    def test_min_lr_and_eps(self):
        got, _, _ = self._run([1.0] * 12, factor=0.5, patience=0, min_lr=0.3)
        assert got[:4] == [1.0, 0.5, 0.3, 0.3] and got[-1] == 0.3
        opt = make_opt((1e-9,))
        s = ReduceLROnPlateau(opt, patience=0)
        for _ in range(5):
            s.step(1.0)
        assert opt.lr == 1e-9  # changes below eps=1e-8 are skipped

    def test_nan_metric_is_bad_and_per_group_min_lr(self):
        opt = make_opt((1.0, 1.0))
        s = ReduceLROnPlateau(opt, patience=1, factor=0.5, min_lr=[0.0, 0.75])
        for m in [1.0, float("nan"), float("nan")]:
            s.step(m)
        assert s.get_last_lr() == [0.5, 0.75]
        s.step(np.array(0.5))  # 0-d arrays and NumPy scalars are accepted
        s.step(np.float32(0.1))
        assert s.best == pytest.approx(0.1)

    def test_does_not_touch_lr_on_construction(self):
        opt = make_opt((0.3,))
        s = ReduceLROnPlateau(opt)
        assert opt.lr == 0.3 and s.get_last_lr() == [0.3]


SCHEDULES = [
    ("multiplicative", lambda o: MultiplicativeDecay(o, 0.9)),
    ("lambda", lambda o: LambdaDecay(o, lambda t: 1.0 / (1 + t))),
    ("step", lambda o: StepLR(o, 3, gamma=0.5)),
    ("multistep", lambda o: MultiStepLR(o, [2, 5, 9], gamma=0.3)),
    ("exponential", lambda o: ExponentialLR(o, 0.8)),
    ("cosine", lambda o: CosineAnnealingLR(o, 6, eta_min=0.001)),
    ("warmup_cosine", lambda o: WarmupCosine(o, 4, 15, warmup_start_factor=0.1, eta_min=1e-4)),
]


class TestStateDict:
    @pytest.mark.parametrize("name,make", SCHEDULES, ids=[s[0] for s in SCHEDULES])
    def test_round_trip(self, name, make):
        straight = collect(make(make_opt((0.1, 0.05))), 18)[7:]
        opt = make_opt((0.1, 0.05))
        s = make(opt)
        for _ in range(7):
            s.step()
        sd, osd = s.state_dict(), opt.state_dict()
        assert all(isinstance(v, np.ndarray) for v in sd.values())
        buf = io.BytesIO()
        np.savez(buf, **{"sched." + k: v for k, v in sd.items()})
        buf.seek(0)
        with np.load(buf, allow_pickle=False) as z:
            sd = {k[len("sched."):]: z[k] for k in z.files}
        # restore in both orders: optimizer first (then the new schedule's constructor
        # rewrites lr) or schedule first
        for optimizer_first in (True, False):
            opt2 = make_opt((0.1, 0.05))
            if optimizer_first:
                opt2.load_state_dict(osd)
            s2 = make(opt2)
            s2.load_state_dict(sd)
            if not optimizer_first:
                opt2.load_state_dict(osd)
            got = collect(s2, 11)
            np.testing.assert_array_equal(got, straight)
            assert s2.last_epoch == 17

    def test_plateau_round_trip(self):
        rng = np.random.default_rng(0)
        metrics = 1.0 + 0.01 * rng.standard_normal(30)

        def run(s, ms):
            out = []
            for m in ms:
                s.step(m)
                out.append(s.get_last_lr())
            return out
        make = lambda o: ReduceLROnPlateau(o, patience=2, cooldown=1, factor=0.5)  # noqa: E731
        straight = run(make(make_opt((0.1, 0.2))), metrics)
        opt = make_opt((0.1, 0.2))
        s = make(opt)
        run(s, metrics[:13])
        sd = s.state_dict()
        s2 = make(make_opt((0.1, 0.2)))
        s2.load_state_dict(sd)
        assert s2.best == s.best and s2.num_bad_epochs == s.num_bad_epochs
        assert run(s2, metrics[13:]) == straight[13:]

    def test_validation(self):
        s = StepLR(make_opt((0.1, 0.2)), 2)
        sd = s.state_dict()
        del sd["base_lrs"]
        with pytest.raises(ValueError, match="base_lrs"):
            s.load_state_dict(sd)
        sd = s.state_dict()
        sd["last_lr"] = np.array([0.1])
        with pytest.raises(ValueError, match=r"last_lr.*\(2,\).*\(1,\)"):
            s.load_state_dict(sd)
        sd = s.state_dict()
        sd["extra"] = np.array(1)
        with pytest.raises(ValueError, match="extra"):
            s.load_state_dict(sd)
        sd = s.state_dict()
        sd["last_epoch"] = np.array(1.5)
        with pytest.raises(TypeError, match="last_epoch"):
            s.load_state_dict(sd)
        p = ReduceLROnPlateau(make_opt())
        sd = p.state_dict()
        del sd["best"]
        with pytest.raises(ValueError, match="best"):
            p.load_state_dict(sd)
        with pytest.raises(TypeError, match="dict"):
            p.load_state_dict(None)


class TestBadInput:
    @pytest.mark.parametrize("make,exc,match", [
        (lambda o: StepLR(o, 0), ValueError, "step_size"),
        (lambda o: StepLR(o, 2.0), TypeError, "step_size.*int.*float"),
        (lambda o: StepLR(o, 2, gamma=0.0), ValueError, "gamma"),
        (lambda o: StepLR(o, 2, gamma="0.1"), TypeError, "gamma"),
        (lambda o: MultiStepLR(o, []), ValueError, "milestones"),
        (lambda o: MultiStepLR(o, [0, 3]), ValueError, "milestone"),
        (lambda o: MultiStepLR(o, [1.5]), TypeError, "milestone"),
        (lambda o: MultiStepLR(o, 5), TypeError, "milestones"),
        (lambda o: ExponentialLR(o, -0.9), ValueError, "gamma"),
        (lambda o: MultiplicativeDecay(o, float("nan")), ValueError, "gamma"),
        (lambda o: LambdaDecay(o, [lambda t: 1.0] * 2), ValueError, "lr_lambda"),
        (lambda o: LambdaDecay(o, "fast"), TypeError, "lr_lambda"),
        (lambda o: LambdaDecay(o, lambda t: -1.0), ValueError, "lr_lambda"),
        (lambda o: CosineAnnealingLR(o, 0), ValueError, "T_max"),
        (lambda o: CosineAnnealingLR(o, 10, eta_min=-1.0), ValueError, "eta_min"),
        (lambda o: WarmupCosine(o, 10, 10), ValueError, "warmup_steps must be < total_steps"),
        (lambda o: WarmupCosine(o, 2, 10, warmup_start_factor=1.5), ValueError, "warmup_start_factor"),
        (lambda o: ReduceLROnPlateau(o, mode="avg"), ValueError, "mode"),
        (lambda o: ReduceLROnPlateau(o, threshold_mode="pct"), ValueError, "threshold_mode"),
        (lambda o: ReduceLROnPlateau(o, factor=1.0), ValueError, "factor"),
        (lambda o: ReduceLROnPlateau(o, patience=-1), ValueError, "patience"),
        (lambda o: ReduceLROnPlateau(o, min_lr=[0.1, 0.2]), ValueError, "min_lr"),
        (lambda o: StepLR("optimizer", 2), TypeError, "Optimizer.*str"),
    ])
    def test_constructor_errors(self, make, exc, match):
        with pytest.raises(exc, match=match):
            make(make_opt())

    def test_plateau_metric_errors(self):
        s = ReduceLROnPlateau(make_opt())
        with pytest.raises(TypeError, match="metric"):
            s.step("0.5")
        with pytest.raises(TypeError, match="metric"):
            s.step(None)
        with pytest.raises(ValueError, match="metric.*shape"):
            s.step(np.ones(2))

    def test_group_count_change(self):
        opt = make_opt()
        s = StepLR(opt, 2)
        opt.add_param_group({"params": [Parameter(np.zeros(1))]})
        with pytest.raises(ValueError, match="1 parameter group.*2"):
            s.step()


# =============================================================================================
# Part 2: PyTorch references
# =============================================================================================
def _torch_opt(torch, lrs):
    groups = [{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=lrs[0])


def _torch_collect(opt, sched, n, metrics=None):
    out = [list(sched.get_last_lr())] if metrics is None else []
    for t in range(n if metrics is not None else n - 1):
        opt.step()
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[t])
        out.append(list(sched.get_last_lr()))
    return np.array(out, dtype=float)


LRS = (0.1, 0.03)


def _f1(t):
    return 0.95 ** t * (1 + 0.1 * (t % 3))


def _f2(t):
    return 1.0 / (1.0 + 0.5 * t)


TORCH_SCHEDULES = [
    ("lambda", lambda o: LambdaDecay(o, _f1), lambda T, o: T.LambdaLR(o, _f1)),
    ("lambda_per_group", lambda o: LambdaDecay(o, [_f1, _f2]), lambda T, o: T.LambdaLR(o, [_f1, _f2])),
    ("multiplicative", lambda o: MultiplicativeDecay(o, 0.9),
     lambda T, o: T.MultiplicativeLR(o, lambda t: 0.9)),
    ("multiplicative_vs_exponential", lambda o: MultiplicativeDecay(o, 0.9),
     lambda T, o: T.ExponentialLR(o, 0.9)),
    ("step", lambda o: StepLR(o, 7, gamma=0.5), lambda T, o: T.StepLR(o, 7, gamma=0.5)),
    ("step_default_gamma", lambda o: StepLR(o, 1), lambda T, o: T.StepLR(o, 1)),
    ("multistep", lambda o: MultiStepLR(o, [5, 12, 12, 30], gamma=0.3),
     lambda T, o: T.MultiStepLR(o, [5, 12, 12, 30], gamma=0.3)),
    ("exponential", lambda o: ExponentialLR(o, 0.93), lambda T, o: T.ExponentialLR(o, 0.93)),
    ("cosine_periodic", lambda o: CosineAnnealingLR(o, 10, eta_min=0.001),
     lambda T, o: T.CosineAnnealingLR(o, 10, eta_min=0.001)),
    ("cosine_long", lambda o: CosineAnnealingLR(o, 49), lambda T, o: T.CosineAnnealingLR(o, 49)),
    ("warmup_cosine", lambda o: WarmupCosine(o, 5, 49, warmup_start_factor=0.1, eta_min=1e-4),
     lambda T, o: T.SequentialLR(o, [T.LinearLR(o, start_factor=0.1, total_iters=5),
                                     T.CosineAnnealingLR(o, T_max=44, eta_min=1e-4)], milestones=[5])),
    ("warmup_cosine_defaults", lambda o: WarmupCosine(o, 10, 49),
     lambda T, o: T.SequentialLR(o, [T.LinearLR(o, total_iters=10),
                                     T.CosineAnnealingLR(o, T_max=39)], milestones=[10])),
]


@pytest.mark.parametrize("name,ours,theirs", TORCH_SCHEDULES, ids=[s[0] for s in TORCH_SCHEDULES])
def test_matches_torch(name, ours, theirs):
    torch = pytest.importorskip("torch")
    got = collect(ours(make_opt(LRS)), 50)
    topt = _torch_opt(torch, LRS)
    want = _torch_collect(topt, theirs(torch.optim.lr_scheduler, topt), 50)
    assert got.shape == want.shape == (50, 2)
    assert len(np.unique(got[:, 0])) > 1  # the schedule actually changes the lr
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-15)


def _metrics():
    rng = np.random.default_rng(42)
    t = np.arange(50)
    m = 1.0 / (1.0 + 0.3 * t) + 0.02 * rng.standard_normal(50)
    m[20:35] = m[20]  # a long plateau
    return [float(x) for x in m]


PLATEAU_CONFIGS = [
    dict(patience=3),
    dict(patience=2, factor=0.5, threshold=0.05),
    dict(mode="max", patience=2, factor=0.5),
    dict(patience=1, threshold=0.01, threshold_mode="abs", factor=0.7),
    dict(mode="max", patience=1, threshold=0.005, threshold_mode="abs", cooldown=2),
    dict(patience=0, cooldown=3, factor=0.5, min_lr=[0.02, 0.01]),
    dict(patience=0, factor=0.5, min_lr=0.005, eps=1e-3),
]


@pytest.mark.parametrize("kw", PLATEAU_CONFIGS, ids=[str(i) for i in range(len(PLATEAU_CONFIGS))])
def test_plateau_matches_torch(kw):
    torch = pytest.importorskip("torch")
    metrics = _metrics()
    if kw.get("mode") == "max":
        metrics = [-m for m in metrics]
    opt = make_opt(LRS)
    s = ReduceLROnPlateau(opt, **kw)
    got = []
    for m in metrics:
        s.step(m)
        got.append(s.get_last_lr())
    topt = _torch_opt(torch, LRS)
    want = _torch_collect(topt, torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kw), 50, metrics)
    assert len(np.unique(np.array(got)[:, 0])) > 1  # at least one reduction happened
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


def test_training_with_schedule_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    w0 = rng.standard_normal(5)
    a = rng.standard_normal((5, 5))
    a = a @ a.T / 5 + np.eye(5)
    c = rng.standard_normal(5)
    p = Parameter(w0.copy())
    t = torch.tensor(w0.copy(), requires_grad=True)
    opt, topt = Adam([p], lr=0.05, amsgrad=True), torch.optim.Adam([t], lr=0.05, amsgrad=True, foreach=False)
    s = WarmupCosine(opt, 3, 20, warmup_start_factor=0.2)
    ts = torch.optim.lr_scheduler.SequentialLR(
        topt, [torch.optim.lr_scheduler.LinearLR(topt, start_factor=0.2, total_iters=3),
               torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=17)], milestones=[3])
    for _ in range(20):
        p.grad[...] = a @ p.data - c
        t.grad = torch.from_numpy(a @ t.detach().numpy() - c)
        opt.step()
        topt.step()
        s.step()
        ts.step()
    np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-10)


def test_warmup_fraction_is_sized_with_total_steps():
    """Issue 12: the Fashion-MNIST example's warm-up (1/30 of the run) without sizing the split."""
    import nnlite.nn as nn
    from nnlite.optim import SGD, WarmupCosine
    for total in (24, 90, 1000):
        s = WarmupCosine(SGD(nn.Linear(2, 2, rng=0).parameters(), lr=1.0), warmup_fraction=1 / 30)
        assert s.get_last_lr() == [pytest.approx(1 / 3)]
        s.set_total_steps(total)
        assert s.warmup_steps == max(1, total // 30)
        ref = WarmupCosine(SGD(nn.Linear(2, 2, rng=0).parameters(), lr=1.0), max(1, total // 30), total)
        assert s.lr_at(total // 2) == ref.lr_at(total // 2)
    with pytest.raises(TypeError, match="exactly one of warmup_steps"):
        WarmupCosine(SGD(nn.Linear(2, 2, rng=0).parameters(), lr=1.0), 3, warmup_fraction=0.1)
    with pytest.raises(ValueError, match=r"warmup_fraction must be in \[0.0, 1.0\)"):
        WarmupCosine(SGD(nn.Linear(2, 2, rng=0).parameters(), lr=1.0), warmup_fraction=1.5)
