"""Check a student's hand-computed dW_i / db_i against the engine, and find where the mistake enters.

Every hint is computed, never guessed: the student's numbers are compared (relative error <= TOLERANCE)
with the gradients a specific mistake produces on the same batch, carried down the backward pass.

1. The entry point is the highest layer whose gradient is wrong, the layers above being right (or
   not given). A gradient counts as right when it matches the engine, or, where a relu-type
   pre-activation sits exactly on its kink, the gradient of another subgradient choice.
2. At the entry layer j the student's dW_j / db_j gets the explanation with the fewest mistakes (at most
   three, ``compose``) that reproduces it: one mistake of the step delta_{j+1} -> delta_j (for j = L:
   the output error), a missing penalty, and a constant factor fitted in closed form and named
   (mistakes.explain_factor: sign, 2, powers of B, 1/K). Every explanation has a stable kind code
   (mistakes.KINDS).
3. Each layer below is diagnosed on its own: it inherits from layer j only when its numbers are what
   the entry's mistake gives through right steps (or the same wrong step repeated); otherwise its own
   mistake is named. A db-only mistake or a missing penalty carries nothing down.

Mistakes act on the data term; a penalty gradient (l1/l2 on W) is added back, since a student who
forgets the 2 still adds the penalty. All arithmetic is float64.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import arrays
from .gradcheck import relative_error
from . import mistakes
from .losses import LOSSES
from .network import Network

TOLERANCE = 1e-4
MAX_ENTRIES_FACTOR = 64  # a submitted array may hold at most this many times the entries of (B, n) or W


def _shape(t: tuple) -> str:
    return "(" + ", ".join(map(str, t)) + (",)" if len(t) == 1 else ")")


def as_array(value, where: str, limit: int | None = None) -> np.ndarray:
    """Any nested list or array of finite numbers as float64 (arrays.as_array); ValueError naming ``where``."""
    try:
        arr = arrays.as_array(value)
    except arrays.ArrayError as e:
        raise ValueError(f"{where} " + {"ragged": "is ragged: its rows have different lengths",
                                        "non_finite": "contains a non-finite number"}.get(
            e.kind, "must be a number array (nested lists of numbers)")) from None
    if limit is not None and arr.size > limit:
        raise ValueError(f"{where} has {arr.size} numbers; at most {limit} are accepted for this network")
    return arr


# -- the backward pass, replayed with or without a mistake ---------------------------------------
@dataclass
class Batch:
    """Everything of one forward/backward pass in float64, lists indexed by layer (0 = layer 1)."""

    net: Network
    X: np.ndarray
    W: list
    a: list
    z: list          # z[0] = X, z[i] = output of layer i
    delta: list      # true delta_i (B, n_i), the 1/B of the mean inside
    dz: list         # true dz_i
    pen: list        # penalty gradient of W_i (zeros without a penalty)
    dW: list
    db: list
    B: int
    y: np.ndarray
    lr: float | None = None  # the model's learning rate (names "the already-updated W"); None: unknown

    @classmethod
    def of(cls, net: Network, X, y) -> Batch:
        X = np.asarray(X, net.dtype)
        y = np.asarray(y, net.dtype)
        net.full_backward(X, y)
        q = net.quantities()
        f64 = lambda v: None if v is None else np.array(v, np.float64)
        W = [f64(d.params["W"]) for d in net.dense]
        delta = [f64(l.delta) for l in q]
        z = [f64(X)] + [f64(l.z) for l in q]
        dW = [f64(l.dW) for l in q]
        pen = [dW[i] - delta[i].T @ z[i] for i in range(len(q))]
        net.release()  # the batch's layer caches are copied above: the live model keeps none of them
        return cls(net, z[0], W, [f64(l.a) for l in q], z, delta, [f64(l.dz) for l in q], pen, dW,
                   [f64(l.db) for l in q], X.shape[0], f64(y).reshape(X.shape[0], -1))

    @property
    def L(self) -> int:
        return len(self.W)

    def act(self, i: int):
        return self.net.acts[i - 1].f

    def fprime(self, i: int, at: np.ndarray | None = None) -> np.ndarray | None:
        """f_i'(a_i) (or f_i' evaluated at ``at``); None for softmax."""
        f = self.act(i)
        if f.output_only:
            return None
        x = self.a[i - 1] if at is None else at
        return f.derivative(x, f.forward(x))

    def grads(self, i: int, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(dW_i, db_i) from a delta_i: delta^T z_{i-1} + penalty, and delta summed over the rows."""
        return delta.T @ self.z[i - 1] + self.pen[i - 1], delta.sum(axis=0)

    def down(self, i: int, delta_above: np.ndarray, mistake: str | None = None) -> np.ndarray | None:
        """delta_i from delta_{i+1}, correctly or with a step mistake; None when its shapes do not fit."""
        W_above, W_own = self.W[i], self.W[i - 1]
        if mistake == "own_W":
            if delta_above.shape[1] != W_own.shape[0] or W_own.shape[1] != W_own.shape[0]:
                return None
            dz = delta_above @ W_own
        elif mistake == "updated_W":  # the step's W after this step's update: W - lr dW
            if not self.lr:
                return None
            dz = delta_above @ (W_above - self.lr * self.dW[i])
        elif mistake == "no_T":
            if W_above.shape[0] != W_above.shape[1]:
                return None
            dz = delta_above @ W_above.T
        else:
            dz = delta_above @ W_above
        return self.through_f(i, dz, mistake)

    def through_f(self, i: int, dz: np.ndarray, mistake=None) -> np.ndarray | None:
        """dz * f'(a_i), or with ``mistake``: a name, or (written, why, fn) of f's wrong derivatives."""
        f = self.act(i)
        if isinstance(mistake, tuple):
            return dz * mistake[2](self.a[i - 1], self.z[i])
        if mistake == "no_fprime":
            return dz
        if mistake in ("fprime_z", "fprime_twice"):
            if f.output_only or f.name == "identity":
                return None
            fp = self.fprime(i, at=self.z[i] if mistake == "fprime_z" else None)
            return dz * fp * (self.fprime(i) if mistake == "fprime_twice" else 1.0)
        return f.backward(self.a[i - 1], self.z[i], dz)

    def output_delta(self, mistake: str) -> np.ndarray | None:
        """delta_L with an output-layer mistake."""
        L, f = self.L, self.act(self.L)
        fused = self.net.loss.is_fused(f.name)
        if mistake == "extra_fprime":
            return None if not fused or f.output_only else self.delta[L - 1] * self.fprime(L)
        if fused:
            return None
        return self.through_f(L, self.dz[L - 1], mistake)

    def output_delta_of(self, loss) -> np.ndarray | None:
        """delta_L that another loss would give on this output (its fused error when paired)."""
        L, f = self.L, self.act(self.L)
        y_hat, y = self.z[L], self.y
        if loss.is_fused(f.name):
            return (y_hat - y) / self.B
        with np.errstate(all="ignore"):
            d = f.backward(self.a[L - 1], y_hat, loss.grad(y_hat, y))
        return d if np.isfinite(d).all() else None

    def carry(self, j: int, delta_j: np.ndarray, repeat: str | None) -> dict[int, np.ndarray]:
        """delta_i for i = j..1 from a (wrong) delta_j: correct steps below, or ``repeat`` at every step."""
        out, d = {j: delta_j}, delta_j
        for i in range(j - 1, 0, -1):
            d = self.down(i, d, repeat)
            if d is None:
                break
            out[i] = d
        return out


