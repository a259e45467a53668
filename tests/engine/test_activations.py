"""Activations: forward against PyTorch's definitions written out in NumPy, backward against
central finite differences in float64.

The reference formulas below are torch.nn.functional's documented definitions with its default
parameters (leaky_relu negative_slope=0.01, elu alpha=1, softplus beta=1 threshold=20).
"""
import zlib

import numpy as np
import pytest

from app.engine.activations import ACTIVATIONS, DERIVATIVE_TEXT, get_activation

ELEMENTWISE = [name for name in ACTIVATIONS if name != "softmax"]
KINKS = {"relu": [0.0], "leaky_relu": [0.0], "elu": [0.0], "softplus": [20.0]}  # softplus: threshold switch
H = 1e-6
TOL = 1e-6


def _sigmoid_ref(x):
    # 1 / (1 + e^{-x}), written so that neither branch overflows
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


REFERENCE = {
    "identity": lambda x: x,
    "sigmoid": _sigmoid_ref,
    "tanh": lambda x: (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x)),
    "relu": lambda x: np.maximum(x, 0.0),
    "leaky_relu": lambda x: np.maximum(x, 0.0) + 0.01 * np.minimum(x, 0.0),
    "elu": lambda x: np.maximum(x, 0.0) + np.minimum(0.0, 1.0 * (np.exp(np.minimum(x, 0.0)) - 1.0)),
    # softplus = (1/beta) log(1 + exp(beta x)), reverting to x where beta x > threshold
    "softplus": lambda x: np.where(x > 20.0, x, np.log1p(np.exp(np.minimum(x, 20.0)))),
    "silu": lambda x: x * _sigmoid_ref(x),
}


