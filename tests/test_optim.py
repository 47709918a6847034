"""Tests for nnlite.optim optimizers, clip_grad_norm and l2_penalty.

Part 1 needs only NumPy (hand-computed values); part 2 compares with PyTorch when installed.
"""
import io
import math

import numpy as np
import pytest

from nnlite.nn import Parameter
from nnlite.optim import (SGD, Adam, AdamW, Optimizer, RMSprop, clip_grad_norm, is_weight,
                          l2_penalty)


def P(values, dtype=np.float64, trainable=True):
    return Parameter(np.array(values, dtype=dtype), trainable=trainable)


def set_grad(p, values):
    p.grad[...] = np.asarray(values, dtype=p.dtype)


# A fixed quadratic f(w) = 0.5 w^T A w - c^T w per parameter (flattened): grad = A w - c.
def make_problem(seed=0, shapes=((3, 4), (4,)), dtype=np.float64):
    rng = np.random.default_rng(seed)
    params, mats = [], []
    for shape in shapes:
        n = int(np.prod(shape))
        m = rng.standard_normal((n, n))
        a = m @ m.T / n + 0.5 * np.eye(n)
        c = rng.standard_normal(n)
        params.append(rng.standard_normal(shape).astype(dtype))
        mats.append((a, c))
    return params, mats


def quad_grad(w, ac):
    a, c = ac
    return (a @ w.reshape(-1).astype(np.float64) - c).reshape(w.shape)


def run_nnlite(make_opt, steps, seed=0, dtype=np.float64):
    init, mats = make_problem(seed, dtype=dtype)
    params = [Parameter(w.copy()) for w in init]
    opt = make_opt(params)
    for _ in range(steps):
        opt.zero_grad()
        for p, ac in zip(params, mats):
            p.accumulate(quad_grad(p.data, ac).astype(dtype))
        opt.step()
    return params, opt, mats


CONFIGS = [
    ("sgd", lambda ps: SGD(ps, lr=0.05)),
    ("sgd_momentum", lambda ps: SGD(ps, lr=0.05, momentum=0.9)),
    ("sgd_nesterov_wd", lambda ps: SGD(ps, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)),
    ("sgd_dampening", lambda ps: SGD(ps, lr=0.05, momentum=0.7, dampening=0.3, weight_decay=0.02)),
    ("adam", lambda ps: Adam(ps, lr=0.01)),
    ("adam_wd_amsgrad", lambda ps: Adam(ps, lr=0.01, betas=(0.8, 0.99), weight_decay=0.05, amsgrad=True)),
    ("adamw", lambda ps: AdamW(ps, lr=0.01)),
    ("adamw_amsgrad", lambda ps: AdamW(ps, lr=0.02, weight_decay=0.1, amsgrad=True)),
    ("rmsprop", lambda ps: RMSprop(ps, lr=0.01)),
    ("rmsprop_centered_mom_wd", lambda ps: RMSprop(ps, lr=0.005, alpha=0.9, momentum=0.5,
                                                   centered=True, weight_decay=0.01)),
]


# =============================================================================================
# Part 1: hand-computed, no torch
# =============================================================================================
class TestSGDByHand:
    def test_plain_sgd(self):
        p = P([1.0, -2.0])
        opt = SGD([p], lr=0.1)
        set_grad(p, [1.0, 2.0])
        opt.step()
        np.testing.assert_allclose(p.data, [0.9, -2.2], rtol=0, atol=1e-15)
        assert opt.state == {}  # plain SGD keeps no state

    def test_momentum_two_steps(self):
        p = P([1.0, -2.0])
        opt = SGD([p], lr=0.1, momentum=0.9)
        set_grad(p, [1.0, 2.0])
        opt.step()  # b = g = [1, 2]; w = [0.9, -2.2]
        np.testing.assert_allclose(p.data, [0.9, -2.2], atol=1e-15)
        np.testing.assert_allclose(opt.state[0]["momentum_buffer"], [1.0, 2.0], atol=0)
        set_grad(p, [0.5, -1.0])
        opt.step()  # b = 0.9*[1,2] + [0.5,-1] = [1.4, 0.8]; w = [0.76, -2.28]
        np.testing.assert_allclose(opt.state[0]["momentum_buffer"], [1.4, 0.8], atol=1e-15)
        np.testing.assert_allclose(p.data, [0.76, -2.28], atol=1e-14)

    def test_nesterov_two_steps(self):
        p = P([1.0, -2.0])
        opt = SGD([p], lr=0.1, momentum=0.9, nesterov=True)
        set_grad(p, [1.0, 2.0])
        opt.step()  # b = [1,2]; g = g + 0.9 b = [1.9, 3.8]; w = [0.81, -2.38]
        np.testing.assert_allclose(p.data, [0.81, -2.38], atol=1e-14)
        set_grad(p, [0.5, -1.0])
        opt.step()  # b = [1.4, 0.8]; g = [0.5+1.26, -1+0.72]; w = [0.634, -2.352]
        np.testing.assert_allclose(p.data, [0.634, -2.352], atol=1e-14)

    def test_weight_decay_and_dampening(self):
        p = P([1.0, -2.0])
        opt = SGD([p], lr=0.1, momentum=0.9, dampening=0.5, weight_decay=0.1)
        set_grad(p, [1.0, 2.0])
        opt.step()  # g = [1.1, 1.8]; b = g (undamped first step); w = [0.89, -2.18]
        np.testing.assert_allclose(p.data, [0.89, -2.18], atol=1e-14)
        set_grad(p, [0.5, -1.0])
        opt.step()  # g = [0.589, -1.218]; b = 0.9*[1.1,1.8] + 0.5*g = [1.2845, 1.011]
        np.testing.assert_allclose(opt.state[0]["momentum_buffer"], [1.2845, 1.011], atol=1e-14)
        np.testing.assert_allclose(p.data, [0.76155, -2.2811], atol=1e-14)

    def test_grad_is_not_modified(self):
        p = P([1.0, -2.0])
        opt = SGD([p], lr=0.1, momentum=0.9, weight_decay=0.5, nesterov=True)
        set_grad(p, [1.0, 2.0])
        opt.step()
        np.testing.assert_array_equal(p.grad, [1.0, 2.0])


