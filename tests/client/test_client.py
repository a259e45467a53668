"""app.client against a real uvicorn server: every endpoint with NumPy arrays, tokens, errors with the
server's messages, 429 retries, the stream, and the async twin."""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from app.client import AsyncPlaygroundClient, PlaygroundClient, PlaygroundError
from app.engine import Model

from ..api.test_live_server import Server
from .conftest import SPEC


def own_backprop(params: list[dict], X: np.ndarray, y: np.ndarray) -> list[dict]:
    """What a student writes: tanh hidden layer, sigmoid output, bce averaged over the batch."""
    (W1, b1), (W2, b2) = [(p["W"], p["b"]) for p in params]
    z1 = np.tanh(X @ W1.T + b1)
    y_hat = 1 / (1 + np.exp(-(z1 @ W2.T + b2)))
    delta2 = (y_hat - y) / len(X)             # sigmoid + bce: (B, 1)
    delta1 = (delta2 @ W2) * (1 - z1 ** 2)    # (B, 5)
    return [{"dW": delta1.T @ X, "db": delta1.sum(axis=0)}, {"dW": delta2.T @ z1, "db": delta2.sum(axis=0)}]


# -- models, training and inspection -----------------------------------------------------------------
def test_create_train_and_inspect_with_arrays(pg):
    m = pg.create_model(SPEC, nickname="ada")
    mid = m["id"]
    assert (m["step"], m["nickname"], pg.tokens[mid]) == (0, "ada", m["token"])
    assert pg.get_model(mid)["spec"] == Model(SPEC).spec

    t = pg.train(mid, 30)
    ref = Model(SPEC)
    expected = ref.train(30)
    assert isinstance(t["losses"], np.ndarray) and t["losses"].shape == (30,)
    np.testing.assert_array_equal(t["losses"], expected.losses)
    assert (t["step"], t["train_loss"]) == (30, expected.train_loss)

    g = pg.gradients(mid)
    assert g["inputs"].shape == (20, 2) and g["batch_size"] == 20
    shapes = [(layer["a"].shape, layer["z"].shape, layer["delta"].shape, layer["dz"].shape, layer["dW"].shape,
               layer["db"].shape) for layer in g["layers"]]
    assert shapes == [((20, 5), (20, 5), (20, 5), (20, 5), (5, 2), (5,)), ((20, 1), (20, 1), (20, 1), (20, 1), (1, 5), (1,))]
    X = np.array([[0.5, -0.25], [1.5, 0.5], [-1.0, 0.75]])
    y = np.array([1.0, 0.0, 1.0])  # a 1-D target is one column
    g3 = pg.gradients(mid, X, y)
    assert g3["batch_size"] == 3 and g3["layers"][0]["dW"].shape == (5, 2)
    np.testing.assert_allclose(g3["layers"][0]["dW"], ref.gradients(X, y[:, None])["layers"][0].dW, rtol=1e-12)

    y_hat = pg.predict(mid, X)
    assert isinstance(y_hat, np.ndarray) and y_hat.shape == (3, 1)
    np.testing.assert_array_equal(y_hat, ref.predict(X))

    params = pg.get_parameters(mid)
    assert [(p["W"].shape, p["b"].shape) for p in params] == [((5, 2), (5,)), ((1, 5), (1,))]
    np.testing.assert_array_equal(params[0]["W"], ref.net.dense[0].params["W"])
    doubled = pg.put_parameters(mid, [(p["W"] * 2, p["b"]) for p in params])
    np.testing.assert_array_equal(doubled[0]["W"], params[0]["W"] * 2)
    pg.put_parameters(mid, params)

    h = pg.history(mid)
    assert h["step"].tolist() == list(range(1, 31)) and h["loss"].shape == (30,) and h["grad_norms"].shape == (2, 30)
    assert h["eval"]["train_loss"][-1] == pytest.approx(expected.train_loss, rel=1e-6)  # float32 history

    assert pg.patch_model(mid, optimizer={"learning_rate": 0.005})["spec"]["optimizer"]["learning_rate"] == 0.005
    assert pg.gradcheck(mid, X, y)["passed"] is True
    trace = pg.trace(mid, batch_size=4)
    assert trace["batch_size"] == 4 and trace["backward"]
    b = pg.boundary(mid, resolution=12)
    assert b["output"].shape == (12, 12) and [n.shape[0] for n in b["neurons"]] == [5]
    d = pg.data(mid)
    assert d["train"]["X"].shape == (20, 2) and d["test"]["y"].shape == (20, 1)
    assert "limits" in pg.catalog() and pg.health() == {"status": "ok"}

    assert pg.reset(mid)["step"] == 0
    assert pg.delete_model(mid) is None
    with pytest.raises(PlaygroundError) as e:
        pg.get_model(mid)
    assert (e.value.status_code, e.value.message) == (404, f"model {mid} not found")


