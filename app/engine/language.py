"""The derive language: the student's backward-pass equations, read in their own spelling and mapped onto
one small tree of whitelisted nodes that app/engine/evaluate.py evaluates. Never ``eval``, ``exec`` or
``compile``: the text is parsed with ``ast`` and every node is checked against the whitelist.

Interface:
- ``parse(equations, bounds)`` -> [(kind, layer spec, tree, expr, index)]; DeriveSyntaxError(index,
  position, message) for the first equation that cannot be read. ``position`` is 0-based in the student's
  own text (before the notation is rewritten).
- ``read(expr, index)`` -> ast.Expression: one expression, rewritten, parsed and checked (canonical tree).
- ``expression(node, fail, names=SCALARS, arrays=ARRAYS, outer_at=None, index_ok=...)`` -> ast.expr: one expression node (from
  ``ast.parse``) checked and mapped to the canonical tree; ``fail(node, message)`` is called (and must
  raise) for the first node outside the language. The pasted-code interpreter reuses it for the
  expressions inside statements with its own ``names`` (plain values), ``arrays`` (values indexed by
  layer) and ``index_ok(slice)`` (which indices it reads).
- ``rewrite(text)`` -> (python_text, positions): the question's notation as Python; ``positions[k]`` is
  the student's character for character k of the rewritten text.

Canonical tree (what evaluate.py reads):
  names      W[k], b[k], a[k], z[k] (z[0] is the input), delta[k], y, y_hat, B, L; numbers
  indices    i, L, integers, and i±k / L±k
  operators  + - * / @, x ** n (n a number), unary -, .T, one comparison (< <= > >= == !=) as 0/1
  functions  f(x), fprime(x) (the model's activation of layer k when x is a[k] or z[k], else of the
             layer being computed), every activation by name with its default parameters (sigmoid(x),
             tanh(x), relu(x), ...), sum(x, axis=k, keepdims=b), mean(x, axis=k, keepdims=b), outer(u, v),
             exp(x), log(x), maximum(x, y), where(c, x, y), ones_like(x), zeros_like(x), reshape(x, n, m)
Spellings mapped onto it:
  NumPy      np.dot(x, y), np.matmul(x, y), x.dot(y) -> x @ y; np.multiply(x, y) -> x * y; np.sum,
             np.mean, x.sum(...), x.mean(...) -> sum, mean; np.outer -> outer; np.transpose(x),
             x.transpose() -> x.T; np.exp, np.log, np.tanh, np.maximum, np.where, np.ones_like,
             np.zeros_like; x.reshape(n, m); np.square(x) -> x ** 2; np.sqrt(x) -> x ** 0.5
  notation   W^T and W' -> W.T; f'(x) -> fprime(x); ⊙ and ∘ -> *; u ⊗ v -> outer(u, v); · -> @
Targets: delta[i], dW[i], db[i] for every layer, or for one layer: delta[L], delta[L-1], dW[2]...
Shapes are strict, as in the mathematics: elementwise operations need equal shapes, apart from a
scalar (a number, B, L or a 1x1 value) and, in rows, a bias (n,) added to every row of (B, n). NumPy's
broadcasting of a column against a row is refused with a pointer to outer or @.
Every refusal names the spelling to write instead (REFUSALS holds the fixed ones).
"""
from __future__ import annotations

import ast
import io
import math
import re
import tokenize
from typing import Callable

from .activations import ACTIVATIONS
from .bounds import Bounds

MAX_NODES = 120
MAX_POWER = 8  # x ** n: |n| at most this (a larger power is no step of a backward pass)
ARRAYS = ("W", "b", "a", "z", "delta")
SCALARS = ("y", "y_hat", "B", "L")
FUNCTIONS = ("f", "fprime", "sum", "mean", "outer")
TARGETS = ("delta", "dW", "db")
ELEMENTWISE = ("exp", "log")  # canonical one-argument functions besides the activations
NUMPY = ("dot", "matmul", "multiply", "sum", "mean", "outer", "transpose", "exp", "log", "tanh", "maximum",
         "where", "ones_like", "zeros_like", "square", "sqrt")
