"""gradcheck on gradients within finite-difference round-off: they pass with a note; a wrong one still fails."""
import numpy as np
import pytest

from app.engine.activations import Sigmoid, Tanh
from app.engine.gradcheck import TOLERANCE, gradcheck
from app.engine.model import Model
from app.engine.network import Network

MOONS = {"data": {"dataset": "moons", "samples": 200, "noise": 0.0, "test_fraction": 0.5, "seed": 0,
                  "features": ["x1", "x2"]}, "optimizer": {"name": "adam", "lr": 0.03}}


@pytest.fixture(scope="module")
def converged():
    """The default 2-8-8-1 tanh/sigmoid bce net trained on moons until its loss is below 1e-7."""
    model = Model(MOONS)
    model.train(12500)
    X, y = model.batch()
    assert model.net.objective(X, y) < 1e-7
    return model.net, X, y


def sigmoid_chain(depth=8, seed=3):
    """A 1-wide sigmoid chain with mse: the first layers' gradients are about 1e-7."""
    net = Network([1] * (depth + 1), ["sigmoid"] * depth, loss="mse")
    net.initialize(seed, "normal", 1.0)
    X = np.array([[0.5], [-1.0], [2.0]])
    y = np.array([[0.9], [0.1], [0.4]])
    return net, X, y


def tensors(r):
    return [e[k] for e in r["layers"] for k in ("W", "b") if e[k] is not None]


def test_converged_moons_passes_within_roundoff_with_a_note(converged):
    r = gradcheck(*converged)
    assert r["passed"]
    assert r["max_relative_error"] > TOLERANCE  # the relative error alone would fail it
    within = [t for t in tensors(r) if t["within_roundoff"]]
    assert within and all(t["abs_error"] <= t["roundoff"] for t in within)
    assert all(t["relative_error"] <= TOLERANCE for t in tensors(r) if not t["within_roundoff"])
    assert "passed within round-off" in r["roundoff_note"] and "try eps = " in r["roundoff_note"]


def test_deep_sigmoid_chain_passes_within_roundoff():
    net, X, y = sigmoid_chain()
    r = gradcheck(net, X, y)
    first = r["layers"][0]["W"]
    assert 1e-9 < first["analytic_norm"] < 1e-6
    assert first["relative_error"] > TOLERANCE and first["within_roundoff"]
    assert r["passed"] and "W_1" in r["roundoff_note"]


def test_correct_gradients_above_tolerance_get_no_bound_and_no_note():
    net, X, y = sigmoid_chain(depth=2)
    r = gradcheck(net, X, y)
    assert r["passed"] and r["roundoff_note"] is None
    assert all(t["roundoff"] is None and not t["within_roundoff"] for t in tensors(r))


@pytest.mark.parametrize("factor", [1.01, -1.0])
def test_a_perturbed_sigmoid_backward_still_fails_on_the_chain(monkeypatch, factor):
    net, X, y = sigmoid_chain()
    right = Sigmoid.backward
    monkeypatch.setattr(Sigmoid, "backward", lambda self, a, z, dz: factor * right(self, a, z, dz))
    r = gradcheck(net, X, y)
    assert not r["passed"]
    assert any(t["relative_error"] > TOLERANCE and not t["within_roundoff"] for t in tensors(r))
    if factor == 1.01:  # 8 layers at 1% each: even W_1's tiny gradient is off by more than its round-off bound
        first = r["layers"][0]["W"]
        assert not first["within_roundoff"] and first["abs_error"] > first["roundoff"]


@pytest.mark.parametrize("factor", [1.01, -1.0])
def test_a_perturbed_tanh_backward_still_fails_on_the_untrained_moons_net(monkeypatch, factor):
    model = Model(MOONS)
    X, y = model.batch()
    right = Tanh.backward
    monkeypatch.setattr(Tanh, "backward", lambda self, a, z, dz: factor * right(self, a, z, dz))
    r = gradcheck(model.net, X, y)
    assert not r["passed"] and r["roundoff_note"] is None


def test_the_wide_difference_restores_the_parameters(converged):
    net, X, y = converged
    before = net.params.copy()
    gradcheck(net, X, y)
    assert np.array_equal(net.params, before)