class TestAdamByHand:
    def test_first_step_is_lr_times_sign(self):
        rng = np.random.default_rng(1)
        w0 = rng.standard_normal(6)
        g = rng.standard_normal(6) * np.array([1e-3, 1e-1, 1, 10, 100, 1e3])
        p = P(w0)
        opt = Adam([p], lr=0.01)
        p.grad[...] = g
        opt.step()
        # m_hat = g, v_hat = g^2  ->  step = lr * g / (|g| + eps)
        np.testing.assert_allclose(p.data, w0 - 0.01 * g / (np.abs(g) + 1e-8), rtol=1e-13)
        np.testing.assert_allclose(p.data, w0 - 0.01 * np.sign(g), rtol=0, atol=1e-6)
        assert opt.state[0]["step"] == 1
        np.testing.assert_allclose(opt.state[0]["exp_avg"], 0.1 * g, rtol=1e-12)
        np.testing.assert_allclose(opt.state[0]["exp_avg_sq"], 0.001 * g * g, rtol=1e-12)

    def test_second_step_by_hand(self):
        p = P([0.5])
        opt = Adam([p], lr=0.1, betas=(0.9, 0.999), eps=1e-8)
        set_grad(p, [2.0])
        opt.step()
        w1 = 0.5 - 0.1 * 2.0 / (2.0 + 1e-8)
        set_grad(p, [-1.0])
        opt.step()
        m = 0.9 * 0.2 + 0.1 * -1.0            # = 0.08
        v = 0.999 * 0.004 + 0.001 * 1.0       # = 0.004996
        m_hat = m / (1 - 0.9 ** 2)
        v_hat = v / (1 - 0.999 ** 2)
        np.testing.assert_allclose(p.data, [w1 - 0.1 * m_hat / (math.sqrt(v_hat) + 1e-8)], rtol=1e-12)

    def test_amsgrad_keeps_max(self):
        p = P([0.0])
        opt = Adam([p], lr=0.1, amsgrad=True)
        set_grad(p, [10.0])
        opt.step()
        set_grad(p, [0.0])
        opt.step()
        st = opt.state[0]
        assert st["max_exp_avg_sq"][0] == pytest.approx(0.1)  # 0.001 * 100
        assert st["exp_avg_sq"][0] < st["max_exp_avg_sq"][0]

    def test_adamw_is_decoupled(self):
        # zero gradient: Adam's moments stay 0 so its step is 0; only the decay acts.
        p = P([2.0, -4.0])
        opt = AdamW([p], lr=0.1, weight_decay=0.5)
        opt.step()
        np.testing.assert_allclose(p.data, [2.0 * 0.95, -4.0 * 0.95], rtol=1e-15)
        # Adam's L2 decay goes through the adaptive scaling instead: step = lr * sign(w).
        q = P([2.0, -4.0])
        opt2 = Adam([q], lr=0.1, weight_decay=0.5)
        opt2.step()
        np.testing.assert_allclose(q.data, [1.9, -3.9], atol=1e-8)

    def test_adamw_default_weight_decay(self):
        assert AdamW([P([1.0])]).param_groups[0]["weight_decay"] == 1e-2
        assert Adam([P([1.0])]).param_groups[0]["weight_decay"] == 0.0