@dataclass
class Mistake:
    kind: str
    hint: str               # the explanation, with {t} for the tensor's name
    deltas: dict            # layer -> delta_i the mistake produces (once)
    repeated: dict | None   # layer -> delta_i when the same wrong step is repeated below
    scale: float = 1.0      # a constant-factor mistake multiplies every layer below by this


SHORT = {"own_W": "W_{i} where W_{up}^T belongs", "no_T": "W_{up} where W_{up}^T belongs",
         "no_fprime": "dz_{i} without the factor f'(a_{i})", "fprime_z": "f'(z_{i}) where f'(a_{i}) belongs",
         "fprime_twice": "f'(a_{i}) applied twice"}


def _step_mistakes(b: Batch, j: int) -> list[Mistake]:
    """The mistakes made in the step that produces delta_j, each carried down from layer j."""
    n = b.net.sizes
    out = []

    def add(kind, delta_j, hint, repeat):
        if delta_j is not None:
            out.append(Mistake(kind, hint, b.carry(j, delta_j, None), b.carry(j, delta_j, repeat) if repeat else None))

    if j == b.L:
        loss, f = b.net.loss, b.act(j).name
        add("extra_fprime", b.output_delta("extra_fprime"),
            f"{{t}} matches delta_{j} = (y_hat - y)/B * f'(a_{j}): with {loss.name} on a {f} output, "
            f"(y_hat - y)/B already is dL/da_{j} (dL/dy_hat and f'(a_{j}) cancel), so f'(a_{j}) is applied twice", None)
        add("no_fprime", b.output_delta("no_fprime"),
            f"{{t}} matches dL/dy_hat alone: the factor f'(a_{j}) is missing; use delta_{j} = dz_{j} * f'(a_{j}) "
            f"with dz_{j} = {loss.dz_text}, not dz_{j}", None)
        add("fprime_z", b.output_delta("fprime_z"),
            f"{{t}} matches f' evaluated at the output z_{j} = y_hat: f'(z_{j}) is there where f'(a_{j}) belongs "
            f"(f' is taken at the pre-activation a_{j}, even when its formula is written with z)", None)
        add("fprime_twice", b.output_delta("fprime_twice"),
            f"{{t}} matches f'(a_{j}) applied twice: delta_{j} = dz_{j} * f'(a_{j}) uses it once", None)
        if loss.is_fused(f) and f == "softmax":
            y_hat = b.z[j]
            add("softmax_elementwise", b.delta[j - 1] * y_hat * (1.0 - y_hat),
                f"{{t}} matches delta_{j} = (y_hat - y)/B * y_hat(1 - y_hat): softmax' is taken elementwise, but "
                f"softmax has a Jacobian, each output depending on every a_{j}; with cross_entropy the two cancel "
                f"and delta_{j} = (y_hat - y)/B", None)
        if not loss.is_fused(f):
            for form in b.act(j).wrong_derivatives:
                add("wrong_derivative", b.through_f(j, b.dz[j - 1], form), _wrong_form(b, j, form), None)
        for other in LOSSES.values():
            if other.name != loss.name and other.fused_with in (None, f):
                add("other_loss", b.output_delta_of(other()),
                    f"{{t}} matches the output error of {other.name}, dL/dy_hat = {other.dz_text} through f'(a_{j}); "
                    f"this network's loss is {loss.name}: "
                    + (f"with its {f} output, delta_{j} = (y_hat - y)/B" if loss.is_fused(f)
                       else f"dz_{j} = {loss.dz_text}, then delta_{j} = dz_{j} * f'(a_{j})"), None)
        return out
    above = b.delta[j]
    add("own_W", b.down(j, above, "own_W"),
        f"{{t}} matches the question's recurrence k_{j} = (k_{j + 1}^T W_{j}) o f'(a_{j}): it uses the layer's own "
        f"W_{j} where W_{j + 1}^T belongs. The error reaches layer {j} through the weights of the layer above: "
        f"k_{j} = (W_{j + 1}^T k_{j + 1}) o f'(a_{j}) in columns, delta_{j} = (delta_{j + 1} W_{j + 1}) * f'(a_{j}) "
        f"in rows. W_{j + 1}^T is ({n[j]}, {n[j + 1]}): it takes the {n[j + 1]} errors of layer {j + 1} back to "
        f"the {n[j]} units of layer {j}; W_{j} ({n[j]}, {n[j - 1]}) only fits because the layers have equal widths",
        "own_W")
    add("no_T", b.down(j, above, "no_T"),
        f"{{t}} matches k_{j} = (W_{j + 1} k_{j + 1}) o f'(a_{j}): the transpose is missing in columns (in rows: "
        f"delta_{j + 1} W_{j + 1}^T has one too many). W_{j + 1} maps layer {j} to layer {j + 1}; the error goes "
        f"back through its transpose: k_{j} = (W_{j + 1}^T k_{j + 1}) o f'(a_{j}), "
        f"delta_{j} = (delta_{j + 1} W_{j + 1}) * f'(a_{j}) in rows", "no_T")
    add("updated_W", b.down(j, above, "updated_W"),
        f"{{t}} matches delta_{j} computed with the already-updated W_{j + 1} - lr dW_{j + 1} (lr = {b.lr:g}): the "
        f"backward pass uses the weights of the forward pass; update every W only after every delta is computed"
        if b.lr else "", None)
    add("no_fprime", b.down(j, above, "no_fprime"),
        f"{{t}} matches dz_{j} in place of delta_{j}: the factor f'(a_{j}) is missing; use "
        f"delta_{j} = dz_{j} * f'(a_{j}), not dz_{j}", "no_fprime")
    add("fprime_z", b.down(j, above, "fprime_z"),
        f"{{t}} matches f' evaluated at the output z_{j}: f'(z_{j}) is there where f'(a_{j}) belongs (f' is "
        f"taken at the pre-activation a_{j}, even when its formula is written with z)", "fprime_z")
    add("fprime_twice", b.down(j, above, "fprime_twice"),
        f"{{t}} matches f'(a_{j}) applied twice: delta_{j} = dz_{j} * f'(a_{j}) uses it once", "fprime_twice")
    for form in b.act(j).wrong_derivatives:
        add("wrong_derivative", b.through_f(j, above @ b.W[j], form), _wrong_form(b, j, form), None)
    for other in (j + 1, j - 1):  # f' of a neighbour layer: its shape fits only for equal widths
        fp = b.fprime(other) if 1 <= other <= b.L and n[other] == n[j] else None
        if fp is not None:
            add("fprime_wrong_layer", (above @ b.W[j]) * fp,
                f"{{t}} matches delta_{j} = dz_{j} * f'(a_{other}): f' is taken at layer {other}'s pre-activation; "
                f"delta_{j} = dz_{j} * f'(a_{j}) takes it at layer {j}'s own a_{j} (the shapes only fit because "
                f"layers {j} and {other} have equal widths)", None)
    return out


