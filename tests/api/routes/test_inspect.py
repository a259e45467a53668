"""GET/POST /gradients, /predict, /history, /gradcheck, /trace, /check, /boundary, /data."""
from __future__ import annotations

import numpy as np
import pytest

from app.engine import Model

from ..utils import DIVERGED, SMALL, XOR, arr, create, diverged_model, invalid, unprocessable

# 2 raw inputs -> 3 features -> 5 -> 4 -> 1: every n_i differs, so a transposed shape is always wrong
DEEP = {"layers": [{"units": 5}, {"units": 4}, {"units": 1, "activation": "sigmoid"}],
        "regularization": {"kind": "l2", "rate": 0.01},
        "data": {"dataset": "moons", "samples": 100, "noise": 0.1, "features": ["x1", "x2", "x1x2"]}}
SIZES = [3, 5, 4, 1]
X4 = [[0.5, -1.0], [1.5, 0.25], [-0.75, 0.5], [0.0, 1.0]]
Y4 = [[1.0], [0.0], [1.0], [0.0]]
RAW = {"content-type": "application/json"}


@pytest.fixture
def deep(client) -> str:
    return create(client, DEEP)["id"]


def check_gradient_shapes(g: dict, B: int) -> None:
    assert g["batch_size"] == B
    assert arr(g["inputs"]).shape == (B, SIZES[0])
    assert [layer["layer"] for layer in g["layers"]] == [1, 2, 3]
    for i, layer in enumerate(g["layers"], start=1):
        for key in ("a", "z", "delta", "dz"):
            assert arr(layer[key]).shape == (B, SIZES[i]), (i, key)
        assert arr(layer["dW"]).shape == (SIZES[i], SIZES[i - 1])
        assert arr(layer["db"]).shape == (SIZES[i],)
        assert layer["grad_norm"]["W"] == pytest.approx(np.linalg.norm(arr(layer["dW"])))
        assert layer["grad_norm"]["b"] == pytest.approx(np.linalg.norm(arr(layer["db"])))


# -- gradients -----------------------------------------------------------------------------------
def test_gradients_get_uses_the_first_training_rows(limited):
    client = limited(gradients_default_rows=32)
    mid = create(client, DEEP)["id"]
    g = client.get(f"/api/models/{mid}/gradients").json()
    check_gradient_shapes(g, 32)
    ref = Model(DEEP)
    np.testing.assert_array_equal(arr(g["inputs"]), ref.X_train[:32])
    assert client.post(f"/api/models/{mid}/gradients").json() == g  # POST without a body is the same


def test_gradients_for_a_batch_follow_the_notation(client, deep):
    r = client.post(f"/api/models/{deep}/gradients", json={"X": X4, "y": Y4})
    assert r.status_code == 200
    g = r.json()
    check_gradient_shapes(g, 4)
    X = arr(X4)
    np.testing.assert_allclose(g["inputs"], np.column_stack([X[:, 0], X[:, 1], X[:, 0] * X[:, 1]]))
    layers = client.get(f"/api/models/{deep}/parameters").json()["layers"]
    z = arr(g["inputs"])
    for layer, p in zip(g["layers"], layers):  # a_i = z_{i-1} W_i^T + b_i, dW_i = delta_i^T z_{i-1}
        np.testing.assert_allclose(layer["a"], z @ arr(p["W"]).T + arr(p["b"]), rtol=1e-12)
        z = arr(layer["z"])
    for i, layer in enumerate(g["layers"]):
        z_prev = arr(g["inputs"]) if i == 0 else arr(g["layers"][i - 1]["z"])
        W = arr(layers[i]["W"])
        np.testing.assert_allclose(layer["dW"], arr(layer["delta"]).T @ z_prev + 0.01 * W, rtol=1e-10)
        np.testing.assert_allclose(layer["db"], arr(layer["delta"]).sum(axis=0), rtol=1e-10)
    assert g["loss"] == pytest.approx(g["data_loss"] + g["penalty"])
    assert g["penalty"] > 0


def test_gradients_dW_matches_a_finite_difference(client, deep):
    """Central difference of the API's own loss, moving one weight with PUT /parameters."""
    batch = {"X": X4, "y": Y4}
    g = client.post(f"/api/models/{deep}/gradients", json=batch).json()
    original = client.get(f"/api/models/{deep}/parameters").json()
    eps = 1e-6
    for layer, (j, k) in ((1, (2, 1)), (2, (3, 4)), (3, (0, 2))):
        losses = []
        for sign in (1, -1):
            moved = {"layers": [{"W": [row[:] for row in p["W"]], "b": p["b"]} for p in original["layers"]]}
            moved["layers"][layer - 1]["W"][j][k] += sign * eps
            assert client.put(f"/api/models/{deep}/parameters", json=moved).status_code == 200
            losses.append(client.post(f"/api/models/{deep}/gradients", json=batch).json()["loss"])
        estimate = (losses[0] - losses[1]) / (2 * eps)
        analytic = g["layers"][layer - 1]["dW"][j][k]
        assert estimate == pytest.approx(analytic, rel=1e-5, abs=1e-9), (layer, j, k)
    client.put(f"/api/models/{deep}/parameters", json=original)


def test_gradients_without_bias_have_null_db(client):
    mid = create(client, {**XOR, "bias": False})["id"]
    g = client.get(f"/api/models/{mid}/gradients").json()
    assert all(layer["db"] is None and layer["grad_norm"]["b"] is None for layer in g["layers"])


