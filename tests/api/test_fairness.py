"""Per-client fairness (app/api/fairness.py): concurrency caps on expensive calls per client address and
per token, a process-wide cap that keeps worker threads for reads, and caps on open streams.

The middleware is first driven around a small app whose "expensive" route blocks until the test lets it
go, so every count is exact; then through the real app, and against a live uvicorn server with clients
bound to different loopback addresses (two students)."""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import anyio.from_thread
import anyio.to_thread
import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from app.api.fairness import FairnessMiddleware, heavy_detail, is_expensive
from app.config import Settings

from .test_live_server import SPEC, Server
from .utils import SMALL, TOKENS, ApiClient, make_app


def cap_429(kind: str, cap: int) -> dict:
    text, env = {
        "client": ("too many expensive calls at once from your address", "PLAYGROUND_CONCURRENT_PER_CLIENT"),
        "token": ("too many expensive calls at once with this model token", "PLAYGROUND_CONCURRENT_PER_TOKEN"),
    }[kind]
    return {"detail": f"{text}: the limit is {cap} ({env}); retry after 1 s"}


def stream_429(kind: str, cap: int) -> dict:
    text, env = {"client": ("too many open streams from your address", "PLAYGROUND_STREAMS_PER_CLIENT"),
                 "token": ("too many open streams with this model token", "PLAYGROUND_STREAMS_PER_TOKEN")}[kind]
    return {"type": "error", "status": 429, "detail": f"{text}: the limit is {cap} ({env}); close one, then retry",
            "retry_after": 1}


BUSY = ("the server is busy: {} expensive calls are running, the limit per process "
        "(PLAYGROUND_CONCURRENT_EXPENSIVE); retry after 1 s")


# -- which calls are expensive -------------------------------------------------------------------
@pytest.mark.parametrize("method,path", [
    ("POST", "/api/models"), ("POST", "/api/models/import"), ("POST", "/api/datasets"), ("GET", "/api/datasets/abc"),
    *[("POST", f"/api/models/abc/{p}") for p in ("train", "gradcheck", "predict", "gradients", "check", "derive",
                                                   "fork", "reset")],
    *[("GET", f"/api/models/abc/{p}") for p in ("boundary", "gradients", "export", "data", "parameters")],
    ("PUT", "/api/models/abc/parameters"), ("GET", "/api/class/leaderboard"), ("GET", "/api/class/gallery"),
    ("POST", "/api/models/abc/train/"),
])
def test_expensive_calls(method, path):
    assert is_expensive(method, path)


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/models/abc"), ("GET", "/api/models/abc/checkpoints"), ("GET", "/api/models/abc/history"),
    ("GET", "/api/models/abc/trace"), ("GET", "/api/catalog"), ("GET", "/api/health"), ("GET", "/"),
    ("PATCH", "/api/models/abc"), ("DELETE", "/api/models/abc"), ("GET", "/api/models/abc/train"),
    ("POST", "/api/models/abc/train/more"), ("GET", "/api/class/status"),
])
def test_cheap_calls(method, path):
    assert not is_expensive(method, path)


def test_the_process_cap_must_leave_threads_for_reads(monkeypatch):
    with pytest.raises(ValidationError) as e:
        Settings(concurrent_expensive=40, worker_threads=40)
    assert "concurrent_expensive (40) must be below worker_threads (40), so cheap reads always find a thread" in str(e.value)
    assert Settings(concurrent_expensive=0, worker_threads=2).concurrent_expensive == 0  # 0: no process cap
    monkeypatch.setenv("PLAYGROUND_CONCURRENT_PER_CLIENT", "3")
    monkeypatch.setenv("PLAYGROUND_STREAMS_PER_TOKEN", "5")
    monkeypatch.setenv("PLAYGROUND_WORKER_THREADS", "20")
    s = Settings()
    assert (s.concurrent_per_client, s.streams_per_token, s.worker_threads) == (3, 5, 20)
    defaults = {k: Settings.model_fields[k].default for k in (
        "concurrent_per_client", "concurrent_per_token", "streams_per_client", "streams_per_token",
        "concurrent_expensive", "worker_threads", "busy_wait")}
    assert defaults == {"concurrent_per_client": 4, "concurrent_per_token": 2, "streams_per_client": 4,
                        "streams_per_token": 2, "concurrent_expensive": 16, "worker_threads": 40, "busy_wait": 3.0}


