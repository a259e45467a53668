"""Layers with a forward pass that caches what the backward pass needs.

Every backward takes dL/d(output) and returns dL/d(input), storing parameter gradients in
``grads`` under the same keys as ``params`` ("W", "b"), as the seed answer recommends.
"""
from __future__ import annotations

import numpy as np

from .activations import Activation


class Dense:
    """a = x W^T + b, with W of shape (n_out, n_in) as in the question's W_i z_{i-1}.

    params/grads may be views into a network's flat buffers, so an optimizer can update every
    tensor with one vector operation; the backward pass writes gradients in place.
    """

    def __init__(self, n_in: int, n_out: int, *, bias: bool = True, dtype=np.float64,
                 W: np.ndarray | None = None, b: np.ndarray | None = None,
                 dW: np.ndarray | None = None, db: np.ndarray | None = None):
        self.n_in, self.n_out, self.bias = n_in, n_out, bias
        self.params = {"W": W if W is not None else np.zeros((n_out, n_in), dtype)}
        self.grads = {"W": dW if dW is not None else np.zeros((n_out, n_in), dtype)}
        if bias:
            self.params["b"] = b if b is not None else np.zeros(n_out, dtype)
            self.grads["b"] = db if db is not None else np.zeros(n_out, dtype)
        self.x: np.ndarray | None = None
        # the arrays never move (updates are in place), so the hot path skips the dict look-ups
        self.W, self.WT, self.dW = self.params["W"], self.params["W"].T, self.grads["W"]
        self.b, self.db = self.params.get("b"), self.grads.get("b")

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (B, n_in) -> a (B, n_out)."""
        self.x = x
        a = x @ self.WT  # BLAS reads the transposed view; no copy is made
        if self.bias:
            a += self.b
        return a

    def backward(self, delta: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """delta (B, n_out) -> dL/dx = delta W, (B, n_in); stores dW = delta^T x and db = sum_b delta."""
        np.matmul(delta.T, self.x, out=self.dW)
        if self.bias:
            np.add.reduce(delta, axis=0, out=self.db)
        return delta @ self.W if need_input_grad else None

    def __repr__(self) -> str:
        return f"Dense({self.n_in} -> {self.n_out}, bias={self.bias})"


class ActivationLayer:
    """z = f(a); caches a and z, and on the way back keeps dz and delta for inspection."""

    def __init__(self, f: Activation):
        self.f = f
        self.a = self.z = self.dz = self.delta = None

    def forward(self, a: np.ndarray) -> np.ndarray:
        """a (B, n) -> z (B, n)."""
        self.a = a
        self.z = self.f.forward(a)
        return self.z

    def backward(self, dz: np.ndarray) -> np.ndarray:
        """dz = dL/dz (B, n) -> delta = dL/da (B, n)."""
        self.dz = dz
        self.delta = self.f.backward(self.a, self.z, dz)
        return self.delta

    def __repr__(self) -> str:
        return f"ActivationLayer({self.f!r})"
