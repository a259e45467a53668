"""The forward and backward pass of a network written out as equations with operand shapes.

Two notations (docs/api.md):
- "rows" (the engine's): rows are samples, W_i is (n_i, n_{i-1}) = (out, in), a_i = z_{i-1} W_i^T + b_i,
  z_i = f_i(a_i), delta_i = dL/da_i, dz_i = dL/dz_i, every quantity (B, n_i).
- "columns" (the question's): one sample as a column, a_i = W_i z_{i-1} + b_i, z_i = f(a_i), and
  delta_i (the question's k_i) a column (n_i, 1); dW_i = delta_i z_{i-1}^T per sample, averaged over
  the B samples as the loss is.
An operand's "shape" is its shape as it enters the product (W_1^T is (2, 8) on 2-8-8-1);
"stored_shape" is the array's own shape and "transposed": true marks an operand used as its transpose.
The activation and loss texts come from their classes (activations.py, losses.py).
``closed_form_gradients`` is the seed answer's column-vector formula, kept literal for comparison.
"""
from __future__ import annotations

import re

import numpy as np

from .network import Network

CONVENTIONS = ("rows", "columns")


def _op(name: str, shape: list, transposed: bool = False) -> dict:
    """An operand with its shape as used; ``shape`` given is the stored one."""
    stored = list(shape)
    used = stored[::-1] if transposed and len(stored) == 2 else stored
    return {"name": name, "shape": used, "stored_shape": stored, "transposed": transposed}


def _step(layer: int, target: str, equation: str, operands: list, result_shape: list, note: str) -> dict:
    return {"layer": layer, "target": target, "equation": equation, "operands": operands,
            "result_shape": list(result_shape), "note": note}


def _fmt(shape: list) -> str:
    return "(" + ",".join(map(str, shape)) + ")"


def _fprime(net: Network, i: int) -> str:
    """Layer i's (1-based) derivative text with a, z renamed a_i, z_i."""
    text = net.acts[i - 1].f.derivative_text
    return re.sub(r"\bz\b", f"z_{i}", re.sub(r"\ba\b", f"a_{i}", text))


class _Notation:
    """Equations and shapes of one convention; ``B`` is the batch size or a symbol."""

    def __init__(self, net: Network, B, columns: bool):
        self.net, self.B, self.columns = net, B, columns

    def vec(self, n) -> list:
        """Shape of a per-layer quantity (a_i, z_i, delta_i, dz_i) with n units."""
        return [n, 1] if self.columns else [self.B, n]

    def affine(self, i: int) -> tuple[str, list, str]:
        n = self.net.sizes
        if self.columns:
            ops = [_op(f"W_{i}", [n[i], n[i - 1]]), _op(f"z_{i - 1}", self.vec(n[i - 1]))]
            return f"a_{i} = W_{i} z_{i - 1}", ops, f"W_{i} ({n[i]},{n[i - 1]}) times z_{i - 1} ({n[i - 1]},1)"
        ops = [_op(f"z_{i - 1}", self.vec(n[i - 1])), _op(f"W_{i}", [n[i], n[i - 1]], True)]
        return (f"a_{i} = z_{i - 1} W_{i}^T", ops,
                f"z_{i - 1} ({self.B},{n[i - 1]}) times W_{i}^T ({n[i - 1]},{n[i]})")

    def dW(self, i: int) -> tuple[str, list, str]:
        n, B = self.net.sizes, self.B
        if self.columns:
            ops = [_op(f"delta_{i}", self.vec(n[i])), _op(f"z_{i - 1}", self.vec(n[i - 1]), True)]
            mean = "" if B == 1 else "mean over the samples of "
            return (f"dW_{i} = {mean}delta_{i} z_{i - 1}^T", ops,
                    f"delta_{i} ({n[i]},1) times z_{i - 1}^T (1,{n[i - 1]}): an outer product, the shape of W_{i}"
                    + ("" if B == 1 else f"; averaged over the {B} samples as the loss is"))
        ops = [_op(f"delta_{i}", self.vec(n[i]), True), _op(f"z_{i - 1}", self.vec(n[i - 1]))]
        return (f"dW_{i} = delta_{i}^T z_{i - 1}", ops,
                f"delta_{i}^T ({n[i]},{B}) times z_{i - 1} ({B},{n[i - 1]}) sums over the batch; shape of W_{i}")

    def down(self, i: int) -> tuple[str, list, str]:
        """dz_{i-1} from delta_i."""
        n, B = self.net.sizes, self.B
        if self.columns:
            ops = [_op(f"W_{i}", [n[i], n[i - 1]], True), _op(f"delta_{i}", self.vec(n[i]))]
            return (f"dz_{i - 1} = W_{i}^T delta_{i}", ops,
                    f"W_{i}^T ({n[i - 1]},{n[i]}) times delta_{i} ({n[i]},1): the error sent down to layer {i - 1}; "
                    f"the matrix is the transpose of the layer ABOVE ({i}), not W_{i - 1}")
        ops = [_op(f"delta_{i}", self.vec(n[i])), _op(f"W_{i}", [n[i], n[i - 1]])]
        return (f"dz_{i - 1} = delta_{i} W_{i}", ops,
                f"({B},{n[i]}) times ({n[i]},{n[i - 1]}): the error sent down to layer {i - 1}")

    def down_text(self, i: int) -> str:
        return f"W_{i}^T delta_{i}" if self.columns else f"delta_{i} W_{i}"

    def per_sample(self, text: str) -> str:
        """A loss-gradient text per sample in columns (no 1/B: dW is averaged instead)."""
        return text.replace(")/B", ")").replace(" B)", ")").replace("/B", "") if self.columns else text


