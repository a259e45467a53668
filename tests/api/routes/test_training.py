"""POST /train and GET/PUT /parameters."""
from __future__ import annotations


import numpy as np
import pytest

from app.engine import Model

from ..utils import SMALL, XOR, arr, call_then_leave, create, invalid, unprocessable

DIVERGES = {"layers": [{"units": 1, "activation": "identity"}], "loss": "mse",
            "optimizer": {"name": "sgd", "learning_rate": 1e4}, "data": {"dataset": "plane", "samples": 40}}


def train(client, mid: str, steps: int) -> dict:
    r = client.post(f"/api/models/{mid}/train", json={"steps": steps})
    assert r.status_code == 200, r.text
    return r.json()


# -- train ---------------------------------------------------------------------------------------
def test_train_matches_the_engine(client, model):
    t = train(client, model["id"], 25)
    ref = Model(SMALL)
    expected = ref.train(25)
    assert set(t) == {"step", "epoch", "steps_done", "losses", "train_loss", "test_loss", "diverged",
                      "diverged_at", "stopped"}
    assert (t["step"], t["steps_done"], t["stopped"], t["diverged"], t["diverged_at"]) == (25, 25, "done", False, None)
    assert t["epoch"] == 12  # 20 training rows, batch 10: two steps an epoch
    assert t["losses"] == expected.losses
    assert (t["train_loss"], t["test_loss"]) == (expected.train_loss, expected.test_loss)
    m = client.get(f"/api/models/{model['id']}").json()
    assert (m["step"], m["epoch"], m["train_loss"], m["test_loss"]) == (25, 12, t["train_loss"], t["test_loss"])


def test_training_in_chunks_equals_one_run(client, model):
    losses = []
    for n in (1, 4, 10, 15):
        losses += train(client, model["id"], n)["losses"]
    assert losses == Model(SMALL).train(30).losses


def test_train_defaults_to_one_step(client, model):
    r = client.post(f"/api/models/{model['id']}/train", json={})
    assert r.status_code == 200 and r.json()["steps_done"] == 1


def test_steps_limit(limited):
    client = limited(max_steps=100)
    mid = create(client, XOR)["id"]
    unprocessable(client.post(f"/api/models/{mid}/train", json={"steps": 101}), ["body", "steps"],
                  "is 101; the limit is 100 per call")
    assert client.get(f"/api/models/{mid}").json()["step"] == 0
    assert train(client, mid, 100)["step"] == 100


@pytest.mark.parametrize("body,loc,msg", [
    ({"steps": 0}, ["body", "steps"], "Input should be greater than or equal to 1"),
    ({"steps": -5}, ["body", "steps"], "Input should be greater than or equal to 1"),
    ({"steps": 1.5}, ["body", "steps"], "Input should be a valid integer"),
    ({"steps": "many"}, ["body", "steps"], "Input should be a valid integer"),
    ({"steps": 1, "lr": 0.1}, ["body", "lr"], "Extra inputs are not permitted"),
])
def test_train_errors(client, model, body, loc, msg):
    invalid(client.post(f"/api/models/{model['id']}/train", json=body), loc, msg)
    assert client.get(f"/api/models/{model['id']}").json()["step"] == 0


def test_train_non_finite_steps(client, model):
    r = client.post(f"/api/models/{model['id']}/train", content=b'{"steps": Infinity}',
                    headers={"content-type": "application/json"})
    invalid(r, ["body", "steps"], "Input should be a valid integer")


def test_train_stops_at_the_time_budget(limited):
    client = limited(train_time_budget=0.3, max_steps=10_000_000)
    mid = create(client, SMALL)["id"]
    t = train(client, mid, 10_000_000)
    assert t["stopped"] == "time_budget"
    assert 0 < t["steps_done"] < 10_000_000 and t["step"] == t["steps_done"] == len(t["losses"])
    # one history entry per step: ask for every point (GET /history thins to history_max_points by default)
    steps = client.get(f"/api/models/{mid}/history", params={"max_points": 1_000_000}).json()["step"]
    assert steps == list(range(1, t["step"] + 1))


