"""The catalogue of mistake kinds: a stable code for every diagnosis, with a line a teacher can read.

A verdict's ``kind`` is one of these codes (null when it passed or no explanation was found). A composed
explanation lists its parts in ``kinds`` (in the order of the step: output error, transpose, which W, f',
reduction, constant factor) and its ``kind`` is those codes joined with "+", e.g. "sign+half+no_fprime".
"""
from __future__ import annotations

import math

KINDS: dict[str, str] = {
    "sign": "the gradient has the opposite sign: the output error was written y - y_hat",
    "half": "the gradient is half the true one: the factor 2 of the squared error is missing",
    "double": "the gradient is twice the true one: a factor 2 is counted twice or where the loss has none",
    "batch_sum": "the gradient is B times the true one: the mean's 1/B over the batch is missing",
    "batch_mean_twice": "the gradient is 1/B of the true one: the mean's 1/B is counted twice (e.g. db as a mean)",
    "batch_power": "the gradient carries a wrong power of the batch size B",
    "output_mean": "the gradient is 1/K of the true one: a mean over the K outputs too (as torch's nn.MSELoss "
                   "averages over B*K entries)",
    "output_sum": "the gradient is K times the true one: the loss's mean over the K outputs is missing",
    "constant_factor": "the gradient is a constant multiple of the true one, by a factor with no known cause",
    "extra_fprime": "f' applied at the output where the fused loss and activation already cancel it",
    "no_fprime": "the factor f'(a_i) is missing from delta_i",
    "fprime_z": "f' evaluated at the layer's output z_i instead of its pre-activation a_i",
    "fprime_twice": "f'(a_i) applied twice",
    "other_loss": "the output error of another loss than the network's",
    "softmax_elementwise": "softmax' taken elementwise, y_hat(1 - y_hat), where softmax has a Jacobian "
                           "(with cross-entropy the output error is (y_hat - y)/B)",
    "bias_column": "the bias stored as an extra weight column: dW of shape (n, n_in + 1) holding [dW | db]",
    "wrong_derivative": "f'(a_i) written with a wrong formula (wrong variable, wrong sign or another function's "
                        "derivative); the hint gives the right formula",
    "updated_W": "the hidden delta computed with the already-updated W (W - lr dW) of the layer above",
    "own_W": "the layer's own W_i used where W_{i+1}^T belongs (the question's recurrence)",
    "no_T": "W_{i+1} used without its transpose in the backward step",
    "plus_minus": "a + written where the formula has a - (or the reverse)",
    "a_for_z": "the pre-activation a_k written where the layer's output z_k belongs (or the reverse)",
    "extra_factor": "a factor the formula does not have",
    "wrong_W": "the weights of another layer than the step's own",
    "extra_T": "a transpose the formula does not have",
    "penalty_missing": "the l1/l2 penalty gradient is missing from dW",
    "penalty_double": "the penalty gradient counted twice: 2 lambda W where lambda/2 sum W^2 gives lambda W "
                      "(for l1: 2 lambda sign(W))",
    "penalty_half": "half the penalty gradient: lambda/2 W where lambda/2 sum W^2 gives lambda W",
    "penalty_batch": "the penalty gradient divided by the batch size B: it is added once to the mean loss, "
                     "so it carries no 1/B",
    "penalty_extra": "a penalty gradient (a multiple of W, b or their signs) added where it does not belong: "
                     "on db (the bias is not penalised) or on a network without a penalty",
    "fprime_wrong_layer": "f' taken at the pre-activation of the layer above or below (a_{i+1} or a_{i-1}) "
                          "instead of the layer's own a_i",
    "db_wrong_axis": "db summed over the units of each sample (axis 1) instead of over the batch rows (axis 0)",
    "db_wrong_axis_mean": "db as a mean over the units of each sample (axis 1) instead of a sum over the batch rows",
    "db_every_entry": "db summed over every entry of delta, a scalar, instead of over the batch rows only",
    "db_every_entry_mean": "db as the mean of every entry of delta, a scalar, instead of a sum over the batch rows",
    "transposed": "the tensor is given transposed",
    "wrong_shape": "the tensor's shape fits neither the gradient nor its transpose",
    "per_sample": "delta given per sample where the gradient sums over the batch",
    "inherited": "this layer's own step is right: its error is what the wrong layer above gives",
    "inherited_repeated": "the same wrong step repeated at every layer from the entry point down",
    "unexplained": "the gradient is wrong and no catalogued mistake (nor a combination) reproduces it",
    "diverged": "the model diverged: there is no finite true gradient to compare with",
}


