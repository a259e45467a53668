"""POST /api/models/{id}/derive is bounded like train and gradcheck: the equations' values and work have a
bound (a 422 naming the equation and the setting, from the shapes before anything is made), it stops when
its client leaves (499), and it runs on a copy outside the model's lock, so the owner's training and the
instructor's leaderboard, gallery and curves answer while it runs."""
from __future__ import annotations

import threading
import tracemalloc

import numpy as np

from app.engine.bounds import STEP_COST

from ..utils import call_then_leave, client_for, create, make_app, unprocessable

CHAIN = "(" + " @ ".join(["W[2]"] * 16) + ")"  # 111 characters: 15 products of W_2 with itself
ADMIN = "instructor-secret-for-tests-0123456789"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}


def wide(*hidden: int) -> dict:
    """A 2-...-1 net on the circle data (bce), the hidden layers as given."""
    return {"layers": [{"units": n, "activation": "tanh"} for n in hidden] + [{"units": 1, "activation": "sigmoid"}],
            "loss": "bce", "data": {"dataset": "circle", "samples": 300}}


def rows(n: int) -> dict:
    rng = np.random.default_rng(0)
    return {"X": rng.normal(size=(n, 2)).round(3).tolist(), "y": (rng.random((n, 1)) < 0.5).astype(int).tolist()}


def post(client, mid: str, equations: list[dict], convention: str, **batch):
    return client.post(f"/api/models/{mid}/derive", json={"convention": convention, **batch, "equations": equations})


def traced(fn):
    tracemalloc.start()
    try:
        out = fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return out, peak


def test_the_bounds_are_settings_the_catalog_reports(limited):
    client = limited(derive_max_bytes=12345, derive_max_cost=67890)
    limits = client.get("/api/catalog").json()["limits"]
    assert (limits["derive_max_bytes"], limits["derive_max_cost"]) == (12345, 67890)


def test_outer_of_a_wide_layer_with_itself_over_256_rows_is_refused_before_it_is_made(client):
    mid = create(client, wide(1024))["id"]
    r, peak = traced(lambda: post(client, mid, [{"target": "delta[L]", "expr": "outer(z[1], z[1])"}], "columns",
                                  **rows(256)))
    assert r.status_code == 200, r.text
    assert r.json()["first_error"] == {"layer": 2, "target": "delta[2]", "message": (
        "layer 2, delta[2] = outer(z[1], z[1]): outer(z[1], z[1]) would have 268435456 entries (256 samples of "
        "(1024, 1024)), more than any step of this backward pass needs (2097152)")}
    assert peak < 256 * 1024 * 1024 * 8 / 50  # the would-be value is 2 GiB


def test_a_weight_matrix_as_every_delta_is_not_copied_for_each_row(client):
    mid = create(client, wide(512, 512))["id"]
    r, peak = traced(lambda: post(client, mid, [{"target": "delta[i]", "expr": "W[2]"}], "columns", **rows(256)))
    assert r.status_code == 200, r.text
    shapes = [s["shape"] for layer in r.json()["layers"] for s in layer["steps"]]
    assert shapes == [[512, 512]] * 3
    assert peak < 256 * 512 * 512 * 8 / 10  # 256 copies of W_2 would be 0.5 GiB per layer


def test_the_111_character_chain_is_a_422_at_the_cpu_budget(client):
    mid = create(client, wide(1024, 1024))["id"]
    eqs = [{"target": "delta[L]", "expr": "(y_hat - y) / B"}, {"target": "delta[i]", "expr": CHAIN}]
    r = post(client, mid, eqs, "rows")  # the default batch: 32 training rows
    # delta[3]: y_hat, y, their difference and B (32 entries each), 5 steps; then W[2], W[2], a product, W[2], ...
    needed = 10 * STEP_COST + 2 * 32 + 2 * 1024 ** 3
    unprocessable(r, ["body", "equations", 1, "expr"], (
        f"layer 2, delta[2] = {CHAIN}: W[2] @ W[2] @ W[2] would take this derivation to {needed} operations "
        f"(multiply-adds and entries); the limit is 2000000000 (PLAYGROUND_DERIVE_MAX_COST)"))