def _wrong_form(b: Batch, j: int, form: tuple) -> str:
    f = b.act(j)
    return (f"{{t}} matches {f.name}'(a_{j}) written as {form[0]}: {form[1]}; the right formula is "
            f"{f.name}'(a_{j}) = {f.derivative_text} with z_{j} = {f.name}(a_{j})")


def explain_scale(c: float, B: int, loss: str, K: int = 1) -> str | None:
    """Why a gradient is c times the true one: sign, the factor 2 of the square, powers of B, 1/K."""
    named = mistakes.explain_factor(c, B, K, loss)
    return "; ".join(named[0]) if named and named[0] else None


# -- verdicts ----------------------------------------------------------------------------------------
def _verdict(student: np.ndarray, true: np.ndarray, diagnose, name: str, shape_note: str,
             per_sample: np.ndarray | None = None, accepted=()) -> dict:
    """Compare one tensor; a wrong shape is compared after transposing/reshaping when that aligns values.

    ``diagnose(arr)`` names the mistake for values aligned to ``true``'s shape (or None); ``accepted``
    are (gradient, note) pairs that count as right too (another subgradient at a kink)."""
    v = {"expected_shape": list(true.shape), "shape": list(student.shape), "max_abs_error": None,
         "relative_error": None, "passed": False, "hint": None, "kind": None, "kinds": []}

    def named(text, kinds):
        v.update(hint=text, kinds=list(kinds), kind=mistakes.join(list(kinds)))
    wrong_shape = f"wrong shape {_shape(student.shape)}, expected {_shape(true.shape)}: {shape_note}"

    def right(arr):
        if relative_error(arr, true) <= TOLERANCE:
            return ""
        return next((note for g, note in accepted if relative_error(arr, g) <= TOLERANCE), None)

    def errors(arr):
        v.update(max_abs_error=float(np.max(np.abs(arr - true))) if true.size else 0.0,
                 relative_error=relative_error(arr, true))

    if student.shape == true.shape:
        errors(student)
        note = right(student)
        if note is not None:
            v.update(passed=True, hint=note or None)
        elif student.ndim == 2 and student.T.shape == true.shape and right(student.T) is not None:
            named(f"transposed: you gave {name}^T; {shape_note}", ["transposed"])
        else:
            found = diagnose(student)
            if found:
                named(*found)
        return v
    if per_sample is not None and student.shape == per_sample.shape and relative_error(student, per_sample) <= TOLERANCE:
        named(f"you gave delta per sample, shape {_shape(student.shape)}; {name} sums delta over "
              f"the batch rows, shape {_shape(true.shape)}", ["per_sample"])
        return v
    if student.ndim == 2 and student.T.shape == true.shape and true.ndim == 2:
        aligned, how = student.T, f"transposed: you gave {name}^T, shape {_shape(student.shape)}; {shape_note}"
        how_kind = "transposed"
    elif student.size == true.size:
        aligned, how, how_kind = student.reshape(true.shape), wrong_shape, "wrong_shape"
    else:
        named(wrong_shape, ["wrong_shape"])
        return v
    ok = right(aligned) is not None
    found = None if ok else diagnose(aligned)
    if ok or found:
        errors(aligned)
        named(f"{how}. Aligned to {_shape(true.shape)}: " + ("the values are right" if ok else found[0]),
              [how_kind] + ([] if ok else found[1]))
    else:
        named(wrong_shape, ["wrong_shape"])
    return v


