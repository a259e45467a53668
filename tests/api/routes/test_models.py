"""POST/GET/PATCH/DELETE /api/models[/{id}] and /reset: the spec, its validation, the limits, the
body size limit, the model limit, and every endpoint's 404."""
from __future__ import annotations

import time

import numpy as np
import pytest

from app.engine import DEFAULT_SPEC, Model
from app.engine.activations import ACTIVATIONS

from ..utils import SMALL, XOR, arr, bool_refused, create, invalid, not_found, unprocessable


def literal(*names: str) -> str:
    """pydantic's message for a value outside a Literal."""
    quoted = [f"'{n}'" for n in names]
    return "Input should be " + (", ".join(quoted[:-1]) + " or " + quoted[-1] if len(quoted) > 1 else quoted[0])


def params(client, model_id: str) -> list[tuple[np.ndarray, np.ndarray | None]]:
    r = client.get(f"/api/models/{model_id}/parameters")
    assert r.status_code == 200
    return [(arr(layer["W"]), None if layer["b"] is None else arr(layer["b"])) for layer in r.json()["layers"]]


def same_params(a, b) -> bool:
    return all(np.array_equal(Wa, Wb) and (ba is None and bb is None or np.array_equal(ba, bb))
               for (Wa, ba), (Wb, bb) in zip(a, b, strict=True))


def engine_params(m: Model) -> list:
    return [(d.params["W"].copy(), d.params["b"].copy() if d.bias else None) for d in m.net.dense]


# -- create and read -----------------------------------------------------------------------------
@pytest.mark.parametrize("body", [None, {}], ids=["no body", "empty object"])
def test_create_with_defaults(client, body):
    before = time.time()
    r = client.post("/api/models") if body is None else client.post("/api/models", json=body)
    assert r.status_code == 201
    m = r.json()
    assert set(m) == {"id", "spec", "step", "epoch", "train_loss", "test_loss", "diverged", "diverged_at",
                      "n_params", "created_at", "nickname", "parent", "token"}
    assert len(m["token"]) >= 32 and m["nickname"] is None and m["parent"] is None
    expected_spec = {**DEFAULT_SPEC, "input_size": 2}
    assert m["spec"] == expected_spec
    assert (m["step"], m["epoch"], m["diverged"], m["diverged_at"]) == (0, 0, False, None)
    assert m["n_params"] == 3 * 8 + 9 * 8 + 9 * 1
    assert isinstance(m["train_loss"], float) and isinstance(m["test_loss"], float)
    assert before - 1 <= m["created_at"] <= time.time() + 1
    assert len(m["id"]) >= 20


def test_create_fills_engine_defaults_and_matches_the_engine(client):
    spec = {"layers": [{"units": 3}, {"units": 1}], "loss": "mse", "data": {"dataset": "plane", "samples": 40}}
    m = create(client, spec)
    assert m["spec"]["layers"] == [{"units": 3, "activation": "tanh"}, {"units": 1, "activation": "identity"}]
    assert m["spec"] == Model(spec).spec
    assert same_params(params(client, m["id"]), engine_params(Model(spec)))


def test_create_custom_data(client):
    m = create(client, XOR)
    assert m["spec"]["data"] == {"source": "custom", "n_train": 4, "n_test": 0, "standardize": None, "info": None}
    assert m["spec"]["input_size"] == 2 and m["spec"]["batch_size"] is None
    assert m["test_loss"] is None
    assert m["n_params"] == 3 * 3 + 4 * 1


def test_ids_are_unique(client):
    assert len({create(client, XOR)["id"] for _ in range(5)}) == 5


def test_get_returns_what_create_returned(client, model):
    r = client.get(f"/api/models/{model['id']}")
    assert r.status_code == 200
    assert r.json() == model


