"""POST /api/models/{id}/derive: your backward pass as equations, in the question's columns or the engine's rows.

Every answer is compared with the engine's own gradients for the same batch; the mistakes are the issue's list
(the question's W_i for W_{i+1}^T, a transpose, f', the 2, powers of B, the sign, db per sample)."""
from __future__ import annotations

import numpy as np
import pytest

from app.engine import derive as engine
from app.engine.program import FIXED_CODE, QUESTION_CODE

from ..utils import DIVERGED, SMALL, arr, create, diverged_model, invalid, unprocessable

# the question's setting: sigmoid everywhere, one output, no bias, MSE; input width 2 differs from the hidden 3
QUESTION = {"input_size": 2, "layers": [{"units": 3, "activation": "sigmoid"}, {"units": 3, "activation": "sigmoid"},
                                        {"units": 1, "activation": "sigmoid"}],
            "loss": "mse", "bias": False, "batch_size": None,
            "data": {"X": [[0.5, -1.0], [1.5, 0.25], [-0.75, 0.5], [0.0, 1.0]], "y": [[1.0], [0.0], [1.0], [0.0]]}}
ONE = {"X": [[0.5, -1.0]], "y": [[1.0]]}

COLUMNS = [{"target": "delta[L]", "expr": "2 * (y_hat - y) * fprime(a[L])"},
           {"target": "delta[i]", "expr": "(W[i+1].T @ delta[i+1]) * fprime(a[i])"},
           {"target": "dW[i]", "expr": "delta[i] @ z[i-1].T"},
           {"target": "db[i]", "expr": "delta[i]"}]
ROWS = [{"target": "delta[L]", "expr": "2 * (y_hat - y) / B * fprime(a[L])"},
        {"target": "delta[i]", "expr": "(delta[i+1] @ W[i+1]) * fprime(a[i])"},
        {"target": "dW[i]", "expr": "delta[i].T @ z[i-1]"},
        {"target": "db[i]", "expr": "sum(delta[i], axis=0)"}]
CORRECT = {"columns": COLUMNS, "rows": ROWS}