class TestRMSpropByHand:
    def test_first_step(self):
        p = P([1.0, 1.0])
        opt = RMSprop([p], lr=0.01, alpha=0.99)
        set_grad(p, [2.0, -0.5])
        opt.step()
        # s = 0.01 g^2 -> step = lr * g / (0.1 |g| + eps) = 0.1 * sign(g)
        np.testing.assert_allclose(p.data, [0.9, 1.1], atol=1e-7)

    def test_centered_momentum_two_steps(self):
        p = P([0.0])
        opt = RMSprop([p], lr=0.1, alpha=0.5, eps=0.0, momentum=0.5, centered=True)
        set_grad(p, [2.0])
        opt.step()
        # s = 0.5*4 = 2, a = 0.5*2 = 1, d = sqrt(2 - 1) = 1; b = 2; w = -0.2
        np.testing.assert_allclose(p.data, [-0.2], atol=1e-15)
        set_grad(p, [-2.0])
        opt.step()
        # s = 1 + 2 = 3, a = 0.5 - 1 = -0.5, d = sqrt(2.75); b = 1 - 2/sqrt(2.75)
        b = 0.5 * 2 + (-2.0) / math.sqrt(2.75)
        np.testing.assert_allclose(p.data, [-0.2 - 0.1 * b], rtol=1e-14)
        assert opt.state[0]["step"] == 2


class TestCommonBehaviour:
    @pytest.mark.parametrize("name,make", CONFIGS, ids=[c[0] for c in CONFIGS])
    def test_frozen_parameter_untouched(self, name, make):
        a, frozen = P([1.0, 2.0]), P([3.0, -1.0], trainable=False)
        opt = make([a, frozen])
        for _ in range(3):
            set_grad(a, [0.3, -0.2])
            set_grad(frozen, [5.0, 5.0])
            opt.step()
        np.testing.assert_array_equal(frozen.data, [3.0, -1.0])
        assert opt.index_of(frozen) == 1 and 1 not in opt.state
        assert not np.array_equal(a.data, [1.0, 2.0])

    def test_frozen_then_unfrozen_gets_state(self):
        a = P([1.0], trainable=False)
        opt = Adam([a], lr=0.1)
        set_grad(a, [1.0])
        opt.step()
        assert opt.state == {}
        a.trainable = True
        opt.step()
        assert opt.state[0]["step"] == 1

    def test_grad_none_is_skipped(self):
        a = P([1.0])
        a.grad = None
        opt = SGD([a], lr=0.1, momentum=0.9)
        opt.step()
        np.testing.assert_array_equal(a.data, [1.0])
        assert opt.state == {}

    def test_param_groups_with_different_lr(self):
        a, b = P([1.0]), P([1.0])
        opt = SGD([{"params": [a]}, {"params": [b], "lr": 0.01, "momentum": 0.5}], lr=0.1)
        assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["momentum"] == 0.0
        assert opt.param_groups[1]["lr"] == 0.01 and opt.param_groups[1]["momentum"] == 0.5
        set_grad(a, [1.0])
        set_grad(b, [1.0])
        opt.step()
        np.testing.assert_allclose([a.data[0], b.data[0]], [0.9, 0.99], atol=1e-15)
        assert list(opt.state) == [1]  # only the momentum group keeps a buffer

    def test_sgd_lr_may_come_from_groups_only(self):
        a, b = P([1.0]), P([1.0])
        opt = SGD([{"params": [a], "lr": 0.5}, {"params": [b], "lr": 0.25}])
        set_grad(a, [1.0])
        set_grad(b, [1.0])
        opt.step()
        np.testing.assert_allclose([a.data[0], b.data[0]], [0.5, 0.75])
        with pytest.raises(ValueError, match="lr"):
            SGD([{"params": [P([1.0])]}, {"params": [P([1.0])], "lr": 0.1}])

    def test_add_param_group(self):
        a, b = P([1.0]), P([2.0])
        opt = Adam([a], lr=0.1)
        opt.add_param_group({"params": [b], "lr": 0.0})
        assert opt.params == [a, b] and opt.index_of(b) == 1
        set_grad(a, [1.0])
        set_grad(b, [1.0])
        opt.step()
        assert b.data[0] == 2.0 and a.data[0] != 1.0
        with pytest.raises(ValueError, match="more than once"):
            opt.add_param_group({"params": [a]})

    def test_lr_property(self):
        a, b = P([1.0]), P([1.0])
        opt = SGD([{"params": [a], "lr": 0.3}, {"params": [b], "lr": 0.1}])
        assert opt.lr == 0.3
        opt.lr = 0.05
        assert [g["lr"] for g in opt.param_groups] == [0.05, 0.05]
        opt.lr = np.float32(0.5)
        assert type(opt.lr) is float
        with pytest.raises(ValueError, match="lr"):
            opt.lr = -1.0

    def test_zero_grad(self):
        a, f = P([1.0, 2.0]), P([3.0], trainable=False)
        set_grad(a, [1.0, 1.0])
        set_grad(f, [1.0])
        SGD([a, f], lr=0.1).zero_grad()
        assert not a.grad.any() and not f.grad.any()

    def test_base_optimizer_holds_groups_but_cannot_step(self):
        opt = Optimizer([P([1.0])], lr=0.1)
        assert opt.lr == 0.1
        with pytest.raises(NotImplementedError):
            opt.step()


