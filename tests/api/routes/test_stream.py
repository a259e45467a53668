"""WebSocket /api/models/{id}/stream through the TestClient: play, pause, step, and bad messages.
(The frame rate over a real socket is tested in tests/api/test_live_server.py.)"""
from __future__ import annotations

import numpy as np
import pytest
from starlette.websockets import WebSocketDisconnect

from app.engine import Model

from ..utils import SMALL, arr, create

FRAME_KEYS = {"type", "step", "epoch", "playing", "train_loss", "test_loss", "losses", "loss_steps", "grad_norms",
              "diverged", "diverged_at", "layers", "boundary"}


def frames_until_paused(ws) -> list[dict]:
    out = []
    while True:
        f = ws.receive_json()
        assert f["type"] == "frame", f
        out.append(f)
        if not f["playing"]:
            return out


@pytest.mark.parametrize("model_id", ["unknownModelId1234", "bad id!"])
def test_unknown_model(client, model_id):
    with client.websocket_connect(f"/api/models/{model_id}/stream") as ws:
        assert ws.receive_json() == {"type": "error", "detail": f"model {model_id} not found"}
        with pytest.raises(WebSocketDisconnect) as e:
            ws.receive_json()
    assert e.value.code == 4404


def test_step_sends_one_frame(client, model):
    mid = model["id"]
    with client.websocket_connect(f"/api/models/{mid}/stream") as ws:
        ws.send_json({"action": "step"})
        f = ws.receive_json()
    assert set(f) == FRAME_KEYS
    ref = Model(SMALL)
    expected = ref.train(1)
    assert (f["type"], f["step"], f["playing"], f["diverged"], f["diverged_at"]) == ("frame", 1, False, False, None)
    assert f["losses"] == expected.losses and f["loss_steps"] == [1]
    assert f["train_loss"] == expected.train_loss
    assert [arr(layer["W"]).shape for layer in f["layers"]] == [(4, 2), (1, 4)]
    assert [arr(layer["dW"]).shape for layer in f["layers"]] == [(4, 2), (1, 4)]
    assert [arr(layer["db"]).shape for layer in f["layers"]] == [(4,), (1,)]
    np.testing.assert_array_equal(f["layers"][0]["W"], ref.net.dense[0].params["W"])
    assert f["grad_norms"] == pytest.approx([float(np.linalg.norm(arr(layer["dW"]))) for layer in f["layers"]])
    b = f["boundary"]
    assert b["resolution"] == 40 and arr(b["output"]).shape == (40, 40)
    assert [arr(n).shape for n in b["neurons"]] == [(4, 16, 16)]
    # a step is saved at once
    assert client.get(f"/api/models/{mid}").json()["step"] == 1


def test_play_then_pause(client, model):
    mid = model["id"]
    with client.websocket_connect(f"/api/models/{mid}/stream") as ws:
        ws.send_json({"action": "play", "steps_per_frame": 3})
        first = [ws.receive_json() for _ in range(5)]
        assert [f["step"] for f in first] == [3, 6, 9, 12, 15]
        assert all(f["playing"] and len(f["losses"]) == 3 for f in first)
        assert first[1]["loss_steps"] == [4, 5, 6]
        ws.send_json({"action": "pause"})
        rest = frames_until_paused(ws)
        paused, previous = rest[-1], (first + rest)[-2]
        assert paused["step"] == previous["step"]  # the pause frame trains nothing more
        assert paused["losses"] == []
        # nothing more arrives once paused; a step still works
        ws.send_json({"action": "step"})
        after = ws.receive_json()
        assert after["step"] == paused["step"] + 1 and not after["playing"]
    status = client.get(f"/api/models/{mid}").json()
    assert status["step"] == after["step"]
    losses = [x for f in first + rest + [after] for x in f["losses"]]
    assert losses == Model(SMALL).train(after["step"]).losses  # every step is in exactly one frame


def test_play_on_time_budget_and_disconnect_saves(client, model):
    mid = model["id"]
    with client.websocket_connect(f"/api/models/{mid}/stream") as ws:
        ws.send_json({"action": "play"})
        frames = [ws.receive_json() for _ in range(4)]
    steps = [f["step"] for f in frames]
    assert steps == sorted(set(steps)) and steps[0] >= 1
    # leaving the socket flushes the unsaved steps (at least those of the frames seen)
    assert client.get(f"/api/models/{mid}").json()["step"] >= steps[-1]


@pytest.mark.parametrize("message,detail", [
    ("hello", 'messages must be JSON objects such as {"action": "play"}'),
    ("[1, 2]", "action must be one of play, pause, step"),
    ('{"action": "jump"}', "action must be one of play, pause, step"),
    ('{"action": "play", "steps_per_frame": 0}', "steps_per_frame must be an integer from 1 to 100000"),
    ('{"action": "play", "steps_per_frame": 1.5}', "steps_per_frame must be an integer from 1 to 100000"),
    ('{"action": "play", "steps_per_frame": true}', "steps_per_frame must be an integer from 1 to 100000"),
    ('{"action": "play", "steps_per_frame": NaN}', "steps_per_frame must be an integer from 1 to 100000"),
    ('{"action": "play", "steps_per_frame": 100001}', "steps_per_frame must be an integer from 1 to 100000"),
])
def test_bad_messages_are_answered_and_the_stream_goes_on(client, model, message, detail):
    with client.websocket_connect(f"/api/models/{model['id']}/stream") as ws:
        ws.send_text(message)
        assert ws.receive_json() == {"type": "error", "detail": detail}
        ws.send_json({"action": "step"})
        assert ws.receive_json()["step"] == 1


def test_model_deleted_while_streaming(client, model):
    mid = model["id"]
    with client.websocket_connect(f"/api/models/{mid}/stream") as ws:
        ws.send_json({"action": "play", "steps_per_frame": 1})
        ws.receive_json()
        assert client.delete(f"/api/models/{mid}").status_code == 204
        while True:
            m = ws.receive_json()
            if m["type"] == "error":
                break
        assert m == {"type": "error", "detail": f"model {mid} not found"}
    assert client.get(f"/api/models/{mid}").status_code == 404


def test_1d_model_frames_have_no_boundary(client):
    mid = create(client, {"layers": [{"units": 3}, {"units": 1}], "loss": "mse",
                          "data": {"dataset": "sine", "samples": 30}})["id"]
    with client.websocket_connect(f"/api/models/{mid}/stream") as ws:
        ws.send_json({"action": "step"})
        f = ws.receive_json()
    assert f["boundary"] is None and f["step"] == 1
