"""Rate limits (429 with Retry-After, per client address and per bearer token, every stream message
counted), security headers on every response, and CORS (closed unless PLAYGROUND_CORS_ORIGINS names origins).

The limits are the `limits` library's sliding window counter: N requests a minute allow a burst of
max(10, N/10), then one every 60/N s. Its clock (time.time in the memory storage) is replaced by a fake
one, so every count and every Retry-After is exact."""
from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid

import httpx
import limits.aio.storage.memory
import pytest
import redis
from starlette.websockets import WebSocketDisconnect

from app.config import Settings
from app.service.ratelimit import RateLimiter, Slots, token_key, window
from tests import support

from .utils import SMALL, ApiClient, TOKENS, make_app


class Clock:
    def __init__(self, now: float = 1005.0):
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(limits.aio.storage.memory, "time", c)
    return c


def client(app, address: str = "10.0.0.1") -> ApiClient:
    c = ApiClient(app, client=(address, 40000))
    c.tokens = TOKENS
    return c


def detail(kind: str, per_minute: int, retry_after: int) -> str:
    who, env = {"client": ("client address", "PLAYGROUND_RATE_LIMIT_PER_CLIENT"),
                "token": ("model token", "PLAYGROUND_RATE_LIMIT_PER_TOKEN")}[kind]
    return f"rate limit exceeded: {per_minute} requests a minute per {who} ({env}); retry after {retry_after} s"


def assert_429(r, retry_after: int, kind: str = "client", per_minute: int = 60) -> None:
    assert r.status_code == 429, r.text
    assert r.headers["retry-after"] == str(retry_after)
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"detail": detail(kind, per_minute, retry_after)}
    assert r.headers["x-content-type-options"] == "nosniff"


def assert_stream_refused(ws, retry_after: int, kind: str = "client", per_minute: int = 60) -> None:
    """The stream's answer past a rate limit: an error frame saying why, then close code 4429."""
    assert ws.receive_json() == {"type": "error", "status": 429, "detail": detail(kind, per_minute, retry_after),
                                 "retry_after": retry_after}
    with pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_json()
    assert closed.value.code == 4429


def test_a_minute_rate_is_a_burst_then_a_steady_rate():
    assert (window(60).amount, window(60).get_expiry()) == (10, 10)       # 10, then one a second
    assert (window(6).amount, window(6).get_expiry()) == (10, 100)        # 10, then one every 10 s
    assert (window(3000).amount, window(3000).get_expiry()) == (300, 6)   # a tenth, then 50 a second
    assert (window(20_000).amount, window(20_000).get_expiry()) == (2000, 6)


# -- per client ------------------------------------------------------------------------------------
def test_per_client_limit_answers_429_with_retry_after(clock):
    # 60 a minute: a burst of 10 (a window of 10 s, the clock at its middle), then one a second
    app = make_app(rate_limit_per_client=60)
    with client(app, "10.0.0.1") as a, client(app, "10.0.0.2") as b:
        for _ in range(10):
            assert a.get("/api/catalog").status_code == 200
        assert_429(a.get("/api/catalog"), 6)  # this window ends in 5 s; allowed just after
        assert_429(a.post("/api/models", json=SMALL), 6)  # every /api call shares the budget
        clock.now += 0.4
        assert_429(a.get("/api/catalog"), 5)  # 4.6 s left: whole seconds after which it is allowed
        # another address has its own budget
        for _ in range(10):
            assert b.get("/api/catalog").status_code == 200
        assert_429(b.get("/api/catalog"), 5)
        # /api/health and the page are never limited
        for _ in range(30):
            assert a.get("/api/health").status_code == 200
        assert a.get("/").status_code == 200
        # the budget refills at the rate: one a second after the burst
        clock.now = 1010.5
        assert a.get("/api/catalog").status_code == 200
        assert_429(a.get("/api/catalog"), 1)
        clock.now += 1
        assert a.get("/api/catalog").status_code == 200
        assert_429(a.get("/api/catalog"), 1)
        clock.now += 3600  # and up to the burst
        assert [a.get("/api/catalog").status_code for _ in range(11)] == [200] * 10 + [429]