def _delta_step(net: Network, nt: _Notation, i: int, equation_tail: str) -> dict:
    """delta_i = dz_i * f'(a_i), or the softmax Jacobian-vector product."""
    shape = nt.vec(net.sizes[i])
    if net.activation_names[i - 1] == "softmax":
        eq = (f"delta_{i} = J_{i}^T dz_{i}" if nt.columns else
              f"delta_{i} = z_{i} * (dz_{i} - rowsum(dz_{i} * z_{i}))") + equation_tail
        return _step(i, f"delta_{i}", eq, [_op(f"dz_{i}", shape), _op(f"z_{i}", shape)], shape,
                     f"softmax Jacobian{'' if nt.columns else ' per row'}: delta = J^T dz with "
                     f"J = diag(z_{i}) - z_{i} z_{i}^T, shape {_fmt(shape)}")
    k = f" (the question's k_{i})" if nt.columns else ""
    return _step(i, f"delta_{i}", f"delta_{i} = dz_{i} * f'(a_{i}){equation_tail}",
                 [_op(f"dz_{i}", shape), _op(f"f'(a_{i})", shape)], shape,
                 f"elementwise with f'(a_{i}) = {_fprime(net, i)}, shape {_fmt(shape)}{k}")


def backprop_trace(net: Network, batch_size: int | str = "B", convention: str = "rows") -> dict:
    """Forward steps, loss, then backward steps in execution order, each with equation and shapes.

    convention "rows" (batch as rows) or "columns" (the question's: one sample as a column).
    Raises ValueError for a batch size that is not an integer >= 1 or a symbol, or another convention."""
    if isinstance(batch_size, bool) or not (isinstance(batch_size, str) or
                                            (isinstance(batch_size, (int, np.integer)) and batch_size >= 1)):
        raise ValueError(f"batch_size must be an integer >= 1 or a symbol such as 'B', got {batch_size!r}")
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")
    B = int(batch_size) if not isinstance(batch_size, str) else batch_size
    nt = _Notation(net, B, convention == "columns")
    n, Lc = net.sizes, net.n_layers
    forward = []
    for i in range(1, Lc + 1):
        rows = nt.vec(n[i])
        eq, ops, note = nt.affine(i)
        if net.bias:
            ops.append(_op(f"b_{i}", [n[i], 1] if nt.columns else [n[i]]))
            eq += f" + b_{i}"
            note += f", plus b_{i} ({n[i]},1)" if nt.columns else f", plus b_{i} ({n[i]},) broadcast over the rows"
        note += " (z_0 = x, the input)" if i == 1 and nt.columns else " (z_0 = X, the inputs)" if i == 1 else ""
        forward.append(_step(i, f"a_{i}", eq, ops, rows, note))
        act = net.activation_names[i - 1]
        fnote = ("softmax over the vector" if nt.columns else "softmax over each row") if act == "softmax" \
            else f"{act} elementwise"
        forward.append(_step(i, f"z_{i}", f"z_{i} = f_{i}(a_{i})", [_op(f"a_{i}", rows)], rows,
                             fnote + (f"; y_hat = z_{Lc}" if i == Lc else "")))
    out = nt.vec(n[Lc])
    loss = net.loss
    penalty = net.regularization != "none" and net.reg_rate != 0.0
    loss_eq = loss.text + (" + penalty(W)" if penalty else "")
    forward.append(_step(Lc, "L", loss_eq, [_op("y_hat", out), _op("y", out)], [],
                         f"per-sample loss averaged over the {B} {'samples' if nt.columns else 'rows'}; a scalar"))
    backward = []
    if loss.is_fused(net.activation_names[-1]):
        err = nt.per_sample("(y_hat - y)/B")
        backward.append(_step(Lc, f"delta_{Lc}", f"delta_{Lc} = {err}", [_op("y_hat", out), _op("y", out)], out,
                              f"fused {loss.fused_with} + {loss.name}: dL/dy_hat and f'(a_{Lc}) cancel to {err}"))
    else:
        dz = nt.per_sample(loss.dz_text)
        backward.append(_step(Lc, f"dz_{Lc}", f"dz_{Lc} = {dz}", [_op("y_hat", out), _op("y", out)], out,
                              f"dL/dy_hat of {loss.name}" + (", per sample" if nt.columns else
                                                             ", with the 1/B of the batch mean")))
        tail = "" if net.activation_names[-1] == "softmax" else f" = {dz} * f'(a_{Lc})"
        backward.append(_delta_step(net, nt, Lc, tail))
    for i in range(Lc, 0, -1):
        eq, ops, note = nt.dW(i)
        if penalty:
            term = "lambda W" if net.regularization == "l2" else "lambda sign(W"
            eq += f" + {term}_{i}" + (")" if net.regularization == "l1" else "")
            ops.append(_op(f"W_{i}", [n[i], n[i - 1]]))
            note += f"; {net.regularization} penalty gradient with lambda = {net.reg_rate:g}"
        backward.append(_step(i, f"dW_{i}", eq, ops, [n[i], n[i - 1]], note))
        if net.bias:
            if nt.columns:
                backward.append(_step(i, f"db_{i}", f"db_{i} = {'' if B == 1 else 'mean over the samples of '}"
                                      f"delta_{i}", [_op(f"delta_{i}", nt.vec(n[i]))], [n[i], 1],
                                      f"shape of b_{i}"))
            else:
                backward.append(_step(i, f"db_{i}", f"db_{i} = sum_b delta_{i}", [_op(f"delta_{i}", nt.vec(n[i]))],
                                      [n[i]], f"delta_{i} summed over the {B} rows; shape of b_{i}"))
        if i > 1:
            eq, ops, note = nt.down(i)
            backward.append(_step(i, f"dz_{i - 1}", eq, ops, nt.vec(n[i - 1]), note))
            backward.append(_delta_step(net, nt, i - 1, f" = ({nt.down_text(i)}) * f'(a_{i - 1})"
                                        if net.activation_names[i - 2] != "softmax" else ""))
    return {"batch_size": B, "convention": convention, "forward": forward, "backward": backward,
            "closed_form": closed_form_text(net)}


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
