"""WebSocket /api/models/{id}/stream through the TestClient: play, pause, step, and bad messages.
(The frame rate over a real socket is tested in tests/api/test_live_server.py.)"""
from __future__ import annotations

import base64
import json
import time
from contextlib import ExitStack

import numpy as np
import pytest
from starlette.websockets import WebSocketDisconnect

from app.api.schemas import StreamError, StreamFrame, StreamMessage
from app.engine import Model
from app.engine.boundary import boundary

from ..utils import SMALL, arr, create

FRAME_KEYS = {"type", "step", "epoch", "playing", "train_loss", "test_loss", "losses", "loss_steps", "grad_norms",
              "diverged", "diverged_at", "layers", "boundary"}


def ungrid(g: dict) -> np.ndarray:
    """A frame's 8-bit grid back to floats (docs/api.md)."""
    levels = np.frombuffer(base64.b64decode(g["u8"]), np.uint8).reshape(g["shape"])
    return g["lo"] + (g["hi"] - g["lo"]) * levels / 255.0


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
    # weights and gradients travel as float32 (the page draws them); GET /parameters has them exactly
    np.testing.assert_array_equal(np.float32(f["layers"][0]["W"]), ref.net.dense[0].params["W"].astype(np.float32))
    np.testing.assert_array_equal(np.float32(f["layers"][1]["dW"]), ref.net.dense[1].grads["W"].astype(np.float32))
    assert f["grad_norms"] == pytest.approx([float(np.linalg.norm(arr(layer["dW"]))) for layer in f["layers"]],
                                            rel=1e-6)
    StreamFrame.model_validate(f)
    b, expected_b = f["boundary"], boundary(ref, 40)
    assert b["resolution"] == 40 and ungrid(b["output"]).shape == (40, 40)
    assert [ungrid(n).shape for n in b["neurons"]] == [(4, 16, 16)]
    # 8-bit levels of each grid's range: within half a level of the server's own boundary
    for got, want in [(b["output"], expected_b["output"]), *zip(b["neurons"], expected_b["neurons"])]:
        assert (got["lo"], got["hi"]) == (want.min(), want.max())
        np.testing.assert_allclose(ungrid(got), want, rtol=0, atol=(want.max() - want.min()) / 510 + 1e-12)
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
        # the pause frame carries only the steps since the previous frame (none, or a chunk in flight)
        assert paused["loss_steps"] == list(range(previous["step"] + 1, paused["step"] + 1))
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
        error = ws.receive_json()
        assert error == {"type": "error", "detail": detail}
        StreamError.model_validate(error)
        ws.send_json({"action": "step"})
        assert ws.receive_json()["step"] == 1


BINARY = 'messages must be text frames holding JSON such as {"action": "play"}, not binary frames'
DEEP = 'messages must not nest deeper than a flat JSON object such as {"action": "play"}'
NESTED_OBJECTS = '{"action": "play", "x": ' + '{"": ' * 600 + "1" + "}" * 600 + "}"
MIXED = '{"action": "play", "x": ' + '[{"": ' * 300 + "1" + "}]" * 300 + "}"
LONG_TOKEN = '{"action": "auth", "token": "' + "a" * 257 + '"}'
LONG_TOKEN_DETAIL = "token must be at most 256 characters"


