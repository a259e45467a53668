"""Losses: values against hand formulas, gradients against finite differences, fused (logit)
paths against the unfused chain rule, and numerical stability for logits of magnitude 1000."""
import numpy as np
import pytest

from app.engine.activations import get_activation
from app.engine.losses import LOSSES, get_loss
from app.engine.network import Network

H = 1e-6
TOL = 1e-6


def _rel_err(num, ana):
    scale = max(np.abs(num).max(), np.abs(ana).max())
    return 0.0 if scale == 0 else float(np.abs(num - ana).max() / scale)


def _fd(fun, x):
    """Central differences of a scalar function, one entry at a time."""
    g = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += H
        xm[idx] -= H
        g[idx] = (fun(xp) - fun(xm)) / (2 * H)
    return g


def _case(name, B, K, seed):
    """(y_hat, y, a) valid for the loss: a are logits whose output activation gives y_hat."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 1.5, (B, K))
    if name == "mse":
        return a.copy(), rng.normal(size=(B, K)), a
    if name == "bce":
        y = rng.random((B, K))
        y[: B // 2] = np.round(y[: B // 2])  # hard and soft labels
        return get_activation("sigmoid").forward(a), y, a
    y = np.eye(K)[rng.integers(0, K, B)]
    if B > 1:
        y[-1] = rng.dirichlet(np.ones(K))  # a probability row
    return get_activation("softmax").forward(a), y, a


SHAPES = [(1, 1), (1, 3), (4, 1), (5, 3), (7, 10)]


def test_registry():
    assert set(LOSSES) == {"mse", "bce", "cross_entropy"}
    with pytest.raises(ValueError):
        get_loss("hinge")


@pytest.mark.parametrize("name", ["mse", "bce", "cross_entropy"])
@pytest.mark.parametrize("shape", SHAPES)
def test_value_matches_definition(name, shape):
    B, K = shape
    y_hat, y, _ = _case(name, B, K, seed=B * 31 + K)
    if name == "mse":
        expected = np.mean(np.sum((y_hat - y) ** 2, axis=1))
    elif name == "bce":
        expected = np.mean(-np.sum(y * np.log(y_hat) + (1 - y) * np.log(1 - y_hat), axis=1))
    else:
        expected = np.mean(-np.sum(y * np.log(y_hat), axis=1))
    value = get_loss(name).value(y_hat, y)
    assert isinstance(value, float)
    assert value == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("name", ["mse", "bce", "cross_entropy"])
@pytest.mark.parametrize("shape", SHAPES)
def test_grad_matches_finite_differences(name, shape):
    B, K = shape
    loss = get_loss(name)
    y_hat, y, _ = _case(name, B, K, seed=B * 17 + K)
    g = loss.grad(y_hat, y)
    assert g.shape == y_hat.shape
    num = _fd(lambda v: loss.value(v, y), y_hat)
    assert _rel_err(num, g) <= TOL


@pytest.mark.parametrize("name,act", [("bce", "sigmoid"), ("cross_entropy", "softmax")])
@pytest.mark.parametrize("shape", SHAPES)
def test_fused_equals_value_and_chained_grad(name, act, shape):
    B, K = shape
    loss, f = get_loss(name), get_activation(act)
    assert loss.fused_with == act
    y_hat, y, a = _case(name, B, K, seed=B * 7 + K)
    value, delta = loss.fused(a, y_hat, y)
    assert value == pytest.approx(loss.value(y_hat, y), rel=1e-12, abs=1e-15)
    # delta_L = J_f(a)^T dL/dy_hat, i.e. the activation's backward of the loss gradient
    chained = f.backward(a, y_hat, loss.grad(y_hat, y))
    np.testing.assert_allclose(delta, chained, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(delta, (y_hat - y) / B, rtol=1e-14, atol=1e-17)
    # and it is the derivative of the fused value with respect to the logits
    num = _fd(lambda v: loss.fused(v, f.forward(v), y)[0], a)
    assert _rel_err(num, delta) <= TOL


def test_mse_single_output_is_the_questions_squared_error():
    y_hat = np.array([[0.3], [1.5], [-2.0], [0.0]])
    y = np.array([[1.0], [1.0], [0.5], [0.0]])
    per_sample = [(yh - t) ** 2 for yh, t in zip(y_hat[:, 0], y[:, 0])]
    mse = get_loss("mse")
    assert mse.value(y_hat, y) == pytest.approx(sum(per_sample) / 4, rel=1e-15)
    # the question's k_n seed: d/dy_hat (y_hat - y)^2 = 2 (y_hat - y), averaged over the batch
    np.testing.assert_allclose(mse.grad(y_hat, y), 2 * (y_hat - y) / 4, rtol=1e-15)
    # one sample: exactly (y_hat - y)^2
    assert mse.value(np.array([[0.75]]), np.array([[0.25]])) == 0.25


def test_mse_sums_over_outputs_and_averages_over_batch():
    y_hat = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    y = np.zeros((2, 3))
    assert get_loss("mse").value(y_hat, y) == pytest.approx((1 + 4 + 9) / 2)


@pytest.mark.parametrize("name,act", [("bce", "sigmoid"), ("cross_entropy", "softmax")])
def test_fused_is_finite_for_logits_of_magnitude_1000(name, act):
    loss, f = get_loss(name), get_activation(act)
    if name == "bce":
        a = np.array([[1000.0], [-1000.0], [1000.0], [-1000.0]])
        y = np.array([[0.0], [1.0], [1.0], [0.0]])
        expected = (1000 + 1000 + 0 + 0) / 4
    else:
        a = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 0.0], [0.0, 0.0, 1000.0]])
        y = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
        expected = (2000 + 0 + 1000) / 3
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y_hat = f.forward(a)
        value, delta = loss.fused(a, y_hat, y)
    assert np.isfinite(value) and np.isfinite(delta).all()
    assert value == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(delta, (y_hat - y) / len(y), atol=1e-15)


def _huge_logit_network(kind):
    """A one-layer network whose logits are +-1000: the right answer with the wrong sign."""
    if kind == "bce":
        net = Network([2, 1], ["sigmoid"], loss="bce")
        net.dense[0].params["W"][...] = [[1.0, 0.0]]
        X = np.array([[1000.0, 1.0], [-1000.0, 2.0], [1000.0, 3.0]])
        y = np.array([[0.0], [1.0], [1.0]])
        return net, X, y, 2000.0 / 3
    net = Network([2, 3], ["softmax"], loss="cross_entropy")
    net.dense[0].params["W"][...] = [[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]]
    X = np.array([[1000.0, 0.0], [-1000.0, 0.0]])
    y = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    return net, X, y, (2000.0 + 1000.0) / 2


@pytest.mark.parametrize("kind", ["bce", "cross_entropy"])
def test_network_training_path_is_finite_on_huge_logits(kind):
    net, X, y, expected = _huge_logit_network(kind)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        net.forward(X)
        loss = net.backward(y)
        value = net.loss_value(X, y)
    assert loss == pytest.approx(expected, rel=1e-12)
    assert value == pytest.approx(expected, rel=1e-12)
    assert np.isfinite(net.grads).all()
    assert np.isfinite(net.acts[-1].delta).all()
    assert net.objective(X, y) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("kind", ["bce", "cross_entropy"])
def test_network_display_path_is_finite_on_huge_logits(kind):
    """full_backward (what /gradients shows) must not put inf/NaN into the output layer's dz."""
    net, X, y, expected = _huge_logit_network(kind)
    loss = net.full_backward(X, y)
    assert loss == pytest.approx(expected, rel=1e-12)
    q = net.quantities()[-1]
    assert np.isfinite(q.delta).all() and np.isfinite(q.dW).all()
    assert q.dz is not None and np.isfinite(q.dz).all(), f"output dz is not finite: {q.dz}"


@pytest.mark.parametrize("kind", ["bce", "cross_entropy"])
def test_fused_network_delta_is_y_hat_minus_y_over_B(kind):
    rng = np.random.default_rng(5)
    K = 1 if kind == "bce" else 4
    net = Network([3, 5, K], ["tanh", "sigmoid" if kind == "bce" else "softmax"], loss=kind)
    net.initialize(2)
    X = rng.normal(size=(6, 3))
    y = (rng.random((6, 1)) < 0.5).astype(float) if kind == "bce" else np.eye(K)[rng.integers(0, K, 6)]
    net.full_backward(X, y)
    out = net.quantities()[-1]
    np.testing.assert_allclose(out.delta, (out.z - y) / 6, rtol=1e-14, atol=1e-17)
    np.testing.assert_allclose(out.dz, get_loss(kind).grad(out.z, y), rtol=1e-14)
