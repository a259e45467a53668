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
a tensor's relative error exceeds 1e-5; with ``--json`` it prints the loss and the gradients
(``{"loss": float, "layers": [{"dW": [[...]], "db": [...] | null}]}``) in the engine's layout.

Every formula mirrors the engine's numerics (activations.py, losses.py), so the script's gradients
agree with ``Network.full_backward`` to rounding.
"""
from __future__ import annotations

import math

import numpy as np

from .network import Network

SAMPLE_ROWS = 8
EPS = 1e-6
TOLERANCE = 1e-5  # the engine's gradcheck.TOLERANCE
WIDTH = 100       # wrap long array literals at about this many characters
COMMENT_COL = 44  # shape comments start in this column when the code is shorter

LOSS_DOC = {
    "mse": "mean squared error  L = (1/B) sum_b sum_k (y_hat - y)^2",
    "bce": "binary cross-entropy  L = -(1/B) sum_b sum_k [y log y_hat + (1 - y) log(1 - y_hat)]",
    "cross_entropy": "cross-entropy  L = -(1/B) sum_b sum_k y log y_hat",
}
PYTORCH_DEFAULTS = {"leaky_relu": {"negative_slope": 0.01}, "elu": {"alpha": 1.0},
                    "softplus": {"beta": 1.0, "threshold": 20.0}}


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


# -- activations -------------------------------------------------------------------------------
def _params(f) -> dict:
    """The activation's parameters (leaky slope, elu alpha, softplus beta/threshold) as floats."""
    return {k: float(getattr(f, k)) for k in PYTORCH_DEFAULTS.get(f.name, {})}


def _helper(name: str) -> list[str]:
    """Definition of f(a) for an activation NumPy has no one-word name for."""
    d = PYTORCH_DEFAULTS.get(name, {})
    defs = {
        "sigmoid": ['def sigmoid(a):',
                    '    """1 / (1 + e^-a), written with tanh so that it never overflows.',
                    '',
                    '    Derivative: sigmoid\'(a) = z * (1 - z) with z = sigmoid(a)."""',
                    '    return 0.5 * (1.0 + np.tanh(0.5 * a))'],
        "relu": ['def relu(a):',
                 '    """max(a, 0). Derivative: 1 where a > 0, else 0 (PyTorch takes relu\'(0) = 0)."""',
                 '    return np.maximum(a, 0.0)'],
        "leaky_relu": [f'def leaky_relu(a, negative_slope={d.get("negative_slope")!r}):',
                       '    """a where a > 0, else negative_slope * a (PyTorch\'s default slope 0.01).',
                       '',
                       '    Derivative: 1 where a > 0, else negative_slope."""',
                       '    return np.where(a > 0, a, negative_slope * a)'],
        "elu": [f'def elu(a, alpha={d.get("alpha")!r}):',
                '    """a where a > 0, else alpha * (e^a - 1) (PyTorch\'s default alpha 1).',
                '',
                '    Derivative: 1 where a > 0, else alpha * e^a = z + alpha."""',
                '    return np.where(a > 0, a, alpha * np.expm1(np.minimum(a, 0.0)))'],
        "softplus": [f'def softplus(a, beta={d.get("beta")!r}, threshold={d.get("threshold")!r}):',
                     '    """log(1 + e^(beta a)) / beta; PyTorch returns a itself once beta * a > threshold.',
                     '',
                     '    Derivative: sigmoid(beta * a), and 1 above the threshold."""',
                     '    return np.where(beta * a > threshold, a, np.logaddexp(0.0, beta * a) / beta)'],
        "silu": ['def silu(a):',
                 '    """a * sigmoid(a), also called swish.',
                 '',
                 '    Derivative: s * (1 + a * (1 - s)) with s = sigmoid(a)."""',
                 '    return a * sigmoid(a)'],
        "softmax": ['def softmax(a):',
                    '    """Row-wise e^a / sum(e^a); subtracting the row maximum first avoids overflow.',
                    '',
                    '    Its derivative is a Jacobian per row, J = diag(z) - z z^T; backprop only needs',
                    '    J^T dz = z * (dz - sum(dz * z)), one row at a time."""',
                    '    e = np.exp(a - a.max(axis=1, keepdims=True))',
                    '    return e / e.sum(axis=1, keepdims=True)'],
    }
    return defs[name]