# -- the middleware around a small app -----------------------------------------------------------
class Gate:
    """An expensive route that holds its worker thread until released, and a cheap read."""

    def __init__(self):
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        self.threads_total = None

    def app(self, **settings) -> FairnessMiddleware:
        def train(request):
            self.threads_total = anyio.from_thread.run_sync(
                lambda: anyio.to_thread.current_default_thread_limiter().total_tokens)
            self.entered.release()
            assert self.release.wait(60)
            return JSONResponse({"trained": True})

        def read(request):
            return JSONResponse({"read": True})

        async def stream(ws):
            await ws.accept()
            try:
                while True:
                    await ws.send_text(await ws.receive_text())
            except WebSocketDisconnect:
                pass

        inner = Starlette(routes=[Route("/api/models/{mid}/train", train, methods=["POST"]),
                                  Route("/api/models/{mid}/derive", train, methods=["POST"]),
                                  Route("/api/models/{mid}", read, methods=["GET"]),
                                  WebSocketRoute("/api/models/{mid}/stream", stream)])
        settings.setdefault("store", "memory://")
        return FairnessMiddleware(inner, settings=Settings(**settings))

    def wait_entered(self, n: int) -> None:
        for _ in range(n):
            assert self.entered.acquire(timeout=30)


def student(app, address: str) -> TestClient:
    return TestClient(app, client=(address, 50000))


def test_concurrent_calls_per_client_address_are_capped():
    gate = Gate()
    app = gate.app(concurrent_per_client=2, concurrent_per_token=0, busy_wait=0.1)
    with student(app, "10.0.0.1") as a, student(app, "10.0.0.2") as b, ThreadPoolExecutor(4) as pool:
        running = [pool.submit(a.post, f"/api/models/m{i}/train") for i in range(2)]
        gate.wait_entered(2)
        r = a.post("/api/models/m2/train")
        assert (r.status_code, r.headers["retry-after"], r.json()) == (429, "1", cap_429("client", 2))
        # reads are not capped, and another address has its own slots
        assert [a.get(f"/api/models/m{i}").status_code for i in range(10)] == [200] * 10
        other = pool.submit(b.post, "/api/models/m9/train")
        gate.wait_entered(1)
        gate.release.set()
        assert [f.result().status_code for f in running + [other]] == [200, 200, 200]
        # finished calls gave their slots back
        assert a.post("/api/models/m2/train").status_code == 200
        assert app.slots.held("call:client:10.0.0.1") == 0


def test_concurrent_calls_per_token_are_capped_across_addresses():
    gate = Gate()
    app = gate.app(concurrent_per_client=0, concurrent_per_token=1, busy_wait=0.1)
    auth = {"Authorization": "Bearer token-of-one-model"}
    with student(app, "10.0.0.1") as a, student(app, "10.0.0.2") as b, ThreadPoolExecutor(2) as pool:
        running = pool.submit(a.post, "/api/models/m1/train", headers=auth)
        gate.wait_entered(1)
        r = b.post("/api/models/m1/train", headers=auth)  # the same token from elsewhere
        assert (r.status_code, r.headers["retry-after"], r.json()) == (429, "1", cap_429("token", 1))
        r = b.post("/api/models/m1/train?token=token-of-one-model")  # the stream's way of sending it
        assert (r.status_code, r.json()) == (429, cap_429("token", 1))
        other = pool.submit(b.post, "/api/models/m2/train", headers={"Authorization": "Bearer another"})
        gate.wait_entered(1)
        gate.release.set()
        assert (running.result().status_code, other.result().status_code) == (200, 200)


