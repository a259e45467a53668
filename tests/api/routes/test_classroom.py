"""The instructor's view (/api/class/*): admin token rules, the class list, curves, the hidden-test
leaderboard, presets and freezing; and the hidden test set never reaching a student."""
from __future__ import annotations

import base64
import json
import struct
import threading

import numpy as np
import pytest
from starlette.websockets import WebSocketDisconnect

from app.engine import Model
from app.service.errors import Busy

from ..utils import SMALL, bool_refused, client_for, create, make_app

ADMIN = "instructor-secret-for-tests-0123456789"
MISSING = "send the instructor token as 'Authorization: Bearer <token>'"
WRONG = "wrong instructor token"
DISABLED = "the instructor view is disabled: set PLAYGROUND_ADMIN_TOKEN"
FROZEN = "training is frozen by the instructor"
DIVERGES = {"layers": [{"units": 1, "activation": "identity"}], "loss": "mse",
            "optimizer": {"name": "sgd", "learning_rate": 1e4}, "data": {"dataset": "plane", "samples": 40}}
PLANE = {"layers": [{"units": 3, "activation": "tanh"}, {"units": 1, "activation": "identity"}], "loss": "mse",
         "data": {"dataset": "plane", "samples": 40}}
SINE = {"layers": [{"units": 3}, {"units": 1}], "loss": "mse", "data": {"dataset": "sine", "samples": 30}}

# every instructor endpoint but the public status: (method, path, body)
ADMIN_ENDPOINTS = [
    ("GET", "/api/class/models", None),
    ("GET", "/api/class/curves", None),
    ("PUT", "/api/class/hidden-test", {"X": [[0.5, 0.5]], "y": [[1]]}),
    ("DELETE", "/api/class/hidden-test", None),
    ("GET", "/api/class/leaderboard", None),
    ("GET", "/api/class/gallery", None),
    ("PUT", "/api/class/preset", {"link": "/?dataset=xor"}),
    ("DELETE", "/api/class/preset", None),
    ("PUT", "/api/class/freeze", {"frozen": True}),
]
ENDPOINT_IDS = [f"{m} {p}" for m, p, _ in ADMIN_ENDPOINTS]
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
def klass():
    """A client of an app with the instructor view enabled."""
    with client_for(make_app(admin_token=ADMIN)) as c:
        yield c


def admin(client, method: str, url: str, body=None):
    return client.request(method, url, json=body, headers=ADMIN_HEADERS)


def status(client) -> dict:
    r = client.get("/api/class/status")
    assert r.status_code == 200, r.text
    return r.json()


# -- who may call ------------------------------------------------------------------------------
def test_every_class_route_is_listed_here(klass):
    paths = klass.get("/openapi.json").json()["paths"]
    ops = {(m.upper(), p) for p, o in paths.items() if p.startswith("/api/class/") for m in o}
    assert ops == {(m, p) for m, p, _ in ADMIN_ENDPOINTS} | {("GET", "/api/class/status")}


@pytest.mark.parametrize("method,path,body", ADMIN_ENDPOINTS, ids=ENDPOINT_IDS)
def test_disabled_without_an_admin_token_configured(client, method, path, body):
    for headers in ({}, {"Authorization": "Bearer anything"}, {"Authorization": "Bearer "}):
        r = client.request(method, path, json=body, headers=headers)
        assert (r.status_code, r.json()) == (404, {"detail": DISABLED}), r.text
    assert status(client) == {"enabled": False, "frozen": False, "preset": None, "assignment": None}


@pytest.mark.parametrize("method,path,body", ADMIN_ENDPOINTS, ids=ENDPOINT_IDS)
def test_refused_without_or_with_a_wrong_token_and_nothing_changes(klass, method, path, body):
    student = klass.post("/api/models", json=SMALL).json()
    for headers in ({}, {"Authorization": "Basic YWRtaW46YWRtaW4="}):
        r = klass.request(method, path, json=body, headers=headers)
        assert (r.status_code, r.json()) == (401, {"detail": MISSING}), r.text
        assert r.headers["www-authenticate"] == "Bearer"
    for wrong in (ADMIN + "x", ADMIN[:-1], ADMIN.upper(), student["token"]):
        r = klass.request(method, path, json=body, headers={"Authorization": f"Bearer {wrong}"})
        assert (r.status_code, r.json()) == (403, {"detail": WRONG}), r.text
        assert student["id"] not in r.text
    assert status(klass) == {"enabled": True, "frozen": False, "preset": None, "assignment": None}
    assert admin(klass, "GET", "/api/class/leaderboard").json()["hidden_rows"] is None  # no hidden set was stored
    assert admin(klass, method, path, body).status_code in (200, 204)  # the right token goes through


