"""Your backward pass as equations: evaluate a student's backprop written in a small NumPy-like
language, layer by layer from the top, and say where it goes wrong and why.

Interface:
- ``derive(net, X, y, equations, convention, bounds, cancelled)`` -> {"passed", "first_error": {"layer", "target",
  "kind", "message"} | None, "layers": [{"layer", "dW", "db", "steps": [{"target", "expr", "shape": list |
  None, "error": str | None}]}]}; target strings are concrete ("delta[2]", "dW[3]"); in columns db
  is compared as a column (n, 1) and "shape" is one sample's.
- DeriveSyntaxError(index, position, message) also for more than bounds.max_equations equations,
  an expr over bounds.max_expr_chars characters or MAX_NODES parts, a number over 1e15, and a
  target naming a layer outside 1..L. ValueError for a convention other than "rows" / "columns".
- QUESTION_EQUATIONS[convention] (the one-click example), CORRECT_EQUATIONS[convention] (MSE) and
  ``correct_equations(net, convention)`` (this net's loss and output, db only with a bias).

Language: app/engine/language.py (parse, the spellings, DeriveSyntaxError; every name is importable from
here too). It is parsed with ``ast`` against a whitelist, never ``eval``: W[k], b[k], a[k], z[k], delta[k],
y, y_hat, B, L; + - * / @ ** .T; f, fprime, sum, mean, outer, the activations by name; NumPy's spellings
(np.dot, x.sum(axis=0), ...) and the question's notation (W^T, W', f'(a), ⊙, ⊗).
Targets: delta[i], dW[i], db[i] for every layer, or for one layer: delta[L], delta[L-1], dW[2]...;
a named layer's equation overrides the general one there.

Conventions:
- "rows": the engine's batch notation, z[k] and delta[k] are (B, n_k), b[k] is (n_k,); dW and db
  are compared as given (dW = delta[i].T @ z[i-1] sums over the rows; delta[L] carries the 1/B).
- "columns": the question's notation, one sample as a column: z[k], a[k], delta[k], b[k] are
  (n_k, 1), y and y_hat (K, 1). Each equation is evaluated once, every sample at once as a stacked
  axis, and dW, db averaged over the samples, as the loss is: delta[L] is the per-sample error,
  2 (y_hat - y) * f'(a_L) for MSE.
Elementwise operations need equal shapes, as in the mathematics: no broadcasting, apart from a
scalar (a number, B, L or a 1x1 value) and, in rows, a bias (n,) added to every row of (B, n).

Errors: a syntax error or a name outside the language raises DeriveSyntaxError(index, position,
message). A shape error is the student's mathematics, not a bad request: it is reported in the
result's first_error with the operands and their shapes, and a repair when one is found
(app/engine/repair.py: the smallest subexpression whose right counterpart gives the right values; its code
in the step's and first_error's "kind").

Bounds (app/engine/bounds.py; the server sets them from app/config.py): before each value is made its size is
computed from the shapes for the whole batch. One larger than any step of a backward pass needs
(BUDGET entries, or twice the batch or the widest layer's square) is the student's mistake, a
StepError in the result. Past the call's bytes held at once or its operations (the CPU budget), the
derivation stops with DeriveOverBudget naming the equation; the repair search has as many operations
again and, past them, stops with SEARCH_STOPPED as its diagnosis. ``cancelled()`` is asked at every
step; once true, bounds.Cancelled.
"""
from __future__ import annotations

import re
from typing import Callable

import numpy as np

from .bounds import Bounds, Budget, OverBudget
from .checker import Diagnosis, verdicts
from .evaluate import Env, StepError, fmt
from .gradcheck import relative_error
from .network import Network
from .repair import SEARCH_STOPPED, concrete as _concrete, matches as _matches, put, repairs, run as _run  # noqa: F401

from .language import ARRAYS, FUNCTIONS, MAX_NODES, SCALARS, TARGETS, DeriveSyntaxError, parse  # noqa: F401

CONVENTIONS = ("rows", "columns")

