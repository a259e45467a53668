"""Your backward pass as code: a student's Python ``def backward(...)`` run by a restricted interpreter of a
small NumPy subset (never ``eval``, ``exec`` or ``compile``), every assigned value recorded with its line, and
the first line whose value is wrong diagnosed with derive's verdicts.

Interface:
- ``run_code(net, X, y, source, convention, bounds, code_bounds, cancelled)`` -> derive's result (``passed``,
  ``first_error`` with ``line`` (1-based) besides ``layer``, ``target``, ``message``; ``layers`` with each layer's
  recorded lines as ``steps``: {"target", "expr", "line", "shape", "error"}).
- CodeRefused(line, message): the source is outside the subset (the line, what is not supported and what to
  write instead), or longer / deeper than ``code_bounds``. CodeOverBudget(line, over): past Bounds' bytes or
  operations, or CodeBounds.max_iterations loop iterations. bounds.Cancelled once ``cancelled()`` is true.
- QUESTION_CODE (the question's recurrence in NumPy, one sample as a column) and FIXED_CODE (the same, fixed).

The code: ``import numpy as np`` and one ``def backward(...)`` whose arguments are any of W, b, a, z, y_hat, y,
B, L, f, fprime. W, b, a, z are lists indexed by layer (``W[1]`` the first layer, ``z[0]`` the input, entry 0
of W, b, a is None); f and fprime are the activation of the layer their argument comes from (``fprime(a[i])``),
or of layer k as ``f[k](x)``. In "columns" one sample is a column (z[k] is (n_k, 1)) and the code runs once for
every sample at once (a leading stacked axis the code never sees: shapes, ``.T``, axes are one sample's); dW and
db are averaged over the samples, as the loss is. In "rows" z[k] is the batch (B, n_k), as the engine's.
It returns dW, and db where the net has biases: a list by layer (entry 0 unused), a dict {layer: array},
``{"dW": ..., "db": ...}``, or the tuple ``dW, db``.

Bounds: every array is charged to a bounds.Budget before it is made (its bytes, cumulative over the call, and
its entries or multiply-adds), each interpreted node and loop iteration is a Budget.step, Python integers stay
below 2**53, lists below MAX_LIST entries.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .bounds import Bounds, Budget, OverBudget
from .checker import TOLERANCE, Diagnosis, verdicts
from .evaluate import StepError, fmt
from .gradcheck import relative_error
from .network import Network

ARGUMENTS = ("W", "b", "a", "z", "y_hat", "y", "B", "L", "f", "fprime")
MAX_LIST = 10_000
MAX_INT = 2 ** 53

# The question's backward pass as its student would code it in NumPy, one sample as a column (k_i is delta_i):
# the recurrence k_i = (k_{i+1}^T W_i) o f'(W_i z_{i-1}) on line 8.
QUESTION_CODE = '''import numpy as np

def backward(W, a, z, y, fprime, L):
    k = {}
    k[L] = 2 * (z[L] - y) * fprime(a[L])                 # k_n = 2 (y_hat - y) f'(W_{n+1} z_n)
    k[L - 1] = k[L] * (W[L].T * fprime(a[L - 1]))       # the layer below the output
    for i in range(L - 2, 0, -1):
        k[i] = (k[i + 1].T @ W[i]).T * fprime(a[i])      # k_i = (k_{i+1}^T W_i) o f'(W_i z_{i-1})
    dW = {i: np.outer(k[i], z[i - 1]) for i in range(1, L + 1)}   # dMSE/dW_i = k_i (x) z_{i-1}
    return dW
'''
FIXED_CODE = QUESTION_CODE.replace("(k[i + 1].T @ W[i]).T * fprime(a[i])      # k_i = (k_{i+1}^T W_i)",
                                   "(W[i + 1].T @ k[i + 1]) * fprime(a[i])      # k_i = (W_{i+1}^T k_{i+1})")
QUESTION_LINE = 8  # the recurrence's line in QUESTION_CODE and FIXED_CODE


@dataclass(frozen=True)
class CodeBounds:
    """The source's characters and nesting depth (checked before parsing), and the loop iterations of one run."""

    max_chars: int = 20_000
    max_depth: int = 40
    max_iterations: int = 10_000

    @classmethod
    def of(cls, settings) -> CodeBounds:
        return cls(settings.derive_max_code_chars, settings.derive_max_code_depth, settings.derive_max_code_iterations)


class CodeRefused(ValueError):
    """Line ``line`` (1-based; 0: the whole source) is outside the interpreter's subset."""

    def __init__(self, line: int, message: str):
        super().__init__(f"line {line}: {message}" if line else message)
        self.line, self.message = line, message


class CodeOverBudget(Exception):
    """Line ``line`` would take the run past ``resource`` ("bytes", "cost" or "iterations")."""

    def __init__(self, line: int, resource: str, message: str):
        super().__init__(f"line {line}: {message}")
        self.line, self.resource = line, resource


# -- the static check ------------------------------------------------------------------------------------
NP_FUNCTIONS = ("dot", "matmul", "multiply", "add", "subtract", "divide", "sum", "mean", "outer", "transpose",
                "exp", "log", "tanh", "sqrt", "abs", "maximum", "minimum", "where", "ones_like", "zeros_like",
                "zeros", "ones", "square", "power", "reshape")
ARRAY_ATTRIBUTES = ("T", "sum", "mean", "dot", "transpose", "reshape", "shape", "copy")
CONTAINER_METHODS = ("append", "items", "keys", "values", "get")
BUILTINS = ("range", "len", "reversed", "enumerate", "zip", "list", "dict", "abs", "min", "max", "float", "int")
STATEMENTS = (ast.Assign, ast.AugAssign, ast.For, ast.If, ast.Return, ast.Expr, ast.Pass, ast.Break, ast.Continue,
              ast.Import)
EXPRESSIONS = (ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Call, ast.Attribute, ast.Subscript,
               ast.Name, ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.ListComp, ast.DictComp, ast.Slice,
               ast.comprehension, ast.keyword, ast.Load, ast.Store, ast.operator, ast.unaryop, ast.cmpop, ast.boolop,
               ast.alias)
INSTEAD = {ast.While: "loop with for ... in range(...)", ast.FunctionDef: "one def backward(...) only, at the top",
           ast.Lambda: "write the expression where it is used", ast.Try: "leave out try: a failing line is reported",
           ast.With: "leave out with", ast.ImportFrom: "import numpy as np", ast.GeneratorExp: "a list [... for ...]",
           ast.SetComp: "a list or a dict", ast.Set: "a list", ast.Global: "a local name", ast.Nonlocal: "a local name",
           ast.ClassDef: "plain lists and dicts", ast.Delete: "assign a new value", ast.Assert: "leave out assert",
           ast.Raise: "leave out raise", ast.JoinedStr: "leave out f-strings", ast.NamedExpr: "an assignment",
           ast.Starred: "name each value", ast.Yield: "return", ast.Await: "plain code", ast.AnnAssign: "x = ..."}