def test_values_held_at_once_past_the_bytes_bound_are_a_422(limited):
    client = limited(derive_max_bytes=5_000_000)
    mid = create(client, wide(1024))["id"]
    nested = "(z[1] * 2) + ((z[1] * 2) + ((z[1] * 2) + (z[1] * 2)))"  # one (256, 1024) per level: 2 MiB
    eqs = [{"target": "delta[L]", "expr": "(y_hat - y) / B"}, {"target": "delta[i]", "expr": nested}]
    r = post(client, mid, eqs, "rows", **rows(256))
    needed = 256 * 8 + 3 * 256 * 1024 * 8  # delta[2], kept, and three levels of the sum
    unprocessable(r, ["body", "equations", 1, "expr"], (
        f"layer 1, delta[1] = {nested}: z[1] * 2 would take this derivation to {needed} bytes of values at once; "
        f"the limit is 5000000 (PLAYGROUND_DERIVE_MAX_BYTES)"))


def test_a_derive_stops_when_its_client_leaves(monkeypatch):
    """A chain of 14 products (15 times W_2), then a shape error against f'(a): the repair search re-runs the
    chain about 45 times, minutes of work under a budget this large. The client leaves after half a second;
    the derivation stops at its next step and the call ends with 499."""
    from app.api.routes import derive as route

    asked: list[bool] = []  # each answer the derivation got to "has the client left?"
    real = route.run_derive

    def derive_watched(net, X, y, equations, convention, bounds, cancelled):
        return real(net, X, y, equations, convention, bounds, lambda: asked.append(cancelled()) or asked[-1])

    monkeypatch.setattr(route, "run_derive", derive_watched)
    app = make_app(derive_max_cost=10 ** 15)
    with client_for(app) as client:
        mid = create(client, wide(1024, 1024))["id"]
    chain = "(" + " @ ".join(["W[2]"] * 15) + ") * fprime(a[i])"
    eqs = [{"target": "delta[L]", "expr": "(y_hat - y) / B"}, {"target": "delta[i]", "expr": chain}]
    sent: list = []
    call = threading.Thread(target=lambda: sent.extend(call_then_leave(
        app, "POST", f"/api/models/{mid}/derive", {"convention": "rows", "equations": eqs})), daemon=True)
    call.start()
    call.join(timeout=300)  # a guard against a derive that never stops, not a measure of how soon it does
    assert not call.is_alive(), "the derive went on after its client left"
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 499, sent
    assert len(asked) > 1 and asked.index(True) == len(asked) - 1  # it stopped the first time it was told


def test_a_derive_leaves_the_owner_and_the_instructor_answered(monkeypatch):
    """While a derive computes, the model's lock is free: the owner's train call and the instructor's
    leaderboard, gallery and curves (which read every model) all answer 200, with a lock wait this short
    that any wait for the derive would be a 503."""
    from app.api.routes import derive as route

    computing, done = threading.Event(), threading.Event()
    real = route.run_derive

    def derive_when_told(*args, **kwargs):  # the real derivation, held open until the views have answered
        computing.set()
        assert done.wait(timeout=60)
        return real(*args, **kwargs)

    monkeypatch.setattr(route, "run_derive", derive_when_told)
    with client_for(make_app(admin_token=ADMIN, lock_timeout=0.5)) as client:
        made = client.post("/api/models", json=wide(8)).json()
        mid, auth = made["id"], {"Authorization": f"Bearer {made['token']}"}
        hidden = rows(20)
        assert client.put("/api/class/hidden-test", json=hidden, headers=ADMIN_HEADERS).status_code == 200
        answers: list = []
        student = threading.Thread(target=lambda: answers.append(post(client, mid, [
            {"target": "delta[L]", "expr": "(y_hat - y) / B"}, {"target": "dW[i]", "expr": "delta[i].T @ z[i-1]"}],
            "rows")))
        student.start()
        try:
            assert computing.wait(timeout=60)
            views = {path: client.get(f"/api/class/{path}", headers=ADMIN_HEADERS) for path in
                     ("leaderboard", "gallery", "curves")}
            trained = client.post(f"/api/models/{mid}/train", json={"steps": 2}, headers=auth)
        finally:
            done.set()
            student.join(timeout=60)
        assert {path: r.status_code for path, r in views.items()} == {"leaderboard": 200, "gallery": 200, "curves": 200}
        assert [row["id"] for row in views["leaderboard"].json()["ranked"]] == [mid]
        assert [tile["id"] for tile in views["gallery"].json()["models"]] == [mid]
        assert trained.status_code == 200, trained.text
        assert answers[0].status_code == 200, answers[0].text
        assert answers[0].json()["layers"][1]["dW"]["passed"] is True
