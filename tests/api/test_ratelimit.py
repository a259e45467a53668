"""Rate limits (429 with Retry-After, per client address and per bearer token), security headers on
every response, and CORS (closed unless PLAYGROUND_CORS_ORIGINS names origins).

The limiter's clock is replaced by a fake one, so every count and every Retry-After is exact."""
from __future__ import annotations

import pytest
from starlette.websockets import WebSocketDisconnect

from app.api import security
from app.config import Settings

from .utils import SMALL, ApiClient, TOKENS, make_app


class Clock:
    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(security, "time", c)
    return c


def client(app, address: str = "10.0.0.1") -> ApiClient:
    c = ApiClient(app, client=(address, 40000))
    c.tokens = TOKENS
    return c


def assert_429(r, retry_after: int) -> None:
    assert r.status_code == 429, r.text
    assert r.headers["retry-after"] == str(retry_after)
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"detail": f"rate limit exceeded; retry after {retry_after} s"}
    assert r.headers["x-content-type-options"] == "nosniff"


# -- per client ------------------------------------------------------------------------------------
def test_per_client_limit_answers_429_with_retry_after(clock):
    # 60 a minute: a burst of 10, then one a second
    app = make_app(rate_limit_per_client=60)
    with client(app, "10.0.0.1") as a, client(app, "10.0.0.2") as b:
        for _ in range(10):
            assert a.get("/api/catalog").status_code == 200
        assert_429(a.get("/api/catalog"), 1)
        assert_429(a.post("/api/models", json=SMALL), 1)  # every /api call shares the budget
        clock.now += 0.4
        assert_429(a.get("/api/catalog"), 1)  # 0.6 s left: rounded up to whole seconds
        # another address has its own budget
        for _ in range(10):
            assert b.get("/api/catalog").status_code == 200
        assert_429(b.get("/api/catalog"), 1)
        # /api/health and the page are never limited
        for _ in range(30):
            assert a.get("/api/health").status_code == 200
        assert a.get("/").status_code == 200
        # the budget refills at the rate, up to the burst
        clock.now += 0.6
        assert a.get("/api/catalog").status_code == 200
        assert_429(a.get("/api/catalog"), 1)
        clock.now += 3600
        assert [a.get("/api/catalog").status_code for _ in range(11)] == [200] * 10 + [429]


def test_retry_after_is_whole_seconds_until_the_next_request_is_allowed(clock):
    app = make_app(rate_limit_per_client=6)  # burst 10, then one every 10 s
    with client(app) as a:
        for _ in range(10):
            assert a.get("/api/catalog").status_code == 200
        assert_429(a.get("/api/catalog"), 10)
        clock.now += 2.5
        assert_429(a.get("/api/catalog"), 8)
        clock.now += 7.5
        assert a.get("/api/catalog").status_code == 200


def test_refused_requests_change_nothing(clock):
    app = make_app(rate_limit_per_client=60)
    with client(app, "10.0.0.9") as owner, client(app, "10.0.0.1") as a:
        mid = owner.post("/api/models", json=SMALL).json()["id"]
        for _ in range(10):
            a.get("/api/catalog")
        assert_429(a.post(f"/api/models/{mid}/train", json={"steps": 5}), 1)
        assert_429(a.delete(f"/api/models/{mid}"), 1)
        assert owner.get(f"/api/models/{mid}").json()["step"] == 0


# -- per token -------------------------------------------------------------------------------------
def test_per_token_limit_gives_each_token_its_own_budget(clock):
    app = make_app(rate_limit_per_token=30)  # burst 10, then one every 2 s; no per-client limit
    with client(app) as c:
        first = c.post("/api/models", json=SMALL).json()["id"]
        second = c.post("/api/models", json=SMALL).json()["id"]
        for _ in range(10):
            assert c.post(f"/api/models/{first}/train", json={"steps": 1}).status_code == 200
        assert_429(c.post(f"/api/models/{first}/train", json={"steps": 1}), 2)
        assert_429(c.get(f"/api/models/{first}"), 2)  # any request carrying that token
        assert c.get(f"/api/models/{first}").status_code == 429
        # the refused calls trained nothing; the same client without the token, or with another token, goes on
        assert c.request("GET", f"/api/models/{first}", auth_token=False).json()["step"] == 10
        for _ in range(10):
            assert c.post(f"/api/models/{second}/train", json={"steps": 1}).status_code == 200
        assert_429(c.post(f"/api/models/{second}/train", json={"steps": 1}), 2)
        # the stream's ?token= is the same token
        with pytest.raises(WebSocketDisconnect):
            with c.websocket_connect(f"/api/models/{first}/stream") as ws:
                ws.receive_json()
        clock.now += 2
        assert c.post(f"/api/models/{first}/train", json={"steps": 1}).json()["step"] == 11


def test_both_limits_together(clock):
    app = make_app(rate_limit_per_client=60, rate_limit_per_token=600)
    with client(app, "10.0.0.1") as a, client(app, "10.0.0.2") as b:
        mid = a.post("/api/models", json=SMALL).json()["id"]
        for _ in range(9):
            assert a.get(f"/api/models/{mid}").status_code == 200
        assert_429(a.get(f"/api/models/{mid}"), 1)  # the address ran out first
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


def test_token_buckets_keep_a_bounded_number_of_keys(clock):
    buckets = security.TokenBuckets(60, max_keys=3)
    for key in "abcde":
        assert buckets.take(key) == 0
    assert len(buckets._buckets) == 3 and set(buckets._buckets) == {"c", "d", "e"}


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