class TestDtype:
    @pytest.mark.parametrize("name,make", CONFIGS, ids=[c[0] for c in CONFIGS])
    def test_float32_stays_float32(self, name, make):
        def make32(ps):
            opt = make(ps)
            for g in opt.param_groups:  # NumPy float64 scalars must not promote float32 arrays
                g["lr"] = np.float64(g["lr"])
            opt.lr = np.float64(opt.lr)
            return opt
        params32, opt, _ = run_nnlite(make32, 5, dtype=np.float32)
        params64, _, _ = run_nnlite(make, 5, dtype=np.float64)
        for p32, p64 in zip(params32, params64):
            assert p32.data.dtype == np.float32 and p32.grad.dtype == np.float32
            np.testing.assert_allclose(p32.data, p64.data, rtol=2e-4, atol=2e-5)
        for st in opt.state.values():
            for key, v in st.items():
                if isinstance(v, np.ndarray):
                    assert v.dtype == np.float32, key

    def test_float32_after_loading_float64_state_dict(self):
        params, opt, mats = run_nnlite(lambda ps: Adam(ps, lr=0.01, weight_decay=0.1), 2,
                                       dtype=np.float32)
        sd = opt.state_dict()
        assert sd["group0.lr"].dtype == np.float64
        opt.load_state_dict(sd)  # hyper-parameters come back as 0-d float64 arrays
        assert type(opt.param_groups[0]["lr"]) is float
        for p, ac in zip(params, mats):
            p.grad[...] = quad_grad(p.data, ac)
        opt.step()
        assert all(p.data.dtype == np.float32 for p in params)

    def test_float64_state_loaded_into_float32_model_becomes_float32(self):
        _, opt64, _ = run_nnlite(lambda ps: RMSprop(ps, momentum=0.5, centered=True), 2)
        params32 = [Parameter(w.astype(np.float32)) for w in make_problem(0)[0]]
        opt32 = RMSprop(params32, momentum=0.5, centered=True)
        opt32.load_state_dict(opt64.state_dict())
        for i in (0, 1):
            for key in ("square_avg", "grad_avg", "momentum_buffer"):
                assert opt32.state[i][key].dtype == np.float32
                np.testing.assert_allclose(opt32.state[i][key], opt64.state[i][key], rtol=1e-6)

    def test_grad_dtype_mismatch_raises(self):
        p = P([1.0], dtype=np.float32)
        p.grad = np.ones(1, dtype=np.float64)
        with pytest.raises(TypeError, match="float32.*float64"):
            SGD([p], lr=0.1).step()

    def test_grad_shape_mismatch_raises(self):
        p = P([1.0, 2.0])
        p.grad = np.ones(3)
        with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
            SGD([p], lr=0.1).step()


