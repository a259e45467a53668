import itertools

import numpy as np
import pytest

from app.engine.gradcheck import TOLERANCE, Stopped, float64_copy, gradcheck, relative_error
from app.engine.layers import Dense
from app.engine.network import Network
from app.engine.trace import closed_form_gradients

ELEMENTWISE = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "silu"]
# each loss with the outputs it accepts: bce needs sigmoid, cross_entropy needs softmax
OUTPUTS = {"mse": ELEMENTWISE + ["softmax"], "bce": ["sigmoid"], "cross_entropy": ["softmax"]}


def make_net(hidden, act, out_act, loss, *, bias=True, reg="none", rate=0.0, dtype=np.float64, seed=0,
             p=3, k=2):
    sizes = [p] + [4] * hidden + [k]
    net = Network(sizes, [act] * hidden + [out_act], loss=loss, bias=bias, dtype=dtype,
                  regularization=reg, reg_rate=rate)
    net.initialize(seed, "normal", 0.8)
    if bias:  # non-zero biases, so db is exercised away from the zero init
        rng = np.random.default_rng(seed + 100)
        for d in net.dense:
            d.params["b"][...] = rng.normal(0, 0.5, d.n_out)
    return net


def make_data(net, B, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(B, net.sizes[0]))
    K = net.sizes[-1]
    if net.loss.name == "bce":
        y = rng.integers(0, 2, size=(B, K)).astype(float)
    elif net.loss.name == "cross_entropy":
        y = np.eye(K)[rng.integers(0, K, size=B)]
    else:
        y = rng.normal(size=(B, K))
    return X.astype(net.dtype), y.astype(net.dtype)


CASES = []
for i, (loss, act) in enumerate(itertools.product(OUTPUTS, ELEMENTWISE)):
    for out in OUTPUTS[loss]:
        if loss == "mse" and out not in (act, "softmax", "identity"):
            continue  # mse: each hidden activation once as output, plus identity and softmax outputs
        CASES.append((loss, act, out, i % 6, i % 2 == 0, ("none", "l1", "l2")[i % 3], 3 if i % 4 else 1))


@pytest.mark.parametrize("loss,act,out,hidden,bias,reg,B", CASES)
def test_gradcheck_passes_on_correct_backward(loss, act, out, hidden, bias, reg, B):
    net = make_net(hidden, act, out, loss, bias=bias, reg=reg, rate=0.05 if reg != "none" else 0.0)
    X, y = make_data(net, B)
    r = gradcheck(net, X, y)
    assert r["passed"], r
    assert r["max_relative_error"] <= TOLERANCE
    assert len(r["layers"]) == hidden + 1
    for entry, dense in zip(r["layers"], net.dense):
        assert entry["W"]["checked"] == dense.params["W"].size
        assert (entry["b"] is None) == (not bias)
        assert entry["W"]["analytic_norm"] > 0


@pytest.mark.parametrize("hidden", range(6))
def test_depths_0_to_5_with_all_regularizations(hidden):
    for reg in ("none", "l1", "l2"):
        net = make_net(hidden, "tanh", "sigmoid", "bce", reg=reg, rate=0.1, seed=hidden)
        X, y = make_data(net, 4)
        assert gradcheck(net, X, y)["passed"]


def test_float32_net_checked_on_float64_copy_and_untouched():
    net = make_net(2, "tanh", "softmax", "cross_entropy", dtype=np.float32, reg="l2", rate=0.01)
    X, y = make_data(net, 5)
    before_p, before_g = net.params.copy(), net.grads.copy()
    r = gradcheck(net, X, y)
    assert r["passed"] and r["dtype_checked"] == "float64"
    assert net.params.dtype == np.float32
    assert np.array_equal(net.params, before_p) and np.array_equal(net.grads, before_g)
    copy = float64_copy(net)
    assert copy.dtype == np.float64 and copy.sizes == net.sizes and copy.regularization == "l2"
    assert np.array_equal(copy.params, net.params.astype(np.float64))


def test_params_restored_bit_for_bit():
    net = make_net(3, "elu", "identity", "mse", reg="l1", rate=0.01)
    X, y = make_data(net, 6)
    params, buffer = net.params.copy(), net.params
    gradcheck(net, X, y, eps=1e-3)  # a large eps: old + eps - eps would not round-trip exactly
    assert net.params is buffer and net.params.tobytes() == params.tobytes()
    assert all(np.shares_memory(d.params["W"], net.params) for d in net.dense)


def test_fails_when_backward_is_corrupted(monkeypatch):
    net = make_net(2, "tanh", "sigmoid", "bce")
    X, y = make_data(net, 4)
    assert gradcheck(net, X, y)["passed"]
    original = Dense.backward

    def scaled(self, delta, need_input_grad=True):
        out = original(self, delta, need_input_grad)
        self.grads["W"] *= 1.01
        return out

    monkeypatch.setattr(Dense, "backward", scaled)
    r = gradcheck(net, X, y)
    assert not r["passed"]
    assert r["max_relative_error"] > 1e-3
    assert all(e["W"]["relative_error"] > 1e-3 for e in r["layers"])
    assert all(e["b"]["relative_error"] <= TOLERANCE for e in r["layers"])  # db was left alone


