"""Decision-boundary grids: the output over a grid covering the data, plus every hidden neuron.

One definition for every view of a boundary: GET /boundary (``boundary``), the stream's frames (a
``Grid`` kept per live model, app/api/routes/stream.py) and the instructor's gallery.
"""
from __future__ import annotations

import numpy as np


def grid_range(points: np.ndarray, pad: float = 0.1) -> tuple[list[float], list[float]]:
    """Square-ish [lo, hi] ranges for x1 and x2 covering the points with a margin."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    margin = pad * np.maximum(hi - lo, 1e-9)
    lo, hi = lo - margin, hi + margin
    return [float(lo[0]), float(hi[0])], [float(lo[1]), float(hi[1])]


def one_value(y_hat: np.ndarray) -> np.ndarray:
    """The value a boundary shows for outputs y_hat (B, K): (B,) of y_hat itself for one output, P(class 2)
    for two, and for more the predicted class scaled to [0, 1] (argmax / (K - 1))."""
    K = y_hat.shape[1]
    if K == 1:
        return y_hat[:, 0]
    if K == 2:
        return y_hat[:, 1]
    return y_hat.argmax(axis=1) / (K - 1)


class Grid:
    """A model's R x R grid over its data (R = ``resolution``) and the network inputs at its points.

    Holds R^2 x input-width floats and r^2 row indices (r = min(neuron_resolution, R)): computed once
    per model and resolution, since the data never changes, and evaluated after every change of the
    parameters. Grid point (j, k) is x1 = x_range value k, x2 = y_range value j.
    """

    def __init__(self, model, resolution: int, neuron_resolution: int = 16):
        self.resolution, self.r = resolution, min(neuron_resolution, resolution)
        self.x_range, self.y_range = grid_range(np.concatenate([model.raw_train, model.raw_test]))
        gx, gy = np.meshgrid(np.linspace(*self.x_range, resolution), np.linspace(*self.y_range, resolution))
        self.X = model.inputs(np.column_stack([gx.ravel(), gy.ravel()]))
        sub = np.linspace(0, resolution - 1, self.r).round().astype(int)
        self.rows = (sub[:, None] * resolution + sub[None, :]).ravel()  # grid point (j, k) is row j * R + k

    def evaluate(self, net, neurons: bool = True) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """(output (R, R), per hidden layer its z (n_i, r, r) on the sub-grid, or None without ``neurons``).

        One forward pass in ``Network.predict``'s row chunks, so memory stays within
        ``network.MEMORY_BUDGET`` plus the output and the sub-grid's neurons, and no layer cache is left.
        """
        R, r = self.resolution, self.r
        if neurons:
            y_hat, hidden = net.predict(self.X, hidden_rows=self.rows)
            zs = [np.ascontiguousarray(z.reshape(r, r, -1).transpose(2, 0, 1)) for z in hidden]
        else:
            y_hat, zs = net.predict(self.X), None
        return one_value(y_hat).reshape(R, R), zs


def boundary(model, resolution: int = 50, neuron_resolution: int = 16, neurons: bool = True) -> dict:
    """The model's boundary: {resolution, x_range, y_range, neuron_resolution, output (R, R) with row j at
    x2 = y_range value j, neurons: per hidden layer (n_i, r, r), or None without ``neurons``}.

    The data must be 2-D (``model.raw_dim == 2``).
    """
    g = Grid(model, resolution, neuron_resolution)
    out, zs = g.evaluate(model.net, neurons)
    return {"resolution": resolution, "x_range": g.x_range, "y_range": g.y_range, "output": out,
            "neuron_resolution": g.r, "neurons": zs}
