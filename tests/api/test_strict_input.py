"""Strict request bodies: numbers are JSON numbers of the right kind, and a body no parser should take is a 422
naming the reason (app/api/schemas.py Int/Float, app/api/body.py parse_body), never a 400 without a field or a 500."""
from __future__ import annotations

import json
import sys
import types
import typing

import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError, create_model

from app.api.body import MAX_NESTING, BodyRoute, _depth, nesting
from app.api.schemas import MAX_INT

from .utils import SMALL, client_for, create, make_app

ADMIN = "instructor-secret-for-strict-tests-0123"
INT = "Input should be a valid integer"
FLOAT = "Input should be a valid number"
BOOL = "Input should be a valid boolean"
MODEL = "/api/models/{id}"
SMALL_BATCH = 10  # the default batch_size (app/engine/spec.py DEFAULT_SPEC)


@pytest.fixture
def admin_client():
    with client_for(make_app(admin_token=ADMIN)) as c:
        yield c


def send(client, method: str, path: str, body, mid: str):
    headers = {"Authorization": f"Bearer {ADMIN}"} if path.startswith("/api/class") else None
    return client.request(method, path.format(id=mid), json=body, headers=headers)


def refused(r, loc: list, msg: str, value) -> None:
    """Exactly one error, at loc, with pydantic's reason and the value echoed."""
    assert r.status_code == 422, r.text
    assert [(e["loc"], e["msg"], e["input"]) for e in r.json()["detail"]] == [(loc, msg, value)], r.text