# -- the class list and curves -----------------------------------------------------------------
def test_models_list_shows_nickname_architecture_step_losses_and_divergence(klass):
    ada = create(klass, SMALL, nickname="ada")["id"]
    bob = create(klass, DIVERGES, nickname="bob")["id"]
    anon = create(klass, PLANE)["id"]
    klass.post(f"/api/models/{ada}/train", json={"steps": 30})
    klass.post(f"/api/models/{bob}/train", json={"steps": 200})
    r = admin(klass, "GET", "/api/class/models")
    assert r.status_code == 200
    rows = {row["id"]: row for row in r.json()}
    assert list(rows) == [ada, bob, anon]  # in creation order
    for mid, nickname, arch in ((ada, "ada", "2-4-1 tanh,sigmoid"), (bob, "bob", "2-1 identity"),
                                (anon, None, "2-3-1 tanh,identity")):
        m = klass.get(f"/api/models/{mid}").json()
        row = rows[mid]
        assert set(row) == {"id", "nickname", "dataset", "architecture", "step", "train_loss", "test_loss", "diverged",
                            "diverged_at", "updated_at"}
        assert row["dataset"] == m["spec"]["data"]["dataset"]
        assert (row["nickname"], row["architecture"]) == (nickname, arch)
        assert {k: row[k] for k in ("step", "train_loss", "test_loss", "diverged", "diverged_at")} == \
               {k: m[k] for k in ("step", "train_loss", "test_loss", "diverged", "diverged_at")}
    assert rows[ada]["step"] == 30 and rows[anon]["step"] == 0
    expected = Model(DIVERGES).train(200)
    assert (rows[bob]["diverged"], rows[bob]["diverged_at"]) == (True, expected.diverged_at)
    assert rows[ada]["diverged"] is False and rows[ada]["train_loss"] > 0


def test_models_list_sees_unsaved_stream_steps():
    with client_for(make_app(admin_token=ADMIN, save_interval=1000)) as c:
        mid = create(c, SMALL)["id"]
        with c.websocket_connect(f"/api/models/{mid}/stream") as ws:
            ws.send_json({"action": "play", "steps_per_frame": 3})
            f = [ws.receive_json() for _ in range(2)][-1]
            row = admin(c, "GET", "/api/class/models").json()[0]
            assert row["step"] >= f["step"] >= 6
            ws.send_json({"action": "pause"})


def test_curves_are_each_models_evaluated_losses(klass):
    a = create(klass, SMALL, nickname="ada")["id"]
    b = create(klass, PLANE)["id"]
    klass.post(f"/api/models/{a}/train", json={"steps": 60})
    curves = admin(klass, "GET", "/api/class/curves").json()
    assert [c["id"] for c in curves] == [a, b]
    for c in curves:
        h = klass.get(f"/api/models/{c['id']}/history").json()["eval"]
        assert set(c) == {"id", "nickname", "step", "train_loss", "test_loss"}
        assert (c["step"], c["train_loss"], c["test_loss"]) == (h["step"], h["train_loss"], h["test_loss"])
    assert curves[0]["nickname"] == "ada" and len(curves[0]["step"]) > 2 and curves[0]["step"][-1] <= 60
    small = admin(klass, "GET", "/api/class/curves?max_points=2").json()[0]
    assert 1 <= len(small["step"]) <= 2 and small["step"][0] == curves[0]["step"][0]
    assert len(small["step"]) == len(small["train_loss"]) == len(small["test_loss"])
    assert admin(klass, "GET", "/api/class/curves?max_points=1").status_code == 422


# -- hidden test set and leaderboard -------------------------------------------------------------
def bce(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)).sum(axis=1)))


RANKED_FIELDS = {"rank", "id", "nickname", "dataset", "architecture", "step", "hidden_loss", "hidden_accuracy",
                 "models"}
APART_FIELDS = {"id", "nickname", "dataset", "architecture", "step", "reason"}


