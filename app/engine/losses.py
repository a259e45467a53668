"""Per-sample losses averaged over the batch: L = (1/B) sum_b l(y_hat_b, y_b).

Each class is the one home of its value, gradient, output pairing, formula text (trace) and
NumPy snippets (export). ``fused_with`` names the output activation the loss is paired with
(sigmoid for bce, softmax for cross_entropy): the spec requires that pairing, the catalog lists
it, and with it the network asks the loss for the fused, numerically stable quantities computed
from the logits a_L instead of from y_hat. Whatever the pairing, delta_L = (y_hat - y)/B.
"""
from __future__ import annotations

import numpy as np


class Loss:
    name = "loss"
    title = "loss"
    fused_with: str | None = None  # the output activation it requires and whose logits it consumes
    text = ""      # L in words, for the trace and the export's docstring
    dz_text = ""   # dL/dy_hat, with the 1/B of the mean
    dz_code = ""   # the same in the export's NumPy
    value_code: tuple = ()  # export: body of data_loss(y_hat, y)
    fused_code: tuple = ()  # export: body of data_loss(aL, y), with {a} for the logits' name

    def value(self, y_hat: np.ndarray, y: np.ndarray) -> float:
        """L for predictions and targets of shape (B, K)."""
        raise NotImplementedError

    def grad(self, y_hat: np.ndarray, y: np.ndarray) -> np.ndarray:
        """dL/dy_hat, shape (B, K)."""
        raise NotImplementedError

    def fused(self, a: np.ndarray, y_hat: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """(L, delta_L = dL/da_L) from the output logits a_L: delta_L = (y_hat - y) / B."""
        raise NotImplementedError

    def is_fused(self, output_activation: str) -> bool:
        """True when the output activation is this loss's partner, so delta_L = (y_hat - y)/B."""
        return self.fused_with is not None and self.fused_with == output_activation

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MSE(Loss):
    """l = sum_k (y_hat_k - y_k)^2: for one output, exactly the question's (y_hat - y)^2."""

    name = "mse"
    title = "mean squared error"
    text = "L = (1/B) sum_b sum_k (y_hat - y)^2"
    dz_text = "2(y_hat - y)/B"
    dz_code = "(2 / B) * (y_hat - y)"
    value_code = ('"""Mean squared error: the squared error summed over the outputs, averaged over the rows."""',
                  "B = y.shape[0]",
                  "r = y_hat - y",
                  "return np.sum(r * r) / B")

    def value(self, y_hat, y):
        r = y_hat - y
        return float(np.vdot(r, r)) / y.shape[0]

    def grad(self, y_hat, y):
        return (2.0 / y.shape[0]) * (y_hat - y)


class BCE(Loss):
    """l = -sum_k [y log y_hat + (1 - y) log(1 - y_hat)], on a sigmoid output."""

    name = "bce"
    title = "binary cross-entropy"
    fused_with = "sigmoid"
    text = "L = -(1/B) sum_b sum_k [y log y_hat + (1 - y) log(1 - y_hat)]"
    dz_text = "(y_hat - y) / (y_hat(1 - y_hat) B)"
    dz_code = "(y_hat - y) / (y_hat * (1 - y_hat) * B)"
    value_code = ('"""Binary cross-entropy, averaged over the rows."""',
                  "B = y.shape[0]",
                  "with np.errstate(divide='ignore', invalid='ignore'):",
                  "    terms = y * np.log(y_hat) + (1 - y) * np.log1p(-y_hat)",
                  "return -np.sum(terms) / B")
    fused_code = ('"""Binary cross-entropy of y_hat = sigmoid({a}), computed from the logits {a}.',
                  "",
                  "-[y log s(a) + (1 - y) log(1 - s(a))] = max(a, 0) - a y + log(1 + e^-|a|),",
                  'which stays finite even for |a| = 1000 (where log(1 - y_hat) would be log 0)."""',
                  "B = y.shape[0]",
                  "per_entry = np.maximum({a}, 0.0) - {a} * y + np.log1p(np.exp(-np.abs({a})))",
                  "return np.sum(per_entry) / B")

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
    title = "cross-entropy"
    fused_with = "softmax"
    text = "L = -(1/B) sum_b sum_k y log y_hat"
    dz_text = "-y / (y_hat B)"
    dz_code = "-y / (y_hat * B)"
    value_code = ('"""Cross-entropy -sum_k y_k log y_hat_k, averaged over the rows (0 log 0 counts as 0)."""',
                  "B = y.shape[0]",
                  "with np.errstate(divide='ignore', invalid='ignore'):",
                  "    terms = np.where(y > 0, y * np.log(y_hat), 0.0)",
                  "return -np.sum(terms) / B")
    fused_code = ('"""Cross-entropy of y_hat = softmax({a}), computed from the logits {a}.',
                  "",
                  "-sum_k y_k log softmax(a)_k = sum_k y_k (logsumexp(a) - a_k) for rows of y that sum to 1;",
                  'logsumexp subtracts the row maximum so e^a cannot overflow."""',
                  "B = y.shape[0]",
                  "m = {a}.max(axis=1, keepdims=True)",
                  "log_sum_exp = m + np.log(np.exp({a} - m).sum(axis=1, keepdims=True))",
                  "return np.sum(y * (log_sum_exp - {a})) / B")

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


def pairing_error(loss: str, output_activation: str) -> tuple[str, str] | None:
    """("loss" | "activation", message) when the loss and the output activation do not go together.

    A loss with a partner requires it (bce a sigmoid output); an output-only activation that is some
    loss's partner (softmax) requires that loss.
    """
    from .activations import (
        ACTIVATIONS,  # the activation registry does not import losses
    )
    owners = [n for n, cls in LOSSES.items() if cls.fused_with == output_activation]
    if owners and ACTIVATIONS[output_activation].output_only and loss not in owners:
        return "activation", f"{output_activation} output requires loss {' or '.join(owners)}"
    partner = LOSSES[loss].fused_with
    if partner is not None and output_activation != partner:
        return "loss", f"{loss} requires a {partner} output layer, got {output_activation}"
    return None


def catalog() -> list[dict]:
    """Every loss with the output activation it requires (None: any)."""
    return [{"name": n, "requires_output": cls.fused_with} for n, cls in LOSSES.items()]


def target_error(loss: str, y: np.ndarray) -> str | None:
    """Why targets y (N, K) cannot be this loss's targets, or None (the checks model creation makes).

    bce: values in [0, 1]; cross_entropy: non-negative rows that sum to 1 (one-hot or probabilities).
    Outside these a loss is unbounded below (bce on y = 7 goes to -inf), so a score means nothing.
    """
    y = np.asarray(y, np.float64)
    if loss == "bce" and ((y < 0) | (y > 1)).any():
        return "bce needs targets in [0, 1]; use mse for regression data"
    if loss == "cross_entropy" and ((y < 0).any() or not np.allclose(y.sum(axis=1), 1.0, atol=1e-6)):
        return "cross_entropy needs one-hot or probability target rows that sum to 1"
    return None