# -- every integer and float field refuses booleans, strings and (integers) floats --------------------------------
CASES = [
    # (method, path, body, loc, msg, value)
    ("POST", MODEL + "/train", {"steps": True}, ["body", "steps"], INT, True),
    ("POST", MODEL + "/train", {"steps": "5"}, ["body", "steps"], INT, "5"),
    ("POST", MODEL + "/train", {"steps": 5.0}, ["body", "steps"], INT, 5.0),
    ("POST", MODEL + "/train", {"steps": 1e30}, ["body", "steps"], INT, 1e30),
    ("POST", "/api/models", {"seed": True}, ["body", "seed"], INT, True),
    ("POST", "/api/models", {"seed": "3"}, ["body", "seed"], INT, "3"),
    ("POST", "/api/models", {"batch_size": "10"}, ["body", "batch_size"], INT, "10"),
    ("POST", "/api/models", {"batch_size": True}, ["body", "batch_size"], INT, True),
    ("POST", "/api/models", {"batch_size": 10.0}, ["body", "batch_size"], INT, 10.0),
    ("POST", "/api/models", {"input_size": True}, ["body", "input_size"], INT, True),
    ("POST", "/api/models", {"layers": [{"units": True}]}, ["body", "layers", 0, "units"], INT, True),
    ("POST", "/api/models", {"layers": [{"units": 4}, {"units": "1"}]}, ["body", "layers", 1, "units"], INT, "1"),
    ("POST", "/api/models", {"init_std": True}, ["body", "init_std"], FLOAT, True),
    ("POST", "/api/models", {"init_std": "0.1"}, ["body", "init_std"], FLOAT, "0.1"),
    ("POST", "/api/models", {"optimizer": {"learning_rate": True}}, ["body", "optimizer", "learning_rate"], FLOAT, True),
    ("POST", "/api/models", {"optimizer": {"learning_rate": "0.1"}}, ["body", "optimizer", "learning_rate"], FLOAT,
     "0.1"),
    ("POST", "/api/models", {"optimizer": {"name": "momentum", "momentum": True}}, ["body", "optimizer", "momentum"],
     FLOAT, True),
    ("POST", "/api/models", {"optimizer": {"nesterov": 1}}, ["body", "optimizer", "nesterov"], BOOL, 1),
    ("POST", "/api/models", {"optimizer": {"beta1": "0.9"}}, ["body", "optimizer", "beta1"], FLOAT, "0.9"),
    ("POST", "/api/models", {"optimizer": {"beta2": False}}, ["body", "optimizer", "beta2"], FLOAT, False),
    ("POST", "/api/models", {"optimizer": {"eps": True}}, ["body", "optimizer", "eps"], FLOAT, True),
    ("POST", "/api/models", {"regularization": {"kind": "l2", "rate": True}}, ["body", "regularization", "rate"],
     FLOAT, True),
    ("POST", "/api/models", {"data": {"samples": True}}, ["body", "data", "samples"], INT, True),
    ("POST", "/api/models", {"data": {"samples": "100"}}, ["body", "data", "samples"], INT, "100"),
    ("POST", "/api/models", {"data": {"samples": 100.0}}, ["body", "data", "samples"], INT, 100.0),
    ("POST", "/api/models", {"data": {"noise": True}}, ["body", "data", "noise"], FLOAT, True),
    ("POST", "/api/models", {"data": {"test_fraction": "0.5"}}, ["body", "data", "test_fraction"], FLOAT, "0.5"),
    ("POST", "/api/models", {"data": {"seed": True}}, ["body", "data", "seed"], INT, True),
    ("POST", "/api/models", {"bias": 0}, ["body", "bias"], BOOL, 0),
    ("PATCH", MODEL, {"batch_size": True}, ["body", "batch_size"], INT, True),
    ("PATCH", MODEL, {"batch_size": 8.0}, ["body", "batch_size"], INT, 8.0),
    ("PATCH", MODEL, {"optimizer": {"learning_rate": "0.01"}}, ["body", "optimizer", "learning_rate"], FLOAT, "0.01"),
    ("PATCH", MODEL, {"regularization": {"kind": "l1", "rate": True}}, ["body", "regularization", "rate"], FLOAT, True),
    ("POST", MODEL + "/reset", {"seed": True}, ["body", "seed"], INT, True),
    ("POST", MODEL + "/reset", {"seed": 1.0}, ["body", "seed"], INT, 1.0),
    ("POST", MODEL + "/fork", {"step": True}, ["body", "step"], INT, True),
    ("POST", MODEL + "/fork", {"step": "0"}, ["body", "step"], INT, "0"),
    ("POST", MODEL + "/fork", {"step": 0.0}, ["body", "step"], INT, 0.0),
    ("POST", MODEL + "/gradcheck", {"eps": True}, ["body", "eps"], FLOAT, True),
    ("POST", MODEL + "/gradcheck", {"eps": "1e-6"}, ["body", "eps"], FLOAT, "1e-6"),
    ("PUT", "/api/class/preset", {"link": "/?dataset=xor", "step_budget": True}, ["body", "step_budget"], INT, True),
    ("PUT", "/api/class/preset", {"link": "/?dataset=xor", "step_budget": 100.0}, ["body", "step_budget"], INT, 100.0),
    ("PUT", "/api/class/preset", {"link": "/?dataset=xor", "match_loss": 1}, ["body", "match_loss"], BOOL, 1),
    ("PUT", "/api/class/freeze", {"frozen": 1}, ["body", "frozen"], BOOL, 1),
    ("POST", "/api/datasets", {"csv": "a,b\n1,2\n", "standardize": "yes"}, ["body", "standardize"], BOOL, "yes"),
]


@pytest.mark.parametrize("method,path,body,loc,msg,value", CASES, ids=[f"{c[0]} {c[1]} {c[2]}" for c in CASES])
def test_numbers_of_the_wrong_kind_are_422_at_the_field(admin_client, method, path, body, loc, msg, value):
    mid = create(admin_client, SMALL)["id"]
    refused(send(admin_client, method, path, body, mid), loc, msg, value)
    assert admin_client.get(f"/api/models/{mid}").json()["step"] == 0  # nothing trained, nothing changed