def test_max_entries_samples_seeded_subset():
    net = Network([20, 30, 1], ["relu", "sigmoid"], loss="bce")
    net.initialize(3)
    X, y = make_data(net, 8)
    r1 = gradcheck(net, X, y, max_entries=25, seed=4)
    r2 = gradcheck(net, X, y, max_entries=25, seed=4)
    assert r1 == r2 and r1["passed"]
    assert [e["W"]["checked"] for e in r1["layers"]] == [25, 25]
    assert [e["b"]["checked"] for e in r1["layers"]] == [25, 1]
    with pytest.raises(ValueError):
        gradcheck(net, X, y, max_entries=0)
    with pytest.raises(ValueError):
        gradcheck(net, X, y, eps=0)


def test_relative_error_definition():
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(np.array([1.0, 0]), np.array([-1.0, 0])) == 1.0
    assert relative_error(np.array([3.0]), np.array([1.0])) == pytest.approx(0.5)


@pytest.mark.parametrize("f_name,sizes", [("sigmoid", [3, 4, 5, 1]), ("tanh", [2, 5, 3, 4, 1]),
                                          ("sigmoid", [4, 1]), ("tanh", [3, 6, 1])])
def test_question_network_matches_the_answers_closed_form(f_name, sizes):
    """The seed question's network: no bias, one f everywhere, one output, MSE, one sample."""
    funcs = {"sigmoid": (lambda a: 1 / (1 + np.exp(-a)), lambda a: np.exp(-a) / (1 + np.exp(-a)) ** 2),
             "tanh": (np.tanh, lambda a: 1 - np.tanh(a) ** 2)}
    net = Network(sizes, [f_name] * (len(sizes) - 1), loss="mse", bias=False)
    net.initialize(7, "normal", 1.0)
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=sizes[0]), 0.3
    net.full_backward(x[None, :], np.array([[y]]))
    engine = [q.dW.copy() for q in net.quantities()]
    closed = closed_form_gradients([d.params["W"] for d in net.dense], *funcs[f_name], x, y)
    assert [c.shape for c in closed] == [e.shape for e in engine]
    for c, e in zip(closed, engine):
        np.testing.assert_allclose(e, c, rtol=0, atol=1e-12)
        assert np.linalg.norm(c) > 1e-6  # a non-trivial comparison
    assert gradcheck(net, x[None, :], np.array([[y]]))["passed"]


def test_kinks_are_reported_not_failed():
    """A relu pre-activation exactly on 0: backprop takes f'(0) = 0, the central difference 1/2."""
    net = Network([2, 3, 1], ["relu", "identity"], loss="mse", bias=True)
    net.initialize(0, "normal", 1.0)
    net.dense[0].params["W"][0] = [1.0, 1.0]
    net.dense[0].params["b"][0] = -0.75
    X = np.array([[0.5, 0.25], [1.0, -0.3], [-0.4, 0.9]])  # row 0: a_1 of unit 1 is exactly 0
    y = np.array([[1.0], [0.2], [-0.5]])
    r = gradcheck(net, X, y)
    assert r["passed"] and r["kinks"] > 0, r
    assert r["layers"][0]["W"]["kinks"] >= 1 and r["layers"][0]["W"]["relative_error"] <= TOLERANCE
    # without leaving kinks out the same entries would fail: the numeric slope there is the average 1/2
    net2 = Network([2, 3, 1], ["tanh", "identity"], loss="mse")
    net2.params[...] = net.params
    assert gradcheck(net2, X, y)["kinks"] == 0  # smooth activations have no kinks


def test_eps_too_small_or_too_large_is_explained():
    net = make_net(2, "tanh", "sigmoid", "bce")
    X, y = make_data(net, 4)
    small = gradcheck(net, X, y, eps=1e-12)
    assert not small["passed"]
    assert "too small" in small["eps_note"] and "round-off" in small["eps_note"]
    assert "the same check passes" in small["eps_note"] and "step size" in small["eps_note"]
    large = gradcheck(net, X, y, eps=0.5)
    assert "too large" in large["eps_note"] and "truncation" in large["eps_note"]
    assert gradcheck(net, X, y)["eps_note"] is None


def test_stop_ends_the_check_early_and_restores_the_parameters():
    net = make_net(1, "tanh", "identity", "mse")
    X, y = make_data(net, 5)
    before = net.params.copy()
    asked = []

    def stop():
        asked.append(1)
        return len(asked) > 3  # three entries checked, then stop

    with pytest.raises(Stopped):
        gradcheck(net, X, y, stop=stop)
    assert len(asked) == 4
    np.testing.assert_array_equal(net.params, before)
    assert gradcheck(net, X, y, stop=lambda: False) == gradcheck(net, X, y)