def test_retry_after_is_whole_seconds_until_the_next_request_is_allowed(clock):
    app = make_app(rate_limit_per_client=6)  # burst 10 in a window of 100 s, then one every 10 s
    clock.now = 1050.0
    with client(app) as a:
        for _ in range(10):
            assert a.get("/api/catalog").status_code == 200
        assert_429(a.get("/api/catalog"), 51, per_minute=6)
        clock.now = 1100.5
        assert a.get("/api/catalog").status_code == 200
        assert_429(a.get("/api/catalog"), 10, per_minute=6)  # one every 10 s
        clock.now += 2.2
        assert_429(a.get("/api/catalog"), 8, per_minute=6)
        # waiting one second less than Retry-After is not enough, waiting Retry-After is (the fake clock
        # stays off the whole seconds where the library's float counts sit exactly on a boundary)
        for _ in range(5):
            r = a.get("/api/catalog")
            wait = int(r.headers["retry-after"])
            clock.now += wait - 1
            assert a.get("/api/catalog").status_code == 429
            clock.now += 1
            assert a.get("/api/catalog").status_code == 200


def test_refused_requests_change_nothing(clock):
    app = make_app(rate_limit_per_client=60)
    with client(app, "10.0.0.9") as owner, client(app, "10.0.0.1") as a:
        mid = owner.post("/api/models", json=SMALL).json()["id"]
        for _ in range(10):
            a.get("/api/catalog")
        assert_429(a.post(f"/api/models/{mid}/train", json={"steps": 5}), 6)
        assert_429(a.delete(f"/api/models/{mid}"), 6)
        assert owner.get(f"/api/models/{mid}").json()["step"] == 0


# -- per token -------------------------------------------------------------------------------------
def test_per_token_limit_gives_each_token_its_own_budget(clock):
    app = make_app(rate_limit_per_token=30)  # burst 10 in 20 s, then one every 2 s; no per-client limit
    clock.now = 1010.0  # the middle of a window
    with client(app) as c:
        first = c.post("/api/models", json=SMALL).json()["id"]
        second = c.post("/api/models", json=SMALL).json()["id"]
        for _ in range(10):
            assert c.post(f"/api/models/{first}/train", json={"steps": 1}).status_code == 200
        assert_429(c.post(f"/api/models/{first}/train", json={"steps": 1}), 11, "token", 30)
        assert_429(c.get(f"/api/models/{first}"), 11, "token", 30)  # any request carrying that token
        # the refused calls trained nothing; the same client without the token, or with another token, goes on
        assert c.request("GET", f"/api/models/{first}", auth_token=False).json()["step"] == 10
        for _ in range(10):
            assert c.post(f"/api/models/{second}/train", json={"steps": 1}).status_code == 200
        assert_429(c.post(f"/api/models/{second}/train", json={"steps": 1}), 11, "token", 30)
        # the stream's ?token= is the same token: accepted, told why, closed with 4429
        with c.websocket_connect(f"/api/models/{first}/stream") as ws:
            assert_stream_refused(ws, 11, "token", 30)
        clock.now += 11
        assert c.post(f"/api/models/{first}/train", json={"steps": 1}).json()["step"] == 11


def test_both_limits_together(clock):
    app = make_app(rate_limit_per_client=60, rate_limit_per_token=600)
    with client(app, "10.0.0.1") as a, client(app, "10.0.0.2") as b:
        mid = a.post("/api/models", json=SMALL).json()["id"]
        for _ in range(9):
            assert a.get(f"/api/models/{mid}").status_code == 200
        assert_429(a.get(f"/api/models/{mid}"), 6)  # the address ran out first
        assert b.get(f"/api/models/{mid}").status_code == 200  # same token, other address


def test_limits_are_off_at_zero_and_read_from_the_environment(monkeypatch, clock):
    with client(make_app()) as c:  # make_app turns both off
        assert all(c.get("/api/catalog").status_code == 200 for _ in range(300))
    monkeypatch.setenv("PLAYGROUND_RATE_LIMIT_PER_CLIENT", "12")
    monkeypatch.setenv("PLAYGROUND_RATE_LIMIT_PER_TOKEN", "34")
    s = Settings()
    assert (s.rate_limit_per_client, s.rate_limit_per_token) == (12, 34)
    assert (Settings.model_fields["rate_limit_per_client"].default,
            Settings.model_fields["rate_limit_per_token"].default) == (20_000, 3000)