def spec(bias: bool, act: str = "tanh", sizes=(3, 4, 2), seed: int = 0) -> dict:
    """A random regression net (mse) with and without bias; 3 inputs, widths all different."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(6, 3)).round(3).tolist()
    y = rng.normal(size=(6, sizes[-1])).round(3).tolist()
    return {"input_size": 3, "layers": [{"units": n, "activation": act} for n in sizes[:-1]] +
            [{"units": sizes[-1], "activation": "sigmoid"}], "loss": "mse", "bias": bias, "seed": seed,
            "batch_size": None, "data": {"X": X, "y": y}}


def post(client, mid, equations, convention="columns", **batch):
    return client.post(f"/api/models/{mid}/derive", json={"convention": convention, **batch, "equations": equations})


def replace(equations, target, expr):
    return [{**e, "expr": expr} if e["target"] == target else e for e in equations]


# -- correct equations pass ------------------------------------------------------------------------
@pytest.mark.parametrize("convention", ["columns", "rows"])
@pytest.mark.parametrize("bias", [True, False])
def test_correct_equations_pass(client, convention, bias):
    mid = create(client, spec(bias))["id"]
    for equations in (CORRECT[convention], engine.CORRECT_EQUATIONS[convention]):
        eqs = equations if bias else [e for e in equations if not e["target"].startswith("db")]
        r = post(client, mid, eqs, convention)
        assert r.status_code == 200, r.text
        d = r.json()
        assert (d["passed"], d["first_error"]) == (True, None), d
        assert [layer["layer"] for layer in d["layers"]] == [1, 2, 3]
        assert all(layer["dW"]["passed"] for layer in d["layers"])
        assert all((layer["db"] is not None) == bias for layer in d["layers"])
        steps = {s["target"] for layer in d["layers"] for s in layer["steps"]}
        assert {"delta[3]", "dW[1]"} <= steps or {"delta[L]", "dW[i]"} <= steps


def test_default_batch_is_the_one_gradients_uses(limited):
    client = limited(gradients_default_rows=3)
    mid = create(client, spec(True))["id"]
    g = client.get(f"/api/models/{mid}/gradients").json()
    d = post(client, mid, ROWS, "rows").json()
    assert d["passed"] is True
    # the verdicts compare with GET /gradients' dW: the default batch is the same rows
    np.testing.assert_allclose(d["layers"][0]["dW"]["expected_shape"], arr(g["layers"][0]["dW"]).shape)


# -- the question's recurrence ---------------------------------------------------------------------
def test_question_recurrence_in_columns_stops_at_layer_1_with_both_shapes(client):
    """k_i = (k_{i+1}^T W_i) o f'(W_i z_{i-1}) on 2-3-3-1: (1, 3) @ (3, 2) against f'(a_1) of shape (3, 1)."""
    mid = create(client, QUESTION)["id"]
    r = post(client, mid, engine.QUESTION_EQUATIONS["columns"], "columns", **ONE)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["passed"] is False
    fe = d["first_error"]
    assert fe["layer"] == 1
    assert "(1, 3)" in fe["message"] and "(3, 2)" in fe["message"], fe
    assert "(3, 1)" in fe["message"], fe
    layer1 = d["layers"][0]
    assert any(s["error"] and "(1, 3)" in s["error"] for s in layer1["steps"])
    assert layer1["dW"] is None or layer1["dW"]["passed"] is False


def test_question_recurrence_on_a_square_net_names_the_next_layers_weights(client):
    square = {**QUESTION, "input_size": 3, "data": {"X": [[0.5, -1.0, 0.25]], "y": [[1.0]]}}
    mid = create(client, square)["id"]
    d = post(client, mid, engine.QUESTION_EQUATIONS["columns"], "columns").json()
    assert d["passed"] is False
    fe = d["first_error"]
    assert fe["layer"] == 1 and ("W_2" in fe["message"] or "W[2]" in fe["message"]), fe  # W_{i+1}, transposed
    assert d["layers"][2]["dW"]["passed"] is True  # the output layer is right


def test_question_recurrence_on_one_hidden_layer_passes_but_names_the_unused_delta_i(client):
    """2-layer net: delta[L] and delta[L-1] give every delta, so the faulty delta[i] is never evaluated; the
    pass says so instead of hiding it."""
    one_hidden = {**QUESTION, "input_size": 3, "layers": QUESTION["layers"][1:],
                  "data": {"X": [[0.5, -1.0, 0.25]], "y": [[1.0]]}}
    mid = create(client, one_hidden)["id"]
    for convention in ("columns", "rows"):
        eqs = [e for e in engine.QUESTION_EQUATIONS[convention] if not e["target"].startswith("db")]
        r = post(client, mid, eqs, convention)
        assert r.status_code == 200, r.text
        d = r.json()
        assert (d["passed"], d["first_error"]) == (True, None), d
        k = next(n for n, e in enumerate(eqs) if e["target"] == "delta[i]")
        assert d["unused"] == [{
            "index": k, "target": "delta[i]", "expr": eqs[k]["expr"],
            "reason": "every layer's delta is given by delta[L] and delta[L-1] on this 2-layer net (1 hidden "
                      "layer), so delta[i] was not evaluated and a mistake in it cannot show here; it applies "
                      "from layer L-2 down, on nets with 2 or more hidden layers"}]
    # every equation used: an empty list
    assert post(client, mid, COLUMNS[:3]).json()["unused"] == []


# -- each mistake gets its hint --------------------------------------------------------------------
MISTAKES = {  # name: (convention, target, wrong expr, what the diagnosis must say); 3-4-5-1, B = 6
    "no transpose (rows)": ("rows", "dW[i]", "delta[i] @ z[i-1]", (
        "layer 3, dW[3] = delta[i] @ z[i-1]: delta[3] of shape (6, 1) @ z[2] of shape (6, 5): a matrix product "
        "needs the columns of the left to equal the rows of the right",)),
    "extra transpose": ("rows", "delta[i]", "(delta[i+1] @ W[i+1].T) * fprime(a[i])", (
        "delta[3] of shape (6, 1) @ W[3].T of shape (5, 1)", "with W[3] where you wrote W[3].T, delta[2] is right")),
    "f' missing": ("columns", "delta[i]", "W[i+1].T @ delta[i+1]", ("the factor f'(a_2) is missing",)),
    "f' of the wrong quantity": ("columns", "delta[i]", "(W[i+1].T @ delta[i+1]) * fprime(z[i])",
                                 ("f'(z_2) is there where f'(a_2) belongs",)),
    "factor 2": ("columns", "delta[L]", "(y_hat - y) * fprime(a[L])",
                 ("the factor 2 of d/dy_hat (y_hat - y)^2 = 2(y_hat - y) is missing",)),
    "sum over the batch": ("rows", "delta[L]", "2 * (y_hat - y) * fprime(a[L])",
                           ("is B = 6 times the true gradient: you summed over the batch",)),
    "sign": ("columns", "delta[L]", "2 * (y - y_hat) * fprime(a[L])", ("has the opposite sign",)),
    "db per sample": ("rows", "db[i]", "delta[i]", ("you gave delta per sample, shape (6, 1)",)),
    "db in another shape": ("columns", "db[i]", "delta[i].T", ("transposed: you gave db_2^T, shape (1, 5)",)),
    "1/B twice": ("rows", "delta[L]", "2 * (y_hat - y) / B / B * fprime(a[L])",
                  ("is 1/B = 1/6 of the true gradient: the mean's 1/B is counted twice",)),
    "B squared": ("rows", "dW[i]", "delta[i].T @ z[i-1] * B * B", ("is B^2 = 36 times the true gradient",)),
    "f' twice": ("columns", "delta[i]", "(W[i+1].T @ delta[i+1]) * fprime(a[i]) * fprime(a[i])",
                 ("f'(a_2) applied twice",)),
}


@pytest.mark.parametrize("name,bias", [(n, b) for n in MISTAKES for b in (True, False)
                                        if b or not MISTAKES[n][1].startswith("db")])  # no db without a bias
def test_each_mistake_gets_its_hint(client, name, bias):
    convention, target, expr, words = MISTAKES[name]
    mid = create(client, spec(bias, sizes=(4, 5, 1)))["id"]
    eqs = CORRECT[convention] if bias else [e for e in CORRECT[convention] if not e["target"].startswith("db")]
    r = post(client, mid, replace(eqs, target, expr), convention)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["passed"] is False
    fe = d["first_error"]
    assert fe is not None and fe["message"], d
    for w in words:
        assert w in fe["message"], (name, fe)


# -- refusals --------------------------------------------------------------------------------------
REFUSED = [  # (expr, field, exact message): syntax errors and names outside the language are 422s
    ("__import__('os').system('true')", "expr", "position 0: unknown function '__import__'; the language has "
     "f, fprime, sum, mean, outer, np.dot, np.matmul, np.multiply, np.sum, np.mean, np.outer, "
     "np.transpose, np.exp, np.log, np.tanh, np.maximum, np.where, np.ones_like, np.zeros_like, np.square, np.sqrt; "
     "the activations by name are identity, sigmoid, tanh, relu, leaky_relu, elu, softplus, silu, softmax"),
    ("W[i].shape", "expr", "position 0: attribute .shape is not in the language: B is the batch size and L the "
     "number of layers"),
    ("delta[i] @ W[i].__class__", "expr", "position 11: attribute .__class__ is not allowed; only .T (transpose)"),
    ("foo[i] * 2", "expr", "position 0: only W, b, a, z, delta can be indexed (by layer)"),
    ("delta[i] * k", "expr", "position 11: unknown name 'k': the language knows W, b, a, z, delta (indexed) and "
                             "y, y_hat, B, L"),
    ("eval('1')", "expr", "position 0: unknown function 'eval'; the language has f, fprime, sum, mean, outer, np.dot, np.matmul, np.multiply, np.sum, np.mean, np.outer, "
     "np.transpose, np.exp, np.log, np.tanh, np.maximum, np.where, np.ones_like, np.zeros_like, np.square, np.sqrt; "
     "the activations by name are identity, sigmoid, tanh, relu, leaky_relu, elu, softplus, silu, softmax"),
    ("lambda: 1", "expr", "position 0: lambda is not in the language: write the expression itself (a backward "
     "pass needs no functions of your own)"),
]


@pytest.mark.parametrize("expr,field,msg", REFUSED)
def test_refuses_unsafe_and_unknown_names(client, expr, field, msg):
    mid = create(client, QUESTION)["id"]
    unprocessable(post(client, mid, replace(COLUMNS, "dW[i]", expr)), ["body", "equations", 2, field], msg)


@pytest.mark.parametrize("expr", ["fprime(2) * delta[i]", "f(B) * delta[i]", "outer(2, 3)", "sum(2) * delta[i]",
                                  "(2).T * delta[i]", "mean(B, axis=0)", "delta[i] / 0", "W[i] @ W[i] @ W[i]"])
def test_unusual_expressions_are_never_a_500(client, expr):
    """Numbers where arrays belong: a verdict or a 422, never a server error (the client fails on any 5xx)."""
    mid = create(client, {**QUESTION, "layers": [{"units": 3, "activation": "tanh"}] * 2 + QUESTION["layers"][-1:]})["id"]
    for convention in ("columns", "rows"):
        r = post(client, mid, replace(CORRECT[convention], "dW[i]", expr), convention)
        assert r.status_code in (200, 422), r.text


def test_refuses_syntax_errors_and_unknown_targets(client):
    mid = create(client, QUESTION)["id"]
    r = post(client, mid, replace(COLUMNS, "delta[i]", "(W[i+1].T @ delta[i+1]) *"))
    assert r.status_code == 422
    (item,) = r.json()["detail"]
    assert item["loc"] == ["body", "equations", 1, "expr"] and item["msg"].startswith("position "), item
    assert "syntax error" in item["msg"]
    unprocessable(post(client, mid, [{"target": "dZ[i]", "expr": "delta[i]"}]), ["body", "equations", 0, "target"],
                  "position 0: target 'dZ[i]': write delta[i], dW[i] or db[i], or name one layer: delta[L], "
                  "delta[L-1], dW[2]")


@pytest.mark.parametrize("setting,body_change,loc,msg", [
    ({"derive_max_equations": 3}, {}, ["body", "equations"], "has 4 equations; the limit is 3"),
    ({"derive_max_expr_length": 20}, {}, ["body", "equations", 0, "expr"], "has 30 characters; the limit is 20"),
    ({"derive_max_rows": 2}, {"X": [[0, 0]] * 3, "y": [[0]] * 3}, ["body", "X"], "has 3 rows; the limit is 2"),
])
def test_bounds(limited, setting, body_change, loc, msg):
    client = limited(**setting)
    mid = create(client, QUESTION)["id"]
    unprocessable(post(client, mid, COLUMNS, **body_change), loc, msg)
    assert client.get("/api/catalog").json()["limits"][next(iter(setting))] == next(iter(setting.values()))


@pytest.mark.parametrize("body,loc,msg", [
    ({"equations": COLUMNS}, ["body", "convention"], "Field required"),
    ({"convention": "diagonal", "equations": COLUMNS}, ["body", "convention"], "Input should be 'columns' or 'rows'"),
    ({"convention": "rows", "equations": []}, ["body", "equations"], "List should have at least 1 item after validation, not 0"),
    ({"convention": "rows", "equations": [{"target": "dW[i]"}]}, ["body", "equations", 0, "expr"], "Field required"),
])
def test_schema_errors(client, body, loc, msg):
    mid = create(client, QUESTION)["id"]
    invalid(client.post(f"/api/models/{mid}/derive", json=body), loc, msg)


def test_batch_errors_and_unknown_model(client):
    mid = create(client, QUESTION)["id"]
    unprocessable(post(client, mid, COLUMNS, X=[[0, 0, 0]], y=[[1]]), ["body", "X"],
                  "has 3 columns; the model expects 2 raw input columns")
    unprocessable(post(client, mid, COLUMNS, X=[[0, 0]]), ["body", "y"], "X and y go together")
    r = post(client, "0" * 32, COLUMNS)
    assert (r.status_code, r.json()) == (404, {"detail": f"model {'0' * 32} not found"})


def test_examples(client):
    e = client.get("/api/derive/examples").json()
    assert e == {"question": engine.QUESTION_EQUATIONS, "correct": engine.CORRECT_EQUATIONS,
                 "code": {"question": QUESTION_CODE, "fixed": FIXED_CODE}}


def test_examples_for_a_model_fit_its_loss(client):
    """On the default net (bce + sigmoid: delta_L = y_hat - y) the correct set passes in both conventions, and the
    question's recurrence fails at layer 1 with the shapes of its operands: (1, 8) @ (8, 2)."""
    mid = create(client)["id"]
    e = client.get(f"/api/models/{mid}/derive/examples").json()
    assert e["correct"]["columns"][0] == {"target": "delta[L]", "expr": "y_hat - y"}
    assert e["correct"]["rows"][0] == {"target": "delta[L]", "expr": "(y_hat - y) / B"}
    for convention in ("columns", "rows"):
        assert post(client, mid, e["correct"][convention], convention).json()["passed"] is True
    d = post(client, mid, e["question"]["columns"], "columns").json()
    assert d["first_error"]["layer"] == 1 and "(from (1, 8) @ (8, 2))" in d["first_error"]["message"]
    no_bias = create(client, QUESTION)["id"]
    e = client.get(f"/api/models/{no_bias}/derive/examples").json()
    assert e["correct"]["columns"] == [x for x in COLUMNS if not x["target"].startswith("db")]  # mse, no bias


