"""derive: the student's backward pass as equations, in the question's columns and in batch rows."""
import numpy as np
import pytest

from app.engine.derive import CORRECT_EQUATIONS, QUESTION_EQUATIONS, DeriveSyntaxError, derive
from app.engine.network import Network


def square_net(hidden, f_name, n=3, p=None, seed=0):
    net = Network([p or n] + [n] * hidden + [1], [f_name] * (hidden + 1), loss="mse", bias=False)
    net.initialize(seed, "normal", 1.0)
    return net


def batch(net, B, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, net.sizes[0])), rng.normal(size=(B, net.sizes[-1]))


@pytest.mark.parametrize("convention", ["columns", "rows"])
@pytest.mark.parametrize("f_name", ["sigmoid", "tanh"])
@pytest.mark.parametrize("hidden", [2, 3, 4])
def test_the_questions_recurrence_fails_where_it_breaks(convention, f_name, hidden):
    net = square_net(hidden, f_name, seed=hidden)
    X, y = batch(net, 1)
    r = derive(net, X, y, QUESTION_EQUATIONS[convention], convention)
    L, top = hidden + 1, hidden - 1
    assert not r["passed"] and r["first_error"]["layer"] == top
    assert f"W_{top + 1}^T" in r["first_error"]["message"] and f"with W[{top + 1}] where you wrote W[{top}]" \
        in r["first_error"]["message"]
    for entry in r["layers"]:
        i = entry["layer"]
        assert entry["dW"]["passed"] == (i > top)
        if i < top:
            assert f"fix layer {top} first" in entry["dW"]["hint"]


@pytest.mark.parametrize("convention", ["columns", "rows"])
def test_non_square_net_stops_at_layer_1_with_a_shape_error(convention):
    net = square_net(2, "sigmoid", n=3, p=2)
    X, y = batch(net, 1)
    r = derive(net, X, y, QUESTION_EQUATIONS[convention], convention)
    e = r["first_error"]
    assert not r["passed"] and e["layer"] == 1 and e["target"] == "delta[1]"
    if convention == "columns":
        assert "(1, 3) @ (3, 2)" in e["message"] and "fprime(a[1]) of shape (3, 1)" in e["message"]
    else:
        assert "(1, 3) @ (3, 2)" in e["message"] and "fprime(a[1]) of shape (1, 3)" in e["message"]
    assert "with W[2] where you wrote W[1]" in e["message"]
    step = next(s for s in r["layers"][0]["steps"] if s["target"] == "delta[1]")
    assert step["shape"] is None and "needs equal shapes" in step["error"]
    assert r["layers"][2]["dW"]["passed"] and r["layers"][1]["dW"]["passed"]  # above the error: checked, right


