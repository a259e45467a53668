"""No acknowledged step is lost across processes: a stream plays on server A while REST train calls go
to server B, on one SQLite file and on one Redis database. A step is acknowledged when a frame shows it
or a call returns it; the model ends at least at the sum of both, with one history entry per step.

While A plays it holds the model's lease: B's writers wait up to lease_wait for a pause and then get
409 "the model is playing elsewhere; pause it first", which changes nothing.
"""
from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from websockets.sync.client import connect

from .test_live_server import Server, WorkersServer, create
from .utils import TOKENS

PLAYING_ELSEWHERE = {"detail": "the model is playing elsewhere; pause it first"}
SPF = 5  # steps per frame: a frame's "losses" then lists every step it ran


def run_both(a: Server, b: Server) -> None:
    with a.client() as http_a, b.client() as http_b:
        mid = create(http_a)
        token = TOKENS[mid]
        rest_steps, refused, errors = [], [], []
        stop = threading.Event()

        def trainer() -> None:  # B: 100 steps a call, as fast as it is let
            while not stop.is_set():
                r = http_b.post(f"/api/models/{mid}/train", json={"steps": 100})
                if r.status_code == 200:
                    rest_steps.append(r.json()["steps_done"])
                elif r.status_code == 409 and r.json() == PLAYING_ELSEWHERE:
                    refused.append(1)
                    time.sleep(0.05)
                else:
                    errors.append((r.status_code, r.text))

        t = threading.Thread(target=trainer)
        t.start()
        stream_steps = 0
        try:
            with connect(f"{a.ws_url}/api/models/{mid}/stream?token={token}", proxy=None, max_size=2**24) as ws:
                for cycle in range(4):  # play a while, pause (the lease goes), let B in, again
                    ws.send(json.dumps({"action": "play", "steps_per_frame": SPF}))
                    for _ in range(12):
                        f = json.loads(ws.recv(timeout=30))
                        assert f["type"] == "frame", f
                        stream_steps += len(f["losses"])
                    ws.send(json.dumps({"action": "pause"}))
                    while (f := json.loads(ws.recv(timeout=30)))["playing"]:
                        stream_steps += len(f["losses"])
                    stream_steps += len(f["losses"])
                    time.sleep(0.3)
        finally:
            stop.set()
            t.join(120)
        assert not errors, errors
        assert rest_steps, "B never got a train call through between A's plays"
        final = http_b.get(f"/api/models/{mid}").json()["step"]
        history = http_b.get(f"/api/models/{mid}/history", params={"max_points": 1_000_000}).json()["step"]
        assert final >= stream_steps + sum(rest_steps), (final, stream_steps, sum(rest_steps))
        assert history == list(range(1, final + 1))  # exactly one entry per step
        assert http_a.get(f"/api/models/{mid}").json()["step"] == final


QUIET = {"save_interval": 0.5, "rate_limit_per_client": 0, "rate_limit_per_token": 0}  # B retries after each 409


def run_on_two_processes(tmp_path, db, **store) -> None:
    """Two live servers on one store: A streams while B trains by REST (run_both), then no tracebacks."""
    a = Server(db, tmp_path / "a.log", **store, **QUIET).start()
    b = Server(db, tmp_path / "b.log", **store, **QUIET).start()
    try:
        run_both(a, b)
    finally:
        a.stop()
        b.stop()
    a.assert_no_tracebacks()
    b.assert_no_tracebacks()


def test_stream_on_one_process_and_rest_on_another_lose_no_step_on_sqlite(tmp_path):
    run_on_two_processes(tmp_path, tmp_path / "db.sqlite3")


@pytest.mark.redis
def test_stream_on_one_process_and_rest_on_another_lose_no_step_on_redis(tmp_path, redis_server):
    run_on_two_processes(tmp_path, tmp_path / "unused.sqlite3", store=f"{redis_server}?prefix=n{uuid.uuid4().hex[:10]}:")


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def test_a_stream_and_rest_calls_on_two_workers_lose_no_step(tmp_path, request, kind):
    """One `serve --workers 2`: the stream's connection and the REST connection land on either worker."""
    store = {} if kind == "sqlite" else {
        "store": request.getfixturevalue("redis_server") + f"?prefix=w{uuid.uuid4().hex[:10]}:"}
    w = WorkersServer(tmp_path / "db.sqlite3", tmp_path / "w.log", workers=2, **store, **QUIET).start()
    try:
        assert len(w.worker_pids()) == 2
        run_both(w, w)
    finally:
        w.stop()
    w.assert_no_tracebacks()