class TestStateDict:
    @pytest.mark.parametrize("name,make", CONFIGS, ids=[c[0] for c in CONFIGS])
    def test_round_trip_continues_identically(self, name, make):
        straight, _, mats = run_nnlite(make, 5)
        first, opt, _ = run_nnlite(make, 3)
        sd = opt.state_dict()
        assert all(isinstance(v, np.ndarray) for v in sd.values())
        # through an npz file with a prefix, without pickle
        buf = io.BytesIO()
        np.savez(buf, **{"optim/" + k: v for k, v in sd.items()})
        buf.seek(0)
        with np.load(buf, allow_pickle=False) as z:
            loaded = {k[len("optim/"):]: z[k] for k in z.files}
        params = [Parameter(p.data.copy()) for p in first]
        opt2 = make(params)
        opt2.load_state_dict(loaded)
        for _ in range(2):
            opt2.zero_grad()
            for p, ac in zip(params, mats):
                p.accumulate(quad_grad(p.data, ac))
            opt2.step()
        for p, q in zip(params, straight):
            np.testing.assert_array_equal(p.data, q.data)

    def test_keys_and_values(self):
        a, b = P([1.0, 2.0]), P([[1.0]])
        opt = Adam([{"params": [a]}, {"params": [b], "lr": 0.5, "amsgrad": True}], lr=0.1)
        set_grad(a, [1.0, 1.0])
        set_grad(b, [[1.0]])
        opt.step()
        sd = opt.state_dict()
        assert sd["group1.lr"].shape == () and float(sd["group1.lr"]) == 0.5
        assert sd["group0.betas"].tolist() == [0.9, 0.999]
        assert sd["group1.amsgrad"].dtype == bool and bool(sd["group1.amsgrad"])
        assert sd["group1.params"].tolist() == [1]
        assert sd["state.0.step"].shape == () and int(sd["state.0.step"]) == 1
        assert sd["state.1.max_exp_avg_sq"].shape == (1, 1)
        assert "state.0.max_exp_avg_sq" not in sd
        # copies, not views of the live state
        sd["state.0.exp_avg"][...] = 123.0
        assert opt.state[0]["exp_avg"][0] != 123.0

    def test_load_restores_hyperparameters(self):
        a = P([1.0])
        opt = SGD([a], lr=0.1, momentum=0.9)
        sd = opt.state_dict()
        opt.lr = 0.7
        opt.load_state_dict(sd)
        assert opt.lr == 0.1

    def _stepped_adam(self):
        a, b = P([1.0, 2.0]), P([3.0])
        opt = Adam([a, b], lr=0.1)
        set_grad(a, [1.0, 1.0])
        set_grad(b, [1.0])
        opt.step()
        return opt

    def test_missing_key(self):
        opt = self._stepped_adam()
        sd = opt.state_dict()
        del sd["group0.eps"]
        with pytest.raises(ValueError, match="group0.eps"):
            opt.load_state_dict(sd)
        sd = opt.state_dict()
        del sd["state.1.exp_avg_sq"]
        with pytest.raises(ValueError, match="state.1.exp_avg_sq"):
            opt.load_state_dict(sd)

    def test_shape_mismatch_names_key_and_shapes_and_writes_nothing(self):
        opt = self._stepped_adam()
        before = {k: v.copy() for k, v in opt.state_dict().items()}
        sd = opt.state_dict()
        sd["group0.lr"] = np.array(0.9)  # would be written first if validation were late
        sd["state.1.exp_avg"] = np.zeros((2, 2))
        with pytest.raises(ValueError, match=r"state\.1\.exp_avg.*\(1,\).*\(2, 2\)"):
            opt.load_state_dict(sd)
        after = opt.state_dict()
        assert opt.lr == 0.1
        for k in before:
            np.testing.assert_array_equal(after[k], before[k])

    def test_unexpected_keys(self):
        opt = self._stepped_adam()
        for key, value in [("state.5.exp_avg", np.zeros(1)), ("state.0.momentum_buffer", np.zeros(2)),
                           ("group1.lr", np.array(0.1)), ("something", np.array(1))]:
            sd = opt.state_dict()
            sd[key] = value
            with pytest.raises(ValueError, match=key.replace(".", r"\.")):
                opt.load_state_dict(sd)

    def test_wrong_optimizer_or_groups(self):
        opt = self._stepped_adam()
        sgd = SGD([P([1.0, 2.0]), P([3.0])], lr=0.1)
        with pytest.raises(ValueError, match="group0.momentum"):
            sgd.load_state_dict(opt.state_dict())
        split = Adam([{"params": [P([1.0, 2.0])]}, {"params": [P([3.0])]}])
        with pytest.raises(ValueError, match="group0.params"):
            split.load_state_dict(opt.state_dict())
        with pytest.raises(TypeError, match="dict"):
            opt.load_state_dict([1, 2])

    def test_loaded_hyperparameters_are_validated(self):
        opt = self._stepped_adam()
        sd = opt.state_dict()
        sd["group0.lr"] = np.array(-1.0)
        with pytest.raises(ValueError, match="lr"):
            opt.load_state_dict(sd)