def test_numbers_of_the_right_kind_still_work(admin_client):
    """Integers where a float belongs (learning rate 1), integer matrices, and the integer fields themselves."""
    c = admin_client
    m = create(c, {**SMALL, "init_std": 1, "optimizer": {"name": "sgd", "learning_rate": 1},
                   "regularization": {"kind": "l2", "rate": 0}, "data": {"dataset": "xor", "samples": 40, "noise": 0,
                                                                          "test_fraction": 0.5, "seed": 3}})
    assert m["spec"]["optimizer"]["learning_rate"] == 1.0 and m["spec"]["init_std"] == 1.0
    mid = m["id"]
    assert c.post(f"/api/models/{mid}/train", json={"steps": 3}).json()["steps_done"] == 3
    assert c.patch(f"/api/models/{mid}", json={"batch_size": 4, "optimizer": {"name": "sgd", "learning_rate": 2}}
                   ).json()["spec"]["optimizer"]["learning_rate"] == 2.0
    assert c.post(f"/api/models/{mid}/reset", json={"seed": 7}).json()["step"] == 0
    assert c.post(f"/api/models/{mid}/fork", json={"step": 0}).status_code == 201
    ints = create(c, {"layers": [{"units": 3}, {"units": 1, "activation": "sigmoid"}], "batch_size": None,
                      "data": {"X": [[0, 0], [0, 1], [1, 0], [1, 1]], "y": [[0], [1], [1], [0]]}})
    assert ints["spec"]["data"]["n_train"] == 4
    assert c.post(f"/api/models/{ints['id']}/predict", json={"X": [[1, 0]]}).status_code == 200
    r = c.put("/api/class/preset", json={"link": "/?dataset=xor", "step_budget": 100},
              headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 200 and r.json()["assignment"]["step_budget"] == 100


def test_train_without_a_body_or_with_an_empty_one_trains_one_step(client, model):
    """docs/api.md: steps defaults to 1."""
    assert client.post(f"/api/models/{model['id']}/train").json()["steps_done"] == 1
    assert client.post(f"/api/models/{model['id']}/train", json={}).json()["steps_done"] == 1
    assert client.get(f"/api/models/{model['id']}").json()["step"] == 2


# -- the kind, not the cases: every request body of every route ------------------------------------------------------
def api_routes(routes):
    """Every APIRoute, however the FastAPI version nests included routers."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        sub = getattr(route, "original_router", None)
        if sub is not None:
            yield from api_routes(sub.routes)


def models_in(annotation):
    """The pydantic models an annotation names: Batch | None, list[LayerSpec], ..."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    elif typing.get_origin(annotation) in (typing.Union, types.UnionType, list):
        for arg in typing.get_args(annotation):
            yield from models_in(arg)


def kinds_of(field) -> set:
    """The plain types a field takes: {int} for Int | None, {float} for Float, ..."""
    args = typing.get_args(field.annotation) or (field.annotation,)
    return {typing.get_args(a)[0] if typing.get_origin(a) is typing.Annotated else a for a in args}


def scalar_fields(model, path=()):
    """(path, field) of every int, float or bool field, nested models included (matrices are lists: not here)."""
    for name, field in model.model_fields.items():
        if kinds_of(field) & {int, float, bool}:
            yield (*path, name), field
        for sub in models_in(field.annotation):
            yield from scalar_fields(sub, (*path, name))


def body_models():
    app = make_app()
    routes = [r for r in api_routes(app.routes) if r.body_field is not None]
    assert len(routes) >= 12  # the walk found the routes (create, train, fork, class/preset, ...)
    found = {m for r in routes for p in r.dependant.body_params for m in models_in(p.field_info.annotation)}
    return routes, found


def test_every_json_body_route_is_a_body_route():
    """Parse errors become 422s in BodyRoute only: a JSON-body route of another class would answer FastAPI's 400."""
    routes, _ = body_models()
    assert [r.path for r in routes if not isinstance(r, BodyRoute)] == []


def test_every_number_and_boolean_field_of_every_request_body_is_strict():
    _, models = body_models()
    fields = [(m.__name__, path, f) for m in models for path, f in scalar_fields(m)]
    assert len(fields) >= 25 and {"TrainRequest", "ModelCreate", "ForkRequest", "Preset"} <= {m for m, _, _ in fields}
    lax = []
    for model, path, field in fields:
        probe = create_model("Probe", x=(field.annotation, field))
        kinds = kinds_of(field)
        bad = (1, "true", "yes") if bool in kinds else (True, "1") + ((1.0,) if int in kinds else ())
        for value in bad:
            try:
                probe.model_validate({"x": value})
                lax.append((model, path, value))
            except ValidationError as e:
                assert e.errors()[0]["type"] in ("int_type", "float_type", "bool_type"), (model, path, e.errors())
    assert lax == []


# -- bodies no parser should take: 422 naming the reason, on the small and the large path ------------------------
DIGITS = sys.get_int_max_str_digits()


def json_invalid(msg: str) -> dict:
    return {"detail": [{"type": "json_invalid", "loc": ["body"], "msg": f"JSON decode error: {msg}", "input": {}}]}


NESTED = json_invalid(f"the body is nested more than {MAX_NESTING} levels deep")
UNPARSABLE = [
    ('{"steps": 1' + "0" * (DIGITS + 100) + "}", json_invalid(f"the body holds an integer with more than {DIGITS} digits")),
    ("[" * 100_000, NESTED),
    ("[" * 100_000 + "]" * 100_000, NESTED),
    ('{"steps": 1, "x": ' + "[" * 900 + "]" * 900 + "}", NESTED),  # parsed, then echoed in the error: it recursed
    ('{"steps": ' + "[" * MAX_NESTING + "]" * MAX_NESTING + "}", NESTED),
    (b'{"steps": "\xff"}', json_invalid("the body is not UTF-8 text (invalid start byte at byte 11)")),
]


@pytest.mark.parametrize("large", [False, True], ids=["small", "large"])
@pytest.mark.parametrize("body,detail", UNPARSABLE, ids=["4400 digits", "open brackets", "closed brackets",
                                                         "deep extra field", "one level too deep", "not utf-8"])
def test_an_unparsable_body_is_a_422_naming_the_reason(limited, large, body, detail):
    c = limited(large_body_bytes=100 if large else 10**6)
    mid = create(c, SMALL)["id"]
    body = body if isinstance(body, bytes) else body.encode()
    r = c.post(f"/api/models/{mid}/train", content=body + b" " * 200,  # over 100 bytes: the large path's parser
               headers={"content-type": "application/json"})
    assert (r.status_code, r.json()) == (422, detail)
    assert c.get(f"/api/models/{mid}").json()["step"] == 0


@pytest.mark.parametrize("large", [False, True], ids=["small", "large"])
def test_nesting_up_to_the_limit_reaches_validation(limited, large):
    c = limited(large_body_bytes=100 if large else 10**6)
    mid = create(c, SMALL)["id"]
    deep = "[" * (MAX_NESTING - 1) + "]" * (MAX_NESTING - 1)
    r = c.post(f"/api/models/{mid}/train", content='{"steps": ' + deep + "}", headers={"content-type": "application/json"})
    assert r.status_code == 422 and [(e["loc"], e["msg"]) for e in r.json()["detail"]] == [(["body", "steps"], INT)]
    r = c.post(f"/api/models/{mid}/train", json={"steps": 2, "note": "[" * 500 + '"{'})  # brackets in a string
    assert r.status_code == 422 and [(e["loc"], e["msg"]) for e in r.json()["detail"]] == [
        (["body", "note"], "Extra inputs are not permitted")]


def test_a_million_levels_never_reach_a_parser(limited):
    """orjson 3.8 overflows the C stack on this (the process dies); the raw-bytes check refuses it first."""
    c = limited(large_body_bytes=100)
    r = c.post("/api/models", content="[" * 10**6 + "]" * 10**6, headers={"content-type": "application/json"})
    assert (r.status_code, r.json()) == (422, NESTED)


@pytest.mark.parametrize("body,depth", [
    (b"1", 0), (b"[]", 1), (b'{"a": [[1, 2], [3, 4]]}', 3), (b'["]]]]", [[{}]]]', 4), (b'"[[[\\"[["', 0),
    (b'["\\\\", [[1]]]', 3), (b'{"a": "\\u005b"}', 1), (b"[[[", 3),
])
def test_nesting_is_counted_on_the_bytes_outside_strings(body, depth):
    assert nesting(body) == depth


@pytest.mark.parametrize("path,raw", [("/{id}/train", '{"steps": 1' + "0" * 25 + "}"),
                                      ("/{id}/reset", '{"seed": -1' + "0" * 25 + "}"),
                                      ("", '{"data": {"samples": 123456789012345678901234}}')])
def test_integers_beyond_64_bits_get_the_same_answer_on_both_paths(limited, path, raw):
    """orjson (large bodies) would make them floats ("not an integer"); they stay integers, out of range."""
    answers = []
    for size in (10**6, 100):
        c = limited(large_body_bytes=size)
        mid = create(c, SMALL)["id"]
        answers.append(c.post("/api/models" + path.format(id=mid), content=raw + " " * 200,  # over 100 bytes
                              headers={"content-type": "application/json"}))
    assert answers[0].status_code == answers[1].status_code == 422
    assert answers[0].json() == answers[1].json()
    assert answers[0].json()["detail"][0]["msg"] != INT, answers[0].text


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 1 << 20])
def test_nesting_is_the_same_whatever_the_chunk(chunk):
    assert [_depth(code, chunk) for code in (b"[[[]]][[", b"]]][", b"{[{}]}[[[[]]]]", b"")] == [3, 0, 4, 0]


