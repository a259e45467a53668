"""An MLP as a sequence of (Dense, Activation) pairs; the last pair is the output layer.

All parameters live in one flat vector ``params`` (and all gradients in ``grads``), laid out
[W_1, b_1, W_2, b_2, ...]; each layer's "W" and "b" are views into it. Optimizers, divergence
checks and gradient norms then cost one vector operation each instead of one per tensor.
"""
from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass

import numpy as np

from .activations import get_activation
from .init import init_weight
from .layers import ActivationLayer, Dense
from .losses import get_loss

REGULARIZATIONS = ("none", "l1", "l2")

# Bytes of per-row temporaries one pass over many rows may hold (activations of a chunk of rows).
# Passes over more rows than fit (full-set losses, predictions, boundary grids, gradients of a large
# batch) run in chunks of rows, so their memory stays near this figure whatever the row count.
MEMORY_BUDGET = 32 * 2**20


def _libc_trim():
    """glibc's malloc_trim, or None elsewhere."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _libc_trim()


def release_memory() -> None:
    """Give freed heap memory back to the OS after a pass over many rows.

    Chunk temporaries of a few MB end up on the heap once glibc's dynamic mmap threshold has grown,
    and each server thread's arena would keep them resident after the call; malloc_trim returns them.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


@dataclass
class LayerQuantities:
    """What one layer holds after a backward pass on a batch of B rows."""

    a: np.ndarray        # pre-activation, (B, n_i)
    z: np.ndarray        # output f(a), (B, n_i)
    delta: np.ndarray    # dL/da, (B, n_i)
    dz: np.ndarray       # dL/dz, (B, n_i)
    dW: np.ndarray       # (n_i, n_{i-1}), penalty gradient included
    db: np.ndarray | None  # (n_i,)
    norm_W: float
    norm_b: float | None


class ParameterError(ValueError):
    """Parameters that do not fit the network; ``loc`` is the field's path, e.g. ("layers", 0, "W")."""

    def __init__(self, loc: tuple, message: str):
        super().__init__(f"{'.'.join(map(str, loc))}: {message}")
        self.loc, self.message = tuple(loc), message


def _same_shape(a: np.ndarray, expected: tuple, loc: tuple, name: str) -> None:
    if a.shape != expected:
        raise ParameterError(loc, f"{name}: expected shape {list(expected)}, got {list(a.shape)}")