# -- 404 everywhere ------------------------------------------------------------------------------
ENDPOINTS = [
    ("GET", "", None), ("PATCH", "", {}), ("DELETE", "", None), ("POST", "/reset", {}),
    ("POST", "/train", {"steps": 1}), ("GET", "/parameters", None),
    ("PUT", "/parameters", {"layers": [{"W": [[0.0, 0.0]], "b": [0.0]}]}),
    ("GET", "/gradients", None), ("POST", "/gradients", {}), ("POST", "/predict", {"X": [[0.0, 0.0]]}),
    ("GET", "/history", None), ("POST", "/gradcheck", {}), ("GET", "/trace", None),
    ("POST", "/check", {"X": [[0.0, 0.0]], "y": [[1.0]], "layers": []}), ("GET", "/boundary", None),
    ("GET", "/data", None),
]


@pytest.mark.parametrize("method,suffix,body", ENDPOINTS, ids=[f"{m} {s or '/'}" for m, s, _ in ENDPOINTS])
@pytest.mark.parametrize("model_id", ["unknownModelId1234", "bad id!", "x" * 200, "..", "%00"],
                         ids=["unknown", "bad characters", "too long", "dots", "nul"])
def test_unknown_model_is_404_everywhere(client, model, method, suffix, body, model_id):
    r = client.request(method, f"/api/models/{model_id}{suffix}", json=body)
    if model_id == "..":  # the client normalizes /api/models/.. away: it names no model route at all
        assert r.status_code in (404, 405)
        return
    shown = {"%00": "\x00"}.get(model_id, model_id)
    not_found(r, shown)
    assert client.get(f"/api/models/{model['id']}").json()["step"] == 0  # nothing else was touched


# -- validation of the spec ----------------------------------------------------------------------
@pytest.mark.parametrize("body,loc,msg", [
    ({"layers": [{"units": 4, "activation": "swish"}, {"units": 1, "activation": "sigmoid"}]},
     ["body", "layers", 0, "activation"], literal(*ACTIVATIONS)),
    ({"loss": "hinge"}, ["body", "loss"], literal("mse", "bce", "cross_entropy")),
    ({"data": {"dataset": "mnist"}}, ["body", "data", "dataset"],
     literal("xor", "circle", "gauss", "spiral", "moons", "plane", "multi_gauss", "sine")),
    ({"optimizer": {"name": "rmsprop"}}, ["body", "optimizer", "name"], literal("sgd", "momentum", "adam")),
    ({"init": "zeros"}, ["body", "init"], literal("xavier", "he", "normal")),
    ({"dtype": "float16"}, ["body", "dtype"], literal("float64", "float32")),
    ({"regularization": {"kind": "l3"}}, ["body", "regularization", "kind"], literal("none", "l1", "l2")),
    ({"data": {"features": ["x3"]}}, ["body", "data", "features", 0],
     literal("x1", "x2", "x1sq", "x2sq", "x1x2", "sinx1", "sinx2")),
    ({"layers": []}, ["body", "layers"], "List should have at least 1 item after validation, not 0"),
    ({"layers": [{"units": 0}]}, ["body", "layers", 0, "units"], "Input should be greater than or equal to 1"),
    ({"batch_size": 0}, ["body", "batch_size"], "Input should be greater than or equal to 1"),
    ({"data": {"samples": 3}}, ["body", "data", "samples"], "Input should be greater than or equal to 4"),
    ({"seed": -1}, ["body", "seed"], "Input should be greater than or equal to 0"),
    ({"lr": 0.1}, ["body", "lr"], "Extra inputs are not permitted"),
    ({"layers": [{"units": 2, "act": "relu"}]}, ["body", "layers", 0, "act"], "Extra inputs are not permitted"),
])
def test_schema_errors_name_the_field(client, body, loc, msg):
    invalid(client.post("/api/models", json=body), loc, msg)


@pytest.mark.parametrize("value", ["yes", "on", "true", 1, 0])
@pytest.mark.parametrize("body,loc", [
    (lambda v: {"bias": v}, ["body", "bias"]),
    (lambda v: {"optimizer": {"name": "momentum", "nesterov": v}}, ["body", "optimizer", "nesterov"]),
    (lambda v: {"data": {"standardize": v}}, ["body", "data", "standardize"]),
])
def test_booleans_are_strict_at_create(client, body, loc, value):
    bool_refused(client.post("/api/models", json=body(value)), loc, value)


