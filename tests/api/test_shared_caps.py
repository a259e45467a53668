"""The per-address and per-token caps hold across processes sharing a store (Redis, or one SQLite file),
and a killed process's slots lapse within the lease TTL."""
from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
import redis
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from app.service.shared_slots import RedisSlots, SqliteSlots

from .test_fairness import cap_429, http_from, stream_429
from .test_live_server import SPEC, servers  # noqa: F401 (the fixture)

LEASE_TTL = 4  # seconds


def on_store(request, servers, kind: str, workers: int | None = None):  # noqa: F811
    if kind == "redis":
        url = request.getfixturevalue("redis_server") + f"?prefix=t{uuid.uuid4().hex[:10]}:"
        return lambda **env: servers(store=url, lease_ttl=LEASE_TTL, workers=workers, **env)
    return lambda **env: servers("shared.sqlite3", lease_ttl=LEASE_TTL, workers=workers, **env)


@pytest.fixture(params=["redis", "sqlite"])
def two_servers(request, servers):  # noqa: F811
    """(start, kind): start(**settings) starts one more server on the store the two share."""
    return on_store(request, servers, request.param), request.param


@pytest.fixture(params=["redis", "sqlite", "redis-workers", "sqlite-workers"])
def two_processes(request, servers):  # noqa: F811
    """(start, kind): two servers on one store, or one `serve --workers 2` whose two workers share it
    (start then returns that one server each time: the kernel spreads its connections over the workers)."""
    kind, _, workers = request.param.partition("-")
    if not workers:
        return on_store(request, servers, kind), kind
    start, one = on_store(request, servers, kind, workers=2), []

    def start_once(**env):
        if not one:
            one.append(start(**env))
            assert len(one[0].worker_pids()) == 2
        return one[0]
    return start_once, kind


def open_stream(server, model: dict, address: str):
    return connect(f"{server.ws_url}/api/models/{model['id']}/stream?token={model['token']}", proxy=None,
                   open_timeout=30, source_address=(address, 0))


def assert_refused(server, model: dict, address: str, kind: str = "client", cap: int = 2) -> None:
    with open_stream(server, model, address) as ws:
        assert json.loads(ws.recv(timeout=30)) == stream_429(kind, cap)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=30)
        assert ws.close_code == 4429


def first_message_after_step(server, model: dict, address: str) -> dict:
    with open_stream(server, model, address) as ws:
        ws.send(json.dumps({"action": "step"}))
        return json.loads(ws.recv(timeout=30))


@pytest.mark.slow
def test_two_processes_give_an_address_its_stream_cap_once(two_processes):
    start, _ = two_processes
    a, b = start(streams_per_client=2), start(streams_per_client=2)
    loud = "127.0.0.21"
    with http_from(a, loud) as h:
        models = [h.post("/api/models", json=SPEC).json() for _ in range(3)]
    with open_stream(a, models[0], loud) as s1, open_stream(a, models[1], loud) as s2:
        for ws in (s1, s2):
            ws.send(json.dumps({"action": "step"}))
            assert json.loads(ws.recv(timeout=30))["step"] == 1
        assert_refused(b, models[2], loud)  # the third, on the other process
        assert first_message_after_step(b, models[2], "127.0.0.22")["step"] == 1  # another address streams
    # both closed: a slot is freed once a stream has ended, in whichever process held it
    for _ in range(100):
        first = first_message_after_step(b, models[2], loud)
        if first.get("type") == "frame":
            break
        time.sleep(0.05)
    assert first["type"] == "frame" and first["step"] == 2
    for s in (a, b):
        s.assert_no_tracebacks()


@pytest.mark.slow
def test_two_processes_give_a_token_its_stream_cap_once(two_processes):
    start, _ = two_processes
    a, b = start(streams_per_token=1), start(streams_per_token=1)
    with http_from(a, "127.0.0.23") as h:
        model = h.post("/api/models", json=SPEC).json()
    with open_stream(a, model, "127.0.0.23") as ws:
        ws.send(json.dumps({"action": "step"}))
        assert json.loads(ws.recv(timeout=30))["step"] == 1
        assert_refused(b, model, "127.0.0.24", kind="token", cap=1)