METHODS = ("sum", "mean", "dot", "transpose", "reshape")
KNOWN = ", ".join(FUNCTIONS) + ", np." + ", np.".join(NUMPY)

# what to write instead, for the spellings students reach for that the language does not have
REFUSALS = {
    "np.einsum": "np.einsum is not in the language: write the product with @ (a matrix product) or "
                 "outer(u, v) (an outer product)",
    "np.linalg": "np.linalg is not in the language: a backward pass needs only @, .T and elementwise operations",
    "np.random": "np.random is not in the language: a backward pass uses the model's W, b, a, z and no random numbers",
    "np.ones": "np.ones is not in the language: write np.ones_like(x) for ones of x's shape",
    "np.zeros": "np.zeros is not in the language: write np.zeros_like(x) for zeros of x's shape",
    "np.array": "np.array is not in the language: every value is already an array (W[k], a[k], delta[k], ...)",
    "np.diag": "np.diag is not in the language: write the elementwise product * for diag(v) @ x",
    "np.sign": "np.sign is not in the language: write np.where(x > 0, 1, -1)",
    "np.abs": "np.abs is not in the language: write np.where(x > 0, x, -x)",
    "np.clip": "np.clip is not in the language: write np.maximum(x, 0) or np.where(...)",
    "np.power": "np.power is not in the language: write x ** n",
    "np.add": "np.add is not in the language: write x + y",
    "np.subtract": "np.subtract is not in the language: write x - y",
    "np.divide": "np.divide is not in the language: write x / y",
    "np.reshape": "np.reshape is not in the language: write x.reshape(n, m)",
    "np.squeeze": "np.squeeze is not in the language: write x.reshape(n, m)",
    "np.expand_dims": "np.expand_dims is not in the language: write x.reshape(n, 1)",
    "np.T": "np.T is not in the language: write x.T",
    "len": "len is not in the language: B is the batch size and L the number of layers",
    "range": "range is not in the language: one equation gives every layer with the index i (delta[i], dW[i])",
    "print": "print is not in the language: the result shows every step's shape",
    "abs": "abs is not in the language: write np.where(x > 0, x, -x)",
    "max": "max is not in the language: write np.maximum(x, y) (elementwise)",
    "min": "min is not in the language: write np.where(x < y, x, y) (elementwise)",
    "exp": "exp is written np.exp(x)",
    "log": "log is written np.log(x)",
    "dot": "dot is written x @ y or np.dot(x, y)",
    "transpose": "transpose is written x.T or np.transpose(x)",
    "matmul": "matmul is written x @ y",
    "lambda": "lambda is not in the language: write the expression itself (a backward pass needs no functions "
              "of your own)",
    "ifexp": "x if c else y is not in the language: write np.where(c, x, y)",
    "boolop": "and / or are not in the language: write the product of two comparisons, (x > 0) * (y > 0), or "
              "np.where",
    "%": "% is not in the language: write / for a division (⊗ is the outer product)",
    "//": "// is not in the language: write / (the language has no integer division)",
    "^": "^ is not a power in Python: write x ** 2 for a power, or W^T (W.T) for a transpose",
    "&": "& is not in the language: write the product of two comparisons, (x > 0) * (y > 0)",
    "|": "| is not in the language: write np.maximum of two comparisons, np.maximum(x > 0, y > 0)",
    "<<": "<< is not in the language: write * 2 ** k",
    ">>": ">> is not in the language: write / 2 ** k",
    "~": "~ is not in the language: write 1 - (comparison) for its negation",
    "not": "not is not in the language: write 1 - (comparison) for its negation",
    "slice": "slicing is not in the language: index a whole layer (W[k], delta[k]); sum(x, axis=0) reduces, "
             "x.T transposes, x.reshape(n, m) reshapes",
    ".T()": ".T is an attribute, not a method: write x.T without () (or x.transpose())",
    ".shape": ".shape is not in the language: B is the batch size and L the number of layers",
    "chain": "one comparison at a time: write (x > 0) * (x < 1) for 0 < x < 1",
    "list": "a list or tuple is not a value here: every value is an array (W[k], a[k], delta[k], ...)",
    "bool": "True and False are not numbers here: write 1 or 0",
    "string": "a string is not a value here: every value is an array (W[k], a[k], delta[k], ...) or a number",
    "derivative": "the derivative of the layer's activation is written fprime(x) (or f'(x)), e.g. fprime(a[i])",
    "math": "the math module is not in the language: write np.{attr}",
}

