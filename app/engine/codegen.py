"""Export as code: a standalone NumPy script that does backprop for one network, written out by hand.

``numpy_script(net, X, y)`` returns the text of a Python script that needs NumPy alone. It holds
the network's current weights (every float written with ``repr``, which round-trips float64
exactly), a small sample batch, and the forward and backward passes unrolled layer by layer in
the engine's matrix form (docs/api.md):

    a1 = X @ W1.T + b1          z1 = f1(a1)            ... y_hat = zL
    deltaL = dL/daL             dWi = delta_i.T @ z_{i-1}   dbi = delta_i.sum(axis=0)
    dz_{i-1} = delta_i @ Wi     delta_{i-1} = dz_{i-1} * f'(a_{i-1})

with the shape of every quantity in a comment, so a student can read it next to their own code.
Run as a script it checks its own gradients against central finite differences and exits 1 when
a tensor's relative error exceeds gradcheck.TOLERANCE; with ``--json`` it prints the loss and the gradients
(``{"loss": float, "layers": [{"dW": [[...]], "db": [...] | null}]}``) in the engine's layout.

Every formula comes from the activation's or loss's own export snippets (activations.py,
losses.py), which mirror its numerics, so the script's gradients agree with
``Network.full_backward`` to rounding. One emitter per section of the script, in order.
"""
from __future__ import annotations

import math

import numpy as np

from .gradcheck import TOLERANCE
from .network import Network

SAMPLE_ROWS = 8
EPS = 1e-6
WIDTH = 100       # wrap long array literals at about this many characters
COMMENT_COL = 44  # shape comments start in this column when the code is shorter

RULE = "# " + "-" * 98


# -- literals ----------------------------------------------------------------------------------
def _num(v: float) -> str:
    """A float literal that reads back as exactly the same float64."""
    v = float(v)
    if math.isnan(v):
        return "np.nan"
    if math.isinf(v):
        return "np.inf" if v > 0 else "-np.inf"
    return repr(v)


def _wrap(items: list[str], indent: str, width: int = WIDTH) -> list[str]:
    """Comma-separated items broken into lines no longer than ``width`` (where possible)."""
    lines, cur = [], ""
    for item in items:
        piece = item + ","
        if cur and len(indent) + len(cur) + 1 + len(piece) > width:
            lines.append(indent + cur)
            cur = piece
        else:
            cur = f"{cur} {piece}" if cur else piece
    if cur:
        lines.append(indent + cur)
    lines[-1] = lines[-1][:-1]  # no comma after the last item
    return lines


def _row(values, indent: str) -> list[str]:
    items = [_num(v) for v in values]
    one = "[" + ", ".join(items) + "]"
    if len(indent) + len(one) + 1 <= WIDTH:
        return [indent + one]
    body = _wrap(items, indent + " ")
    body[0] = indent + "[" + body[0][len(indent) + 1:]
    return body[:-1] + [body[-1] + "]"]


def _array(name: str, arr: np.ndarray, comment: str) -> list[str]:
    """``name = np.array(...)  # comment`` with one matrix row per line."""
    arr = np.asarray(arr, np.float64)
    if arr.ndim == 1:
        one = f"{name} = np.array([{', '.join(_num(v) for v in arr)}])"
        if len(one) + len(comment) + 4 <= WIDTH:
            return [f"{one}  # {comment}"]
        return [f"{name} = np.array([  # {comment}"] + _wrap([_num(v) for v in arr], "    ") + ["])"]
    lines = [f"{name} = np.array([  # {comment}"]
    for r in arr:
        row = _row(r, "    ")
        row[-1] += ","
        lines += row
    return lines + ["])"]


def _code(code: str, comment: str = "", indent: str = "    ") -> str:
    """A line of code with its comment aligned in COMMENT_COL."""
    line = indent + code
    if not comment:
        return line
    return f"{line.ljust(COMMENT_COL - 1)} # {comment}" if len(line) < COMMENT_COL - 1 else f"{line}  # {comment}"