def test_the_process_cap_keeps_threads_for_reads_and_waits_briefly_before_503():
    gate = Gate()
    # 5 worker threads, at most 3 of them for expensive calls: reads always have 2
    app = gate.app(concurrent_per_client=0, concurrent_per_token=0, concurrent_expensive=3, worker_threads=5,
                   busy_wait=0.2)
    with student(app, "10.0.0.1") as a, ThreadPoolExecutor(30) as pool:
        running = [pool.submit(a.post, f"/api/models/m{i}/train") for i in range(3)]
        gate.wait_entered(3)
        assert gate.threads_total == 5  # the pool size was set at startup
        reads = [pool.submit(a.get, f"/api/models/m{i}") for i in range(20)]
        assert [f.result().status_code for f in reads] == [200] * 20  # while every expensive slot is taken
        r = a.post("/api/models/m3/train")  # waited busy_wait for a slot, then refused
        assert (r.status_code, r.headers["retry-after"], r.json()) == (503, "1", {"detail": BUSY.format(3)})
        assert not any(f.done() for f in running)
        gate.release.set()
        assert [f.result().status_code for f in running] == [200] * 3
        assert app.slots.held("process") == 0


@pytest.mark.parametrize("cap", ["concurrent_per_client", "concurrent_per_token", "concurrent_expensive"])
def test_a_call_waiting_for_a_slot_gets_the_next_free_one(cap):
    gate = Gate()
    caps = {"concurrent_per_client": 0, "concurrent_per_token": 0, "concurrent_expensive": 0, cap: 1}
    app = gate.app(**caps, worker_threads=4, busy_wait=60)
    auth = {"Authorization": "Bearer one-token"}
    with student(app, "10.0.0.1") as a, ThreadPoolExecutor(2) as pool:
        first = pool.submit(a.post, "/api/models/m1/train", headers=auth)
        gate.wait_entered(1)
        waiting = pool.submit(a.post, "/api/models/m1/train", headers=auth)
        while app.slots.held("waiting") == 0:
            time.sleep(0.01)
        assert not waiting.done()
        gate.release.set()
        assert (first.result().status_code, waiting.result().status_code) == (200, 200)
        assert app.slots._held == {}


def test_open_streams_per_address_and_per_token():
    gate = Gate()
    app = gate.app(streams_per_client=2, streams_per_token=1)
    with student(app, "10.0.0.1") as a, student(app, "10.0.0.2") as b:
        with a.websocket_connect("/api/models/m1/stream") as s1, a.websocket_connect("/api/models/m2/stream"):
            s1.send_text("hello")
            assert s1.receive_text() == "hello"
            with a.websocket_connect("/api/models/m3/stream") as refused:
                assert refused.receive_json() == stream_429("client", 2)
                with pytest.raises(WebSocketDisconnect) as closed:
                    refused.receive_text()
                assert closed.value.code == 4429
            with b.websocket_connect("/api/models/m3/stream?token=t1") as other:  # another address
                other.send_text("still here")
                assert other.receive_text() == "still here"
                with b.websocket_connect("/api/models/m3/stream?token=t1") as same_token:
                    assert same_token.receive_json() == stream_429("token", 1)
                # a token sent in the stream's first message is counted when it arrives
                with b.websocket_connect("/api/models/m3/stream") as late:
                    late.send_text(json.dumps({"action": "auth", "token": "t1"}))  # the page's first message
                    assert late.receive_json() == stream_429("token", 1)
                    with pytest.raises(WebSocketDisconnect) as closed:
                        late.receive_text()
                    assert closed.value.code == 4429
        # closed streams gave their slots back
        with a.websocket_connect("/api/models/m1/stream") as s1, a.websocket_connect("/api/models/m2/stream") as s2:
            s2.send_text(json.dumps({"token": "t1"}))
            assert json.loads(s2.receive_text()) == {"token": "t1"}
    assert not app.slots._held


# -- through the real app ------------------------------------------------------------------------
def test_stream_cap_on_the_real_stream_route():
    app = make_app(streams_per_client=2, streams_per_token=1)
    with ApiClient(app, client=("10.0.0.1", 40000)) as c:
        c.tokens = TOKENS
        m1, m2, m3 = (c.post("/api/models", json=SMALL).json()["id"] for _ in range(3))
        with c.websocket_connect(f"/api/models/{m1}/stream") as s1, c.websocket_connect(f"/api/models/{m2}/stream"):
            s1.send_json({"action": "step"})
            assert s1.receive_json()["step"] == 1
            with c.websocket_connect(f"/api/models/{m3}/stream") as refused:
                assert refused.receive_json() == stream_429("client", 2)
        with c.websocket_connect(f"/api/models/{m1}/stream") as s1:
            with c.websocket_connect(f"/api/models/{m1}/stream") as again:
                assert again.receive_json() == stream_429("token", 1)
            s1.send_json({"action": "step"})
            assert s1.receive_json()["step"] == 2
        assert c.get(f"/api/models/{m3}").json()["step"] == 0


