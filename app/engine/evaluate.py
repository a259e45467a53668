"""The equations' interpreter: a canonical tree of the derive language (app/engine/language.py) evaluated
for the whole batch at once, each value sized from its shapes and charged to a Budget before it is made.

``evaluate(node, env)`` gives a node's value (Val) for every sample; ``mean_over_samples(node, env)`` its
mean over the samples (dW and db in columns) without a (B, n, m) stack where the expression is linear in
the samples. A StepError is the student's mathematics (shapes, a value larger than any step needs); a
bounds.OverBudget or bounds.Cancelled stops the evaluation.
"""
from __future__ import annotations

import ast

import numpy as np

from .activations import ACTIVATIONS
from .bounds import Budget


class StepError(Exception):
    """The student's mathematics does not evaluate (shapes, a delta not yet computed)."""


def fmt(shape) -> str:
    return "(" + ", ".join(map(str, shape)) + (",)" if len(shape) == 1 else ")")


class Concrete(ast.NodeTransformer):
    """The tree with every index resolved to a layer number (for evaluation and for messages)."""

    def __init__(self, i: int, L: int):
        self.i, self.L = i, L

    def visit_Subscript(self, node):
        s = node.slice
        if isinstance(s, ast.Constant):
            k = s.value
        elif isinstance(s, ast.Name):
            k = self.i if s.id == "i" else self.L
        else:
            base = self.i if s.left.id == "i" else self.L
            k = base + s.right.value if isinstance(s.op, ast.Add) else base - s.right.value
        return ast.copy_location(ast.Subscript(value=node.value, slice=ast.Constant(k), ctx=ast.Load()), node)


class Val:
    """An array with the expression it came from and, for a product, how it was formed.

    In columns a value of one sample is (n, 1); ``batched`` values hold every sample at once,
    stacked on a leading axis (B, n, 1), or (1, n, 1) for a value that is the same for every sample,
    so the equations run once for the whole batch. Shapes in checks and messages are always one
    sample's. ``claimed``: the bytes the evaluation's Budget counts for it (0 for a view of the model
    or of the batch)."""

    def __init__(self, arr, src, how: str = "", batched: bool = False, claimed: int = 0):
        self.arr, self.src, self.how, self.batched = np.asarray(arr, np.float64), src, how, batched
        self.claimed = claimed

    @property
    def text(self) -> str:  # the source text, made only for a message
        return self.src if isinstance(self.src, str) else ast.unparse(self.src)

    @property
    def shape(self) -> tuple:
        return self.arr.shape[1:] if self.batched else self.arr.shape

    @property
    def lead(self) -> int:
        """The samples the array holds: B, or 1 for a batched value the same for every sample; 1 unbatched."""
        return self.arr.shape[0] if self.batched else 1

    @property
    def scalar(self) -> bool:
        return int(np.prod(self.shape)) == 1 and len(self.shape) <= 2

    def describe(self) -> str:
        return f"{self.text} of shape {fmt(self.shape)}" + (f" (from {self.how})" if self.how else "")


def _text(node):
    return lambda: ast.unparse(node)


class Env:
    """The values one evaluation reads: every sample as a column stacked (columns) or the batch (rows),
    and what it may spend: ``limit`` entries per value, ``budget``'s bytes and CPU for the call."""

    def __init__(self, b, columns: bool, deltas: dict, layer: int, y: np.ndarray, limit: int, budget: Budget):
        self.b, self.columns, self.deltas, self.layer, self.y = b, columns, deltas, layer, y
        self.limit, self.budget = limit, budget

    def vec(self, arr, src) -> Val:
        """A batch quantity (B, n): stacked columns (B, n, 1) in columns (a view), as is in rows."""
        self.budget.step()
        return Val(arr[:, :, None], src, batched=True) if self.columns else Val(arr, src)

    def make(self, shape: tuple, node, ops: int | None = None) -> int:
        """Before a value of ``shape`` (the whole batch's) is made: within the entries any step of a backward
        pass needs (StepError: the student's mathematics), then within the call's bytes and CPU (OverBudget).
        Returns the bytes claimed."""
        entries = int(np.prod(shape, dtype=np.float64))
        if entries > self.limit:
            samples = (f" ({shape[0]} samples of {fmt(shape[1:])})"
                       if self.columns and len(shape) > 1 and shape[0] > 1 else "")
            raise StepError(f"{ast.unparse(node)} would have {entries} entries{samples}, more than any step of "
                            f"this backward pass needs ({self.limit})")
        return self.budget.make(shape, _text(node), ops)

    def array(self, name: str, k: int, src) -> Val:
        self.budget.step()
        b, L = self.b, self.b.L
        lo = 0 if name == "z" else 1
        if not lo <= k <= L:
            raise StepError(f"{name}[{k}] does not exist: the layers are {lo}..{L}")
        if name == "W":
            return Val(b.W[k - 1], src)
        if name == "b":
            if not b.net.bias:
                raise StepError(f"b[{k}]: this network has no bias")
            bias = b.net.dense[k - 1].params["b"].astype(np.float64)
            return Val(bias[:, None] if self.columns else bias, src)
        if name == "a":
            return self.vec(b.a[k - 1], src)
        if name == "z":
            return self.vec(b.z[k], src)
        if k not in self.deltas:
            raise StepError(f"delta[{k}] is not computed yet: layers are evaluated from the top (L = {L}) down, "
                            f"so layer {self.layer} can use delta[{self.layer + 1}] and above")
        d = self.deltas[k]
        return Val(d.arr, src, batched=d.batched)