def test_gradients_do_not_change_the_model(client, model):
    client.post(f"/api/models/{model['id']}/gradients", json={"X": X4, "y": Y4})
    assert client.get(f"/api/models/{model['id']}").json() == model
    assert client.post(f"/api/models/{model['id']}/train", json={"steps": 4}).json()["losses"] == \
        Model(SMALL).train(4).losses


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_gradients_overflow_is_null_not_an_error(client):
    """Huge (finite) weights make the penalty overflow: the JSON says null, and still fits the schema."""
    mid = create(client, {**SMALL, "regularization": {"kind": "l2", "rate": 1.0}})["id"]
    big = {"layers": [{"W": [[1e300, 1e300]] * 4, "b": [1e300] * 4}, {"W": [[1e300] * 4], "b": [0.0]}]}
    assert client.put(f"/api/models/{mid}/parameters", json=big).status_code == 200
    r = client.get(f"/api/models/{mid}/gradients")
    assert r.status_code == 200
    assert r.json()["penalty"] is None and r.json()["loss"] is None
    t = client.post(f"/api/models/{mid}/train", json={"steps": 3}).json()
    assert (t["stopped"], t["diverged_at"], t["steps_done"]) == ("diverged", 1, 0)


BATCH_ERRORS = [
    ({"X": [[1, 2]], "y": [[1], [0]]}, ["body", "y"], "has 2 rows but X has 1"),
    ({"X": [[1, 2, 3]], "y": [[1]]}, ["body", "X"], "has 3 columns; the model expects 2 raw input columns"),
    ({"X": [[1, 2]], "y": [[1, 0]]}, ["body", "y"], "has 2 columns; the model expects 1 columns"),
    ({"X": [[1, 2]]}, ["body", "y"], "X and y go together"),
    ({"y": [[1]]}, ["body", "X"], "X and y go together"),
    ({"X": [], "y": []}, ["body", "X"], "is empty"),
    ({"X": [[]], "y": [[]]}, ["body", "X"], "has 0 columns; the model expects 2 raw input columns"),
    ({"X": [[1, 2], [3]], "y": [[1], [0]]}, ["body", "X"], "is ragged: its rows have different lengths"),
    ({"X": [[1, 2]] * 21, "y": [[1]] * 21}, ["body", "X"], "has 21 rows; the limit is 20"),
]


@pytest.mark.parametrize("path,body,loc,msg", [
    (path, body, loc, msg) for path in ("gradients", "gradcheck", "check") for body, loc, msg in BATCH_ERRORS
    # check's schema itself requires a non-empty X and y when they are given (see test_check_schema_errors)
    if path != "check" or body.get("X") != []])
def test_batch_errors(limited, path, body, loc, msg):
    if path == "check":
        body = {**body, "layers": []}
    client = limited(max_rows=20)
    mid = create(client, SMALL)["id"]
    unprocessable(client.post(f"/api/models/{mid}/{path}", json=body), loc, msg)


@pytest.mark.parametrize("path,raw,loc", [
    (path, raw, loc) for path in ("gradients", "gradcheck", "check") for raw, loc in (
        (b'{"X": [[NaN, 0]], "y": [[1]], "layers": []}', ["body", "X", 0, 0]),
        (b'{"X": [[0, 0]], "y": [[Infinity]], "layers": []}', ["body", "y", 0, 0]))
] + [("predict", b'{"X": [[0, 0], [0, -Infinity]]}', ["body", "X", 1, 1])])
def test_batch_non_finite(client, model, path, raw, loc):
    if path != "check":
        raw = raw.replace(b', "layers": []', b"")
    r = client.post(f"/api/models/{model['id']}/{path}", content=raw, headers=RAW)
    invalid(r, loc, "Input should be a finite number")


# -- predict -------------------------------------------------------------------------------------
def test_predict(client, deep):
    r = client.post(f"/api/models/{deep}/predict", json={"X": X4})
    assert r.status_code == 200
    y_hat = r.json()["y_hat"]
    assert arr(y_hat).shape == (4, 1)
    np.testing.assert_array_equal(y_hat, Model(DEEP).predict(arr(X4)))


SOFTMAX3 = {"layers": [{"units": 4}, {"units": 3, "activation": "softmax"}], "loss": "cross_entropy",
            "data": {"X": [[0, 0], [1, 0], [0, 1]], "y": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}}
CE_TARGETS = "cross_entropy needs one-hot or probability target rows that sum to 1"
BCE_TARGETS = "bce needs targets in [0, 1]; use mse for regression data"


@pytest.mark.parametrize("spec,y,msg", [
    (SOFTMAX3, [[5, 5, 5]], CE_TARGETS),
    (SOFTMAX3, [[2, -1, 0]], CE_TARGETS),
    (SOFTMAX3, [[0.5, 0.25, 0]], CE_TARGETS),
    (SMALL, [[7]], BCE_TARGETS),
    (SMALL, [[-0.5]], BCE_TARGETS),
])
@pytest.mark.parametrize("route,extra", [("check", {"layers": [{}]}), ("gradients", {}), ("gradcheck", {})])
def test_targets_the_loss_cannot_take_are_refused_as_at_create(client, spec, y, msg, route, extra):
    """/check, /gradients and /gradcheck apply create's target checks to the client's y (422 naming body.y)."""
    mid = create(client, spec)["id"]
    r = client.post(f"/api/models/{mid}/{route}", json={"X": [[0.1, 0.2]], "y": y, **extra})
    unprocessable(r, ["body", "y"], msg)


def test_targets_the_loss_takes_are_accepted(client):
    mid = create(client, SOFTMAX3)["id"]
    r = client.post(f"/api/models/{mid}/check", json={"X": [[0.1, 0.2]], "y": [[0.5, 0.5, 0]], "layers": [{}]})
    assert r.status_code == 200, r.text


