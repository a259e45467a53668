"""The forward and backward pass of a network written out as equations with operand shapes.

Conventions (docs/api.md): rows are samples, W_i is (n_i, n_{i-1}) = (out, in), a_i = z_{i-1} W_i^T + b_i,
z_i = f_i(a_i), delta_i = dL/da_i, dz_i = dL/dz_i. An operand's "shape" is the shape of the stored
array; "transposed": true means it enters the product as its transpose (delta_i^T, W_i^T).
``closed_form_gradients`` is the seed answer's column-vector formula, kept literal for comparison.
"""
from __future__ import annotations

import re

import numpy as np

from .activations import DERIVATIVE_TEXT
from .network import Network

FUSED_NOTE = {"bce": "sigmoid + bce", "cross_entropy": "softmax + cross_entropy"}
LOSS_TEXT = {"mse": "L = (1/B) sum_b sum_k (y_hat - y)^2",
             "bce": "L = -(1/B) sum_b sum_k [y log y_hat + (1 - y) log(1 - y_hat)]",
             "cross_entropy": "L = -(1/B) sum_b sum_k y log y_hat"}
DZ_TEXT = {"mse": "2(y_hat - y)/B", "bce": "(y_hat - y) / (y_hat(1 - y_hat) B)", "cross_entropy": "-y / (y_hat B)"}


def _op(name: str, shape: list, transposed: bool = False) -> dict:
    return {"name": name, "shape": list(shape), "transposed": transposed}


def _step(layer: int, target: str, equation: str, operands: list, result_shape: list, note: str) -> dict:
    return {"layer": layer, "target": target, "equation": equation, "operands": operands,
            "result_shape": list(result_shape), "note": note}


def _fmt(shape: list) -> str:
    return "(" + ",".join(map(str, shape)) + ")"


def _fprime(net: Network, i: int) -> str:
    """DERIVATIVE_TEXT of layer i (1-based) with a, z renamed a_i, z_i."""
    text = DERIVATIVE_TEXT[net.activation_names[i - 1]]
    return re.sub(r"\bz\b", f"z_{i}", re.sub(r"\ba\b", f"a_{i}", text))


def _delta_step(net: Network, i: int, B, equation_tail: str) -> dict:
    """delta_i = dz_i * f'(a_i), or the softmax Jacobian-vector product."""
    shape = [B, net.sizes[i]]
    if net.activation_names[i - 1] == "softmax":
        return _step(i, f"delta_{i}", f"delta_{i} = z_{i} * (dz_{i} - rowsum(dz_{i} * z_{i})){equation_tail}",
                     [_op(f"dz_{i}", shape), _op(f"z_{i}", shape)], shape,
                     f"softmax Jacobian per row: delta = J^T dz with J = diag(z_{i}) - z_{i} z_{i}^T, "
                     f"shape {_fmt(shape)}")
    return _step(i, f"delta_{i}", f"delta_{i} = dz_{i} * f'(a_{i}){equation_tail}",
                 [_op(f"dz_{i}", shape), _op(f"f'(a_{i})", shape)], shape,
                 f"elementwise with f'(a_{i}) = {_fprime(net, i)}, shape {_fmt(shape)}")