_WORDS = {"+": "+", "-": "-", "*": "* (elementwise)", "/": "/ (elementwise)", "**": "**",
          "max": "np.maximum", "where": "np.where", ">": ">", ">=": ">=", "<": "<", "<=": "<=", "==": "==",
          "!=": "!="}
_OPS = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "max": np.maximum,
        ">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal, "==": np.equal,
        "!=": np.not_equal}


def _shape_hint(op: str, x: Val, y: Val) -> str:
    """Why two shapes meet in an elementwise operation, and what was probably meant."""
    xs, ys = x.shape, y.shape
    if op in "*/" and len(xs) == len(ys) == 2 and ({xs[1], ys[0]} == {1} or {xs[0], ys[1]} == {1}) \
            and 1 not in (xs[0] * xs[1], ys[0] * ys[1]):
        col, row = (x, y) if xs[1] == 1 else (y, x)
        n, m = col.shape[0], row.shape[1]
        return (f" (a column against a row: NumPy would broadcast them to ({n}, {m}), an outer product; "
                f"if you meant it, write outer({col.text}, {row.text}) or {col.text} @ {row.text}, "
                f"a matrix product; if not, one of them needs .T)")
    if sorted(xs) == sorted(ys):
        return " (a row against a column: one of them needs .T)"
    if op in "*/" and len(xs) == len(ys) == 2 and (xs[1] == ys[0] or xs[0] == ys[1]):
        return (" (for a product of matrices write @, the matrix product, e.g. delta.T @ z; outer(u, v) "
                "multiplies two vectors into a matrix)")
    return ""


def _align(op: str, x: Val, y: Val, env: Env, node):
    """x's and y's arrays for an elementwise operation (equal shapes, a scalar, or in rows a bias added to
    every row); StepError otherwise, naming the shapes and what was probably meant."""
    if x.shape != y.shape:
        bias = not env.columns and op in "+-" and len(x.shape) == 2 and len(y.shape) == 1 and x.shape[1] == y.shape[0]
        if not (bias or (op not in "+-" and (x.scalar or y.scalar)) or not x.shape or not y.shape):
            e = StepError(f"{x.describe()} against {y.describe()}: {_WORDS[op]} needs equal shapes"
                          + _shape_hint(op, x, y))
            e.node = node
            raise e
    xa, ya = x.arr, y.arr
    if x.shape != y.shape and x.shape and y.shape:  # a 1x1 value scales every entry of the other
        if x.scalar and not y.scalar:
            xa = xa.reshape((-1,) + (1,) * len(y.shape)) if x.batched else xa.reshape(())
        elif y.scalar and not x.scalar:
            ya = ya.reshape((-1,) + (1,) * len(x.shape)) if y.batched else ya.reshape(())
    elif x.shape != y.shape:  # one sample's value is a number: for each sample it scales the other's entries
        if x.batched and not x.shape:
            xa = xa.reshape((-1,) + (1,) * len(y.shape))
        if y.batched and not y.shape:
            ya = ya.reshape((-1,) + (1,) * len(x.shape))
    return xa, ya