def test_predict_softmax_rows_sum_to_one(client):
    spec = {"layers": [{"units": 4}, {"units": 3, "activation": "softmax"}], "loss": "cross_entropy",
            "data": {"X": [[0, 0], [1, 0], [0, 1]], "y": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}}
    mid = create(client, spec)["id"]
    y_hat = arr(client.post(f"/api/models/{mid}/predict", json={"X": X4}).json()["y_hat"])
    assert y_hat.shape == (4, 3)
    np.testing.assert_allclose(y_hat.sum(axis=1), 1.0)


@pytest.mark.parametrize("body,loc,msg", [
    ({"X": [[1, 2, 3]]}, ["body", "X"], "has 3 columns; the model expects 2 raw input columns"),
    ({"X": [[1]]}, ["body", "X"], "has 1 columns; the model expects 2 raw input columns"),
    ({"X": [[]]}, ["body", "X"], "has 0 columns; the model expects 2 raw input columns"),
    ({"X": [[1, 2], [3]]}, ["body", "X"], "is ragged: its rows have different lengths"),
    ({"X": [[1, 2]] * 21}, ["body", "X"], "has 21 rows; the limit is 20"),
])
def test_predict_errors(limited, body, loc, msg):
    client = limited(max_rows=20)
    mid = create(client, SMALL)["id"]
    unprocessable(client.post(f"/api/models/{mid}/predict", json=body), loc, msg)


@pytest.mark.parametrize("body,loc,msg", [
    ({"X": []}, ["body", "X"], "List should have at least 1 item after validation, not 0"),
    ({}, ["body", "X"], "Field required"),
    ({"X": [["a", 1]]}, ["body", "X", 0, 0], "Input should be a valid number"),
])
def test_predict_schema_errors(client, model, body, loc, msg):
    invalid(client.post(f"/api/models/{model['id']}/predict", json=body), loc, msg)


def test_predict_on_a_1d_model(client):
    mid = create(client, {"layers": [{"units": 4}, {"units": 1}], "loss": "mse",
                          "data": {"dataset": "sine", "samples": 30}})["id"]
    assert arr(client.post(f"/api/models/{mid}/predict", json={"X": [[0.1], [0.2]]}).json()["y_hat"]).shape == (2, 1)
    unprocessable(client.post(f"/api/models/{mid}/predict", json={"X": [[0.1, 0.2]]}), ["body", "X"],
                  "has 2 columns; the model expects 1 raw input columns")


# -- history -------------------------------------------------------------------------------------
def test_history_lengths(client, model):
    mid = model["id"]
    empty = client.get(f"/api/models/{mid}/history").json()
    assert empty == {"step": [], "loss": [], "grad_norms": [[], []],
                     "eval": {"step": [], "train_loss": [], "test_loss": []}}  # since=0: steps after 0
    losses = client.post(f"/api/models/{mid}/train", json={"steps": 30}).json()["losses"]
    h = client.get(f"/api/models/{mid}/history").json()
    assert h["step"] == list(range(1, 31))
    np.testing.assert_allclose(h["loss"], losses, rtol=1e-6)  # stored as float32
    assert [len(n) for n in h["grad_norms"]] == [30, 30]
    assert h["eval"]["step"] == [10, 20, 30]  # every max(10, steps per epoch) steps, and at the end
    assert len(h["eval"]["train_loss"]) == len(h["eval"]["test_loss"]) == 3
    m = client.get(f"/api/models/{mid}").json()
    assert h["eval"]["train_loss"][-1] == pytest.approx(m["train_loss"], rel=1e-6)


def test_history_since_and_max_points(client, model):
    mid = model["id"]
    client.post(f"/api/models/{mid}/train", json={"steps": 30})
    full = client.get(f"/api/models/{mid}/history").json()
    h = client.get(f"/api/models/{mid}/history", params={"since": 20}).json()
    assert h["step"] == list(range(21, 31))
    assert h["loss"] == full["loss"][20:]
    assert [len(n) for n in h["grad_norms"]] == [10, 10]
    assert h["eval"]["step"] == [30]
    h = client.get(f"/api/models/{mid}/history", params={"max_points": 4}).json()
    assert h["step"] == [1, 11, 20, 30]  # evenly spread, the first and the last kept
    assert h["loss"] == [full["loss"][i - 1] for i in h["step"]]
    assert [len(n) for n in h["grad_norms"]] == [4, 4]
    h = client.get(f"/api/models/{mid}/history", params={"since": 10, "max_points": 5}).json()
    assert h["step"] == [11, 16, 21, 25, 30]
    assert client.get(f"/api/models/{mid}/history", params={"since": 100}).json()["step"] == []


@pytest.mark.parametrize("query,loc,msg", [
    ({"since": -1}, ["query", "since"], "Input should be greater than or equal to 0"),
    ({"max_points": 1}, ["query", "max_points"], "Input should be greater than or equal to 2"),
    ({"since": "NaN"}, ["query", "since"], "Input should be a valid integer, unable to parse string as an integer"),
])
def test_history_errors(client, model, query, loc, msg):
    invalid(client.get(f"/api/models/{model['id']}/history", params=query), loc, msg)


# -- gradcheck -----------------------------------------------------------------------------------
def test_gradcheck_passes(client, deep):
    r = client.post(f"/api/models/{deep}/gradcheck")
    assert r.status_code == 200
    g = r.json()
    assert g["passed"] is True and g["max_relative_error"] < 1e-5
    assert [layer["layer"] for layer in g["layers"]] == [1, 2, 3]
    assert all(layer["W"]["relative_error"] < 1e-5 and layer["b"]["relative_error"] < 1e-5 for layer in g["layers"])
    g = client.post(f"/api/models/{deep}/gradcheck", json={"X": X4, "y": Y4, "eps": 1e-5}).json()
    assert g["passed"] is True