def test_check_own_gradients(pg):
    mid = pg.create_model(SPEC)["id"]
    pg.train(mid, 15)
    d = pg.data(mid)
    X, y = d["train"]["X"][:6], d["train"]["y"][:6]
    mine = own_backprop(pg.get_parameters(mid), X, y)

    ok = pg.check(mid, X, y, mine)
    assert ok["passed"] is True
    assert [(layer["dW"]["passed"], layer["db"]["passed"]) for layer in ok["layers"]] == [(True, True), (True, True)]

    wrong = pg.check(mid, X, y, [{"dW": mine[0]["dW"].T}, {"db": mine[1]["db"]}])
    assert wrong["passed"] is False
    verdict = wrong["layers"][0]["dW"]
    assert (verdict["passed"], verdict["shape"], verdict["expected_shape"]) == (False, [2, 5], [5, 2])
    assert verdict["hint"].startswith("transposed: you gave dW_1^T")
    assert wrong["layers"][1]["dW"] is None and wrong["layers"][1]["db"]["passed"] is True
    assert wrong["first_error"]["layer"] == 1 and "transposed" in wrong["first_error"]["message"]


def test_check_takes_any_shape_and_the_default_batch(pg):
    """A flat or column dW and a per-sample db: verdicts with a shape hint, not a 422; no X, y: GET /gradients' batch."""
    mid = pg.create_model(SPEC)["id"]
    g = pg.gradients(mid)
    dW2, db1, delta1 = g["layers"][1]["dW"], g["layers"][0]["db"], g["layers"][0]["delta"]
    assert pg.check(mid, layers=[{"dW": layer["dW"], "db": layer["db"]} for layer in g["layers"]])["passed"] is True
    for sent in (dW2.ravel(), dW2.reshape(-1, 1)):
        v = pg.check(mid, layers=[{}, {"dW": sent}])["layers"][1]["dW"]
        assert (v["shape"], v["expected_shape"]) == (list(sent.shape), [1, 5])
        assert "(1, 5)" in v["hint"]
    v = pg.check(mid, layers=[{"db": delta1}])["layers"][0]["db"]
    assert (v["passed"], v["shape"], v["expected_shape"]) == (False, [20, 5], [5])
    assert "per sample" in v["hint"]
    v = pg.check(mid, layers=[{"db": db1[:, None]}])["layers"][0]["db"]
    assert v["shape"] == [5, 1] and "(5,)" in v["hint"]
    with pytest.raises(PlaygroundError) as e:
        pg.check(mid, layers=[{"dW": [[1.0, 2.0], [3.0]]}])
    assert (e.value.status_code, e.value.message) == (422, "layers.0.dW: is ragged: entry [1] has 1 entries where 2 belong")
    with pytest.raises(ValueError, match="X and y go together"):
        pg.check(mid, X=np.zeros((1, 2)), layers=[])