def test_counters_hold_no_token_and_expire(clock):
    async def run():
        limiter = RateLimiter("memory://", per_client=60_000, per_token=60)
        tokens = [f"secret-token-{i:03d}" for i in range(100)]
        for t in tokens:
            assert await limiter.hit("10.0.0.1", t) is None
        storage = limiter._shared.storage
        keys = " ".join(storage.storage)
        assert not any(t in keys for t in tokens)
        assert token_key(tokens[0]) in keys
        assert len(storage.storage) == 101  # one counter per key in this window
        clock.now += 3600
        await limiter.hit("10.0.0.2", None)  # any hit schedules the removal of the expired counters
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(storage.storage) == 1

    asyncio.run(run())


# -- stream messages -------------------------------------------------------------------------------
def test_every_stream_message_is_charged_and_the_stream_ends_cleanly(clock):
    app = make_app(rate_limit_per_client=60)  # 10 in the window: the opening and 9 messages
    with client(app, "10.0.0.5") as c:
        mid = c.post("/api/models", json=SMALL).json()["id"]
        clock.now += 10  # a fresh window for the stream: the creation decays away
        with c.websocket_connect(f"/api/models/{mid}/stream") as ws:
            for step in range(1, 9):
                ws.send_json({"action": "step"})
                assert ws.receive_json()["step"] == step
            ws.send_text("not json")  # refused by the route, but charged all the same
            assert ws.receive_json()["type"] == "error"
            ws.send_json({"action": "step"})
            assert_stream_refused(ws, 6)
        # the refused message did nothing, and the stream saved its steps on the way out
        clock.now += 3600
        assert c.get(f"/api/models/{mid}").json()["step"] == 8


# -- security headers ------------------------------------------------------------------------------
HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


@pytest.mark.parametrize("method,url,status", [
    ("GET", "/api/health", 200), ("GET", "/api/catalog", 200), ("GET", "/openapi.json", 200),
    ("GET", "/api/models/NoSuchModel12345678901", 404), ("POST", "/api/models", 422),
    ("POST", "/api/models/NoSuchModel12345678901/train", 404), ("GET", "/api/models", (404, 405)),
    ("GET", "/", 200), ("GET", "/index.html", 200), ("GET", "/js/main.js", 200), ("GET", "/css/app.css", 200),
    ("GET", "/no-such-file.js", 404), ("GET", "/class", 200),
])
def test_security_headers_on_api_and_static_responses(client, method, url, status):
    r = client.request(method, url, json={"layers": []} if method == "POST" else None)
    assert r.status_code in (status if isinstance(status, tuple) else (status,)), r.text
    for name, value in HEADERS.items():
        assert r.headers.get(name) == value, (name, r.headers)
    csp = r.headers["content-security-policy"]
    for directive in ("default-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"):
        assert directive in csp
    assert "script-src" not in csp or "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]


def test_security_headers_on_errors_from_the_token_check(client, model):
    r = client.request("POST", f"/api/models/{model['id']}/train", json={"steps": 1}, auth_token=False)
    assert r.status_code == 401 and r.headers["x-frame-options"] == "DENY"


# -- CORS ------------------------------------------------------------------------------------------
def preflight(c, origin: str):
    return c.options("/api/models", headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                             "Access-Control-Request-Headers": "authorization, content-type"})


