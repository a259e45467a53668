"""Per-sample losses averaged over the batch: L = (1/B) sum_b l(y_hat_b, y_b).

A loss is independent of the output activation. When the output activation is its canonical
partner (sigmoid for bce, softmax for cross_entropy) the network asks the loss for the fused,
numerically stable quantities computed from the logits a_L instead of from y_hat.
"""
from __future__ import annotations

import numpy as np


class Loss:
    name = "loss"
    fused_with: str | None = None  # the output activation whose logits this loss can consume

    def value(self, y_hat: np.ndarray, y: np.ndarray) -> float:
        """L for predictions and targets of shape (B, K)."""
        raise NotImplementedError

    def grad(self, y_hat: np.ndarray, y: np.ndarray) -> np.ndarray:
        """dL/dy_hat, shape (B, K)."""
        raise NotImplementedError

    def fused(self, a: np.ndarray, y_hat: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """(L, delta_L = dL/da_L) from the output logits a_L: delta_L = (y_hat - y) / B."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MSE(Loss):
    """l = sum_k (y_hat_k - y_k)^2: for one output, exactly the question's (y_hat - y)^2."""

    name = "mse"

    def value(self, y_hat, y):
        r = y_hat - y
        return float(np.vdot(r, r)) / y.shape[0]

    def grad(self, y_hat, y):
        return (2.0 / y.shape[0]) * (y_hat - y)


class BCE(Loss):
    """l = -sum_k [y log y_hat + (1 - y) log(1 - y_hat)], on a sigmoid output."""

    name = "bce"
    fused_with = "sigmoid"

    def value(self, y_hat, y):
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = y * np.log(y_hat) + (1.0 - y) * np.log1p(-y_hat)
        return float(-terms.sum()) / y.shape[0]

    def grad(self, y_hat, y):
        # clipped so a saturated output (y_hat exactly 0 or 1) still shows a finite dL/dy_hat
        p = np.clip(y_hat, _tiny(y_hat), 1.0 - np.finfo(y_hat.dtype).epsneg)
        return (-y / p + (1.0 - y) / (1.0 - p)) / y.shape[0]

    def fused(self, a, y_hat, y):
        # -[y log s(a) + (1-y) log(1-s(a))] = log(1 + e^a) - a y: finite for |a| = 1000
        B = y.shape[0]
        return float((np.logaddexp(0.0, a) - a * y).sum()) / B, (y_hat - y) / B


class CrossEntropy(Loss):
    """l = -sum_k y_k log softmax(a)_k, for one-hot or probability target rows."""

    name = "cross_entropy"
    fused_with = "softmax"

    def value(self, y_hat, y):
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(y > 0, y * np.log(y_hat), 0.0)
        return float(-terms.sum()) / y.shape[0]

    def grad(self, y_hat, y):
        return -y / (np.maximum(y_hat, _tiny(y_hat)) * y.shape[0])

    def fused(self, a, y_hat, y):
        m = a.max(axis=1, keepdims=True)
        log_sum_exp = m + np.log(np.exp(a - m).sum(axis=1, keepdims=True))
        B = y.shape[0]
        # sum_k y_k (lse - a_k); target rows sum to 1
        value = float((y * (log_sum_exp - a)).sum()) / B
        return value, (y_hat - y) / B


def _tiny(a: np.ndarray) -> float:
    return np.finfo(a.dtype).tiny if a.dtype.kind == "f" else np.finfo(np.float64).tiny


LOSSES: dict[str, type[Loss]] = {cls.name: cls for cls in (MSE, BCE, CrossEntropy)}


def get_loss(name: str) -> Loss:
    """Instantiate a loss by name."""
    try:
        return LOSSES[name]()
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}") from None
