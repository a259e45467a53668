"""Decision-boundary grids: the output over a grid covering the data, plus every hidden neuron."""
from __future__ import annotations

import numpy as np


def grid_range(points: np.ndarray, pad: float = 0.1) -> tuple[list[float], list[float]]:
    """Square-ish [lo, hi] ranges for x1 and x2 covering the points with a margin."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    margin = pad * np.maximum(hi - lo, 1e-9)
    lo, hi = lo - margin, hi + margin
    return [float(lo[0]), float(hi[0])], [float(lo[1]), float(hi[1])]


def boundary(model, resolution: int = 50, neuron_resolution: int = 16) -> dict:
    """One forward pass over a resolution x resolution grid; neurons are read from the same pass.

    Returns output (R, R) (row j is x2 = y_range value j), and for each hidden layer an array
    (n_i, r, r) of that layer's z on a sub-grid of the same points. The pass runs in row chunks
    (``Network.predict``), so memory stays within ``network.MEMORY_BUDGET`` plus the (R, R) output
    and the sub-grid's neurons, and no layer cache is left behind.
    """
    points = np.concatenate([model.raw_train, model.raw_test])
    xr, yr = grid_range(points)
    xs, ys = np.linspace(*xr, resolution), np.linspace(*yr, resolution)
    gx, gy = np.meshgrid(xs, ys)
    r = min(neuron_resolution, resolution)
    sub = np.linspace(0, resolution - 1, r).round().astype(int)
    rows = (sub[:, None] * resolution + sub[None, :]).ravel()  # grid point (j, k) is row j * R + k
    X = model.inputs(np.column_stack([gx.ravel(), gy.ravel()]))
    y_hat, hidden = model.net.predict(X, hidden_rows=rows)
    K = y_hat.shape[1]
    if K == 1:
        out = y_hat[:, 0]
    elif K == 2:
        out = y_hat[:, 1]
    else:
        out = y_hat.argmax(axis=1) / (K - 1)
    neurons = [np.ascontiguousarray(z.reshape(r, r, -1).transpose(2, 0, 1)) for z in hidden]
    return {"resolution": resolution, "x_range": xr, "y_range": yr, "output": out.reshape(resolution, resolution),
            "neuron_resolution": r, "neurons": neurons}