@pytest.mark.parametrize("eps,msg", [(0, "Input should be greater than 0"),
                                     (0.1, "Input should be less than or equal to 0.01")])
def test_gradcheck_eps_range(client, model, eps, msg):
    invalid(client.post(f"/api/models/{model['id']}/gradcheck", json={"eps": eps}), ["body", "eps"], msg)


def test_gradcheck_eps_non_finite(client, model):
    r = client.post(f"/api/models/{model['id']}/gradcheck", content=b'{"eps": NaN}', headers=RAW)
    invalid(r, ["body", "eps"], "Input should be a finite number")


# -- trace ---------------------------------------------------------------------------------------
def test_trace_shapes_for_a_batch_size(client, deep):
    r = client.get(f"/api/models/{deep}/trace", params={"batch_size": 7})
    assert r.status_code == 200
    t = r.json()
    B = 7
    assert t["batch_size"] == B
    expected = {}
    for i in (1, 2, 3):
        expected.update({f"a_{i}": [B, SIZES[i]], f"z_{i}": [B, SIZES[i]], f"delta_{i}": [B, SIZES[i]],
                         f"dW_{i}": [SIZES[i], SIZES[i - 1]], f"db_{i}": [SIZES[i]]})
        if i > 1:
            expected[f"dz_{i - 1}"] = [B, SIZES[i - 1]]
    steps = t["forward"] + t["backward"]
    shapes = {s["target"]: s["result_shape"] for s in steps if s["target"] != "L"}
    assert shapes == expected
    # every operand's shape as it is used: W_1^T is (3, 5); stored_shape is the array's own
    operands = {(s["target"], o["name"]): (o["shape"], o["transposed"]) for s in steps for o in s["operands"]}
    assert operands[("a_1", "z_0")] == ([B, 3], False)
    assert operands[("a_1", "W_1")] == ([3, 5], True)
    assert operands[("dW_2", "delta_2")] == ([4, B], True)
    assert operands[("dW_2", "z_1")] == ([B, 5], False)
    assert operands[("dz_2", "W_3")] == ([1, 4], False)
    assert [s["target"] for s in t["forward"]] == ["a_1", "z_1", "a_2", "z_2", "a_3", "z_3", "L"]
    assert [s["target"] for s in t["backward"]][:3] == ["delta_3", "dW_3", "db_3"]


def test_trace_in_columns_on_the_default_net(client):
    """2-8-8-1: rows use W_1^T (2, 8); columns (the question's) use W_1 (8, 2) forward and W_2^T (8, 8) down."""
    mid = create(client)["id"]
    rows = client.get(f"/api/models/{mid}/trace").json()
    assert rows["convention"] == "rows"
    w1 = next(o for o in rows["forward"][0]["operands"] if o["name"] == "W_1")
    assert (w1["shape"], w1["stored_shape"], w1["transposed"]) == ([2, 8], [8, 2], True)
    r = client.get(f"/api/models/{mid}/trace", params={"convention": "columns", "batch_size": 1})
    assert r.status_code == 200
    cols = r.json()
    assert (cols["convention"], cols["batch_size"]) == ("columns", 1)
    a1 = cols["forward"][0]
    assert a1["equation"].startswith("a_1 = W_1 z_0") and a1["result_shape"] == [8, 1]
    down = next(s for s in cols["backward"] if s["target"] == "dz_1")
    assert [(o["name"], o["shape"], o["transposed"]) for o in down["operands"]] == [
        ("W_2", [8, 8], True), ("delta_2", [8, 1], False)]
    invalid(client.get(f"/api/models/{mid}/trace", params={"convention": "diagonal"}), ["query", "convention"],
            "Input should be 'columns' or 'rows'")


def test_trace_is_symbolic_without_a_batch_size(client, deep):
    t = client.get(f"/api/models/{deep}/trace").json()
    assert t["batch_size"] == "B"
    assert t["forward"][0]["result_shape"] == ["B", 5]


def test_trace_batch_size_must_be_positive(client, model):
    invalid(client.get(f"/api/models/{model['id']}/trace", params={"batch_size": 0}), ["query", "batch_size"],
            "Input should be greater than or equal to 1")


# -- check ---------------------------------------------------------------------------------------
def test_check_passes_the_right_gradients_and_flags_a_transpose(client, deep):
    g = client.post(f"/api/models/{deep}/gradients", json={"X": X4, "y": Y4}).json()
    right = [{"dW": layer["dW"], "db": layer["db"]} for layer in g["layers"]]
    r = client.post(f"/api/models/{deep}/check", json={"X": X4, "y": Y4, "layers": right})
    assert r.status_code == 200
    c = r.json()
    assert (c["passed"], c["first_error"]) == (True, None)
    assert [layer["layer"] for layer in c["layers"]] == [1, 2, 3]
    for i, layer in enumerate(c["layers"], start=1):
        assert layer["dW"]["passed"] and layer["db"]["passed"] and layer["dW"]["hint"] is None
        assert layer["dW"]["expected_shape"] == layer["dW"]["shape"] == [SIZES[i], SIZES[i - 1]]
        assert layer["dW"]["relative_error"] <= 1e-4

    transposed = [dict(x) for x in right]
    transposed[1]["dW"] = arr(right[1]["dW"]).T.tolist()  # (5, 4) where (4, 5) is expected
    c = client.post(f"/api/models/{deep}/check", json={"X": X4, "y": Y4, "layers": transposed}).json()
    assert c["passed"] is False
    v = c["layers"][1]["dW"]
    assert (v["passed"], v["shape"], v["expected_shape"]) == (False, [5, 4], [4, 5])
    assert v["hint"].startswith("transposed: you gave dW_2^T, shape (5, 4); W_2 is (out, in) = (n_2, n_1) = (4, 5)")
    assert c["layers"][0]["dW"]["passed"] and c["layers"][2]["dW"]["passed"]
    assert c["first_error"]["layer"] == 2 and "transposed" in c["first_error"]["message"]