@pytest.mark.parametrize("spec,y,msg", [
    ({"layers": [{"units": 4}, {"units": 3, "activation": "softmax"}], "loss": "cross_entropy",
      "data": {"X": [[0, 0], [1, 0], [0, 1]], "y": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}},
     [[5, 5, 5]], "cross_entropy needs one-hot or probability target rows that sum to 1"),
    (SMALL, [[7]], "bce needs targets in [0, 1]; use mse for regression data"),
])
def test_derive_refuses_targets_the_loss_cannot_take(client, spec, y, msg):
    mid = create(client, spec)["id"]
    r = client.post(f"/api/models/{mid}/derive", json={"convention": "rows", "X": [[0.1, 0.2]], "y": y, "equations": ROWS})
    unprocessable(r, ["body", "y"], msg)


OWN_W = {"rows": ("(delta[i+1] @ W[i]) * fprime(a[i])", "delta[3] of shape (4, 1) @ W[2] of shape (3, 3)",
                  "delta_2 = (delta_3 W_3) * f'(a_2)"),
         "columns": ("(W[i].T @ delta[i+1]) * fprime(a[i])", "W[2].T of shape (3, 3) @ delta[3] of shape (1, 1)",
                     "k_2 = (W_3^T k_3) o f'(a_2)")}