def _elementwise(op: str, x: Val, y: Val, env: Env, node) -> Val:
    xa, ya = _align(op, x, y, env, node)
    claimed = env.make(np.broadcast_shapes(xa.shape, ya.shape), node)
    with np.errstate(all="ignore"):
        out = _OPS[op](xa, ya)
    env.budget.release(x.claimed + y.claimed)
    return Val(out, node, batched=x.batched or y.batched, claimed=claimed)


def _where(c: Val, x: Val, y: Val, env: Env, node) -> Val:
    """np.where(c, x, y) with the shapes of an elementwise operation between each pair."""
    ca, xa = _align("where", c, x, env, node)
    shape = np.broadcast_shapes(ca.shape, xa.shape)
    picked = Val(np.broadcast_to(xa, shape), x.src, batched=c.batched or x.batched)
    ta, ya = _align("where", picked, y, env, node)
    cond = np.broadcast_to(ca, shape).reshape(ta.shape)
    claimed = env.make(np.broadcast_shapes(ta.shape, ya.shape), node)
    out = np.where(cond != 0, ta, ya)
    env.budget.release(c.claimed + x.claimed + y.claimed)
    return Val(out, node, batched=picked.batched or y.batched, claimed=claimed)


def _unary(fn, x: Val, env: Env, node) -> Val:
    """An elementwise function of one value (np.exp, np.log, x ** n, ones_like, zeros_like)."""
    claimed = env.make(x.arr.shape, node)
    with np.errstate(all="ignore"):
        out = fn(x.arr)
    env.budget.release(x.claimed)
    return Val(out, node, batched=x.batched, claimed=claimed)