def _call(name: str, params: dict, arg: str) -> str:
    """f(a_i) as code: np.tanh(a1), relu(a1), leaky_relu(a1, 0.2) for a non-default slope."""
    if name == "identity":
        return arg
    if name == "tanh":
        return f"np.tanh({arg})"
    extra = [repr(v) for k, v in params.items() if v != PYTORCH_DEFAULTS[name][k]] if params else []
    if extra and len(params) > 1:  # with several parameters, name them all so the meaning stays plain
        extra = [f"{k}={v!r}" for k, v in params.items()]
    return f"{name}({', '.join([arg] + extra)})"


def _delta_lines(name: str, params: dict, i: int, units: int) -> list[str]:
    """delta_i = dz_i * f'(a_i), the engine's formula for each activation, with the shape."""
    a, z, dz, d = f"a{i}", f"z{i}", f"dz{i}", f"delta{i}"
    shape = f"(B, {units})"
    if name == "identity":
        return [_code(f"{d} = {dz}", f"{shape}  f'(a) = 1")]
    if name == "sigmoid":
        return [_code(f"{d} = {dz} * {z} * (1 - {z})", f"{shape}  f'(a) = z (1 - z)")]
    if name == "tanh":
        return [_code(f"{d} = {dz} * (1 - {z}**2)", f"{shape}  f'(a) = 1 - z^2")]
    if name == "relu":
        return [_code(f"{d} = {dz} * ({a} > 0)", f"{shape}  f'(a) = 1 if a > 0 else 0")]
    if name == "leaky_relu":
        s = _num(params["negative_slope"])
        return [_code(f"{d} = {dz} * np.where({a} > 0, 1.0, {s})", f"{shape}  f'(a) = 1 if a > 0 else {s}")]
    if name == "elu":
        al = _num(params["alpha"])
        return [_code(f"{d} = {dz} * np.where({a} > 0, 1.0, {z} + {al})",
                      f"{shape}  f'(a) = 1 if a > 0 else alpha e^a = z + {al}")]
    if name == "softplus":
        beta, th = params["beta"], _num(params["threshold"])
        ba = a if beta == 1.0 else f"{_num(beta)} * {a}"
        return [_code(f"{d} = {dz} * np.where({ba} > {th}, 1.0, sigmoid({ba}))",
                      f"{shape}  f'(a) = sigmoid({'' if beta == 1.0 else 'beta '}a)")]
    if name == "silu":
        return [_code(f"s{i} = sigmoid({a})", f"{shape}"),
                _code(f"{d} = {dz} * s{i} * (1 + {a} * (1 - s{i}))", f"{shape}  f'(a) = s (1 + a (1 - s))")]
    if name == "softmax":
        return [_code(f"{d} = {z} * ({dz} - ({dz} * {z}).sum(axis=1, keepdims=True))",
                      f"{shape}  J^T dz per row, J = diag(z) - z z^T")]
    raise ValueError(f"no derivative for activation {name!r}")


