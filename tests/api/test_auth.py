"""Ownership: every model has a token; only its token (or the instructor's) changes it.

POST /api/models answers an unguessable id and a token, once. Every call that changes a model
(train, PUT parameters, PATCH, reset, DELETE, the stream) without a token is a 401 and with
someone else's token a 403, with the exact details of docs/api.md, and a refused call changes
nothing. Reads need only the id, and no endpoint lists models to students.

The instructor's admin token (PLAYGROUND_ADMIN_TOKEN) also works as every model's owner token.
"""
from __future__ import annotations

import hashlib
import re

import pytest
from starlette.websockets import WebSocketDisconnect

from .utils import SMALL, client_for, create, make_app

MISSING = "this call changes the model: send its token as 'Authorization: Bearer <token>'"
WRONG = "the token does not match this model"
ADMIN = "instructor-secret-for-tests-0123456789"

# every call that changes a model: name -> (method, path after /api/models/{id}, body)
MUTATIONS = {
    "train": ("POST", "/train", {"steps": 7}),
    "put parameters": ("PUT", "/parameters", None),  # body: the current parameters + 0.25
    "patch": ("PATCH", "", {"optimizer": {"learning_rate": 0.5}, "batch_size": 3}),
    "reset": ("POST", "/reset", {"seed": 99}),
    "delete": ("DELETE", "", None),
}

# every read: (method, path after /api/models/{id}, body); all answer 200 with no token
READS = [
    ("GET", "", None),
    ("GET", "/parameters", None),
    ("GET", "/gradients", None),
    ("POST", "/gradients", {"X": [[0.1, -0.2]], "y": [[1]]}),
    ("GET", "/history", None),
    ("GET", "/trace?batch_size=4", None),
    ("GET", "/boundary?resolution=5", None),
    ("GET", "/data", None),
    ("POST", "/predict", {"X": [[0.1, -0.2], [0.3, 0.4]]}),
    ("POST", "/gradcheck", None),
    ("POST", "/check", {"X": [[0.1, -0.2]], "y": [[1]], "layers": [{"dW": [[0.0, 0.0]] * 4}]}),
    ("GET", "/trace?convention=columns", None),
    ("GET", "/derive/examples", None),
    ("POST", "/derive", {"convention": "rows", "equations": [{"target": "dW[i]", "expr": "delta[i].T @ z[i-1]"}]}),
]

# routes on one model that make a new model from it and leave it as it is (need only the id)
COPIES = {("POST", "/fork")}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def snapshot(client, mid: str) -> dict:
    """Everything a refused call must leave as it was."""
    return {"model": client.request("GET", f"/api/models/{mid}", auth_token=False).json(),
            "parameters": client.request("GET", f"/api/models/{mid}/parameters", auth_token=False).json(),
            "history": client.request("GET", f"/api/models/{mid}/history", auth_token=False).json()}


def call(client, mid: str, name: str, **kwargs):
    method, suffix, body = MUTATIONS[name]
    if name == "put parameters":
        params = client.get(f"/api/models/{mid}/parameters").json()
        body = {"layers": [{"W": [[w + 0.25 for w in row] for row in layer["W"]],
                            "b": [b + 0.25 for b in layer["b"]]} for layer in params["layers"]]}
    return client.request(method, f"/api/models/{mid}{suffix}", json=body, **kwargs)


@pytest.fixture
def trained(client) -> tuple[str, str]:
    """(id, token) of a model trained 11 steps, so reset and train both visibly change it."""
    r = client.post("/api/models", json=SMALL)
    assert r.status_code == 201, r.text
    mid, token = r.json()["id"], r.json()["token"]
    assert client.post(f"/api/models/{mid}/train", json={"steps": 11}).json()["step"] == 11
    return mid, token


