"""Finite-difference gradient check: does the backward pass differentiate the objective it evaluates?

Every checked parameter w gets the central difference (J(w + eps) - J(w - eps)) / (2 eps) of the
objective J = data loss + penalty (``Network.objective``), compared with the analytic ``grads`` of
one ``forward`` + ``backward``. Per tensor the error is relative_error = ||a - n|| / (||a|| + ||n||)
(0 when both norms are 0), over the checked entries.

Threshold: a float64 central difference with eps = 1e-6 is accurate to about 1e-10 absolute
(rounding ~1e-16 / eps, truncation ~eps^2), so a correct backward pass gives relative errors of
1e-8 or less for gradients of norm >= 1e-3, while a real bug (a missing factor, a wrong index,
even a 1% scale error) gives 1e-3 or more. ``TOLERANCE = 1e-5`` sits between the two with a margin
for ill-conditioned nets. float32 networks are checked on a float64 copy: float32 differences are
too noisy (~1e-7 / eps) to tell a bug from rounding, and the formulas are the same.
"""
from __future__ import annotations

import numpy as np

from .network import Network

TOLERANCE = 1e-5


def relative_error(a: np.ndarray, n: np.ndarray) -> float:
    """||a - n|| / (||a|| + ||n||), and 0.0 when both are zero."""
    den = float(np.linalg.norm(a) + np.linalg.norm(n))
    return 0.0 if den == 0.0 else float(np.linalg.norm(a - n)) / den


def float64_copy(net: Network) -> Network:
    """A float64 Network with the same architecture, loss, bias, penalty, activations and parameters."""
    copy = Network(net.sizes, net.activation_names, loss=net.loss.name, bias=net.bias, dtype=np.float64,
                   regularization=net.regularization, reg_rate=net.reg_rate)
    for mine, theirs in zip(copy.acts, net.acts):
        mine.f = theirs.f  # keeps non-default activation parameters (slopes, alpha, beta)
    copy.params[...] = net.params
    return copy


def gradcheck(net: Network, X, y, *, eps: float = 1e-6, max_entries: int | None = None, seed: int = 0) -> dict:
    """Compare analytic gradients with central differences of ``net.objective``; params restored exactly."""
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if max_entries is not None and max_entries < 1:
        raise ValueError(f"max_entries must be >= 1 or None, got {max_entries}")
    work = net if net.dtype == np.float64 else float64_copy(net)
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64)
    saved_params, saved_grads = work.params.copy(), work.grads.copy()
    rng = np.random.default_rng(seed)
    try:
        work.forward(X)
        work.backward(y)
        analytic = work.grads.copy()
        layers = []
        per = 2 if work.bias else 1
        for i in range(work.n_layers):
            entry = {"layer": i + 1, "W": None, "b": None}
            for j, key in enumerate(("W", "b")[:per]):
                start, stop = int(work.offsets[per * i + j]), int(work.offsets[per * i + j + 1])
                entry[key] = _check_tensor(work, X, y, analytic, start, stop, eps, max_entries, rng)
            layers.append(entry)
    finally:
        work.params[...] = saved_params
        work.grads[...] = saved_grads
    worst = max((t["relative_error"] for e in layers for t in (e["W"], e["b"]) if t is not None), default=0.0)
    return {"passed": bool(worst <= TOLERANCE), "max_relative_error": worst, "eps": eps,
            "tolerance": TOLERANCE, "dtype_checked": "float64", "layers": layers}


def _check_tensor(net: Network, X, y, analytic: np.ndarray, start: int, stop: int, eps: float,
                  max_entries: int | None, rng: np.random.Generator) -> dict:
    """Central differences for the flat entries [start, stop) of ``net.params`` (or a seeded sample)."""
    size = stop - start
    if max_entries is None or max_entries >= size:
        idx = np.arange(start, stop)
    else:
        idx = start + np.sort(rng.choice(size, size=max_entries, replace=False))
    numeric = np.empty(len(idx))
    p = net.params
    for k, flat in enumerate(idx):
        old = p[flat]
        p[flat] = old + eps
        plus = net.objective(X, y)
        p[flat] = old - eps
        minus = net.objective(X, y)
        p[flat] = old  # the exact original value, not old + eps - eps
        numeric[k] = (plus - minus) / (2.0 * eps)
    a = analytic[idx]
    return {"max_abs_error": float(np.max(np.abs(a - numeric))) if len(idx) else 0.0,
            "relative_error": relative_error(a, numeric), "checked": int(len(idx)),
            "analytic_norm": float(np.linalg.norm(a)), "numeric_norm": float(np.linalg.norm(numeric))}
