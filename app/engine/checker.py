"""Check a student's hand-computed dW_i / db_i against the engine, and name the mistake when one fits.

Every hint is computed, never guessed: the student's array is compared (relative error <= TOLERANCE)
with the gradient that a specific mistake would produce on the same batch:
transposed dW, f'(a_i) left out at layer i (dz_i in place of delta_i), the 2 of the square left out
(mse), a sum over the batch instead of the mean (B times too large), a flipped sign, db not summed
over the batch, or right values in the wrong shape. Mistakes act on the data term; a penalty
gradient (l1/l2 on W) is added back, since a student who forgets the 2 still adds the penalty.
"""
from __future__ import annotations

import numpy as np

from .gradcheck import relative_error
from .network import Network

TOLERANCE = 1e-4


def _shape(t: tuple) -> str:
    return "(" + ", ".join(map(str, t)) + (",)" if len(t) == 1 else ")")


def _as_array(value, where: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be a number array (nested lists of numbers)") from None
    if not np.isfinite(arr).all():
        raise ValueError(f"{where} contains a non-finite number")
    return arr


def _mistakes(net: Network, i: int, key: str, data: np.ndarray, pen: np.ndarray, no_fprime: np.ndarray,
              B: int) -> list[tuple[str, np.ndarray]]:
    """(hint, gradient that mistake produces) for layer i (1-based), tensor key "W" or "b"."""
    t = f"d{key}_{i}"
    found = f"dz_{i}^T z_{i - 1}" if key == "W" else f"sum_b dz_{i}"
    out = [(f"{t} matches {found}: the factor f'(a_{i}) is missing; use delta_{i} = dz_{i} * f'(a_{i}), "
            f"not dz_{i}", no_fprime + pen)]
    if net.loss.name == "mse":
        out.append((f"{t} is half the true gradient: the factor 2 of d/dy_hat (y_hat - y)^2 = 2(y_hat - y) "
                    f"is missing", data / 2 + pen))
    if B > 1:
        out.append((f"{t} is B = {B} times the true gradient: you summed over the batch, but the loss is "
                    f"the mean, so delta_L carries a factor 1/B", data * B + pen))
    out += [(f"{t} has the opposite sign: the output error is y_hat - y, not y - y_hat", -data + pen),
            (f"{t} has the opposite sign of the whole gradient (descent steps along -{t})", -(data + pen))]
    return out


def _verdict(student: np.ndarray, true: np.ndarray, mistakes: list, name: str, shape_note: str,
             delta: np.ndarray | None = None) -> dict:
    """Compare one tensor; a wrong shape is compared after transposing/reshaping when that aligns values."""
    v = {"expected_shape": list(true.shape), "shape": list(student.shape), "max_abs_error": None,
         "relative_error": None, "passed": False, "hint": None}
    wrong_shape = f"wrong shape {_shape(student.shape)}, expected {_shape(true.shape)}: {shape_note}"

    def mistake(arr):
        return next((h for h, g in mistakes if relative_error(arr, g) <= TOLERANCE), None)

    def errors(arr):
        v.update(max_abs_error=float(np.max(np.abs(arr - true))) if true.size else 0.0,
                 relative_error=relative_error(arr, true))

    if student.shape == true.shape:
        errors(student)
        v["passed"] = v["relative_error"] <= TOLERANCE
        if not v["passed"]:
            if student.ndim == 2 and student.T.shape == true.shape and relative_error(student.T, true) <= TOLERANCE:
                v["hint"] = f"transposed: you gave {name}^T; {shape_note}"
            else:
                v["hint"] = mistake(student)
        return v
    if delta is not None and student.shape == delta.shape and relative_error(student, delta) <= TOLERANCE:
        v["hint"] = (f"you gave delta per sample, shape {_shape(student.shape)}; {name} sums delta over "
                     f"the batch rows, shape {_shape(true.shape)}")
        return v
    if student.ndim == 2 and student.T.shape == true.shape:
        aligned, how = student.T, f"transposed: you gave {name}^T, shape {_shape(student.shape)}; {shape_note}"
    elif student.size == true.size:
        aligned, how = student.reshape(true.shape), wrong_shape
    else:
        v["hint"] = wrong_shape
        return v
    right = relative_error(aligned, true) <= TOLERANCE
    found = None if right else mistake(aligned)
    if right or found:
        errors(aligned)
        v["hint"] = f"{how}. Aligned to {_shape(true.shape)}: " + ("the values are right" if right else found)
    else:
        v["hint"] = wrong_shape
    return v


def check_student(net: Network, X, y, layers: list[dict]) -> dict:
    """Verdicts for the student's dW_i / db_i (list index 0 is layer 1) against a backward pass on (X, y)."""
    if not isinstance(layers, (list, tuple)):
        raise ValueError("layers must be a list with one {'dW'?, 'db'?} object per layer, starting at layer 1")
    if len(layers) > net.n_layers:
        raise ValueError(f"got gradients for {len(layers)} layers but the network has only {net.n_layers} "
                         f"(layers 1..{net.n_layers}, the output layer last)")
    X = np.asarray(X, net.dtype)
    y = np.asarray(y, net.dtype)
    net.full_backward(X, y)
    q = net.quantities()
    B = X.shape[0]
    out, verdicts = [], []
    for i, given in enumerate(layers, start=1):
        if not isinstance(given, dict):
            raise ValueError(f"layer {i}: expected an object with 'dW' and/or 'db'")
        unknown = set(given) - {"dW", "db"}
        if unknown:
            raise ValueError(f"layer {i}: unknown key(s) {sorted(unknown)}; give 'dW' and/or 'db'")
        given = {k: v for k, v in given.items() if v is not None}
        if "db" in given and not net.bias:
            raise ValueError(f"layer {i}: this network has no bias, so there is no db_{i}")
        L = q[i - 1]
        z_prev = X.astype(np.float64) if i == 1 else q[i - 2].z.astype(np.float64)
        delta, dz = L.delta.astype(np.float64), L.dz.astype(np.float64)
        n_out, n_in = net.sizes[i], net.sizes[i - 1]
        entry = {"layer": i, "dW": None, "db": None}
        if "dW" in given:
            true = L.dW.astype(np.float64)
            data = delta.T @ z_prev
            note = f"W_{i} is (out, in) = (n_{i}, n_{i - 1}) = ({n_out}, {n_in}) and dW_{i} has the shape of W_{i}"
            mistakes = _mistakes(net, i, "W", data, true - data, dz.T @ z_prev, B)
            entry["dW"] = _verdict(_as_array(given["dW"], f"layer {i} dW"), true, mistakes, f"dW_{i}", note)
            verdicts.append(entry["dW"])
        if "db" in given:
            true = L.db.astype(np.float64)
            mistakes = _mistakes(net, i, "b", true, np.zeros_like(true), dz.sum(axis=0), B)
            note = f"b_{i} has n_{i} = {n_out} entries and db_{i} has the shape of b_{i}"
            entry["db"] = _verdict(_as_array(given["db"], f"layer {i} db"), true, mistakes, f"db_{i}", note, delta)
            verdicts.append(entry["db"])
        out.append(entry)
    return {"passed": bool(verdicts) and all(v["passed"] for v in verdicts), "layers": out}