# The question's backward pass as its student wrote it (k_i is delta[i]); the one-click example.
# In columns the row vector k_{i+1}^T W_i is transposed back to a column, as the student's 1-D code did.
QUESTION_EQUATIONS = {
    "columns": [
        {"target": "delta[L]", "expr": "2 * (y_hat - y) * fprime(a[L])"},
        {"target": "delta[L-1]", "expr": "delta[L] * (W[L].T * fprime(a[L-1]))"},
        {"target": "delta[i]", "expr": "(delta[i+1].T @ W[i]).T * fprime(a[i])"},
        {"target": "dW[i]", "expr": "outer(delta[i], z[i-1])"},
        {"target": "db[i]", "expr": "delta[i]"},
    ],
    "rows": [
        {"target": "delta[L]", "expr": "2 * (y_hat - y) / B * fprime(a[L])"},
        {"target": "delta[L-1]", "expr": "(delta[L] @ W[L]) * fprime(a[L-1])"},
        {"target": "delta[i]", "expr": "(delta[i+1] @ W[i]) * fprime(a[i])"},
        {"target": "dW[i]", "expr": "delta[i].T @ z[i-1]"},
        {"target": "db[i]", "expr": "sum(delta[i], axis=0)"},
    ],
}
# The right backward pass for MSE (any activation but softmax), in both notations.
CORRECT_EQUATIONS = {
    "columns": [
        {"target": "delta[L]", "expr": "2 * (y_hat - y) * fprime(a[L])"},
        {"target": "delta[i]", "expr": "(W[i+1].T @ delta[i+1]) * fprime(a[i])"},
        {"target": "dW[i]", "expr": "delta[i] @ z[i-1].T"},
        {"target": "db[i]", "expr": "delta[i]"},
    ],
    "rows": [
        {"target": "delta[L]", "expr": "2 * (y_hat - y) / B * fprime(a[L])"},
        {"target": "delta[i]", "expr": "(delta[i+1] @ W[i+1]) * fprime(a[i])"},
        {"target": "dW[i]", "expr": "delta[i].T @ z[i-1]"},
        {"target": "db[i]", "expr": "sum(delta[i], axis=0)"},
    ],
}


def correct_equations(net: Network, convention: str) -> list[dict]:
    """CORRECT_EQUATIONS with delta[L] for this network's loss and output (fused: (y_hat - y)/B),
    without db for a network without bias."""
    eqs = [dict(e) for e in CORRECT_EQUATIONS[convention] if net.bias or not e["target"].startswith("db")]
    loss, out = net.loss, net.activation_names[-1]
    per_sample = convention == "columns"
    if loss.is_fused(out):
        eqs[0]["expr"] = "y_hat - y" if per_sample else "(y_hat - y) / B"
    elif loss.name != "mse":  # dL/dy_hat from the loss's own export snippet (it is in the language)
        eqs[0]["expr"] = f"{'B * ' if per_sample else ''}{loss.dz_code} * fprime(a[L])"
    return eqs


# -- the derivation ---------------------------------------------------------------------------------------
def _pick(parsed, L: int) -> dict:
    """(kind, layer) -> (tree, expr, index): a named layer's equation overrides the general one.

    Raises DeriveSyntaxError for a target naming a layer outside 1..L."""
    out, named = {}, {}
    for kind, spec, tree, expr, index in parsed:
        if spec == "i":
            for i in range(1, L + 1):
                out.setdefault((kind, i), (tree, expr, index))
            continue
        k = _layer(spec, L)
        if not 1 <= k <= L:
            raise DeriveSyntaxError(index, 0, f"target {kind}[{spec}] names layer {k}; this network has layers 1..{L}")
        named[(kind, k)] = (tree, expr, index)
    out.update(named)
    return out


def _layer(spec: str, L: int) -> int:
    """The layer a named target's index means on an L-layer net: L, L-k or a number (not i)."""
    return L if spec == "L" else L - int(spec[2:]) if spec.startswith("L") else int(spec)


