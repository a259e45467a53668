import json
import math

import numpy as np
import pytest

from app.engine.datasets import (CLASSIFICATION, FEATURE_LABELS, FEATURES, REGRESSION, Dataset,
                                 DatasetError, apply_features, dataset_catalog, make_dataset)

ALL = CLASSIFICATION + REGRESSION


def _all(d: Dataset):
    return np.vstack([d.X_train, d.X_test]), np.vstack([d.y_train, d.y_test])


def _best_axis_threshold_acc(X, y):
    """Best accuracy of any single-axis threshold rule (either polarity)."""
    best = 0.0
    for j in range(X.shape[1]):
        for thr in np.quantile(X[:, j], np.linspace(0.02, 0.98, 49)):
            acc = np.mean((X[:, j] > thr) == (y == 1))
            best = max(best, acc, 1 - acc)
    return best


@pytest.mark.parametrize("name", ALL)
def test_same_seed_bit_identical_and_different_seed_differs(name):
    a = make_dataset(name, samples=120, noise=0.3, seed=7)
    b = make_dataset(name, samples=120, noise=0.3, seed=7)
    c = make_dataset(name, samples=120, noise=0.3, seed=8)
    for f in ("X_train", "y_train", "X_test", "y_test"):
        assert np.array_equal(getattr(a, f), getattr(b, f))
        assert getattr(a, f).tobytes() == getattr(b, f).tobytes()
    assert not np.array_equal(a.X_train, c.X_train)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("samples,tf,n_test", [(200, 0.5, 100), (101, 0.3, 30), (10, 0.0, 0), (4, 0.9, 3)])
def test_shapes_dtypes_and_split_sizes(name, samples, tf, n_test):
    d = make_dataset(name, samples=samples, test_fraction=tf)
    raw = 1 if name == "sine" else 2
    assert d.name == name and d.raw_dim == raw
    assert d.X_train.shape == (samples - n_test, raw) and d.X_test.shape == (n_test, raw)
    assert d.y_train.shape == (samples - n_test, 1) and d.y_test.shape == (n_test, 1)
    for arr in (d.X_train, d.y_train, d.X_test, d.y_test):
        assert arr.dtype == np.float64 and np.all(np.isfinite(arr))
    assert d.kind == ("classification" if name in CLASSIFICATION else "regression")
    assert d.classes == (2 if name in CLASSIFICATION else None)


@pytest.mark.parametrize("name", ALL)
def test_points_in_playground_range_and_split_is_a_partition(name):
    d = make_dataset(name, samples=500, noise=0.0, test_fraction=0.4, seed=3)
    X, _ = _all(d)
    lim = math.pi if name == "sine" else 6.0
    assert np.abs(X).max() <= lim + 1e-9
    # split is a permutation of the same point set generated with test_fraction 0
    full = make_dataset(name, samples=500, noise=0.0, test_fraction=0.0, seed=3)
    key = lambda A: A[np.lexsort(A.T[::-1])]
    assert np.array_equal(key(X), key(full.X_train))


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_class_balance_roughly_even(name):
    for noise in (0.0, 0.2):
        _, y = _all(make_dataset(name, samples=1000, noise=noise, seed=1))
        assert set(np.unique(y)) <= {0.0, 1.0}
        assert 0.35 <= y.mean() <= 0.65


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_one_hot_vs_single_column(name):
    one = make_dataset(name, samples=60, seed=2, n_outputs=1)
    hot = make_dataset(name, samples=60, seed=2, n_outputs=2)
    assert hot.y_train.shape == (one.y_train.shape[0], 2)
    assert np.array_equal(hot.X_train, one.X_train) and np.array_equal(hot.X_test, one.X_test)
    assert np.all(hot.y_train.sum(axis=1) == 1.0)
    assert np.array_equal(hot.y_train[:, 1], one.y_train[:, 0])


def test_regression_targets():
    X, y = _all(make_dataset("sine", samples=300, seed=4))
    assert np.allclose(y[:, 0], np.sin(X[:, 0]))
    X, y = _all(make_dataset("plane", samples=300, seed=4))
    assert np.allclose(y[:, 0], (X[:, 0] + X[:, 1]) / 10) and np.abs(y).max() <= 1.2
    X, y = _all(make_dataset("multi_gauss", samples=2000, seed=4))
    assert np.abs(y).max() <= 1.0 and y.max() > 0.8 and y.min() < -0.8
    near = np.hypot(X[:, 0] + 4, X[:, 1] - 2.5) < 0.5  # bump (-4, 2.5, +1)
    assert near.any() and np.all(y[near, 0] > 0.7)
    noisy = _all(make_dataset("sine", samples=300, noise=0.2, seed=4))
    assert 0.1 < np.std(noisy[1][:, 0] - np.sin(noisy[0][:, 0])) < 0.3


def test_xor_labels_are_sign_of_product_and_not_axis_separable():
    X, y = _all(make_dataset("xor", samples=1000, noise=0.0, seed=5))
    assert np.array_equal(y[:, 0], (X[:, 0] * X[:, 1] > 0).astype(float))
    assert np.abs(X).min() >= 0.3  # padding off the axes
    assert _best_axis_threshold_acc(X, y[:, 0]) < 0.65
    Xn, yn = _all(make_dataset("xor", samples=1000, noise=0.5, seed=5))
    assert 0.02 < np.mean(yn[:, 0] != (Xn[:, 0] * Xn[:, 1] > 0)) < 0.5  # noise flips some labels


