"""A process killed (SIGKILL) while it holds a model, playing its stream or in the middle of a train call,
leaves the model writable by another process within lease_ttl, on SQLite and on Redis: the stream's
lease and the model lock both lapse after lease_ttl. The writer waits at most lease_ttl + 1 s for each
(lease_wait, lock_timeout), so a lock or lease that outlives lease_ttl shows as its 409 or 503."""
from __future__ import annotations

import fcntl
import json
import os
import threading
import time
import uuid

import httpx
import pytest
import redis
from websockets.sync.client import connect

from .test_live_server import Server, create
from .utils import TOKENS

LEASE_TTL = 2.0
BIG = {"layers": [{"units": 128, "activation": "tanh"}, {"units": 128, "activation": "tanh"},
                  {"units": 1, "activation": "sigmoid"}], "batch_size": None,
       "data": {"dataset": "circle", "samples": 4000}}  # a full batch: each step takes a while


def lock_held(store: str, db, mid: str) -> bool:
    if store.startswith("redis"):
        url, prefix = store.split("?prefix=")
        return redis.Redis.from_url(url).exists(f"{prefix}lock:{mid}") == 1
    fd = os.open(f"{db}.locks/{mid}.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def wait_until(cond, what: str, bound: float = 30.0) -> None:
    deadline = time.monotonic() + bound
    while not cond():
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.01)


@pytest.fixture(params=["sqlite", "redis"])
def pair(request, tmp_path):
    db = tmp_path / "k.sqlite3"
    url = f"{request.getfixturevalue('redis_server')}?prefix=k{uuid.uuid4().hex[:10]}:" \
        if request.param == "redis" else f"sqlite:///{db}"
    common = {"store": url, "lease_ttl": LEASE_TTL, "lease_wait": LEASE_TTL + 1, "lock_timeout": LEASE_TTL + 1,
              "rate_limit_per_client": 0, "rate_limit_per_token": 0}
    holder = Server(db, tmp_path / "a.log", **common, train_time_budget=60).start()
    writer = Server(db, tmp_path / "b.log", **common).start()
    yield holder, writer, url, db
    holder.stop()
    writer.stop()
    writer.assert_no_tracebacks()


def write_after_kill(holder: Server, writer: Server, mid: str) -> None:
    holder.kill()
    with writer.client() as http:
        r = http.post(f"/api/models/{mid}/train", json={"steps": 1})
        assert r.status_code == 200, r.text
        assert http.delete(f"/api/models/{mid}").status_code == 204


def test_a_killed_playing_stream_frees_its_model_within_the_lease(pair):
    holder, writer, _, _ = pair
    with holder.client() as http:
        mid = create(http)
    ws = connect(f"{holder.ws_url}/api/models/{mid}/stream?token={TOKENS[mid]}", proxy=None, max_size=2**24)
    ws.send(json.dumps({"action": "play", "steps_per_frame": 5}))
    for _ in range(5):
        assert json.loads(ws.recv(timeout=30))["type"] == "frame"
    write_after_kill(holder, writer, mid)
    ws.close()


def test_a_process_killed_in_a_train_call_frees_its_model_within_the_lease(pair):
    holder, writer, store, db = pair
    with holder.client() as http:
        mid = create(http, BIG)

    def long_call() -> None:
        try:
            with holder.client() as http:
                http.post(f"/api/models/{mid}/train", json={"steps": 100_000})
        except httpx.HTTPError:
            pass  # the server dies under it

    t = threading.Thread(target=long_call)
    t.start()
    wait_until(lambda: lock_held(store, db, mid), "saw the train call hold the model lock")
    write_after_kill(holder, writer, mid)
    t.join(30)