def _unused(parsed, L: int, bias: bool) -> list[dict]:
    """[{"index", "target", "expr", "reason"}] for each equation that no layer of this net evaluates.

    A general target (delta[i]) is unused when named ones (delta[L], delta[L-1]) cover every layer; a
    named one when a later equation names the same layer; any db without biases. A pass must never hide
    an equation that was not checked (a mistake in it would not show on this net)."""
    used, named, general = {}, {}, {}
    for kind, spec, _tree, _expr, index in parsed:
        if spec == "i":
            general.setdefault(kind, index)
        else:
            named.setdefault(kind, {})[_layer(spec, L)] = index
    for kind, spec, _tree, expr, index in parsed:
        target = f"{kind}[{spec}]"
        reason = None
        if kind == "db" and not bias:
            reason = f"this network has no biases, so {target} was not evaluated"
        elif spec == "i" and general[kind] != index:
            reason = f"an earlier {kind}[i] equation gives every layer's {kind}; the first one counts"
        elif spec == "i" and all(k in named.get(kind, {}) for k in range(1, L + 1)):
            specs = [s for k2, s, *_ in parsed if k2 == kind and s != "i"]
            names = " and ".join(dict.fromkeys(f"{kind}[{s}]" for s in specs))
            reason = (f"every layer's {kind} is given by {names} on this {L}-layer net "
                      f"({L - 1} hidden layer{'' if L == 2 else 's'}), so {target} was not evaluated "
                      f"and a mistake in it cannot show here")
            offsets = {s for s in specs if s == "L" or re.fullmatch(r"L-\d+", s)}
            if offsets == set(specs):  # only L-relative layers: the general one applies on deeper nets
                m = max(0 if s == "L" else int(s[2:]) for s in offsets) + 1
                reason += (f"; it applies from layer L-{m} down, on nets with {m} or more hidden layers")
        elif spec != "i" and named[kind][_layer(spec, L)] != index:
            reason = (f"a later equation also gives {kind}[{_layer(spec, L)}] and overrides this one "
                      f"(the last one counts)")
        if reason:
            used[index] = {"index": index, "target": target, "expr": expr, "reason": reason}
    return [used[k] for k in sorted(used)]


BUDGET = 1 << 21  # entries (16 MB in float64) any value may have; more when the batch or the net needs them


class DeriveOverBudget(Exception):
    """Equation ``index`` (its ``target`` at ``layer``) would take the call past its ``resource`` bound
    ("bytes": Bounds.max_bytes, "cost": Bounds.max_cost); nothing past it was made."""

    def __init__(self, index: int, layer: int, target: str, expr: str, over: OverBudget):
        unit = "bytes of values at once" if over.resource == "bytes" else "operations (multiply-adds and entries)"
        super().__init__(f"layer {layer}, {target} = {expr}: {over.what} would take this derivation to "
                         f"{over.needed} {unit}; the limit is {over.limit}")
        self.index, self.layer, self.target, self.resource = index, layer, target, over.resource