BAD_NAMES = [("a\x00b", "U+0000 at position 1"), ("ada\n", "U+000A at position 3"), ("\u202eada", "U+202E at position 0"),
             ("a\u200bb", "U+200B at position 1"), ("\x1b[31m", "U+001B at position 0")]


def nickname_refused(r, loc: list, name: str, where: str) -> None:
    assert (r.status_code, r.json()) == (422, {"detail": [{
        "type": "value_error", "loc": loc, "input": name,
        "msg": f"must not contain control or invisible formatting characters ({where})"}]})


@pytest.mark.parametrize("name,where", BAD_NAMES)
def test_nicknames_refuse_control_and_bidi_characters(client, model, name, where):
    nickname_refused(client.post("/api/models", json={**SMALL, "nickname": name}), ["body", "nickname"], name, where)
    nickname_refused(client.patch(f"/api/models/{model['id']}", json={"nickname": name}), ["body", "nickname"],
                     name, where)
    assert client.get(f"/api/models/{model['id']}").json()["nickname"] is None


def test_nicknames_in_any_script_are_accepted(client):
    assert create(client, SMALL, nickname="Zoë 李 أحمد")["nickname"] == "Zoë 李 أحمد"


def test_booleans_are_strict_in_patch(client, model):
    bool_refused(client.patch(f"/api/models/{model['id']}", json={"optimizer": {"nesterov": "yes"}}),
                 ["body", "optimizer", "nesterov"], "yes")


@pytest.mark.parametrize("body,loc,msg", [
    ({"layers": [{"units": 4, "activation": "softmax"}, {"units": 2, "activation": "softmax"}],
      "loss": "cross_entropy"}, ["body", "layers", 0, "activation"], "softmax is allowed on the output layer only"),
    ({"layers": [{"units": 4}, {"units": 2, "activation": "softmax"}], "loss": "bce"},
     ["body", "layers", 1, "activation"], "softmax output requires loss cross_entropy"),
    ({"layers": [{"units": 4}, {"units": 2, "activation": "softmax"}], "loss": "mse"},
     ["body", "layers", 1, "activation"], "softmax output requires loss cross_entropy"),
    ({"layers": [{"units": 4}, {"units": 2, "activation": "sigmoid"}], "loss": "cross_entropy"},
     ["body", "loss"], "cross_entropy requires a softmax output layer, got sigmoid"),
    ({"layers": [{"units": 4}, {"units": 1, "activation": "identity"}], "loss": "bce"},
     ["body", "loss"], "bce requires a sigmoid output layer, got identity"),
    ({"layers": [{"units": 4}, {"units": 3, "activation": "softmax"}], "loss": "cross_entropy",
      "data": {"dataset": "spiral"}}, ["body", "layers", 1, "units"],
     "dataset 'spiral' has 2 classes: n_outputs must be 1 (one 0/1 column) or 2 (one-hot), got 3"),
    ({"data": {"features": ["x1", "x1"]}}, ["body", "data", "features"], "duplicate features in ['x1', 'x1']"),
    ({"data": {"dataset": "sine", "features": ["x2"]}}, ["body", "data", "features"],
     "1-D inputs only support features ['x1'], got ['x2']"),
])
def test_architecture_errors_name_the_field(client, body, loc, msg):
    unprocessable(client.post("/api/models", json=body), loc, msg)


ONE = [{"units": 1, "activation": "sigmoid"}]