_MATH = ("exp", "log", "tanh", "sqrt")


class DeriveSyntaxError(ValueError):
    """Equation ``index`` (0-based) cannot be read at character ``position`` (0-based)."""

    def __init__(self, index: int, position: int, message: str):
        super().__init__(f"equation {index}, position {position}: {message}")
        self.index, self.position, self.message = index, position, message


# -- the question's notation, as Python -----------------------------------------------------------------
_OPS = {"⊙": "*", "∘": "*", "⊗": "%", "·": "@", "×": "*", "−": "-"}  # the same width: positions stay 1:1


def rewrite(text: str) -> tuple[str, list[int]]:
    """The question's notation as Python: W^T and W' -> W.T, f'(x) -> fprime(x), ⊙ ∘ × -> *, ⊗ -> % (read
    as outer by ``expression``), · -> @, − -> -. Returns (python text, positions): ``positions[k]`` is the
    character of ``text`` that character k of the result comes from (len(result) + 1 entries: the last one
    is the end).

    Read token by token (``tokenize``) so an apostrophe is a prime and ^T a transpose only where they
    follow a value; the rest passes through unchanged, and is parsed, checked and refused as written."""
    chars = [_OPS.get(c, c) for c in text]
    src = "".join(chars)
    out, pos, k = [], [], 0
    # a prime opens an unterminated string for tokenize: mark each prime that follows a value first
    primes = _primes(src)
    if primes:
        src = "".join("\x00" if n in primes else c for n, c in enumerate(src))
    tokens = _tokens(src)
    while k < len(src):
        c = src[k]
        if c == "\x00":
            before = src[:k]
            called = src[k + 1:].lstrip().startswith("(")
            if re.search(r"(?<![\w.])f$", before) and called:
                out.append("prime")
                pos += [k] * 5  # f' -> fprime: the prime is five characters
            elif re.search(r"(?<![\w.])[A-Za-z_]\w*$", before) and called:  # sigmoid'(a): refused, naming fprime
                out.append("_prime")
                pos += [k] * 6
            else:
                out.append(".T")
                pos += [k, k]
            k += 1
            continue
        if c == "^" and k in tokens:
            m = re.match(r"\^\s*T(?!\w)", src[k:])
            if m:
                out.append(".T")
                pos += [k, k + m.end() - 1]
                k += m.end()
                continue
        out.append(c)
        pos.append(k)
        k += 1
    pos.append(len(text))
    return "".join(out), pos


def _primes(src: str) -> list[int]:
    """The offsets of each ' that follows a value (W', (x)', f'); a quote elsewhere opens a string, which is
    skipped to its end (and refused as a string later)."""
    found, k, quote = [], 0, None
    while k < len(src):
        c = src[k]
        if quote:
            quote = None if c == quote else quote
        elif c == "'" and k and (src[k - 1].isalnum() or src[k - 1] in "_)]'") and (k - 1) not in found[-1:] or \
                c == "'" and found and found[-1] == k - 1:
            found.append(k)
        elif c in "'\"":
            quote = c
        k += 1
    return found


def _tokens(src: str) -> set[int]:
    """The offsets of the operator tokens of a one-line text (a ^ inside a comment is no operator)."""
    found = set()
    try:
        for t in tokenize.generate_tokens(io.StringIO(src.replace("\n", " ")).readline):
            if t.type == tokenize.OP:
                found.add(t.start[1])
    except (tokenize.TokenError, SyntaxError, IndentationError):
        found = {m.start() for m in re.finditer(r"\^", src)}  # unreadable: parse reports it, with its position
    return found


# -- the whitelist ---------------------------------------------------------------------------------------
def _index_ok(node) -> bool:
    """i, L, an integer, or i/L plus or minus an integer."""
    if isinstance(node, ast.Name):
        return node.id in ("i", "L")
    if isinstance(node, ast.Constant):
        return type(node.value) is int
    return (isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)) and
            isinstance(node.left, ast.Name) and node.left.id in ("i", "L") and
            isinstance(node.right, ast.Constant) and type(node.right.value) is int)