def _kink_passes(b: Batch) -> list[tuple[list, list, str]]:
    """(dW per layer, db per layer, note) of the other subgradient choices where some a_i sits on a kink."""
    at = {i: np.isin(b.a[i - 1], b.act(i).kinks) for i in range(1, b.L + 1) if b.act(i).kinks}
    at = {i: m for i, m in at.items() if m.any()}
    if not at:
        return []
    where = ", ".join(f"a_{i} has {int(m.sum())} entr{'y' if m.sum() == 1 else 'ies'} at "
                      f"{b.act(i).name}'s kink {b.act(i).kinks[0]:g}" for i, m in sorted(at.items()))
    out = []
    for side in (0, 1, 0.5):
        deltas = {}
        for i in range(b.L, 0, -1):
            if i == b.L:
                d = b.delta[i - 1].copy() if b.net.loss.is_fused(b.act(i).name) else \
                    b.act(i).backward(b.a[i - 1], b.z[i], b.dz[i - 1])
                dz = b.dz[i - 1]
            else:
                dz = deltas[i + 1] @ b.W[i]
                d = b.act(i).backward(b.a[i - 1], b.z[i], dz)
            if i in at and not (i == b.L and b.net.loss.is_fused(b.act(i).name)):
                lo, hi = b.act(i).slopes(b.act(i).kinks[0])
                d = np.where(at[i], dz * (lo + side * (hi - lo)), d)
            deltas[i] = d
        g = [b.grads(i, deltas[i]) for i in range(1, b.L + 1)]
        out.append(([x[0] for x in g], [x[1] for x in g],
                     f"{where}: f' jumps there and any subgradient between its one-sided slopes is right; "
                     f"this gradient takes f' = {'left slope' if side == 0 else 'right slope' if side == 1 else 'the midpoint'}"
                     " there"))
    return out