def circle_hidden(n: int = 25, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.uniform(-5, 5, size=(n, 2))
    return X, (np.hypot(X[:, 0], X[:, 1]) < 3).astype(float)[:, None]


def test_without_a_preset_every_fitting_model_is_ranked_classification_by_accuracy(klass):
    X, y = circle_hidden()
    empty = admin(klass, "GET", "/api/class/leaderboard")
    assert (empty.status_code, empty.json()) == (200, {"assignment": None, "hidden_rows": None, "ranked": [], "apart": []})
    r = admin(klass, "PUT", "/api/class/hidden-test", {"X": X.tolist(), "y": y.tolist()})
    assert (r.status_code, r.json()) == (200, {"rows": 25, "columns": 2})
    specs = {"long": (SMALL, 300), "short": (SMALL, 5), "plane": (PLANE, 20)}
    ids = {name: create(klass, spec, nickname=name)["id"] for name, (spec, _) in specs.items()}
    for name, (_, steps) in specs.items():
        klass.post(f"/api/models/{ids[name]}/train", json={"steps": steps})
    sine = create(klass, SINE, nickname="sine")["id"]  # one raw input: does not fit the hidden set
    board = admin(klass, "GET", "/api/class/leaderboard").json()
    assert (board["assignment"], board["hidden_rows"]) == (None, 25)
    assert [row["rank"] for row in board["ranked"]] == [1, 2, 3]
    # deleting the hidden set: nothing ranked until another is uploaded
    r = admin(klass, "DELETE", "/api/class/hidden-test")
    assert (r.status_code, r.content) == (204, b"")
    assert admin(klass, "GET", "/api/class/leaderboard").json()["ranked"] == []
    admin(klass, "PUT", "/api/class/hidden-test", {"X": X.tolist(), "y": y.tolist()})
    assert board == admin(klass, "GET", "/api/class/leaderboard").json()
    assert board["apart"] == [{"id": sine, "nickname": "sine", "dataset": "sine", "architecture": "1-3-1 tanh,identity",
                               "step": 0, "reason": "has 1 inputs and 1 outputs; the hidden test set has 2 and 1"}]
    by_name = {row["nickname"]: row for row in board["ranked"]}
    for name, row in by_name.items():
        assert set(row) == RANKED_FIELDS
        spec, steps = specs[name]
        m = Model(spec)
        m.train(steps)
        p = m.predict(X)
        assert (row["step"], row["id"], row["models"]) == (steps, ids[name], 1)
        if spec is SMALL:
            assert row["dataset"] == "circle"
            assert row["hidden_loss"] == pytest.approx(bce(p, y), rel=1e-9)
            assert row["hidden_accuracy"] == float(((p[:, 0] > 0.5) == (y[:, 0] > 0.5)).mean())
        else:
            assert row["dataset"] == "plane"
            assert row["hidden_loss"] == pytest.approx(float(np.mean(((p - y) ** 2).sum(axis=1))), rel=1e-9)
            assert row["hidden_accuracy"] is None
    # classification first, by accuracy (then loss); the regression model, which has no accuracy, last
    cls = [by_name["long"], by_name["short"]]
    cls.sort(key=lambda r: (-r["hidden_accuracy"], r["hidden_loss"]))
    assert [row["nickname"] for row in board["ranked"]] == [cls[0]["nickname"], cls[1]["nickname"], "plane"]


CIRCLE = {**SMALL, "data": {"dataset": "circle", "samples": 60, "noise": 0.05}}
SPIRAL = {**SMALL, "data": {"dataset": "spiral", "samples": 60}}
XOR_GEN = {**SMALL, "data": {"dataset": "xor", "samples": 60}}


def test_leaderboard_ranks_the_assignment_one_row_per_student_and_lists_the_others_apart(klass):
    """The issue's case: a preset on circle; circle, spiral and XOR models under three nicknames, two
    models for one of them; a hidden circle set -> each circle student once with their best model."""
    r = admin(klass, "PUT", "/api/class/preset", {"link": "/?dataset=circle&f=x1,x2&h=4.tanh&loss=bce"})
    assignment = {"dataset": "circle", "features": ["x1", "x2"], "loss": None, "step_budget": None}
    assert (r.status_code, r.json()) == (200, {"enabled": True, "frozen": False,
                                               "preset": "/?dataset=circle&f=x1,x2&h=4.tanh&loss=bce",
                                               "assignment": assignment})
    dana_1 = create(klass, CIRCLE, nickname="Dana")["id"]          # the first try, hardly trained
    dana_2 = create(klass, CIRCLE, nickname=" dana ")["id"]        # the same student reopening the preset
    eli = create(klass, CIRCLE, nickname="Eli")["id"]
    sam = create(klass, SPIRAL, nickname="Sam")["id"]
    xi = create(klass, XOR_GEN, nickname="Xi")["id"]
    for mid, steps in ((dana_1, 1), (dana_2, 400), (eli, 40), (sam, 50), (xi, 50)):
        assert klass.post(f"/api/models/{mid}/train", json={"steps": steps}).status_code == 200
    X, y = circle_hidden(60, seed=5)
    admin(klass, "PUT", "/api/class/hidden-test", {"X": X.tolist(), "y": y.tolist()})

    board = admin(klass, "GET", "/api/class/leaderboard")
    assert board.status_code == 200
    board = board.json()
    assert (board["assignment"], board["hidden_rows"]) == (assignment, 60)
    ranked = board["ranked"]
    assert all(set(row) == RANKED_FIELDS for row in ranked)
    assert sorted(row["id"] for row in ranked) == sorted([dana_2, eli])   # each circle student once
    assert [row["rank"] for row in ranked] == [1, 2]
    assert {row["id"]: (row["dataset"], row["models"]) for row in ranked} == {dana_2: ("circle", 2), eli: ("circle", 1)}
    scores = {}
    for mid, steps in ((dana_1, 1), (dana_2, 400), (eli, 40)):
        m = Model(CIRCLE)
        m.train(steps)
        p = m.predict(X)
        scores[mid] = (float(((p[:, 0] > 0.5) == (y[:, 0] > 0.5)).mean()), bce(p, y))
    assert scores[dana_2] > scores[dana_1]   # so Dana's best model is the trained one (the test's premise)
    for row in ranked:
        assert (row["hidden_accuracy"], row["hidden_loss"]) == pytest.approx(scores[row["id"]], rel=1e-9)
    assert [row["id"] for row in ranked] == sorted([dana_2, eli], key=lambda i: (-scores[i][0], scores[i][1]))
    assert sorted(board["apart"], key=lambda r: r["nickname"]) == [
        {"id": sam, "nickname": "Sam", "dataset": "spiral", "architecture": "2-4-1 tanh,sigmoid", "step": 50,
         "reason": "trained on spiral"},
        {"id": xi, "nickname": "Xi", "dataset": "xor", "architecture": "2-4-1 tanh,sigmoid", "step": 50,
         "reason": "trained on xor"}]


def test_assignment_features_loss_and_step_budget(klass):
    link = "/?dataset=circle&f=x1,x2&loss=bce"
    r = admin(klass, "PUT", "/api/class/preset", {"link": link, "match_loss": True, "step_budget": 30})
    assert r.json()["assignment"] == {"dataset": "circle", "features": ["x1", "x2"], "loss": "bce", "step_budget": 30}
    assert status(klass)["assignment"] == r.json()["assignment"]   # the student page can show the task
    ok = create(klass, SMALL, nickname="ok")["id"]
    feats = create(klass, {**SMALL, "data": {"dataset": "circle", "samples": 40, "features": ["x1", "x2", "x1sq"]}},
                   nickname="feats")["id"]
    mse = create(klass, {**SMALL, "loss": "mse"}, nickname="mse")["id"]
    over = create(klass, SMALL, nickname="over")["id"]
    klass.post(f"/api/models/{over}/train", json={"steps": 31})
    klass.post(f"/api/models/{ok}/train", json={"steps": 30})
    X, y = circle_hidden()
    admin(klass, "PUT", "/api/class/hidden-test", {"X": X.tolist(), "y": y.tolist()})
    board = admin(klass, "GET", "/api/class/leaderboard").json()
    assert [row["id"] for row in board["ranked"]] == [ok]
    assert {row["id"]: row["reason"] for row in board["apart"]} == {
        feats: "uses features x1, x2, x1sq (the assignment: x1, x2)",
        mse: "uses loss mse (the assignment: bce)",
        over: "trained 31 steps, over the budget of 30"}


@pytest.mark.parametrize("value", ["yes", "on", "true", 1, 0, None])
def test_freeze_takes_only_true_or_false(klass, value):
    bool_refused(admin(klass, "PUT", "/api/class/freeze", {"frozen": value}), ["body", "frozen"], value)
    assert status(klass)["frozen"] is False


@pytest.mark.parametrize("value", ["yes", 1])
def test_preset_match_loss_takes_only_true_or_false(klass, value):
    bool_refused(admin(klass, "PUT", "/api/class/preset", {"link": "/?dataset=circle", "match_loss": value}),
                 ["body", "match_loss"], value)
    assert status(klass)["preset"] is None


@pytest.mark.parametrize("body,loc,msg", [
    ({"link": "/?dataset=moon"}, ["body", "link"], "dataset: unknown dataset 'moon'"),
    ({"link": "/?dataset=circle&f=x1,x9"}, ["body", "link"], "f: unknown feature 'x9'"),
])
def test_a_preset_naming_an_unknown_task_is_refused(klass, body, loc, msg):
    r = admin(klass, "PUT", "/api/class/preset", body)
    assert (r.status_code, r.json()) == (422, {"detail": [{"loc": loc, "msg": msg, "type": "value_error"}]})
    assert status(klass)["preset"] is None


# -- gallery ---------------------------------------------------------------------------------------
def test_gallery_returns_every_model_with_its_boundary_grid(klass):
    a = create(klass, SMALL, nickname="ada")["id"]
    b = create(klass, SPIRAL, nickname="bob")["id"]
    s = create(klass, SINE, nickname="sue")["id"]
    klass.post(f"/api/models/{a}/train", json={"steps": 20})
    r = admin(klass, "GET", "/api/class/gallery?resolution=12")
    assert r.status_code == 200
    body = r.json()
    assert (body["resolution"], body["total"], body["limit"]) == (12, 3, 60)
    tiles = {t["id"]: t for t in body["models"]}
    assert [t["nickname"] for t in body["models"]] == ["ada", "bob", "sue"]
    for mid in (a, b):
        t = tiles[mid]
        m = klass.get(f"/api/models/{mid}").json()
        assert (t["step"], t["test_loss"], t["dataset"], t["kind"]) == (
            m["step"], m["test_loss"], m["spec"]["data"]["dataset"], "classification")
        grid = np.asarray(t["output"])
        assert grid.shape == (12, 12) and np.all((grid > 0) & (grid < 1))
        # the same grid as the model's own boundary at that resolution
        own = klass.get(f"/api/models/{mid}/boundary?resolution=12").json()
        assert (t["x_range"], t["y_range"]) == (own["x_range"], own["y_range"])
        np.testing.assert_array_equal(grid, np.round(np.asarray(own["output"]), 3))   # 3 decimals are sent
        data = klass.get(f"/api/models/{mid}/data").json()["train"]
        assert len(t["points"]) == len(data["X"])
        assert t["points"][0] == [round(data["X"][0][0], 3), round(data["X"][0][1], 3), data["y"][0][0]]
    assert (tiles[s]["output"], tiles[s]["x_range"], tiles[s]["points"]) == (None, None, [])   # 1-D: no plane


def test_gallery_is_capped_and_refuses_a_resolution_over_the_limit():
    with client_for(make_app(admin_token=ADMIN, gallery_max_models=2, gallery_max_resolution=16,
                             gallery_max_points=5)) as c:
        ids = [create(c, SMALL, nickname=f"s{i}")["id"] for i in range(3)]
        c.post(f"/api/models/{ids[0]}/train", json={"steps": 1})   # the most recently updated
        body = admin(c, "GET", "/api/class/gallery?resolution=16").json()
        assert (body["total"], body["limit"]) == (3, 2)
        assert len(body["models"]) == 2 and ids[0] in {t["id"] for t in body["models"]}
        assert all(len(t["points"]) == 5 for t in body["models"])
        r = admin(c, "GET", "/api/class/gallery?resolution=17")
        assert (r.status_code, r.json()) == (422, {"detail": [{"loc": ["query", "resolution"],
                                                               "msg": "must be at most 16", "type": "value_error"}]})
        r = c.get("/api/class/gallery?resolution=16")
        assert (r.status_code, r.json()) == (401, {"detail": MISSING})
        r = c.get("/api/class/gallery", headers={"Authorization": "Bearer nope"})
        assert (r.status_code, r.json()) == (403, {"detail": WRONG})


@pytest.mark.parametrize("body,field", [({"X": [[1, 2], [3]], "y": [[1], [0]]}, "X"),
                                        ({"X": [[1, 2], [3, 4]], "y": [[1], [0, 1]]}, "y")])
def test_a_ragged_hidden_set_is_refused_at_its_field(klass, body, field):
    r = admin(klass, "PUT", "/api/class/hidden-test", body)
    assert r.status_code == 422, r.text
    assert [(e["loc"], e["msg"]) for e in r.json()["detail"]] == [
        (["body", field], "is ragged: its rows have different lengths")]


def test_hidden_test_set_must_be_consistent(klass):
    for body, loc in (({"X": [[1, 2], [3]], "y": [[1], [0]]}, ["body", "X"]),
                      ({"X": [[1, 2], [3, 4]], "y": [[1]]}, ["body", "y"]),
                      ({"X": [], "y": []}, None)):
        r = admin(klass, "PUT", "/api/class/hidden-test", body)
        assert r.status_code == 422, r.text
        if loc:
            assert r.json()["detail"][0]["loc"] == loc
    assert admin(klass, "GET", "/api/class/leaderboard").json()["hidden_rows"] is None


CIRCLE_TASK = "/?dataset=circle&f=x1,x2"


@pytest.mark.parametrize("link,body,loc,msg", [
    (CIRCLE_TASK, {"X": [[1, 2], [3, 4]], "y": [[7], [-3]]}, ["body", "y"],
     "row 0 has 7, but the assignment's dataset circle is a classification: targets must be in [0, 1]"),
    (CIRCLE_TASK, {"X": [[1, 2], [3, 4]], "y": [[0], [-0.5]]}, ["body", "y"],
     "row 1 has -0.5, but the assignment's dataset circle is a classification: targets must be in [0, 1]"),
    (CIRCLE_TASK, {"X": [[1, 2], [3, 4]], "y": [[1, 0], [1, 1]]}, ["body", "y"],
     "row 1 does not sum to 1: two columns must be one-hot (or probability) rows"),
    (CIRCLE_TASK, {"X": [[1, 2], [3, 4]], "y": [[1, 0, 0], [0, 1, 0]]}, ["body", "y"],
     "has 3 columns but the assignment's dataset circle has 2 classes: one 0/1 column or 2 one-hot columns"),
    (CIRCLE_TASK, {"X": [[1, 2, 3], [3, 4, 5]], "y": [[1], [0]]}, ["body", "X"],
     "has 3 columns but the assignment's dataset circle has 2 inputs"),
    ("/?dataset=sine", {"X": [[1, 2], [3, 4]], "y": [[1], [0]]}, ["body", "X"],
     "has 2 columns but the assignment's dataset sine has 1 inputs"),
    ("/?dataset=plane", {"X": [[1, 2], [3, 4]], "y": [[1, 2], [0, 3]]}, ["body", "y"],
     "has 2 columns but the assignment's dataset plane has 1 target"),
])
def test_a_hidden_set_the_assignment_cannot_have_is_refused(klass, link, body, loc, msg):
    assert admin(klass, "PUT", "/api/class/preset", {"link": link}).status_code == 200
    r = admin(klass, "PUT", "/api/class/hidden-test", body)
    assert (r.status_code, r.json()) == (422, {"detail": [{"loc": loc, "msg": msg, "type": "value_error"}]})
    assert admin(klass, "GET", "/api/class/leaderboard").json()["hidden_rows"] is None


CSV = "x1,x2,label\n0.1,0.2,red\n0.5,-1,blue\n0.3,0.3,red\n-0.2,0.8,blue\n"


@pytest.mark.parametrize("body,loc,msg", [
    ({"X": [[1, 2, 3]], "y": [[1, 0]]}, ["body", "X"],
     "has 3 columns but the assignment's dataset (csv {did}) has 2 input columns"),
    ({"X": [[1, 2]], "y": [[1]]}, ["body", "y"],
     "has 1 columns but the assignment's dataset (csv {did}) has 2 one-hot columns, one per class"),
    ({"X": [[1, 2]], "y": [[7, -6]]}, ["body", "y"],
     "must hold one-hot rows (values in [0, 1] that sum to 1): the assignment's dataset (csv {did}) has the "
     "classes blue, red"),
])
def test_a_hidden_set_an_uploaded_assignment_cannot_have_is_refused(klass, body, loc, msg):
    did = klass.post("/api/datasets", json={"csv": CSV}).json()["id"]
    assert admin(klass, "PUT", "/api/class/preset", {"link": f"/?did={did}"}).status_code == 200
    r = admin(klass, "PUT", "/api/class/hidden-test", body)
    assert (r.status_code, r.json()) == (422, {"detail": [{"loc": loc, "msg": msg.format(did=did),
                                                           "type": "value_error"}]})
    r = admin(klass, "PUT", "/api/class/hidden-test", {"X": [[1, 2]], "y": [[0, 1]]})
    assert (r.status_code, r.json()) == (200, {"rows": 1, "columns": 2})


def test_valid_hidden_sets_for_the_assignment_are_accepted(klass):
    admin(klass, "PUT", "/api/class/preset", {"link": CIRCLE_TASK})
    for y in ([[1], [0]], [[1, 0], [0, 1]], [[0.25], [1]]):
        r = admin(klass, "PUT", "/api/class/hidden-test", {"X": [[1, 2], [3, 4]], "y": y})
        assert (r.status_code, r.json()) == (200, {"rows": 2, "columns": 2})


def test_a_diverged_model_is_listed_apart_never_ranked(klass):
    admin(klass, "PUT", "/api/class/preset", {"link": "/?dataset=plane&f=x1,x2"})
    good = create(klass, PLANE, nickname="ada")["id"]
    bad = create(klass, DIVERGES, nickname="bob")["id"]
    klass.post(f"/api/models/{good}/train", json={"steps": 20})
    klass.post(f"/api/models/{bad}/train", json={"steps": 200})
    bad_model = klass.get(f"/api/models/{bad}").json()
    diverged_at = bad_model["diverged_at"]
    assert diverged_at is not None  # the premise
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (20, 2))
    assert admin(klass, "PUT", "/api/class/hidden-test", {"X": X.tolist(), "y": X[:, :1].tolist()}).status_code == 200
    board = admin(klass, "GET", "/api/class/leaderboard").json()
    assert [row["id"] for row in board["ranked"]] == [good]
    assert board["apart"] == [{"id": bad, "nickname": "bob", "dataset": "plane", "architecture": "2-1 identity",
                               "step": bad_model["step"], "reason": f"diverged at step {diverged_at}"}]


