"""derive: the student's backward pass as equations, in the question's columns and in batch rows."""
import numpy as np
import pytest

from app.engine.derive import (
    CORRECT_EQUATIONS,
    QUESTION_EQUATIONS,
    DeriveSyntaxError,
    derive,
)
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
    top = hidden - 1  # layers L and L - 1 are right; the recurrence starts below
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


@pytest.mark.parametrize("convention,case,bias", [
    (c, k, b) for c in MISTAKES for k in range(len(MISTAKES[c])) for b in (True, False)
    if b or not MISTAKES[c][k][0].startswith("db")])  # no db without a bias
def test_each_mistake_gets_its_hint(convention, case, bias):
    target, expr, layer, words = MISTAKES[convention][case]
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
    ("__import__('os').system('true')", 0, "unknown function '__import__'"),
    ("W[i].shape", 0, "attribute .shape"),
    ("delta[i].T.T @ np.ones(3)", 15, "write np.ones_like(x)"),
    ("foo * 2", 0, "unknown name 'foo'"),
    ("W * 2", 0, "write W[k]"),
    ("W[i] ** W[i]", 8, "x ** n takes a number n"),
    ("(lambda: 1)()", 1, "lambda is not in the language"),
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


def test_every_input_gets_a_verdict_or_a_syntax_error_never_a_crash():
    net = Network([2, 3, 2], ["tanh", "softmax"], loss="cross_entropy")
    net.initialize(1)
    X, y = np.ones((3, 2)), np.eye(2)[[0, 1, 0]]
    for expr in ("1 / 0 * delta[i+1]", "fprime(a[L])", "outer(W[i], z[i-1])", "sum(delta[i+1], axis=5)",
                 "mean(delta[i+1], axis=None)", "W[7]", "b[i] @ b[i]", "-delta[i+1].T.T", "f(a[i]) - f(a[i])"):
        for conv in ("rows", "columns"):
            r = derive(net, X, y, [{"target": "delta[L]", "expr": "y_hat - y"}, {"target": "delta[i]", "expr": expr},
                                   {"target": "dW[i]", "expr": "delta[i].T @ z[i-1]" if conv == "rows"
                                    else "delta[i] @ z[i-1].T"}], conv)
            assert r["passed"] is False and r["first_error"]["message"]
    for bad in ("1e999", "10**400", "9" * 30):
        with pytest.raises(DeriveSyntaxError):
            derive(net, X, y, [{"target": "delta[L]", "expr": bad}], "rows")
    with pytest.raises(DeriveSyntaxError, match="names layer 0"):
        derive(net, X, y, [{"target": "dW[L-2]", "expr": "W[1]"}], "rows")


def test_columns_softmax_runs_over_the_column():
    net = Network([2, 3], ["softmax"], loss="cross_entropy")
    net.initialize(2)
    X, y = np.array([[0.5, -1.0], [2.0, 0.1]]), np.eye(3)[[0, 2]]
    eqs = [{"target": "delta[L]", "expr": "f(a[L]) - y"}, {"target": "dW[i]", "expr": "delta[i] @ z[i-1].T"},
           {"target": "db[i]", "expr": "delta[i]"}]
    assert derive(net, X, y, eqs, "columns")["passed"]


def test_the_questions_mse_error_on_a_bce_net_is_named():
    """The page's default net is 2-8-8-1 with bce: the question's 2(y_hat - y) f'(a_L) is MSE's error."""
    net = Network([2, 8, 8, 1], ["tanh", "tanh", "sigmoid"], loss="bce")
    net.initialize(0)
    X, y = batch(net, 4)
    y = (y > 0).astype(float)
    eqs = replace(CORRECT_EQUATIONS["rows"], "delta[L]", "2 * (y_hat - y) / B * fprime(a[L])")
    r = derive(net, X, y, eqs, "rows")
    assert r["first_error"]["layer"] == 3
    assert "output error of mse" in r["first_error"]["message"] and "delta_3 = (y_hat - y)/B" in r["first_error"]["message"]
    assert derive(net, X, y, replace(CORRECT_EQUATIONS["rows"], "delta[L]", "(y_hat - y) / B"), "rows")["passed"]


@pytest.mark.parametrize("convention", ["columns", "rows"])
@pytest.mark.parametrize("loss,out", [("bce", "sigmoid"), ("cross_entropy", "softmax"), ("bce", "tanh"),
                                      ("mse", "identity")])
def test_correct_equations_for_every_loss(convention, loss, out):
    from app.engine.derive import correct_equations
    net = Network([2, 4, 3 if out == "softmax" else 1], ["tanh", out], loss=loss, bias=out != "identity")
    net.initialize(3)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5, 2)) * (0.1 if out == "tanh" else 1.0)
    if out == "tanh":  # keep the unfused bce's output inside (0, 1)
        net.dense[-1].params["b"][...] = 1.0
    y = np.eye(3)[rng.integers(0, 3, 5)] if out == "softmax" else (rng.random((5, 1)) < 0.5).astype(float)
    if loss == "bce":
        assert 0 < net.forward(X).min() and net.forward(X).max() < 1
    r = derive(net, X, y, correct_equations(net, convention), convention)
    assert r["passed"], r["first_error"]