def backprop_trace(net: Network, batch_size: int | str = "B") -> dict:
    """Forward steps, loss, then backward steps in execution order, each with equation and shapes."""
    if isinstance(batch_size, bool) or not (isinstance(batch_size, str) or
                                            (isinstance(batch_size, (int, np.integer)) and batch_size >= 1)):
        raise ValueError(f"batch_size must be an integer >= 1 or a symbol such as 'B', got {batch_size!r}")
    B = int(batch_size) if not isinstance(batch_size, str) else batch_size
    n, Lc = net.sizes, net.n_layers
    forward = []
    for i in range(1, Lc + 1):
        rows = [B, n[i]]
        ops = [_op(f"z_{i - 1}", [B, n[i - 1]]), _op(f"W_{i}", [n[i], n[i - 1]], True)]
        eq = f"a_{i} = z_{i - 1} W_{i}^T"
        note = f"z_{i - 1} ({B},{n[i - 1]}) times W_{i}^T ({n[i - 1]},{n[i]})"
        if net.bias:
            ops.append(_op(f"b_{i}", [n[i]]))
            eq, note = eq + f" + b_{i}", note + f", plus b_{i} ({n[i]},) broadcast over the rows"
        note += " (z_0 = X, the inputs)" if i == 1 else ""
        forward.append(_step(i, f"a_{i}", eq, ops, rows, note))
        act = net.activation_names[i - 1]
        fnote = "softmax over each row" if act == "softmax" else f"{act} elementwise"
        forward.append(_step(i, f"z_{i}", f"z_{i} = f_{i}(a_{i})", [_op(f"a_{i}", rows)], rows,
                             fnote + (f"; y_hat = z_{Lc}" if i == Lc else "")))
    out = [B, n[Lc]]
    loss = net.loss.name
    penalty = net.regularization != "none" and net.reg_rate != 0.0
    loss_eq = LOSS_TEXT[loss] + (" + penalty(W)" if penalty else "")
    forward.append(_step(Lc, "L", loss_eq, [_op("y_hat", out), _op("y", out)], [],
                         f"per-sample loss averaged over the {B} rows; a scalar"))
    backward = []
    if net.loss.fused_with == net.activation_names[-1]:
        backward.append(_step(Lc, f"delta_{Lc}", f"delta_{Lc} = (y_hat - y)/B", [_op("y_hat", out), _op("y", out)],
                              out, f"fused {FUSED_NOTE[loss]}: dL/dy_hat and f'(a_{Lc}) cancel to (y_hat - y)/B"))
    else:
        backward.append(_step(Lc, f"dz_{Lc}", f"dz_{Lc} = {DZ_TEXT[loss]}", [_op("y_hat", out), _op("y", out)],
                              out, f"dL/dy_hat of {loss}, with the 1/B of the batch mean"))
        tail = "" if net.activation_names[-1] == "softmax" else f" = {DZ_TEXT[loss]} * f'(a_{Lc})"
        backward.append(_delta_step(net, Lc, B, tail))
    for i in range(Lc, 0, -1):
        d, zp = [B, n[i]], [B, n[i - 1]]
        eq, ops = f"dW_{i} = delta_{i}^T z_{i - 1}", [_op(f"delta_{i}", d, True), _op(f"z_{i - 1}", zp)]
        note = f"delta_{i}^T ({n[i]},{B}) times z_{i - 1} ({B},{n[i - 1]}) sums over the batch; shape of W_{i}"
        if penalty:
            term = "lambda W" if net.regularization == "l2" else "lambda sign(W"
            eq += f" + {term}_{i}" + (")" if net.regularization == "l1" else "")
            ops.append(_op(f"W_{i}", [n[i], n[i - 1]]))
            note += f"; {net.regularization} penalty gradient with lambda = {net.reg_rate:g}"
        backward.append(_step(i, f"dW_{i}", eq, ops, [n[i], n[i - 1]], note))
        if net.bias:
            backward.append(_step(i, f"db_{i}", f"db_{i} = sum_b delta_{i}", [_op(f"delta_{i}", d)], [n[i]],
                                  f"delta_{i} summed over the {B} rows; shape of b_{i}"))
        if i > 1:
            backward.append(_step(i, f"dz_{i - 1}", f"dz_{i - 1} = delta_{i} W_{i}",
                                  [_op(f"delta_{i}", d), _op(f"W_{i}", [n[i], n[i - 1]])], zp,
                                  f"({B},{n[i]}) times ({n[i]},{n[i - 1]}): the error sent down to layer {i - 1}"))
            backward.append(_delta_step(net, i - 1, B, f" = (delta_{i} W_{i}) * f'(a_{i - 1})"
                                        if net.activation_names[i - 2] != "softmax" else ""))
    return {"batch_size": B, "forward": forward, "backward": backward, "closed_form": closed_form_text(net)}