@pytest.mark.parametrize("data,extra,loc,msg", [
    ({"X": [[1, 2], [3, 4]], "y": [[1]]}, {}, ["body", "data", "X"], "has 2 rows but its y has 1"),
    ({"X": [[1, 2]], "y": [[1]], "X_test": [[1, 2]], "y_test": [[1], [0]]}, {},
     ["body", "data", "X_test"], "has 1 rows but its y has 2"),
    ({"X": [[1, 2], [3, 4]], "y": [[1], [0]]}, {"input_size": 3}, ["body", "input_size"],
     "is 3 but the data gives 2 input columns"),
    ({"dataset": "xor", "features": ["x1", "x2", "x1x2"]}, {"input_size": 2}, ["body", "input_size"],
     "is 2 but the data gives 3 input columns"),
    ({"X": [[1, 2]], "y": [[1]], "X_test": [[1, 2, 3]], "y_test": [[1]]}, {}, ["body", "data", "X_test"],
     "has 3 columns but X has 2"),
    ({"X": [[1, 2], [3, 4]], "y": [[1, 0], [0, 1]]}, {}, ["body", "data", "y"],
     "has 2 columns but the output layer has 1 units"),
    ({"X": [[1, 2]], "y": [[1]], "X_test": [[1, 2]], "y_test": [[1, 0]]}, {}, ["body", "data", "y_test"],
     "has 2 columns but the output layer has 1 units"),
    ({"X": [], "y": []}, {}, ["body", "data", "X"], "must be a non-empty 2-D list of rows, got shape (0,)"),
    ({"X": [[]], "y": [[]]}, {}, ["body", "data", "X"], "must be a non-empty 2-D list of rows, got shape (1, 0)"),
    ({"X": [[1, 2]], "y": []}, {}, ["body", "data", "y"], "must be a non-empty 2-D list of rows, got shape (0, 1)"),
    ({"X": [[1, 2], [3]], "y": [[1], [0]]}, {}, ["body", "data", "X"], "must be a rectangular list of rows of numbers"),
    ({"X": [[1, 2]]}, {}, ["body", "data", "y"], "required with custom data"),
    ({"X": [[1, 2]], "y": [[1]], "X_test": [[1, 2]]}, {}, ["body", "data", "y_test"], "X_test and y_test go together"),
    ({"dataset": "xor", "X": [[1, 2]], "y": [[1]]}, {}, ["body", "data", "dataset"],
     "not allowed with custom X/y data"),
    ({"X": [[1, 2]], "y": [[2]]}, {}, ["body", "loss"], "bce needs targets in [0, 1]; use mse for regression data"),
])
def test_custom_data_errors_name_the_field(client, data, extra, loc, msg):
    unprocessable(client.post("/api/models", json={"layers": ONE, "data": data, **extra}), loc, msg)


@pytest.mark.parametrize("raw,loc", [
    (b'{"data": {"X": [[NaN, 1]], "y": [[1]]}}', ["body", "data", "X", 0, 0]),
    (b'{"data": {"X": [[0, 1]], "y": [[Infinity]]}}', ["body", "data", "y", 0, 0]),
    (b'{"data": {"X": [[0, 1]], "y": [[1]], "X_test": [[0, -Infinity]], "y_test": [[1]]}}',
     ["body", "data", "X_test", 0, 1]),
    (b'{"data": {"X": [[0, 1]], "y": [[1]], "X_test": [[0, 1]], "y_test": [[NaN]]}}', ["body", "data", "y_test", 0, 0]),
    (b'{"data": {"X": [[1e999, 1]], "y": [[1]]}}', ["body", "data", "X", 0, 0]),
    (b'{"init_std": NaN}', ["body", "init_std"]),
    (b'{"optimizer": {"learning_rate": Infinity}}', ["body", "optimizer", "learning_rate"]),
    (b'{"optimizer": {"name": "momentum", "momentum": NaN}}', ["body", "optimizer", "momentum"]),
    (b'{"optimizer": {"beta1": NaN}}', ["body", "optimizer", "beta1"]),
    (b'{"optimizer": {"beta2": -Infinity}}', ["body", "optimizer", "beta2"]),
    (b'{"optimizer": {"eps": NaN}}', ["body", "optimizer", "eps"]),
    (b'{"regularization": {"kind": "l2", "rate": NaN}}', ["body", "regularization", "rate"]),
    (b'{"data": {"noise": NaN}}', ["body", "data", "noise"]),
    (b'{"data": {"test_fraction": Infinity}}', ["body", "data", "test_fraction"]),
    (b'{"seed": NaN}', ["body", "seed"]),
    (b'{"batch_size": Infinity}', ["body", "batch_size"]),
    (b'{"layers": [{"units": NaN}]}', ["body", "layers", 0, "units"]),
])
def test_non_finite_numbers_are_422_not_500(client, raw, loc):
    r = client.post("/api/models", content=raw, headers={"content-type": "application/json"})
    integer = loc[-1] in ("seed", "batch_size", "units")  # strict integer fields: NaN is not an integer
    invalid(r, loc, "Input should be a valid integer" if integer else "Input should be a finite number")
    item = next(i for i in r.json()["detail"] if i["loc"] == loc)
    assert item["input"] in ("NaN", "Infinity", "-Infinity")  # echoed as the literal the client sent