def _depth_before_parsing(source: str) -> int:
    """The deepest bracket nesting and indentation (in levels of any width) of the source, without parsing."""
    deepest = depth = 0
    for ch in source:
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth = max(0, depth - 1)
    indents = [len(ln) - len(ln.lstrip(" \t")) for ln in source.splitlines() if ln.strip()]
    levels = len(set(indents))
    return max(deepest, levels)


def _tree_depth(tree) -> int:
    deepest, todo = 0, [(tree, 1)]
    while todo:
        node, d = todo.pop()
        deepest = max(deepest, d)
        todo.extend((c, d + 1) for c in ast.iter_child_nodes(node))
    return deepest


def parse_code(source: str, bounds: CodeBounds = CodeBounds()) -> ast.FunctionDef:
    """The checked tree of ``def backward``; CodeRefused naming the line and what to write instead."""
    if not isinstance(source, str) or not source.strip():
        raise CodeRefused(0, "give Python source defining def backward(W, a, z, y, fprime, L): ...")
    if len(source) > bounds.max_chars:
        raise CodeRefused(0, f"the code has {len(source)} characters; the limit is {bounds.max_chars}")
    if _depth_before_parsing(source) > bounds.max_depth:
        raise CodeRefused(0, f"the code nests more than {bounds.max_depth} levels (brackets or indentation)")
    try:
        module = ast.parse(source)
    except SyntaxError as e:
        raise CodeRefused(e.lineno or 0, f"syntax error: {e.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise CodeRefused(0, "the code cannot be read (nested too deeply, or a null byte)") from None
    if _tree_depth(module) > 2 * bounds.max_depth:
        raise CodeRefused(0, f"the code nests more than {bounds.max_depth} levels")
    found = None
    for node in module.body:
        if isinstance(node, ast.Import):
            _check_import(node)
        elif isinstance(node, ast.FunctionDef) and node.name == "backward" and found is None:
            found = node
        elif isinstance(node, ast.FunctionDef):
            raise CodeRefused(node.lineno, f"def {node.name}: the code defines one function, def backward(...)")
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue  # a docstring
        else:
            raise CodeRefused(node.lineno, f"{type(node).__name__} at the top level is not supported: the code is "
                                           f"import numpy as np and one def backward(...)")
    if found is None:
        raise CodeRefused(0, "no def backward(...): define it, e.g. def backward(W, a, z, y, fprime, L): ...")
    args = found.args
    if found.decorator_list or args.vararg or args.kwarg or args.kwonlyargs or args.defaults or args.posonlyargs:
        raise CodeRefused(found.lineno, "backward takes plain arguments only: any of " + ", ".join(ARGUMENTS))
    for a in args.args:
        if a.arg not in ARGUMENTS:
            raise CodeRefused(found.lineno, f"argument {a.arg!r} is not given; backward may take "
                                            + ", ".join(ARGUMENTS))
    for node in ast.walk(ast.Module(body=found.body, type_ignores=[])):
        _check_node(node)
    return found


def _check_import(node) -> None:
    if not (len(node.names) == 1 and node.names[0].name == "numpy" and node.names[0].asname in ("np", None)):
        raise CodeRefused(node.lineno, "only import numpy as np is allowed")


def _check_node(node) -> None:
    line = getattr(node, "lineno", 0)
    if isinstance(node, ast.Module):
        return
    if isinstance(node, ast.Import):
        return _check_import(node)
    if not isinstance(node, STATEMENTS + EXPRESSIONS):
        instead = INSTEAD.get(type(node))
        raise CodeRefused(line, f"{type(node).__name__} is not supported" + (f"; {instead}" if instead else ""))
    if isinstance(node, ast.Name) and node.id.startswith("__") or isinstance(node, ast.Attribute) and \
            node.attr.startswith("_"):
        name = node.id if isinstance(node, ast.Name) else node.attr
        raise CodeRefused(line, f"{name!r}: names starting with _ are not supported; use plain names")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "backward":
        raise CodeRefused(line, "backward cannot call itself; loop with for ... in range(...)")
    if isinstance(node, ast.Attribute):
        allowed = NP_FUNCTIONS + ARRAY_ATTRIBUTES + CONTAINER_METHODS
        if node.attr not in allowed:
            raise CodeRefused(line, f"attribute .{node.attr} is not supported; the code may use np."
                                    f"{', np.'.join(NP_FUNCTIONS)}, and .{', .'.join(ARRAY_ATTRIBUTES)} of an array")
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)) and len(node.value) > 200:
        raise CodeRefused(line, "a string has at most 200 characters")
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.LShift, ast.RShift, ast.BitOr, ast.BitAnd, ast.BitXor)):
        raise CodeRefused(line, f"operator {type(node.op).__name__} is not supported; use + - * / @ **")


# -- values -------------------------------------------------------------------------------------------------
class Val:
    """An array; ``batched``: it holds every sample at once on a leading axis (columns), so its shape as the code
    sees it is arr.shape[1:]. ``layer``: the layer it comes from (W[k], a[k], z[k] and what is made of them)."""

    __slots__ = ("arr", "batched", "layer")

    def __init__(self, arr, batched: bool = False, layer: int | None = None):
        self.arr, self.batched, self.layer = arr, batched, layer

    @property
    def shape(self) -> tuple:
        return self.arr.shape[1:] if self.batched else self.arr.shape


class Activation:
    """f or fprime: called on a value, the activation of the layer it comes from; f[k] is layer k's."""

    def __init__(self, run: "Run", derivative: bool, layer: int | None = None):
        self.run, self.derivative, self.layer = run, derivative, layer


class Namespace:
    """np: its whitelisted functions."""


NP = Namespace()


class Method:
    def __init__(self, owner, name: str):
        self.owner, self.name = owner, name


class Builtin:
    def __init__(self, name: str):
        self.name = name


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Return(Exception):
    def __init__(self, value):
        self.value = value