def test_without_an_assignment_a_loss_that_cannot_take_the_hidden_targets_is_listed_apart(klass):
    """y = 7 under bce scores -inf-like losses; such a model must not be ranked first."""
    bce_model = create(klass, SMALL, nickname="ada")["id"]
    mse_model = create(klass, PLANE, nickname="bob")["id"]
    r = admin(klass, "PUT", "/api/class/hidden-test", {"X": [[1, 2], [3, 4]], "y": [[7], [-3]]})
    assert r.status_code == 200
    board = admin(klass, "GET", "/api/class/leaderboard").json()
    assert [row["id"] for row in board["ranked"]] == [mse_model]
    assert board["apart"] == [{"id": bce_model, "nickname": "ada", "dataset": "circle",
                               "architecture": "2-4-1 tanh,sigmoid", "step": 0,
                               "reason": "its loss cannot score the hidden test set: bce needs targets in [0, 1]; "
                                         "use mse for regression data"}]


# hidden values no model, page or random float could print by chance: a decimal point anchors each
NEEDLES = ["123.456789", "98.7654321", "4242.4242", "31415.9265"]
HIDDEN_X = [[123.456789, -98.7654321], [4242.4242, 0.5], [-123.456789, 98.7654321]]
HIDDEN_Y = [[31415.9265], [-31415.9265], [31415.9265]]


