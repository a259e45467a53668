"""Weight initialisation (app/engine/init.py): each scheme's distribution, seeding, shapes, float32 from
the same float64 numbers, zero biases through Network.initialize."""
from __future__ import annotations

import numpy as np
import pytest

from app.engine.init import INITS, init_weight
from app.engine.network import Network


@pytest.mark.parametrize("scheme", INITS)
def test_shape_is_out_by_in_and_seeded(scheme):
    a = init_weight(np.random.default_rng(3), 7, 5, scheme=scheme)
    b = init_weight(np.random.default_rng(3), 7, 5, scheme=scheme)
    c = init_weight(np.random.default_rng(4), 7, 5, scheme=scheme)
    assert a.shape == (7, 5) and a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_xavier_is_glorot_uniform():
    n_out, n_in = 300, 200
    w = init_weight(np.random.default_rng(0), n_out, n_in, scheme="xavier")
    r = np.sqrt(6.0 / (n_in + n_out))
    assert np.abs(w).max() <= r and np.abs(w).max() > 0.99 * r
    assert w.std() == pytest.approx(r / np.sqrt(3.0), rel=0.02)  # U(-r, r) has std r / sqrt(3)
    assert abs(w.mean()) < 0.01 * r


def test_he_is_kaiming_normal_fan_in():
    w = init_weight(np.random.default_rng(0), 400, 100, scheme="he")
    assert w.std() == pytest.approx(np.sqrt(2.0 / 100), rel=0.02)
    assert abs(w.mean()) < 0.01


@pytest.mark.parametrize("std", [0.01, 0.5])
def test_normal_uses_the_given_std(std):
    w = init_weight(np.random.default_rng(0), 300, 300, scheme="normal", std=std)
    assert w.std() == pytest.approx(std, rel=0.02)


def test_unknown_scheme_names_the_choices():
    with pytest.raises(ValueError, match="unknown init 'glorot'; choose one of xavier, he, normal"):
        init_weight(np.random.default_rng(0), 2, 2, scheme="glorot")


@pytest.mark.parametrize("scheme", INITS)
def test_network_initialize_draws_layer_by_layer_with_zero_biases(scheme):
    nets = [Network([3, 5, 2], ["tanh", "identity"], dtype=dt) for dt in ("float64", "float32")]
    for net in nets:
        net.params[...] = 1.0
        net.initialize(11, scheme, 0.3)
    rng = np.random.default_rng(11)
    expected = [init_weight(rng, 5, 3, scheme=scheme, std=0.3), init_weight(rng, 2, 5, scheme=scheme, std=0.3)]
    for layer, w in zip(nets[0].dense, expected):
        np.testing.assert_array_equal(layer.params["W"], w)
        np.testing.assert_array_equal(layer.params["b"], 0.0)
    # float32 starts from the same float64 draws, rounded
    np.testing.assert_array_equal(nets[1].params, nets[0].params.astype(np.float32))