# -- the interpreter ---------------------------------------------------------------------------------------
class Run:
    """One run of ``backward`` on a batch: its budget, its values, and the record of every assignment."""

    def __init__(self, d: Diagnosis, columns: bool, budget: Budget, code_bounds: CodeBounds, true_delta: dict):
        self.d, self.b, self.columns, self.budget = d, d.b, columns, budget
        self.bounds, self.iterations, self.line = code_bounds, 0, 0
        self.true_delta = true_delta
        self.records: list[dict] = []
        self.env_at_failure: dict = {}
        self.first_wrong: dict | None = None

    # values the arguments name
    def argument(self, name: str):
        b, L = self.b, self.b.L
        if name == "W":
            return [None] + [Val(w, layer=k) for k, w in enumerate(b.W, start=1)]
        if name == "b":
            if not b.net.bias:
                return [None] * (L + 1)
            out = [None]
            for k, dense in enumerate(b.net.dense, start=1):
                bias = dense.params["b"].astype(np.float64)
                out.append(Val(bias[:, None] if self.columns else bias, layer=k))
            return out
        if name == "a":
            return [None] + [self.sample(a, k) for k, a in enumerate(b.a, start=1)]
        if name == "z":
            return [self.sample(z, k) for k, z in enumerate(b.z)]
        if name == "y_hat":
            return self.sample(b.z[L], L)
        if name == "y":
            return self.sample(b.y, L)
        if name in ("f", "fprime"):
            return Activation(self, name == "fprime")
        return b.B if name == "B" else L

    def sample(self, arr, layer: int) -> Val:
        """A batch quantity (B, n): one sample as a column, stacked (B, n, 1), in columns; as is in rows."""
        return Val(arr[:, :, None], True, layer) if self.columns else Val(arr, False, layer)

    def make(self, shape: tuple, ops: int | None = None) -> None:
        try:
            self.budget.make(shape, lambda: f"a value of shape {fmt(shape)}", ops)
        except OverBudget as e:
            unit = "bytes of values" if e.resource == "bytes" else "operations (multiply-adds and entries)"
            raise CodeOverBudget(self.line, e.resource, f"{e.what} would take this run to {e.needed} {unit}; the "
                                                        f"limit is {e.limit}") from None

    def step(self) -> None:
        try:
            self.budget.step()
        except OverBudget as e:
            raise CodeOverBudget(self.line, "cost", f"this run would pass its {e.limit} operations") from None

    def iterate(self) -> None:
        self.iterations += 1
        if self.iterations > self.bounds.max_iterations:
            raise CodeOverBudget(self.line, "iterations", f"the loops would pass {self.bounds.max_iterations} "
                                                          f"iterations in all")
        self.step()

    # statements
    def block(self, body: list, env: dict) -> None:
        for stmt in body:
            self.line, self.env_at_failure = stmt.lineno, env
            self.step()
            self.statement(stmt, env)

    def statement(self, s, env: dict) -> None:
        if isinstance(s, ast.Assign):
            value = self.expr(s.value, env)
            for t in s.targets:
                self.assign(t, value, env, s)
        elif isinstance(s, ast.AugAssign):
            op = ast.BinOp(left=_load(s.target), op=s.op, right=s.value)
            ast.copy_location(op, s)
            self.assign(s.target, self.expr(op, env), env, s)
        elif isinstance(s, ast.For):
            for item in self.iterable(self.expr(s.iter, env)):
                self.iterate()
                self.assign(s.target, item, env, None)
                try:
                    self.block(s.body, env)
                except _Break:
                    break
                except _Continue:
                    continue
            else:
                self.block(s.orelse, env)
        elif isinstance(s, ast.If):
            self.block(s.body if self.truth(self.expr(s.test, env)) else s.orelse, env)
        elif isinstance(s, ast.Return):
            raise _Return(None if s.value is None else self.expr(s.value, env))
        elif isinstance(s, ast.Expr):
            self.expr(s.value, env)
        elif isinstance(s, ast.Import):
            env[s.names[0].asname or "numpy"] = NP
        elif isinstance(s, ast.Break):
            raise _Break
        elif isinstance(s, ast.Continue):
            raise _Continue

    def assign(self, target, value, env: dict, stmt) -> None:
        if isinstance(target, ast.Name):
            if target.id in ("np", "f", "fprime") and env.get(target.id) is not value:
                raise CodeRefused(self.line, f"{target.id} is the interpreter's; choose another name")
            env[target.id] = value
            if stmt is not None:
                self.record(target.id, None, value, stmt, env)
        elif isinstance(target, (ast.Tuple, ast.List)):
            items = list(self.iterable(value))
            if len(items) != len(target.elts):
                raise StepError(f"{len(target.elts)} names for {len(items)} values")
            for t, v in zip(target.elts, items):
                self.assign(t, v, env, stmt)
        elif isinstance(target, ast.Subscript):
            box, key = self.expr(target.value, env), self.expr(target.slice, env)
            if isinstance(box, dict):
                if not isinstance(key, (int, str, tuple)) or isinstance(key, bool):
                    raise StepError("a dict's key is a number or a string")
                if key not in box and len(box) >= MAX_LIST:
                    raise CodeRefused(self.line, f"a dict has at most {MAX_LIST} entries")
                box[key] = value
            elif isinstance(box, list):
                if not isinstance(key, int) or not -len(box) <= key < len(box):
                    raise StepError(f"index {key!r} is outside the list of {len(box)} entries")
                box[key] = value
            else:
                raise CodeRefused(self.line, "only entries of lists and dicts can be assigned; an array is made "
                                             "whole (np.zeros_like(...) then +=, or one expression)")
            if stmt is not None:
                self.record(ast.unparse(target.value), key, value, stmt, env)
        else:
            raise CodeRefused(self.line, "assign to a name, a list or dict entry, or a tuple of them")

    def record(self, name: str, key, value, stmt, env: dict) -> None:
        """Record the value a line assigns; the first one that is a layer's delta and is wrong is diagnosed."""
        target = f"{name}[{key!r}]" if key is not None else name
        shape = list(value.shape) if isinstance(value, Val) else None
        rec = {"target": target, "expr": ast.unparse(stmt).split("\n")[0][:200], "line": stmt.lineno,
               "shape": shape, "error": None, "layer": key if type(key) is int and 1 <= key <= self.b.L else None}
        self.records.append(rec)
        if rec["layer"] is None or not isinstance(value, Val) or self.first_wrong is not None:
            return
        i = rec["layer"]
        if self.delta_state(value, i) is False:
            rec["error"] = f"{target} differs from dL/da_{i}"
            fix = self.repair(stmt, env, i)
            if fix:
                rec["error"] += f"; {fix}"
            self.first_wrong = rec

    def delta_state(self, v: Val, i: int) -> bool | None:
        """True when ``v`` is delta_i (dL/da_i) or dL/dz_i, False when it has their size but other values,
        None when it is something else (a gradient, another quantity)."""
        true = self.true_delta[i]
        per = int(np.prod(v.shape))
        if per != true.shape[1] or self.columns and v.batched is False and v.arr.ndim != len(v.shape):
            return None
        B = true.shape[0]
        got = v.arr.reshape(-1, per) if (v.batched or not self.columns) else v.arr.reshape(1, per)
        if got.shape[0] not in (1, B):
            return None
        got = np.broadcast_to(got, true.shape)
        scale = B if self.columns else 1
        dz = self.b.dz[i - 1] * scale if self.b.dz[i - 1] is not None else None
        return bool(relative_error(got, true) <= TOLERANCE or dz is not None and relative_error(got, dz) <= TOLERANCE)

    def repair(self, stmt, env: dict, i: int) -> str | None:
        """An operand W[..] replaced by its neighbour layer's, or a transpose added or left out, that makes the
        value delta_i; the searches share the budget's search()."""
        if not isinstance(stmt, ast.Assign):
            return None
        saved, search = self.budget, self.budget.search()
        self.budget = search
        try:
            for old, new, text in _candidates(stmt.value, env, self):
                try:
                    v = self.expr(_swap(stmt.value, old, new), dict(env))
                except (StepError, CodeRefused, ArithmeticError, ValueError, TypeError, IndexError, KeyError):
                    continue
                except CodeOverBudget as e:
                    if e.resource == "cost":
                        return "no repair was found before the search for one reached its CPU budget"
                    continue
                if isinstance(v, Val) and self.delta_state(v, i):
                    return text(i)
        finally:
            self.budget = saved
        return None

    # expressions
    def expr(self, node, env: dict):
        self.step()
        t = type(node)
        if t is ast.Constant:
            v = node.value
            if type(v) is int and abs(v) >= MAX_INT:
                raise CodeRefused(self.line, f"a number has magnitude below 2**53")
            return v
        if t is ast.Name:
            if node.id in env:
                return env[node.id]
            if node.id in BUILTINS:
                return Builtin(node.id)
            if node.id in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[node.id]
            hint = " (add import numpy as np)" if node.id == "np" else \
                f" (add {node.id} to backward's arguments)" if node.id in ARGUMENTS else ""
            raise StepError(f"name {node.id!r} is not defined{hint}")
        if t is ast.BinOp:
            return self.binop(node.op, self.expr(node.left, env), self.expr(node.right, env))
        if t is ast.UnaryOp:
            v = self.expr(node.operand, env)
            if isinstance(node.op, ast.Not):
                return not self.truth(v)
            if isinstance(node.op, ast.Invert):
                raise CodeRefused(self.line, "~ is not supported; use 1 - x or not")
            return self.binop(ast.Mult(), -1 if isinstance(node.op, ast.USub) else 1, v)
        if t is ast.BoolOp:
            v = None
            for e in node.values:
                v = self.expr(e, env)
                if self.truth(v) != isinstance(node.op, ast.And):
                    return v
            return v
        if t is ast.Compare:
            left = self.expr(node.left, env)
            for op, right in zip(node.ops, node.comparators):
                r = self.expr(right, env)
                ok = self.compare(op, left, r)
                if isinstance(ok, Val):
                    if len(node.ops) > 1:
                        raise CodeRefused(self.line, "compare arrays one comparison at a time")
                    return ok
                if not ok:
                    return False
                left = r
            return True
        if t is ast.IfExp:
            return self.expr(node.body if self.truth(self.expr(node.test, env)) else node.orelse, env)
        if t is ast.Call:
            return self.call(node, env)
        if t is ast.Attribute:
            return self.attribute(self.expr(node.value, env), node.attr)
        if t is ast.Subscript:
            return self.index(self.expr(node.value, env), self.expr(node.slice, env))
        if t is ast.Slice:
            parts = [None if p is None else self.expr(p, env) for p in (node.lower, node.upper, node.step)]
            if not all(p is None or type(p) is int for p in parts):
                raise StepError("a slice's bounds are integers")
            return slice(*parts)
        if t in (ast.List, ast.Tuple):
            items = [self.expr(e, env) for e in node.elts]
            return items if t is ast.List else tuple(items)
        if t is ast.Dict:
            if any(k is None for k in node.keys):
                raise CodeRefused(self.line, "** in a dict is not supported; write each key")
            return {self.key(self.expr(k, env)): self.expr(v, env) for k, v in zip(node.keys, node.values)}
        if t in (ast.ListComp, ast.DictComp):
            out = [] if t is ast.ListComp else {}
            self.comprehension(node, node.generators, dict(env), out)
            return out
        raise CodeRefused(self.line, f"{t.__name__} is not supported")

    def comprehension(self, node, generators, env: dict, out) -> None:
        g, rest = generators[0], generators[1:]
        for item in self.iterable(self.expr(g.iter, env)):
            self.iterate()
            self.assign(g.target, item, env, None)
            if not all(self.truth(self.expr(c, env)) for c in g.ifs):
                continue
            if rest:
                self.comprehension(node, rest, env, out)
            elif isinstance(out, list):
                if len(out) >= MAX_LIST:
                    raise CodeRefused(self.line, f"a list has at most {MAX_LIST} entries")
                out.append(self.expr(node.elt, env))
            else:
                out[self.key(self.expr(node.key, env))] = self.expr(node.value, env)

    def key(self, k):
        if isinstance(k, (int, str)) and not isinstance(k, bool):
            return k
        raise StepError(f"a dict's key is a number or a string, not {_kind(k)}")

    def truth(self, v) -> bool:
        if isinstance(v, Val):
            raise StepError("an array is neither true nor false: compare numbers in if, or use np.where")
        return bool(v)

    def iterable(self, v):
        if isinstance(v, (range, list, tuple)):
            return v
        if isinstance(v, dict):
            return list(v)
        raise StepError(f"cannot loop over {_kind(v)}: loop over range(...), a list or a dict")

    def array(self, v) -> Val:
        """``v`` as a Val: a number becomes a 0-d array."""
        if isinstance(v, Val):
            return v
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return Val(np.float64(v))
        raise StepError(f"{_kind(v)} is not a number or an array")

    def scalar_op(self, op, x, y):
        if isinstance(op, ast.Pow) and type(x) is int and type(y) is int and abs(x) > 1 and \
                y * np.log2(abs(x)) >= 53:
            raise CodeRefused(self.line, "an integer would reach 2**53; the code needs no such number")
        with np.errstate(all="ignore"):
            try:
                out = _PY[type(op)](x, y)
            except ZeroDivisionError:
                raise StepError("a division by zero") from None
            except OverflowError:
                raise StepError("a number overflowed") from None
        if type(out) is int and abs(out) >= MAX_INT:
            raise CodeRefused(self.line, "an integer would reach 2**53; the code needs no such number")
        return out

    def binop(self, op, x, y):
        numbers = (int, float)
        if isinstance(x, numbers) and isinstance(y, numbers) and type(op) in _PY:
            return self.scalar_op(op, x, y)
        if isinstance(x, (list, tuple)) or isinstance(y, (list, tuple)):
            if isinstance(op, ast.Mult):
                seq, n = (x, y) if isinstance(x, (list, tuple)) else (y, x)
                if type(n) is not int:
                    raise StepError("a list times a whole number repeats it")
                if len(seq) * max(n, 0) > MAX_LIST:
                    raise CodeRefused(self.line, f"a list has at most {MAX_LIST} entries")
                for _ in range(0, len(seq) * max(n, 0), 100):
                    self.step()
                return seq * n
            if isinstance(op, ast.Add) and type(x) is type(y):
                if len(x) + len(y) > MAX_LIST:
                    raise CodeRefused(self.line, f"a list has at most {MAX_LIST} entries")
                return x + y
            raise StepError(f"{type(op).__name__} of a list: use np arrays, or loop over the list")
        x, y = self.array(x), self.array(y)
        if isinstance(op, ast.MatMult):
            return self.matmul(x, y)
        if type(op) not in _NP:
            raise CodeRefused(self.line, f"operator {type(op).__name__} on arrays is not supported; use + - * / @ **")
        return self.elementwise(_NP[type(op)], x, y, op)

    def align(self, *vals: Val) -> list:
        """The stacked arrays of ``vals`` aligned for NumPy broadcasting of one sample's shapes."""
        if not self.columns or not any(v.batched for v in vals):
            return [v.arr for v in vals]
        r = max(len(v.shape) for v in vals)
        out = []
        for v in vals:
            if v.batched:
                out.append(v.arr.reshape(v.arr.shape[:1] + (1,) * (r - len(v.shape)) + v.shape))
            else:  # the same for every sample: a leading axis of 1 and the sample's shape
                out.append(v.arr.reshape((1,) + (1,) * (r - len(v.shape)) + v.shape))
        return out

    def elementwise(self, fn, x: Val, y: Val, op=None) -> Val:
        xa, ya = self.align(x, y)
        try:
            shape = np.broadcast_shapes(xa.shape, ya.shape)
        except ValueError:
            word = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}.get(type(op), "it")
            raise StepError(f"shapes {fmt(x.shape)} and {fmt(y.shape)} do not fit for {word} (elementwise): they "
                            f"broadcast only where an axis is equal or 1" + (
                                "; a row against a column: one needs .T" if sorted(x.shape) == sorted(y.shape)
                                else "")) from None
        self.make(shape)
        with np.errstate(all="ignore"):
            out = fn(xa, ya)
        return Val(out, x.batched or y.batched, _layer(x, y))

    def matmul(self, x: Val, y: Val) -> Val:
        if not x.shape or not y.shape:
            raise StepError("@ needs arrays of one or two axes on both sides; for a number use *")
        if len(x.shape) > 2 or len(y.shape) > 2 or x.shape[-1] != y.shape[0]:
            raise StepError(f"{fmt(x.shape)} @ {fmt(y.shape)}: a matrix product needs the columns of the left to "
                            f"equal the rows of the right")
        xa = x.arr if len(x.shape) == 2 else x.arr[..., None, :]
        ya = y.arr if len(y.shape) == 2 else y.arr[..., :, None]
        batched = x.batched or y.batched
        lead = max(x.arr.shape[0] if x.batched else 1, y.arr.shape[0] if y.batched else 1)
        n, k, m = xa.shape[-2], xa.shape[-1], ya.shape[-1]
        self.make(((lead,) if batched else ()) + (n, m), lead * n * k * m)
        out = np.matmul(xa, ya)
        if len(x.shape) == 1:
            out = out[..., 0, :]
        if len(y.shape) == 1:
            out = out[..., 0]
        return Val(out, batched, _layer(x, y))

    def compare(self, op, x, y):
        if isinstance(x, Val) or isinstance(y, Val):
            fn = {ast.Gt: np.greater, ast.Lt: np.less, ast.GtE: np.greater_equal, ast.LtE: np.less_equal,
                  ast.Eq: np.equal, ast.NotEq: np.not_equal}.get(type(op))
            if fn is None:
                raise CodeRefused(self.line, f"{type(op).__name__} of arrays is not supported")
            v = self.elementwise(fn, self.array(x), self.array(y))
            return Val(v.arr.astype(np.float64), v.batched, v.layer)
        try:
            return {ast.Gt: lambda: x > y, ast.Lt: lambda: x < y, ast.GtE: lambda: x >= y, ast.LtE: lambda: x <= y,
                    ast.Eq: lambda: x == y, ast.NotEq: lambda: x != y, ast.In: lambda: x in y,
                    ast.NotIn: lambda: x not in y, ast.Is: lambda: x is y, ast.IsNot: lambda: x is not y}[type(op)]()
        except TypeError:
            raise StepError(f"cannot compare {_kind(x)} with {_kind(y)}") from None

    def attribute(self, v, name: str):
        if v is NP:
            if name not in NP_FUNCTIONS:
                raise CodeRefused(self.line, f"np.{name} is not supported; use np.{', np.'.join(NP_FUNCTIONS)}")
            return Method(NP, name)
        if isinstance(v, Val):
            if name == "T":
                return self.transpose(v)
            if name == "shape":
                return tuple(v.shape)
            if name in ARRAY_ATTRIBUTES:
                return Method(v, name)
        if isinstance(v, (list, dict)) and name in CONTAINER_METHODS:
            if isinstance(v, list) != (name == "append"):
                raise StepError(f".{name} is {'a list' if name == 'append' else 'a dict'}'s")
            return Method(v, name)
        raise CodeRefused(self.line, f".{name} of {_kind(v)} is not supported")

    def transpose(self, v: Val) -> Val:
        n = len(v.shape)
        axes = (0,) + tuple(range(n, 0, -1)) if v.batched else tuple(range(n - 1, -1, -1))
        return Val(np.transpose(v.arr, axes), v.batched, v.layer)

    def index(self, box, key):
        if isinstance(box, (list, tuple)):
            if isinstance(key, slice):
                return box[key]
            if type(key) is not int or not -len(box) <= key < len(box):
                raise StepError(f"index {key!r} is outside the list of {len(box)} entries")
            return box[key]
        if isinstance(box, dict):
            if not isinstance(key, (int, str)) or key not in box:
                raise StepError(f"key {key!r} is not in the dict (its keys: {', '.join(map(repr, list(box)[:12]))})")
            return box[key]
        if isinstance(box, Activation):
            if type(key) is not int or not 1 <= key <= self.b.L:
                raise StepError(f"{'fprime' if box.derivative else 'f'}[{key!r}]: the layers are 1..{self.b.L}")
            return Activation(self, box.derivative, key)
        if isinstance(box, Val):
            parts = key if isinstance(key, tuple) else (key,)
            if not all(p is None or type(p) in (int, slice) for p in parts):
                raise StepError("an array's index is whole numbers, slices (:) and None")
            try:
                out = box.arr[(slice(None),) + parts] if box.batched else box.arr[parts]
            except IndexError as e:
                raise StepError(f"index {key!r} into shape {fmt(box.shape)}: {e}") from None
            self.make(out.shape)
            return Val(out, box.batched, box.layer)
        raise StepError(f"{_kind(box)} cannot be indexed")

    # calls
    def call(self, node, env: dict):
        fn = self.expr(node.func, env)
        args = [self.expr(a, env) for a in node.args]
        kwargs = {kw.arg: self.expr(kw.value, env) for kw in node.keywords}
        if None in kwargs:
            raise CodeRefused(self.line, "** in a call is not supported; name each argument")
        if isinstance(fn, Activation):
            if len(args) != 1 or kwargs:
                raise StepError("f and fprime take one argument")
            return self.activation(fn, self.array(args[0]))
        if isinstance(fn, Builtin):
            return self.builtin(fn.name, args, kwargs)
        if isinstance(fn, Method):
            if fn.owner is NP:
                return self.numpy(fn.name, args, kwargs)
            if isinstance(fn.owner, Val):
                return self.numpy(fn.name, [fn.owner] + args, kwargs, method=True)
            return self.container(fn.owner, fn.name, args)
        raise StepError(f"{_kind(fn)} cannot be called")

    def activation(self, fn: Activation, x: Val) -> Val:
        L = self.b.L
        k = fn.layer if fn.layer is not None else x.layer
        if k is None:
            names = set(self.b.net.activation_names)
            if len(names) != 1:
                raise StepError("which layer's activation? write fprime(a[k]) or fprime[k](x)")
            k = 1
        act = self.b.act(max(1, min(k, L)))
        if fn.derivative and act.output_only:
            raise StepError(f"fprime: {act.name} has a Jacobian, not an elementwise derivative; with its loss the "
                            f"output error is y_hat - y")
        self.make((2,) + x.arr.shape)
        with np.errstate(all="ignore"):
            arr = np.asarray(x.arr, np.float64)
            if act.output_only:  # softmax over one sample's entries
                flat = arr.reshape(arr.shape[0], -1) if x.batched else arr.reshape(1, -1)
                out = act.forward(flat).reshape(arr.shape)
            else:
                z = act.forward(arr)
                out = act.derivative(arr, z) if fn.derivative else z
        return Val(out, x.batched, k)

    def builtin(self, name: str, args: list, kwargs: dict):
        if kwargs:
            raise StepError(f"{name} takes no keywords here")
        if name == "range":
            if not 1 <= len(args) <= 3 or not all(type(a) is int for a in args):
                raise StepError("range takes one to three whole numbers")
            return range(*args)
        if name in ("reversed", "list"):
            seq = list(self.iterable(args[0])) if args else []
            if len(seq) > MAX_LIST:
                raise CodeRefused(self.line, f"a list has at most {MAX_LIST} entries")
            return seq[::-1] if name == "reversed" else seq
        if name == "dict":
            return dict(args[0]) if args and isinstance(args[0], dict) else {}
        if name == "len":
            v = args[0] if len(args) == 1 else None
            if isinstance(v, Val):
                return v.shape[0] if v.shape else 1
            if isinstance(v, (list, tuple, dict, range)):
                return len(v)
            raise StepError("len takes one list, dict or array")
        if name in ("enumerate", "zip"):
            seqs = [list(self.iterable(a)) for a in args]
            if name == "enumerate":
                return list(enumerate(seqs[0])) if len(seqs) == 1 else []
            return list(zip(*seqs))
        if name in ("abs", "float", "int", "min", "max"):
            if all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args) and args:
                if name in ("float", "int", "abs") and len(args) == 1:
                    return {"abs": abs, "float": float, "int": int}[name](args[0])
                if name in ("min", "max"):
                    return (min if name == "min" else max)(args)
            if name == "abs" and len(args) == 1:
                return self.numpy("abs", args, {})
            raise StepError(f"{name} takes numbers here; for arrays use np.{'maximum' if name == 'max' else name}")
        raise StepError(f"{name} cannot be called")

    def container(self, box, name: str, args: list):
        if name == "append":
            if len(box) >= MAX_LIST:
                raise CodeRefused(self.line, f"a list has at most {MAX_LIST} entries")
            box.append(args[0] if len(args) == 1 else None)
            return None
        if name == "get":
            return box.get(args[0], args[1] if len(args) > 1 else None) if args else None
        return list(box.items() if name == "items" else box.keys() if name == "keys" else box.values())

    def reduce(self, fn, v: Val, axis, keepdims: bool) -> Val:
        n = len(v.shape)
        if axis is not None and (type(axis) is not int or not -n <= axis < max(n, 1)):
            raise StepError(f"axis {axis!r}: an array of shape {fmt(v.shape)} has axes 0..{n - 1}")
        if v.batched:
            ax = tuple(range(1, n + 1)) if axis is None else (axis % n) + 1
        else:
            ax = axis
        self.make((v.arr.size,))
        return Val(fn(v.arr, axis=ax, keepdims=bool(keepdims)), v.batched, v.layer)

    def numpy(self, name: str, args: list, kwargs: dict, method: bool = False):
        allowed = {"sum": ("axis", "keepdims"), "mean": ("axis", "keepdims")}.get(name, ())
        for k in kwargs:
            if k not in allowed:
                raise StepError(f"{'.' if method else 'np.'}{name} takes no keyword {k!r} here")
        if name in ("sum", "mean"):
            if len(args) not in (1, 2):
                raise StepError(f"{name} takes an array and an axis")
            axis = args[1] if len(args) == 2 else kwargs.get("axis")
            return self.reduce(np.sum if name == "sum" else np.mean, self.array(args[0]), axis,
                               kwargs.get("keepdims", False))
        if name == "copy":
            return args[0]
        if name in ("zeros", "ones"):
            shape = args[0] if args else None
            shape = (shape,) if type(shape) is int else shape
            if not isinstance(shape, (tuple, list)) or not all(type(s) is int and s >= 0 for s in shape) or \
                    len(shape) > 3:
                raise StepError(f"np.{name} takes a shape: a whole number or a tuple of up to 3")
            self.make(tuple(shape))
            return Val((np.zeros if name == "zeros" else np.ones)(tuple(shape)))
        if name == "reshape":
            shape = tuple(args[1:]) if len(args) > 2 else args[1] if len(args) == 2 else None
            shape = (shape,) if type(shape) is int else shape
            if not isinstance(shape, (tuple, list)) or not all(type(s) is int for s in shape):
                raise StepError("reshape takes a shape, e.g. .reshape(-1, 1)")
            v = self.array(args[0])
            try:
                out = v.arr.reshape((v.arr.shape[0],) + tuple(shape)) if v.batched else v.arr.reshape(shape)
            except ValueError:
                raise StepError(f"an array of shape {fmt(v.shape)} cannot be reshaped to {fmt(tuple(shape))}") from None
            return Val(out, v.batched, v.layer)
        vals = [self.array(a) for a in args]
        if name in ("zeros_like", "ones_like", "exp", "log", "tanh", "sqrt", "abs", "square", "transpose"):
            if len(vals) != 1:
                raise StepError(f"np.{name} takes one array")
            v = vals[0]
            if name == "transpose":
                return self.transpose(v)
            self.make(v.arr.shape)
            fn = {"zeros_like": np.zeros_like, "ones_like": np.ones_like, "exp": np.exp, "log": np.log,
                  "tanh": np.tanh, "sqrt": np.sqrt, "abs": np.abs, "square": np.square}[name]
            with np.errstate(all="ignore"):
                return Val(fn(np.asarray(v.arr, np.float64)), v.batched, v.layer)
        if len(vals) == 3 and name == "where":
            c, x, y = vals
            ca, xa, ya = self.align(c, x, y)
            self.make(np.broadcast_shapes(ca.shape, xa.shape, ya.shape))
            return Val(np.where(ca != 0, xa, ya), c.batched or x.batched or y.batched, _layer(x, y))
        if len(vals) != 2:
            raise StepError(f"{'.' if method else 'np.'}{name} takes two arrays")
        x, y = vals
        if name in ("dot", "matmul"):
            if not x.shape or not y.shape:
                return self.elementwise(np.multiply, x, y)
            return self.matmul(x, y)
        if name == "outer":
            u = Val(x.arr.reshape(x.arr.shape[:1] + (-1, 1)) if x.batched else x.arr.reshape(-1, 1), x.batched, x.layer)
            w = Val(y.arr.reshape(y.arr.shape[:1] + (1, -1)) if y.batched else y.arr.reshape(1, -1), y.batched, y.layer)
            return self.elementwise(np.multiply, u, w)
        fn = {"multiply": np.multiply, "add": np.add, "subtract": np.subtract, "divide": np.divide,
              "maximum": np.maximum, "minimum": np.minimum, "power": np.power}[name]
        return self.elementwise(fn, x, y)