def _shape(*dims) -> str:
    return "(" + ", ".join(map(str, dims)) + ("," if len(dims) == 1 else "") + ")"


# -- what every emitter reads ------------------------------------------------------------------
class _Script:
    """The network and sample batch one script is written for, with the names the emitters share."""

    def __init__(self, net: Network, X: np.ndarray, y: np.ndarray):
        self.net, self.X, self.y = net, X, y
        self.B, self.n, self.L = X.shape[0], net.sizes, net.n_layers
        self.p, self.K = net.sizes[0], net.sizes[-1]
        self.acts = [layer.f for layer in net.acts]
        self.loss = net.loss
        self.fused = net.loss.is_fused(net.activation_names[-1])
        self.reg = net.regularization if net.regularization != "none" and net.reg_rate != 0.0 else None
        self.bias = net.bias
        self.pnames = [f"{k}{i}" for i in range(1, self.L + 1) for k in (("W", "b") if self.bias else ("W",))]
        self.plist = ", ".join(self.pnames)
        self.unpack = f"    {self.plist}{',' if len(self.pnames) == 1 else ''} = params"
        self.cache = ", ".join(f"a{i}, z{i}" for i in range(1, self.L + 1))
        self.loss_arg = f"a{self.L}" if self.fused else f"z{self.L}"  # fused losses read the logits

    def prev(self, i: int) -> str:
        """The input of layer i: X for the first layer, z_{i-1} after that."""
        return "X" if i == 1 else f"z{i - 1}"


def _plural(k: int, word: str) -> str:
    return f"{k} {word}{'s' if k != 1 else ''}"


# -- one emitter per section ---------------------------------------------------------------------
def _docstring(s: _Script) -> list[str]:
    arch = " -> ".join(map(str, s.n))
    out = ["#!/usr/bin/env python3",
           f'"""Backpropagation written out by hand for a {arch} network, with NumPy alone.', "",
           "Exported from Backprop Playground: the network's current weights, a sample batch, the forward",
           "pass, the loss and the backward pass for exactly this architecture, and a gradient check.", "",
           f"Network: {arch}  ({_plural(s.p, 'input')}, {_plural(s.L - 1, 'hidden layer')}, "
           f"{_plural(s.K, 'output')})"]
    for i, f in enumerate(s.acts, start=1):
        shapes = f"W{i} {_shape(s.n[i], s.n[i - 1])}" + (f", b{i} {_shape(s.n[i])}" if s.bias else ", no bias")
        f_doc = f.name + (f"({', '.join(f'{k}={v!r}' for k, v in f.params.items())})" if f.params else "")
        out.append(f"  layer {i}: {shapes}, {f_doc}{' (output layer)' if i == s.L else ''}")
    out.append(f"Loss: {s.loss.title}  {s.loss.text}")
    if s.reg == "l2":
        out.append(f"      + (lambda/2) * sum of every squared weight, lambda = {s.net.reg_rate!r} "
                   "(L2; biases not penalized)")
    elif s.reg == "l1":
        out.append(f"      + lambda * sum of every |weight|, lambda = {s.net.reg_rate!r} (L1; biases not penalized)")
    out += ["", "Notation: a batch is a matrix with one sample per ROW; B is the number of rows."]
    rows = [("X", "(B, p)", "the inputs, also called z0"),
            ("a_i = z_{i-1} @ W_i.T" + (" + b_i" if s.bias else ""), "(B, n_i)", "pre-activation of layer i"),
            ("z_i = f_i(a_i)", "(B, n_i)", "output of layer i; y_hat = z_L"),
            ("delta_i = dL/da_i", "(B, n_i)", "the error at layer i"),
            ("dz_i = dL/dz_i", "(B, n_i)", ""),
            ("dW_i = delta_i.T @ z_{i-1}", "(n_i, n_{i-1})", "same shape as W_i; the product sums over the batch")]
    if s.bias:
        rows.append(("db_i = delta_i.sum(axis=0)", "(n_i,)", "same shape as b_i"))
    rows += [("dz_{i-1} = delta_i @ W_i", "(B, n_{i-1})", "the error sent down one layer"),
             ("delta_{i-1} = dz_{i-1} * f'(a_{i-1})", "", "elementwise *, because f acts entry by entry")]
    for eq, shp, what in rows:
        out.append(f"  {eq:<31}{shp:<17}{what}".rstrip() if len(eq) < 31 else f"  {eq}  {what}")
    return out + ["", "Run:",
                  "  python this_script.py          gradient check: backprop against central finite differences",
                  "  python this_script.py --json   the loss and gradients as JSON",
                  '"""', "import json", "import sys", "", "import numpy as np", ""]