@pytest.mark.parametrize("send,detail", [
    (lambda ws: ws.send_bytes(b"\x00"), BINARY),
    (lambda ws: ws.send_bytes(b'{"action": "step"}'), BINARY),
    (lambda ws: ws.send_text("[" * 1000 + "]" * 1000), DEEP),
    (lambda ws: ws.send_text('{"action": "auth", "token": ' + "[" * 1500 + "]" * 1500 + "}"), DEEP),
    (lambda ws: ws.send_text('{"action": "play", "token": "' + "x" * 5000 + '"}'),
     "messages must be at most 4096 characters"),
    # objects nest too, at any depth under the parser's stack limit, in an unknown field or at the top
    (lambda ws: ws.send_text(NESTED_OBJECTS), DEEP),
    (lambda ws: ws.send_text('{"":' * 800 + "1" + "}" * 800), DEEP),
    (lambda ws: ws.send_text(MIXED), DEEP),
    (lambda ws: ws.send_text('{"action": "play", "x": {}}'), DEEP),
    (lambda ws: ws.send_text('{"action": "play", "steps_per_frame": [1]}'), DEEP),
    (lambda ws: ws.send_text('[{"action": "play"}]'), DEEP),
    (lambda ws: ws.send_text(LONG_TOKEN), LONG_TOKEN_DETAIL),
])
def test_malformed_frames_are_answered_and_the_stream_goes_on(client, model, send, detail):
    """Binary, too deep or too large: an error frame, and the connection keeps working (after auth)."""
    with client.websocket_connect(f"/api/models/{model['id']}/stream") as ws:
        send(ws)
        assert ws.receive_json() == {"type": "error", "detail": detail}
        ws.send_json({"action": "step"})
        assert ws.receive_json()["step"] == 1


@pytest.mark.parametrize("send,detail", [
    (lambda ws: ws.send_bytes(b"\x00"), BINARY),
    (lambda ws: ws.send_text("[" * 1000 + "]" * 1000), DEEP),
    (lambda ws: ws.send_text("x" * 5000), "messages must be at most 4096 characters"),
    (lambda ws: ws.send_text(NESTED_OBJECTS), DEEP),
    (lambda ws: ws.send_text(MIXED), DEEP),
    (lambda ws: ws.send_text(LONG_TOKEN), LONG_TOKEN_DETAIL),
])
def test_malformed_frames_before_auth_are_answered_and_auth_still_works(client, model, send, detail):
    mid = model["id"]
    with client.websocket_connect(f"/api/models/{mid}/stream", auth_token=False) as ws:
        send(ws)
        assert ws.receive_json() == {"type": "error", "detail": detail}
        ws.send_json({"action": "auth", "token": client.tokens[mid]})
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


# -- auth in the first message ---------------------------------------------------------------------
def test_token_in_the_first_message(client, model):
    mid, token = model["id"], client.tokens[model["id"]]
    with client.websocket_connect(f"/api/models/{mid}/stream", auth_token=False) as ws:
        ws.send_json({"action": "auth", "token": token})
        ws.send_json({"action": "step"})
        f = ws.receive_json()
        assert (f["type"], f["step"]) == ("frame", 1)
        ws.send_json({"action": "auth", "token": token})  # again: ignored
        ws.send_json({"action": "step"})
        assert ws.receive_json()["step"] == 2
    assert client.get(f"/api/models/{mid}").json()["step"] == 2


def test_wrong_token_in_the_first_message_closes_4403(client, model):
    other = client.tokens[create(client, SMALL)["id"]]
    with client.websocket_connect(f"/api/models/{model['id']}/stream", auth_token=False) as ws:
        ws.send_json({"action": "auth", "token": other})
        assert ws.receive_json() == {"type": "error", "detail": "the token does not match this model"}
        with pytest.raises(WebSocketDisconnect) as e:
            ws.receive_json()
    assert e.value.code == 4403
    assert client.get(f"/api/models/{model['id']}").json()["step"] == 0


def test_query_token_still_works(client, model):
    with client.websocket_connect(f"/api/models/{model['id']}/stream?token={client.tokens[model['id']]}", auth_token=False) as ws:
        ws.send_json({"action": "step"})
        assert ws.receive_json()["step"] == 1