def closed_form_text(net: Network) -> str | None:
    """The seed answer's closed form for dMSE/dW_i, or None outside the question's case."""
    acts = set(net.activation_names)
    if (net.loss.name != "mse" or net.sizes[-1] != 1 or net.bias or len(acts) != 1 or "softmax" in acts
            or (net.regularization != "none" and net.reg_rate != 0.0)):
        return None
    n = net.n_layers - 1  # hidden layers; W_{n+1} is the output row vector
    f = net.activation_names[0]
    lines = [f"Question's case: MSE = (y_hat - y)^2, one output, no bias, f = {f} everywhere, n = {n} hidden "
             f"layer(s), W_{n + 1} a row vector. Column vectors, one sample x = z_0, y_hat = f(W_{n + 1} z_{n})."]
    lines.append(f"dMSE/dW_{n + 1} = 2(y_hat - y) f'(W_{n + 1} z_{n}) z_{n}^T")
    if n >= 1:
        lines.append(f"k = dMSE/dz_{n} = 2(y_hat - y) f'(W_{n + 1} z_{n}) W_{n + 1}^T")
        lines.append(f"dMSE/dz_i = W_(i+1)^T (dMSE/dz_(i+1) o f'(W_(i+1) z_i)) for i < {n}, i.e. "
                     f"W_(i+1)^T ... W_{n}^T k o f'(W_{n} z_{n - 1}) o ... o f'(W_(i+1) z_i), each o applied "
                     f"before the W^T on its left")
        lines.append(f"dMSE/dW_i = [dMSE/dz_i o f'(W_i z_(i-1))] z_(i-1)^T for i = 1..{n} (o: elementwise product)")
        lines.append("In the question's recursion the matrix must be W_(i+1)^T from the layer above, not W_i: "
                     f"k_i = (W_(i+1)^T k_(i+1)) o f'(W_i z_(i-1)), k_{n + 1} = 2(y_hat - y) f'(W_{n + 1} z_{n}), "
                     "and dMSE/dW_i = k_i z_(i-1)^T (k_i is dMSE/d(W_i z_(i-1)), the engine's delta_i).")
    lines.append("Row convention of this engine: for a batch of one row, delta_i = [dMSE/dz_i o f'(W_i z_(i-1))]^T "
                 "and dz_i = (dMSE/dz_i)^T are rows, so dW_i = delta_i^T z_(i-1) is the same matrix as the "
                 "column form; for B rows the loss is averaged, so delta_L carries 1/B and dW_i sums over rows.")
    return "\n".join(lines)


def closed_form_gradients(Ws: list[np.ndarray], f, fprime, x: np.ndarray, y: float) -> list[np.ndarray]:
    """dMSE/dW_i for i = 1..n+1 by the answer's closed form (column vectors, no bias, MSE = (y_hat - y)^2)."""
    Ws = [np.asarray(W, np.float64) for W in Ws]
    n = len(Ws) - 1
    z = [np.asarray(x, np.float64).reshape(-1)]
    for W in Ws:
        z.append(f(W @ z[-1]))  # z_i = f(W_i z_{i-1}); z_{n+1} = y_hat has one entry
    y_hat = float(z[n + 1][0])
    w_out = Ws[n].reshape(-1)  # W_{n+1} is (1, n_n): used as a vector
    scale = 2.0 * (y_hat - y) * float(fprime(Ws[n] @ z[n])[0])  # 2(y_hat - y) f'(W_{n+1} z_n)
    grads = [None] * (n + 1)
    grads[n] = scale * np.outer(np.ones(1), z[n])  # dMSE/dW_{n+1} = 2(y_hat - y) f'(W_{n+1} z_n) z_n^T
    k = scale * w_out  # dMSE/dz_n
    for i in range(1, n + 1):
        g = k  # dMSE/dz_i = W_{i+1}^T ... W_n^T k o f'(W_n z_{n-1}) o ... o f'(W_{i+1} z_i)
        for j in range(n, i, -1):
            g = Ws[j - 1].T @ (g * fprime(Ws[j - 1] @ z[j - 1]))
        grads[i - 1] = np.outer(g * fprime(Ws[i - 1] @ z[i - 1]), z[i - 1])  # [dMSE/dz_i o f'(W_i z_{i-1})] z_{i-1}^T
    return grads
