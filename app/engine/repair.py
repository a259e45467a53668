"""The repair of a wrong equation: the smallest subexpression whose right counterpart makes delta[i] right.

Interface: ``repairs(tree, env, i, true_delta)`` -> (text, kind) | None. ``tree`` is the equation's parsed
tree (indices not yet resolved), ``true_delta`` dL/da_i as the derivation compares it. Candidates, for each
subexpression from the fewest AST nodes up: + and - swapped, a unary minus dropped, ``y - y_hat`` for
``y_hat - y``, the activation's derivative (Activation.derivative_expr) in place of a subexpression of the same
shape, a[k] and z[k] swapped, a factor dropped, a neighbour layer's W, a .T added or removed. ``kind`` is a
code of app/engine/mistakes.py.

Each try is one evaluation on ``env.budget.search()``; once the search's operations run out, the answer is
(SEARCH_STOPPED, None).
"""
from __future__ import annotations

import ast
import copy
import re

import numpy as np

from .bounds import OverBudget
from .checker import TOLERANCE
from .evaluate import Concrete, Env, StepError, Val, evaluate, mean_over_samples
from .gradcheck import relative_error

SEARCH_STOPPED = ("no repair was found before the search for one reached its CPU budget (as many operations as "
                  "the derivation's own)")


def concrete(tree, i: int, L: int) -> ast.Expression:
    """The equation's tree with every index resolved for layer i (a copy)."""
    return ast.fix_missing_locations(Concrete(i, L).visit(copy.deepcopy(tree)))


def run(tree, env: Env, i: int, mean: bool = False) -> Val:
    """Evaluate one equation, its tree made concrete for layer i, once for the whole batch.

    rows: the result as is. columns: every sample at once as stacked columns (B, ...), or (1, ...) for a
    value the same for every sample; with ``mean`` (dW and db) the mean over the samples, one sample's
    value, made without a (B, n, m) stack where the expression is linear in the samples
    (evaluate.mean_over_samples).
    On any exception the values made are given back to the budget."""
    env.layer, live = i, env.budget.live
    try:
        if not env.columns:
            return evaluate(tree.body, env)
        if mean:
            return mean_over_samples(tree.body, env)
        v = evaluate(tree.body, env)
        return v if v.batched else Val(v.arr[None], v.src, v.how, True, v.claimed)
    except BaseException:
        env.budget.live = live
        raise


def matches(v: Val, true: np.ndarray, columns: bool) -> bool:
    """Whether delta ``v`` has the true delta's shape and values."""
    if v.shape != (true.shape[1:] if columns else true.shape):
        return False
    return relative_error(np.broadcast_to(v.arr, true.shape) if columns else v.arr, true) <= TOLERANCE


def put(parent, field: str, val, old, new) -> None:
    """Put ``new`` where ``old`` is in parent.field (a node or a list of nodes)."""
    setattr(parent, field, [new if e is old else e for e in val] if isinstance(val, list) else new)


def _size(node) -> int:
    return sum(isinstance(n, ast.expr) for n in ast.walk(node))


def _ref(node, names=("a", "z", "W", "y", "y_hat")) -> str | None:
    """'a', 'z', 'W' for a[k], z[k], W[k] (k resolved), 'y'/'y_hat' for those names, else None."""
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and isinstance(node.slice, ast.Constant):
        return node.value.id if node.value.id in names else None
    return node.id if isinstance(node, ast.Name) and node.id in ("y", "y_hat") and node.id in names else None


def _swap_az(node):
    """A copy of node with every a[k] written z[k] and every z[k] written a[k]."""
    new = copy.deepcopy(node)
    for n in ast.walk(new):
        if _ref(n) in ("a", "z"):
            n.value = ast.Name("z" if n.value.id == "a" else "a", ast.Load())
    return new