def test_derive_and_the_trace_in_columns(pg):
    from app.engine.derive import CORRECT_EQUATIONS, QUESTION_EQUATIONS
    from app.engine.program import FIXED_CODE, QUESTION_CODE

    assert pg.derive_examples() == {"question": QUESTION_EQUATIONS, "correct": CORRECT_EQUATIONS,
                                    "code": {"question": QUESTION_CODE, "fixed": FIXED_CODE}}
    mid = pg.create_model(SPEC)["id"]
    examples = pg.derive_examples(mid)  # sigmoid + bce: delta_L = y_hat - y
    ok = pg.derive(mid, examples["correct"]["columns"])
    assert (ok["passed"], ok["first_error"]) == (True, None)
    as_dict = {e["target"]: e["expr"] for e in examples["correct"]["rows"]}
    assert pg.derive(mid, as_dict, convention="rows")["passed"] is True
    # one hidden layer: the question's special case for layer L-1 is all there is, and it is right
    assert pg.derive(mid, examples["question"]["columns"])["passed"] is True
    deep = pg.create_model({**SPEC, "layers": [{"units": 5, "activation": "tanh"}] * 2 + SPEC["layers"][-1:]})["id"]
    wrong = pg.derive(deep, examples["question"]["columns"], X=np.array([[0.5, -0.25]]), y=np.array([1.0]))
    assert wrong["passed"] is False and wrong["first_error"]["layer"] == 1
    assert "(from (1, 5) @ (5, 2))" in wrong["first_error"]["message"]
    with pytest.raises(PlaygroundError) as e:
        pg.derive(mid, [{"target": "dW[i]", "expr": "__import__('os')"}])
    assert e.value.status_code == 422 and e.value.message.startswith("equations.0.expr: position ")
    t = pg.trace(mid, batch_size=1, convention="columns")
    assert t["batch_size"] == 1 and t["backward"]


# -- export, import, forks, own data -------------------------------------------------------------------
def test_export_import_and_fork(pg):
    mid = pg.create_model(SPEC)["id"]
    first = pg.train(mid, 25)

    doc = pg.export(mid)
    assert doc["format"] == "backprop-playground-model" and doc["meta"]["step"] == 25
    blob = pg.export(mid, "npz")
    assert isinstance(blob, bytes) and blob[:2] == b"PK"
    script = pg.export(mid, format="numpy")
    assert isinstance(script, str) and script.startswith("#!/usr/bin/env python3")
    with pytest.raises(ValueError, match="format must be json, npz or numpy"):
        pg.export(mid, "csv")

    from_json, from_npz = pg.import_model(doc), pg.import_model(blob)
    assert (from_json["step"], from_npz["step"]) == (25, 25)
    assert from_json["token"] == pg.tokens[from_json["id"]]
    runs = [pg.train(m, 12) for m in (mid, from_json["id"], from_npz["id"])]
    for run in runs[1:]:
        np.testing.assert_array_equal(run["losses"], runs[0]["losses"])
    with pytest.raises(PlaygroundError) as e:
        pg.import_model({"format": "something else"})
    assert e.value.status_code == 422
    assert e.value.message == "cannot import: format must be 'backprop-playground-model' version 1"

    assert [c["step"] for c in pg.checkpoints(mid)] == [0, 10, 20, 30]
    child = pg.fork(mid, step=27)
    assert (child["step"], child["parent"]) == (20, {"id": mid, "step": 20})
    again = pg.train(child["id"], 17)  # the fork's token was remembered
    np.testing.assert_array_equal(again["losses"], np.concatenate([first["losses"], runs[0]["losses"]])[20:37])
    now = pg.fork(mid)
    assert (now["step"], now["parent"]) == (37, {"id": mid, "step": 37})
    with pytest.raises(PlaygroundError) as e:
        pg.fork(now["id"], step=5)
    assert (e.value.status_code, e.value.message) == (404, f"model {now['id']} has no checkpoint at or before step 5")