def test_cors_is_closed_by_default(client):
    for url in ("/api/health", "/api/catalog"):
        r = client.get(url, headers={"Origin": "https://evil.example"})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    r = preflight(client, "https://evil.example")
    assert "access-control-allow-origin" not in r.headers and r.status_code >= 400
    r = client.post("/api/models", json=SMALL, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_cors_opens_for_configured_origins_only(monkeypatch):
    monkeypatch.setenv("PLAYGROUND_CORS_ORIGINS", '["https://class.example"]')
    assert Settings().cors_origins == ["https://class.example"]
    with client(make_app(cors_origins=Settings().cors_origins)) as c:
        r = c.get("/api/catalog", headers={"Origin": "https://class.example"})
        assert r.headers["access-control-allow-origin"] == "https://class.example"
        r = preflight(c, "https://class.example")
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://class.example"
        assert {"authorization", "content-type"} <= {h.strip().lower() for h in
                                                     r.headers["access-control-allow-headers"].split(",")}
        assert "POST" in r.headers["access-control-allow-methods"]
        r = c.get("/api/catalog", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
        r = preflight(c, "https://evil.example")
        assert "access-control-allow-origin" not in r.headers and r.status_code == 400


# -- across processes, on the store's Redis --------------------------------------------------------
def redis_servers(tmp_path, store: str, n: int = 2, **env) -> list:
    from .test_live_server import Server

    return [Server(tmp_path / "unused.sqlite3", tmp_path / f"uvicorn-{i}.log", store=store, **env).start()
            for i in range(n)]


def from_address(server, address: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=60, trust_env=False,
                        transport=httpx.HTTPTransport(local_address=address))


@pytest.mark.redis
@pytest.mark.slow
def test_a_limit_holds_across_two_processes_sharing_redis(redis_server, tmp_path):
    store = f"{redis_server}?prefix=t{uuid.uuid4().hex[:10]}:"
    # 6 a minute: a burst of 10 in a window of 100 s that starts at the first request (Redis)
    servers = redis_servers(tmp_path, store, rate_limit_per_client=6, rate_limit_per_token=6)
    try:
        with from_address(servers[0], "127.0.0.6") as a, from_address(servers[1], "127.0.0.6") as b:
            statuses = [(a if i % 2 == 0 else b).get("/api/catalog") for i in range(14)]
            assert [r.status_code for r in statuses] == [200] * 10 + [429] * 4
            for r in statuses[10:]:
                assert r.json()["detail"] == detail("client", 6, int(r.headers["retry-after"]))
                assert 1 <= int(r.headers["retry-after"]) <= 101
        with from_address(servers[0], "127.0.0.7") as a, from_address(servers[1], "127.0.0.8") as b:
            created = a.post("/api/models", json=SMALL).json()
            auth = {"Authorization": f"Bearer {created['token']}"}
            # one token, two processes, two addresses: 10 requests in all
            calls = [(a if i % 2 else b).get(f"/api/models/{created['id']}", headers=auth) for i in range(12)]
            assert [r.status_code for r in calls] == [200] * 10 + [429] * 2
            assert calls[-1].json()["detail"].startswith("rate limit exceeded: 6 requests a minute per model token")
            # the counters hold no token
            keys = redis.Redis.from_url(redis_server).keys(store.split("prefix=")[1] + "ratelimit*")
            assert keys and not any(created["token"].encode() in k for k in keys)
    finally:
        for s in servers:
            s.stop()
            s.assert_no_tracebacks()


@pytest.mark.redis
@pytest.mark.slow
def test_redis_down_answers_503_and_recovers(tmp_path):
    gen = support.redis_server(tmp_path)
    url = next(gen)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    (server,) = redis_servers(tmp_path, url, n=1, rate_limit_per_client=600)
    proc = None
    try:
        with from_address(server, "127.0.0.9") as h:
            assert h.get("/api/catalog").status_code == 200
            gen.close()  # stops that redis-server
            r = h.get("/api/catalog")
            # the counters are in the store's Redis: the store's own 503, even for a call that needs no store
            assert (r.status_code, r.headers["retry-after"], r.json()) == (
                503, "5", {"detail": "the model store is unavailable; try again shortly"})
            proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
                                     "--save", "", "--appendonly", "no"], cwd=tmp_path,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(200):
                if h.get("/api/catalog").status_code == 200:
                    break
                time.sleep(0.05)
            assert h.get("/api/catalog").status_code == 200
    finally:
        server.stop()
        if proc is not None:
            support.stop(proc)
    server.assert_no_tracebacks()


# -- concurrency slots: first come, first served ---------------------------------------------------
def test_slots_hand_a_freed_slot_to_the_oldest_waiter():
    slots = Slots()

    async def scenario():
        assert slots.acquire("k", 1)
        order = []

        async def waiter(name):
            assert await slots.wait("k", 1, timeout=5)
            order.append(name)

        tasks = [asyncio.create_task(waiter(n)) for n in "abc"]
        await asyncio.sleep(0.01)  # all three are queued, in this order
        assert not slots.acquire("k", 1)  # a newcomer does not overtake the queue
        for _ in "abc":
            slots.release("k")
            await asyncio.sleep(0.01)
        await asyncio.gather(*tasks)
        slots.release("k")
        return order

    assert asyncio.run(scenario()) == ["a", "b", "c"]
    assert slots.held("k") == 0


def test_slots_a_waiter_that_times_out_or_is_cancelled_holds_nothing():
    slots = Slots()

    async def scenario():
        assert slots.acquire("k", 1)
        assert await slots.wait("k", 1, timeout=0.01) is False  # timed out: out of the queue
        cancelled = asyncio.create_task(slots.wait("k", 1, timeout=5))
        await asyncio.sleep(0.01)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        slots.release("k")  # nobody waits any more: the slot is free
        return slots.held("k")

    assert asyncio.run(scenario()) == 0