def test_check_defaults_to_the_batch_gradients_uses(limited):
    client = limited(gradients_default_rows=8)
    mid = create(client, DEEP)["id"]
    g = client.get(f"/api/models/{mid}/gradients").json()
    assert g["batch_size"] == 8
    c = client.post(f"/api/models/{mid}/check", json={"layers": [{"dW": layer["dW"], "db": layer["db"]}
                                                                 for layer in g["layers"]]}).json()
    assert c["passed"] is True
    # the same numbers for other rows fail: the default really is GET /gradients' batch
    other = client.post(f"/api/models/{mid}/gradients", json={"X": X4, "y": Y4}).json()
    c = client.post(f"/api/models/{mid}/check", json={"layers": [{"dW": other["layers"][0]["dW"]}]}).json()
    assert c["passed"] is False and c["first_error"]["layer"] == 1


@pytest.fixture
def grads(client, deep) -> dict:
    return client.post(f"/api/models/{deep}/gradients", json={"X": X4, "y": Y4}).json()


@pytest.mark.parametrize("how", ["flat", "column", "row-flat-list-of-lists"])
def test_check_any_dw_shape_gets_a_verdict_with_a_shape_hint(client, deep, grads, how):
    """The output layer's dW (1, 4) sent flat (4,), as a column (4, 1) or as [[a], [b], ...]: 200, not 422."""
    dW = arr(grads["layers"][2]["dW"])
    sent = {"flat": dW.ravel().tolist(), "column": dW.reshape(-1, 1).tolist(),
            "row-flat-list-of-lists": [[x] for x in dW.ravel()]}[how]
    r = client.post(f"/api/models/{deep}/check", json={"X": X4, "y": Y4, "layers": [{}, {}, {"dW": sent}]})
    assert r.status_code == 200, r.text
    v = r.json()["layers"][2]["dW"]
    assert v["expected_shape"] == [1, 4] and v["shape"] == list(arr(sent).shape)
    assert v["hint"] is not None and "(1, 4)" in v["hint"]


@pytest.mark.parametrize("how", ["per-sample", "column"])
def test_check_any_db_shape_gets_a_verdict_with_a_shape_hint(client, deep, grads, how):
    """db_1 sent per sample (B, n) = delta_1 or as a column (n, 1): 200 with a hint, not 422."""
    sent = grads["layers"][0]["delta"] if how == "per-sample" else arr(grads["layers"][0]["db"])[:, None].tolist()
    r = client.post(f"/api/models/{deep}/check", json={"X": X4, "y": Y4, "layers": [{"db": sent}]})
    assert r.status_code == 200, r.text
    v = r.json()["layers"][0]["db"]
    assert (v["passed"], v["expected_shape"], v["shape"]) == (False, [5], list(arr(sent).shape))
    assert "per sample" in v["hint"] if how == "per-sample" else "(5,)" in v["hint"]


@pytest.mark.parametrize("body,loc,msg", [
    ({"X": X4, "y": Y4, "layers": [{}] * 4}, ["body", "layers"], "has 4 entries; the network has 3 layers"),
    ({"X": X4, "y": Y4[:3], "layers": []}, ["body", "y"], "has 3 rows but X has 4"),
    ({"X": [[1, 2, 3]], "y": [[1]], "layers": []}, ["body", "X"],
     "has 3 columns; the model expects 2 raw input columns"),
    ({"X": X4, "y": [[1, 0]] * 4, "layers": []}, ["body", "y"], "has 2 columns; the model expects 1 columns"),
    ({"X": X4, "layers": []}, ["body", "y"], "X and y go together"),
])
def test_check_errors(client, deep, body, loc, msg):
    unprocessable(client.post(f"/api/models/{deep}/check", json=body), loc, msg)


@pytest.mark.parametrize("sent,msg", [
    ([[1.0, 2.0], [3.0]], "is ragged: entry [1] has 1 entries where 2 belong"),
    ([[1.0, 2.0], 3.0], "is ragged: entry [1] is a number where a list of 2 belongs"),
    ([1.0, [2.0]], "is ragged: entry [1] is a list where a number belongs"),
    ([[1.0, "2"]], "must hold numbers only; entry [0][1] is a string"),
    ([[1.0, True]], "must hold numbers only; entry [0][1] is a boolean"),
    ([[1.0, None]], "must hold numbers only; entry [0][1] is null"),
    ({"a": 1}, "must hold numbers only; the value is an object"),
    ("0.5", "must hold numbers only; the value is a string"),
    ([[[[[0.0]]]]], "has more than 4 nested levels; give a matrix, a vector or one per sample"),
    ([10 ** 400], "must hold finite numbers; entry [0] is too large"),
])
def test_check_structurally_invalid_arrays(client, deep, sent, msg):
    for key in ("dW", "db"):
        r = client.post(f"/api/models/{deep}/check", json={"X": X4, "y": Y4, "layers": [{key: sent}]})
        invalid(r, ["body", "layers", 0, key], msg)