class TestBadInput:
    @pytest.mark.parametrize("kwargs,match", [
        (dict(lr=-0.1), r"lr.*>=|lr must be in \[0.0"),
        (dict(lr=float("nan")), "lr.*finite"),
        (dict(lr=0.1, momentum=1.0), r"momentum must be in \[0.0, 1.0\), got 1.0"),
        (dict(lr=0.1, momentum=-0.1), "momentum"),
        (dict(lr=0.1, nesterov=True), "nesterov.*momentum > 0"),
        (dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "dampening == 0"),
        (dict(lr=0.1, weight_decay=-1e-4), "weight_decay"),
        (dict(lr=0.1, dampening=1.5), "dampening"),
        (dict(), "lr"),
    ])
    def test_sgd_value_errors(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            SGD([P([1.0])], **kwargs)

    @pytest.mark.parametrize("make,exc,match", [
        (lambda: SGD([P([1.0])], lr="0.1"), TypeError, "lr.*real number.*str"),
        (lambda: SGD([P([1.0])], lr=True), TypeError, "lr.*real number.*bool"),
        (lambda: SGD([P([1.0])], lr=0.1, momentum=0.5, nesterov=1), TypeError, "nesterov.*bool"),
        (lambda: Adam([P([1.0])], betas=(0.9, 1.0)), ValueError, r"betas\[1\]"),
        (lambda: Adam([P([1.0])], betas=(-0.1, 0.9)), ValueError, r"betas\[0\]"),
        (lambda: Adam([P([1.0])], betas=(0.9,)), TypeError, "betas.*pair"),
        (lambda: Adam([P([1.0])], eps=-1e-8), ValueError, "eps"),
        (lambda: AdamW([P([1.0])], weight_decay=-0.1), ValueError, "weight_decay"),
        (lambda: RMSprop([P([1.0])], alpha=1.0), ValueError, "alpha"),
        (lambda: RMSprop([P([1.0])], momentum=1.5), ValueError, "momentum"),
        (lambda: SGD([], lr=0.1), ValueError, "empty parameter list"),
        (lambda: SGD(iter([]), lr=0.1), ValueError, "empty parameter list"),
        (lambda: SGD(P([1.0]), lr=0.1), TypeError, "single Parameter"),
        (lambda: SGD([np.ones(2)], lr=0.1), TypeError, "ndarray"),
        (lambda: SGD([("w", P([1.0]))], lr=0.1), TypeError, "named_parameters"),
        (lambda: SGD(3, lr=0.1), TypeError, "int"),
        (lambda: SGD([{"params": []}], lr=0.1), ValueError, "empty 'params'"),
        (lambda: SGD([{"lr": 0.1}], lr=0.1), ValueError, "no 'params'"),
        (lambda: SGD([{"params": [P([1.0])], "learning_rate": 0.1}], lr=0.1), ValueError,
         "unknown key.*learning_rate"),
        (lambda: SGD([{"params": [P([1.0])], "momentum": 2.0}], lr=0.1), ValueError,
         r"momentum \(param_groups\[0\]\)"),
    ])
    def test_errors(self, make, exc, match):
        with pytest.raises(exc, match=match):
            make()

    def test_duplicate_parameter(self):
        p = P([1.0])
        with pytest.raises(ValueError, match="more than once"):
            SGD([p, p], lr=0.1)
        with pytest.raises(ValueError, match="more than once"):
            SGD([{"params": [p]}, {"params": [p]}], lr=0.1)

    def test_accepts_generators_and_numpy_scalars(self):
        opt = Adam((P([1.0]) for _ in range(2)), lr=np.float32(0.25), betas=np.array([0.5, 0.75]))
        assert type(opt.lr) is float and opt.param_groups[0]["betas"] == (0.5, 0.75)


# ---------------------------------------------------------------------------------------------
class TestClipGradNorm:
    def test_scales_when_above(self):
        a, b = P([0.0, 0.0]), P([[0.0]])
        set_grad(a, [3.0, 4.0])
        set_grad(b, [[12.0]])
        total = clip_grad_norm([a, b], 6.5)
        assert total == pytest.approx(13.0, rel=1e-15)
        coef = 6.5 / (13.0 + 1e-6)
        np.testing.assert_allclose(a.grad, [3.0 * coef, 4.0 * coef], rtol=1e-15)
        np.testing.assert_allclose(b.grad, [[12.0 * coef]], rtol=1e-15)
        new_norm = math.sqrt(np.sum(a.grad ** 2) + np.sum(b.grad ** 2))
        assert new_norm <= 6.5 and new_norm == pytest.approx(6.5, rel=1e-6)

    def test_unchanged_when_below(self):
        a = P([0.0, 0.0])
        set_grad(a, [3.0, 4.0])
        set_grad(a, [0.3, 0.4])
        assert clip_grad_norm(a, 1.0) == pytest.approx(0.5)
        np.testing.assert_array_equal(a.grad, [0.3, 0.4])

    def test_norm_equal_to_max_is_scaled_by_the_epsilon_factor(self):
        a = P([0.0, 0.0])
        set_grad(a, [3.0, 4.0])
        assert clip_grad_norm([a], 5.0) == pytest.approx(5.0)
        np.testing.assert_allclose(a.grad, np.array([3.0, 4.0]) * 5.0 / (5.0 + 1e-6), rtol=1e-15)

    def test_frozen_ignored_and_dtype_kept(self):
        a, f = P([0.0, 0.0], dtype=np.float32), P([0.0], dtype=np.float32, trainable=False)
        set_grad(a, [6.0, 8.0])
        set_grad(f, [100.0])
        assert clip_grad_norm([a, f], 1.0) == pytest.approx(10.0)
        assert a.grad.dtype == np.float32
        np.testing.assert_allclose(a.grad, [0.6, 0.8], rtol=1e-6)
        np.testing.assert_array_equal(f.grad, [100.0])
        assert clip_grad_norm([f], 1.0) == 0.0

    def test_nonfinite(self):
        a = P([0.0, 0.0])
        set_grad(a, [np.inf, 1.0])
        with pytest.raises(ValueError, match="inf"):
            clip_grad_norm([a], 1.0, error_if_nonfinite=True)

    @pytest.mark.parametrize("params,max_norm,exc", [
        ([], 1.0, ValueError), ([P([1.0])], 0.0, ValueError), ([P([1.0])], -1.0, ValueError),
        ([P([1.0])], "1", TypeError), ([np.ones(2)], 1.0, TypeError)])
    def test_errors(self, params, max_norm, exc):
        with pytest.raises(exc):
            clip_grad_norm(params, max_norm)


class TestL2Penalty:
    def test_weights_only_by_default(self):
        w, b = P([[1.0, -2.0], [3.0, 0.5]]), P([4.0, 5.0])
        set_grad(w, [[0.1, 0.1], [0.1, 0.1]])
        loss = l2_penalty([w, b], 0.2)
        assert loss == pytest.approx(0.5 * 0.2 * (1 + 4 + 9 + 0.25))
        np.testing.assert_allclose(w.grad, [[0.3, -0.3], [0.7, 0.2]], rtol=1e-14)
        np.testing.assert_array_equal(b.grad, [0.0, 0.0])
        assert is_weight(w) and not is_weight(b)

    def test_select_all_and_predicate(self):
        w, b = P([[1.0]]), P([2.0])
        assert l2_penalty([w, b], 1.0, select=None) == pytest.approx(2.5)
        np.testing.assert_allclose(b.grad, [2.0])
        w.grad[...] = 0
        b.grad[...] = 0
        assert l2_penalty([w, b], 1.0, select=lambda p: p.size == 1 and p.data.ndim == 1) == 2.0
        assert w.grad[0, 0] == 0.0

    def test_report_only_and_frozen(self):
        w, f = P([[3.0]]), P([[4.0]], trainable=False)
        assert l2_penalty([w, f], 2.0, add_to_grad=False) == pytest.approx(25.0)
        assert w.grad[0, 0] == 0.0
        assert l2_penalty([w, f], 2.0) == pytest.approx(25.0)
        assert w.grad[0, 0] == 6.0 and f.grad[0, 0] == 0.0

    def test_float32_and_zero_reg(self):
        w = P([[1.0, 2.0]], dtype=np.float32)
        assert l2_penalty([w], 0.0) == 0.0 and not w.grad.any()
        l2_penalty([w], 0.5)
        assert w.grad.dtype == np.float32

    def test_equals_sgd_weight_decay(self):
        w1, w2 = P([[1.0, -2.0]]), P([[1.0, -2.0]])
        o1 = SGD([w1], lr=0.1, momentum=0.9, weight_decay=0.3)
        o2 = SGD([w2], lr=0.1, momentum=0.9)
        for g in ([0.5, 1.0], [-1.0, 0.25], [2.0, 0.0]):
            for p in (w1, w2):
                p.zero_grad()
                set_grad(p, [g])
            l2_penalty([w2], 0.3)
            o1.step()
            o2.step()
        np.testing.assert_allclose(w1.data, w2.data, rtol=1e-14)

    @pytest.mark.parametrize("reg,exc", [(-0.1, ValueError), (float("inf"), ValueError),
                                         ("0.1", TypeError), (None, TypeError)])
    def test_errors(self, reg, exc):
        with pytest.raises(exc, match="reg"):
            l2_penalty([P([[1.0]])], reg)
        with pytest.raises(TypeError, match="select"):
            l2_penalty([P([[1.0]])], 0.1, select="weights")


# =============================================================================================
# Part 2: PyTorch references (skipped when torch is not installed)
# =============================================================================================
def _torch_run(torch, make_topt, steps, seed=0):
    init, mats = make_problem(seed)
    params = [torch.tensor(w.copy(), dtype=torch.float64, requires_grad=True) for w in init]
    opt = make_topt(params)
    for _ in range(steps):
        opt.zero_grad()
        for p, ac in zip(params, mats):
            p.grad = torch.from_numpy(quad_grad(p.detach().numpy(), ac))
        opt.step()
    return [p.detach().numpy() for p in params], opt


TORCH_CONFIGS = [
    ("sgd", dict(lr=0.05), "SGD"),
    ("sgd_momentum", dict(lr=0.05, momentum=0.9), "SGD"),
    ("sgd_nesterov", dict(lr=0.05, momentum=0.8, nesterov=True), "SGD"),
    ("sgd_nesterov_wd", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01), "SGD"),
    ("sgd_dampening_wd", dict(lr=0.05, momentum=0.7, dampening=0.3, weight_decay=0.02), "SGD"),
    ("adam", dict(lr=0.01), "Adam"),
    ("adam_betas_eps", dict(lr=0.02, betas=(0.5, 0.9), eps=1e-3), "Adam"),
    ("adam_wd", dict(lr=0.01, weight_decay=0.05), "Adam"),
    ("adam_amsgrad", dict(lr=0.01, amsgrad=True), "Adam"),
    ("adam_wd_amsgrad", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.05, amsgrad=True), "Adam"),
    ("adamw", dict(lr=0.01), "AdamW"),
    ("adamw_wd_amsgrad", dict(lr=0.02, weight_decay=0.1, amsgrad=True), "AdamW"),
    ("rmsprop", dict(lr=0.01), "RMSprop"),
    ("rmsprop_wd", dict(lr=0.01, weight_decay=0.05), "RMSprop"),
    ("rmsprop_momentum", dict(lr=0.005, momentum=0.9), "RMSprop"),
    ("rmsprop_centered", dict(lr=0.005, alpha=0.9, centered=True), "RMSprop"),
    ("rmsprop_centered_mom_wd", dict(lr=0.005, alpha=0.9, momentum=0.5, centered=True,
                                     weight_decay=0.01), "RMSprop"),
]
NNLITE = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW, "RMSprop": RMSprop}