def test_malformed_json_is_422(client):
    r = client.post("/api/models", content=b'{"layers": [', headers={"content-type": "application/json"})
    invalid(r, ["body", 12], "JSON decode error")


# -- limits --------------------------------------------------------------------------------------
@pytest.fixture
def small_limits(limited):
    return limited(max_layers=3, max_units=16, max_params=300, max_samples_x_features=1000)


@pytest.mark.parametrize("body,loc,msg", [
    ({"layers": [{"units": 2}] * 3 + ONE}, ["body", "layers"], "has 4 layers; the limit is 3"),
    ({"layers": [{"units": 17}] + ONE}, ["body", "layers", 0, "units"], "is 17; the limit is 16"),
    ({"layers": [{"units": 16}, {"units": 16}] + ONE}, ["body", "layers"], "need 337 parameters; the limit is 300"),
    ({"layers": ONE, "data": {"samples": 600}}, ["body", "data", "samples"],
     "600 samples x 2 features exceeds the limit 1000"),
    ({"layers": ONE, "data": {"samples": 300, "features": ["x1", "x2", "x1sq", "x2sq"]}},
     ["body", "data", "samples"], "300 samples x 4 features exceeds the limit 1000"),
    ({"layers": ONE, "data": {"X": [[0.5, 0.5]] * 400, "y": [[1]] * 400,
                              "X_test": [[0.5, 0.5]] * 101, "y_test": [[0]] * 101}},
     ["body", "data", "X"], "1002 samples x features exceeds the limit 1000"),
])
def test_limits_are_422_naming_the_field(small_limits, body, loc, msg):
    unprocessable(small_limits.post("/api/models", json=body), loc, msg)


def test_just_inside_the_limits_is_accepted(small_limits):
    create(small_limits, {"layers": [{"units": 16}, {"units": 8}, {"units": 1, "activation": "sigmoid"}],
                          "data": {"samples": 500}})
    create(small_limits, {"layers": ONE, "data": {"X": [[0.5, 0.5]] * 400, "y": [[1]] * 400,
                                                  "X_test": [[0.5, 0.5]] * 100, "y_test": [[0]] * 100}})


def test_at_the_model_limit_the_least_recently_used_model_is_evicted(limited):
    client = limited(max_models=3, protect_recent_seconds=0, touch_interval=0)
    ids = []
    for _ in range(3):
        ids.append(create(client, XOR)["id"])
        time.sleep(0.01)  # distinct save times
    a, b, c = ids
    assert client.post(f"/api/models/{a}/train", json={"steps": 1}).status_code == 200  # a is now the newest
    time.sleep(0.01)
    assert client.get(f"/api/models/{c}").status_code == 200  # a read is a use too
    time.sleep(0.01)
    d = create(client, XOR)["id"]
    not_found(client.get(f"/api/models/{b}"), b)
    for kept in (a, c, d):
        assert client.get(f"/api/models/{kept}").status_code == 200
    assert client.app.state.services.store.count() == 3


@pytest.mark.parametrize("settings, detail", [
    ({}, "the server holds its limit of 2 models and each was used in the last 600 seconds; try again later or "
         "ask the operator to raise PLAYGROUND_MAX_MODELS"),  # the default protect_recent_seconds covers both
    ({"at_model_limit": "refuse"}, "the server holds its limit of 2 models; delete one or ask the operator to "
                                   "raise PLAYGROUND_MAX_MODELS"),
])
def test_at_the_model_limit_the_create_is_507_and_the_models_are_kept(limited, settings, detail):
    client = limited(max_models=2, **settings)
    a, b = create(client, XOR)["id"], create(client, XOR)["id"]
    r = client.post("/api/models", json=XOR)
    assert r.status_code == 507
    assert r.json() == {"detail": detail}
    assert client.get(f"/api/models/{a}").status_code == 200 and client.get(f"/api/models/{b}").status_code == 200
    assert client.delete(f"/api/models/{a}").status_code == 204
    create(client, XOR)


