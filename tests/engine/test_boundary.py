"""Decision-boundary grids (app/engine/boundary.py): the grid covers the data, the output is the model's
prediction at every grid point, neurons are the hidden z on the sub-grid, chunked passes give the same
grid, and no layer cache is left behind."""
from __future__ import annotations

import numpy as np
import pytest

from app.engine import Model, network
from app.engine.boundary import boundary, grid_range


def _model(units=1, **over) -> Model:
    out = {"units": units, "activation": "sigmoid" if units == 1 else "softmax"}
    spec = {"layers": [{"units": 6, "activation": "tanh"}, {"units": 4, "activation": "relu"}, out],
            "loss": "bce" if units == 1 else "cross_entropy",
            "data": {"dataset": "moons", "samples": 120, "features": ["x1", "x2", "x1x2", "sinx1"]}, **over}
    m = Model(spec)
    m.train(60)
    return m


def _grid(b: dict) -> np.ndarray:
    R = b["resolution"]
    gx, gy = np.meshgrid(np.linspace(*b["x_range"], R), np.linspace(*b["y_range"], R))
    return np.column_stack([gx.ravel(), gy.ravel()])


def _hidden(m: Model, raw: np.ndarray) -> list[np.ndarray]:
    """Hidden z_i at raw points by an explicit forward pass."""
    z, out = m.inputs(raw), []
    for dense, act in zip(m.net.dense[:-1], m.net.acts[:-1]):
        z = act.f.forward(z @ dense.params["W"].T + dense.params["b"])
        out.append(z)
    return out


def test_grid_range_covers_the_points_with_a_margin():
    pts = np.array([[0.0, -1.0], [2.0, 3.0], [1.0, 0.0]])
    xr, yr = grid_range(pts)
    assert xr == pytest.approx([-0.2, 2.2]) and yr == pytest.approx([-1.4, 3.4])
    xr, yr = grid_range(np.array([[1.0, 1.0], [1.0, 1.0]]))  # a single point still gets a range
    assert xr[0] < 1.0 < xr[1] and yr[0] < 1.0 < yr[1]


@pytest.mark.parametrize("R,r", [(2, 16), (17, 16), (40, 5)])
def test_output_and_neurons_are_the_model_at_the_grid_points(R, r):
    m = _model()
    b = boundary(m, R, r)
    assert b["resolution"] == R and b["neuron_resolution"] == min(r, R)
    assert (b["x_range"], b["y_range"]) == grid_range(np.concatenate([m.raw_train, m.raw_test]))
    pts = _grid(b)
    np.testing.assert_allclose(b["output"], m.predict(pts)[:, 0].reshape(R, R), rtol=1e-12, atol=1e-15)
    rr = b["neuron_resolution"]
    sub = np.linspace(0, R - 1, rr).round().astype(int)
    sub_pts = pts.reshape(R, R, 2)[np.ix_(sub, sub)].reshape(-1, 2)
    for got, want, n in zip(b["neurons"], _hidden(m, sub_pts), (6, 4)):
        assert got.shape == (n, rr, rr)
        np.testing.assert_allclose(got, want.T.reshape(n, rr, rr), rtol=1e-12, atol=1e-15)


def test_two_class_softmax_shows_class_one():
    m = _model(units=2)
    b = boundary(m, 9)
    np.testing.assert_allclose(b["output"], m.predict(_grid(b))[:, 1].reshape(9, 9), rtol=1e-12)


def test_more_classes_show_the_class_index_scaled_to_0_1():
    X = np.random.default_rng(0).normal(size=(40, 2))
    y = np.eye(3)[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0).astype(int)]
    m = Model({"layers": [{"units": 5, "activation": "tanh"}, {"units": 3, "activation": "softmax"}],
               "loss": "cross_entropy", "data": {"X": X.tolist(), "y": y.tolist(), "standardize": True}})
    m.train(30)
    b = boundary(m, 11)
    np.testing.assert_array_equal(b["output"], (m.predict(_grid(b)).argmax(axis=1) / 2).reshape(11, 11))
    assert set(np.unique(b["output"])) <= {0.0, 0.5, 1.0}


def test_chunked_grid_equals_one_pass_and_leaves_no_cache(monkeypatch):
    m = _model()
    whole = boundary(m, 60)
    monkeypatch.setattr(network, "MEMORY_BUDGET", 8 * 3 * 6 * 50)  # 50 rows per chunk of 3600 points
    assert m.net.chunk_rows() == 50
    chunked = boundary(m, 60)
    np.testing.assert_allclose(chunked["output"], whole["output"], rtol=1e-13, atol=1e-16)
    for a, b in zip(chunked["neurons"], whole["neurons"]):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-16)
    assert all(d.x is None or len(d.x) <= m.batch_size for d in m.net.dense)
    assert all(act.a is None or len(act.a) <= m.batch_size for act in m.net.acts)