@pytest.mark.parametrize("name,kwargs,cls", TORCH_CONFIGS, ids=[c[0] for c in TORCH_CONFIGS])
def test_matches_torch(name, kwargs, cls):
    torch = pytest.importorskip("torch")
    ours, opt, _ = run_nnlite(lambda ps: NNLITE[cls](ps, **kwargs), 20)
    theirs, topt = _torch_run(torch, lambda ps: getattr(torch.optim, cls)(ps, foreach=False, **kwargs), 20)
    init = make_problem(0)[0]
    for p, t, w0 in zip(ours, theirs, init):
        assert not np.allclose(p.data, w0)  # it moved
        np.testing.assert_allclose(p.data, t, rtol=1e-10, atol=1e-13)
    # the state buffers agree too (same names as PyTorch's)
    for i, tp in enumerate(topt.param_groups[0]["params"]):
        for key, value in topt.state[tp].items():
            if key == "step":
                assert opt.state[i]["step"] == int(value)
            else:
                np.testing.assert_allclose(opt.state[i][key], value.numpy(), rtol=1e-10, atol=1e-13)


def test_defaults_match_torch():
    torch = pytest.importorskip("torch")
    t = torch.zeros(1, requires_grad=True)
    for cls in ("Adam", "AdamW", "RMSprop"):
        ours = NNLITE[cls]([P([0.0])]).param_groups[0]
        theirs = getattr(torch.optim, cls)([t]).param_groups[0]
        for key in ours:
            if key != "params":
                assert ours[key] == pytest.approx(theirs[key]), (cls, key)