def join(kinds: list[str]) -> str | None:
    """The kind of a composed explanation: its parts joined with "+" (None for no part)."""
    return "+".join(kinds) if kinds else None


def catalog() -> list[dict]:
    """[{"kind", "explanation"}] for GET /api/catalog."""
    return [{"kind": k, "explanation": e} for k, e in KINDS.items()]


def explain_factor(c: float, B: int, K: int, loss: str, named_only: bool = False) -> tuple[list[str], list[str]] | None:
    """Name a constant factor c (gradient = c * true) as a product of -1, 2^e, B^k and K^m.

    Returns (phrases, kinds), the fewest factors that give c to 1e-6 relative; ([], []) for c = 1; None
    when c is not finite or zero, or has no such name and ``named_only`` (a one-entry tensor fits any c)."""
    if not math.isfinite(c) or abs(c) < 1e-12:
        return None
    if abs(c - 1.0) <= 1e-6:
        return [], []
    m, parts, kinds = abs(c), [], []
    if c < 0:
        parts.append("has the opposite sign: the output error is y_hat - y, not y - y_hat "
                     "(descent steps along minus the gradient, the gradient itself keeps its sign)")
        kinds.append("sign")
    fits = sorted((abs(k) + abs(e) + abs(q), -abs(q), -(e != 0 and loss == "mse"), k, e, q)
                  for k in range(-3, 4) for e in (-1, 0, 1) for q in (-1, 0, 1)
                  if (B > 1 or k == 0) and (K > 1 or q == 0)
                  and abs(m / (2.0 ** e * float(B) ** k * float(K) ** q) - 1.0) <= 1e-6)
    if not fits:
        if m != 1.0:
            if named_only:
                return None
            parts.append(f"is {m:.4g} times the true gradient: a constant factor is wrong")
            kinds.append("constant_factor")
        return parts, kinds
    _, _, _, k, e, q = fits[0]
    if e == -1:
        parts.append("is half the true gradient: the factor 2 of d/dy_hat (y_hat - y)^2 = 2(y_hat - y) is missing"
                     if loss == "mse" else "is half the true gradient: a factor 1/2 that the loss does not have")
        kinds.append("half")
    elif e == 1:
        parts.append("is twice the true gradient: the factor 2 of the square is counted twice" if loss == "mse"
                     else f"is twice the true gradient: {loss} has no factor 2")
        kinds.append("double")
    if k == 1:
        parts.append(f"is B = {B} times the true gradient: you summed over the batch, but the loss is the mean, "
                     f"so delta_L carries a factor 1/B")
        kinds.append("batch_sum")
    elif k == -1:
        parts.append(f"is 1/B = 1/{B} of the true gradient: the mean's 1/B is counted twice (it is already in "
                     f"delta_L; dW sums over the rows)")
        kinds.append("batch_mean_twice")
    elif k:
        parts.append(f"is B^{k} = {float(B) ** k:.4g} times the true gradient: the mean over the batch puts "
                     f"exactly one 1/B into the gradient")
        kinds.append("batch_power")
    if q == -1:
        parts.append(f"is 1/K = 1/{K} of the true gradient: the loss is averaged over the K = {K} outputs too "
                     f"(as torch's nn.MSELoss averages over B*K entries); this network's loss is a mean over the "
                     f"batch and a sum over the outputs"
                     + (" (or, the same number here, the factor 2 of the square is missing)" if K == 2 else ""))
        kinds.append("output_mean")
    elif q == 1:
        parts.append(f"is K = {K} times the true gradient: the loss's mean over the K = {K} outputs is missing")
        kinds.append("output_sum")
    return parts, kinds