@pytest.mark.parametrize("length", [100, 10**7], ids=["small", "large"])
def test_a_client_that_leaves_while_sending_its_body_is_not_a_500(client, model, length):
    """Starlette raises ClientDisconnect from request.body(); BodyRoute answers 499 (nobody reads it), not 500."""
    path = f"/api/models/{model['id']}/train"
    messages = [{"type": "http.request", "body": b'{"st', "more_body": True}, {"type": "http.disconnect"}]
    started = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            started.append(message["status"])

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"", "server": ("test", 80),
             "client": ("10.0.0.1", 5000), "state": {},
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(length).encode()),
                         (b"authorization", f"Bearer {client.tokens[model['id']]}".encode())]}
    client.portal.call(client.app, scope, receive, send)
    assert started == [499]
    assert client.get(f"/api/models/{model['id']}").json()["step"] == 0


# -- matrix and vector entries: numbers only, on the small and the large-body path (app/api/body.py) ----------------
PAD = [[0.5, 0.5]] * 300  # clean rows first: the large path converts chunk by chunk, the bad entry comes last
ENTRIES = [
    # (method, path, body, loc, value)
    ("POST", MODEL + "/predict", {"X": [[True, 0.5]]}, ["body", "X", 0, 0], True),
    ("POST", MODEL + "/predict", {"X": [["0.5", 0.5]]}, ["body", "X", 0, 0], "0.5"),
    ("POST", MODEL + "/predict", {"X": PAD + [[0.5, False]]}, ["body", "X", 300, 1], False),
    ("POST", MODEL + "/gradients", {"X": [[0.5, 0.5]], "y": [["1"]]}, ["body", "y", 0, 0], "1"),
    ("POST", MODEL + "/gradients", {"X": PAD + [[True, 0.5]], "y": [[1]] * 301}, ["body", "X", 300, 0], True),
    ("POST", MODEL + "/gradcheck", {"X": [[0.5, 0.5]], "y": [[True]]}, ["body", "y", 0, 0], True),
    ("PUT", MODEL + "/parameters", {"layers": [{"W": [[True, 0.5]] + [[0.5, 0.5]] * 3, "b": [0] * 4}, {"W": [[0.5] * 4], "b": [0]}]},
     ["body", "layers", 0, "W", 0, 0], True),
    ("PUT", MODEL + "/parameters", {"layers": [{"W": [[0.5, 0.5]] * 4, "b": [0] * 4}, {"W": [[0.5] * 4], "b": ["0.5"]}]},
     ["body", "layers", 1, "b", 0], "0.5"),
    ("PUT", MODEL + "/parameters", {"layers": [{"W": [[0.5, 0.5]] * 4, "b": [0, 0, True, 0]}, {"W": [[0.5] * 4]}]},
     ["body", "layers", 0, "b", 2], True),
    ("PUT", "/api/class/hidden-test", {"X": [[0.5, True]], "y": [[1]]}, ["body", "X", 0, 1], True),
    ("PUT", "/api/class/hidden-test", {"X": [[0.5, 0.5]], "y": [["1"]]}, ["body", "y", 0, 0], "1"),
    ("POST", "/api/models", {"data": {"X": [[0, 0], [0, True]], "y": [[0], [1]]}}, ["body", "data", "X", 1, 1], True),
    ("POST", "/api/models", {"data": {"X": [[0, 0], [0, 1]], "y": [[0], ["1"]]}}, ["body", "data", "y", 1, 0], "1"),
    ("POST", "/api/models", {"data": {"X": PAD, "y": [[1]] * 300, "X_test": [[0.5, 0.5]], "y_test": [[False]]}},
     ["body", "data", "y_test", 0, 0], False),
]