# -- the script --------------------------------------------------------------------------------
def numpy_script(net: Network, X: np.ndarray, y: np.ndarray, *, max_rows: int = SAMPLE_ROWS) -> str:
    """A standalone NumPy script with ``net``'s weights, the first rows of (X, y), forward, backward,
    a finite-difference gradient check and a ``--json`` gradient dump. X holds network inputs (B, p)."""
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64)
    p, K, L = net.sizes[0], net.sizes[-1], net.n_layers
    if y.ndim == 1 and K == 1:
        y = y[:, None]
    if X.ndim != 2 or X.shape[1] != p or X.shape[0] < 1:
        raise ValueError(f"X must have shape (B, {p}) with B >= 1, got {X.shape}")
    if y.ndim != 2 or y.shape != (X.shape[0], K):
        raise ValueError(f"y must have shape ({X.shape[0]}, {K}), got {y.shape}")
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    X, y = X[:max_rows], y[:max_rows]
    B = X.shape[0]
    n = net.sizes
    names = net.activation_names
    acts = [layer.f for layer in net.acts]
    loss = net.loss.name
    fused = net.loss.fused_with == names[-1]
    reg = net.regularization if net.regularization != "none" and net.reg_rate != 0.0 else None
    bias = net.bias
    Ws = [d.params["W"] for d in net.dense]
    bs = [d.params.get("b") for d in net.dense]
    pnames = [f"{k}{i}" for i in range(1, L + 1) for k in (("W", "b") if bias else ("W",))]
    arch = " -> ".join(map(str, n))

    def prev(i: int) -> str:
        """The input of layer i: X for the first layer, z_{i-1} after that."""
        return "X" if i == 1 else f"z{i - 1}"

    out: list[str] = []
    w = out.append

    # docstring
    w("#!/usr/bin/env python3")
    w(f'"""Backpropagation written out by hand for a {arch} network, with NumPy alone.')
    w("")
    w("Exported from Backprop Playground: the network's current weights, a sample batch, the forward")
    w("pass, the loss and the backward pass for exactly this architecture, and a gradient check.")
    w("")
    w(f"Network: {arch}  ({p} input{'s' if p != 1 else ''}, {L - 1} hidden layer{'s' if L != 2 else ''}, "
      f"{K} output{'s' if K != 1 else ''})")
    for i in range(1, L + 1):
        shapes = f"W{i} {_shape(n[i], n[i - 1])}" + (f", b{i} {_shape(n[i])}" if bias else ", no bias")
        f_par = _params(acts[i - 1])
        f_doc = names[i - 1] + (f"({', '.join(f'{k}={v!r}' for k, v in f_par.items())})" if f_par else "")
        w(f"  layer {i}: {shapes}, {f_doc}{' (output layer)' if i == L else ''}")
    w(f"Loss: {LOSS_DOC[loss]}")
    if reg == "l2":
        w(f"      + (lambda/2) * sum of every squared weight, lambda = {net.reg_rate!r} (L2; biases not penalized)")
    elif reg == "l1":
        w(f"      + lambda * sum of every |weight|, lambda = {net.reg_rate!r} (L1; biases not penalized)")
    w("")
    w("Notation: a batch is a matrix with one sample per ROW; B is the number of rows.")
    rows = [("X", "(B, p)", "the inputs, also called z0"),
            ("a_i = z_{i-1} @ W_i.T" + (" + b_i" if bias else ""), "(B, n_i)", "pre-activation of layer i"),
            ("z_i = f_i(a_i)", "(B, n_i)", "output of layer i; y_hat = z_L"),
            ("delta_i = dL/da_i", "(B, n_i)", "the error at layer i"),
            ("dz_i = dL/dz_i", "(B, n_i)", ""),
            ("dW_i = delta_i.T @ z_{i-1}", "(n_i, n_{i-1})", "same shape as W_i; the product sums over the batch")]
    if bias:
        rows.append(("db_i = delta_i.sum(axis=0)", "(n_i,)", "same shape as b_i"))
    rows += [("dz_{i-1} = delta_i @ W_i", "(B, n_{i-1})", "the error sent down one layer"),
             ("delta_{i-1} = dz_{i-1} * f'(a_{i-1})", "", "elementwise *, because f acts entry by entry")]
    for eq, shp, what in rows:
        w(f"  {eq:<31}{shp:<17}{what}".rstrip() if len(eq) < 31 else f"  {eq}  {what}")
    w("")
    w("Run:")
    w("  python this_script.py          gradient check: backprop against central finite differences")
    w("  python this_script.py --json   the loss and gradients as JSON")
    w('"""')
    w("import json")
    w("import sys")
    w("")
    w("import numpy as np")
    w("")
    rule = "# " + "-" * 98
    w(rule)
    w("# Parameters: the network's weights when it was exported, every digit kept (float64).")
    w(f"# W_i has one row per unit of layer i and one column per unit of layer i-1: {_shape('n_i', 'n_{i-1}')}.")
    w(rule)
    for i in range(1, L + 1):
        out.extend(_array(f"W{i}", Ws[i - 1], f"{_shape(n[i], n[i - 1])}  layer {i}"))
        if bias:
            out.extend(_array(f"b{i}", bs[i - 1], f"{_shape(n[i])}"))
    w("")
    w(f"# A sample batch: the first {B} row{'s' if B != 1 else ''} of the training data (network inputs, "
      "after any feature map).")
    out.extend(_array("X", X, f"{_shape(B, p)}  B = {B} rows of {p} input{'s' if p != 1 else ''}"))
    out.extend(_array("y", y, f"{_shape(B, K)}  targets"))
    if reg:
        w("")
        w(f"LAMBDA = {net.reg_rate!r}  # {reg.upper()} penalty rate")
    w("")
    w("")

    # activations
    helpers = []
    used = list(dict.fromkeys(names))
    need_sigmoid = any(a in ("sigmoid", "silu", "softplus") for a in used)
    for a in (["sigmoid"] if need_sigmoid else []) + [a for a in used if a not in ("identity", "tanh", "sigmoid")]:
        helpers.append(_helper(a))
    w(rule)
    w("# Activations (PyTorch's definitions). Their derivatives appear inline in backward().")
    notes = []
    if "tanh" in used:
        notes.append("# tanh is np.tanh; tanh'(a) = 1 - z**2 with z = tanh(a).")
    if "identity" in used:
        notes.append("# identity: z = a; its derivative is 1.")
    out.extend(notes)
    w(rule)
    for h in helpers:
        out.extend(h)
        w("")
        w("")

    # forward
    plist = ", ".join(pnames)
    cache = ", ".join(f"a{i}, z{i}" for i in range(1, L + 1))
    w("def forward(params, X):")
    w('    """Forward pass: the pre-activation a_i and the output z_i of every layer."""')
    w(f"    {plist}{',' if len(pnames) == 1 else ''} = params")
    for i in range(1, L + 1):
        lhs = f"a{i} = {prev(i)} @ W{i}.T" + (f" + b{i}" if bias else "")
        cm = f"(B, {n[i]}) = (B, {n[i - 1]}) @ ({n[i - 1]}, {n[i]})" + (f" + ({n[i]},)" if bias else "")
        out.append(_code(lhs, cm))
        out.append(_code(f"z{i} = {_call(names[i - 1], _params(acts[i - 1]), f'a{i}')}",
                         f"(B, {n[i]})  {names[i - 1]}" + ("; y_hat = z" + str(L) if i == L else "")))
    w(f"    return {cache}")
    w("")
    w("")

    # loss
    aL, zL = f"a{L}", f"z{L}"
    if fused:
        w(f"def data_loss({aL}, y):")
        if loss == "bce":
            w(f'    """Binary cross-entropy of y_hat = sigmoid({aL}), computed from the logits {aL}.')
            w("")
            w("    -[y log s(a) + (1 - y) log(1 - s(a))] = max(a, 0) - a y + log(1 + e^-|a|),")
            w('    which stays finite even for |a| = 1000 (where log(1 - y_hat) would be log 0)."""')
            w("    B = y.shape[0]")
            w(f"    per_entry = np.maximum({aL}, 0.0) - {aL} * y + np.log1p(np.exp(-np.abs({aL})))")
            w("    return np.sum(per_entry) / B")
        else:
            w(f'    """Cross-entropy of y_hat = softmax({aL}), computed from the logits {aL}.')
            w("")
            w("    -sum_k y_k log softmax(a)_k = sum_k y_k (logsumexp(a) - a_k) for rows of y that sum to 1;")
            w('    logsumexp subtracts the row maximum so e^a cannot overflow."""')
            w("    B = y.shape[0]")
            w(f"    m = {aL}.max(axis=1, keepdims=True)")
            w(f"    log_sum_exp = m + np.log(np.exp({aL} - m).sum(axis=1, keepdims=True))")
            w(f"    return np.sum(y * (log_sum_exp - {aL})) / B")
    else:
        w("def data_loss(y_hat, y):")
        if loss == "mse":
            w('    """Mean squared error: the squared error summed over the outputs, averaged over the rows."""')
            w("    B = y.shape[0]")
            w("    r = y_hat - y")
            w("    return np.sum(r * r) / B")
        elif loss == "bce":
            w('    """Binary cross-entropy, averaged over the rows."""')
            w("    B = y.shape[0]")
            w("    with np.errstate(divide='ignore', invalid='ignore'):")
            w("        terms = y * np.log(y_hat) + (1 - y) * np.log1p(-y_hat)")
            w("    return -np.sum(terms) / B")
        else:
            w('    """Cross-entropy -sum_k y_k log y_hat_k, averaged over the rows (0 log 0 counts as 0)."""')
            w("    B = y.shape[0]")
            w("    with np.errstate(divide='ignore', invalid='ignore'):")
            w("        terms = np.where(y > 0, y * np.log(y_hat), 0.0)")
            w("    return -np.sum(terms) / B")
    w("")
    w("")
    w("def penalty(params):")
    if reg is None:
        w('    """No regularization: the objective is the data loss alone."""')
        w("    return 0.0")
    else:
        terms = " + ".join(f"np.sum(W{i}**2)" if reg == "l2" else f"np.sum(np.abs(W{i}))" for i in range(1, L + 1))
        if reg == "l2":
            w('    """L2 penalty (lambda/2) * sum of squared weights; biases are not penalized."""')
            w(f"    {plist}{',' if len(pnames) == 1 else ''} = params")
            w(f"    return 0.5 * LAMBDA * ({terms})")
        else:
            w('    """L1 penalty lambda * sum of |weights|; biases are not penalized."""')
            w(f"    {plist}{',' if len(pnames) == 1 else ''} = params")
            w(f"    return LAMBDA * ({terms})")
    w("")
    w("")
    w("def objective(params, X, y):")
    w('    """J = data loss + penalty: the number whose gradient backward() computes."""')
    w(f"    {cache} = forward(params, X)")
    w(f"    return data_loss({aL if fused else zL}, y) + penalty(params)")
    w("")
    w("")

    # backward
    w("def backward(params, X, y):")
    w('    """Backward pass: J and its gradient with respect to every parameter, layer by layer."""')
    w(f"    {plist}{',' if len(pnames) == 1 else ''} = params")
    w(f"    {cache} = forward(params, X)")
    w(f"    y_hat = z{L}")
    out.append(_code("B = X.shape[0]", "the batch size: every loss term carries 1/B"))
    w(f"    J = data_loss({aL if fused else zL}, y) + penalty(params)")
    for i in range(L, 0, -1):
        w("")
        if i == L:
            f_name = names[-1]
            if fused:
                pair = "sigmoid + bce" if loss == "bce" else "softmax + cross-entropy"
                w(f"    # Output layer {L} ({pair}): dL/dy_hat and f'(a{L}) cancel, leaving (y_hat - y) / B.")
                out.append(_code(f"delta{L} = (y_hat - y) / B", f"(B, {n[L]})  dL/da{L}"))
            else:
                w(f"    # Output layer {L} ({f_name}, {loss}): dL/dy_hat of the loss, then through f'(a{L}).")
                dz = {"mse": "(2 / B) * (y_hat - y)", "bce": "(y_hat - y) / (y_hat * (1 - y_hat) * B)",
                      "cross_entropy": "-y / (y_hat * B)"}[loss]
                out.append(_code(f"dz{L} = {dz}", f"(B, {n[L]})  dL/dy_hat"))
                out.extend(_delta_lines(f_name, _params(acts[-1]), L, n[L]))
        else:
            f_name = names[i - 1]
            w(f"    # Layer {i} ({f_name}): the error dz{i} sent down from layer {i + 1}, times f'(a{i}) elementwise.")
            out.extend(_delta_lines(f_name, _params(acts[i - 1]), i, n[i]))
        out.append(_code(f"dW{i} = delta{i}.T @ {prev(i)}",
                         f"({n[i]}, {n[i - 1]}) = ({n[i]}, B) @ (B, {n[i - 1]}), the shape of W{i}"))
        if bias:
            out.append(_code(f"db{i} = delta{i}.sum(axis=0)", f"({n[i]},)  summed over the rows"))
        if i > 1:
            out.append(_code(f"dz{i - 1} = delta{i} @ W{i}",
                             f"(B, {n[i - 1]}) = (B, {n[i]}) @ ({n[i]}, {n[i - 1]}), sent down to layer {i - 1}"))
    if reg:
        w("")
        if reg == "l2":
            w("    # L2 penalty: d/dW (lambda/2) sum W^2 = lambda W, added to every weight gradient.")
            for i in range(1, L + 1):
                out.append(_code(f"dW{i} = dW{i} + LAMBDA * W{i}", f"({n[i]}, {n[i - 1]})"))
        else:
            w("    # L1 penalty: d/dW lambda sum |W| = lambda sign(W), added to every weight gradient.")
            for i in range(1, L + 1):
                out.append(_code(f"dW{i} = dW{i} + LAMBDA * np.sign(W{i})", f"({n[i]}, {n[i - 1]})"))
    w("")
    w(f"    return J, [{', '.join('d' + k for k in pnames)}]")
    w("")
    w("")

    # gradient check and main
    w(rule)
    w("# Gradient check: every partial derivative again, by central finite differences.")
    w(rule)
    w(f"PARAM_NAMES = {pnames!r}")
    w(f"EPS = {EPS!r}")
    w(f"TOLERANCE = {TOLERANCE!r}")
    w("")
    w("")
    w("def numerical_gradient(params, X, y, k):")
    w('    """(J(w + eps) - J(w - eps)) / (2 eps) for every entry w of params[k]."""')
    w("    P = params[k]")
    w("    grad = np.zeros_like(P)")
    w("    for idx in np.ndindex(*P.shape):")
    w("        old = P[idx]")
    w("        P[idx] = old + EPS")
    w("        plus = objective(params, X, y)")
    w("        P[idx] = old - EPS")
    w("        minus = objective(params, X, y)")
    w("        P[idx] = old  # put back the exact original value")
    w("        grad[idx] = (plus - minus) / (2 * EPS)")
    w("    return grad")
    w("")
    w("")
    w("def relative_error(analytic, numeric):")
    w('    """||analytic - numeric|| / (||analytic|| + ||numeric||) over a whole tensor; 0 when both are 0."""')
    w("    den = np.linalg.norm(analytic) + np.linalg.norm(numeric)")
    w("    return 0.0 if den == 0 else float(np.linalg.norm(analytic - numeric) / den)")
    w("")
    w("")
    w("def gradient_check(params, X, y):")
    w('    """Print each tensor\'s relative error; True when every one is at most TOLERANCE."""')
    w("    J, grads = backward(params, X, y)")
    w('    print(f"J = {float(J)!r} on a batch of {X.shape[0]} rows")')
    w('    print(f"gradient check: backprop against central differences with eps = {EPS}")')
    w("    worst = 0.0")
    w("    for k, (name, g) in enumerate(zip(PARAM_NAMES, grads)):")
    w("        numeric = numerical_gradient(params, X, y, k)")
    w("        err = relative_error(g, numeric)")
    w("        worst = max(worst, err)")
    w("        max_abs = float(np.max(np.abs(g - numeric)))")
    w('        verdict = "ok" if err <= TOLERANCE else "WRONG"')
    w('        print(f"  d{name:<4} shape {str(g.shape):<9} relative error {err:.2e}   "')
    w('              f"max abs error {max_abs:.2e}   {verdict}")')
    w("    passed = worst <= TOLERANCE")
    w('    print(f"max relative error {worst:.2e}: {\'PASSED\' if passed else \'FAILED\'} (tolerance {TOLERANCE})")')
    w("    return passed")
    w("")
    w("")
    w("def main(argv):")
    w(f"    params = [{plist}]")
    w('    if "--json" in argv:')
    w("        J, grads = backward(params, X, y)")
    w(f"        {', '.join('d' + k for k in pnames)}{',' if len(pnames) == 1 else ''} = grads")
    w("        layers = [")
    for i in range(1, L + 1):
        w(f'            {{"dW": dW{i}.tolist(), "db": ' + (f"db{i}.tolist()}}," if bias else "None},"))
    w("        ]")
    w('        print(json.dumps({"loss": float(J), "layers": layers}))')
    w("        return 0")
    w("    return 0 if gradient_check(params, X, y) else 1")
    w("")
    w("")
    w('if __name__ == "__main__":')
    w("    sys.exit(main(sys.argv[1:]))")
    return "\n".join(out) + "\n"