@pytest.mark.parametrize("convention", ["rows", "columns"])
def test_the_diagnosis_speaks_the_requests_convention(client, convention):
    """The own-W mistake's fix is written in the request's notation: rows delta_i = (delta_{i+1} W_{i+1}) * f'(a_i),
    columns k_i = (W_{i+1}^T k_{i+1}) o f'(a_i)."""
    expr, shapes, formula = OWN_W[convention]
    mid = create(client, QUESTION)["id"]
    r = post(client, mid, replace(CORRECT[convention], "delta[i]", expr), convention)
    assert r.status_code == 200, r.text
    assert r.json()["first_error"] == {
        "layer": 2, "target": "delta[2]", "kind": "own_W",
        "message": f"layer 2, delta[2] = {expr}: {shapes}: a matrix product needs the columns of the left to equal "
                   f"the rows of the right. Diagnosis: with W[3] where you wrote W[2], delta[2] is right (the error "
                   f"reaches layer 2 through the weights of the layer above, W_3, not through W_2: {formula})"}


@pytest.mark.parametrize("convention", ["rows", "columns"])
def test_derive_on_a_diverged_model_says_it_diverged(client, convention):
    mid = diverged_model(client)
    r = post(client, mid, CORRECT[convention], convention)
    assert r.status_code == 200, r.text
    assert r.json() == {"passed": False, "first_error": {"layer": 2, "target": "delta[2]", "kind": "diverged",
                                                          "message": DIVERGED},
                        "layers": [{"layer": i, "dW": None, "db": None, "steps": []} for i in (1, 2)],
                        "unused": []}


@pytest.mark.parametrize("convention", ["rows", "columns"])
def test_a_wrong_derivative_is_repaired_in_the_equation_with_its_kind(client, convention):
    mid = create(client, spec(True))["id"]
    r = post(client, mid, replace(CORRECT[convention], "delta[i]", CORRECT[convention][1]["expr"].replace(
        "fprime(a[i])", "(1 + z[i]*z[i])")), convention)
    assert r.status_code == 200, r.text
    e = r.json()["first_error"]
    assert (e["layer"], e["target"], e["kind"]) == (2, "delta[2]", "wrong_derivative")
    step = next(s for s in r.json()["layers"][1]["steps"] if s["target"] == "delta[2]")
    assert step["kind"] == "wrong_derivative"
    assert step["error"].split("; ", 1)[1] == ("`1 + z[2] * z[2]` should be `1 - z[2] * z[2]`: tanh'(a) = 1 - z^2 "
                                               "with z = tanh(a)")
    assert e["message"].startswith(step["error"] + ". ")