@pytest.mark.parametrize("large", [False, True], ids=["small", "large"])
@pytest.mark.parametrize("method,path,body,loc,value", ENTRIES, ids=[f"{c[0]} {c[1]} {c[3]}" for c in ENTRIES])
def test_a_boolean_or_string_in_a_matrix_is_422_at_the_entry(limited, large, method, path, body, loc, value):
    c = limited(admin_token=ADMIN, large_body_bytes=100 if large else 10**7)
    mid = create(c, SMALL)["id"]
    before = c.get(f"/api/models/{mid}/parameters").json()
    headers = {"content-type": "application/json"}
    if path.startswith("/api/class"):
        headers["Authorization"] = f"Bearer {ADMIN}"
    r = c.request(method, path.format(id=mid), content=json.dumps(body) + " " * 200, headers=headers)  # > 100 bytes
    refused(r, loc, FLOAT, value)
    assert c.get(f"/api/models/{mid}/parameters").json() == before
    assert c.get("/api/class/leaderboard", headers={"Authorization": f"Bearer {ADMIN}"}).json()["hidden_rows"] is None


def test_integer_matrices_still_take_the_large_path(limited):
    """Integers are numbers: a large body of integer rows (and a true elsewhere in it) trains as a small one does."""
    c = limited(large_body_bytes=100)
    m = create(c, {**SMALL, "bias": True, "data": {"X": [[0, 1], [1, 0]] * 100, "y": [[1], [0]] * 100}})
    assert m["spec"]["data"]["n_train"] == 200
    assert c.post(f"/api/models/{m['id']}/predict", json={"X": [[1, 0]] * 50}).status_code == 200