def test_a_value_larger_than_any_step_needs_is_refused_not_computed():
    net = Network([2, 4, 1], ["tanh", "identity"], loss="mse")
    net.initialize(0)
    X, y = batch(net, 3000)
    eqs = [{"target": "delta[L]", "expr": "2 * (y_hat - y) / B"}, {"target": "delta[i]", "expr": "delta[i+1] @ delta[i+1].T"},
           {"target": "dW[i]", "expr": "delta[i].T @ z[i-1]"}]
    r = derive(net, X, y, eqs, "rows")
    assert r["first_error"]["layer"] == 1 and "9000000 entries" in r["first_error"]["message"]
    # the columns notation averages dW chunk by chunk, never holding a (B, n, n) stack, and gets the same gradient
    rc = derive(net, X, y, CORRECT_EQUATIONS["columns"], "columns")
    assert rc["passed"]


def test_chunks_of_samples_give_the_same_verdicts(monkeypatch):
    import app.engine.derive as d
    net = Network([4, 4, 4, 4, 1], ["tanh", "sigmoid", "tanh", "identity"], loss="mse")
    net.initialize(1)
    X, y = batch(net, 37)
    whole = derive(net, X, y, QUESTION_EQUATIONS["columns"], "columns")
    monkeypatch.setattr(d, "BUDGET", 64)  # 4 samples per chunk
    chunked = derive(net, X, y, QUESTION_EQUATIONS["columns"], "columns")
    assert chunked["first_error"] == whole["first_error"]
    assert whole["first_error"]["layer"] == 2
    for a, b in zip(chunked["layers"], whole["layers"]):
        assert a["dW"]["relative_error"] == pytest.approx(b["dW"]["relative_error"], rel=1e-9, abs=1e-15)
    assert derive(net, X, y, CORRECT_EQUATIONS["columns"], "columns")["passed"]


@pytest.mark.parametrize("convention", ["columns", "rows"])
def test_the_questions_recurrence_on_one_hidden_layer_passes_and_names_delta_i_unused(convention):
    """delta[L] and delta[L-1] cover both layers: the faulty delta[i] is not evaluated, and the result says so."""
    net = square_net(1, "sigmoid")
    X, y = batch(net, 1)
    r = derive(net, X, y, QUESTION_EQUATIONS[convention], convention)
    assert r["passed"] is True and r["first_error"] is None
    by_target = {u["target"]: u for u in r["unused"]}
    k = next(n for n, e in enumerate(QUESTION_EQUATIONS[convention]) if e["target"] == "delta[i]")
    assert by_target["delta[i]"]["index"] == k
    assert by_target["delta[i]"]["expr"] == QUESTION_EQUATIONS[convention][k]["expr"]
    assert "delta[L] and delta[L-1] on this 2-layer net" in by_target["delta[i]"]["reason"]
    assert "from layer L-2 down, on nets with 2 or more hidden layers" in by_target["delta[i]"]["reason"]
    assert by_target["db[i]"]["reason"] == "this network has no biases, so db[i] was not evaluated"
    # one more hidden layer: delta[i] is used (and fails), only db is left unused
    deeper = square_net(2, "sigmoid")
    r2 = derive(deeper, *batch(deeper, 1), QUESTION_EQUATIONS[convention], convention)
    assert r2["passed"] is False and [u["target"] for u in r2["unused"]] == ["db[i]"]


def test_targets_given_twice_report_the_one_that_does_not_count():
    net = square_net(2, "tanh")
    X, y = batch(net, 2)
    eqs = [dict(e) for e in CORRECT_EQUATIONS["rows"] if not e["target"].startswith("db")]
    eqs += [{"target": "dW[i]", "expr": "delta[i].T @ z[i-1] * 2"},  # a second general dW: the first counts
            {"target": "delta[L]", "expr": "(y_hat - y) * fprime(a[L])"},  # overridden by the next one
            {"target": "delta[3]", "expr": eqs[0]["expr"]}]
    r = derive(net, X, y, eqs, "rows")
    assert r["passed"] is True
    assert [(u["index"], u["target"]) for u in r["unused"]] == [(0, "delta[L]"), (3, "dW[i]"), (4, "delta[L]")]
    assert r["unused"][0]["reason"] == "a later equation also gives delta[3] and overrides this one (the last one counts)"
    assert r["unused"][1]["reason"] == "an earlier dW[i] equation gives every layer's dW; the first one counts"
    # all used: nothing listed
    assert derive(net, X, y, eqs[:3], "rows")["unused"] == []