def _dotted(node) -> str | None:
    """'np.linalg.norm' for a chain of names, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id] + parts[::-1])
    return None


def _at(new, old):
    return ast.copy_location(new, old)


def _call(name: str, args: list, node, keywords=()) -> ast.Call:
    return _at(ast.Call(func=_at(ast.Name(name, ast.Load()), node), args=args, keywords=list(keywords)), node)


def _binop(left, op, right, node) -> ast.BinOp:
    return _at(ast.BinOp(left=left, op=op, right=right), node)


def _transpose(x, node) -> ast.Attribute:
    return _at(ast.Attribute(value=x, attr="T", ctx=ast.Load()), node)


_BINOPS = {ast.Add: None, ast.Sub: None, ast.Mult: None, ast.Div: None, ast.MatMult: None, ast.Pow: None,
           ast.Mod: "%", ast.FloorDiv: "//", ast.BitXor: "^", ast.BitAnd: "&", ast.BitOr: "|",
           ast.LShift: "<<", ast.RShift: ">>"}


def expression(node, fail: Callable, names=SCALARS, arrays=ARRAYS, outer_at: Callable | None = None,
               index_ok: Callable = _index_ok) -> ast.expr:
    """The canonical tree of one expression node (see the module docstring), or ``fail(node, message)``
    (which must raise) at the first node outside the language, with the spelling to write instead.

    ``names``: the plain names allowed (y, y_hat, B, L); ``arrays``: the names indexed by layer (W[k]...).
    ``outer_at(node)``: whether a % BinOp was written ⊗ (the outer product); default: never.
    ``index_ok(slice)``: whether an array's index is allowed (default: i, L, an integer, i±k, L±k)."""
    def go(n):
        return expression(n, fail, names, arrays, outer_at, index_ok)

    def keyword(kw, call_name):
        if kw.arg not in ("axis", "keepdims"):
            fail(kw.value, f"{call_name} takes only axis= and keepdims=" if kw.arg else
                 f"{call_name} takes axis= and keepdims= by name")
        v = kw.value
        if kw.arg == "axis" and isinstance(v, ast.UnaryOp) and isinstance(v.op, ast.USub) \
                and isinstance(v.operand, ast.Constant) and type(v.operand.value) is int:
            v = _at(ast.Constant(-v.operand.value), v)
        ok = isinstance(v, ast.Constant) and (
            (v.value is None or type(v.value) is int) if kw.arg == "axis" else type(v.value) is bool)
        if not ok:
            fail(kw.value, "axis is 0, 1, -1 or None" if kw.arg == "axis" else "keepdims is True or False")
        return ast.keyword(arg=kw.arg, value=v)

    def reduce(name, x, n, extra_args=(), shown=None):
        if extra_args:
            fail(n, f"{shown or name} takes the axis by name: {shown or name}(x, axis=0)")
        return _call(name, [go(x)], n, [keyword(kw, name) for kw in n.keywords])

    def arity(n, want, name):
        if len(n.args) != want or (n.keywords and name not in ("sum", "mean")):
            if n.keywords and len(n.args) == want:
                fail(n, f"{name} takes no keyword {n.keywords[0].arg!r}")
            fail(n, f"{name} takes {want} argument{'s' if want != 1 else ''}")
        if any(isinstance(a, ast.Starred) for a in n.args):
            fail(n, f"{name} takes its arguments written out, not *args")

    if isinstance(node, ast.Expression):
        return _at(ast.Expression(body=go(node.body)), node)
    if isinstance(node, ast.BinOp):
        word = _BINOPS.get(type(node.op), type(node.op).__name__)
        if isinstance(node.op, ast.Mod) and outer_at and outer_at(node):
            return _call("outer", [go(node.left), go(node.right)], node)
        if word:
            fail(node, REFUSALS.get(word, f"operator {word} is not in the language (+ - * / @ **)"))
        if isinstance(node.op, ast.Pow):
            e = node.right
            sign = -1 if isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.USub) else 1
            e = e.operand if isinstance(e, ast.UnaryOp) and isinstance(e.op, (ast.USub, ast.UAdd)) else e
            if not (isinstance(e, ast.Constant) and type(e.value) in (int, float)):
                fail(node.right, "x ** n takes a number n (a power such as x ** 2); for e ** x write np.exp(x)")
            if not abs(e.value) <= MAX_POWER:
                fail(node.right, f"x ** n takes a number n between -{MAX_POWER} and {MAX_POWER}")
            return _binop(go(node.left), ast.Pow(), _at(ast.Constant(sign * e.value), node.right), node)
        return _binop(go(node.left), node.op, go(node.right), node)
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.Not):
            fail(node, REFUSALS["not"])
        if isinstance(node.op, ast.Invert):
            fail(node, REFUSALS["~"])
        return _at(ast.UnaryOp(op=node.op, operand=go(node.operand)), node)
    if isinstance(node, ast.Constant):
        if type(node.value) is bool:
            fail(node, REFUSALS["bool"])
        if isinstance(node.value, str):
            fail(node, f"{node.value!r} is not a number: " + REFUSALS["string"])
        if type(node.value) not in (int, float):
            fail(node, f"{node.value!r} is not a number")
        if not abs(node.value) <= 1e15:
            fail(node, f"{node.value!r} is too large a number (at most 1e15)")
        return node
    if isinstance(node, ast.Name):
        if node.id not in names:
            if node.id in arrays:
                hint = f"; write {node.id}[k]"
            elif node.id in ACTIVATIONS or node.id in FUNCTIONS:
                hint = f"; {node.id} is a function: write {node.id}(x)"
            elif node.id in ("np", "numpy", "math"):
                hint = f"; {node.id} alone is not a value: write np.exp(x), np.sum(x, axis=0), ..."
            else:
                hint = ""
            fail(node, f"unknown name {node.id!r}: the language knows {', '.join(arrays)} (indexed) and "
                       f"{', '.join(names)}{hint}")
        return node
    if isinstance(node, ast.Subscript):
        if isinstance(node.slice, (ast.Slice, ast.Tuple)) or isinstance(node.value, ast.Subscript):
            fail(node.slice if not isinstance(node.value, ast.Subscript) else node, REFUSALS["slice"])
        if not (isinstance(node.value, ast.Name) and node.value.id in arrays):
            fail(node, f"only {', '.join(arrays)} can be indexed (by layer)")
        if not index_ok(node.slice):
            fail(node.slice, "an index is i, L, a number, or i/L plus or minus a number")
        return node
    if isinstance(node, ast.Attribute):
        dotted = _dotted(node)
        if dotted in ("np.pi", "np.e", "math.pi", "math.e"):
            fail(node, f"{dotted} is not in the language: write the number, {getattr(math, node.attr)!r}")
        if dotted and dotted.split(".")[0] in ("np", "numpy", "math"):
            fail(node, f"{dotted} is not a value in the language; its functions are called: {KNOWN}")
        if node.attr == "shape":
            fail(node, f"attribute .shape is not in the language: " + REFUSALS[".shape"].split(": ", 1)[1])
        if node.attr != "T":
            fail(node, f"attribute .{node.attr} is not allowed; only .T (transpose)")
        return _transpose(go(node.value), node)
    if isinstance(node, ast.Call):
        return _read_call(node, go, fail, reduce, arity)
    if isinstance(node, ast.Compare):
        if len(node.ops) != 1:
            fail(node, REFUSALS["chain"])
        if isinstance(node.ops[0], (ast.Is, ast.IsNot, ast.In, ast.NotIn)):
            fail(node, "is / in are not in the language: compare values with < <= > >= == !=")
        return _at(ast.Compare(left=go(node.left), ops=node.ops, comparators=[go(node.comparators[0])]), node)
    if isinstance(node, ast.IfExp):
        fail(node, REFUSALS["ifexp"])
    if isinstance(node, ast.Lambda):
        fail(node, REFUSALS["lambda"])
    if isinstance(node, ast.BoolOp):
        fail(node, REFUSALS["boolop"])
    if isinstance(node, (ast.List, ast.Tuple, ast.Set, ast.Dict)):
        fail(node, REFUSALS["list"])
    fail(node, f"{type(node).__name__} is not in the language")