def _parameters(s: _Script) -> list[str]:
    n = s.n
    out = [RULE, "# Parameters: the network's weights when it was exported, every digit kept (float64).",
           f"# W_i has one row per unit of layer i and one column per unit of layer i-1: {_shape('n_i', 'n_{i-1}')}.",
           RULE]
    for i, dense in enumerate(s.net.dense, start=1):
        out += _array(f"W{i}", dense.params["W"], f"{_shape(n[i], n[i - 1])}  layer {i}")
        if s.bias:
            out += _array(f"b{i}", dense.params["b"], f"{_shape(n[i])}")
    out += ["", f"# A sample batch: the first {_plural(s.B, 'row')} of the training data (network inputs, "
                "after any feature map)."]
    out += _array("X", s.X, f"{_shape(s.B, s.p)}  B = {s.B} rows of {_plural(s.p, 'input')}")
    out += _array("y", s.y, f"{_shape(s.B, s.K)}  targets")
    if s.reg:
        out += ["", f"LAMBDA = {s.net.reg_rate!r}  # {s.reg.upper()} penalty rate"]
    return out + ["", ""]


def _activations(s: _Script) -> list[str]:
    """The helper definitions, each once, every helper a used one needs (sigmoid for silu) first."""
    used = list({f.name: f for f in s.acts}.values())
    by_name = {f.name: f for f in used}
    from .activations import get_activation  # a helper's helper with default parameters
    order: list = []
    for f in used:
        for need in f.needs:
            if need not in (g.name for g in order):
                order.append(by_name.get(need) or get_activation(need))
    order = [f for f in order if f.helper] + [f for f in used if f.helper and f.name not in {g.name for g in order}]
    out = [RULE, "# Activations (PyTorch's definitions). Their derivatives appear inline in backward()."]
    out += [f.note for f in sorted(used, key=lambda f: f.name != "tanh") if getattr(f, "note", None)]
    out.append(RULE)
    for f in order:
        out += list(f.helper) + ["", ""]
    return out


def _forward(s: _Script) -> list[str]:
    n = s.n
    out = ["def forward(params, X):", '    """Forward pass: the pre-activation a_i and the output z_i of every layer."""',
           s.unpack]
    for i, f in enumerate(s.acts, start=1):
        lhs = f"a{i} = {s.prev(i)} @ W{i}.T" + (f" + b{i}" if s.bias else "")
        out.append(_code(lhs, f"(B, {n[i]}) = (B, {n[i - 1]}) @ ({n[i - 1]}, {n[i]})" + (f" + ({n[i]},)" if s.bias else "")))
        out.append(_code(f"z{i} = {f.call(f'a{i}')}",
                         f"(B, {n[i]})  {f.name}" + (f"; y_hat = z{s.L}" if i == s.L else "")))
    return out + [f"    return {s.cache}", "", ""]


def _loss(s: _Script) -> list[str]:
    if s.fused:
        head, body = f"def data_loss({s.loss_arg}, y):", [line.format(a=s.loss_arg) for line in s.loss.fused_code]
    else:
        head, body = "def data_loss(y_hat, y):", list(s.loss.value_code)
    return [head] + [("    " + line) if line else "" for line in body] + ["", ""]