# -- integers have an upper bound, so a huge one is a 422 at its own field -----------------------------------------
HUGE = 10**400
MAX = f"Input should be less than or equal to {MAX_INT}"
BOUNDED = [
    ("POST", "/api/models", {"batch_size": HUGE}, ["body", "batch_size"], MAX),
    ("POST", "/api/models", {"input_size": HUGE}, ["body", "input_size"], MAX),
    ("POST", "/api/models", {"layers": [{"units": HUGE}]}, ["body", "layers", 0, "units"], MAX),
    ("POST", "/api/models", {"batch_size": MAX_INT + 1}, ["body", "batch_size"], MAX),
    ("POST", "/api/models", {"data": {"samples": HUGE}}, ["body", "data", "samples"],
     "Input should be less than or equal to 100000"),
    ("PATCH", MODEL, {"batch_size": HUGE}, ["body", "batch_size"], MAX),
    ("POST", MODEL + "/fork", {"step": HUGE}, ["body", "step"], MAX),
    ("POST", MODEL + "/train", {"steps": HUGE}, ["body", "steps"], MAX),
    ("POST", MODEL + "/reset", {"seed": HUGE}, ["body", "seed"], f"Input should be less than or equal to {2**31 - 1}"),
    ("PUT", "/api/class/preset", {"link": "/?dataset=xor", "step_budget": HUGE}, ["body", "step_budget"],
     "Input should be less than or equal to 10000000"),
]