def test_circle_spiral_not_axis_separable_but_structured():
    X, y = _all(make_dataset("circle", samples=1000, seed=6))
    r = np.hypot(X[:, 0], X[:, 1])
    assert np.array_equal(y[:, 0], (r < 2.5).astype(float)) and not np.any((r >= 2.5) & (r < 3.5))
    assert _best_axis_threshold_acc(X, y[:, 0]) < 0.7
    X, y = _all(make_dataset("spiral", samples=1000, seed=6))
    assert _best_axis_threshold_acc(X, y[:, 0]) < 0.75
    X, y = _all(make_dataset("moons", samples=1000, seed=6))
    assert _best_axis_threshold_acc(X, y[:, 0]) < 0.9
    X, y = _all(make_dataset("gauss", samples=1000, seed=6))  # gauss IS (almost) linearly separable
    assert np.mean((X.sum(axis=1) > 0) == (y[:, 0] == 1)) > 0.97


def test_feature_map_values():
    X = np.array([[1.0, 2.0], [-3.0, 0.5], [0.0, -1.0]])
    out = apply_features(X, ["x1", "x2", "x1sq", "x2sq", "x1x2", "sinx1", "sinx2"])
    expected = np.array([
        [1.0, 2.0, 1.0, 4.0, 2.0, math.sin(1.0), math.sin(2.0)],
        [-3.0, 0.5, 9.0, 0.25, -1.5, math.sin(-3.0), math.sin(0.5)],
        [0.0, -1.0, 0.0, 1.0, -0.0, 0.0, math.sin(-1.0)],
    ])
    assert out.shape == (3, 7) and out.dtype == np.float64
    assert np.allclose(out, expected)
    assert apply_features(X, ["sinx2", "x1"]).tolist() == [[math.sin(2.0), 1.0], [math.sin(0.5), -3.0],
                                                           [math.sin(-1.0), 0.0]]
    assert apply_features(np.array([[0.5], [-2.0]]), ["x1"]).tolist() == [[0.5], [-2.0]]
    assert apply_features(np.zeros((0, 2)), ["x1", "x2sq"]).shape == (0, 2)
    assert set(FEATURES) == set(FEATURE_LABELS) and FEATURE_LABELS["x1x2"] == "x1*x2"


@pytest.mark.parametrize("kwargs,field", [
    (dict(name="nope"), "dataset"),
    (dict(name="xor", noise=-0.1), "noise"),
    (dict(name="xor", noise=1.5), "noise"),
    (dict(name="xor", noise=float("nan")), "noise"),
    (dict(name="xor", samples=3), "samples"),
    (dict(name="xor", samples=100_001), "samples"),
    (dict(name="xor", samples=10.5), "samples"),
    (dict(name="xor", test_fraction=0.95), "test_fraction"),
    (dict(name="xor", test_fraction=-0.1), "test_fraction"),
    (dict(name="xor", seed=-1), "seed"),
    (dict(name="xor", n_outputs=3), "n_outputs"),
    (dict(name="spiral", n_outputs=0), "n_outputs"),
    (dict(name="plane", n_outputs=2), "n_outputs"),
    (dict(name="sine", n_outputs=2), "n_outputs"),
])
def test_make_dataset_errors(kwargs, field):
    name = kwargs.pop("name")
    with pytest.raises(DatasetError) as ei:
        make_dataset(name, **kwargs)
    assert ei.value.field == field and isinstance(ei.value, ValueError) and str(ei.value)


def test_error_messages_name_the_problem():
    with pytest.raises(DatasetError, match=r"'nope'.*xor, circle, gauss, spiral, moons, plane, multi_gauss, sine"):
        make_dataset("nope")
    with pytest.raises(DatasetError, match=r"2 classes.*got 3"):
        make_dataset("xor", n_outputs=3)
    with pytest.raises(DatasetError, match=r"'x3'.*x1, x2, x1sq"):
        apply_features(np.zeros((2, 2)), ["x1", "x3"])


@pytest.mark.parametrize("X,features", [
    (np.zeros((2, 2)), ["x1", "bogus"]),
    (np.zeros((2, 2)), []),
    (np.zeros((2, 2)), "x1"),
    (np.zeros((2, 2)), ["x1", "x1"]),
    (np.zeros((2, 1)), ["x1", "x2"]),
    (np.zeros((2, 1)), ["sinx1"]),
])
def test_apply_features_errors(X, features):
    with pytest.raises(DatasetError) as ei:
        apply_features(X, features)
    assert ei.value.field == "features"


def test_catalog_is_json_and_complete():
    cat = dataset_catalog()
    assert json.loads(json.dumps(cat)) == cat
    assert [c["name"] for c in cat] == list(ALL)
    by = {c["name"]: c for c in cat}
    assert by["sine"]["raw_dim"] == 1 and by["sine"]["classes"] is None and by["sine"]["kind"] == "regression"
    assert by["spiral"]["raw_dim"] == 2 and by["spiral"]["classes"] == 2
    p = by["xor"]["params"]
    assert p["samples"] == {"default": 200, "min": 4, "max": 100000}
    assert p["noise"]["min"] == 0 and p["noise"]["max"] == 1 and p["test_fraction"]["max"] == 0.9
    assert p["seed"]["default"] == 0
    for c in cat:  # defaults from the catalog are accepted
        make_dataset(c["name"], **{k: v["default"] for k, v in c["params"].items()})