def test_upload_csv_from_a_file_or_text(pg, tmp_path):
    rows = [(i * 0.25, (i * 7) % 5 - 2.0, "yes" if i % 3 else "no") for i in range(30)]
    path = tmp_path / "points.csv"
    path.write_text("a,b,label\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows))
    ds = pg.upload_csv(path, standardize=True)
    assert (ds["rows"], ds["input_columns"], ds["classes"]) == (30, ["a", "b"], ["no", "yes"])
    assert ds["standardize"]["mean"] == pytest.approx([np.mean([r[0] for r in rows]), np.mean([r[1] for r in rows])])
    assert pg.upload_csv(str(path))["rows"] == 30
    assert pg.upload_csv("a,b\n1,2\n3,4\n", inputs=["b"], targets=["a"])["input_columns"] == ["b"]

    m = pg.create_model({"layers": [{"units": 3}, {"units": 2, "activation": "softmax"}], "loss": "cross_entropy",
                         "data": {"dataset_id": ds["id"], "standardize": True}})
    assert m["spec"]["data"]["n_train"] == 24 and pg.train(m["id"], 5)["step"] == 5

    with pytest.raises(PlaygroundError) as e:
        pg.upload_csv("a,b,c\n1,2,3\n4,5\n")
    assert (e.value.status_code, e.value.message) == (422, "csv: line 3 has 2 cells, the header (line 1) has 3")
    assert e.value.detail == [{"loc": ["body", "csv"], "msg": "line 3 has 2 cells, the header (line 1) has 3",
                               "type": "value_error"}]
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("a,b\n1,2\ncaf\u00e9,3\n".encode("latin-1"))
    with pytest.raises(ValueError, match="line 3: the file is not UTF-8 text"):
        pg.upload_csv(latin1)


# -- errors and tokens ---------------------------------------------------------------------------------
def test_errors_carry_the_servers_message(pg, server):
    with pytest.raises(PlaygroundError) as e:
        pg.get_model("nosuchmodel")
    assert (e.value.status_code, e.value.detail, e.value.message) == (404, "model nosuchmodel not found",
                                                                        "model nosuchmodel not found")
    assert str(e.value) == "404: model nosuchmodel not found"

    with pytest.raises(PlaygroundError) as e:
        pg.create_model(layers=[{"units": 0}], loss="mse", data={"dataset": "xor", "samples": 2})
    assert e.value.status_code == 422
    assert e.value.message == ("layers.0.units: Input should be greater than or equal to 1; "
                               "data.samples: Input should be greater than or equal to 4")
    with pytest.raises(PlaygroundError) as e:
        pg.create_model({"layers": [{"units": 2, "activation": "softmax"}, {"units": 1}]})
    assert e.value.message == "layers.0.activation: softmax is allowed on the output layer only"

    mid = pg.create_model(SPEC)["id"]
    with PlaygroundClient(server.url, trust_env=False) as stranger:
        with pytest.raises(PlaygroundError) as e:
            stranger.train(mid, 1)
        assert (e.value.status_code, e.value.message) == (
            401, "this call changes the model: send its token as 'Authorization: Bearer <token>'")
        assert stranger.get_model(mid)["step"] == 0  # reads need no token
    with PlaygroundClient(server.url, token="not-the-token", trust_env=False) as wrong:
        with pytest.raises(PlaygroundError) as e:
            wrong.delete_model(mid)
        assert (e.value.status_code, e.value.message) == (403, "the token does not match this model")
        wrong.set_token(mid, pg.tokens[mid])
        assert wrong.train(mid, 2)["step"] == 2


def test_429_is_retried_after_retry_after(monkeypatch):
    calls, waits = [], []
    monkeypatch.setattr("app.client.time.sleep", waits.append)  # what the client waits, not how long it took

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        if len(calls) < 3:
            return httpx.Response(429, headers={"retry-after": "0.2"}, json={"detail": "rate limit exceeded; retry after 1 s"})
        return httpx.Response(200, json={"status": "ok"})

    with PlaygroundClient("http://test", transport=httpx.MockTransport(handler)) as c:
        assert c.health() == {"status": "ok"}
    assert len(calls) == 3 and waits == [0.2, 0.2]

    calls.clear()
    with PlaygroundClient("http://test", retries=1, transport=httpx.MockTransport(handler)) as c:
        with pytest.raises(PlaygroundError) as e:
            c.health()
    assert (e.value.status_code, e.value.message, len(calls)) == (429, "rate limit exceeded; retry after 1 s", 2)


def test_429_from_a_real_rate_limited_server(tmp_path):
    """60 requests a minute per token: a burst of 10, then one a second; the client waits and gets through."""
    server = Server(tmp_path / "db.sqlite3", tmp_path / "uvicorn.log", rate_limit_per_token=60,
                    rate_limit_per_client=0).start()
    statuses = []
    try:
        with PlaygroundClient(server.url, trust_env=False,
                              event_hooks={"response": [lambda r: statuses.append(r.status_code)]}) as c:
            mid = c.create_model(SPEC)["id"]
            steps = [c.train(mid, 1)["step"] for _ in range(12)]
        assert steps == list(range(1, 13))
        assert 429 in statuses and statuses.count(200) == 12
    finally:
        server.stop()
    server.assert_no_tracebacks()


# -- the stream ----------------------------------------------------------------------------------------
def test_stream_yields_frames_and_pauses_at_the_end(pg, server):
    mid = pg.create_model(SPEC)["id"]
    frames = list(pg.stream(mid, steps_per_frame=3, frames=6))
    assert len(frames) == 6
    assert [f["step"] for f in frames] == [3, 6, 9, 12, 15, 18]
    assert all(f["type"] == "frame" and f["playing"] for f in frames)
    f = frames[-1]
    assert isinstance(f["losses"], np.ndarray) and f["losses"].shape == (3,)
    assert f["loss_steps"].tolist() == [16, 17, 18]
    assert f["layers"][0]["W"].shape == (5, 2) and f["layers"][1]["db"].shape == (1,)
    assert f["boundary"]["output"].shape == (40, 40)
    np.testing.assert_array_equal(np.concatenate([f["losses"] for f in frames]), Model(SPEC).train(18).losses)

    paused = pg.get_model(mid)["step"]  # paused and saved before stream() returned
    assert paused >= 18
    time.sleep(0.3)
    assert pg.get_model(mid)["step"] == paused

    timed = list(pg.stream(mid, seconds=0.6))  # stops by itself (how many frames fit in 0.6 s is not asserted)
    assert len(timed) >= 1
    assert all(b["step"] > a["step"] for a, b in zip(timed, timed[1:]))

    start = pg.get_model(mid)["step"]
    for frame in pg.stream(mid, steps_per_frame=1):  # leaving the loop early pauses too
        if frame["step"] >= start + 3:
            break
    step = pg.get_model(mid)["step"]
    time.sleep(0.3)
    assert pg.get_model(mid)["step"] == step

    with PlaygroundClient(server.url, trust_env=False) as stranger:
        with pytest.raises(PlaygroundError) as e:
            next(iter(stranger.stream(mid, frames=1)))
        assert (e.value.status_code, e.value.message) == (
            401, "this call changes the model: send its token as 'Authorization: Bearer <token>'")
    with pytest.raises(PlaygroundError) as e:
        list(pg.stream("nosuchmodel", frames=1))
    assert (e.value.status_code, e.value.message) == (404, "model nosuchmodel not found")


# -- async -----------------------------------------------------------------------------------------------
def test_the_async_twin(server):
    async def main():
        async with AsyncPlaygroundClient(server.url, trust_env=False) as apg:
            m = await apg.create_model(SPEC)
            t = await apg.train(m["id"], 10)
            np.testing.assert_array_equal(t["losses"], Model(SPEC).train(10).losses)
            g, y_hat = await asyncio.gather(apg.gradients(m["id"]), apg.predict(m["id"], [[0.1, 0.2]]))
            assert g["layers"][0]["dW"].shape == (5, 2) and y_hat.shape == (1, 1)
            frames = [f async for f in apg.stream(m["id"], steps_per_frame=2, frames=4)]
            assert [f["step"] for f in frames] == [12, 14, 16, 18]
            assert isinstance(frames[0]["losses"], np.ndarray)
            assert (await apg.get_model(m["id"]))["step"] >= 18
            child = await apg.fork(m["id"])
            assert (await apg.train(child["id"], 1))["step"] == child["step"] + 1
            with pytest.raises(PlaygroundError) as e:
                await apg.get_model("nosuchmodel")
            assert e.value.status_code == 404
            with pytest.raises(PlaygroundError) as e:
                async for _ in apg.stream("nosuchmodel", frames=1):
                    pass
            assert (e.value.status_code, e.value.message) == (404, "model nosuchmodel not found")

    # a fresh thread has no event loop, whatever an earlier session fixture (Playwright's sync API) left running
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, main()).result()
