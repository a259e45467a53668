"""Large JSON bodies (app/api/body.py): off the event loop, a bounded number at a time, matrices as arrays."""
from __future__ import annotations

import asyncio
import json
import threading
import tracemalloc

import httpx
import numpy as np
import pytest

from app.api import body as body_module
from app.api.body import as_matrix, decode

from .utils import client_for, create, make_app, unprocessable

ONE = [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]
BUSY = "too many large request bodies are being processed (1 at a time); retry in 1 s"


def custom(rows: int) -> dict:
    return {"layers": ONE, "data": {"X": [[1, 0]] * rows, "y": [[1]] * rows}}


# -- decoding ------------------------------------------------------------------------------------
def test_clean_matrices_become_float64_arrays_at_any_depth():
    doc = decode(json.dumps({"data": {"X": [[1, 2], [3, 4.5]], "y": [[0], [1]], "csv": "a,b"},
                             "layers": [{"W": [[1, 2]], "b": [0.5]}], "X_test": [1, 2]}).encode())
    X, W = doc["data"]["X"], doc["layers"][0]["W"]
    assert isinstance(X, np.ndarray) and X.dtype == np.float64 and X.tolist() == [[1, 2], [3, 4.5]]
    assert isinstance(W, np.ndarray) and W.shape == (1, 2)
    assert doc["layers"][0]["b"] == [0.5] and doc["X_test"] == [1, 2]  # vectors stay lists
    assert doc["data"]["csv"] == "a,b"


@pytest.mark.parametrize("rows", [[], [[]], [[1, 2], [3]], [[True, False]], [["1", "2"]], [[None, 1]],
                                  [[1, float("nan")]], [[10**400, 1]], [[[1]]], [1, 2], [{"a": 1}]])
def test_anything_but_a_clean_matrix_stays_lists_for_validation(rows):
    assert as_matrix(rows) is None


def test_nan_literals_decode_so_validation_names_the_field():
    assert decode(b'{"X": [[NaN, 1]]}')["X"][0][1] != 0  # the standard library's NaN, kept as a list
    with pytest.raises(ValueError):
        decode(b'{"X": [[1, 2]')


# -- same answers on both paths ------------------------------------------------------------------
@pytest.mark.parametrize("data", [
    {"X": [[1, 0]] * 300 + [[1, "a"]], "y": [[1]] * 301},
    {"X": [[1, 0]] * 300 + [[1]], "y": [[1]] * 301},
    {"X": [[1, 0]] * 300, "y": [[1]] * 299},
    {"X": [[1, 0]] * 300, "y": [[1, 0]] * 300},
    {"X": [[1, 0]] * 300, "y": [[None]] * 300},
    {"X": [[1, 0]] * 300, "y": [[1]] * 300, "X_test": [[1, 0, 1]] * 5, "y_test": [[1]] * 5},
    {"X": [[1, 0]] * 600, "y": [[1]] * 600},  # over the cells limit
])
def test_large_bodies_get_the_same_answers_as_small_ones(limited, data):
    small = limited(max_samples_x_features=1000)
    large = limited(max_samples_x_features=1000, large_body_bytes=100)
    payload = json.dumps({"layers": ONE, "data": data})
    a = small.post("/api/models", content=payload, headers={"content-type": "application/json"})
    b = large.post("/api/models", content=payload, headers={"content-type": "application/json"})
    assert a.status_code == b.status_code == 422
    assert a.json() == b.json()


@pytest.mark.parametrize("tail", ['"y": [[1]]', '"y": [[1]', '"y": [[1]]}} x', '"y": [[NaN]]'])
def test_broken_json_gets_the_same_answer_as_small_bodies(limited, tail):
    payload = '{"layers": [{"units": 1}], "data": {"X": [[1, 0]] ' + " " * 300 + ', ' + tail
    payload += "}}" if tail.count("[") == tail.count("]") and not tail.endswith("x") else ""
    answers = [limited(large_body_bytes=size).post("/api/models", content=payload,
                                                   headers={"content-type": "application/json"})
               for size in (10**6, 100)]
    assert answers[0].status_code == answers[1].status_code == 422
    assert answers[0].json() == answers[1].json()


def test_over_the_limit_is_the_same_422(limited):
    c = limited(max_samples_x_features=1000, large_body_bytes=100)
    unprocessable(c.post("/api/models", json={"layers": ONE, "data": {
        "X": [[1, 0]] * 400, "y": [[1]] * 400, "X_test": [[1, 0]] * 101, "y_test": [[0]] * 101}}),
        ["body", "data", "X"], "1002 samples x features exceeds the limit 1000")


