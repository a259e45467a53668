"""A store outage is a 503 with a clear detail, never a 500; /api/health says so; all recovers after.
And a model lock that cannot be had in time is a 503 with Retry-After."""
from __future__ import annotations

import shutil
import subprocess
import threading
import time

import pytest
import redis

from tests.support import free_port, stop, unavailable

from fastapi.testclient import TestClient

from .utils import SMALL, make_app

UNAVAILABLE = {"detail": "the model store is unavailable; try again shortly"}


def start_redis(port: int, workdir) -> subprocess.Popen:
    """A redis-server with an append-only file, so its data outlives a stop and start."""
    exe = shutil.which("redis-server")
    if exe is None:
        unavailable("redis-server is not on PATH (Debian/Ubuntu: apt-get install redis-server)")
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
                             "--appendfsync", "always", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    client = redis.Redis(port=port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            return proc
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                stop(proc)
                pytest.fail("redis-server did not start")
            time.sleep(0.05)


@pytest.mark.redis
def test_with_redis_stopped_health_and_the_api_answer_503_and_recover(tmp_path):
    port = free_port()
    server = start_redis(port, tmp_path)
    try:
        url = f"redis://127.0.0.1:{port}/0?socket_timeout=2&socket_connect_timeout=1"
        with TestClient(make_app(store=url)) as client:  # raises on any unhandled error (a 500)
            made = client.post("/api/models", json=SMALL).json()
            mid = made["id"]
            client.headers["Authorization"] = f"Bearer {made['token']}"
            assert client.post(f"/api/models/{mid}/train", json={"steps": 5}).json()["step"] == 5
            stop(server)

            r = client.get("/api/health")
            assert (r.status_code, r.json()) == (503, UNAVAILABLE) and r.headers["retry-after"] == "5"
            for method, path, body in [("GET", f"/api/models/{mid}", None),
                                       ("POST", f"/api/models/{mid}/train", {"steps": 5}),
                                       ("GET", f"/api/models/{mid}/history", None),
                                       ("POST", "/api/models", SMALL),
                                       ("GET", "/api/class/status", None)]:
                r = client.request(method, path, json=body)
                assert (r.status_code, r.json()) == (503, UNAVAILABLE), (method, path, r.text)

            server = start_redis(port, tmp_path)
            assert client.get("/api/health").json() == {"status": "ok"}
            assert client.get(f"/api/models/{mid}").json()["step"] == 5  # nothing was lost or changed
            assert client.post(f"/api/models/{mid}/train", json={"steps": 5}).json()["step"] == 10
            assert len(client.get(f"/api/models/{mid}/history").json()["step"]) == 10
    finally:
        stop(server)


def test_sqlite_file_gone_bad_is_503_and_health_says_so(tmp_path):
    db = tmp_path / "db.sqlite3"
    with TestClient(make_app(store=f"sqlite:///{db}")) as client:
        mid = client.post("/api/models", json=SMALL).json()["id"]
        store = client.app.state.services.store
        store._conn().execute("ALTER TABLE models RENAME TO models_away")  # what an unreadable store looks like
        r = client.get("/api/health")
        assert (r.status_code, r.json()) == (503, UNAVAILABLE)
        r = client.get(f"/api/models/{mid}")
        assert (r.status_code, r.json()) == (503, UNAVAILABLE)
        store._conn().execute("ALTER TABLE models_away RENAME TO models")
        assert client.get("/api/health").json() == {"status": "ok"}
        assert client.get(f"/api/models/{mid}").status_code == 200


def test_a_lock_that_cannot_be_had_in_time_is_503_with_retry_after():
    app = make_app(lock_timeout=0.2)
    with TestClient(app) as client:
        made = client.post("/api/models", json=SMALL).json()
        mid = made["id"]
        client.headers["Authorization"] = f"Bearer {made['token']}"
        store = app.state.services.store
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with store.lock(mid):
                held.set()
                release.wait(30)

        t = threading.Thread(target=hold)
        t.start()
        held.wait(10)
        try:
            r = client.post(f"/api/models/{mid}/train", json={"steps": 1})
            assert (r.status_code, r.json()) == (503, {"detail": f"model {mid} is busy with another call; "
                                                                 "try again shortly"})
            assert r.headers["retry-after"] == "1"
            assert client.get(f"/api/models/{mid}").json()["step"] == 0  # the refusal changed nothing
        finally:
            release.set()
            t.join()
        assert client.post(f"/api/models/{mid}/train", json={"steps": 1}).json()["step"] == 1


# -- a Redis that answers, but refuses ------------------------------------------------------------
def _refuse_auth(admin: redis.Redis) -> None:
    """A password the app does not know; the app's connections are dropped, so it must log in again."""
    admin.config_set("requirepass", "not-the-apps")
    admin.client_kill_filter(_type="normal", skipme=True)


def _allow_auth(admin: redis.Redis) -> None:
    admin.config_set("requirepass", "")


def _out_of_memory(admin: redis.Redis) -> None:
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", "1")


def _memory_back(admin: redis.Redis) -> None:
    admin.config_set("maxmemory", "0")


def _read_only(admin: redis.Redis) -> None:
    admin.replicaof("127.0.0.1", free_port())  # a master that is not there: a stale, read-only replica
    admin.config_set("replica-read-only", "yes")


def _writable(admin: redis.Redis) -> None:
    admin.replicaof("NO", "ONE")


def _paused(admin: redis.Redis) -> None:
    admin.client_pause(3000)  # every command waits 3 s: longer than the app's socket timeout


def _unpaused(admin: redis.Redis) -> None:
    admin.client_unpause()


MISBEHAVIOURS = {"refusing": (_refuse_auth, _allow_auth), "out of memory": (_out_of_memory, _memory_back),
                 "read-only": (_read_only, _writable), "timing out": (_paused, _unpaused)}
UNAVAILABLE_FRAME = {"type": "error", "status": 503, **UNAVAILABLE, "retry_after": 5}


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server for one test, which the test may break: (url, admin client)."""
    from tests import support
    servers = support.redis_server(tmp_path)
    url = next(servers)
    admin = redis.Redis.from_url(url, socket_timeout=5)
    try:
        yield url + "?socket_timeout=0.5&socket_connect_timeout=0.5", admin
    finally:
        admin.close()
        servers.close()


@pytest.mark.parametrize("rate_limit", [0, 1000], ids=["store", "store and rate limits"])
@pytest.mark.parametrize("how", list(MISBEHAVIOURS))
def test_a_redis_that_refuses_is_503_on_health_create_train_and_stream_and_recovers(own_redis, how, rate_limit):
    url, admin = own_redis
    breaks, mends = MISBEHAVIOURS[how]
    with TestClient(make_app(store=url, rate_limit_per_client=rate_limit)) as client:  # any unhandled error raises
        made = client.post("/api/models", json=SMALL).json()
        mid = made["id"]
        client.headers["Authorization"] = f"Bearer {made['token']}"
        assert client.post(f"/api/models/{mid}/train", json={"steps": 5}).json()["step"] == 5
        breaks(admin)
        try:
            for method, path, body in [("GET", "/api/health", None), ("POST", "/api/models", SMALL),
                                       ("POST", f"/api/models/{mid}/train", {"steps": 5})]:
                r = client.request(method, path, json=body)
                assert (r.status_code, r.json(), r.headers.get("retry-after")) == (503, UNAVAILABLE, "5"), \
                    (method, path, r.text)
            with client.websocket_connect(f"/api/models/{mid}/stream?token={made['token']}") as ws:
                ws.send_json({"action": "play"})
                assert ws.receive_json() == UNAVAILABLE_FRAME
        finally:
            if how == "refusing":
                admin.auth("not-the-apps")
            mends(admin)
        assert client.get("/api/health").json() == {"status": "ok"}
        assert client.get(f"/api/models/{mid}").json()["step"] == 5  # the refusals changed nothing
        assert client.post(f"/api/models/{mid}/train", json={"steps": 5}).json()["step"] == 10
        with client.websocket_connect(f"/api/models/{mid}/stream?token={made['token']}") as ws:
            ws.send_json({"action": "step"})
            assert ws.receive_json()["step"] == 11