_PY = {ast.Add: lambda x, y: x + y, ast.Sub: lambda x, y: x - y, ast.Mult: lambda x, y: x * y,
       ast.Div: lambda x, y: x / y, ast.FloorDiv: lambda x, y: x // y, ast.Mod: lambda x, y: x % y,
       ast.Pow: lambda x, y: x ** y}
_NP = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide, ast.Pow: np.power}


def _layer(x: Val, y: Val) -> int | None:
    return x.layer if x.layer is not None else y.layer


def _kind(v) -> str:
    if isinstance(v, Val):
        return f"an array of shape {fmt(v.shape)}"
    return {list: "a list", dict: "a dict", tuple: "a tuple", int: "a number", float: "a number",
            range: "a range", type(None): "None", str: "a string", bool: "a boolean"}.get(type(v), "this value")


def _load(target):
    """The target of an augmented assignment, read."""
    node = ast.parse(ast.unparse(target), mode="eval").body
    return ast.copy_location(node, target)


# -- the repair search -----------------------------------------------------------------------------------------
def _candidates(expr, env: dict, run: Run):
    """(old node, new node, text(i)) for each W[..] read as its neighbour layer's, and each transpose added or
    left out, in the order of the expression."""
    for n in ast.walk(expr):
        if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name) and n.value.id == "W":
            try:
                k = run.expr(n.slice, dict(env))
            except (StepError, CodeRefused):
                continue
            if type(k) is not int:
                continue
            for d in (1, -1):
                if 1 <= k + d <= run.b.L:
                    new = ast.Subscript(value=n.value, slice=_shifted(n.slice, d), ctx=ast.Load())
                    yield n, new, _why(n, new, k, k + d, run.columns)
        if isinstance(n, ast.Attribute) and n.attr == "T":
            yield n, n.value, lambda i, n=n: f"with {ast.unparse(n.value)} where you wrote {ast.unparse(n)} (no " \
                                             f"transpose), delta[{i}] is right"
        elif isinstance(n, (ast.Subscript, ast.Name)) and not (isinstance(n, ast.Name) and n.id in ("np", "f", "fprime")):
            new = ast.Attribute(value=n, attr="T", ctx=ast.Load())
            yield n, new, lambda i, n=n, new=new: f"with {ast.unparse(new)} where you wrote {ast.unparse(n)}, " \
                                                  f"delta[{i}] is right"