# -- several streams at once -----------------------------------------------------------------------
def test_several_streams_each_receive_frames_and_train(client):
    ids = [create(client, SMALL)["id"] for _ in range(4)]
    with ExitStack() as stack:
        streams = [stack.enter_context(client.websocket_connect(f"/api/models/{mid}/stream")) for mid in ids]
        for ws in streams:
            ws.send_json({"action": "play"})
        seen = {mid: [] for mid in ids}
        for _ in range(5):  # every stream keeps delivering while the others play
            for mid, ws in zip(ids, streams):
                f = ws.receive_json()
                StreamFrame.model_validate(f)
                seen[mid].append(f["step"])
        for steps in seen.values():
            assert steps == sorted(steps) and steps[-1] > steps[0] >= 1, steps
        for ws in streams:
            ws.send_json({"action": "pause"})
        paused = {mid: frames_until_paused(ws)[-1]["step"] for mid, ws in zip(ids, streams)}
        # pause stops training at once on every stream: nothing trains after the paused frame
        for mid in ids:
            assert client.get(f"/api/models/{mid}").json()["step"] == paused[mid] >= seen[mid][-1]
        time.sleep(0.3)
        for mid in ids:
            assert client.get(f"/api/models/{mid}").json()["step"] == paused[mid]
            assert len(client.get(f"/api/models/{mid}/history").json()["step"]) == paused[mid]


def test_train_calls_share_the_trainer_with_streams(client):
    """A REST train call while another model streams: both progress, the call's steps are exact."""
    streaming, called = create(client, SMALL)["id"], create(client, SMALL)["id"]
    with client.websocket_connect(f"/api/models/{streaming}/stream") as ws:
        ws.send_json({"action": "play"})
        first = ws.receive_json()["step"]
        r = client.post(f"/api/models/{called}/train", json={"steps": 300})
        assert r.status_code == 200
        body = r.json()
        assert (body["step"], body["steps_done"], body["stopped"]) == (300, 300, "done")
        assert body["losses"] == Model(SMALL).train(300).losses
        later = [ws.receive_json()["step"] for _ in range(3)]
        assert later[-1] > first
        ws.send_json({"action": "pause"})
        frames_until_paused(ws)
    assert client.get(f"/api/models/{called}").json()["step"] == 300


# -- strict JSON -----------------------------------------------------------------------------------
def strict(text: str):
    def refuse(name):
        raise AssertionError(f"bare {name} in a frame")
    return json.loads(text, parse_constant=refuse)


def test_frames_are_strict_json_when_numbers_overflow(client):
    """Inputs of +-1e308 overflow every activation and the boundary's range: frames stay strict JSON."""
    X = [[1e308, -1e308], [-1e308, 1e308], [1e308, 1e308], [-1e308, -1e308]]
    mid = create(client, {"layers": [{"units": 3, "activation": "relu"}, {"units": 1, "activation": "identity"}],
                          "loss": "mse", "batch_size": None, "data": {"X": X, "y": [[1], [2], [3], [4]]}})["id"]
    with client.websocket_connect(f"/api/models/{mid}/stream") as ws:
        ws.send_json({"action": "step"})
        texts = [ws.receive_text()]
        ws.send_json({"action": "play", "steps_per_frame": 1})
        texts.append(ws.receive_text())
        ws.send_json({"action": "pause"})
        while strict(texts[-1]).get("playing"):
            texts.append(ws.receive_text())
    for t in texts:
        msg = strict(t)
        if msg["type"] == "frame":
            StreamFrame.model_validate(msg)


@pytest.mark.parametrize("message", [
    {"action": "play"}, {"action": "play", "steps_per_frame": 3}, {"action": "pause"}, {"action": "step"},
    {"action": "auth", "token": "abc"}])
def test_client_messages_match_the_schema(message):
    from app.api.routes.stream import _parse
    msg, error = _parse(json.dumps(message))
    assert error is None and msg == StreamMessage.model_validate(message)


def test_concurrent_long_train_calls_on_one_model_run_one_after_the_other(client):
    """Calls longer than one slice go on in turns; two on one model still give contiguous steps."""
    from concurrent.futures import ThreadPoolExecutor
    mid = create(client, SMALL)["id"]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: client.post(f"/api/models/{mid}/train", json={"steps": 3000}).json(),
                                range(2)))
    results.sort(key=lambda r: r["step"])
    assert [(r["step"], r["steps_done"], r["stopped"]) for r in results] == [(3000, 3000, "done"), (6000, 3000, "done")]
    assert results[0]["losses"] + results[1]["losses"] == Model(SMALL).train(6000).losses
    assert client.get(f"/api/models/{mid}").json()["step"] == 6000