def derive(net: Network, X, y, equations: list[dict], convention: str = "rows", bounds: Bounds | None = None,
           cancelled: Callable[[], bool] | None = None) -> dict:
    """Evaluate the student's backward pass top-down on (X, y) and check each layer's dW and db.

    Bounded by ``bounds`` (default: Bounds.default()): the equations' count and length, the bytes of the
    values held at once and the operations done (each checked from the shapes before a value is made;
    the repair search has as many operations again), and stopped once ``cancelled()`` is true.

    Returns {"passed", "first_error": {"layer", "target", "message"} | None,
    "layers": [{"layer", "dW": Verdict | None, "db": Verdict | None, "steps": [{"target", "expr", "shape",
    "error"}]}], "unused": [{"index", "target", "expr", "reason"}]} (Verdict as in checker.check_student;
    "unused" lists the equations no layer of this net evaluates, see _unused). Raises DeriveSyntaxError for an
    equation outside the language, ValueError for another convention, DeriveOverBudget past the bytes or
    operations of ``bounds``, and bounds.Cancelled once cancelled."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")
    bounds = bounds or Bounds.default()
    parsed = parse(equations, bounds)
    d = Diagnosis(net, X, y)
    b, L, columns = d.b, d.b.L, convention == "columns"
    eqs = _pick(parsed, L)  # first: a target naming a layer outside 1..L is refused before any work
    unused = _unused(parsed, L, net.bias)
    diverged = d.diverged()
    if diverged:  # no truth to compare with: every step would be "not finite" or "relative error nan"
        return {"passed": False, "first_error": {"layer": L, "target": f"delta[{L}]", "kind": "diverged",
                                                 "message": diverged},
                "layers": [{"layer": i, "dW": None, "db": None, "steps": []} for i in range(1, L + 1)],
                "unused": unused}
    y64 = np.asarray(y, np.float64).reshape(b.B, -1)
    # the true delta as the equations see it: per sample without the 1/B in columns
    true_delta = {i: (b.delta[i - 1] * b.B)[:, :, None] if columns else b.delta[i - 1] for i in range(1, L + 1)}
    deltas, steps, arrays, first = {}, {}, {}, None
    widest = max(net.sizes)
    env = Env(b, columns, deltas, L, y64, max(BUDGET, 2 * b.B * widest, 2 * widest * widest),
               Budget(bounds.max_bytes, bounds.max_cost, cancelled))
    for i in range(L, 0, -1):
        steps[i], arrays[i] = [], {}
        for kind in TARGETS:
            if kind == "db" and not net.bias or (kind, i) not in eqs:
                continue
            tree, expr, index = eqs[(kind, i)]
            step = {"target": f"{kind}[{i}]", "expr": expr, "shape": None, "error": None}
            steps[i].append(step)
            try:
                val = _run(_concrete(tree, i, L), env, i, mean=kind != "delta")
                env.budget.keep(val.claimed)  # read by the layers below (delta) or checked at the end (dW, db)
            except OverBudget as e:
                raise DeriveOverBudget(index, i, f"{kind}[{i}]", expr, e) from None
            except StepError as e:
                step["error"] = str(e)
                if first is None:
                    fix, fix_kind = (repairs(tree, env, i, true_delta[i]) if kind == "delta" else None) or (None, None)
                    if fix_kind:
                        step["kind"] = fix_kind
                    first = {"layer": i, "target": f"{kind}[{i}]", "kind": fix_kind,
                             "message": f"layer {i}, {kind}[{i}] = {expr}: {e}" + (f". Diagnosis: {fix}" if fix else "")}
                break
            step["shape"] = list(val.shape)
            if not np.isfinite(val.arr).all():
                step["error"] = f"{kind}[{i}] has a value that is not finite (an overflow or a division by zero)"
                if first is None:
                    first = {"layer": i, "target": f"{kind}[{i}]", "kind": None,
                             "message": f"layer {i}, {kind}[{i}] = {expr}: {step['error']}"}
                break
            if kind == "delta":
                deltas[i] = val
                true = true_delta[i]
                if val.shape != (true.shape[1:] if columns else true.shape):
                    step["error"] = (f"delta[{i}] has shape {fmt(step['shape'])}; dL/da_{i} is "
                                     f"{fmt(true.shape[1:] if columns else true.shape)}")
                elif not _matches(val, true, columns):
                    error = relative_error(np.broadcast_to(val.arr, true.shape), true)
                    step["error"] = f"delta[{i}] differs from dL/da_{i} (relative error {error:.3g})"
                    fix, fix_kind = repairs(tree, env, i, true) or (None, None)
                    if fix:
                        step["error"] += f"; {fix}"
                    if fix_kind:
                        step["kind"] = fix_kind
            else:
                arrays[i][kind] = val.arr
        if i not in deltas and first is not None:
            break
    layers = [arrays.get(i, {}) for i in range(1, L + 1)]
    expected = {(i, "db"): (net.sizes[i], 1) for i in range(1, L + 1)} if columns else None
    result = verdicts(d, layers, expected, {i: {"steps": steps.get(i, [])} for i in range(1, L + 1)})
    if first is not None:  # the mathematics stopped: what was checked above stands, the rest is not passed
        result["passed"] = False
        checked = result["first_error"]
        result["first_error"] = checked if checked and checked["layer"] > first["layer"] else first
    elif result["first_error"] is not None:
        j = result["first_error"]["layer"]
        wrong = next((s for s in steps.get(j, []) if s["target"].startswith("delta") and s["error"]), None)
        if wrong:
            result["first_error"] = {**result["first_error"], "layer": j, "target": wrong["target"],
                                     "message": f"{wrong['error']}. {result['first_error']['message']}"}
            if wrong.get("kind"):
                result["first_error"]["kind"] = wrong["kind"]
    elif not any(arrays.values()):
        result["passed"] = False
        result["first_error"] = {"layer": L, "target": f"dW[{L}]", "kind": None,
                                 "message": "no equation for dW: nothing to check"}
    result["unused"] = unused
    return result
