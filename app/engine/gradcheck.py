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

Kinks: where a relu-type pre-activation sits on its kink or crosses it between w - eps and w + eps,
the central difference averages the two one-sided slopes while backprop takes one subgradient;
both are right. Such entries are counted in "kinks" and left out of the relative error.

Step size: the central difference has a round-off error of about u |J| / eps (u = 2^-52) and a
truncation error growing like eps^2 times the third derivative. ``eps_note`` explains an eps outside
[EPS_LOW, EPS_HIGH] with the round-off measured on this J; a failing check with such an eps is run
again at DEFAULT_EPS, to tell the step size from a wrong backward pass.

Round-off bound, per tensor: J evaluated in floating point carries an absolute error of about
u * S, with u the unit round-off of the dtype checked and S the size of what J is computed from,
not |J|: the fused losses cancel the logits (log(1 + e^a) - a y), so per row the error is about
u s_b with s_b = sum_k (|a_L| + |y_hat| + |y|) over the row, and the B rows' errors add like a random
walk: S = |J| + sqrt(sum_b s_b^2) / B. Each central difference then has a round-off error of about
u S / eps; truncation adds eps^2 |J'''| / 6, estimated from a second difference at 2 eps
(n(2 eps) - n(eps) = eps^2 J''' / 2). A tensor whose relative error exceeds TOLERANCE still passes
(with an eps in [EPS_LOW, EPS_HIGH]; outside it ``eps_note`` applies)
when ||a - n|| <= ROUNDOFF_MARGIN * (round-off + truncation) * sqrt(entries): its gradient is then
too small for the difference to tell right from wrong. ``roundoff_note`` says so and suggests the
eps that balances the two errors, (3 u S / |J'''|)^(1/3). A wrong gradient whose error exceeds
that bound still fails.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .network import Network

TOLERANCE = 1e-5
DEFAULT_EPS = 1e-6
EPS_LOW, EPS_HIGH = 1e-8, 1e-4
ROUNDOFF_MARGIN = 4.0  # the random-walk estimate is typical, not a maximum


def relative_error(a: np.ndarray, n: np.ndarray) -> float:
    """||a - n|| / (||a|| + ||n||), and 0.0 when both are zero."""
    den = float(np.linalg.norm(a) + np.linalg.norm(n))
    return 0.0 if den == 0.0 else float(np.linalg.norm(a - n)) / den


def float64_copy(net: Network) -> Network:
    """A float64 Network with the same architecture, loss, bias, penalty, activations and parameters."""
    return network_copy(net, np.float64)


def network_copy(net: Network, dtype=None) -> Network:
    """A Network with the same architecture, loss, bias, penalty, activations and parameters, in ``dtype``
    (default: the network's own), that shares nothing with it."""
    copy = Network(net.sizes, net.activation_names, loss=net.loss.name, bias=net.bias,
                   dtype=net.dtype if dtype is None else dtype,
                   regularization=net.regularization, reg_rate=net.reg_rate)
    for mine, theirs in zip(copy.acts, net.acts):
        mine.f = theirs.f  # keeps non-default activation parameters (slopes, alpha, beta)
    copy.params[...] = net.params
    return copy


class Stopped(Exception):
    """The check's ``stop`` answered True: the work ended early and has no result."""


def gradcheck(net: Network, X, y, *, eps: float = DEFAULT_EPS, max_entries: int | None = None,
              seed: int = 0, stop: Callable[[], bool] | None = None) -> dict:
    """Compare analytic gradients with central differences of ``net.objective``; params restored exactly.

    Returns {"passed", "max_relative_error", "eps", "tolerance", "dtype_checked", "kinks", "eps_note",
    "roundoff_note", "layers": [{"layer", "W", "b"}]} with each tensor {"max_abs_error", "abs_error",
    "relative_error", "checked", "kinks", "analytic_norm", "numeric_norm", "roundoff", "within_roundoff",
    "best_eps"}; errors are over the entries that do not meet a kink (abs_error = ||a - n||). For a tensor
    above TOLERANCE, ``roundoff`` bounds ||a - n|| by round-off and truncation and ``within_roundoff`` says
    the tensor passes on it (both None/False otherwise).
    ``stop`` is asked before every entry's pair of evaluations; when it answers True the check raises
    Stopped (the parameters restored). Raises ValueError for eps <= 0 or max_entries < 1."""
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if max_entries is not None and max_entries < 1:
        raise ValueError(f"max_entries must be >= 1 or None, got {max_entries}")
    work = net if net.dtype == np.float64 else float64_copy(net)
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64)
    result = _run(work, X, y, eps, max_entries, seed, stop)
    result["eps_note"] = None
    if not EPS_LOW <= eps <= EPS_HIGH:
        J = abs(work.objective(X, y))
        if eps < EPS_LOW:
            roundoff = np.finfo(np.float64).eps * max(J, np.finfo(np.float64).tiny) / eps
            note = (f"eps = {eps:g} is too small: J(w + eps) and J(w - eps) differ only in their last digits, so "
                    f"the difference is mostly round-off (about u |J| / eps = {roundoff:.1e} on J = {J:.3g}, "
                    f"u = 2^-52); use an eps between {EPS_LOW:g} and {EPS_HIGH:g}")
        else:
            note = (f"eps = {eps:g} is too large: the central difference has a truncation error growing like "
                    f"eps^2 times the third derivative of J, so the curvature of J shows up as error; use an eps "
                    f"between {EPS_LOW:g} and {EPS_HIGH:g}")
        if not result["passed"]:
            again = _run(work, X, y, DEFAULT_EPS, max_entries, seed, stop)
            note += (f". At eps = {DEFAULT_EPS:g} the same check {'passes' if again['passed'] else 'fails too'} "
                     f"(max relative error {again['max_relative_error']:.2e})"
                     + (", so the step size made it fail, not the backward pass" if again["passed"] else ""))
        result["eps_note"] = note
    result["roundoff_note"] = _roundoff_note(result)
    return result


def _roundoff_note(result: dict) -> str | None:
    """Which tensors pass only because their error is within the round-off bound, and a better eps."""
    within = [(e["layer"], key, e[key]) for e in result["layers"] for key in ("W", "b")
              if e[key] is not None and e[key]["within_roundoff"]]
    if not within:
        return None
    names = ", ".join(f"{key}_{layer}" for layer, key, _ in within)
    worst = max(within, key=lambda w: w[2]["relative_error"])[2]
    best = [w[2]["best_eps"] for w in within if w[2]["best_eps"] is not None]
    suggest = min(max(float(np.median(best)), EPS_LOW), EPS_HIGH) if best else EPS_HIGH
    return (f"{names} passed within round-off: the gradient is so small that the finite-difference error covers "
            f"it (||a - n|| = {worst['abs_error']:.1e}, round-off bound {worst['roundoff']:.1e} at "
            f"eps = {result['eps']:g}), so a relative error of {worst['relative_error']:.2g} says nothing about the "
            f"backward pass; try eps = {suggest:.0e}, where round-off and truncation balance")


def _run(work: Network, X, y, eps: float, max_entries: int | None, seed: int, stop=None) -> dict:
    saved_params, saved_grads = work.params.copy(), work.grads.copy()
    rng = np.random.default_rng(seed)
    try:
        work.forward(X)
        work.backward(y)
        analytic = work.grads.copy()
        scale = _objective_scale(work, X, y)
        layers = []
        per = 2 if work.bias else 1
        for i in range(work.n_layers):
            entry = {"layer": i + 1, "W": None, "b": None}
            for j, key in enumerate(("W", "b")[:per]):
                start, end = int(work.offsets[per * i + j]), int(work.offsets[per * i + j + 1])
                entry[key] = _check_tensor(work, X, y, analytic, start, end, eps, max_entries, rng, stop, scale)
            layers.append(entry)
    finally:
        work.params[...] = saved_params
        work.grads[...] = saved_grads
    tensors = [t for e in layers for t in (e["W"], e["b"]) if t is not None]
    worst = max((t["relative_error"] for t in tensors), default=0.0)
    passed = all(t["relative_error"] <= TOLERANCE or t["within_roundoff"] for t in tensors)
    return {"passed": bool(passed), "max_relative_error": worst, "eps": eps,
            "tolerance": TOLERANCE, "dtype_checked": "float64", "kinks": sum(t["kinks"] for t in tensors),
            "roundoff_note": None,
            "layers": layers}


def _sides(net: Network) -> list[np.ndarray]:
    """The side of its kink every pre-activation of a kinked layer is on: -1, 0 (on it) or +1."""
    return [np.sign(layer.a - layer.f.kinks[0]) for layer in net.acts if layer.f.kinks]


def _objective_scale(net: Network, X, y) -> float:
    """S, the size of what J is computed from (module docstring), after ``forward``; J's round-off is
    about u S."""
    out = net.acts[-1]
    rows = np.abs(out.a).sum(axis=1) + np.abs(out.z).sum(axis=1) + np.abs(y).sum(axis=1)
    return abs(float(net.objective(X, y))) + float(np.sqrt(np.sum(rows * rows))) / max(len(y), 1)


def _bound(net: Network, X, y, analytic, idx, numeric, keep, eps, scale, stop) -> tuple[float, float | None]:
    """(bound on ||a - n|| from round-off and truncation, the eps balancing them or None) for one tensor.
    The third derivative is estimated at the entry with the largest |a - n|, from its difference at 2 eps."""
    u = float(np.finfo(net.params.dtype).eps)
    roundoff = u * scale / eps
    kept = np.flatnonzero(keep)
    k = int(kept[np.argmax(np.abs(analytic[idx][keep] - numeric[keep]))])
    wide = _difference(net, X, y, int(idx[k]), 2.0 * eps, stop)
    third = max(abs(wide - numeric[k]) - 2.0 * roundoff, 0.0) * 2.0 / eps ** 2  # |J'''|
    truncation = eps ** 2 * third / 6.0
    best = (3.0 * u * scale / third) ** (1.0 / 3.0) if third > 0 else None
    return ROUNDOFF_MARGIN * (roundoff + truncation) * float(np.sqrt(len(kept))), best


def _difference(net: Network, X, y, flat: int, eps: float, stop=None) -> float:
    """(J(w + eps) - J(w - eps)) / (2 eps) for the flat entry ``flat``, the entry restored exactly."""
    if stop is not None and stop():
        raise Stopped
    p = net.params
    old = p[flat]
    try:
        p[flat] = old + eps
        plus = net.objective(X, y)
        p[flat] = old - eps
        minus = net.objective(X, y)
    finally:
        p[flat] = old
    return (plus - minus) / (2.0 * eps)


def _check_tensor(net: Network, X, y, analytic: np.ndarray, start: int, end: int, eps: float,
                  max_entries: int | None, rng: np.random.Generator, stop=None, scale: float = 0.0) -> dict:

    """Central differences for the flat entries [start, end) of ``net.params`` (or a seeded sample)."""
    size = end - start
    if max_entries is None or max_entries >= size:
        idx = np.arange(start, end)
    else:
        idx = start + np.sort(rng.choice(size, size=max_entries, replace=False))
    numeric = np.empty(len(idx))
    kink = np.zeros(len(idx), bool)
    kinked = any(layer.f.kinks for layer in net.acts)
    p = net.params
    for k, flat in enumerate(idx):
        if stop is not None and stop():
            raise Stopped
        old = p[flat]
        p[flat] = old + eps
        plus = net.objective(X, y)
        sides = _sides(net) if kinked else []
        p[flat] = old - eps
        minus = net.objective(X, y)
        if kinked:  # on or across a kink between w - eps and w + eps: each one-sided slope is right
            kink[k] = any(((s == 0) | (s != t)).any() for s, t in zip(sides, _sides(net)))
        p[flat] = old  # the exact original value, not old + eps - eps
        numeric[k] = (plus - minus) / (2.0 * eps)
    keep = ~kink
    a, n = analytic[idx][keep], numeric[keep]
    rel, abs_error = relative_error(a, n), float(np.linalg.norm(a - n))
    bound = best = None
    if rel > TOLERANCE and len(a) and EPS_LOW <= eps <= EPS_HIGH:  # outside it eps_note tells the step to use
        bound, best = _bound(net, X, y, analytic, idx, numeric, keep, eps, scale, stop)
    return {"max_abs_error": float(np.max(np.abs(a - n))) if len(a) else 0.0, "abs_error": abs_error,
            "relative_error": rel, "checked": len(idx), "kinks": int(kink.sum()),
            "analytic_norm": float(np.linalg.norm(analytic[idx])), "numeric_norm": float(np.linalg.norm(numeric)),
            "roundoff": bound, "within_roundoff": bool(bound is not None and abs_error <= bound), "best_eps": best}