def _read_call(node, go, fail, reduce, arity):
    """A call in any of the spellings: canonical functions, NumPy's, methods, activations by name."""
    func = node.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in ("np", "numpy"):
        name = func.attr
        if name not in NUMPY:
            fail(node, REFUSALS.get(f"np.{name}", f"np.{name} is not in the language; it has np."
                                                  + ", np.".join(NUMPY)))
        if name in ("sum", "mean"):
            if not node.args:
                fail(node, f"np.{name} takes the array first: np.{name}(x, axis=0)")
            return reduce(name, node.args[0], node, node.args[1:], f"np.{name}")
        want = {"where": 3, "dot": 2, "matmul": 2, "multiply": 2, "outer": 2, "maximum": 2}.get(name, 1)
        arity(node, want, f"np.{name}")
        args = [go(a) for a in node.args]
        if name in ("dot", "matmul"):
            return _binop(args[0], ast.MatMult(), args[1], node)
        if name == "multiply":
            return _binop(args[0], ast.Mult(), args[1], node)
        if name == "transpose":
            return _transpose(args[0], node)
        if name == "square":
            return _binop(args[0], ast.Pow(), _at(ast.Constant(2), node), node)
        if name == "sqrt":
            return _binop(args[0], ast.Pow(), _at(ast.Constant(0.5), node), node)
        return _call(name, args, node)
    if isinstance(func, ast.Attribute):
        dotted = _dotted(func)
        head = dotted.split(".")[0] if dotted else None
        if head in ("np", "numpy") and dotted.count(".") >= 2:
            sub = dotted.split(".")[1]
            fail(node, REFUSALS.get(f"np.{sub}", f"{dotted} is not in the language; it has np." + ", np.".join(NUMPY)))
        if head == "math":
            fail(node, REFUSALS["math"].format(attr=func.attr if func.attr in _MATH else "exp"))
        if head in ACTIVATIONS or head == "torch" or head == "F":
            fail(node, f"{dotted} is not in the language: write the activation by name, {', '.join(ACTIVATIONS)}")
        method, x = func.attr, func.value
        if method == "T":
            fail(node, REFUSALS[".T()"])
        if method not in METHODS:
            go(x)  # left to right: the value the method is called on is refused first
            fail(node, f"method .{method}() is not in the language; the methods are "
                       + ", ".join(f".{m}()" for m in METHODS) + " and the attribute .T")
        if method in ("sum", "mean"):
            return reduce(method, x, node, node.args, f"x.{method}")
        if method == "transpose":
            if node.args or node.keywords:
                fail(node, "x.transpose() takes no axes here: it swaps the two axes, as x.T")
            return _transpose(go(x), node)
        if method == "dot":
            arity(node, 1, ".dot")
            return _binop(go(x), ast.MatMult(), go(node.args[0]), node)
        args = node.args[0].elts if len(node.args) == 1 and isinstance(node.args[0], ast.Tuple) else node.args
        if node.keywords or not 1 <= len(args) <= 2 or not all(_shape_int(a) is not None for a in args):
            fail(node, "x.reshape(n, m) takes one or two whole numbers (one of them may be -1)")
        return _call("reshape", [go(x)] + [_at(ast.Constant(_shape_int(a)), a) for a in args], node)
    if not isinstance(func, ast.Name):
        if isinstance(func, ast.Lambda):
            fail(func, REFUSALS["lambda"])
        fail(node, f"unknown function; the language has {KNOWN} and the activations by name, "
                   f"{', '.join(ACTIVATIONS)}")
    name = func.id
    if name in FUNCTIONS:
        arity(node, 2 if name == "outer" else 1, name)
        if name in ("sum", "mean"):
            return reduce(name, node.args[0], node)
        return _call(name, [go(a) for a in node.args], node)
    if name in ACTIVATIONS:
        arity(node, 1, name)
        return _call(name, [go(node.args[0])], node)
    if name in REFUSALS:
        fail(node, REFUSALS[name])
    if re.fullmatch(r"(d_?|f_?)?(" + "|".join(ACTIVATIONS) + r"|f|act|activation)(_?prime|_?deriv\w*|_?grad|_?d)?",
                    name) and name not in ACTIVATIONS:
        fail(node, f"unknown function {name!r}: " + REFUSALS["derivative"])
    fail(node, f"unknown function {name!r}; the language has {KNOWN}; "
               f"the activations by name are {', '.join(ACTIVATIONS)}")