def assert_no_hidden_values(where: str, content: bytes) -> None:
    text = content.decode("latin-1")
    for needle in NEEDLES:
        assert needle not in text, f"{where} shows the hidden value {needle}"
        for packed in (struct.pack("<d", float(needle)), struct.pack("<f", float(needle))):
            assert packed not in content, f"{where} carries the hidden value {needle} in binary"


def student_bodies(mid: str, client) -> dict:
    """A valid body for each student operation that takes one (anything else is called with none)."""
    export = client.get(f"/api/models/{mid}/export").content if "export" in str(client.app.openapi()) else b"{}"
    return {
        ("POST", "/api/models"): {**SMALL, "nickname": "eve"},
        ("POST", "/api/models/{model_id}/train"): {"steps": 3},
        ("PUT", "/api/models/{model_id}/parameters"): client.get(f"/api/models/{mid}/parameters").json(),
        ("PATCH", "/api/models/{model_id}"): {"optimizer": {"learning_rate": 0.02}},
        ("POST", "/api/models/{model_id}/gradients"): {"X": [[0.1, 0.2]], "y": [[1]]},
        ("POST", "/api/models/{model_id}/predict"): {"X": [[0.1, 0.2]]},
        ("POST", "/api/models/{model_id}/gradcheck"): {},
        ("POST", "/api/models/{model_id}/check"): {"X": [[0.1, 0.2]], "y": [[1]], "layers": [{}]},
        ("POST", "/api/models/import"): json.loads(export or b"{}"),
        ("POST", "/api/datasets"): {"csv": "a,b,c\n0.1,0.2,1\n0.3,0.4,0\n0.5,0.1,1\n0.2,0.9,0\n"},
        ("POST", "/api/models/{model_id}/fork"): {},
    }


