"""Network: backprop gradients against central finite differences of the objective for every
parameter (float64), and the per-layer quantities in the question's notation:
a_i = z_{i-1} W_i^T + b_i, z_i = f(a_i), delta_i = dL/da_i, dW_i = delta_i^T z_{i-1}, db_i = sum_b delta_i."""
import zlib

import numpy as np
import pytest

from app.engine.activations import ACTIVATIONS, get_activation
from app.engine.network import Network
from app.engine.optimizers import make_optimizer

HIDDEN = [name for name in ACTIVATIONS if name != "softmax"]
KINKED = {"relu", "leaky_relu", "elu"}
H = 1e-6
TOL = 1e-6


def _targets(rng, loss, B, K):
    if loss == "mse":
        return rng.normal(size=(B, K))
    if loss == "bce":
        return (rng.random((B, K)) < 0.5).astype(float)
    return np.eye(K)[rng.integers(0, K, B)]


def _build(seed, *, hidden, act, loss, out_act, B, K, bias=True, reg="none", rate=0.0, p=None):
    """A random network + batch whose pre-activations stay clear of kinks (and, for l1, weights of 0)."""
    rng = np.random.default_rng(seed)
    for _ in range(200):
        p_ = p or int(rng.integers(1, 5))
        sizes = [p_] + [int(rng.integers(1, 6)) for _ in range(hidden)] + [K]
        net = Network(sizes, [act] * hidden + [out_act], loss=loss, bias=bias, regularization=reg, reg_rate=rate)
        net.initialize(int(rng.integers(0, 2**31)), "normal", std=0.8)
        if bias:  # non-zero biases so db and the bias path are exercised
            net.params[net.weight_mask == 0] = rng.normal(0.0, 0.5, int((net.weight_mask == 0).sum()))
        X = rng.normal(size=(B, p_))
        y = _targets(rng, loss, B, K)
        net.forward(X)
        pre = [layer.a for layer, name in zip(net.acts, net.activation_names) if name in KINKED]
        if any(np.abs(a).min() < 1e-3 for a in pre):
            continue
        if reg == "l1" and np.abs(net.params[net.weight_mask == 1]).min() < 1e-3:
            continue
        return net, X, y
    raise AssertionError("could not draw a kink-free case")


def _numeric_grad(net, X, y):
    g = np.zeros_like(net.params)
    for k in range(net.params.size):
        old = net.params[k]
        net.params[k] = old + H
        lp = net.objective(X, y)
        net.params[k] = old - H
        lm = net.objective(X, y)
        net.params[k] = old
        g[k] = (lp - lm) / (2 * H)
    return g


def _check_gradients(net, X, y):
    objective = net.objective(X, y)
    net.forward(X)
    loss = net.backward(y)
    assert loss == pytest.approx(objective, rel=1e-13, abs=1e-15)
    analytic = net.grads.copy()
    numeric = _numeric_grad(net, X, y)
    scale = max(np.abs(numeric).max(), np.abs(analytic).max())
    assert scale > 0
    # every parameter tensor (W_i, b_i) separately and the whole vector
    for s, e in zip(net.offsets[:-1], net.offsets[1:]):
        err = np.abs(numeric[s:e] - analytic[s:e]).max()
        tensor_scale = max(np.abs(numeric[s:e]).max(), np.abs(analytic[s:e]).max())
        assert err <= TOL * max(tensor_scale, 1e-3 * scale), (s, e, err, tensor_scale)
    assert np.abs(numeric - analytic).max() <= TOL * scale


LOSS_OUTPUTS = [("mse", "identity"), ("bce", "sigmoid"), ("cross_entropy", "softmax")]
CASES = [(act, hidden, loss, out)
         for act in HIDDEN for hidden in range(6) for loss, out in LOSS_OUTPUTS]


@pytest.mark.parametrize("act,hidden,loss,out_act", CASES)
def test_gradients_match_finite_differences(act, hidden, loss, out_act):
    seed = zlib.crc32(f"{act}{hidden}{loss}".encode())
    rng = np.random.default_rng(seed)
    K = 1 if loss == "bce" and rng.random() < 0.5 else int(rng.integers(1, 4)) if loss != "cross_entropy" \
        else int(rng.integers(2, 5))
    B = int(rng.choice([1, 2, 5, 8]))
    net, X, y = _build(seed, hidden=hidden, act=act, loss=loss, out_act=out_act, B=B, K=K,
                       bias=bool(rng.random() < 0.75))
    _check_gradients(net, X, y)


@pytest.mark.parametrize("out_act", HIDDEN)
def test_mse_gradients_through_every_output_activation(out_act):
    """The unfused path: delta_L = f'(a_L) * dL/dy_hat for every output activation."""
    net, X, y = _build(zlib.crc32(out_act.encode()), hidden=2, act="tanh", loss="mse", out_act=out_act, B=4, K=2)
    _check_gradients(net, X, y)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("loss,out_act", LOSS_OUTPUTS)