@pytest.mark.parametrize("method,path,body,loc,msg", BOUNDED, ids=[f"{c[0]} {c[1]} {c[3]}" for c in BOUNDED])
def test_a_huge_integer_is_422_at_its_field(admin_client, method, path, body, loc, msg):
    mid = create(admin_client, SMALL)["id"]
    value = next(iter(body.values())) if len(body) == 1 else body["step_budget"]
    value = value[0]["units"] if isinstance(value, list) else value
    value = value["samples"] if isinstance(value, dict) else value
    refused(send(admin_client, method, path, body, mid), loc, msg, value)
    m = admin_client.get(f"/api/models/{mid}").json()
    assert m["step"] == 0 and m["spec"]["batch_size"] == SMALL_BATCH


def test_every_integer_field_of_every_request_body_has_an_upper_bound():
    _, models = body_models()
    unbounded = []
    for model in models:
        for path, field in scalar_fields(model):
            if int in kinds_of(field) and bool not in kinds_of(field):
                probe = create_model("Probe", x=(field.annotation, field))
                try:
                    probe.model_validate({"x": HUGE})
                    unbounded.append((model.__name__, path))
                except ValidationError as e:
                    assert e.errors()[0]["type"] == "less_than_equal", (model.__name__, path, e.errors())
    assert unbounded == []


# -- booleans take true or false, never null -----------------------------------------------------------------------
NULLS = [
    ("POST", "/api/models", {"optimizer": {"name": "momentum", "nesterov": None}}, ["body", "optimizer", "nesterov"]),
    ("PATCH", MODEL, {"optimizer": {"name": "momentum", "nesterov": None}}, ["body", "optimizer", "nesterov"]),
    ("POST", "/api/models", {"data": {"csv": "a,b\n1,0\n2,1\n3,0\n4,1\n", "standardize": None}},
     ["body", "data", "standardize"]),
    ("POST", "/api/models", {"bias": None}, ["body", "bias"]),
    ("POST", "/api/datasets", {"csv": "a,b\n1,2\n", "standardize": None}, ["body", "standardize"]),
]


@pytest.mark.parametrize("method,path,body,loc", NULLS, ids=[f"{c[0]} {c[1]} {c[3]}" for c in NULLS])
def test_null_is_not_a_boolean(admin_client, method, path, body, loc):
    mid = create(admin_client, SMALL)["id"]
    refused(send(admin_client, method, path, body, mid), loc, BOOL, None)


def test_booleans_left_out_take_their_defaults(admin_client):
    m = create(admin_client, {**SMALL, "optimizer": {"name": "momentum"}})
    assert m["spec"]["optimizer"]["nesterov"] is False
    m = create(admin_client, {**SMALL, "optimizer": {"name": "momentum", "nesterov": True},
                              "data": {"csv": "a,b\n1,0\n2,1\n3,0\n4,1\n"}})
    assert m["spec"]["optimizer"]["nesterov"] is True and not m["spec"]["data"].get("standardize")