def test_check_non_finite_student_gradient(client, model):
    r = client.post(f"/api/models/{model['id']}/check", headers=RAW,
                    content=b'{"X": [[0, 0]], "y": [[1]], "layers": [{"dW": [[0, 0]], "db": [0, NaN, 0, 0]}]}')
    invalid(r, ["body", "layers", 0, "db"], "must hold finite numbers; entry [1] is nan")
    r = client.post(f"/api/models/{model['id']}/check", headers=RAW,
                    content=b'{"layers": [{"dW": [[[0, -Infinity]]]}]}')
    invalid(r, ["body", "layers", 0, "dW"], "must hold finite numbers; entry [0][0][1] is -inf")


def test_check_size_is_bounded_by_settings(limited):
    client = limited(check_max_entries=12)
    mid = create(client, DEEP)["id"]
    assert client.post(f"/api/models/{mid}/check", json={"layers": [{"dW": [[0.0] * 3] * 4}]}).status_code == 200
    unprocessable(client.post(f"/api/models/{mid}/check", json={"layers": [{}, {"dW": [[0.0] * 5] * 4}]}),
                  ["body", "layers", 1, "dW"], "has 20 numbers; the limit is 12")
    assert client.get("/api/catalog").json()["limits"]["check_max_entries"] == 12


def test_check_db_without_bias(client):
    mid = create(client, {**XOR, "bias": False})["id"]
    unprocessable(client.post(f"/api/models/{mid}/check", json={"X": [[0, 1]], "y": [[1]], "layers": [{"db": [0.0]}]}),
                  ["body", "layers"], "layer 1: this network has no bias, so there is no db_1")


@pytest.mark.parametrize("body,loc,msg", [
    ({"X": [], "y": [[1]], "layers": []}, ["body", "X"], "List should have at least 1 item after validation, not 0"),
    ({"X": [[1, 2]], "y": [[1]]}, ["body", "layers"], "Field required"),
    ({"X": [[1, 2]], "y": [[1]], "layers": [{"dZ": [[1]]}]}, ["body", "layers", 0, "dZ"],
     "Extra inputs are not permitted"),
])
def test_check_schema_errors(client, model, body, loc, msg):
    invalid(client.post(f"/api/models/{model['id']}/check", json=body), loc, msg)


# -- boundary ------------------------------------------------------------------------------------
def test_boundary_grid_sizes(client, deep):
    r = client.get(f"/api/models/{deep}/boundary", params={"resolution": 12})
    assert r.status_code == 200
    b = r.json()
    assert b["resolution"] == 12 and b["neuron_resolution"] == 12
    assert arr(b["output"]).shape == (12, 12)
    assert [arr(n).shape for n in b["neurons"]] == [(5, 12, 12), (4, 12, 12)]  # hidden layers only
    data = client.get(f"/api/models/{deep}/data").json()
    points = arr(data["train"]["X"] + data["test"]["X"])
    assert b["x_range"][0] < points[:, 0].min() and points[:, 0].max() < b["x_range"][1]
    assert b["y_range"][0] < points[:, 1].min() and points[:, 1].max() < b["y_range"][1]
    # row j is y = y_range value j, column i is x = x_range value i
    xs, ys = np.linspace(*b["x_range"], 12), np.linspace(*b["y_range"], 12)
    y_hat = client.post(f"/api/models/{deep}/predict", json={"X": [[xs[3], ys[8]]]}).json()["y_hat"]
    assert b["output"][8][3] == pytest.approx(y_hat[0][0], rel=1e-12)


def test_boundary_default_and_neuron_resolution(client, model):
    b = client.get(f"/api/models/{model['id']}/boundary").json()
    assert b["resolution"] == 50 and arr(b["output"]).shape == (50, 50)
    assert b["neuron_resolution"] == 16 and arr(b["neurons"][0]).shape == (4, 16, 16)


@pytest.mark.parametrize("K,values", [(2, None), (3, {0.0, 0.5, 1.0})])
def test_boundary_with_several_outputs(client, K, values):
    eye = np.eye(K).tolist()
    spec = {"layers": [{"units": 4}, {"units": K, "activation": "softmax"}], "loss": "cross_entropy",
            "data": {"X": [[0, 0], [1, 0], [0, 1]][:K] + [[1, 1]], "y": eye + [eye[0]]}}
    mid = create(client, spec)["id"]
    out = arr(client.get(f"/api/models/{mid}/boundary", params={"resolution": 5}).json()["output"])
    assert out.shape == (5, 5) and ((0 <= out) & (out <= 1)).all()
    if values:
        assert set(out.ravel()) <= values


def test_boundary_limits(limited):
    client = limited(max_resolution=30)
    mid = create(client, SMALL)["id"]
    unprocessable(client.get(f"/api/models/{mid}/boundary", params={"resolution": 31}), ["query", "resolution"],
                  "is 31; the limit is 30")
    assert client.get(f"/api/models/{mid}/boundary", params={"resolution": 30}).status_code == 200
    invalid(client.get(f"/api/models/{mid}/boundary", params={"resolution": 1}), ["query", "resolution"],
            "Input should be greater than or equal to 2")


def test_boundary_needs_two_raw_inputs(client):
    mid = create(client, {"layers": [{"units": 4}, {"units": 1}], "loss": "mse",
                          "data": {"dataset": "sine", "samples": 30}})["id"]
    unprocessable(client.get(f"/api/models/{mid}/boundary"), ["path", "model_id"],
                  "the boundary needs 2 raw inputs; this model has 1")


# -- data ----------------------------------------------------------------------------------------
def test_data_is_the_raw_points(client, deep):
    d = client.get(f"/api/models/{deep}/data").json()
    ref = Model(DEEP)
    assert (d["kind"], d["features"]) == ("classification", ["x1", "x2", "x1x2"])
    assert arr(d["train"]["X"]).shape == (50, 2) and arr(d["test"]["X"]).shape == (50, 2)
    np.testing.assert_array_equal(d["train"]["X"], ref.raw_train)
    np.testing.assert_array_equal(d["test"]["y"], ref.y_test)


