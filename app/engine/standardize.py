"""Standardization of input columns: the training rows' statistics and the map (X - mean) / std.

A CSV upload reports the statistics (app/engine/csvdata.py), a model with ``"standardize": true``
applies them to every input it is given (app/engine/model.py).
"""
from __future__ import annotations

import numpy as np


class NotStandardizable(ValueError):
    """Column ``column`` of X has a mean or standard deviation that is not finite; ``reason`` says so."""

    def __init__(self, column: int, largest: float):
        self.column = column
        self.reason = (f"its mean or standard deviation is not a finite number (values up to {largest:.3g}); "
                       "rescale the column or turn standardize off")
        super().__init__(f"column {column}: {self.reason}")


def statistics(X: np.ndarray) -> dict:
    """{"mean": [p floats], "std": [p floats]} per column of X (N, p), a std of 0 counting as 1.

    NotStandardizable for the first column whose statistics are not finite: values near the float64
    limit (e.g. 1e308) overflow the mean or the std.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std = X.mean(axis=0), X.std(axis=0)
    bad = np.nonzero(~(np.isfinite(mean) & np.isfinite(std)))[0]
    if bad.size:
        j = int(bad[0])
        raise NotStandardizable(j, float(np.abs(X[:, j]).max()))
    return {"mean": mean.tolist(), "std": np.where(std > 0, std, 1.0).tolist()}


def apply(X: np.ndarray, stats: dict | None) -> np.ndarray:
    """(X - mean) / std per column for X (B, p) and statistics from ``statistics``; X itself for None."""
    if not stats:
        return X
    return (X - np.asarray(stats["mean"], np.float64)) / np.asarray(stats["std"], np.float64)