class Network:
    """z_i = f_i(z_{i-1} W_i^T + b_i) for i = 1..L, with y_hat = z_L and a loss on top."""

    def __init__(self, sizes: list[int], activations: list[str], *, loss: str = "mse", bias: bool = True,
                 dtype=np.float64, regularization: str = "none", reg_rate: float = 0.0):
        if len(activations) != len(sizes) - 1:
            raise ValueError("need one activation per layer")
        self.sizes, self.activation_names, self.bias = list(sizes), list(activations), bias
        self.dtype = np.dtype(dtype)
        self.loss = get_loss(loss)
        self.regularization, self.reg_rate = regularization, float(reg_rate)
        shapes = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            shapes.append((n_out, n_in))
            if bias:
                shapes.append((n_out,))
        sizes_flat = [int(np.prod(s)) for s in shapes]
        self.offsets = np.concatenate([[0], np.cumsum(sizes_flat)]).astype(np.intp)
        self.params = np.zeros(self.offsets[-1], self.dtype)
        self.grads = np.zeros(self.offsets[-1], self.dtype)
        views = [(self.params[s:e].reshape(sh), self.grads[s:e].reshape(sh))
                 for s, e, sh in zip(self.offsets[:-1], self.offsets[1:], shapes)]
        # 1 where the flat vector holds a weight, 0 for a bias: penalties apply to weights only
        self.weight_mask = np.zeros(self.offsets[-1], self.dtype)
        self.dense, self.acts = [], []
        per = 2 if bias else 1
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            (W, dW), bviews = views[per * i], views[per * i + 1] if bias else (None, None)
            self.weight_mask[self.offsets[per * i]:self.offsets[per * i + 1]] = 1
            self.dense.append(Dense(n_in, n_out, bias=bias, dtype=self.dtype, W=W, dW=dW, b=bviews[0], db=bviews[1]))
            self.acts.append(ActivationLayer(get_activation(activations[i])))
        self._w_starts = self.offsets[:-1][::per]
        self._fused = self.loss.fused_with == self.activation_names[-1]
        self.penalty = 0.0

    # -- construction -------------------------------------------------------------------
    def initialize(self, seed: int, scheme: str = "xavier", std: float = 0.1) -> None:
        """Draw weights from a seeded generator; biases are zero."""
        rng = np.random.default_rng(seed)
        for layer in self.dense:
            layer.params["W"][...] = init_weight(rng, layer.n_out, layer.n_in, scheme=scheme, std=std)
            if self.bias:
                layer.params["b"][...] = 0

    @property
    def n_layers(self) -> int:
        return len(self.dense)

    # -- forward and backward -----------------------------------------------------------
    def forward(self, X: np.ndarray) -> np.ndarray:
        """X (B, p) -> y_hat (B, K), caching a_i and z_i."""
        z = X
        for dense, act in zip(self.dense, self.acts):
            z = act.forward(dense.forward(z))
        return z

    def backward(self, y: np.ndarray) -> float:
        """After forward: fill ``grads`` (penalty included) and every layer's delta, dz; return L + penalty."""
        loss = self._backward_data(y)
        self.data_loss = loss
        self.penalty = self._add_penalty()
        return loss + self.penalty

    def _backward_data(self, y: np.ndarray) -> float:
        """After forward: ``grads`` of the data loss only (no penalty); return the data loss."""
        out = self.acts[-1]
        if self._fused:
            loss, delta = self.loss.fused(out.a, out.z, y)
            out.dz = self.loss.grad(out.z, y) if self.keep_dz else None
            out.delta = delta
        else:
            loss = self.loss.value(out.z, y)
            delta = out.backward(self.loss.grad(out.z, y))
        for i in range(self.n_layers - 1, -1, -1):
            dz = self.dense[i].backward(delta, need_input_grad=i > 0)
            if i > 0:
                delta = self.acts[i - 1].backward(dz)
        return loss

    keep_dz = False  # the fused output dz is for display only; skip it on the training hot path

    def _add_penalty(self, add_grad: bool = True) -> float:
        """Return the weight penalty (l2: rate/2 sum w^2, l1: rate sum |w|); optionally add its gradient."""
        if self.regularization == "none" or self.reg_rate == 0.0:
            return 0.0
        w = self.params * self.weight_mask
        if self.regularization == "l2":
            if add_grad:
                self.grads += self.reg_rate * w
            return 0.5 * self.reg_rate * float(w @ w)
        if add_grad:
            self.grads += self.reg_rate * np.sign(w)  # sign(0) = 0, and biases are masked to 0
        return self.reg_rate * float(np.abs(w).sum())

    # -- passes over many rows: chunked under MEMORY_BUDGET, no cache left behind ---------------
    def display_values(self, rows: int) -> int:
        """Numbers in the per-row a, z, delta and dz of ``rows`` rows: what a gradients display returns."""
        return 4 * rows * sum(self.sizes[1:])

    def chunk_rows(self, backward: bool = False) -> int:
        """Rows per chunk: a forward holds about 3 layer widths per row (input, a, z); a backward keeps
        a, z, delta and dz of every layer plus the input."""
        width = 4 * sum(self.sizes[1:]) + self.sizes[0] if backward else 3 * max(self.sizes)
        return max(1, MEMORY_BUDGET // (self.dtype.itemsize * width))

    def _pass(self, X: np.ndarray, hidden: list | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(a_L, z_L) for X (B, p) without caching anything; hidden z_i are appended to ``hidden`` if given."""
        z = X
        for i, (dense, act) in enumerate(zip(self.dense, self.acts)):
            a = z @ dense.WT
            if self.bias:
                a += dense.b
            z = act.f.forward(a)
            if hidden is not None and i < self.n_layers - 1:
                hidden.append(z)
        return a, z

    def predict(self, X: np.ndarray, hidden_rows: np.ndarray | None = None):
        """y_hat (B, K) for X (B, p) in row chunks; layer caches are neither used nor kept.

        With ``hidden_rows`` (row indices), also the hidden layers' z at those rows: a list of
        (len(hidden_rows), n_i) arrays, returned as (y_hat, hidden).
        """
        B, rows = len(X), self.chunk_rows()
        out = np.empty((B, self.sizes[-1]), self.dtype)
        want = None if hidden_rows is None else np.asarray(hidden_rows, np.intp)
        hidden = None if want is None else [np.empty((len(want), n), self.dtype) for n in self.sizes[1:-1]]
        for s in range(0, max(B, 1), rows):
            e = min(s + rows, B)
            zs = None if want is None else []
            out[s:e] = self._pass(X[s:e], zs)[1]
            if want is not None:
                sel = np.nonzero((want >= s) & (want < e))[0]
                for h, z in zip(hidden, zs):
                    h[sel] = z[want[sel] - s]
            zs = None
        if B > rows:
            release_memory()
        return out if want is None else (out, hidden)

    def loss_value(self, X: np.ndarray, y: np.ndarray) -> float:
        """Data loss on (X, y) in row chunks, without touching gradients or layer caches.

        One chunk gives exactly the unchunked value; more chunks give the row-weighted mean of the
        chunk means, equal to it within float rounding.
        """
        B, rows = len(X), self.chunk_rows()
        total = 0.0
        for s in range(0, max(B, 1), rows):
            e = min(s + rows, B)
            a, y_hat = self._pass(X[s:e])
            v = self.loss_of(a, y_hat, y[s:e])
            if e - s == B:
                return v
            total += v * (e - s)
        release_memory()
        return total / B

    def loss_of(self, a: np.ndarray, y_hat: np.ndarray, y: np.ndarray) -> float:
        """The data loss from a forward pass's output logits a_L and y_hat (fused where the pairing allows)."""
        return self.loss.fused(a, y_hat, y)[0] if self._fused else self.loss.value(y_hat, y)

    def accumulate(self, X: np.ndarray, y: np.ndarray, *, keep: bool = False) -> float:
        """The full-batch gradient of (X, y) into ``grads`` (penalty included), in row chunks; return L + penalty.

        Without ``keep`` the layer caches are released afterwards. With ``keep`` (display), the return is
        as ``full_backward`` and ``self.kept`` holds the per-row a, z, delta, dz of every layer, each (B, n_i),
        with delta and dz scaled to the whole batch (dL/da of the batch mean). A batch that fits in one
        chunk gives exactly ``forward`` + ``backward``.
        """
        B, rows = len(X), self.chunk_rows(backward=True)
        if B <= rows:
            if keep:
                loss = self.full_backward(X, y)
                self.kept = [{"a": act.a, "z": act.z, "delta": act.delta, "dz": act.dz} for act in self.acts]
            else:
                self.forward(X)
                loss = self.backward(y)
            self.release()
            return loss
        acc = np.zeros_like(self.grads)
        kept = [{k: np.empty((B, n), self.dtype) for k in ("a", "z", "delta", "dz")} for n in self.sizes[1:]] if keep else None
        total = 0.0
        self.keep_dz = keep
        try:
            for s in range(0, B, rows):
                e = min(s + rows, B)
                self.forward(X[s:e])
                total += self._backward_data(y[s:e]) * (e - s)
                w = (e - s) / B  # the chunk's mean loss weighs by its share of rows
                acc += self.grads * w
                for store, act in zip(kept or (), self.acts):
                    store["a"][s:e], store["z"][s:e] = act.a, act.z
                    store["delta"][s:e] = act.delta * w
                    store["dz"][s:e] = act.dz * w if act.dz is not None else np.nan
        finally:
            self.keep_dz = False
            self.release()
            release_memory()
        self.grads[...] = acc
        self.data_loss = total / B
        self.penalty = self._add_penalty()
        if keep:
            self.kept = kept
        return self.data_loss + self.penalty

    def release(self) -> None:
        """Drop every layer's cached input, a, z, delta and dz (a large batch's cache is large)."""
        for dense, act in zip(self.dense, self.acts):
            dense.x = None
            act.a = act.z = act.dz = act.delta = None

    def set_parameters(self, layers: list[tuple[np.ndarray, np.ndarray | None]]) -> None:
        """Replace every layer's (W (n_i, n_{i-1}), b (n_i,) or None without bias), all or nothing.

        ParameterError with the field's path (("layers",), ("layers", i, "W"), ("layers", i, "b")) for a
        wrong number of layers, a shape that differs, or a b given to a layer without bias (or missing);
        nothing changes then.
        """
        if len(layers) != len(self.dense):
            raise ParameterError(("layers",), f"expected {len(self.dense)} layers, got {len(layers)}")
        for i, ((W, b), d) in enumerate(zip(layers, self.dense)):
            _same_shape(W, d.params["W"].shape, ("layers", i, "W"), f"layer {i + 1} W")
            if d.bias != (b is not None):
                raise ParameterError(("layers", i, "b"), f"layer {i + 1} has {'a' if d.bias else 'no'} bias; "
                                     f"send {'a list of ' + str(d.n_out) + ' numbers' if d.bias else 'null'}")
            if b is not None:
                _same_shape(b, d.params["b"].shape, ("layers", i, "b"), f"layer {i + 1} b")
        for d, (W, b) in zip(self.dense, layers):  # only after every layer passed, so a refusal changes nothing
            d.params["W"][...] = W
            if b is not None:
                d.params["b"][...] = b

    def objective(self, X: np.ndarray, y: np.ndarray) -> float:
        """Data loss plus penalty: the function whose gradient ``grads`` holds."""
        return self.loss_value(X, y) + self._add_penalty(add_grad=False)

    def weight_grad_norms(self) -> np.ndarray:
        """||dW_i||_F for every layer, from the flat gradient in two vector operations."""
        sq = np.add.reduceat(self.grads * self.grads, self.offsets[:-1])
        return np.sqrt(sq[:: 2 if self.bias else 1])

    def quantities(self) -> list[LayerQuantities]:
        """Per-layer a, z, delta, dz, dW, db and their norms after forward + backward."""
        out = []
        for dense, act in zip(self.dense, self.acts):
            dW, db = dense.grads["W"], dense.grads.get("b")
            out.append(LayerQuantities(
                a=act.a, z=act.z, delta=act.delta, dz=act.dz, dW=dW, db=db,
                norm_W=float(np.linalg.norm(dW)), norm_b=None if db is None else float(np.linalg.norm(db))))
        return out

    def full_backward(self, X: np.ndarray, y: np.ndarray) -> float:
        """forward + backward keeping every display quantity (dz of the output included)."""
        self.forward(X)
        self.keep_dz = True
        try:
            return self.backward(y)
        finally:
            self.keep_dz = False

    def __repr__(self) -> str:
        arch = "-".join(map(str, self.sizes))
        return (f"Network({arch}, activations={self.activation_names}, loss={self.loss.name}, "
                f"bias={self.bias}, dtype={self.dtype.name})")