def test_data_of_custom_regression(client):
    spec = {"layers": [{"units": 1}], "loss": "mse",
            "data": {"X": [[1, 2], [3, 4]], "y": [[5], [6]], "X_test": [[7, 8]], "y_test": [[9]]}}
    d = client.get(f"/api/models/{create(client, spec)['id']}/data").json()
    assert d == {"kind": "regression", "features": None, "train": {"X": [[1.0, 2.0], [3.0, 4.0]], "y": [[5.0], [6.0]]},
                 "test": {"X": [[7.0, 8.0]], "y": [[9.0]]}}


# -- check: every mistake kind gets its hint over REST ------------------------------------------------
def square_net(bias: bool, act: str = "tanh", seed: int = 3) -> dict:
    """3 inputs, hidden 3-3-3 (square, so the question's W_i fits), sigmoid output, mse, full batch of 5."""
    rng = np.random.default_rng(seed)
    return {"input_size": 3, "layers": [{"units": 3, "activation": act}] * 3 + [{"units": 1, "activation": "sigmoid"}],
            "loss": "mse", "bias": bias, "seed": seed, "batch_size": None,
            "data": {"X": rng.normal(size=(5, 3)).round(3).tolist(), "y": rng.uniform(size=(5, 1)).round(3).tolist()}}


def student_mistake(g: dict, params: list, kind: str) -> tuple[int, dict]:
    """(layer, {"dW", "db"}) of a student who makes `kind` at that layer and everything above right (rows)."""
    z = [arr(g["inputs"])] + [arr(layer["z"]) for layer in g["layers"]]
    delta = [arr(layer["delta"]) for layer in g["layers"]]
    dz = [arr(layer["dz"]) for layer in g["layers"]]
    W = [arr(p["W"]) for p in params]
    tanh_prime = lambda v: 1 - np.tanh(v) ** 2  # noqa: E731
    a = [arr(layer["a"]) for layer in g["layers"]]
    B = len(z[0])
    if kind in ("question", "no_T"):  # at layer 1: delta_1 from delta_2 through the wrong matrix
        M = W[0] if kind == "question" else W[1].T
        d1 = (delta[1] @ M) * tanh_prime(a[0])
        return 1, {"dW": d1.T @ z[0], "db": d1.sum(0)}
    if kind in ("no_fprime", "fprime_z"):  # at layer 2
        d2 = dz[1] if kind == "no_fprime" else dz[1] * tanh_prime(z[2])
        return 2, {"dW": d2.T @ z[1], "db": d2.sum(0)}
    dW4, db4 = arr(g["layers"][3]["dW"]), arr(g["layers"][3]["db"]) if g["layers"][3]["db"] is not None else None
    factor = {"factor_2": 0.5, "batch_sum": B, "sign": -1.0}.get(kind)
    if factor is not None:
        return 4, {"dW": factor * dW4, "db": None if db4 is None else factor * db4}
    if kind == "db_per_sample":
        return 1, {"db": delta[0]}
    raise AssertionError(kind)


CHECK_MISTAKES = {"question": "it uses the layer's own W_1 where W_2^T belongs",
                  "no_T": "the transpose is missing",
                  "no_fprime": "the factor f'(a_2) is missing",
                  "fprime_z": "f'(z_2) is there where f'(a_2) belongs",
                  "factor_2": "the factor 2 of d/dy_hat (y_hat - y)^2 = 2(y_hat - y) is missing",
                  "batch_sum": "is B = 5 times the true gradient",
                  "sign": "has the opposite sign",
                  "db_per_sample": "you gave delta per sample, shape (5, 3)"}


@pytest.mark.parametrize("kind,bias", [(k, b) for k in CHECK_MISTAKES for b in (True, False)
                                       if b or k != "db_per_sample"])  # no db without a bias
def test_check_names_each_mistake(client, kind, bias):
    mid = create(client, square_net(bias))["id"]
    g = client.get(f"/api/models/{mid}/gradients").json()
    params = client.get(f"/api/models/{mid}/parameters").json()["layers"]
    layer, wrong = student_mistake(g, params, kind)
    # the student's own layers: right above `layer`, the mistake at it, carried down (correctly) below
    layers = [{"dW": q["dW"], **({"db": q["db"]} if bias else {})} for q in g["layers"]]
    layers[layer - 1] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in wrong.items()
                         if v is not None and (bias or k == "dW")}
    c = client.post(f"/api/models/{mid}/check", json={"layers": layers}).json()
    assert c["passed"] is False
    assert c["first_error"]["layer"] == layer, c["first_error"]
    assert CHECK_MISTAKES[kind] in c["first_error"]["message"], c["first_error"]


def test_check_points_layers_below_the_entry_up(client):
    """The question's recurrence made at every hidden layer from 2 down: layer 1's hint points up to layer 2."""
    mid = create(client, {**square_net(False), "layers": [{"units": 3, "activation": "sigmoid"}] * 3 +
                          [{"units": 1, "activation": "sigmoid"}]})["id"]
    g = client.get(f"/api/models/{mid}/gradients").json()
    W = [arr(p["W"]) for p in client.get(f"/api/models/{mid}/parameters").json()["layers"]]
    z = [arr(g["inputs"])] + [arr(q["z"]) for q in g["layers"]]
    a = [arr(q["a"]) for q in g["layers"]]
    sp = lambda v: (1 / (1 + np.exp(-v))) * (1 - 1 / (1 + np.exp(-v)))  # noqa: E731
    d2 = (arr(g["layers"][2]["delta"]) @ W[1]) * sp(a[1])  # own W_2 where W_3^T belongs
    d1 = (d2 @ W[0]) * sp(a[0])                            # and again at layer 1
    layers = [{"dW": (d1.T @ z[0]).tolist()}, {"dW": (d2.T @ z[1]).tolist()},
              {"dW": g["layers"][2]["dW"]}, {"dW": g["layers"][3]["dW"]}]
    c = client.post(f"/api/models/{mid}/check", json={"layers": layers}).json()
    assert c["first_error"]["layer"] == 2 and "W_3^T" in c["first_error"]["message"]
    hint = c["layers"][0]["dW"]["hint"]
    assert "the error comes from above: layer 2 is wrong" in hint and "fix layer 2 first" in hint