@pytest.mark.parametrize("convention", ["columns", "rows"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("acts", [["tanh", "relu", "identity"], ["sigmoid", "tanh", "sigmoid"]])
def test_correct_equations_pass(convention, bias, acts):
    net = Network([3, 4, 5, 2], acts, loss="mse", bias=bias)
    net.initialize(4, "normal", 1.0)
    X, y = batch(net, 6)
    eqs = [e for e in CORRECT_EQUATIONS[convention] if bias or not e["target"].startswith("db")]
    r = derive(net, X, y, eqs, convention)
    assert r["passed"] and r["first_error"] is None, r["first_error"]
    for entry in r["layers"]:
        assert entry["dW"]["passed"] and (entry["db"] is None) == (not bias)
        assert all(s["error"] is None for s in entry["steps"])
    shapes = {s["target"]: s["shape"] for e in r["layers"] for s in e["steps"]}
    assert shapes["delta[2]"] == ([5, 1] if convention == "columns" else [6, 5])
    assert shapes["dW[2]"] == [5, 4]


def replace(eqs, target, expr):
    return [e for e in eqs if e["target"] != target] + [{"target": target, "expr": expr}]


MISTAKES = {  # convention -> (target, wrong expr, layer where it enters, words)
    "columns": [("delta[2]", "(W[2].T @ delta[3]) * fprime(a[2])", 2, "own W_2 where W_3^T belongs"),
                ("delta[2]", "(W[3] @ delta[3]) * fprime(a[2])", 2, "transpose is missing"),
                ("delta[2]", "W[3].T @ delta[3]", 2, "f'(a_2) is missing"),
                ("delta[2]", "(W[3].T @ delta[3]) * fprime(z[2])", 2, "f'(z_2)"),
                ("delta[L]", "(y_hat - y) * fprime(a[L])", 4, "factor 2"),
                ("delta[L]", "2 * (y_hat - y) / B * fprime(a[L])", 4, "1/B"),
                ("delta[L]", "2 * (y - y_hat) * fprime(a[L])", 4, "opposite sign"),
                ("dW[i]", "z[i-1] @ delta[i].T", 4, "transposed")],
    "rows": [("delta[2]", "(delta[3] @ W[2]) * fprime(a[2])", 2, "own W_2 where W_3^T belongs"),
             ("delta[2]", "(delta[3] @ W[3].T) * fprime(a[2])", 2, "transpose is missing"),
             ("delta[2]", "delta[3] @ W[3]", 2, "f'(a_2) is missing"),
             ("delta[L]", "(y_hat - y) / B * fprime(a[L])", 4, "factor 2"),
             ("delta[L]", "2 * (y_hat - y) * fprime(a[L])", 4, "B = 5 times"),
             ("delta[L]", "2 * (y - y_hat) / B * fprime(a[L])", 4, "opposite sign"),
             ("db[i]", "delta[i]", 4, "delta per sample"),
             ("dW[i]", "z[i-1].T @ delta[i]", 4, "transposed")],
}


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("convention,case", [(c, k) for c in MISTAKES for k in range(len(MISTAKES[c]))])
def test_each_mistake_gets_its_hint(convention, case, bias):
    target, expr, layer, words = MISTAKES[convention][case]
    if target.startswith("db") and not bias:
        pytest.skip("no db without a bias")
    net = Network([3, 4, 4, 4, 2], ["tanh", "sigmoid", "tanh", "sigmoid"], loss="mse", bias=bias)
    net.initialize(5, "normal", 0.9)
    X, y = batch(net, 5)
    eqs = [e for e in CORRECT_EQUATIONS[convention] if bias or not e["target"].startswith("db")]
    r = derive(net, X, y, replace(eqs, target, expr), convention)
    assert not r["passed"] and r["first_error"]["layer"] == layer, r["first_error"]
    hints = " ".join(v["hint"] or "" for e in r["layers"] if e["layer"] == layer for v in (e["dW"], e["db"]) if v)
    assert words in r["first_error"]["message"] + hints
    for e in r["layers"]:
        if e["layer"] < layer and target.startswith("delta"):
            assert f"fix layer {layer} first" in e["dW"]["hint"]


@pytest.mark.parametrize("expr,pos,words", [
    ("__import__('os').system('true')", 0, "unknown function"),
    ("W[i].shape", 0, "attribute .shape"),
    ("delta[i].T.T @ np.ones(3)", 15, "unknown function"),
    ("foo * 2", 0, "unknown name 'foo'"),
    ("W * 2", 0, "write W[k]"),
    ("W[i] ** 2", 0, "Pow"),
    ("(lambda: 1)()", 0, "unknown function"),
    ("W[i+j]", 2, "an index"),
    ("delta[i] +", None, "syntax error"),
    ("'text'", 0, "not a number"),
])
def test_refused_outside_the_language(expr, pos, words):
    eqs = [{"target": "delta[L]", "expr": "y_hat - y"}, {"target": "dW[i]", "expr": expr}]
    with pytest.raises(DeriveSyntaxError) as e:
        derive(square_net(1, "tanh"), *batch(square_net(1, "tanh"), 1), eqs, "rows")
    assert e.value.index == 1 and words in e.value.message
    assert pos is None or e.value.position == pos, e.value.message
    with pytest.raises(DeriveSyntaxError) as e:
        derive(square_net(1, "tanh"), *batch(square_net(1, "tanh"), 1), [{"target": "k[i]", "expr": "1"}], "rows")
    assert e.value.index == 0 and "target" in e.value.message


def test_named_layer_overrides_the_general_equation_and_order_of_evaluation():
    net = square_net(2, "tanh")
    X, y = batch(net, 2)
    eqs = CORRECT_EQUATIONS["rows"] + [{"target": "delta[1]", "expr": "delta[2] @ W[2]"}]
    r = derive(net, X, y, eqs, "rows")
    assert r["first_error"]["layer"] == 1 and "f'(a_1) is missing" in r["first_error"]["message"]
    r = derive(net, X, y, replace(CORRECT_EQUATIONS["rows"], "delta[i]", "delta[i-1]"), "rows")
    assert "not computed yet" in r["first_error"]["message"] and r["first_error"]["layer"] == 2