def test_the_hidden_test_set_never_reaches_a_student(klass):
    # regression models: the hidden targets (+-31415.9265) are no targets for bce, whose models are listed apart
    a = create(klass, {**PLANE, "seed": 1}, nickname="ada")["id"]
    b = create(klass, PLANE, nickname="bob")["id"]
    klass.post(f"/api/models/{a}/train", json={"steps": 20})
    r = admin(klass, "PUT", "/api/class/hidden-test", {"X": HIDDEN_X, "y": HIDDEN_Y})
    assert r.json() == {"rows": 3, "columns": 2}
    assert_no_hidden_values("PUT /api/class/hidden-test", r.content)
    # the server has run the hidden rows through both models (leaderboard) before any student call
    board = admin(klass, "GET", "/api/class/leaderboard")
    assert len(board.json()["ranked"]) == 2
    for where in ("/api/class/leaderboard", "/api/class/models", "/api/class/curves", "/api/class/gallery"):
        r = admin(klass, "GET", where)
        assert r.status_code == 200
        assert_no_hidden_values(where, r.content)  # only aggregate scores
    assert all(set(row) == RANKED_FIELDS for row in board.json()["ranked"])

    calls = 0
    for mid in (a, b):
        schema = klass.get("/openapi.json").json()
        bodies = student_bodies(mid, klass)
        for path, ops in schema["paths"].items():
            if path.startswith("/api/class/") and path != "/api/class/status":
                continue
            for method in ops:
                if method not in ("get", "post", "put", "patch"):
                    continue
                url = path.replace("{model_id}", mid)
                if "boundary" in path:
                    url += "?resolution=10"
                for suffix in ("", "?format=npz", "?format=numpy") if path.endswith("/export") else ("",):
                    r = klass.request(method.upper(), url + suffix, json=bodies.get((method.upper(), path)))
                    assert r.status_code < 500
                    assert_no_hidden_values(f"{method.upper()} {url + suffix}", r.content)
                    calls += 1
        with klass.websocket_connect(f"/api/models/{mid}/stream") as ws:
            ws.send_json({"action": "step"})
            ws.send_json({"action": "play", "steps_per_frame": 2})
            frames = [ws.receive_text() for _ in range(4)]
            ws.send_json({"action": "pause"})
            while json.loads(frame := ws.receive_text())["playing"]:
                frames.append(frame)
            for f in frames + [frame]:
                assert_no_hidden_values("the stream", f.encode())
    assert calls >= 2 * 15, calls
    # a spec cannot name the stored hidden set as its data, whatever the key spelling
    for data in ({"dataset_id": "class.hidden_test"}, {"dataset_id": "../class.hidden_test"},
                 {"dataset_id": "hidden_test"}, {"dataset": "hidden_test"}):
        r = klass.post("/api/models", json={**SMALL, "data": data})
        assert r.status_code in (404, 422), r.text
        assert_no_hidden_values(f"POST /api/models with {data}", r.content)
    for url in ("/", "/index.html", "/class", "/docs", "/redoc", "/openapi.json", "/api/catalog", "/api/health",
                "/api/class/status"):
        r = klass.get(url)
        assert r.status_code == 200, url
        assert_no_hidden_values(url, r.content)