def _shifted(index, d: int):
    """index + d, written as the student would: i for (i - 1) + 1, i + 1 for i."""
    if isinstance(index, ast.Constant):
        return ast.Constant(index.value + d)
    if isinstance(index, ast.BinOp) and isinstance(index.right, ast.Constant) and type(index.right.value) is int \
            and isinstance(index.op, (ast.Add, ast.Sub)):
        c = index.right.value * (1 if isinstance(index.op, ast.Add) else -1) + d
        if c == 0:
            return index.left
        return ast.BinOp(left=index.left, op=ast.Add() if c > 0 else ast.Sub(), right=ast.Constant(abs(c)))
    return ast.BinOp(left=index, op=ast.Add() if d > 0 else ast.Sub(), right=ast.Constant(abs(d)))


def _why(old, new, k_old: int, k_new: int, columns: bool) -> Callable[[int], str]:
    def text(i: int) -> str:
        where = f"with {ast.unparse(new)} where you wrote {ast.unparse(old)} (W[{k_new}] for W[{k_old}])"
        if k_old == i and k_new == i + 1:
            formula = (f"k_{i} = (W_{i + 1}^T k_{i + 1}) o f'(a_{i})" if columns else
                       f"delta_{i} = (delta_{i + 1} W_{i + 1}) * f'(a_{i})")
            return (f"{where}, delta[{i}] is right (the error reaches layer {i} through the weights of the layer "
                    f"above, W_{i + 1}, not through W_{i}: {formula})")
        return f"{where}, delta[{i}] is right"
    return text