def test_each_address_has_a_model_quota(limited):
    client = limited(max_models_per_client=2)
    a = create(client, XOR)["id"]
    create(client, XOR)
    r = client.post("/api/models", json=XOR)
    assert r.status_code == 429
    assert r.json() == {"detail": "this address holds its limit of 2 models; delete one first "
                                  "(PLAYGROUND_MAX_MODELS_PER_CLIENT)"}
    assert client.delete(f"/api/models/{a}").status_code == 204
    create(client, XOR)


# -- body size -----------------------------------------------------------------------------------
TOO_LARGE = {"detail": "request body is larger than the limit of 1000 bytes"}


def big_body(n_bytes: int) -> bytes:
    rows = ",".join(["[0.5,0.5]"] * (n_bytes // 10))
    return ('{"layers":[{"units":1,"activation":"sigmoid"}],"data":{"X":[' + rows + '],"y":[[1]]}}').encode()


def test_body_over_the_limit_with_content_length_is_413(limited):
    client = limited(max_body_bytes=1000)
    body = big_body(1500)
    r = client.post("/api/models", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json() == TOO_LARGE
    assert client.app.state.services.store.count() == 0


def test_body_over_the_limit_without_content_length_is_413(limited):
    client = limited(max_body_bytes=1000)
    body = big_body(1500)

    def chunks():  # a generator makes the client send chunked transfer encoding, no Content-Length
        for i in range(0, len(body), 200):
            yield body[i:i + 200]

    r = client.post("/api/models", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json() == TOO_LARGE
    assert client.app.state.services.store.count() == 0


def test_body_limit_applies_to_every_endpoint(limited):
    client = limited(max_body_bytes=1000)
    mid = create(client, XOR)["id"]
    r = client.post(f"/api/models/{mid}/predict", json={"X": [[0.5, 0.5]] * 200})
    assert r.status_code == 413
    assert r.json() == TOO_LARGE


def test_body_under_the_limit_is_read(limited):
    client = limited(max_body_bytes=1000)
    body = big_body(600)
    assert len(body) < 1000
    unprocessable(client.post("/api/models", content=body, headers={"content-type": "application/json"}),
                  ["body", "data", "X"], "has 60 rows but its y has 1")


# -- PATCH ---------------------------------------------------------------------------------------
def test_patch_keeps_the_optimizer_state(client, model):
    mid = model["id"]
    first = client.post(f"/api/models/{mid}/train", json={"steps": 15}).json()["losses"]
    r = client.patch(f"/api/models/{mid}", json={"optimizer": {"learning_rate": 0.005}})
    assert r.status_code == 200
    assert r.json()["spec"]["optimizer"] == {"name": "adam", "learning_rate": 0.005, "beta1": 0.9,
                                             "beta2": 0.999, "eps": 1e-8}
    assert r.json()["step"] == 15
    second = client.post(f"/api/models/{mid}/train", json={"steps": 15}).json()["losses"]

    ref = Model(SMALL)
    assert ref.train(15).losses == first
    ref.update(optimizer={"learning_rate": 0.005})
    assert ref.train(15).losses == second
    assert same_params(params(client, mid), engine_params(ref))

    fresh = Model(SMALL)  # the same change with a fresh optimizer state trains differently
    fresh.train(15)
    fresh.update(optimizer={"learning_rate": 0.005})
    fresh._new_optimizer()
    assert fresh.train(15).losses != second


def test_patch_with_a_partial_optimizer_keeps_its_name_and_state(client):
    spec = {**SMALL, "optimizer": {"name": "momentum", "learning_rate": 0.1}}
    mid = create(client, spec)["id"]
    client.post(f"/api/models/{mid}/train", json={"steps": 10})
    r = client.patch(f"/api/models/{mid}", json={"optimizer": {"learning_rate": 0.02}})
    assert r.status_code == 200
    assert r.json()["spec"]["optimizer"] == {"name": "momentum", "learning_rate": 0.02, "momentum": 0.9,
                                             "nesterov": False}
    losses = client.post(f"/api/models/{mid}/train", json={"steps": 10}).json()["losses"]
    ref = Model(spec)
    ref.train(10)
    ref.update(optimizer={"learning_rate": 0.02})
    assert ref.train(10).losses == losses


def test_patch_optimizer_name_resets_only_the_optimizer(client, model):
    mid = model["id"]
    client.post(f"/api/models/{mid}/train", json={"steps": 12})
    before = params(client, mid)
    r = client.patch(f"/api/models/{mid}", json={"optimizer": {"name": "sgd", "learning_rate": 0.5}})
    assert r.status_code == 200
    assert r.json()["spec"]["optimizer"] == {"name": "sgd", "learning_rate": 0.5}
    assert r.json()["step"] == 12
    assert same_params(params(client, mid), before)
    losses = client.post(f"/api/models/{mid}/train", json={"steps": 5}).json()["losses"]
    ref = Model(SMALL)
    ref.train(12)
    ref.update(optimizer={"name": "sgd", "learning_rate": 0.5})
    assert ref.train(5).losses == losses


def test_patch_regularization_and_batch_size(client, model):
    mid = model["id"]
    r = client.patch(f"/api/models/{mid}", json={"regularization": {"kind": "l2", "rate": 0.01}})
    assert r.json()["spec"]["regularization"] == {"kind": "l2", "rate": 0.01}
    r = client.patch(f"/api/models/{mid}", json={"regularization": {"rate": 0.02}})  # partial: kind stays
    assert r.json()["spec"]["regularization"] == {"kind": "l2", "rate": 0.02}
    r = client.patch(f"/api/models/{mid}", json={"batch_size": None})
    assert r.status_code == 200 and r.json()["spec"]["batch_size"] is None
    t = client.post(f"/api/models/{mid}/train", json={"steps": 3}).json()
    assert t["epoch"] == 3  # full batch: every step is an epoch
    r = client.patch(f"/api/models/{mid}", json={"batch_size": 5})
    assert r.json()["spec"]["batch_size"] == 5
    r = client.patch(f"/api/models/{mid}", json={})
    assert r.status_code == 200 and r.json()["spec"]["batch_size"] == 5
    assert r.json()["spec"]["regularization"] == {"kind": "l2", "rate": 0.02}


@pytest.mark.parametrize("body,loc,msg", [
    ({"batch_size": 0}, ["body", "batch_size"], "Input should be greater than or equal to 1"),
    ({"optimizer": {"name": "rmsprop"}}, ["body", "optimizer", "name"], literal("sgd", "momentum", "adam")),
    ({"optimizer": {"learning_rate": -1}}, ["body", "optimizer", "learning_rate"],
     "Input should be greater than or equal to 0"),
    ({"regularization": {"kind": "l3"}}, ["body", "regularization", "kind"], literal("none", "l1", "l2")),
    ({"loss": "mse"}, ["body", "loss"], "Extra inputs are not permitted"),
])
def test_patch_errors_change_nothing(client, model, body, loc, msg):
    invalid(client.patch(f"/api/models/{model['id']}", json=body), loc, msg)
    assert client.get(f"/api/models/{model['id']}").json() == model


@pytest.mark.parametrize("raw,loc", [
    (b'{"optimizer": {"learning_rate": NaN}}', ["body", "optimizer", "learning_rate"]),
    (b'{"regularization": {"rate": Infinity}}', ["body", "regularization", "rate"]),
])
def test_patch_non_finite_is_422(client, model, raw, loc):
    r = client.patch(f"/api/models/{model['id']}", content=raw, headers={"content-type": "application/json"})
    invalid(r, loc, "Input should be a finite number")


# -- reset ---------------------------------------------------------------------------------------
def test_reset_restores_the_initial_parameters(client, model):
    mid = model["id"]
    initial = params(client, mid)
    client.post(f"/api/models/{mid}/train", json={"steps": 20})
    assert not same_params(params(client, mid), initial)
    r = client.post(f"/api/models/{mid}/reset")
    assert r.status_code == 200
    assert (r.json()["step"], r.json()["epoch"]) == (0, 0)
    assert r.json()["train_loss"] == model["train_loss"]
    assert same_params(params(client, mid), initial)
    h = client.get(f"/api/models/{mid}/history").json()
    assert h["step"] == [] and h["loss"] == []
    # training after a reset repeats the first run exactly (fresh optimizer and sampler)
    assert client.post(f"/api/models/{mid}/train", json={"steps": 5}).json()["losses"] == Model(SMALL).train(5).losses


def test_reset_with_a_new_seed_changes_the_parameters_and_the_same_seed_restores_them(client, model):
    mid = model["id"]
    initial = params(client, mid)
    r = client.post(f"/api/models/{mid}/reset", json={"seed": 5})
    assert r.status_code == 200 and r.json()["spec"]["seed"] == 5
    seeded = params(client, mid)
    assert not same_params(seeded, initial)
    assert same_params(seeded, engine_params(Model({**SMALL, "seed": 5})))
    client.post(f"/api/models/{mid}/train", json={"steps": 3})
    assert client.post(f"/api/models/{mid}/reset", json={}).json()["spec"]["seed"] == 5  # no seed: keep seed 5
    assert same_params(params(client, mid), seeded)
    r = client.post(f"/api/models/{mid}/reset", json={"seed": 0})
    assert r.json()["spec"]["seed"] == 0
    assert same_params(params(client, mid), initial)


@pytest.mark.parametrize("body,loc,msg", [
    ({"seed": -1}, ["body", "seed"], "Input should be greater than or equal to 0"),
    ({"seed": 2**31}, ["body", "seed"], "Input should be less than or equal to 2147483647"),
    ({"seed": "x"}, ["body", "seed"], "Input should be a valid integer"),
    ({"steps": 1}, ["body", "steps"], "Extra inputs are not permitted"),
])
def test_reset_errors(client, model, body, loc, msg):
    client.post(f"/api/models/{model['id']}/train", json={"steps": 2})
    invalid(client.post(f"/api/models/{model['id']}/reset", json=body), loc, msg)
    assert client.get(f"/api/models/{model['id']}").json()["step"] == 2


# -- delete --------------------------------------------------------------------------------------
def test_delete_then_404(client, model):
    mid = model["id"]
    r = client.delete(f"/api/models/{mid}")
    assert r.status_code == 204
    assert r.content == b""
    not_found(client.get(f"/api/models/{mid}"), mid)
    not_found(client.post(f"/api/models/{mid}/train", json={"steps": 1}), mid)
    not_found(client.get(f"/api/models/{mid}/parameters"), mid)
    not_found(client.delete(f"/api/models/{mid}"), mid)


def test_delete_leaves_other_models_alone(client, model):
    other = create(client, XOR)["id"]
    assert client.delete(f"/api/models/{model['id']}").status_code == 204
    assert client.get(f"/api/models/{other}").status_code == 200


def test_nickname_is_set_at_creation_changed_by_patch_and_kept_by_training(client):
    m = create(client, SMALL, nickname="ada")
    assert m["nickname"] == "ada"
    r = client.patch(f"/api/models/{m['id']}", json={"nickname": "grace"})
    assert r.status_code == 200 and r.json()["nickname"] == "grace"
    client.post(f"/api/models/{m['id']}/train", json={"steps": 3})
    assert client.get(f"/api/models/{m['id']}").json()["nickname"] == "grace"
    r = client.patch(f"/api/models/{m['id']}", json={"optimizer": {"learning_rate": 0.01}})
    assert r.json()["nickname"] == "grace"  # a patch without the field leaves it alone
    invalid(client.patch(f"/api/models/{m['id']}", json={"nickname": "x" * 41}), ["body", "nickname"],
            "String should have at most 40 characters")


def test_import_takes_a_nickname(client, model):
    exported = client.get(f"/api/models/{model['id']}/export?format=json").content
    r = client.post("/api/models/import?nickname=copy", content=exported, headers={"content-type": "application/json"})
    assert r.status_code == 201 and r.json()["nickname"] == "copy"