# -- presets ---------------------------------------------------------------------------------------
def test_preset_put_shows_in_the_public_status_and_delete_clears_it(klass):
    link = "/?dataset=spiral&hidden=8,8&lr=0.03"
    r = admin(klass, "PUT", "/api/class/preset", {"link": link})
    task = {"dataset": "spiral", "features": ["x1", "x2"], "loss": None, "step_budget": None}
    assert r.json() == {"enabled": True, "frozen": False, "preset": link, "assignment": task}
    assert status(klass) == {"enabled": True, "frozen": False, "preset": link, "assignment": task}  # no token needed
    r = admin(klass, "DELETE", "/api/class/preset")
    assert (r.status_code, r.content) == (204, b"")
    assert status(klass)["preset"] is None


@pytest.mark.parametrize("link", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)",
                                  "", "?dataset=xor", "/" + "a" * 4000])
def test_preset_must_be_a_page_relative_link(klass, link):
    r = admin(klass, "PUT", "/api/class/preset", {"link": link})
    assert r.status_code == 422, r.text
    assert status(klass)["preset"] is None


# -- freeze ----------------------------------------------------------------------------------------
def test_freeze_stops_training_everywhere_and_unfreeze_restores_it(klass):
    mid = create(klass, SMALL)["id"]
    klass.post(f"/api/models/{mid}/train", json={"steps": 4})
    r = admin(klass, "PUT", "/api/class/freeze", {"frozen": True})
    assert r.json() == {"enabled": True, "frozen": True, "preset": None, "assignment": None}
    assert status(klass)["frozen"] is True
    r = klass.post(f"/api/models/{mid}/train", json={"steps": 5})
    assert (r.status_code, r.json()) == (423, {"detail": FROZEN})
    with klass.websocket_connect(f"/api/models/{mid}/stream") as ws:
        for action in ("play", "step"):
            ws.send_json({"action": action})
            assert ws.receive_json() == {"type": "error", "status": 423, "detail": FROZEN}
        ws.send_json({"action": "pause"})  # a pause still answers with the (unchanged) frame
        f = ws.receive_json()
        assert (f["type"], f["step"], f["playing"]) == ("frame", 4, False)
    # reads and the other changes keep working; nothing trained
    assert klass.get(f"/api/models/{mid}").json()["step"] == 4
    assert klass.get(f"/api/models/{mid}/gradients").status_code == 200
    assert klass.patch(f"/api/models/{mid}", json={"batch_size": 5}).status_code == 200

    r = admin(klass, "PUT", "/api/class/freeze", {"frozen": False})
    assert r.json()["frozen"] is False and status(klass)["frozen"] is False
    assert klass.post(f"/api/models/{mid}/train", json={"steps": 5}).json()["step"] == 9
    with klass.websocket_connect(f"/api/models/{mid}/stream") as ws:
        ws.send_json({"action": "play", "steps_per_frame": 2})
        assert ws.receive_json()["step"] == 11
        ws.send_json({"action": "pause"})