# -- a live server, two students on two loopback addresses ---------------------------------------
def http_from(server: Server, address: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=120, trust_env=False,
                        transport=httpx.HTTPTransport(local_address=address))


@pytest.fixture
def live(tmp_path):
    started = []

    def start(**env) -> Server:
        s = Server(tmp_path / f"db{len(started)}.sqlite3", tmp_path / f"uvicorn-{len(started)}.log", **env).start()
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
        s.assert_no_tracebacks()


@pytest.mark.slow
def test_one_address_with_40_parallel_trains_gets_429s_and_others_keep_working(live):
    server = live(train_time_budget=8)  # every other setting at its default
    loud, quiet = "127.0.0.2", "127.0.0.3"
    with http_from(server, loud) as h:
        models = [h.post("/api/models", json=SPEC).json() for _ in range(40)]
    with http_from(server, quiet) as h:
        mine = h.post("/api/models", json=SPEC).json()
    mine_auth = {"Authorization": f"Bearer {mine['token']}"}

    def train(m):
        with http_from(server, loud) as h:
            r = h.post(f"/api/models/{m['id']}/train", json={"steps": 100_000},
                       headers={"Authorization": f"Bearer {m['token']}"})
            return r, time.monotonic()

    with ThreadPoolExecutor(40) as pool:
        storm = [pool.submit(train, m) for m in models]
        # the other student, meanwhile: reads, and a train call of their own
        reads = []
        with http_from(server, quiet) as h:
            for i in range(10):
                for path in ("", "/parameters", "/history?max_points=50"):
                    reads.append(h.get(f"/api/models/{mine['id']}{path}").status_code)
            own = h.post(f"/api/models/{mine['id']}/train", json={"steps": 20}, headers=mine_auth)
        others_done = time.monotonic()
        results = [f.result() for f in storm]
    assert reads == [200] * 30
    assert (own.status_code, own.json()["step"]) == (200, 20)
    statuses = [r.status_code for r, _ in results]
    assert (statuses.count(200), statuses.count(429)) == (4, 36), statuses
    assert {r.json()["detail"] for r, _ in results if r.status_code == 429} == {cap_429("client", 4)["detail"]}
    assert all(r.headers["retry-after"] == "1" for r, _ in results if r.status_code == 429)
    admitted = [(r.json(), t) for r, t in results if r.status_code == 200]
    assert all(body["stopped"] == "time_budget" for body, _ in admitted)
    # the other student was served while the admitted calls were still training
    assert others_done < min(t for _, t in admitted)


@pytest.mark.slow
def test_open_streams_are_capped_per_address_over_real_sockets(live):
    server = live(streams_per_client=2)
    loud, quiet = "127.0.0.2", "127.0.0.3"
    with http_from(server, loud) as h:
        models = [h.post("/api/models", json=SPEC).json() for _ in range(4)]

    def open_stream(m, address):
        return connect(f"{server.ws_url}/api/models/{m['id']}/stream?token={m['token']}", proxy=None,
                       open_timeout=30, source_address=(address, 0))

    with open_stream(models[0], loud) as s1, open_stream(models[1], loud) as s2:
        for ws in (s1, s2):
            ws.send(json.dumps({"action": "step"}))
            assert json.loads(ws.recv(timeout=30))["step"] == 1
        with open_stream(models[2], loud) as refused:
            assert json.loads(refused.recv(timeout=30)) == stream_429("client", 2)
            with pytest.raises(ConnectionClosed):
                refused.recv(timeout=30)
            assert refused.close_code == 4429
        with open_stream(models[3], quiet) as other:  # another student streams
            other.send(json.dumps({"action": "play"}))
            frames = [json.loads(other.recv(timeout=30)) for _ in range(3)]
            assert all(f["type"] == "frame" and f["playing"] for f in frames)
    # both closed: the address may open streams again (the server frees a slot once the stream has ended)
    for _ in range(100):
        with open_stream(models[2], loud) as again:
            again.send(json.dumps({"action": "step"}))
            first = json.loads(again.recv(timeout=30))
        if first.get("type") == "frame":
            break
        time.sleep(0.05)
    assert first["type"] == "frame" and first["step"] == 1