def test_every_matrix_route_accepts_arrays(limited):
    """Create, predict, gradients and PUT /parameters through the large-body path."""
    c = limited(large_body_bytes=100)
    m = create(c, custom(300))
    mid = m["id"]
    assert m["spec"]["data"]["n_train"] == 300
    X = [[0.5, -0.5]] * 200
    r = c.post(f"/api/models/{mid}/predict", json={"X": X})
    assert r.status_code == 200 and len(r.json()["y_hat"]) == 200
    r = c.post(f"/api/models/{mid}/gradients", json={"X": X, "y": [[1]] * 200})
    assert r.status_code == 200 and r.json()["batch_size"] == 200
    params = c.get(f"/api/models/{mid}/parameters").json()
    params["layers"][0]["W"] = [[0.25, 0.25]] * 4
    body = json.dumps({"layers": params["layers"]}) + " " * 200  # over the threshold
    r = c.put(f"/api/models/{mid}/parameters", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert c.get(f"/api/models/{mid}/parameters").json()["layers"][0]["W"] == [[0.25, 0.25]] * 4


def test_over_limit_custom_data_is_refused_within_a_bound_on_memory(limited):
    """The refusal of 30,000 rows over a 1,000-cell limit: peak Python allocation a small multiple of the body.

    Before app/api/body.py the lists were decoded, then copied by validation (peak 51 x the body here);
    now they are decoded once, in a thread, and turned into arrays at once (17 x: the decoded lists).
    """
    c = limited(max_samples_x_features=1000, large_body_bytes=1000)
    payload = json.dumps(custom(30_000)).encode()
    tracemalloc.start()
    try:
        r = c.post("/api/models", content=payload, headers={"content-type": "application/json"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.status_code == 422
    assert r.json()["detail"][0]["msg"] == "60000 samples x features exceeds the limit 1000"
    assert peak < 30 * len(payload), (peak, len(payload))


# -- off the event loop, bounded -----------------------------------------------------------------
def _hold(monkeypatch) -> tuple[threading.Event, threading.Event, list]:
    """decode() that signals it started and waits (in its thread) until released; records what it saw."""
    started, release, seen = threading.Event(), threading.Event(), []

    def held(body: bytes):
        started.set()
        seen.append(release.wait(30))
        return decode(body)

    monkeypatch.setattr(body_module, "decode", held)
    return started, release, seen


async def _until(event: threading.Event) -> None:
    while not event.is_set():  # the loop stays free: the decode runs in a worker thread
        await asyncio.sleep(0.01)


def test_health_answers_while_a_large_body_is_decoded(monkeypatch):
    started, release, seen = _hold(monkeypatch)
    app = make_app(large_body_bytes=1000)

    async def scenario():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            big = asyncio.create_task(http.post("/api/models", json=custom(2000)))
            await _until(started)
            health = await http.get("/api/health")  # answered while the decode is held
            release.set()
            return health, await big

    health, big = asyncio.run(scenario())
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert big.status_code == 201, big.text
    assert seen == [True]


def test_large_bodies_beyond_the_bound_are_503_with_retry_after(monkeypatch):
    started, release, seen = _hold(monkeypatch)
    app = make_app(large_body_bytes=1000, max_large_bodies=1)

    async def scenario():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            first = asyncio.create_task(http.post("/api/models", json=custom(2000)))
            await _until(started)
            second = await http.post("/api/models", json=custom(2000))
            small = await http.post("/api/models", json={"layers": ONE})  # small bodies are not gated
            release.set()
            return await first, second, small

    first, second, small = asyncio.run(scenario())
    assert second.status_code == 503
    assert second.headers["retry-after"] == "1"
    assert second.json() == {"detail": BUSY}
    assert small.status_code == 201 and first.status_code == 201
    assert app.state.body_gate.busy == 0
    with client_for(app) as c:  # the slot is free again
        monkeypatch.setattr(body_module, "decode", decode)
        create(c, custom(2000))


def test_conversion_by_chunks_checks_every_chunk():
    rows = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]
    assert as_matrix(rows, chunk=2).tolist() == rows
    assert as_matrix(rows[:4] + [[9, 10, 11]], chunk=2) is None  # a wider row in the last chunk
    assert as_matrix(rows[:4] + [[9, "a"]], chunk=2) is None
    assert as_matrix(rows[:2] + [[float("inf"), 1]] + rows[3:], chunk=2) is None
