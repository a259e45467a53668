"""Elementwise activations z = f(a), each with its backward pass delta = dL/da beside it.

Definitions and default parameters follow PyTorch (torch.nn.functional), so results can be
compared with it one to one. Every backward takes the cached pre-activation a, the output z and
dz = dL/dz, all of shape (B, n), and returns delta = dL/da of the same shape.
"""
from __future__ import annotations

import numpy as np


class Activation:
    """Base class: a parameter-free elementwise map."""

    name = "activation"
    output_only = False  # softmax mixes a row, so it may only close the network

    def forward(self, a: np.ndarray) -> np.ndarray:
        """z = f(a), shape (B, n)."""
        raise NotImplementedError

    def backward(self, a: np.ndarray, z: np.ndarray, dz: np.ndarray) -> np.ndarray:
        """delta = dz * f'(a), shape (B, n)."""
        raise NotImplementedError

    def derivative(self, a: np.ndarray, z: np.ndarray) -> np.ndarray:
        """f'(a) elementwise (the ones-vector backward)."""
        return self.backward(a, z, np.ones_like(a))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Identity(Activation):
    name = "identity"

    def forward(self, a):
        return a

    def backward(self, a, z, dz):
        return dz


class Sigmoid(Activation):
    name = "sigmoid"

    def forward(self, a):
        # tanh form never overflows: sigmoid(1000) is exactly 1.0, sigmoid(-1000) exactly 0.0
        return 0.5 * (1.0 + np.tanh(0.5 * a))

    def backward(self, a, z, dz):
        return dz * z * (1.0 - z)


class Tanh(Activation):
    name = "tanh"

    def forward(self, a):
        return np.tanh(a)

    def backward(self, a, z, dz):
        d = z * z
        np.subtract(1.0, d, out=d)
        d *= dz
        return d


class ReLU(Activation):
    name = "relu"

    def forward(self, a):
        return np.maximum(a, 0.0)

    def backward(self, a, z, dz):
        return dz * (a > 0)  # PyTorch's convention: f'(0) = 0


class LeakyReLU(Activation):
    name = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01):
        self.negative_slope = negative_slope

    def forward(self, a):
        return np.where(a > 0, a, self.negative_slope * a)

    def backward(self, a, z, dz):
        return dz * np.where(a > 0, 1.0, self.negative_slope).astype(a.dtype, copy=False)

    def __repr__(self):
        return f"LeakyReLU(negative_slope={self.negative_slope})"


class ELU(Activation):
    name = "elu"

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def forward(self, a):
        return np.where(a > 0, a, self.alpha * np.expm1(np.minimum(a, 0.0)))

    def backward(self, a, z, dz):
        return dz * np.where(a > 0, 1.0, z + self.alpha)  # alpha*e^a = z + alpha for a <= 0

    def __repr__(self):
        return f"ELU(alpha={self.alpha})"


class Softplus(Activation):
    name = "softplus"

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        self.beta, self.threshold = beta, threshold

    def forward(self, a):
        ba = self.beta * a
        # above the threshold PyTorch returns a itself, which also avoids exp overflow
        return np.where(ba > self.threshold, a, np.logaddexp(0.0, ba) / self.beta)

    def backward(self, a, z, dz):
        ba = self.beta * a
        return dz * np.where(ba > self.threshold, 1.0, 0.5 * (1.0 + np.tanh(0.5 * ba)))

    def __repr__(self):
        return f"Softplus(beta={self.beta}, threshold={self.threshold})"


class SiLU(Activation):
    name = "silu"

    def forward(self, a):
        return a * (0.5 * (1.0 + np.tanh(0.5 * a)))

    def backward(self, a, z, dz):
        s = 0.5 * (1.0 + np.tanh(0.5 * a))
        return dz * s * (1.0 + a * (1.0 - s))


class Softmax(Activation):
    """Row-wise softmax; allowed on the output layer only, paired with cross_entropy."""

    name = "softmax"
    output_only = True

    def forward(self, a):
        e = np.exp(a - a.max(axis=1, keepdims=True))
        e /= e.sum(axis=1, keepdims=True)
        return e

    def backward(self, a, z, dz):
        # Jacobian-vector product of softmax: z * (dz - <dz, z>) per row
        return z * (dz - (dz * z).sum(axis=1, keepdims=True))

    def derivative(self, a, z):
        raise TypeError("softmax has a Jacobian, not an elementwise derivative")


ACTIVATIONS: dict[str, type[Activation]] = {
    cls.name: cls
    for cls in (Identity, Sigmoid, Tanh, ReLU, LeakyReLU, ELU, Softplus, SiLU, Softmax)
}

DERIVATIVE_TEXT = {
    "identity": "1",
    "sigmoid": "z(1 - z)",
    "tanh": "1 - z^2",
    "relu": "[a > 0]",
    "leaky_relu": "[a > 0] + 0.01 [a <= 0]",
    "elu": "[a > 0] + (z + 1) [a <= 0]",
    "softplus": "sigmoid(a)",
    "silu": "s(1 + a(1 - s)), s = sigmoid(a)",
    "softmax": "diag(z) - z z^T (per row)",
}


def get_activation(name: str) -> Activation:
    """Instantiate an activation by name with PyTorch's default parameters."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}") from None