def _factors(node) -> list:
    """The operands of a product chain, left to right: ((p * q) * r) -> [p, q, r]."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        return _factors(node.left) + _factors(node.right)
    return [node]


def _product(parts):
    out = parts[0]
    for p in parts[1:]:
        out = ast.BinOp(left=out, op=ast.Mult(), right=p)
    return out


def _derivative(f, i: int):
    """f'(a_i) as a tree in the derive language, or None when the activation has no short form."""
    if f.derivative_expr is None:
        return None
    text = re.sub(r"\b([az])\b", rf"\1[{i}]", f.derivative_expr)
    return ast.parse(text, mode="eval").body


def _candidates(n, f, i: int, L: int, parent=None):
    """(new node, kind) for each right counterpart tried in place of n, in the order of the catalogue."""
    if isinstance(n, ast.BinOp) and isinstance(n.op, (ast.Add, ast.Sub)):
        other = ast.Sub() if isinstance(n.op, ast.Add) else ast.Add()
        yield ast.BinOp(left=n.left, op=other, right=n.right), "plus_minus"
        if isinstance(n.op, ast.Sub) and {_ref(n.left), _ref(n.right)} == {"y", "y_hat"}:
            yield ast.BinOp(left=n.right, op=n.op, right=n.left), "sign"
    if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
        yield n.operand, "sign"
    deriv = _derivative(f, i)
    refs = {_ref(m) for m in ast.walk(n)}
    if deriv is not None and refs & {"a", "z"} and "delta" not in ast.unparse(n) \
            and ast.unparse(n) != ast.unparse(deriv) and not isinstance(n, ast.Call):
        yield deriv, "wrong_derivative"
    if refs & {"a", "z"}:
        yield _swap_az(n), "a_for_z"
    parts = _factors(n)
    if len(parts) > 1:
        for k in range(len(parts)):  # one factor dropped, or every factor after the first k
            for keep in ([p for j, p in enumerate(parts) if j != k], parts[:k]):
                if keep and len(keep) < len(parts):
                    yield _product(keep), "extra_factor"
    if _ref(n) == "W" and isinstance(n, ast.Subscript):
        k = n.slice.value
        for d in (1, -1):
            if 1 <= k + d <= L:
                yield (ast.Subscript(value=ast.Name("W", ast.Load()), slice=ast.Constant(k + d), ctx=ast.Load()),
                       "own_W" if k == i and d == 1 else "wrong_W")
    if isinstance(n, ast.Attribute) and n.attr == "T":
        yield n.value, "extra_T"
    if isinstance(n, (ast.Subscript, ast.Attribute)) and not (isinstance(parent, ast.Attribute) and parent.attr == "T"):
        yield ast.Attribute(value=n, attr="T", ctx=ast.Load()), "no_T" if _ref(n) == "W" else "transposed"


def _try(tree, search: Env, i: int, true_delta) -> bool | None:
    """Whether the tree gives delta[i]; None once the search's operations are spent."""
    try:
        got = run(ast.fix_missing_locations(tree), search, i)
        ok = matches(got, true_delta, search.columns)
        search.budget.release(got.claimed)
        return ok
    except StepError:
        return False
    except OverBudget as e:
        return None if e.resource == "cost" else False  # a try past the bytes left is not the repair


def _is_derivative(node, search: Env, i: int, f) -> bool:
    """Whether node's value is f'(a_i) (a sub-expression of the repaired equation)."""
    deriv = _derivative(f, i)
    if deriv is None:
        return False
    try:
        got = run(ast.fix_missing_locations(ast.Expression(body=copy.deepcopy(node))), search, i)
        want = run(ast.fix_missing_locations(ast.Expression(body=deriv)), search, i)
        search.budget.release(got.claimed)
        search.budget.release(want.claimed)
        shape = np.broadcast_shapes(got.arr.shape, want.arr.shape)
        return relative_error(np.broadcast_to(got.arr, shape), np.broadcast_to(want.arr, shape)) <= TOLERANCE
    except (StepError, OverBudget, ValueError):
        return False


def _parents(tree) -> dict:
    return {id(c): p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}