def _softmax_ref(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _rel_err(num, ana):
    scale = max(np.abs(num).max(), np.abs(ana).max())
    return 0.0 if scale == 0 else float(np.abs(num - ana).max() / scale)


def _sample(rng, shape, name, scale=3.0):
    """Random pre-activations kept at least 1e-3 away from the activation's kinks."""
    a = rng.normal(0.0, scale, shape)
    for k in KINKS.get(name, []):
        near = np.abs(a - k) < 1e-3
        a[near] = k + np.where(rng.random(near.sum()) < 0.5, -0.5, 0.5)
    return a


SHAPES = [(1, 1), (1, 7), (5, 1), (4, 3), (16, 9)]


def test_registry_is_complete():
    assert set(ACTIVATIONS) == set(REFERENCE) | {"softmax"}
    assert set(DERIVATIVE_TEXT) == set(ACTIVATIONS)
    with pytest.raises(ValueError):
        get_activation("swish")


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_matches_torch_definition(name, shape):
    rng = np.random.default_rng(zlib.crc32(f"{name}{shape}".encode()))
    a = _sample(rng, shape, name, scale=6.0)
    z = get_activation(name).forward(a)
    assert z.shape == a.shape and z.dtype == np.float64
    np.testing.assert_allclose(z, REFERENCE[name](a), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_forward_fixed_points(name):
    a = np.array([[-25.0, -2.0, -0.5, 0.0, 0.5, 2.0, 19.0, 21.0, 25.0]])
    np.testing.assert_allclose(get_activation(name).forward(a), REFERENCE[name](a), rtol=1e-12, atol=1e-15)


def test_parametrized_defaults_are_torch_defaults():
    assert get_activation("leaky_relu").negative_slope == 0.01
    assert get_activation("elu").alpha == 1.0
    sp = get_activation("softplus")
    assert (sp.beta, sp.threshold) == (1.0, 20.0)
    # above the threshold softplus returns its input exactly
    np.testing.assert_array_equal(sp.forward(np.array([[20.5, 100.0]])), [[20.5, 100.0]])


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("shape", SHAPES)
def test_backward_matches_finite_differences(name, shape):
    rng = np.random.default_rng(zlib.crc32(f"{name}{shape}bw".encode()))
    f = get_activation(name)
    # softplus also sampled around its threshold (beta*a = 20), other activations over [-9, 9]
    a = _sample(rng, shape, name, scale=12.0 if name == "softplus" else 3.0)
    dz = rng.normal(size=shape)
    z = f.forward(a)
    delta = f.backward(a, z.copy(), dz.copy())
    assert delta.shape == a.shape
    # elementwise: perturbing every entry at once gives every entry's derivative
    num = dz * (f.forward(a + H) - f.forward(a - H)) / (2 * H)
    assert _rel_err(num, delta) <= TOL
    # and derivative() is the backward of a ones vector
    np.testing.assert_allclose(f.derivative(a, z), (f.forward(a + H) - f.forward(a - H)) / (2 * H),
                               rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_backward_does_not_modify_inputs(name):
    rng = np.random.default_rng(1)
    f = get_activation(name)
    a = _sample(rng, (4, 5), name)
    z = f.forward(a)
    dz = rng.normal(size=a.shape)
    copies = a.copy(), z.copy(), dz.copy()
    f.backward(a, z, dz)
    for before, after in zip(copies, (a, z, dz)):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (3, 4), (8, 10)])
def test_softmax_forward_matches_definition(shape):
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    a = rng.normal(0.0, 4.0, shape)
    z = get_activation("softmax").forward(a)
    np.testing.assert_allclose(z, np.exp(a) / np.exp(a).sum(axis=1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(z.sum(axis=1), 1.0, rtol=1e-14)


@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (3, 4), (8, 10)])
def test_softmax_backward_is_jvp_matching_finite_differences(shape):
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    f = get_activation("softmax")
    a = rng.normal(0.0, 2.0, shape)
    dz = rng.normal(size=shape)
    z = f.forward(a)
    delta = f.backward(a, z, dz)
    # L(a) = sum(dz * softmax(a)); perturb one entry at a time (softmax mixes a row)
    num = np.zeros_like(a)
    for idx in np.ndindex(*shape):
        ap, am = a.copy(), a.copy()
        ap[idx] += H
        am[idx] -= H
        num[idx] = ((dz * f.forward(ap)).sum() - (dz * f.forward(am)).sum()) / (2 * H)
    if np.abs(num).max() > 1e-9:
        assert _rel_err(num, delta) <= TOL
    np.testing.assert_allclose(delta, num, atol=1e-8)
    # explicit Jacobian diag(z) - z z^T per row
    for b in range(shape[0]):
        J = np.diag(z[b]) - np.outer(z[b], z[b])
        np.testing.assert_allclose(delta[b], J.T @ dz[b], rtol=1e-12, atol=1e-15)
    with pytest.raises(TypeError):
        f.derivative(a, z)


def test_softmax_is_shift_invariant_and_stable_on_huge_logits():
    f = get_activation("softmax")
    a = np.array([[1000.0, 0.0, -1000.0], [-1000.0, -1000.0, -1000.0], [1e4, 1e4 - 1, 0.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        z = f.forward(a)
        d = f.backward(a, z, np.ones_like(a))
    assert np.isfinite(z).all() and np.isfinite(d).all()
    np.testing.assert_allclose(z[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(z[1], [1 / 3] * 3)
    np.testing.assert_allclose(z[2, :2], _softmax_ref(np.array([[1.0, 0.0]]))[0])


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_no_overflow_at_plus_minus_1000(name):
    f = get_activation(name)
    a = np.array([[-1000.0, -50.0, 50.0, 1000.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        z = f.forward(a)
        d = f.backward(a, z, np.ones_like(a))
    assert np.isfinite(z).all() and np.isfinite(d).all()


def test_sigmoid_and_softplus_saturate_exactly():
    s, sp = get_activation("sigmoid"), get_activation("softplus")
    a = np.array([[-1000.0, 1000.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        np.testing.assert_array_equal(s.forward(a), [[0.0, 1.0]])
        np.testing.assert_array_equal(s.backward(a, s.forward(a), np.ones_like(a)), [[0.0, 0.0]])
        np.testing.assert_array_equal(sp.forward(a), [[0.0, 1000.0]])
        np.testing.assert_array_equal(sp.backward(a, sp.forward(a), np.ones_like(a)), [[0.0, 1.0]])


@pytest.mark.parametrize("name", ELEMENTWISE + ["softmax"])
def test_float32_stays_float32(name):
    a = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    f = get_activation(name)
    z = f.forward(a)
    assert z.dtype == np.float32
    assert f.backward(a, z, np.ones_like(a)).dtype == np.float32


def test_one_home_parameters_text_and_snippets():
    """Parameters, derivative text and export snippets all come from the instance."""
    from app.engine.activations import catalog
    leaky = get_activation("leaky_relu", negative_slope=0.2)
    assert leaky.params == {"negative_slope": 0.2} and "0.2 [a <= 0]" in leaky.derivative_text
    assert leaky.call("a1") == "leaky_relu(a1, 0.2)" and "0.2" in leaky.delta_code(1)[0][0]
    assert get_activation("softplus", beta=2.0).call("a2") == "softplus(a2, beta=2.0, threshold=20.0)"
    assert {c["name"]: c["params"] for c in catalog()}["softplus"] == {"beta": 1.0, "threshold": 20.0}
    with pytest.raises(ValueError, match="no parameter"):
        get_activation("relu", alpha=1.0)
    assert get_activation("elu").kinks == () and get_activation("elu", alpha=0.5).kinks == (0.0,)
