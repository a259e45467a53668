"""Optimizers against torch.optim's update rules written out by hand, step by step.

torch.optim.SGD (dampening 0, weight_decay 0):
    buf_1 = g_1; buf_t = mu buf_{t-1} + g_t
    d_t = g_t + mu buf_t (nesterov) or buf_t;   p <- p - lr d_t       (plain SGD: d_t = g_t)
torch.optim.Adam (amsgrad False, weight_decay 0):
    m_t = b1 m + (1 - b1) g;  v_t = b2 v + (1 - b2) g^2
    p <- p - (lr / (1 - b1^t)) * m_t / (sqrt(v_t) / sqrt(1 - b2^t) + eps)
"""
import math

import numpy as np
import pytest

from app.engine.optimizers import OPTIMIZERS, make_optimizer

P0 = np.array([0.5, -1.25, 2.0, 0.0])
GRADS = [np.array([0.1, -0.4, 1.5, 0.0]),
         np.array([-0.3, 0.2, 0.5, 1e-3]),
         np.array([0.25, -0.05, -2.0, -0.7])]


def _sgd_by_hand(lrs):
    p = P0.copy()
    out = []
    for lr, g in zip(lrs, GRADS):
        p = [p[j] - lr * g[j] for j in range(4)]
        out.append(np.array(p))
    return out


def _momentum_by_hand(lrs, mu, nesterov):
    p, buf, out = list(P0), None, []
    for t, (lr, g) in enumerate(zip(lrs, GRADS), start=1):
        buf = list(g) if t == 1 else [mu * buf[j] + g[j] for j in range(4)]
        d = [g[j] + mu * buf[j] for j in range(4)] if nesterov else buf
        p = [p[j] - lr * d[j] for j in range(4)]
        out.append(np.array(p))
    return out


def _adam_by_hand(lrs, b1, b2, eps):
    p, m, v, out = list(P0), [0.0] * 4, [0.0] * 4, []
    for t, (lr, g) in enumerate(zip(lrs, GRADS), start=1):
        m = [b1 * m[j] + (1 - b1) * g[j] for j in range(4)]
        v = [b2 * v[j] + (1 - b2) * g[j] ** 2 for j in range(4)]
        bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
        p = [p[j] - lr / bc1 * m[j] / (math.sqrt(v[j]) / math.sqrt(bc2) + eps) for j in range(4)]
        out.append((np.array(p), np.array(m), np.array(v)))
    return out


def _run(opt, lrs):
    p = P0.copy()
    out = []
    for lr, g in zip(lrs, GRADS):
        opt.set_hyper(learning_rate=lr)
        assert opt.step(p, g.copy()) is True
        out.append(p.copy())
    return out


CONSTANT = [0.1, 0.1, 0.1]
CHANGING = [0.1, 0.5, 0.02]  # learning rate changed between steps: state must carry over


def test_registry_and_factory():
    assert set(OPTIMIZERS) == {"sgd", "momentum", "adam"}
    with pytest.raises(ValueError):
        make_optimizer(3, np.float64, "rmsprop")
    # hyper-parameters of other optimizers are ignored
    opt = make_optimizer(3, np.float64, "sgd", learning_rate=0.2, beta1=0.5, momentum=0.3)
    assert opt.learning_rate == 0.2 and not hasattr(opt, "beta1")


@pytest.mark.parametrize("lrs", [CONSTANT, CHANGING])
def test_sgd(lrs):
    got = _run(make_optimizer(4, np.float64, "sgd", learning_rate=lrs[0]), lrs)
    for g, e in zip(got, _sgd_by_hand(lrs)):
        np.testing.assert_allclose(g, e, rtol=1e-15, atol=0)


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("lrs", [CONSTANT, CHANGING])
def test_momentum(nesterov, lrs):
    opt = make_optimizer(4, np.float64, "momentum", learning_rate=lrs[0], momentum=0.8, nesterov=nesterov)
    got = _run(opt, lrs)
    for g, e in zip(got, _momentum_by_hand(lrs, 0.8, nesterov)):
        np.testing.assert_allclose(g, e, rtol=1e-14, atol=1e-16)
    assert opt.t == 3