def test_freeze_stops_a_stream_that_is_playing(klass):
    mid = create(klass, SMALL)["id"]
    with klass.websocket_connect(f"/api/models/{mid}/stream") as ws:
        ws.send_json({"action": "play", "steps_per_frame": 1})
        assert ws.receive_json()["playing"] is True
        admin(klass, "PUT", "/api/class/freeze", {"frozen": True})
        while (msg := ws.receive_json())["type"] == "frame":
            assert msg["playing"] is True
        assert msg == {"type": "error", "status": 423, "detail": FROZEN}
        stopped = ws.receive_json()
        assert (stopped["type"], stopped["playing"]) == ("frame", False)
        ws.send_json({"action": "pause"})
        assert ws.receive_json()["step"] == stopped["step"]  # nothing trained after the freeze was seen
    assert klass.get(f"/api/models/{mid}").json()["step"] == stopped["step"]


def test_frozen_refusal_comes_after_the_token_check(klass):
    mid = create(klass, SMALL)["id"]
    admin(klass, "PUT", "/api/class/freeze", {"frozen": True})
    r = klass.request("POST", f"/api/models/{mid}/train", json={"steps": 1}, auth_token=False)
    assert r.status_code == 401
    with klass.websocket_connect(f"/api/models/{mid}/stream", auth_token=False) as ws:
        assert ws.receive_json()["type"] == "error"
        with pytest.raises(WebSocketDisconnect) as e:
            ws.receive_json()
    assert e.value.code == 4401


# -- the instructor's views never wait on one student's lock ---------------------------------------
class HeldLock:
    """A model's store lock held by another thread (as a student's long call holds it) until release()."""

    def __init__(self, store, model_id: str):
        self.taken, self.done = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._hold, args=(store, model_id), daemon=True)
        self.thread.start()
        assert self.taken.wait(10)

    def _hold(self, store, model_id):
        with store.lock(model_id, timeout=10):
            self.taken.set()
            self.done.wait(30)

    def release(self):
        self.done.set()
        self.thread.join(10)


def test_the_instructors_views_answer_while_a_model_is_locked_with_its_last_saved_state():
    with client_for(make_app(admin_token=ADMIN, lock_timeout=0.2)) as c:
        free = create(c, SMALL, nickname="ada")["id"]
        busy = create(c, SMALL, nickname="bob", seed=4)["id"]
        c.post(f"/api/models/{busy}/train", json={"steps": 30})
        X, y = circle_hidden()
        assert admin(c, "PUT", "/api/class/hidden-test", {"X": X.tolist(), "y": y.tolist()}).status_code == 200
        before = {path: admin(c, "GET", path).json()
                  for path in ("/api/class/leaderboard", "/api/class/gallery", "/api/class/curves")}
        held = HeldLock(c.app.state.services.store, busy)
        try:
            with pytest.raises(Busy) as e:  # the lock is really held: a student's own call gets the 503
                with c.app.state.services.models.use(busy):
                    pass
            assert str(e.value) == f"model {busy} is busy with another call; try again shortly"
            during = {}
            for path in before:
                r = admin(c, "GET", path)
                assert r.status_code == 200, r.text
                during[path] = r.json()
        finally:
            held.release()
        evals = c.get(f"/api/models/{busy}/history").json()["eval"]["step"]
    assert during == before  # the busy model is in all three, as last saved
    board = during["/api/class/leaderboard"]
    assert {row["id"] for row in board["ranked"]} == {free, busy} and board["apart"] == []
    assert {t["id"]: t["step"] for t in during["/api/class/gallery"]["models"]} == {free: 0, busy: 30}
    assert [(k["id"], k["step"]) for k in during["/api/class/curves"]] == [(free, []), (busy, evals)]
    assert evals and evals[-1] <= 30


def test_the_stream_the_gallery_and_get_boundary_give_the_same_grid(klass):
    mid = create(klass, SMALL)["id"]
    klass.post(f"/api/models/{mid}/train", json={"steps": 25})
    with klass.websocket_connect(f"/api/models/{mid}/stream") as ws:
        ws.send_json({"action": "step"})
        frame = ws.receive_json()
    b = frame["boundary"]
    R = b["resolution"]
    own = klass.get(f"/api/models/{mid}/boundary?resolution={R}").json()
    (tile,) = admin(klass, "GET", f"/api/class/gallery?resolution={R}").json()["models"]
    assert frame["step"] == own_step(klass, mid) == tile["step"]
    assert b["x_range"] == own["x_range"] == tile["x_range"] and b["y_range"] == own["y_range"] == tile["y_range"]
    exact = np.asarray(own["output"])
    assert exact.shape == (R, R) == np.asarray(tile["output"]).shape
    np.testing.assert_array_equal(tile["output"], np.round(exact, 3))  # the gallery sends 3 decimals
    g = b["output"]  # 8-bit levels of [lo, hi]: within half a level
    levels = np.frombuffer(base64.b64decode(g["u8"]), np.uint8).reshape(g["shape"])
    assert (g["lo"], g["hi"]) == (exact.min(), exact.max())
    np.testing.assert_allclose(g["lo"] + (g["hi"] - g["lo"]) * levels / 255, exact, rtol=0,
                               atol=(g["hi"] - g["lo"]) / 510 + 1e-12)


def own_step(client, mid: str) -> int:
    return client.get(f"/api/models/{mid}").json()["step"]