def _penalty_and_objective(s: _Script) -> list[str]:
    out = ["def penalty(params):"]
    if s.reg is None:
        out += ['    """No regularization: the objective is the data loss alone."""', "    return 0.0"]
    elif s.reg == "l2":
        terms = " + ".join(f"np.sum(W{i}**2)" for i in range(1, s.L + 1))
        out += ['    """L2 penalty (lambda/2) * sum of squared weights; biases are not penalized."""', s.unpack,
                f"    return 0.5 * LAMBDA * ({terms})"]
    else:
        terms = " + ".join(f"np.sum(np.abs(W{i}))" for i in range(1, s.L + 1))
        out += ['    """L1 penalty lambda * sum of |weights|; biases are not penalized."""', s.unpack,
                f"    return LAMBDA * ({terms})"]
    return out + ["", "", "def objective(params, X, y):",
                  '    """J = data loss + penalty: the number whose gradient backward() computes."""',
                  f"    {s.cache} = forward(params, X)", f"    return data_loss({s.loss_arg}, y) + penalty(params)", "", ""]


def _delta(s: _Script, i: int) -> list[str]:
    """delta_i from dz_i by the activation's own snippet, with the shape in each comment."""
    return [_code(code, f"(B, {s.n[i]})" + (f"  {note}" if note else "")) for code, note in s.acts[i - 1].delta_code(i)]


def _backward(s: _Script) -> list[str]:
    n, L = s.n, s.L
    out = ["def backward(params, X, y):",
           '    """Backward pass: J and its gradient with respect to every parameter, layer by layer."""',
           s.unpack, f"    {s.cache} = forward(params, X)", f"    y_hat = z{L}",
           _code("B = X.shape[0]", "the batch size: every loss term carries 1/B"),
           f"    J = data_loss({s.loss_arg}, y) + penalty(params)"]
    for i in range(L, 0, -1):
        out.append("")
        f = s.acts[i - 1]
        if i == L and s.fused:
            out.append(f"    # Output layer {L} ({f.name} + {s.loss.title}): dL/dy_hat and f'(a{L}) cancel, "
                       "leaving (y_hat - y) / B.")
            out.append(_code(f"delta{L} = (y_hat - y) / B", f"(B, {n[L]})  dL/da{L}"))
        elif i == L:
            out.append(f"    # Output layer {L} ({f.name}, {s.loss.name}): dL/dy_hat of the loss, then through f'(a{L}).")
            out.append(_code(f"dz{L} = {s.loss.dz_code}", f"(B, {n[L]})  dL/dy_hat"))
            out += _delta(s, i)
        else:
            out.append(f"    # Layer {i} ({f.name}): the error dz{i} sent down from layer {i + 1}, times f'(a{i}) "
                       "elementwise.")
            out += _delta(s, i)
        out.append(_code(f"dW{i} = delta{i}.T @ {s.prev(i)}",
                         f"({n[i]}, {n[i - 1]}) = ({n[i]}, B) @ (B, {n[i - 1]}), the shape of W{i}"))
        if s.bias:
            out.append(_code(f"db{i} = delta{i}.sum(axis=0)", f"({n[i]},)  summed over the rows"))
        if i > 1:
            out.append(_code(f"dz{i - 1} = delta{i} @ W{i}",
                             f"(B, {n[i - 1]}) = (B, {n[i]}) @ ({n[i]}, {n[i - 1]}), sent down to layer {i - 1}"))
    if s.reg:
        term, what = ("LAMBDA * W{i}", "d/dW (lambda/2) sum W^2 = lambda W") if s.reg == "l2" else \
            ("LAMBDA * np.sign(W{i})", "d/dW lambda sum |W| = lambda sign(W)")
        out += ["", f"    # {s.reg.upper()} penalty: {what}, added to every weight gradient."]
        out += [_code(f"dW{i} = dW{i} + {term.format(i=i)}", f"({n[i]}, {n[i - 1]})") for i in range(1, L + 1)]
    return out + ["", f"    return J, [{', '.join('d' + k for k in s.pnames)}]", "", ""]