def test_nesterov_differs_from_plain_momentum():
    a = _run(make_optimizer(4, np.float64, "momentum", learning_rate=0.1, momentum=0.9), CONSTANT)
    b = _run(make_optimizer(4, np.float64, "momentum", learning_rate=0.1, momentum=0.9, nesterov=True), CONSTANT)
    assert not np.allclose(a[-1], b[-1])


@pytest.mark.parametrize("lrs", [CONSTANT, CHANGING])
@pytest.mark.parametrize("b1,b2,eps", [(0.9, 0.999, 1e-8), (0.5, 0.9, 1e-3)])
def test_adam(lrs, b1, b2, eps):
    opt = make_optimizer(4, np.float64, "adam", learning_rate=lrs[0], beta1=b1, beta2=b2, eps=eps)
    p = P0.copy()
    for t, (lr, g, (ep, em, ev)) in enumerate(zip(lrs, GRADS, _adam_by_hand(lrs, b1, b2, eps)), start=1):
        opt.set_hyper(learning_rate=lr)
        assert opt.step(p, g.copy()) is True
        assert opt.t == t
        np.testing.assert_allclose(p, ep, rtol=1e-14, atol=1e-16)
        np.testing.assert_allclose(opt.m, em, rtol=1e-14, atol=1e-18)
        np.testing.assert_allclose(opt.v, ev, rtol=1e-14, atol=1e-18)
        np.testing.assert_array_equal(opt.state_arrays()["m"], opt.m)


def test_adam_first_step_is_lr_times_sign():
    opt = make_optimizer(4, np.float64, "adam", learning_rate=0.01, eps=0.0)
    p = P0.copy()
    g = np.array([3.0, -1e-4, 0.5, -7.0])
    opt.step(p, g)
    np.testing.assert_allclose(p, P0 - 0.01 * np.sign(g), rtol=1e-14)


@pytest.mark.parametrize("name", ["momentum", "adam"])
def test_set_hyper_keeps_state(name):
    opt = make_optimizer(4, np.float64, name, learning_rate=0.1)
    p = P0.copy()
    opt.step(p, GRADS[0].copy())
    state = {k: v.copy() for k, v in opt.state_arrays().items()}
    arrays = {k: id(v) for k, v in opt.state_arrays().items()}
    opt.set_hyper(learning_rate=0.7, unknown=3, momentum=None)
    assert opt.learning_rate == 0.7 and opt.t == 1
    for k, v in opt.state_arrays().items():
        np.testing.assert_array_equal(v, state[k])
    assert set(arrays) == set(state)


def _optimizers():
    return [make_optimizer(4, np.float64, "sgd", learning_rate=10.0),
            make_optimizer(4, np.float64, "momentum", learning_rate=10.0, momentum=0.9),
            make_optimizer(4, np.float64, "momentum", learning_rate=10.0, momentum=0.9, nesterov=True),
            make_optimizer(4, np.float64, "adam", learning_rate=10.0)]


@pytest.mark.parametrize("k", range(4))
@pytest.mark.parametrize("bad", ["overflow", "inf", "nan"])
def test_non_finite_step_is_refused_and_changes_nothing(k, bad):
    opt = _optimizers()[k]
    p = P0.copy()
    assert opt.step(p, GRADS[0].copy()) is True  # some state to protect
    p_before = p.copy()
    state = {key: v.copy() for key, v in opt.state_arrays().items()}
    t = opt.t
    g = GRADS[1].copy()
    g[2] = {"overflow": 1e308, "inf": np.inf, "nan": np.nan}[bad]  # 10 * 1e308 (or its square) overflows
    with np.errstate(over="ignore", invalid="ignore"):
        assert opt.step(p, g) is False
    np.testing.assert_array_equal(p, p_before)
    assert opt.t == t
    for key, v in opt.state_arrays().items():
        np.testing.assert_array_equal(v, state[key])
    # the next good step continues as if the bad one never happened
    reference = _optimizers()[k]
    q = P0.copy()
    reference.step(q, GRADS[0].copy())
    assert opt.step(p, GRADS[1].copy()) is True
    reference.step(q, GRADS[1].copy())
    np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_float32_state_and_params_stay_float32(name):
    opt = make_optimizer(4, np.float32, name, learning_rate=0.1)
    p = P0.astype(np.float32)
    for g in GRADS:
        assert opt.step(p, g.astype(np.float32)) is True
    assert p.dtype == np.float32
    for v in opt.state_arrays().values():
        assert v.dtype == np.float32