@pytest.mark.slow
def test_a_stream_spamming_messages_is_closed_cleanly_and_keeps_its_steps(live):
    server = live(rate_limit_per_client=120)  # a burst of 20 messages, then two a second
    with http_from(server, "127.0.0.4") as h:
        m = h.post("/api/models", json=SPEC).json()
    received = []
    with connect(f"{server.ws_url}/api/models/{m['id']}/stream?token={m['token']}", proxy=None, open_timeout=30,
                 source_address=("127.0.0.4", 0)) as ws:
        ws.send(json.dumps({"action": "play"}))
        try:
            for _ in range(200):  # frames are flowing while the client floods the server
                ws.send(json.dumps({"action": "play"}))
                while True:
                    try:
                        received.append(json.loads(ws.recv(timeout=0.01)))
                    except TimeoutError:
                        break
            while True:
                received.append(json.loads(ws.recv(timeout=30)))
        except ConnectionClosed:
            pass
        assert ws.close_code == 4429
    errors = [f for f in received if f["type"] == "error"]
    assert len(errors) == 1 and errors[0]["status"] == 429 and errors[0]["detail"].startswith(
        "rate limit exceeded: 120 requests a minute per client address (PLAYGROUND_RATE_LIMIT_PER_CLIENT); ")
    frames = [f for f in received if f["type"] == "frame"]
    assert frames and received[-1]["type"] == "error"  # nothing after the refusal
    with http_from(server, "127.0.0.5") as h:  # the stream saved its steps as it ended
        for _ in range(100):
            step = h.get(f"/api/models/{m['id']}").json()["step"]
            if step >= frames[-1]["step"]:
                break
            time.sleep(0.05)
        assert step >= frames[-1]["step"]
        assert h.get("/api/health").status_code == 200


def test_the_instructors_calls_never_queue_behind_a_full_process_cap():
    gate = Gate()
    app = gate.app(concurrent_per_client=0, concurrent_per_token=2, concurrent_expensive=3, worker_threads=8,
                   busy_wait=0.2, admin_token="the-teachers-secret")
    with student(app, "10.0.0.1") as a, student(app, "10.0.0.9") as teacher, ThreadPoolExecutor(10) as pool:
        running = [pool.submit(a.post, f"/api/models/m{i}/train") for i in range(3)]
        gate.wait_entered(3)
        board = pool.submit(teacher.post, "/api/models/m9/train",
                            headers={"Authorization": "Bearer the-teachers-secret"})
        gate.wait_entered(1)  # the process cap is full, and the instructor's call runs all the same
        r = a.post("/api/models/m3/train")
        assert (r.status_code, r.json()) == (503, {"detail": BUSY.format(3)})  # a student's still waits, refused
        forged = teacher.post("/api/models/m4/train", headers={"Authorization": "Bearer not-the-secret"})
        assert forged.status_code == 503
        gate.release.set()
        assert [f.result().status_code for f in running + [board]] == [200] * 4
        assert app.slots.held("process") == 0


def test_heavy_calls_take_only_their_part_of_the_process_slots():
    gate = Gate()
    app = gate.app(concurrent_per_client=0, concurrent_per_token=0, concurrent_expensive=4, concurrent_heavy=2,
                   worker_threads=8, busy_wait=0.2)
    with student(app, "10.0.0.1") as a, student(app, "10.0.0.2") as b, ThreadPoolExecutor(10) as pool:
        derives = [pool.submit(a.post, f"/api/models/m{i}/derive") for i in range(2)]
        gate.wait_entered(2)
        r = a.post("/api/models/m2/derive")
        assert (r.status_code, r.headers["retry-after"], r.json()) == (503, "1", {"detail": heavy_detail(2)})
        trains = [pool.submit(b.post, f"/api/models/t{i}/train") for i in range(2)]
        gate.wait_entered(2)  # the class's other calls still find the process's remaining slots
        gate.release.set()
        assert [f.result().status_code for f in derives + trains] == [200] * 4
        assert (app.slots.held("process"), app.slots.held("heavy")) == (0, 0)