@pytest.mark.slow
def test_two_processes_give_an_address_its_call_cap_once(two_processes):
    start, kind = two_processes
    settings = dict(concurrent_per_client=1, busy_wait=0, train_time_budget=6)  # the long call runs 6 s
    a, b = start(**settings), start(**settings)
    address = "127.0.0.25"
    with http_from(a, "127.0.0.27") as h:  # another address makes them: two creates in a row are two calls
        m = h.post("/api/models", json=SPEC).json()
        other = h.post("/api/models", json=SPEC).json()
    long_call: dict = {}

    def train_long() -> None:
        with http_from(a, address) as h:
            long_call["r"] = h.post(f"/api/models/{m['id']}/train", json={"steps": 100_000},
                                    headers={"Authorization": f"Bearer {m['token']}"})

    t = threading.Thread(target=train_long)
    t.start()
    try:
        deadline = time.monotonic() + 30
        while held_calls(a, kind, f"call:client:{address}") == 0:  # the long call holds its slot
            assert time.monotonic() < deadline and t.is_alive(), long_call
            time.sleep(0.02)
        with http_from(b, address) as h:
            r = h.post(f"/api/models/{other['id']}/train", json={"steps": 1},
                       headers={"Authorization": f"Bearer {other['token']}"})
        assert (r.status_code, r.json(), r.headers["retry-after"]) == (429, cap_429("client", 1), "1")
    finally:
        t.join(60)
    assert long_call["r"].status_code == 200
    with http_from(b, address) as h:  # the slot is free again, once the long call's process has given it back
        for _ in range(100):
            r = h.post(f"/api/models/{other['id']}/train", json={"steps": 1},
                       headers={"Authorization": f"Bearer {other['token']}"})
            if r.status_code != 429:
                break
            time.sleep(0.05)
    assert r.status_code == 200 and r.json()["step"] == 1


def held_calls(server, kind: str, key: str) -> int:
    """Unexpired slot leases of key in the store the servers share."""
    if kind == "redis":
        store = server.env["PLAYGROUND_STORE"]
        prefix = store.split("prefix=")[1]
        r = redis.Redis.from_url(store.split("?")[0])
        try:
            return r.zcount(prefix + "slots:" + key, time.time() * 1000, "+inf")
        finally:
            r.close()
    import sqlite3
    db = sqlite3.connect(f"{server.db}.locks/slots.sqlite3")
    try:
        return db.execute("SELECT count(*) FROM slots WHERE key = ? AND expires > ?", (key, time.time())).fetchone()[0]
    finally:
        db.close()


@pytest.mark.slow
def test_a_killed_process_frees_its_slots_within_the_lease_ttl(two_servers):
    start, _ = two_servers
    a, b = start(streams_per_client=1), start(streams_per_client=1)
    address = "127.0.0.26"
    with http_from(a, address) as h:
        models = [h.post("/api/models", json=SPEC).json() for _ in range(2)]
    with open_stream(a, models[0], address) as ws:
        ws.send(json.dumps({"action": "step"}))
        assert json.loads(ws.recv(timeout=30))["step"] == 1
        a.kill()
        killed = time.monotonic()
        assert_refused(b, models[1], address, cap=1)  # the dead process's lease still counts ...
        first: dict = {}
        while time.monotonic() < killed + LEASE_TTL + 1 and first.get("type") != "frame":
            try:
                first = first_message_after_step(b, models[1], address)
            except ConnectionClosed:  # refused before the step went out
                time.sleep(0.2)
        assert first.get("type") == "frame" and first["step"] == 1  # ... until it lapses


# -- the leases themselves -----------------------------------------------------------------------
@pytest.fixture(params=["redis", "sqlite"])
def two_counters(request, tmp_path):
    """Two SharedSlots on one store, as two processes hold them."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_server")
        prefix = f"t{uuid.uuid4().hex[:10]}:slots:"
        pair = RedisSlots(url, prefix, ttl=1), RedisSlots(url, prefix, ttl=1)
    else:
        path = str(tmp_path / "slots.sqlite3")
        pair = SqliteSlots(path, ttl=1), SqliteSlots(path, ttl=1)
    yield pair
    for slots in pair:
        slots.close()
        assert slots.holding() == 0


def test_leases_count_across_holders_and_free_on_release(two_counters):
    a, b = two_counters
    first, second = a.acquire("k", 2), b.acquire("k", 2)
    assert first and second and first != second
    assert b.acquire("k", 2) is None and a.acquire("k", 2) is None
    assert a.acquire("other", 2)  # each key has its own cap
    a.release("k", first)
    third = b.acquire("k", 2)
    assert third and a.acquire("k", 2) is None


def test_a_held_lease_is_renewed_and_an_abandoned_one_lapses(two_counters):
    a, b = two_counters
    kept = a.acquire("k", 2)
    abandoned = b.acquire("k", 2)
    with b._mu:  # b's process dies: nobody renews its lease
        b._held.clear()
    time.sleep(2.5)  # past the 1 s ttl: a's lease was renewed, b's lapsed
    assert b.acquire("k", 2) is not None  # the lapsed lease freed its slot ...
    assert a.acquire("k", 2) is None      # ... and the renewed one still counts
    a.release("k", kept)
    assert abandoned