def _fit(arr: np.ndarray, base: np.ndarray, extra) -> float | None:
    """c with arr - extra = c * base (relative error <= TOLERANCE), closed form; None when none fits."""
    den = float(np.vdot(base, base))
    if den == 0.0 or not np.isfinite(den):
        return None
    c = float(np.vdot(arr - extra, base)) / den
    return c if relative_error(arr - extra, c * base) <= TOLERANCE else None


MAX_MISTAKES = 3
# the penalty gradient (rate W for l2, rate sign(W) for l1) with a wrong factor, by kind
PENALTY_FACTORS = {"penalty_double": 2.0, "penalty_half": 0.5}


def _penalty_term(b: Batch, i: int, key: str) -> np.ndarray | None:
    """The shape of a penalty gradient added where none belongs: W_i / b_i (l2) or their signs (l1)."""
    p = b.W[i - 1] if key == "dW" else b.net.dense[i - 1].params.get("b")
    if p is None:
        return None
    p = np.asarray(p, np.float64)
    return np.sign(p) if b.net.regularization == "l1" else p


def _fit2(arr: np.ndarray, g: np.ndarray, p: np.ndarray) -> tuple[float, float] | None:
    """(c, lam > 0) with arr = c g + lam p (relative error <= TOLERANCE), by least squares; None otherwise."""
    # the 2x2 normal equations from dot products: no (entries, 2) copy of the student's array
    gg, gp, pp = float(np.vdot(g, g)), float(np.vdot(g, p)), float(np.vdot(p, p))
    det = gg * pp - gp * gp
    if not det > 1e-12 * gg * pp:
        return None
    ga, pa = float(np.vdot(g, arr)), float(np.vdot(p, arr))
    c, lam = (pp * ga - gp * pa) / det, (gg * pa - gp * ga) / det
    ok = lam > 1e-12 and relative_error(arr, c * g + lam * p) <= TOLERANCE
    return (float(c), float(lam)) if ok else None


def _penalty_text(b: Batch, i: int, key: str, kind: str, t: str, lam: float | None) -> str:
    reg, rate = b.net.regularization, b.net.reg_rate
    term = f"{'lambda sign(W)' if reg == 'l1' else 'lambda W'}_{i}"
    if kind == "penalty_missing":
        return f"{t} matches delta_{i}^T z_{i - 1} alone: the {reg} penalty gradient ({term}) is missing"
    if kind == "penalty_double":
        return (f"{t} carries the {reg} penalty gradient twice over, 2 {term}: the penalty "
                + ("lambda/2 sum W^2 has the gradient lambda W" if reg == "l2" else "lambda sum |W| has the gradient lambda sign(W)"))
    if kind == "penalty_half":
        return (f"{t} carries half the {reg} penalty gradient, {term} / 2: the penalty "
                + ("lambda/2 sum W^2 has the gradient lambda W (the 1/2 cancels the square's 2)" if reg == "l2"
                   else "lambda sum |W| has the gradient lambda sign(W)"))
    if kind == "penalty_batch":
        return (f"{t} carries the {reg} penalty gradient divided by B = {b.B}, {term} / B: the penalty is added "
                f"once to the mean loss, so its gradient {term} has no 1/B")
    what = f"b_{i}" if key == "db" else f"W_{i}"
    if reg == "l1":
        what = f"sign({what})"
    where = ("the bias is not penalised, so db_i has no penalty term" if key == "db" and reg != "none"
             else "this network has no penalty, so dW has no penalty term" if reg == "none"
             else "")
    return (f"{t} has a penalty gradient {lam:.4g} {what} added where it does not belong: "
            + where.replace("db_i", f"db_{i}"))