# -- ids and tokens ------------------------------------------------------------------------------
def test_create_returns_a_long_token_and_an_id_with_128_random_bits(client):
    made = []
    for _ in range(40):
        r = client.request("POST", "/api/models", json=SMALL, auth_token=False)
        assert r.status_code == 201, r.text
        body = r.json()
        made.append((body["id"], body["token"]))
    ids, tokens = [m[0] for m in made], [m[1] for m in made]
    for mid, token in made:
        assert re.fullmatch(r"[0-9a-f]{32}", mid), mid  # hex: never starts with "-", so it is safe on a command line
        assert re.fullmatch(r"[0-9a-f]{64}", token), token
        assert token != mid and mid not in token
    assert len(set(ids)) == len(ids) and len(set(tokens)) == len(tokens)
    # 128 random bits: 16 bytes or more, and every one of the first 128 bit positions varies across the ids
    # (a counter, a timestamp or a short random part would leave bits constant; chance here: 128 * 2**-39)
    raw = [int(mid, 16) for mid in ids]
    all_or = all_and = raw[0]
    for x in raw[1:]:
        all_or, all_and = all_or | x, all_and & x
    constant = [i for i in range(128) if not (all_or >> i) & 1 or (all_and >> i) & 1]
    assert constant == [], f"id bits that never change: {constant}"


def test_the_token_is_shown_once_and_only_its_hash_is_stored(app, client):
    r = client.post("/api/models", json={**SMALL, "nickname": "ada"})
    mid, token = r.json()["id"], r.json()["token"]
    record = app.state.services.store.get(mid)
    assert record.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(record.status) and token.encode() not in record.state + record.history
    for url in (f"/api/models/{mid}", f"/api/models/{mid}/parameters", f"/api/models/{mid}/history"):
        text = client.get(url).text
        assert token not in text and "token" not in client.get(url).json()
    assert token not in client.post(f"/api/models/{mid}/train", json={"steps": 2}).text