def test_param_groups_and_lr_changes_match_torch():
    torch = pytest.importorskip("torch")
    init, mats = make_problem(3)
    ours = [Parameter(w.copy()) for w in init]
    theirs = [torch.tensor(w.copy(), requires_grad=True) for w in init]

    def groups(ps):
        return [{"params": [ps[0]], "weight_decay": 0.1}, {"params": [ps[1]], "lr": 0.003}]
    opt = AdamW(groups(ours), lr=0.02, amsgrad=True)
    topt = torch.optim.AdamW(groups(theirs), lr=0.02, amsgrad=True, foreach=False)
    for step in range(20):
        if step == 10:  # e.g. a schedule halving every group's lr
            for g, tg in zip(opt.param_groups, topt.param_groups):
                g["lr"] *= 0.5
                tg["lr"] *= 0.5
        for p, t, ac in zip(ours, theirs, mats):
            p.grad[...] = quad_grad(p.data, ac)
            t.grad = torch.from_numpy(quad_grad(t.detach().numpy(), ac))
        opt.step()
        topt.step()
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-10, atol=1e-13)


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    grads = [rng.standard_normal((3, 4)), rng.standard_normal(7)]
    for max_norm in (0.5, 2.0, 100.0):
        ours = [Parameter(np.zeros_like(g)) for g in grads]
        for p, g in zip(ours, grads):
            p.grad[...] = g
        theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
        for t, g in zip(theirs, grads):
            t.grad = torch.from_numpy(g.copy())
        n_ours = clip_grad_norm(ours, max_norm)
        n_theirs = float(torch.nn.utils.clip_grad_norm_(theirs, max_norm))
        assert n_ours == pytest.approx(n_theirs, rel=1e-12)
        for p, t in zip(ours, theirs):
            np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-12)