def _text(tree, n, new, kind: str, search: Env, i: int, f, softmax: bool) -> tuple[str, str]:
    """The repair as the student reads it, with its kind; the tree holds ``new`` in place of ``n``."""
    columns = search.columns
    if kind in ("own_W", "wrong_W", "no_T", "extra_T", "transposed"):
        why = ""
        if kind == "own_W":
            formula = (f"k_{i} = (W_{i + 1}^T k_{i + 1}) o f'(a_{i})" if columns else
                       f"delta_{i} = (delta_{i + 1} W_{i + 1}) * f'(a_{i})")
            why = (f" (the error reaches layer {i} through the weights of the layer above, W_{i + 1}, "
                   f"not through W_{i}: {formula})")
        return f"with {ast.unparse(new)} where you wrote {ast.unparse(n)}, delta[{i}] is right{why}", kind
    parent = _parents(tree).get(id(new))
    if kind == "a_for_z" and isinstance(parent, ast.Call) and ast.unparse(parent.func) == "fprime":
        return f"`{ast.unparse(n)}` should be `{ast.unparse(new)}`: f' is taken of the pre-activation a", "fprime_z"
    if kind == "extra_factor":
        dropped = ast.unparse(n)
        if softmax and "y_hat" in dropped:
            return (f"`{dropped}` should be `{ast.unparse(new)}`: softmax has a Jacobian, not an elementwise "
                    f"derivative, and with cross-entropy the output error is y_hat - y", "softmax_elementwise")
        if "fprime" in dropped:
            if i == search.b.L and search.b.net.loss.is_fused(f.name):
                return (f"`{dropped}` should be `{ast.unparse(new)}`: with {search.b.net.loss.name} and {f.name} "
                        f"the output's f' cancels, the output error is y_hat - y", "extra_fprime")
            return f"`{dropped}` should be `{ast.unparse(new)}`: f'(a_{i}) is counted once", "fprime_twice"
    old_whole, parents = n, _parents(tree)
    node = new
    while node is not None:  # the smallest expression around the repair that is f'(a_i): name the derivative
        if not isinstance(node, ast.Call) and _is_derivative(node, search, i, f):
            whole = ast.unparse(node)
            put_back = ast.unparse(node).replace(ast.unparse(new), ast.unparse(old_whole), 1) if node is not new \
                else ast.unparse(old_whole)
            return (f"`{put_back}` should be `{whole}`: {f.name}'(a) = {f.derivative_text} with z = {f.name}(a)",
                    "wrong_derivative")
        node = parents.get(id(node))
    return f"`{ast.unparse(n)}` should be `{ast.unparse(new)}`", kind


def repairs(tree, env: Env, i: int, true_delta) -> tuple[str, str | None] | None:
    """(text, kind) of the smallest subexpression's counterpart that makes delta[i] right, if any.

    Each try is one evaluation on the budget's search(); when the searches' CPU runs out, (SEARCH_STOPPED, None)."""
    b = env.b
    search = Env(b, env.columns, env.deltas, i, env.y, env.limit, env.budget.search())
    whole = concrete(tree, i, b.L)
    f, out = b.net.acts[i - 1].f, b.net.acts[-1].f
    softmax = i == b.L and out.name == "softmax"
    parents = _parents(whole)
    nodes = sorted((n for n in ast.walk(whole.body) if isinstance(n, ast.expr)
                    and not isinstance(parents.get(id(n)), ast.Subscript)), key=_size)  # W[2], not its W or 2
    for n in nodes:
        parent = parents.get(id(n), whole)
        for new, kind in _candidates(n, f, i, b.L, parent):
            field, val = next((fl, v) for fl, v in ast.iter_fields(parent)
                              if v is n or isinstance(v, list) and any(e is n for e in v))
            put(parent, field, val, n, new)
            try:
                ok = _try(whole, search, i, true_delta)
                if ok is None:
                    return SEARCH_STOPPED, None
                if ok:
                    return _text(whole, n, new, kind, search, i, f, softmax)
            finally:
                setattr(parent, field, val)
    return None
