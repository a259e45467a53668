"""Persistence: a second app on the same SQLite file (as after a restart, or another process) sees
every model exactly as saved, and training resumes bit for bit."""
from __future__ import annotations

import time

import pytest

from app.engine import Model

from .utils import SMALL, client_for, create, make_app

SPEC = {**SMALL, "optimizer": {"name": "adam", "learning_rate": 0.02}, "regularization": {"kind": "l2", "rate": 0.001}}


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'db.sqlite3'}"


def test_reopening_the_store_resumes_training_exactly(url):
    with client_for(make_app(store=url)) as first:
        m = create(first, SPEC)
        mid = m["id"]
        t1 = first.post(f"/api/models/{mid}/train", json={"steps": 23}).json()
        params = first.get(f"/api/models/{mid}/parameters").json()
        status = first.get(f"/api/models/{mid}").json()
        history = first.get(f"/api/models/{mid}/history").json()

    with client_for(make_app(store=url)) as second:  # a fresh app: nothing cached
        assert second.get(f"/api/models/{mid}").json() == status
        assert second.get(f"/api/models/{mid}/parameters").json() == params
        assert second.get(f"/api/models/{mid}/history").json() == history
        t2 = second.post(f"/api/models/{mid}/train", json={"steps": 17}).json()
    assert status["step"] == 23 and t2["step"] == 40
    never_stopped = Model(SPEC).train(40)
    assert t1["losses"] + t2["losses"] == never_stopped.losses
    assert (t2["train_loss"], t2["test_loss"]) == (never_stopped.train_loss, never_stopped.test_loss)


def test_two_apps_on_one_file_see_each_others_changes(url):
    with client_for(make_app(store=url)) as a, client_for(make_app(store=url)) as b:
        mid = create(a, SPEC)["id"]
        a.get(f"/api/models/{mid}/parameters")  # cached in a
        b.post(f"/api/models/{mid}/train", json={"steps": 10})
        assert a.get(f"/api/models/{mid}").json()["step"] == 10
        ref = Model(SPEC)
        ref.train(10)
        assert a.get(f"/api/models/{mid}/parameters").json()["layers"][1]["W"] == ref.net.dense[1].params["W"].tolist()
        # a trains on from b's state, not from its stale cache
        assert a.post(f"/api/models/{mid}/train", json={"steps": 5}).json()["losses"] == ref.train(5).losses

        b.patch(f"/api/models/{mid}", json={"optimizer": {"learning_rate": 0.001}})
        assert a.get(f"/api/models/{mid}").json()["spec"]["optimizer"]["learning_rate"] == 0.001
        ref.update(optimizer={"learning_rate": 0.001})
        assert a.post(f"/api/models/{mid}/train", json={"steps": 5}).json()["losses"] == ref.train(5).losses

        new = {"layers": [{"W": [[0.1, 0.2]] * 4, "b": [0.0] * 4}, {"W": [[0.3] * 4], "b": [0.1]}]}
        assert b.put(f"/api/models/{mid}/parameters", json=new).status_code == 200
        assert a.get(f"/api/models/{mid}/parameters").json() == new

        assert b.post(f"/api/models/{mid}/reset", json={"seed": 3}).json()["step"] == 0
        assert a.get(f"/api/models/{mid}").json()["step"] == 0
        assert a.get(f"/api/models/{mid}/parameters").json()["layers"][0]["W"] == \
            Model({**SPEC, "seed": 3}).net.dense[0].params["W"].tolist()

        assert b.delete(f"/api/models/{mid}").status_code == 204
        assert a.get(f"/api/models/{mid}").status_code == 404
        assert a.get(f"/api/models/{mid}/parameters").status_code == 404


def test_stream_steps_are_saved_on_pause(url):
    with client_for(make_app(store=url, save_interval=1000)) as a:
        mid = create(a, SPEC)["id"]
        with a.websocket_connect(f"/api/models/{mid}/stream") as ws:
            ws.send_json({"action": "play", "steps_per_frame": 4})
            for _ in range(3):
                ws.receive_json()
            ws.send_json({"action": "pause"})
            while (f := ws.receive_json())["playing"]:
                pass
        with client_for(make_app(store=url)) as b:
            assert b.get(f"/api/models/{mid}").json()["step"] == f["step"]
            losses = b.post(f"/api/models/{mid}/train", json={"steps": 3}).json()["losses"]
    assert losses == Model(SPEC).train(f["step"] + 3).losses[-3:]


def test_stream_steps_are_saved_on_disconnect(url):
    with client_for(make_app(store=url, save_interval=1000)) as a, client_for(make_app(store=url)) as b:
        mid = create(a, SPEC)["id"]
        with a.websocket_connect(f"/api/models/{mid}/stream") as ws:
            ws.send_json({"action": "play", "steps_per_frame": 2})
            last = [ws.receive_json() for _ in range(4)][-1]
            assert b.get(f"/api/models/{mid}").json()["step"] < last["step"]  # not saved while playing
        deadline = time.monotonic() + 10
        while b.get(f"/api/models/{mid}").json()["step"] < last["step"] and time.monotonic() < deadline:
            time.sleep(0.05)
        step = b.get(f"/api/models/{mid}").json()["step"]
        assert step >= last["step"]
        assert a.get(f"/api/models/{mid}").json()["step"] == step