# -- large networks: bounded frames, no caches left on the live model ---------------------------------
TANH = lambda units: {"units": units, "activation": "tanh"}  # noqa: E731
BIG = {"layers": [TANH(1000), TANH(1000), {"units": 1, "activation": "sigmoid"}],
       "data": {"dataset": "circle", "samples": 40}}
"""A 2x1000 net: ~1M parameters (under the 2M limit), 2,000 hidden neurons."""


def test_a_large_networks_frames_are_bounded(client):
    from app.api.routes.stream import BOUNDARY_MIN_RESOLUTION, FRAME_BIG_NET_BYTES
    mid = create(client, BIG)["id"]
    with client.websocket_connect(f"/api/models/{mid}/stream") as ws:
        ws.send_json({"action": "step"})
        text = ws.receive_text()
        ws.send_json({"action": "play", "steps_per_frame": 1})
        played = [ws.receive_text() for _ in range(3)]
        ws.send_json({"action": "pause"})
        paused = frames_until_paused(ws)[-1]
    f = json.loads(text)
    StreamFrame.model_validate(f)
    assert len(text.encode()) < FRAME_BIG_NET_BYTES and f["step"] == 1
    # what the page draws: the loss, the norms and the output grid; no weights (over 20,000) and no thumbnails
    assert f["layers"] is None and f["boundary"]["neurons"] is None and len(f["grad_norms"]) == 3
    b = f["boundary"]
    assert b["resolution"] == BOUNDARY_MIN_RESOLUTION and ungrid(b["output"]).shape == (16, 16)
    for t in played:
        assert len(t.encode()) < FRAME_BIG_NET_BYTES
        StreamFrame.model_validate(json.loads(t))
    # while playing, the frames after a boundary have none until the k-th (k > 3 here: the page keeps the
    # step's); the frame that answers a pause has one
    assert [json.loads(t)["boundary"] for t in played] == [None, None, None]
    assert paused["boundary"]["resolution"] == BOUNDARY_MIN_RESOLUTION and paused["boundary"]["neurons"] is None


def test_many_hidden_neurons_send_no_thumbnails_but_their_weights(client):
    mid = create(client, {**SMALL, "layers": [TANH(300), {"units": 1, "activation": "sigmoid"}]})["id"]
    with client.websocket_connect(f"/api/models/{mid}/stream") as ws:
        ws.send_json({"action": "step"})
        f = ws.receive_json()
    StreamFrame.model_validate(f)
    assert [arr(layer["W"]).shape for layer in f["layers"]] == [(300, 2), (1, 300)]
    assert f["boundary"]["neurons"] is None and ungrid(f["boundary"]["output"]).shape == (40, 40)


def held_bytes(model) -> int:
    """Bytes of every distinct NumPy array reachable from the model's and its parts' attributes, plus its history."""
    seen, total, todo = set(), 0, [model]
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            base = obj if obj.base is None else obj.base
            if isinstance(base, np.ndarray) and id(base) not in seen:
                seen.add(id(base))
                total += base.nbytes
        elif isinstance(obj, (list, tuple)):
            todo.extend(obj)
        elif isinstance(obj, dict):
            todo.extend(obj.values())
        elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("app."):
            todo.extend(vars(obj).values())
    return total + model.history.nbytes()


def test_rendering_a_large_networks_frame_leaves_no_caches_on_it():
    from app.api.routes.stream import _GRID_INPUTS, render
    m = Model(BIG)
    counted = m.nbytes()
    m.train(3)
    render(m, [], [], False)
    render(m, [], [], True)
    net = m.net
    assert all(d.x is None for d in net.dense)
    assert all(a.a is None and a.z is None and a.delta is None and a.dz is None for a in net.acts)
    # nbytes (what the live-model cache counts when it loads a model) already covered what training made,
    # and the arrays the model really holds are within it; the stream keeps only its grid's inputs, (R^2, 2)
    assert m.nbytes() == counted
    assert held_bytes(m) <= counted
    g = _GRID_INPUTS[m].grid
    assert g.X.nbytes + g.rows.nbytes <= 40 * 40 * 2 * 8 + 16 * 16 * 8