def _reshape(x: Val, node, env: Env) -> Val:
    """x.reshape(n, m) of one sample's value (a view)."""
    want = [a.value for a in node.args[1:]]
    size = int(np.prod(x.shape))
    known = int(np.prod([d for d in want if d != -1]))
    if want.count(-1) > 1 or (-1 in want and (known == 0 or size % known)) or -1 not in want and known != size:
        raise StepError(f"{ast.unparse(node)}: {x.describe()} has {size} entries, it cannot be reshaped to "
                        f"({', '.join(map(str, want))})")
    shape = tuple(size // known if d == -1 else d for d in want)
    env.budget.step()
    return Val(x.arr.reshape(((x.lead,) if x.batched else ()) + shape), node, x.how, x.batched, x.claimed)


def _activate(f, name: str, x: Val, env: Env, node) -> Val:
    """f(x) (name "f") or f'(x) (name "fprime") of activation ``f``, for every sample."""
    if name == "fprime" and f.output_only:
        raise StepError(f"{ast.unparse(node)}: {f.name} has a Jacobian, not an elementwise derivative")
    if name == "f" and f.output_only and len(x.shape) != 2:  # it normalizes a column (a row in rows)
        raise StepError(f"{ast.unparse(node)}: {f.name} runs over each {'column' if env.columns else 'row'}; "
                        f"{x.describe()} has none")
    claimed = env.make((2,) + x.arr.shape, node)  # f and f' both: the derivative reads the forward value
    with np.errstate(all="ignore"):
        if name == "f" and f.output_only and env.columns:  # softmax runs over a column here, over a row in the engine
            flat = np.swapaxes(x.arr, -1, -2)
            out = np.swapaxes(f.forward(flat.reshape(-1, flat.shape[-1])).reshape(flat.shape), -1, -2)
        elif name == "f":
            a = x.arr.reshape(-1) if x.arr.ndim == 0 else x.arr
            out = f.forward(a if a.ndim == 2 or not f.output_only else np.atleast_2d(a)).reshape(x.arr.shape)
        else:  # a number as a 1-entry array: some derivatives write into an output array
            a = x.arr.reshape(-1) if x.arr.ndim == 0 else x.arr
            out = f.derivative(a, f.forward(a)).reshape(x.arr.shape)
    env.budget.release(x.claimed + claimed // 2)
    return Val(out, node, batched=x.batched, claimed=claimed - claimed // 2)


def _matmul_check(x: Val, y: Val, batched: bool) -> None:
    if not x.shape or not y.shape or x.shape[-1] != y.shape[0] or len(x.shape) > 2 or len(y.shape) > 2 \
            or batched and (len(x.shape) != 2 or len(y.shape) != 2):
        raise StepError(f"{x.describe()} @ {y.describe()}: a matrix product needs the columns of the "
                        f"left to equal the rows of the right")


def _stacked_product(xa: np.ndarray, ya: np.ndarray) -> np.ndarray:
    """np.matmul, with a stack (B, n, k) against one matrix done as one matrix product: BLAS then reads
    the matrix once, not once per sample."""
    if xa.ndim == 3 and ya.ndim == 2:  # (B, n, k) @ (k, m)
        return (xa.reshape(-1, xa.shape[2]) @ ya).reshape(xa.shape[0], xa.shape[1], ya.shape[1])
    if xa.ndim == 2 and ya.ndim == 3:  # (n, k) @ (B, k, m): each sample's (m, k) @ (k, n), transposed
        return np.swapaxes(_stacked_product(np.swapaxes(ya, 1, 2), xa.T), 1, 2)
    return np.matmul(xa, ya)


def _matmul(x: Val, y: Val, env: Env, node) -> Val:
    batched = x.batched or y.batched
    _matmul_check(x, y, batched)
    shape = ((max(x.lead, y.lead),) if batched else ()) + x.shape[:-1] + y.shape[1:]
    temp = env.make((x.arr.size + y.arr.size,), node, 0) if batched else 0  # the stack laid out as one matrix
    claimed = env.make(shape, node, int(np.prod(shape, dtype=np.float64)) * x.shape[-1])
    out = _stacked_product(x.arr, y.arr)
    env.budget.release(temp + x.claimed + y.claimed)
    return Val(out, node, f"{fmt(x.shape)} @ {fmt(y.shape)}", batched, claimed)


def _outer_check(u: Val, v: Val) -> None:
    for w in (u, v):
        if len(w.shape) == 2 and min(w.shape) != 1 or len(w.shape) > 2:
            raise StepError(f"outer({u.text}, {v.text}): {w.describe()} is not a vector")


def _outer(u: Val, v: Val, env: Env, node) -> Val:
    """outer(u, v) of two vectors (checked by _outer_check), for each sample when either is batched."""
    batched = u.batched or v.batched
    shape = ((max(u.lead, v.lead),) if batched else ()) + (int(np.prod(u.shape)), int(np.prod(v.shape)))
    claimed = env.make(shape, node)
    uu = u.arr.reshape((u.lead, -1, 1) if u.batched else (-1, 1))
    vv = v.arr.reshape((v.lead, 1, -1) if v.batched else (1, -1))
    out = uu * vv
    env.budget.release(u.claimed + v.claimed)
    return Val(out, node, batched=batched, claimed=claimed)


def _reduce(name: str, x: Val, node, env: Env) -> Val:
    """sum or mean of one sample's value, over its axis ``axis`` (or all of it)."""
    axis = next((kw.value.value for kw in node.keywords if kw.arg == "axis"), None)
    keep = next((kw.value.value for kw in node.keywords if kw.arg == "keepdims"), False)
    if axis is not None and not -len(x.shape) <= axis < len(x.shape):
        raise StepError(f"{ast.unparse(node)}: {x.describe()} has no axis {axis}")
    if x.batched:
        axis = tuple(range(1, x.arr.ndim)) if axis is None else (axis % len(x.shape)) + 1
    axes = range(x.arr.ndim) if axis is None else (axis % x.arr.ndim,) if isinstance(axis, int) else axis
    kept = tuple(1 if k in axes else d for k, d in enumerate(x.arr.shape) if keep or k not in axes)
    claimed = env.make(kept, node, x.arr.size)
    out = getattr(np, name)(x.arr, axis=axis, keepdims=keep)
    env.budget.release(x.claimed)
    return Val(out, node, batched=x.batched, claimed=claimed)


UNARY = {"exp": np.exp, "log": np.log, "ones_like": np.ones_like, "zeros_like": np.zeros_like}


def _grouping(node) -> str:
    """How ``(x * y) @ z`` grouped, for a shape error in it: * and @ have equal precedence."""
    x, y, op = node.left.left, node.left.right, "*" if isinstance(node.left.op, ast.Mult) else "/"
    return (f"{op} and @ have equal precedence and group left to right, so this reads "
            f"({ast.unparse(node.left)}) @ {ast.unparse(node.right)}; if you meant "
            f"{ast.unparse(x)} {op} ({ast.unparse(y)} @ {ast.unparse(node.right)}), put those parentheses")


def evaluate(node, env: Env) -> Val:
    """The value of ``node`` for every sample at once; each value is checked by env.make before it is made."""
    if isinstance(node, ast.Constant):
        env.budget.step()
        return Val(node.value, node)
    if isinstance(node, ast.Name):
        b = env.b
        if node.id in ("B", "L"):
            env.budget.step()
            return Val(float(b.B if node.id == "B" else b.L), node.id)
        return env.vec(b.z[b.L] if node.id == "y_hat" else env.y, node.id)  # y (B, K) as a batch quantity
    if isinstance(node, ast.Subscript):
        return env.array(node.value.id, node.slice.value, node)
    if isinstance(node, ast.Attribute):
        v = evaluate(node.value, env)
        env.budget.step()
        arr = np.swapaxes(v.arr, -1, -2) if len(v.shape) == 2 else v.arr  # a view: it keeps v's bytes
        return Val(arr, node, v.how, v.batched, v.claimed)
    if isinstance(node, ast.UnaryOp):
        v = evaluate(node.operand, env)
        if isinstance(node.op, ast.UAdd):
            return Val(v.arr, node, v.how, v.batched, v.claimed)
        claimed = env.make(v.arr.shape, node)
        out = -v.arr
        env.budget.release(v.claimed)
        return Val(out, node, v.how, v.batched, claimed)
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.MatMult) and isinstance(node.left, ast.BinOp) and \
                isinstance(node.left.op, (ast.Mult, ast.Div)):
            try:
                return _matmul(evaluate(node.left, env), evaluate(node.right, env), env, node)
            except StepError as e:
                if getattr(e, "node", None) is node.left or getattr(e, "node", None) is node:
                    raise StepError(f"{e}. {_grouping(node)}") from None
                raise
        x = evaluate(node.left, env)
        if isinstance(node.op, ast.Pow):
            n = node.right.value
            return _unary(lambda a: np.power(a, n), x, env, node)
        y = evaluate(node.right, env)
        if isinstance(node.op, ast.MatMult):
            return _matmul(x, y, env, node)
        return _elementwise({ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}[type(node.op)], x, y, env, node)
    if isinstance(node, ast.Compare):
        x, y = evaluate(node.left, env), evaluate(node.comparators[0], env)
        op = {ast.Gt: ">", ast.GtE: ">=", ast.Lt: "<", ast.LtE: "<=", ast.Eq: "==", ast.NotEq: "!="}[type(node.ops[0])]
        v = _elementwise(op, x, y, env, node)
        return Val(v.arr.astype(np.float64), node, batched=v.batched, claimed=v.claimed)  # 0/1, the same size
    if isinstance(node, ast.Call):
        name = node.func.id
        args = [evaluate(a, env) for a in node.args]
        if name == "outer":
            _outer_check(*args)
            return _outer(*args, env, node)
        if name in ("sum", "mean"):
            return _reduce(name, args[0], node, env)
        if name in UNARY:
            return _unary(UNARY[name], args[0], env, node)
        if name == "maximum":
            return _elementwise("max", args[0], args[1], env, node)
        if name == "where":
            return _where(*args, env, node)
        if name == "reshape":
            return _reshape(args[0], node, env)
        if name in ACTIVATIONS:  # by name: that activation with its default parameters
            return _activate(ACTIVATIONS[name](), "f", args[0], env, node)
        arg = node.args[0]
        k = arg.slice.value if isinstance(arg, ast.Subscript) and arg.value.id in ("a", "z") else env.layer
        return _activate(env.b.act(max(1, min(k, env.b.L))), name, args[0], env, node)
    raise StepError(f"{ast.unparse(node)} cannot be evaluated")  # unreachable after _check


# -- the mean over the samples (dW and db in columns) ------------------------------------------------------
def _per_sample(node) -> bool:
    """Whether ``node`` reads a batch quantity (a, z, delta, y, y_hat), so it may differ between samples."""
    return any(isinstance(n, ast.Name) and n.id in ("y", "y_hat") or
               isinstance(n, ast.Subscript) and n.value.id in ("a", "z", "delta") for n in ast.walk(node))


def _sample_mean(v: Val, env: Env, node) -> Val:
    """One sample's value: the mean over the samples of a batched value."""
    if not v.batched:
        return v
    if v.lead == 1:
        return Val(v.arr[0], v.src, v.how, False, v.claimed)
    claimed = env.make(v.shape, node, v.arr.size)
    out = v.arr.sum(axis=0) / env.b.B
    env.budget.release(v.claimed)
    return Val(out, v.src, v.how, False, claimed)


def _mean_product(x: Val, y: Val, env: Env, node, how: str) -> Val:
    """mean over the samples of x_b @ y_b, for per-sample matrices x (n, k) and y (k, m): one matrix product
    over the batch, never the (B, n, m) stack of the per-sample products."""
    B, (n, k), m = env.b.B, x.shape, y.shape[1]
    temp = env.make((B * (n + m) * k,), node, 0)  # the operands laid out as (n, B k) and (B k, m)
    claimed = env.make((n, m), node, B * n * k * m)
    if x.lead == 1 or y.lead == 1:  # the same for every sample on one side: the product of the means
        out = (x.arr[0] if x.lead == 1 else x.arr.mean(axis=0)) @ (y.arr[0] if y.lead == 1 else y.arr.mean(axis=0))
    else:
        out = np.swapaxes(x.arr, 0, 1).reshape(n, B * k) @ y.arr.reshape(B * k, m) / B
    env.budget.release(temp + x.claimed + y.claimed)
    return Val(out, node, how, False, claimed)


def mean_over_samples(node, env: Env) -> Val:
    """The mean over the samples of ``node``'s per-sample value (dW and db in columns), as one sample's value.

    The mean goes inside wherever the expression is linear in the samples: a sum or difference, a
    product or quotient with a value the same for every sample, a transpose, sum and mean within a
    sample, and a product of two per-sample values (one matrix product over the batch). Elsewhere the
    value is made for every sample and then averaged. Values, checks and messages are evaluate's."""
    if not _per_sample(node):  # the same for every sample: its mean is itself
        return evaluate(node, env)
    if isinstance(node, ast.Attribute):
        v = mean_over_samples(node.value, env)
        env.budget.step()
        return Val(np.swapaxes(v.arr, -1, -2) if len(v.shape) == 2 else v.arr, node, v.how, False, v.claimed)
    if isinstance(node, ast.UnaryOp):
        v = mean_over_samples(node.operand, env)
        if isinstance(node.op, ast.UAdd):
            return Val(v.arr, node, v.how, False, v.claimed)
        claimed = env.make(v.arr.shape, node)
        out = -v.arr
        env.budget.release(v.claimed)
        return Val(out, node, v.how, False, claimed)
    if isinstance(node, ast.BinOp):
        left, right, op = node.left, node.right, type(node.op)
        both = _per_sample(left) and _per_sample(right)
        if op in (ast.Add, ast.Sub) or op in (ast.Mult, ast.MatMult) and not both or op is ast.Div and not \
                _per_sample(right):  # linear in the samples: the mean goes inside
            x, y = mean_over_samples(left, env), mean_over_samples(right, env)
            if op is not ast.MatMult:
                return _elementwise({ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}[op], x, y, env, node)
            _matmul_check(x, y, True)  # as for the batch quantity the per-sample side is
            return _matmul(x, y, env, node)
        if op is ast.MatMult:
            x, y = evaluate(left, env), evaluate(right, env)
            _matmul_check(x, y, True)
            return _mean_product(x, y, env, node, f"{fmt(x.shape)} @ {fmt(y.shape)}")
        return _sample_mean(evaluate(node, env), env, node)
    if isinstance(node, ast.Call) and node.func.id in ("sum", "mean"):
        return _reduce(node.func.id, mean_over_samples(node.args[0], env), node, env)
    if isinstance(node, ast.Call) and node.func.id == "outer":
        u, v = (evaluate(a, env) for a in node.args)
        _outer_check(u, v)
        if u.batched and v.batched:
            p, q = int(np.prod(u.shape)), int(np.prod(v.shape))
            return _mean_product(Val(u.arr.reshape(u.lead, p, 1), u.src, batched=True, claimed=u.claimed),
                                 Val(v.arr.reshape(v.lead, 1, q), v.src, batched=True, claimed=v.claimed),
                                 env, node, "")
        return _outer(_sample_mean(u, env, node), _sample_mean(v, env, node), env, node)
    return _sample_mean(evaluate(node, env), env, node)
