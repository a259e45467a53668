"""Seeded toy datasets in the style of TensorFlow Playground, plus the input feature map."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

CLASSIFICATION = ("xor", "circle", "gauss", "spiral", "moons")
REGRESSION = ("plane", "multi_gauss", "sine")

SAMPLES_RANGE = (4, 100_000)
NOISE_RANGE = (0.0, 1.0)
TEST_FRACTION_RANGE = (0.0, 0.9)
SEED_RANGE = (0, 2**31 - 1)
DEFAULTS = {"samples": 200, "noise": 0.0, "test_fraction": 0.5, "seed": 0}

FEATURES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "x1": lambda X: X[:, 0],
    "x2": lambda X: X[:, 1],
    "x1sq": lambda X: X[:, 0] ** 2,
    "x2sq": lambda X: X[:, 1] ** 2,
    "x1x2": lambda X: X[:, 0] * X[:, 1],
    "sinx1": lambda X: np.sin(X[:, 0]),
    "sinx2": lambda X: np.sin(X[:, 1]),
}
FEATURE_LABELS = {"x1": "x1", "x2": "x2", "x1sq": "x1^2", "x2sq": "x2^2",
                  "x1x2": "x1*x2", "sinx1": "sin x1", "sinx2": "sin x2"}


class DatasetError(ValueError):
    """Invalid dataset request; .field names the offending argument (e.g. "dataset", "noise")."""

    def __init__(self, field: str, message: str):
        """Store the field name and the human-readable reason."""
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Dataset:
    """Raw points X (N, raw_dim) and targets y (N, n_outputs), split into train and test."""

    name: str
    kind: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: int | None

    @property
    def raw_dim(self) -> int:
        """Number of raw input columns: 2, or 1 for sine."""
        return int(self.X_train.shape[1])


# ---------------------------------------------------------------- generators
# Each returns X (N, raw_dim) and a 1-D target (N,): 0/1 labels or real values.

def _halves(n: int) -> tuple[int, int]:
    """Class sizes (positive, negative) for n samples; positive gets the odd one."""
    return n - n // 2, n // 2


def _xor(rng: np.random.Generator, n: int, noise: float):
    """TF classifyXORData: uniform in [-5, 5] padded 0.3 off the axes; label = x1*x2 >= 0 of the noisy point."""
    P = rng.uniform(-5, 5, (n, 2))
    P += np.where(P > 0, 0.3, -0.3)
    Q = P + rng.uniform(-5, 5, (n, 2)) * noise
    return P, (Q[:, 0] * Q[:, 1] >= 0).astype(np.float64)


def _circle(rng: np.random.Generator, n: int, noise: float):
    """TF classifyCircleData: inside r < 2.5 (label 1) vs ring 3.5..5 (label 0), labels from noisy points."""
    n_in, n_out = _halves(n)
    r = np.concatenate([rng.uniform(0, 2.5, n_in), rng.uniform(3.5, 5, n_out)])
    a = rng.uniform(0, 2 * np.pi, n)
    P = np.column_stack([r * np.sin(a), r * np.cos(a)])
    Q = P + rng.uniform(-5, 5, (n, 2)) * noise
    return P, (np.hypot(Q[:, 0], Q[:, 1]) < 2.5).astype(np.float64)


def _gauss(rng: np.random.Generator, n: int, noise: float):
    """TF classifyTwoGaussData: blobs at (2, 2) label 1 and (-2, -2) label 0, variance 0.5 + 7 * noise."""
    n_pos, n_neg = _halves(n)
    std = math.sqrt(0.5 + 7.0 * noise)
    centers = np.repeat([[2.0, 2.0], [-2.0, -2.0]], [n_pos, n_neg], axis=0)
    y = np.repeat([1.0, 0.0], [n_pos, n_neg])
    return centers + rng.normal(0.0, std, (n, 2)), y


def _spiral(rng: np.random.Generator, n: int, noise: float):
    """TF classifySpiralData: two interleaved arms of radius 0..5 (label 1, and label 0 rotated by pi)."""
    parts, labels = [], []
    for count, delta, label in zip(_halves(n), (0.0, np.pi), (1.0, 0.0)):
        t = np.arange(count) / count
        r, ang = 5 * t, 1.75 * t * 2 * np.pi + delta
        parts.append(np.column_stack([r * np.sin(ang), r * np.cos(ang)]))
        labels.append(np.full(count, label))
    P = np.concatenate(parts)
    return P + rng.uniform(-1, 1, P.shape) * noise, np.concatenate(labels)


def _moons(rng: np.random.Generator, n: int, noise: float):
    """Two interleaving half-circles (upper label 1, lower label 0) scaled to about [-5, 5] x [-2.5, 2.5]."""
    n_up, n_down = _halves(n)
    t = rng.uniform(0, np.pi, n)
    up = np.column_stack([np.cos(t[:n_up]), np.sin(t[:n_up])])
    down = np.column_stack([1 - np.cos(t[n_up:]), 0.5 - np.sin(t[n_up:])])
    P = (np.concatenate([up, down]) - [0.5, 0.25]) * (10.0 / 3.0)
    y = np.repeat([1.0, 0.0], [n_up, n_down])
    return P + rng.normal(0.0, 1.0, (n, 2)) * (2.0 * noise), y


def _plane(rng: np.random.Generator, n: int, noise: float):
    """TF regressPlane: uniform in [-6, 6]^2, target (x1 + x2) / 10 of the noisy point."""
    P = rng.uniform(-6, 6, (n, 2))
    Q = P + rng.uniform(-6, 6, (n, 2)) * noise
    return P, (Q[:, 0] + Q[:, 1]) / 10.0


_GAUSSIANS = np.array([[-4, 2.5, 1], [0, 2.5, -1], [4, 2.5, 1],
                       [-4, -2.5, -1], [0, -2.5, 1], [4, -2.5, -1]], dtype=np.float64)


def _multi_gauss(rng: np.random.Generator, n: int, noise: float):
    """TF regressGaussian: six +/-1 bumps of radius 2; target = the bump largest in |value|."""
    P = rng.uniform(-6, 6, (n, 2))
    Q = P + rng.uniform(-6, 6, (n, 2)) * noise
    d = np.hypot(Q[:, None, 0] - _GAUSSIANS[:, 0], Q[:, None, 1] - _GAUSSIANS[:, 1])  # (N, 6)
    vals = _GAUSSIANS[:, 2] * np.clip(1.0 - d / 2.0, 0.0, 1.0)
    return P, vals[np.arange(n), np.argmax(np.abs(vals), axis=1)]


def _sine(rng: np.random.Generator, n: int, noise: float):
    """1-D regression: x uniform in [-pi, pi] as (N, 1), target sin(x) + N(0, noise^2)."""
    x = rng.uniform(-np.pi, np.pi, n)
    return x[:, None], np.sin(x) + rng.normal(0.0, 1.0, n) * noise


_GENERATORS = {"xor": _xor, "circle": _circle, "gauss": _gauss, "spiral": _spiral, "moons": _moons,
               "plane": _plane, "multi_gauss": _multi_gauss, "sine": _sine}
_RAW_DIM = {name: (1 if name == "sine" else 2) for name in _GENERATORS}


# ---------------------------------------------------------------- validation

def _int_in(field: str, value, lo: int, hi: int) -> int:
    """Return value as int if it is an integer in [lo, hi], else raise DatasetError(field)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise DatasetError(field, f"{field} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise DatasetError(field, f"{field} must be in [{lo}, {hi}], got {value}")
    return int(value)


def _float_in(field: str, value, lo: float, hi: float) -> float:
    """Return value as float if it is a finite real in [lo, hi], else raise DatasetError(field)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise DatasetError(field, f"{field} must be a finite number, got {value!r}")
    if not lo <= value <= hi:
        raise DatasetError(field, f"{field} must be in [{lo}, {hi}], got {value}")
    return float(value)


# ---------------------------------------------------------------- public API

def make_dataset(name: str, *, samples: int = 200, noise: float = 0.0, test_fraction: float = 0.5,
                 seed: int = 0, n_outputs: int = 1) -> Dataset:
    """Build a seeded dataset: X (N, raw_dim) float64, y (N, n_outputs) float64, split by a seeded permutation."""
    if not isinstance(name, str) or name not in _GENERATORS:
        raise DatasetError("dataset", f"unknown dataset {name!r}; valid datasets: {', '.join(_GENERATORS)}")
    samples = _int_in("samples", samples, *SAMPLES_RANGE)
    noise = _float_in("noise", noise, *NOISE_RANGE)
    test_fraction = _float_in("test_fraction", test_fraction, *TEST_FRACTION_RANGE)
    seed = _int_in("seed", seed, *SEED_RANGE)
    n_outputs = _int_in("n_outputs", n_outputs, 1, 1_000_000)
    kind = "classification" if name in CLASSIFICATION else "regression"
    classes = 2 if kind == "classification" else None
    if kind == "regression" and n_outputs != 1:
        raise DatasetError("n_outputs", f"regression dataset {name!r} has 1 output, got n_outputs={n_outputs}")
    if kind == "classification" and n_outputs not in (1, classes):
        raise DatasetError("n_outputs", f"dataset {name!r} has {classes} classes: n_outputs must be 1 "
                                        f"(one 0/1 column) or {classes} (one-hot), got {n_outputs}")

    rng = np.random.default_rng(seed)
    X, t = _GENERATORS[name](rng, samples, noise)
    X = np.ascontiguousarray(X, dtype=np.float64)
    if kind == "classification" and n_outputs == classes:
        y = np.eye(classes, dtype=np.float64)[t.astype(np.int64)]
    else:
        y = t.astype(np.float64)[:, None]
    n_test = min(int(math.floor(samples * test_fraction)), samples - 1)
    perm = rng.permutation(samples)
    test_idx, train_idx = perm[:n_test], perm[n_test:]
    return Dataset(name=name, kind=kind, X_train=X[train_idx], y_train=y[train_idx],
                   X_test=X[test_idx], y_test=y[test_idx], classes=classes)


def apply_features(X_raw: np.ndarray, features: Sequence[str]) -> np.ndarray:
    """Map raw points (N, 2) (or (N, 1) with features ["x1"]) to (N, len(features)) float64."""
    if isinstance(features, str) or not isinstance(features, Sequence) or len(features) == 0:
        raise DatasetError("features", f"features must be a non-empty list of names from: {', '.join(FEATURES)}")
    for f in features:
        if not isinstance(f, str) or f not in FEATURES:
            raise DatasetError("features", f"unknown feature {f!r}; valid features: {', '.join(FEATURES)}")
    if len(set(features)) != len(features):
        raise DatasetError("features", f"duplicate features in {list(features)}")
    X = np.asarray(X_raw, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] not in (1, 2):
        raise DatasetError("X", f"raw inputs must have shape (N, 2) or (N, 1), got {X.shape}")
    if X.shape[1] == 1 and list(features) != ["x1"]:
        raise DatasetError("features", f"1-D inputs only support features ['x1'], got {list(features)}")
    return np.column_stack([FEATURES[f](X) for f in features]).reshape(X.shape[0], len(features))


def dataset_catalog() -> list[dict]:
    """JSON-able list of datasets with kind, raw_dim, classes and parameter ranges (for GET /api/catalog)."""
    params = {
        "samples": {"default": DEFAULTS["samples"], "min": SAMPLES_RANGE[0], "max": SAMPLES_RANGE[1]},
        "noise": {"default": DEFAULTS["noise"], "min": NOISE_RANGE[0], "max": NOISE_RANGE[1]},
        "test_fraction": {"default": DEFAULTS["test_fraction"], "min": TEST_FRACTION_RANGE[0],
                          "max": TEST_FRACTION_RANGE[1]},
        "seed": {"default": DEFAULTS["seed"], "min": SEED_RANGE[0], "max": SEED_RANGE[1]},
    }
    return [{"name": name, "kind": "classification" if name in CLASSIFICATION else "regression",
             "raw_dim": _RAW_DIM[name], "classes": 2 if name in CLASSIFICATION else None,
             "params": {k: dict(v) for k, v in params.items()}}
            for name in CLASSIFICATION + REGRESSION]