def _swap(expr, old, new):
    """A copy of ``expr`` with the node ``old`` replaced by ``new``."""
    class Swap(ast.NodeTransformer):
        def visit(self, node):
            return new if node is old else super().visit(node)
    return Swap().visit(_shallow_tree(expr, old))


def _shallow_tree(node, keep):
    """A copy of the tree whose nodes are new objects, but ``keep`` is kept (so it can be found)."""
    if node is keep or not isinstance(node, ast.AST):
        return node
    out = type(node)()
    for field, value in ast.iter_fields(node):
        if isinstance(value, list):
            setattr(out, field, [_shallow_tree(v, keep) for v in value])
        else:
            setattr(out, field, _shallow_tree(value, keep))
    for attr in ("lineno", "col_offset", "end_lineno", "end_col_offset"):
        if hasattr(node, attr):
            setattr(out, attr, getattr(node, attr))
    return out


# -- the run and its diagnosis ---------------------------------------------------------------------------------
def _returned(value, L: int, bias: bool) -> tuple[dict, dict]:
    """({layer: dW value}, {layer: db value}) from what backward returned; StepError naming what is expected."""
    def by_layer(v, what):
        if isinstance(v, dict):
            return {k: x for k, x in v.items() if type(k) is int and 1 <= k <= L}
        if isinstance(v, (list, tuple)):
            if len(v) == L + 1:
                return {k: v[k] for k in range(1, L + 1) if v[k] is not None}
            if len(v) == L and all(isinstance(x, Val) for x in v):
                raise StepError(f"{what} has {L} entries: index it by layer, entry 0 unused ([None, dW1, ...], "
                                f"L + 1 entries), or return a dict {{layer: array}}")
        raise StepError(f"{what} is {_kind(v)}: return a list by layer (entry 0 unused), a dict {{layer: array}}, or "
                        f"{{'dW': ..., 'db': ...}}")
    if isinstance(value, dict) and "dW" in value:
        return by_layer(value["dW"], "dW"), by_layer(value["db"], "db") if "db" in value else {}
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, (list, dict, tuple)) for v in value):
        return by_layer(value[0], "dW"), by_layer(value[1], "db")
    if value is None:
        raise StepError("backward returned nothing: return dW (and db), e.g. return {'dW': dW, 'db': db}")
    return by_layer(value, "dW"), {}


