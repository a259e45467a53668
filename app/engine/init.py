"""Seeded weight initialisation; biases start at zero.

Values are drawn in float64 and then cast, so float32 and float64 networks built from the same
seed start from the same numbers.
"""
from __future__ import annotations

import numpy as np

INITS = ("xavier", "he", "normal")


def init_weight(rng: np.random.Generator, n_out: int, n_in: int, *, scheme: str, std: float = 0.1) -> np.ndarray:
    """A (n_out, n_in) float64 weight matrix.

    xavier: Glorot uniform, U(-r, r) with r = sqrt(6 / (n_in + n_out)).
    he:     Kaiming normal (fan_in, ReLU gain), N(0, 2 / n_in).
    normal: N(0, std^2).
    """
    if scheme == "xavier":
        r = np.sqrt(6.0 / (n_in + n_out))
        return rng.uniform(-r, r, size=(n_out, n_in))
    if scheme == "he":
        return rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_out, n_in))
    if scheme == "normal":
        return rng.normal(0.0, std, size=(n_out, n_in))
    raise ValueError(f"unknown init {scheme!r}; choose one of {', '.join(INITS)}")