def _shape_int(node) -> int | None:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
            and node.operand.value == 1 and type(node.operand.value) is int:
        return -1
    if isinstance(node, ast.Constant) and type(node.value) is int and 0 < node.value <= 1 << 24:
        return node.value
    return None


# -- one equation ----------------------------------------------------------------------------------------
_TARGET = re.compile(r"^\s*(delta|dW|db)\s*\[\s*(i|L|L\s*-\s*\d+|\d+)\s*\]\s*$")


def read(expr: str, index: int = 0) -> ast.Expression:
    """One expression in any spelling as its canonical tree (ast.Expression); DeriveSyntaxError(index,
    position in ``expr``, message) when it cannot be read. Bounds: MAX_NODES parts."""
    lead = len(expr) - len(expr.lstrip())
    text, positions = rewrite(expr.strip())

    def where(offset: int) -> int:
        return lead + positions[max(0, min(offset, len(positions) - 1))]

    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as e:
        raise DeriveSyntaxError(index, where(max(0, (e.offset or 1) - 1)), _syntax_message(e, text)) from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise DeriveSyntaxError(index, lead, f"an expression has at most {MAX_NODES} parts")

    def fail(n, message):
        raise DeriveSyntaxError(index, where(getattr(n, "col_offset", 0)), message)

    def outer_at(n) -> bool:  # the % between the operands: was it written ⊗?
        k = text.find("%", n.left.end_col_offset, n.right.col_offset)
        return k >= 0 and expr.strip()[positions[k]] == "⊗"

    return expression(tree, fail, outer_at=outer_at)