# -- mutations -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MUTATIONS)
def test_mutation_without_a_token_is_401_and_changes_nothing(client, trained, name):
    mid, _ = trained
    before = snapshot(client, mid)
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer "},
                    {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Token abc"}):
        r = call(client, mid, name, auth_token=False, headers=headers)
        assert (r.status_code, r.json()) == (401, {"detail": MISSING}), (headers, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
    assert snapshot(client, mid) == before


@pytest.mark.parametrize("name", MUTATIONS)
def test_mutation_with_another_models_token_is_403_and_changes_nothing(client, trained, name):
    mid, own = trained
    other = client.post("/api/models", json=SMALL).json()["token"]
    before = snapshot(client, mid)
    for wrong in (other, own[:-1], own + "x", own.upper() if own.upper() != own else own.lower(),
                  hashlib.sha256(own.encode()).hexdigest(), "x" * 43):
        r = call(client, mid, name, headers=bearer(wrong))
        assert (r.status_code, r.json()) == (403, {"detail": WRONG}), (wrong, r.text)
    assert snapshot(client, mid) == before


@pytest.mark.parametrize("name", MUTATIONS)
def test_mutation_with_its_own_token_goes_through(client, trained, name):
    mid, token = trained
    before = snapshot(client, mid)
    r = call(client, mid, name, headers={"authorization": f"bearer {token}"})  # scheme is case-insensitive
    assert r.status_code in (200, 204), r.text
    if name == "delete":
        assert client.get(f"/api/models/{mid}").status_code == 404
        return
    after = snapshot(client, mid)
    assert after != before
    if name == "train":
        assert after["model"]["step"] == 18
    elif name == "reset":
        assert after["model"]["step"] == 0
    elif name == "patch":
        assert after["model"]["spec"]["optimizer"]["learning_rate"] == 0.5


@pytest.mark.parametrize("name", MUTATIONS)
def test_unknown_model_is_404_before_any_token_check(client, name):
    r = call(client, "NoSuchModel0123456789a", name, auth_token=False) if name != "put parameters" else \
        client.request("PUT", "/api/models/NoSuchModel0123456789a/parameters", json={"layers": []}, auth_token=False)
    assert (r.status_code, r.json()) == (404, {"detail": "model NoSuchModel0123456789a not found"})


def test_a_deleted_models_token_opens_nothing(client, trained):
    mid, token = trained
    other = client.post("/api/models", json=SMALL).json()["id"]
    assert client.delete(f"/api/models/{mid}").status_code == 204
    r = client.post(f"/api/models/{other}/train", json={"steps": 1}, headers=bearer(token))
    assert (r.status_code, r.json()) == (403, {"detail": WRONG})


# -- the stream ----------------------------------------------------------------------------------
def refused(client, url: str, detail: str, code: int, first: dict | None = None, **kwargs) -> None:
    with client.websocket_connect(url, auth_token=False, **kwargs) as ws:
        if first is not None:  # no token in the URL or header: the server waits for an auth message first
            ws.send_json(first)
        assert ws.receive_json() == {"type": "error", "detail": detail}
        with pytest.raises(WebSocketDisconnect) as e:
            ws.receive_json()
    assert e.value.code == code


def test_stream_without_a_token_sends_an_error_then_closes_4401(client, trained):
    mid, _ = trained
    before = snapshot(client, mid)
    play = {"action": "play"}
    refused(client, f"/api/models/{mid}/stream", MISSING, 4401, play)
    refused(client, f"/api/models/{mid}/stream?token=", MISSING, 4401, play)
    refused(client, f"/api/models/{mid}/stream", MISSING, 4401, play, headers={"Authorization": "Basic abc"})
    refused(client, f"/api/models/{mid}/stream", MISSING, 4401, {"action": "auth"})
    assert snapshot(client, mid) == before


def test_stream_with_a_wrong_token_sends_an_error_then_closes_4403(client, trained):
    mid, own = trained
    other = client.post("/api/models", json=SMALL).json()["token"]
    before = snapshot(client, mid)
    refused(client, f"/api/models/{mid}/stream?token={other}", WRONG, 4403)
    refused(client, f"/api/models/{mid}/stream?token={own}x", WRONG, 4403)
    refused(client, f"/api/models/{mid}/stream", WRONG, 4403, headers=bearer(other))
    assert snapshot(client, mid) == before


@pytest.mark.parametrize("how", ["query", "header"])
def test_stream_with_its_token_trains(client, trained, how):
    mid, token = trained
    url, headers = (f"/api/models/{mid}/stream?token={token}", {}) if how == "query" else \
        (f"/api/models/{mid}/stream", bearer(token))
    with client.websocket_connect(url, auth_token=False, headers=headers) as ws:
        ws.send_json({"action": "step"})
        f = ws.receive_json()
        assert (f["type"], f["step"]) == ("frame", 12)
    assert client.get(f"/api/models/{mid}").json()["step"] == 12


# -- reads ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("method,suffix,body", READS, ids=[f"{m} {s or '/'}" for m, s, _ in READS])
def test_reads_need_only_the_id(client, trained, method, suffix, body):
    mid, _ = trained
    before = snapshot(client, mid)
    r = client.request(method, f"/api/models/{mid}{suffix}", json=body, auth_token=False)
    assert r.status_code == 200, r.text
    assert snapshot(client, mid) == before


def model_operations(client) -> set[tuple[str, str]]:
    """(METHOD, suffix) of every HTTP operation on /api/models/{model_id}..., from the OpenAPI schema."""
    paths = client.get("/openapi.json").json()["paths"]
    prefix = "/api/models/{model_id}"
    return {(method.upper(), path[len(prefix):]) for path, ops in paths.items() if path.startswith(prefix)
            for method in ops if method in ("get", "post", "put", "patch", "delete")}


def test_every_route_on_a_model_is_classified(app, client):
    """A new route on /api/models/{model_id} must be added to MUTATIONS (token) or READS/COPIES here;
    every GET is checked by test_every_get_on_a_model_needs_no_token."""
    mutating = {(m, s) for m, s, _ in MUTATIONS.values()}
    reading = {(m, s.split("?")[0]) for m, s, _ in READS}
    ops = model_operations(client)
    assert mutating <= ops and reading <= ops
    unclassified = {op for op in ops if op[0] != "GET"} - mutating - reading - COPIES
    assert unclassified == set(), f"classify these routes in tests/api/test_auth.py: {sorted(unclassified)}"


def test_every_get_on_a_model_needs_no_token(client, trained):
    mid, _ = trained
    gets = sorted(s for m, s in model_operations(client) if m == "GET")
    assert len(gets) >= 8, gets
    before = snapshot(client, mid)
    for suffix in gets:
        r = client.request("GET", f"/api/models/{mid}{suffix}", auth_token=False)
        assert r.status_code == 200, (suffix, r.text)
    assert snapshot(client, mid) == before


def test_a_copy_needs_only_the_id_and_leaves_the_model_alone(client, trained):
    mid, _ = trained
    for method, suffix in COPIES & model_operations(client):
        before = snapshot(client, mid)
        r = client.request(method, f"/api/models/{mid}{suffix}", auth_token=False)
        assert r.status_code == 201, r.text
        assert r.json()["id"] != mid and len(r.json()["token"]) >= 32
        assert snapshot(client, mid) == before
        # the copy's token is not the original's
        r2 = client.post(f"/api/models/{mid}/train", json={"steps": 1}, headers=bearer(r.json()["token"]))
        assert (r2.status_code, r2.json()) == (403, {"detail": WRONG})


# -- nothing lists models to students ------------------------------------------------------------
def test_no_endpoint_lists_models_to_students(app, client, trained):
    mid, token = trained
    for headers in ({}, bearer(token)):
        for url in ("/api/models", "/api/models/", "/api/models?limit=10"):
            r = client.get(url, headers=headers)
            assert r.status_code in (404, 405), (url, r.status_code)
            assert mid not in r.text
    schema = client.get("/openapi.json").json()
    assert "get" not in schema["paths"]["/api/models"]
    # every GET without path parameters: only the instructor's /api/class/models may name models
    for path, ops in schema["paths"].items():
        if "get" not in ops or "{" in path:
            continue
        r = client.get(path, headers=bearer(token))
        if path == "/api/class/models":
            assert r.status_code == 404  # no admin token configured in this app
        assert mid not in r.text, path


def test_class_models_refuses_students(client):
    with client_for(make_app(admin_token=ADMIN)) as c:
        mid = create(c, SMALL)["id"]
        token = c.tokens[mid]
        r = c.get("/api/class/models")
        assert r.status_code == 401 and mid not in r.text
        r = c.get("/api/class/models", headers=bearer(token))
        assert r.status_code == 403 and mid not in r.text
        assert mid in c.get("/api/class/models", headers=bearer(ADMIN)).text


# -- the instructor's token ----------------------------------------------------------------------
def test_the_admin_token_works_as_every_models_owner_token():
    with client_for(make_app(admin_token=ADMIN)) as c:
        r = c.post("/api/models", json=SMALL)
        mid = r.json()["id"]
        admin = bearer(ADMIN)
        assert c.post(f"/api/models/{mid}/train", json={"steps": 3}, headers=admin).json()["step"] == 3
        assert c.patch(f"/api/models/{mid}", json={"batch_size": 4}, headers=admin).status_code == 200
        assert c.post(f"/api/models/{mid}/reset", headers=admin).json()["step"] == 0
        with c.websocket_connect(f"/api/models/{mid}/stream?token={ADMIN}", auth_token=False) as ws:
            ws.send_json({"action": "step"})
            assert ws.receive_json()["step"] == 1
        assert c.delete(f"/api/models/{mid}", headers=admin).status_code == 204
        # but only when it is the configured one
        mid = create(c, SMALL)["id"]
        r = c.post(f"/api/models/{mid}/train", json={"steps": 1}, headers=bearer(ADMIN + "x"))
        assert (r.status_code, r.json()) == (403, {"detail": WRONG})


def test_without_an_admin_token_configured_no_token_is_special(client, trained):
    mid, _ = trained
    for token in ("", " ", "None", "null"):
        r = client.post(f"/api/models/{mid}/train", json={"steps": 1}, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code in (401, 403), (token, r.text)
    assert client.get(f"/api/models/{mid}").json()["step"] == 11
