"""repair: the first wrong equation's smallest subexpression, its right counterpart and its kind."""
import numpy as np
import pytest

from app.engine.derive import QUESTION_EQUATIONS, correct_equations, derive
from app.engine.mistakes import KINDS
from app.engine.network import Network


def net_and_batch(activations, loss="mse", sizes=(2, 3, 3, 1), bias=True, seed=0):
    net = Network(list(sizes), list(activations), loss=loss, bias=bias)
    net.initialize(seed, "normal", 1.0)
    rng = np.random.default_rng(seed + 1)
    X = rng.normal(size=(5, sizes[0]))
    y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], 5)] if loss == "cross_entropy" else rng.normal(size=(5, sizes[-1]))
    return net, X, y


def with_expr(net, convention, target, old, new):
    eqs = correct_equations(net, convention)
    for e in eqs:
        if e["target"] == target:
            assert old in e["expr"]
            e["expr"] = e["expr"].replace(old, new)
    return eqs


def repair_of(result, layer, target):
    """The step's (repair text, kind): the text after the relative error."""
    step = next(s for s in result["layers"][layer - 1]["steps"] if s["target"] == target)
    return step["error"].split("; ", 1)[1], step["kind"]


@pytest.mark.parametrize("convention", ["rows", "columns"])
@pytest.mark.parametrize("f, written, text", [
    ("tanh", "1 + z[i]*z[i]", "`1 + z[2] * z[2]` should be `1 - z[2] * z[2]`: tanh'(a) = 1 - z^2 with z = tanh(a)"),
    ("sigmoid", "a[i]*(1 - a[i])",
     "`a[2] * (1 - a[2])` should be `z[2] * (1 - z[2])`: sigmoid'(a) = z(1 - z) with z = sigmoid(a)"),
    ("sigmoid", "z[i]*(1 + z[i])",
     "`z[2] * (1 + z[2])` should be `z[2] * (1 - z[2])`: sigmoid'(a) = z(1 - z) with z = sigmoid(a)"),
])
def test_a_wrong_derivative_formula_is_repaired_at_the_derivative(convention, f, written, text):
    net, X, y = net_and_batch([f, f, "sigmoid"])
    r = derive(net, X, y, with_expr(net, convention, "delta[i]", "fprime(a[i])", f"({written})"), convention)
    assert not r["passed"]
    assert repair_of(r, 2, "delta[2]") == (text, "wrong_derivative")
    e = r["first_error"]
    assert (e["layer"], e["target"], e["kind"]) == (2, "delta[2]", "wrong_derivative") and text in e["message"]


@pytest.mark.parametrize("convention", ["rows", "columns"])
def test_the_output_error_written_y_minus_y_hat_is_a_sign(convention):
    net, X, y = net_and_batch(["sigmoid"] * 3)
    r = derive(net, X, y, with_expr(net, convention, "delta[L]", "(y_hat - y)", "(y - y_hat)"), convention)
    assert repair_of(r, 3, "delta[3]") == ("`y - y_hat` should be `y_hat - y`", "sign")
    assert r["first_error"]["kind"] == "sign" and r["first_error"]["target"] == "delta[3]"


@pytest.mark.parametrize("convention, written, right", [
    ("rows", "(y_hat - y) / B * y_hat * (1 - y_hat)", "(y_hat - y) / B"),
    ("columns", "(y_hat - y) * y_hat * (1 - y_hat)", "y_hat - y"),
])
def test_softmax_taken_elementwise_on_softmax_and_cross_entropy(convention, written, right):
    net, X, y = net_and_batch(["tanh", "tanh", "softmax"], loss="cross_entropy", sizes=(2, 3, 4, 3))
    eqs = correct_equations(net, convention)
    eqs[0]["expr"] = written
    r = derive(net, X, y, eqs, convention)
    assert repair_of(r, 3, "delta[3]") == (
        f"`{written}` should be `{right}`: softmax has a "
        f"Jacobian, not an elementwise derivative, and with cross-entropy the output error is y_hat - y",
        "softmax_elementwise")
    assert r["first_error"]["kind"] == "softmax_elementwise"


@pytest.mark.parametrize("convention", ["rows", "columns"])
def test_the_questions_own_W_keeps_its_text(convention):
    net = Network([3, 3, 3, 1], ["sigmoid"] * 3, loss="mse", bias=False)
    net.initialize(2, "normal", 1.0)
    X, y = np.random.default_rng(1).normal(size=(1, 3)), np.array([[0.5]])
    r = derive(net, X, y, QUESTION_EQUATIONS[convention], convention)
    formula = "k_1 = (W_2^T k_2) o f'(a_1)" if convention == "columns" else "delta_1 = (delta_2 W_2) * f'(a_1)"
    assert repair_of(r, 1, "delta[1]") == (
        "with W[2] where you wrote W[1], delta[1] is right (the error reaches layer 1 through the weights of the "
        f"layer above, W_2, not through W_1: {formula})", "own_W")
    assert r["first_error"]["kind"] == "own_W"


def test_every_repair_kind_is_in_the_catalogue():
    for kind in ("plus_minus", "a_for_z", "extra_factor", "wrong_W", "extra_T", "sign", "wrong_derivative",
                 "softmax_elementwise", "own_W", "no_T", "transposed", "fprime_z", "fprime_twice", "extra_fprime"):
        assert KINDS[kind]


@pytest.mark.parametrize("convention", ["rows", "columns"])
def test_f_prime_of_z_twice_and_a_negated_constant(convention):
    net, X, y = net_and_batch(["tanh", "tanh", "sigmoid"])
    r = derive(net, X, y, with_expr(net, convention, "delta[i]", "fprime(a[i])", "fprime(z[i])"), convention)
    assert repair_of(r, 2, "delta[2]") == ("`z[2]` should be `a[2]`: f' is taken of the pre-activation a", "fprime_z")
    r = derive(net, X, y, with_expr(net, convention, "delta[i]", "fprime(a[i])", "fprime(a[i]) * fprime(a[i])"),
               convention)
    inner = "delta[3] @ W[3]" if convention == "rows" else "W[3].T @ delta[3]"
    assert repair_of(r, 2, "delta[2]") == (f"`{inner} * fprime(a[2])` should be `{inner}`: f'(a_2) is counted once",
                                           "fprime_twice")
    r = derive(net, X, y, with_expr(net, convention, "delta[L]", "2 *", "-2 *"), convention)
    assert repair_of(r, 3, "delta[3]") == ("`-2` should be `2`", "sign")


@pytest.mark.parametrize("convention", ["rows", "columns"])
def test_an_extra_f_prime_on_a_fused_output(convention):
    net, X, y = net_and_batch(["tanh", "tanh", "sigmoid"], loss="bce")
    eqs = correct_equations(net, convention)
    right = eqs[0]["expr"]
    eqs[0]["expr"] = f"({right}) * fprime(a[L])"
    r = derive(net, X, y, eqs, convention)
    assert repair_of(r, 3, "delta[3]") == (
        f"`{'(y_hat - y) / B' if convention == 'rows' else '(y_hat - y)'} * fprime(a[3])` "
        f"should be `{right}`: with bce and sigmoid the output's f' cancels, the output error is y_hat - y",
        "extra_fprime")