def test_a_train_call_stops_when_its_client_leaves_and_keeps_its_steps(limited):
    client = limited(train_time_budget=120, max_steps=10_000_000)
    mid = create(client, SMALL)["id"]
    token = client.tokens[mid]
    sent = call_then_leave(client.app, "POST", f"/api/models/{mid}/train", {"steps": 10_000_000},
                           headers={"Authorization": f"Bearer {token}"})
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 499
    step = client.get(f"/api/models/{mid}").json()["step"]
    assert 0 < step < 10_000_000  # stopped early; the steps trained before are saved, one history entry each
    steps = client.get(f"/api/models/{mid}/history", params={"max_points": 1_000_000}).json()["step"]
    assert steps == list(range(1, step + 1))
    assert train(client, mid, 3)["step"] == step + 3  # the model is free again


def test_divergence_stops_training_and_keeps_the_last_finite_parameters(client):
    mid = create(client, DIVERGES)["id"]
    t = train(client, mid, 200)
    ref = Model(DIVERGES)
    expected = ref.train(200)
    assert expected.stopped == "diverged"
    assert (t["stopped"], t["diverged"], t["diverged_at"]) == ("diverged", True, expected.diverged_at)
    assert t["step"] == t["steps_done"] == expected.diverged_at - 1
    assert t["losses"] == expected.losses
    m = client.get(f"/api/models/{mid}").json()
    assert (m["diverged"], m["diverged_at"], m["step"]) == (True, expected.diverged_at, t["step"])
    W = client.get(f"/api/models/{mid}/parameters").json()["layers"][0]["W"]
    assert np.array_equal(arr(W), ref.net.dense[0].params["W"]) and np.isfinite(arr(W)).all()


# -- parameters ----------------------------------------------------------------------------------
def test_get_parameters_has_the_notation_shapes(client):
    spec = {"layers": [{"units": 5}, {"units": 3}, {"units": 1, "activation": "sigmoid"}],
            "data": {"samples": 40, "features": ["x1", "x2", "x1x2"]}}
    m = create(client, spec)
    layers = client.get(f"/api/models/{m['id']}/parameters").json()["layers"]
    assert [arr(layer["W"]).shape for layer in layers] == [(5, 3), (3, 5), (1, 3)]
    assert [arr(layer["b"]).shape for layer in layers] == [(5,), (3,), (1,)]
    ref = Model(spec)
    for layer, d in zip(layers, ref.net.dense):
        assert np.array_equal(arr(layer["W"]), d.params["W"]) and np.array_equal(arr(layer["b"]), d.params["b"])


def test_no_bias_parameters_are_null(client):
    m = create(client, {**XOR, "bias": False})
    layers = client.get(f"/api/models/{m['id']}/parameters").json()["layers"]
    assert [layer["b"] for layer in layers] == [None, None]


NEW = {"layers": [{"W": [[0.5, -0.5], [1.0, 0.0], [0.0, 1.0], [-1.0, 2.0]], "b": [0.1, 0.2, 0.3, 0.4]},
                  {"W": [[1.0, -1.0, 0.5, 0.25]], "b": [-0.2]}]}


def test_put_parameters_replaces_them(client, model):
    mid = model["id"]
    r = client.put(f"/api/models/{mid}/parameters", json=NEW)
    assert r.status_code == 200
    assert r.json() == NEW
    assert client.get(f"/api/models/{mid}/parameters").json() == NEW
    # the forward pass uses them: y_hat = sigmoid(tanh(X W1^T + b1) W2^T + b2)
    X = np.array([[0.3, -1.2], [2.0, 0.5]])
    W1, b1 = arr(NEW["layers"][0]["W"]), arr(NEW["layers"][0]["b"])
    W2, b2 = arr(NEW["layers"][1]["W"]), arr(NEW["layers"][1]["b"])
    expected = 1 / (1 + np.exp(-(np.tanh(X @ W1.T + b1) @ W2.T + b2)))
    y_hat = client.post(f"/api/models/{mid}/predict", json={"X": X.tolist()}).json()["y_hat"]
    np.testing.assert_allclose(y_hat, expected, rtol=1e-12)
    # the losses are re-evaluated, and training continues from the new parameters
    ref = Model(SMALL)
    for d, layer in zip(ref.net.dense, NEW["layers"]):
        d.params["W"][...], d.params["b"][...] = layer["W"], layer["b"]
    ref.evaluate()
    assert client.get(f"/api/models/{mid}").json()["train_loss"] == ref.train_loss != model["train_loss"]
    assert train(client, mid, 5)["losses"] == ref.train(5).losses