_GRADIENT_CHECK = '''\
def numerical_gradient(params, X, y, k):
    """(J(w + eps) - J(w - eps)) / (2 eps) for every entry w of params[k]."""
    P = params[k]
    grad = np.zeros_like(P)
    for idx in np.ndindex(*P.shape):
        old = P[idx]
        P[idx] = old + EPS
        plus = objective(params, X, y)
        P[idx] = old - EPS
        minus = objective(params, X, y)
        P[idx] = old  # put back the exact original value
        grad[idx] = (plus - minus) / (2 * EPS)
    return grad


def relative_error(analytic, numeric):
    """||analytic - numeric|| / (||analytic|| + ||numeric||) over a whole tensor; 0 when both are 0."""
    den = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    return 0.0 if den == 0 else float(np.linalg.norm(analytic - numeric) / den)


def gradient_check(params, X, y):
    """Print each tensor's relative error; True when every one is at most TOLERANCE."""
    J, grads = backward(params, X, y)
    print(f"J = {float(J)!r} on a batch of {X.shape[0]} rows")
    print(f"gradient check: backprop against central differences with eps = {EPS}")
    worst = 0.0
    for k, (name, g) in enumerate(zip(PARAM_NAMES, grads)):
        numeric = numerical_gradient(params, X, y, k)
        err = relative_error(g, numeric)
        worst = max(worst, err)
        max_abs = float(np.max(np.abs(g - numeric)))
        verdict = "ok" if err <= TOLERANCE else "WRONG"
        print(f"  d{name:<4} shape {str(g.shape):<9} relative error {err:.2e}   "
              f"max abs error {max_abs:.2e}   {verdict}")
    passed = worst <= TOLERANCE
    print(f"max relative error {worst:.2e}: {'PASSED' if passed else 'FAILED'} (tolerance {TOLERANCE})")
    return passed

'''


def _gradient_check(s: _Script) -> list[str]:
    return [RULE, "# Gradient check: every partial derivative again, by central finite differences.", RULE,
            f"PARAM_NAMES = {s.pnames!r}", f"EPS = {EPS!r}", f"TOLERANCE = {TOLERANCE!r}", "", ""] + \
        _GRADIENT_CHECK.splitlines() + [""]


def _main(s: _Script) -> list[str]:
    out = ["def main(argv):", f"    params = [{s.plist}]", '    if "--json" in argv:',
           "        J, grads = backward(params, X, y)",
           f"        {', '.join('d' + k for k in s.pnames)}{',' if len(s.pnames) == 1 else ''} = grads",
           "        layers = ["]
    out += [f'            {{"dW": dW{i}.tolist(), "db": ' + (f"db{i}.tolist()}}," if s.bias else "None},")
            for i in range(1, s.L + 1)]
    return out + ["        ]", '        print(json.dumps({"loss": float(J), "layers": layers}))', "        return 0",
                  "    return 0 if gradient_check(params, X, y) else 1", "", "",
                  'if __name__ == "__main__":', "    sys.exit(main(sys.argv[1:]))"]


SECTIONS = (_docstring, _parameters, _activations, _forward, _loss, _penalty_and_objective, _backward,
            _gradient_check, _main)


def numpy_script(net: Network, X: np.ndarray, y: np.ndarray, *, max_rows: int = SAMPLE_ROWS) -> str:
    """A standalone NumPy script with ``net``'s weights, the first rows of (X, y), forward, backward,
    a finite-difference gradient check and a ``--json`` gradient dump. X holds network inputs (B, p).

    Raises ValueError when X is not (B, p) with B >= 1, y not (B, K) (1-D allowed for K = 1) or
    max_rows < 1."""
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64)
    p, K = net.sizes[0], net.sizes[-1]
    if y.ndim == 1 and K == 1:
        y = y[:, None]
    if X.ndim != 2 or X.shape[1] != p or X.shape[0] < 1:
        raise ValueError(f"X must have shape (B, {p}) with B >= 1, got {X.shape}")
    if y.ndim != 2 or y.shape != (X.shape[0], K):
        raise ValueError(f"y must have shape ({X.shape[0]}, {K}), got {y.shape}")
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    script = _Script(net, X[:max_rows], y[:max_rows])
    return "\n".join(line for section in SECTIONS for line in section(script)) + "\n"