def compose(b: Batch, i: int, key: str, arr: np.ndarray, candidates: list[Mistake]):
    """The explanation with the fewest mistakes (at most MAX_MISTAKES) that reproduces ``arr``.

    Each structural mistake of the step (or none) is combined with a missing penalty (dW of a penalised
    net) and a constant factor solved in closed form and named as -1, 2^e, B^k, K^m. Ties prefer a
    structural explanation; on a one-entry tensor a factor counts only when it has a name.
    Returns (text, kinds, mistake, c) or None. Work: O(len(candidates)) fits of one tensor each."""
    k = 0 if key == "dW" else 1
    pen = b.pen[i - 1] if key == "dW" else 0.0
    has_pen = key == "dW" and bool(np.any(b.pen[i - 1]))
    K, loss, t = b.net.sizes[-1], b.net.loss.name, f"{key}_{i}"
    best = None
    for order, m in enumerate([None, *candidates]):
        g = (b.dW[i - 1] if k == 0 else b.db[i - 1]) if m is None else b.grads(i, m.deltas[i])[k]
        data = g - pen if k == 0 else g
        bases = [(data, pen, [], None)] + ([(data, 0.0, ["penalty_missing"], None), (g, 0.0, [], None)]
                                           if has_pen else [])
        factors = {**PENALTY_FACTORS, "penalty_batch": 1.0 / b.B} if b.B > 1 else PENALTY_FACTORS
        bases += [(data, f * pen, [pk], None) for pk, f in factors.items()] if has_pen else []
        extra_term = _penalty_term(b, i, key) if arr.size >= 3 and not has_pen else None
        if extra_term is not None:
            fit = _fit2(arr, g, extra_term)
            if fit is not None:
                bases.append((g, fit[1] * extra_term, ["penalty_extra"], fit[1]))
        for base, extra, pk, lam in bases:
            c = _fit(arr, base, extra)
            named = None if c is None else mistakes.explain_factor(c, b.B, K, loss, named_only=arr.size == 1)
            if named is None:
                continue
            kinds = ([m.kind] if m else []) + pk + named[1]
            # another loss's output error replaces the whole formula: it weighs as two mistakes, so that
            # on sigmoid + MSE "(y_hat - y)/B" reads as the 2 and f' left out, not as bce's error
            cost = len(kinds) + ("other_loss" in kinds)
            if not kinds or cost > MAX_MISTAKES:
                continue
            rank = (cost, bool(named[1]) and m is None, bool(named[1]), order)
            if best is None or rank < best[0]:
                best = (rank, kinds, m, c, named[0], pk, lam)
    if best is None:
        return None
    _, kinds, m, c, phrases, pk, lam = best
    parts = ([m.hint.format(t=t if not phrases else f"{t}, up to the factor {c:.4g} named below,")] if m else [])
    if pk:
        parts.append(_penalty_text(b, i, key, pk[0], t, lam))
    parts += [f"{t} {p}" for p in phrases]
    text = parts[0] if len(parts) == 1 else (f"{t} combines {len(parts)} mistakes: "
                                             + "; ".join(f"({n}) {p}" for n, p in enumerate(parts, 1)))
    return text, kinds, m, c


def _db_reduction(arr: np.ndarray, delta: np.ndarray, true: np.ndarray, i: int) -> tuple[str, str] | None:
    """(kind, hint) when db_i is delta_i (B, n) reduced over the wrong axis or over every entry; None otherwise.

    Only a wrong db is named: with n_i = 1 (or values that are right) there is nothing to say."""
    B, n = delta.shape
    if n == 1 or (arr.size == true.size and relative_error(arr.ravel(), true.ravel()) <= TOLERANCE):
        return None
    right = f"db_{i} = delta_{i}.sum(axis=0), one entry per unit of layer {i}, shape ({n},)"
    forms = (("db_every_entry", delta.sum(), f"db_{i} matches delta_{i}.sum(), a scalar: the sum runs over every "
              f"entry, the units too; sum over the batch rows only: {right}"),
             ("db_every_entry_mean", delta.mean(), f"db_{i} matches delta_{i}.mean(), a scalar: the mean runs over "
              f"every entry; sum over the batch rows only (delta_{i} already holds the 1/B): {right}"),
             ("db_wrong_axis", delta.sum(axis=1), f"db_{i} matches delta_{i}.sum(axis=1), shape ({B},): the sum "
              f"runs over the {n} units of each sample, the wrong axis; sum over the batch rows: {right}"),
             ("db_wrong_axis_mean", delta.mean(axis=1), f"db_{i} matches delta_{i}.mean(axis=1), shape ({B},): a "
              f"mean over the {n} units of each sample, the wrong axis and a 1/{n}; sum over the batch rows: {right}"))
    for kind, value, hint in forms:
        value = np.asarray(value).ravel()
        if arr.size == value.size and relative_error(arr.ravel(), value) <= TOLERANCE:
            return kind, hint
    return None