def test_check_accepts_any_subgradient_at_a_relu_kink(client):
    """An all-zero input row and zero initial biases put every a_i's first row exactly on relu's kink: db_3 with
    f'(0) = 0 and with f'(0) = 1 both pass, the one that differs from the engine's choice with a kink hint."""
    spec = {**square_net(True, act="relu"), "data": {"X": [[0.0, 0.0, 0.0], [0.5, -1.0, 0.25]], "y": [[1.0], [0.0]]}}
    mid = create(client, spec)["id"]
    g = client.get(f"/api/models/{mid}/gradients").json()
    W = [arr(p["W"]) for p in client.get(f"/api/models/{mid}/parameters").json()["layers"]]
    a3 = arr(g["layers"][2]["a"])
    assert (a3[0] == 0).all()
    dz3 = arr(g["layers"][3]["delta"]) @ W[3]
    assert (dz3[0] != 0).all()
    hints = []
    for slope_at_0 in (0.0, 1.0):
        d3 = dz3 * np.where(a3 > 0, 1.0, np.where(a3 == 0, slope_at_0, 0.0))
        c = client.post(f"/api/models/{mid}/check", json={"layers": [{}, {}, {"db": d3.sum(0).tolist()}]}).json()
        v = c["layers"][2]["db"]
        assert c["passed"] is True and v["passed"] is True, v
        hints.append(v["hint"])
    assert sorted(h is None for h in hints) == [False, True]
    assert "kink" in next(h for h in hints if h)


def test_gradcheck_reports_kinks_and_explains_eps(client):
    """relu with zero biases and an all-zero input row: a_i sits on the kink; those entries are counted, not failed."""
    spec = {**square_net(True, act="relu"), "data": {"X": [[0.0, 0.0, 0.0], [0.5, -1.0, 0.25]], "y": [[1.0], [0.0]]}}
    mid = create(client, spec)["id"]
    g = client.post(f"/api/models/{mid}/gradcheck").json()
    assert g["passed"] is True and g["kinks"] > 0 and g["eps_note"] is None
    g = client.post(f"/api/models/{mid}/gradcheck", json={"eps": 1e-12}).json()
    assert g["eps_note"].startswith("eps = 1e-12 is too small")


def test_check_on_a_diverged_model_says_it_diverged_not_relative_error_nan(client):
    mid = diverged_model(client)
    r = client.post(f"/api/models/{mid}/check", json={"layers": [{"dW": [[0, 0]] * 3}]})
    assert r.status_code == 200, r.text
    d = r.json()
    assert (d["passed"], d["first_error"]) == (False, {"layer": 1, "target": "dW[1]", "message": DIVERGED,
                                                 "kind": "diverged", "kinds": ["diverged"]})


def test_check_returns_the_mistakes_kind_and_the_catalogue_explains_it(client, deep):
    g = client.post(f"/api/models/{deep}/gradients", json={"X": X4, "y": Y4}).json()
    layers = [{"dW": layer["dW"], "db": (arr(layer["db"]) / 4).tolist()} for layer in g["layers"]]  # db as a mean
    c = client.post(f"/api/models/{deep}/check", json={"X": X4, "y": Y4, "layers": layers}).json()
    for layer in c["layers"]:
        assert layer["dW"]["passed"] and layer["dW"]["kind"] is None and layer["dW"]["kinds"] == []
        assert (layer["db"]["kind"], layer["db"]["kinds"]) == ("batch_mean_twice", ["batch_mean_twice"])
        assert "comes from above" not in layer["db"]["hint"]
    assert (c["first_error"]["layer"], c["first_error"]["kind"]) == (3, "batch_mean_twice")
    kinds = {k["kind"]: k["explanation"] for k in client.get("/api/catalog").json()["mistake_kinds"]}
    assert kinds["batch_mean_twice"].startswith("the gradient is 1/B of the true one")
    assert {"inherited", "own_W", "no_T", "output_mean", "softmax_elementwise", "bias_column"} <= set(kinds)


def test_gradcheck_passes_a_deep_sigmoid_chain_within_roundoff_with_its_note(client):
    """1-wide sigmoid chain, 8 layers: W_1's gradient is about 1e-7, its relative error is round-off."""
    layers = [{"units": 1, "activation": "sigmoid"}] * 8
    spec = {"layers": layers, "loss": "mse", "init": "normal", "init_std": 1.0, "seed": 3,
            "data": {"X": [[0.5], [-1.0], [2.0]], "y": [[0.9], [0.1], [0.4]]}}
    mid = create(client, spec)["id"]
    r = client.post(f"/api/models/{mid}/gradcheck")
    assert r.status_code == 200, r.text
    g = r.json()
    first = g["layers"][0]["W"]
    assert g["passed"] is True and g["max_relative_error"] > g["tolerance"]
    assert first["within_roundoff"] is True and first["abs_error"] <= first["roundoff"]
    assert "W_1" in g["roundoff_note"] and "passed within round-off" in g["roundoff_note"]