def _syntax_message(e: SyntaxError, text: str) -> str:
    if "unterminated string" in (e.msg or "") or "EOL while scanning" in (e.msg or ""):
        return (f"syntax error: {e.msg} (a quote ' is a transpose only right after a value, W' or (x)', "
                f"and f'(x) is fprime(x))")
    return f"syntax error: {e.msg}"


def parse(equations: list[dict], bounds: Bounds | None = None) -> list[tuple[str, str, ast.Expression, str, int]]:
    """[(kind, layer spec, tree, expr, index)] for each equation; DeriveSyntaxError naming the one that fails.

    At most ``bounds.max_equations`` equations of ``bounds.max_expr_chars`` characters (default:
    Bounds.default()) and MAX_NODES parts each. ``tree`` is canonical (``read``); ``expr`` the student's text."""
    bounds = bounds or Bounds.default()
    max_equations, max_chars = bounds.max_equations, bounds.max_expr_chars
    if not isinstance(equations, (list, tuple)) or not equations:
        raise DeriveSyntaxError(0, 0, "give at least one equation {target, expr}")
    if len(equations) > max_equations:
        raise DeriveSyntaxError(max_equations, 0, f"at most {max_equations} equations")
    out = []
    for k, eq in enumerate(equations):
        if not isinstance(eq, dict) or not isinstance(eq.get("target"), str) or not isinstance(eq.get("expr"), str):
            raise DeriveSyntaxError(k, 0, "an equation is {\"target\": \"delta[i]\", \"expr\": \"...\"}")
        m = _TARGET.match(eq["target"])
        if not m:
            raise DeriveSyntaxError(k, 0, f"target {eq['target']!r}: write delta[i], dW[i] or db[i], or name "
                                          f"one layer: delta[L], delta[L-1], dW[2]")
        expr = eq["expr"]
        if len(expr) > max_chars:
            raise DeriveSyntaxError(k, max_chars, f"an expression has at most {max_chars} characters")
        out.append((m.group(1), re.sub(r"\s", "", m.group(2)), read(expr, k), expr.strip(), k))
    return out