class Diagnosis:
    """The true gradients of a batch, the mistakes' gradients, and verdicts on a student's arrays."""

    def __init__(self, net: Network, X, y, lr: float | None = None):
        """``lr``: the model's learning rate, to recognise a delta computed with the already-updated W."""
        self.b = Batch.of(net, X, y)
        self.b.lr = lr
        self.kinks = _kink_passes(self.b)
        self.entry: int | None = None
        self.entry_mistake: Mistake | None = None
        self._mistakes: dict[int, list[Mistake]] = {}

    def true(self, i: int, key: str) -> np.ndarray:
        return (self.b.dW if key == "dW" else self.b.db)[i - 1]

    def diverged(self) -> str | None:
        """Why nothing can be compared on this batch, when the model has diverged: its parameters, or its true
        activations and gradients (float64), are not finite. A relative error against them would be nan."""
        net = self.b.net
        if not np.isfinite(net.params).all():
            return ("the model has diverged: its parameters are not finite, so there is no true gradient to "
                    "compare with; reset the model or lower the learning rate, then check again")
        if not all(np.isfinite(a).all() for a in (*self.b.z, *self.b.delta, *self.b.dW, *self.b.db) if a is not None):
            return ("the model has diverged: its true gradients on this batch are not finite (its weights are so "
                    "large that the backward pass overflows), so nothing can be compared; reset the model or lower "
                    "the learning rate, then check again")
        return None

    def _diagnose_entry(self, i: int, key: str, record: bool = True):
        b = self.b
        pen = b.pen[i - 1] if key == "dW" else np.zeros_like(b.db[i - 1])
        data = (b.dW[i - 1] - b.pen[i - 1]) if key == "dW" else b.db[i - 1]
        t = f"{key}_{i}"

        def diagnose(arr):  # the mistakes are replayed only for a wrong gradient
            if i not in self._mistakes:
                self._mistakes[i] = _step_mistakes(b, i)
            found = compose(b, i, key, arr, self._mistakes[i])
            if found is None:
                return None
            text, kinds, m, c = found
            if record and (key == "dW" or self.entry_mistake is None):
                # a delta mistake (or a factor on dW) reaches the layers below; a db reduction or a
                # missing penalty does not
                carries = key == "dW" and not any(k.startswith("penalty_") for k in kinds)
                self.entry_mistake = Mistake(
                    mistakes.join(kinds), text, (m.deltas if m else b.carry(i, b.delta[i - 1], None)) if carries else {},
                    m.repeated if m and carries else None, c if carries else 1.0)
            return text, kinds
        return diagnose

    def _diagnose_below(self, i: int, key: str):
        j, m, b = self.entry, self.entry_mistake, self.b
        t = f"{key}_{i}"
        first = f"the error comes from above: layer {j} is wrong and every layer below it inherits its error, so fix layer {j} first"

        def diagnose(arr):
            k = 0 if key == "dW" else 1
            if m is not None and i in m.deltas:
                pen = b.pen[i - 1] if k == 0 else 0.0
                if relative_error(arr - pen, m.scale * (b.grads(i, m.deltas[i])[k] - pen)) <= TOLERANCE:
                    return f"{t} is what layer {j}'s mistake gives when carried down correctly: {first}", ["inherited"]
                if m.repeated and i in m.repeated and relative_error(
                        arr - pen, m.scale * (b.grads(i, m.repeated[i])[k] - pen)) <= TOLERANCE:
                    return (f"{t} is what the same wrong step gives when repeated at every layer from {j} down "
                            f"(here too: {SHORT[m.kind.split('+')[0]].format(i=i, up=i + 1)}): {first}",
                            ["inherited_repeated"])
            own = self._diagnose_entry(i, key, record=False)(arr)
            if own is not None:  # the layer's own step is wrong: its own mistake, not the one above
                return own
            if m is not None and i in m.deltas:
                return f"{t} is wrong, and {first}, then check again", ["unexplained"]
            return None
        return diagnose

    def verdict(self, i: int, key: str, arr: np.ndarray, expected: np.ndarray | None = None) -> dict:
        """The verdict on the student's dW_i or db_i; call top-down (layer L first) so layers below the
        entry point learn where it is. ``expected`` reshapes the truth (derive's columns: db as (n, 1))."""
        b, n = self.b, self.b.net.sizes
        true = self.true(i, key)
        k = 0 if key == "dW" else 1
        accepted = [(p[k][i - 1], note) for *p, note in self.kinks]
        if expected is not None:
            true = true.reshape(expected)
            accepted = [(g.reshape(expected), note) for g, note in accepted]
        if key == "dW":
            note = f"W_{i} is (out, in) = (n_{i}, n_{i - 1}) = ({n[i]}, {n[i - 1]}) and dW_{i} has the shape of W_{i}"
        else:
            note = f"b_{i} has n_{i} = {n[i]} entries and db_{i} has the shape of b_{i}"
        base = self._diagnose_entry(i, key) if self.entry in (None, i) else self._diagnose_below(i, key)

        def diagnose(aligned):
            return base(aligned.reshape(self.true(i, key).shape))

        if key == "dW" and b.net.bias and arr.ndim == 2 and arr.shape == (true.shape[0], true.shape[1] + 1) \
                and expected is None and relative_error(arr[:, :-1], true) <= TOLERANCE \
                and relative_error(arr[:, -1], b.db[i - 1]) <= TOLERANCE:
            return {"expected_shape": list(true.shape), "shape": list(arr.shape), "passed": False,
                    "max_abs_error": float(np.max(np.abs(arr[:, :-1] - true))),
                    "relative_error": relative_error(arr[:, :-1], true), "kind": "bias_column",
                    "kinds": ["bias_column"],
                    "hint": f"dW_{i} holds [dW_{i} | db_{i}]: the bias is stored as an extra weight column (an input "
                            f"fixed at 1); both parts are right, but here b_{i} is its own parameter: give dW_{i} "
                            f"of shape {_shape(true.shape)} and db_{i} of shape ({n[i]},) separately"}
        if key == "db":
            found = _db_reduction(arr, b.delta[i - 1], true, i)
            if found is not None:
                if self.entry is None:
                    self.entry = i
                return {"expected_shape": list(true.shape), "shape": list(arr.shape), "passed": False,
                        "max_abs_error": None, "relative_error": None, "hint": found[1], "kind": found[0],
                        "kinds": [found[0]]}
        v = _verdict(arr, true, diagnose, f"{key}_{i}", note, b.delta[i - 1] if key == "db" else None, accepted)
        if not v["passed"] and self.entry is None:
            self.entry = i
        return v