def test_batch_of_one_and_single_output(bias, loss, out_act):
    K = 2 if loss == "cross_entropy" else 1
    net, X, y = _build(11, hidden=3, act="tanh", loss=loss, out_act=out_act, B=1, K=K, bias=bias, p=1)
    assert X.shape == (1, 1)
    _check_gradients(net, X, y)


@pytest.mark.parametrize("reg", ["l1", "l2"])
@pytest.mark.parametrize("act", ["tanh", "relu", "softplus"])
@pytest.mark.parametrize("loss,out_act", LOSS_OUTPUTS)
@pytest.mark.parametrize("bias", [True, False])
def test_gradients_with_regularization(reg, act, loss, out_act, bias):
    K = 3 if loss == "cross_entropy" else 1
    seed = zlib.crc32(f"{reg}{act}{loss}{bias}".encode())
    net, X, y = _build(seed, hidden=2, act=act, loss=loss, out_act=out_act, B=5, K=K, bias=bias,
                       reg=reg, rate=0.3)
    _check_gradients(net, X, y)


@pytest.mark.parametrize("reg", ["l1", "l2"])
def test_penalty_is_on_weights_only(reg):
    net, X, y = _build(3, hidden=2, act="tanh", loss="mse", out_act="identity", B=6, K=2, reg=reg, rate=0.25)
    W = [d.params["W"] for d in net.dense]
    expected = (0.25 * sum(np.abs(w).sum() for w in W) if reg == "l1"
                else 0.5 * 0.25 * sum((w * w).sum() for w in W))
    net.forward(X)
    total = net.backward(y)
    assert net.penalty == pytest.approx(expected, rel=1e-13)
    assert total == pytest.approx(net.data_loss + expected, rel=1e-13)
    assert net.objective(X, y) == pytest.approx(total, rel=1e-13)
    for i, q in enumerate(net.quantities()):
        z_prev = X if i == 0 else net.acts[i - 1].z
        pen = 0.25 * (np.sign(W[i]) if reg == "l1" else W[i])
        np.testing.assert_allclose(q.dW, q.delta.T @ z_prev + pen, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(q.db, q.delta.sum(axis=0), rtol=1e-12, atol=1e-15)  # biases untouched
    # the biases' own values do not enter the penalty
    net.params[net.weight_mask == 0] += 100.0
    net.forward(X)
    net.backward(y)
    assert net.penalty == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("loss,out_act", LOSS_OUTPUTS)
@pytest.mark.parametrize("hidden", [0, 1, 3])
def test_per_layer_quantities_follow_the_notation(bias, loss, out_act, hidden):
    K = 3 if loss == "cross_entropy" else 2
    net, X, y = _build(hidden * 10 + len(loss), hidden=hidden, act="tanh", loss=loss, out_act=out_act,
                       B=7, K=K, bias=bias)
    B = X.shape[0]
    total = net.full_backward(X, y)
    assert total == pytest.approx(net.objective(X, y), rel=1e-13)
    qs = net.quantities()
    assert len(qs) == net.n_layers == hidden + 1
    z_prev = X
    for i, (q, dense) in enumerate(zip(qs, net.dense)):
        n_out, n_in = net.sizes[i + 1], net.sizes[i]
        W = dense.params["W"]
        assert W.shape == (n_out, n_in)
        assert q.a.shape == q.z.shape == q.delta.shape == q.dz.shape == (B, n_out)
        assert q.dW.shape == (n_out, n_in)
        b = dense.params.get("b")
        if bias:
            assert b.shape == (n_out,) and q.db.shape == (n_out,)
        else:
            assert b is None and q.db is None and q.norm_b is None
        np.testing.assert_allclose(q.a, z_prev @ W.T + (b if bias else 0.0), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(q.z, get_activation(net.activation_names[i]).forward(q.a), rtol=1e-14)
        np.testing.assert_allclose(q.dW, q.delta.T @ z_prev, rtol=1e-12, atol=1e-16)
        if bias:
            np.testing.assert_allclose(q.db, q.delta.sum(axis=0), rtol=1e-12, atol=1e-16)
            assert q.norm_b == pytest.approx(np.linalg.norm(q.db), rel=1e-12, abs=1e-300)
        assert q.norm_W == pytest.approx(np.linalg.norm(q.dW), rel=1e-12, abs=1e-300)
        if i + 1 < len(qs):
            # dz_i = delta_{i+1} W_{i+1}; delta_i = dz_i * f'(a_i)
            np.testing.assert_allclose(q.dz, qs[i + 1].delta @ net.dense[i + 1].params["W"], rtol=1e-12,
                                       atol=1e-16)
            np.testing.assert_allclose(q.delta, q.dz * (1 - q.z ** 2), rtol=1e-12, atol=1e-16)
        z_prev = q.z
    # the output layer: y_hat = z_L; delta_L from the loss
    out = qs[-1]
    np.testing.assert_allclose(net.forward(X), out.z, rtol=0, atol=0)
    if loss == "mse":
        np.testing.assert_allclose(out.dz, 2 * (out.z - y) / B, rtol=1e-13)
        np.testing.assert_allclose(out.delta, out.dz, rtol=1e-13)  # identity output
    else:
        np.testing.assert_allclose(out.delta, (out.z - y) / B, rtol=1e-13, atol=1e-17)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("reg", ["none", "l2"])
def test_weight_grad_norms(bias, reg):
    net, X, y = _build(21, hidden=3, act="relu", loss="cross_entropy", out_act="softmax", B=9, K=3,
                       bias=bias, reg=reg, rate=0.1)
    net.forward(X)
    net.backward(y)
    norms = net.weight_grad_norms()
    expected = [np.linalg.norm(d.grads["W"]) for d in net.dense]
    assert norms.shape == (net.n_layers,)
    np.testing.assert_allclose(norms, expected, rtol=1e-12)
    np.testing.assert_allclose(norms, [q.norm_W for q in net.quantities()], rtol=1e-12)


def test_params_and_grads_are_flat_views():
    net = Network([3, 4, 2], ["tanh", "identity"], loss="mse")
    net.initialize(0)
    assert net.params.size == 3 * 4 + 4 + 4 * 2 + 2
    net.dense[1].params["W"][0, 1] = 123.0
    assert 123.0 in net.params
    W1 = net.params[:12].reshape(4, 3)
    np.testing.assert_array_equal(W1, net.dense[0].params["W"])
    np.testing.assert_array_equal(net.params[12:16], 0.0)  # biases start at zero


@pytest.mark.parametrize("reg", ["none", "l1", "l2"])
def test_one_sgd_step_is_exactly_w_minus_lr_dw(reg):
    net, X, y = _build(8, hidden=2, act="tanh", loss="bce", out_act="sigmoid", B=6, K=1, reg=reg, rate=0.05)
    opt = make_optimizer(net.params.size, net.dtype, "sgd", learning_rate=0.37)
    net.full_backward(X, y)
    before = [(d.params["W"].copy(), d.params["b"].copy(), d.grads["W"].copy(), d.grads["b"].copy())
              for d in net.dense]
    # dW already holds the penalty gradient
    for (W, b, dW, db), q, i in zip(before, net.quantities(), range(net.n_layers)):
        z_prev = X if i == 0 else net.acts[i - 1].z
        pen = {"none": 0.0, "l1": 0.05 * np.sign(W), "l2": 0.05 * W}[reg]
        np.testing.assert_allclose(dW, q.delta.T @ z_prev + pen, rtol=1e-12, atol=1e-16)
    assert opt.step(net.params, net.grads) is True
    for (W, b, dW, db), d in zip(before, net.dense):
        np.testing.assert_array_equal(d.params["W"], W - 0.37 * dW)
        np.testing.assert_array_equal(d.params["b"], b - 0.37 * db)


def test_float32_network_runs_in_float32():
    net = Network([2, 5, 1], ["relu", "sigmoid"], loss="bce", dtype=np.float32)
    net.initialize(0)
    X = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    y = np.array([[0], [1], [1], [0]], np.float32)
    assert net.forward(X).dtype == np.float32
    net.backward(y)
    assert net.grads.dtype == np.float32 and net.params.dtype == np.float32
    for q in net.quantities():
        assert q.a.dtype == q.delta.dtype == q.dW.dtype == np.float32


def test_mismatched_activation_count_is_rejected():
    with pytest.raises(ValueError):
        Network([2, 3, 1], ["tanh"], loss="mse")


def test_set_parameters_replaces_every_layer_or_refuses_and_changes_nothing():
    from app.engine.network import ParameterError
    net = Network([2, 3, 1], ["tanh", "identity"], loss="mse")
    net.initialize(0)
    before = net.params.copy()
    W1, b1, W2, b2 = np.ones((3, 2)), np.arange(3.0), np.full((1, 3), 2.0), np.array([5.0])
    for layers, loc, message in [
            ([(W1, b1)], ("layers",), "expected 2 layers, got 1"),
            ([(W1, b1), (np.ones((3, 1)), b2)], ("layers", 1, "W"), "layer 2 W: expected shape [1, 3], got [3, 1]"),
            ([(W1, None), (W2, b2)], ("layers", 0, "b"), "layer 1 has a bias; send a list of 3 numbers"),
            ([(W1, b1), (W2, np.zeros(2))], ("layers", 1, "b"), "layer 2 b: expected shape [1], got [2]")]:
        with pytest.raises(ParameterError) as e:
            net.set_parameters(layers)
        assert (e.value.loc, e.value.message) == (loc, message)
        np.testing.assert_array_equal(net.params, before)
    net.set_parameters([(W1, b1), (W2, b2)])
    for d, (W, b) in zip(net.dense, [(W1, b1), (W2, b2)]):
        np.testing.assert_array_equal(d.params["W"], W)
        np.testing.assert_array_equal(d.params["b"], b)