@pytest.mark.parametrize("change,loc,msg", [
    (lambda p: p["layers"][1].update(W=[[1.0, 2.0, 3.0]]), ["body", "layers", 1, "W"],
     "layer 2 W: expected shape [1, 4], got [1, 3]"),
    (lambda p: p["layers"][0].update(W=[[1.0, 2.0, 3.0, 4.0]] * 2), ["body", "layers", 0, "W"],
     "layer 1 W: expected shape [4, 2], got [2, 4]"),
    (lambda p: p["layers"][1].update(W=[]), ["body", "layers", 1, "W"], "layer 2 W: expected shape [1, 4], got [0, 0]"),
    (lambda p: p["layers"][1].update(b=[0.0, 0.0]), ["body", "layers", 1, "b"],
     "layer 2 b: expected shape [1], got [2]"),
    (lambda p: p["layers"][1].update(W=[[1.0, 2.0], [3.0]]), ["body", "layers", 1, "W"],
     "layer 2 W is ragged: its rows have different lengths"),
    (lambda p: p["layers"][1].update(b=None), ["body", "layers", 1, "b"],
     "layer 2 has a bias; send a list of 1 numbers"),
    (lambda p: p["layers"].pop(), ["body", "layers"], "expected 2 layers, got 1"),
    (lambda p: p["layers"].append(p["layers"][1]), ["body", "layers"], "expected 2 layers, got 3"),
])
def test_put_parameters_shape_errors_name_the_layer_and_change_nothing(client, model, change, loc, msg):
    mid = model["id"]
    train(client, mid, 3)
    before = client.get(f"/api/models/{mid}/parameters").json()
    status = client.get(f"/api/models/{mid}").json()
    body = {"layers": [dict(layer) for layer in NEW["layers"]]}  # layer 1 alone would be valid
    change(body)
    unprocessable(client.put(f"/api/models/{mid}/parameters", json=body), loc, msg)
    assert client.get(f"/api/models/{mid}/parameters").json() == before
    assert client.get(f"/api/models/{mid}").json() == status
    ref = Model(SMALL)
    ref.train(3)
    assert train(client, mid, 4)["losses"] == ref.train(4).losses


def test_put_parameters_without_bias(client):
    mid = create(client, {**XOR, "bias": False})["id"]
    body = {"layers": [{"W": [[1.0, 0.0]] * 3, "b": None}, {"W": [[1.0, 1.0, 1.0]], "b": None}]}
    assert client.put(f"/api/models/{mid}/parameters", json=body).json() == body
    body["layers"][0]["b"] = [0.0, 0.0, 0.0]
    unprocessable(client.put(f"/api/models/{mid}/parameters", json=body), ["body", "layers", 0, "b"],
                  "layer 1 has no bias; send null")


@pytest.mark.parametrize("raw,loc", [
    (b'{"layers": [{"W": [[NaN, 0]], "b": [0]}]}', ["body", "layers", 0, "W", 0, 0]),
    (b'{"layers": [{"W": [[0, 0]], "b": [Infinity]}]}', ["body", "layers", 0, "b", 0]),
    (b'{"layers": [{"W": [[0, 0]], "b": [-Infinity]}]}', ["body", "layers", 0, "b", 0]),
])
def test_put_parameters_non_finite(client, model, raw, loc):
    before = client.get(f"/api/models/{model['id']}/parameters").json()
    r = client.put(f"/api/models/{model['id']}/parameters", content=raw, headers={"content-type": "application/json"})
    invalid(r, loc, "Input should be a finite number")
    assert client.get(f"/api/models/{model['id']}/parameters").json() == before


def test_put_parameters_schema_errors(client, model):
    invalid(client.put(f"/api/models/{model['id']}/parameters", json={}), ["body", "layers"], "Field required")
    invalid(client.put(f"/api/models/{model['id']}/parameters", json={"layers": [{"b": [0]}]}),
            ["body", "layers", 0, "W"], "Field required")