def check_student(net: Network, X, y, layers: list[dict], lr: float | None = None) -> dict:
    """Verdicts for the student's dW_i / db_i (list index 0 is layer 1) against a backward pass on (X, y).

    dW/db may be any nested list or array: a wrong shape gets a hint, not an error. Returns
    {"passed", "first_error": {"layer", "target", "message"} | None, "layers": [{"layer", "dW", "db"}]}
    where first_error is the entry point (the highest wrong layer). Raises ValueError for structurally
    invalid input (not numbers, ragged, non-finite, unknown keys, db without bias, too many layers)."""
    if not isinstance(layers, (list, tuple)):
        raise ValueError("layers must be a list with one {'dW'?, 'db'?} object per layer, starting at layer 1")
    if len(layers) > net.n_layers:
        raise ValueError(f"got gradients for {len(layers)} layers but the network has only {net.n_layers} "
                         f"(layers 1..{net.n_layers}, the output layer last)")
    B = np.asarray(X).shape[0] if np.ndim(X) else 1
    arrays = []
    for i, given in enumerate(layers, start=1):
        if not isinstance(given, dict):
            raise ValueError(f"layer {i}: expected an object with 'dW' and/or 'db'")
        unknown = set(given) - {"dW", "db"}
        if unknown:
            raise ValueError(f"layer {i}: unknown key(s) {sorted(unknown)}; give 'dW' and/or 'db'")
        given = {k: v for k, v in given.items() if v is not None}
        if "db" in given and not net.bias:
            raise ValueError(f"layer {i}: this network has no bias, so there is no db_{i}")
        limit = MAX_ENTRIES_FACTOR * max(B * net.sizes[i], net.sizes[i] * net.sizes[i - 1])
        arrays.append({k: as_array(v, f"layer {i} {k}", limit) for k, v in given.items()})
    return verdicts(Diagnosis(net, X, y, lr), arrays)


def verdicts(d: Diagnosis, arrays: list[dict], expected: dict | None = None, extra: dict | None = None) -> dict:
    """Verdicts top-down on {layer index 0..: {"dW"?, "db"?: array}}; ``extra`` adds keys to each layer."""
    out: dict[int, dict] = {}
    first = None
    for i in range(len(arrays), 0, -1):
        entry = {"layer": i, "dW": None, "db": None, **((extra or {}).get(i, {}))}
        for key in ("dW", "db"):
            if key in arrays[i - 1]:
                shape = (expected or {}).get((i, key))
                v = entry[key] = d.verdict(i, key, arrays[i - 1][key], shape)
                if not v["passed"] and first is None:
                    first = {"layer": i, "target": f"{key}[{i}]", "kind": v["kind"] or "unexplained",
                             "kinds": v["kinds"] or ["unexplained"],
                             "message": v["hint"] or f"{key}_{i} differs from the true gradient "
                                                     f"(relative error {v['relative_error']:.3g})"}
        out[i] = entry
    given = [v for e in out.values() for v in (e["dW"], e["db"]) if v is not None]
    diverged = d.diverged() if first is not None else None
    if diverged:  # not the student's mistake: say so instead of "relative error nan"
        first = {**first, "message": diverged, "kind": "diverged", "kinds": ["diverged"]}
    return {"passed": bool(given) and all(v["passed"] for v in given), "first_error": first,
            "layers": [out[i] for i in range(1, len(arrays) + 1)]}