def _mean(v, columns: bool) -> np.ndarray:
    """One gradient as the checker takes it: in columns the mean over the samples of a per-sample value."""
    if not isinstance(v, Val):
        raise StepError(f"a gradient is {_kind(v)}, not an array")
    if columns and v.batched:
        return v.arr.mean(axis=0)
    return np.asarray(v.arr, np.float64)


def run_code(net: Network, X, y, source: str, convention: str = "columns", bounds: Bounds | None = None,
             code_bounds: CodeBounds | None = None, cancelled: Callable[[], bool] | None = None) -> dict:
    """Run the student's ``backward`` on (X, y) and check each layer's dW and db, as derive does for equations.

    Returns derive's result: {"passed", "first_error": {"layer", "target", "message", "line"} | None, "layers":
    [{"layer", "dW", "db", "steps": [{"target", "expr", "line", "shape", "error"}]}], "unused": []}; the steps are
    the lines that assigned an entry of that layer (``k[2] = ...``), in the order run. ``first_error.line`` is the
    first line whose value is wrong: a layer's delta whose values are not dL/da (diagnosed, with a repair when one
    is found), a line that fails (a shape error: the student's mathematics), or else the line that stored the
    first wrong gradient. Raises CodeRefused, CodeOverBudget, ValueError (a convention), bounds.Cancelled."""
    if convention not in ("rows", "columns"):
        raise ValueError(f"convention must be one of rows, columns, got {convention!r}")
    bounds, code_bounds = bounds or Bounds.default(), code_bounds or CodeBounds()
    fn = parse_code(source, code_bounds)
    d = Diagnosis(net, X, y)
    b, L, columns = d.b, d.b.L, convention == "columns"
    empty = [{"layer": i, "dW": None, "db": None, "steps": []} for i in range(1, L + 1)]
    diverged = d.diverged()
    if diverged:
        return {"passed": False, "first_error": {"layer": L, "target": f"delta[{L}]", "message": diverged, "line": None},
                "layers": empty, "unused": []}
    true_delta = {i: b.delta[i - 1] * (b.B if columns else 1) for i in range(1, L + 1)}
    run = Run(d, columns, Budget(bounds.max_bytes, bounds.max_cost, cancelled), code_bounds, true_delta)
    env = {"np": NP} if any(isinstance(n, ast.Import) for n in ast.parse(source).body) else {}
    env.update({a.arg: run.argument(a.arg) for a in fn.args.args})
    failed, returned = None, None
    try:
        run.line = fn.lineno
        run.block(fn.body, env)
    except _Return as r:
        returned = r.value
    except (_Break, _Continue):
        raise CodeRefused(run.line, "break and continue belong in a loop") from None
    except StepError as e:
        failed = str(e)
    except CodeRefused:
        raise
    except (ArithmeticError, ValueError, TypeError, IndexError, KeyError) as e:  # NumPy's own refusals
        failed = f"{type(e).__name__}: {e}"
    by_line = {}
    for r in run.records:
        if r["layer"] is not None:
            by_line.setdefault(r["layer"], []).append({k: r[k] for k in ("target", "expr", "line", "shape", "error")})
    extra = {i: {"steps": by_line.get(i, [])} for i in range(1, L + 1)}
    first = None
    if failed is None:
        try:
            dW, db = _returned(returned, L, net.bias)
            arrays = [{} for _ in range(L)]
            for key, grads in (("dW", dW), ("db", db if net.bias else {})):
                for i, v in grads.items():
                    arrays[i - 1][key] = _mean(v, columns)
        except StepError as e:
            failed = str(e)
    if failed is not None:
        i = _layer_of_line(run, fn)
        fix = None
        stmt = _statement_at(fn, run.line)
        if i is not None and stmt is not None and run.first_wrong is None:
            fix = run.repair(stmt, run.env_at_failure, i)
        text = ast.get_source_segment(source, stmt) if stmt is not None else None
        message = f"line {run.line}" + (f", {text.splitlines()[0].strip()}" if text else "") + f": {failed}" + (
            f". Diagnosis: {fix}" if fix else "")
        target = stmt.targets[0] if isinstance(stmt, ast.Assign) else getattr(stmt, "target", None)
        name = (f"{ast.unparse(target.value)}[{i}]" if isinstance(target, ast.Subscript) and i is not None else
                ast.unparse(target) if target is not None else None)
        first = {"layer": i, "target": name, "message": message, "line": run.line}
        arrays = [{} for _ in range(L)]
    expected = {(i, "db"): (net.sizes[i], 1) for i in range(1, L + 1)} if columns else None
    result = verdicts(d, arrays, expected, extra)
    wrong = run.first_wrong
    if first is not None:
        if wrong is not None:  # a wrong value came before the line that fails: it is the first mistake
            first = {"layer": wrong["layer"], "target": wrong["target"], "line": wrong["line"],
                     "message": f"line {wrong['line']}, {wrong['expr']}: {wrong['error']}"}
        result["passed"], result["first_error"] = False, first
    elif result["first_error"] is not None:
        checked = result["first_error"]
        if wrong is not None:
            result["first_error"] = {"layer": wrong["layer"], "target": wrong["target"], "line": wrong["line"],
                                     "message": f"line {wrong['line']}, {wrong['expr']}: {wrong['error']}. "
                                                f"{checked['message']}"}
        else:
            result["first_error"] = {**checked, "line": None}
    elif not any(arrays):
        result["passed"] = False
        result["first_error"] = {"layer": L, "target": f"dW[{L}]", "line": None,
                                 "message": "backward returned no dW: nothing to check"}
    result["unused"] = []
    return result


def _statement_at(fn, line: int):
    """The innermost simple statement on ``line``."""
    found = None
    for node in ast.walk(fn):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.Return, ast.Expr)) and node.lineno == line:
            found = node
    return found


def _layer_of_line(run: Run, fn) -> int | None:
    """The layer the failing line computes: its target's index (k[i] = ... with i a layer number)."""
    stmt = _statement_at(fn, run.line)
    if isinstance(stmt, (ast.Assign, ast.AugAssign)):
        t = stmt.targets[0] if isinstance(stmt, ast.Assign) else stmt.target
        if isinstance(t, ast.Subscript):
            try:
                k = run.expr(t.slice, run.env_at_failure)
            except Exception:  # the index itself cannot be read: no layer
                return None
            return k if type(k) is int and 1 <= k <= run.b.L else None
    return None

