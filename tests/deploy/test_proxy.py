"""deploy/nginx.conf through Debian's nginx, in front of a real app server on loopback.

The app trusts X-Forwarded-For from 127.0.0.1 only (uvicorn's default FORWARDED_ALLOW_IPS, as compose
trusts only the proxy's address), so nginx is the one peer it believes. A forged header changes nothing:
the per-address model quota and stream cap count the real address. A dead replica (a refused port, a
port that drops SYNs as a killed container's address does, or one that closes with the request in hand)
costs no request: idempotent requests go to the next replica, a POST that reached the dying one is not
sent again (502), and the passive health check leaves the dead one out afterwards.
"""
from __future__ import annotations

import json

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.api.test_live_server import Server
from tests.support import free_port

from .nginx import CONF, Blackhole, Dropper, Nginx

SPEC = {"layers": [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
        "data": {"dataset": "xor", "samples": 40}}
QUOTA = ("this address holds its limit of 2 models; delete one first (PLAYGROUND_MAX_MODELS_PER_CLIENT)")
STREAM_CAP = {"type": "error", "status": 429, "retry_after": 1,
              "detail": "too many open streams from your address: the limit is 2 (PLAYGROUND_STREAMS_PER_CLIENT); "
                        "close one, then retry"}
FORGED = ["203.0.113.7", "198.51.100.1, 203.0.113.8", "10.1.2.3", "unknown"]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("proxy")
    server = Server(tmp / "db.sqlite3", tmp / "uvicorn.log", max_models_per_client=2, streams_per_client=2,
                    rate_limit_per_client=0, rate_limit_per_token=0).start()
    yield server
    server.stop()
    server.assert_no_tracebacks()


def http(proxy: Nginx) -> httpx.Client:
    return httpx.Client(base_url=proxy.url, timeout=30, trust_env=False)


def test_a_forged_x_forwarded_for_changes_nothing(app, tmp_path):
    with Nginx(tmp_path / "nginx", [f"127.0.0.1:{app.port}"]) as proxy, http(proxy) as c:
        made = [c.post("/api/models", json=SPEC, headers={"X-Forwarded-For": FORGED[i]}) for i in range(2)]
        assert [r.status_code for r in made] == [201, 201], [r.text for r in made]
        for forged in FORGED:  # every forged address is still the one real address, at its quota
            r = c.post("/api/models", json=SPEC, headers={"X-Forwarded-For": forged})
            assert (r.status_code, r.json()) == (429, {"detail": QUOTA})
        ids = [r.json()["id"] for r in made]

        ws_url = proxy.url.replace("http", "ws")
        with connect(f"{ws_url}/api/models/{ids[0]}/stream", additional_headers={"X-Forwarded-For": FORGED[0]},
                     open_timeout=10) as a, \
             connect(f"{ws_url}/api/models/{ids[1]}/stream", additional_headers={"X-Forwarded-For": FORGED[1]},
                     open_timeout=10) as b:
            for ws, r in ((a, made[0]), (b, made[1])):
                ws.send(json.dumps({"action": "auth", "token": r.json()["token"]}))
                ws.send(json.dumps({"action": "step"}))
                assert json.loads(ws.recv(timeout=10))["type"] == "frame"
            with connect(f"{ws_url}/api/models/{ids[0]}/stream", additional_headers={"X-Forwarded-For": FORGED[2]},
                         open_timeout=10) as third:
                assert json.loads(third.recv(timeout=10)) == STREAM_CAP
                with pytest.raises(ConnectionClosed) as closed:
                    third.recv(timeout=10)
                assert closed.value.rcvd.code == 4429


def test_an_appending_proxy_would_let_the_forgery_through(app, tmp_path):
    """The check above can fail: with `$proxy_add_x_forwarded_for` the forged entry is the client address."""
    text = CONF.read_text()
    assert text.count("X-Forwarded-For $remote_addr;") == 1
    appending = text.replace("X-Forwarded-For $remote_addr;", "X-Forwarded-For $proxy_add_x_forwarded_for;")
    with Nginx(tmp_path / "nginx", [f"127.0.0.1:{app.port}"], text=appending) as proxy, http(proxy) as c:
        r = c.post("/api/models", json=SPEC, headers={"X-Forwarded-For": "192.0.2.55"})
        assert r.status_code == 201, r.text


@pytest.mark.parametrize("dead", ["refused", "blackhole"])
def test_requests_go_around_a_replica_that_does_not_answer(app, tmp_path, dead):
    """A refused connect and a connect that times out both move on to the live replica, POST included
    (it was never sent to the dead one)."""
    hole = Blackhole() if dead == "blackhole" else None
    address = hole.address if hole else f"127.0.0.1:{free_port()}"
    try:
        with Nginx(tmp_path / "nginx", [address, f"127.0.0.1:{app.port}"]) as proxy, http(proxy) as c:
            for _ in range(4):
                r = c.get("/api/health")
                assert (r.status_code, r.json()) == (200, {"status": "ok"})
            for _ in range(2):
                r = c.post("/api/models", json=SPEC)
                assert r.status_code in (201, 429), r.text  # 429: the address's quota, from the live app
                assert r.status_code == 201 or r.json() == {"detail": QUOTA}
            # the dead replica was tried once, then left out (max_fails=1 within fail_timeout)
            failures = [line for line in proxy.log().splitlines() if address in line and "[error]" in line]
            assert len(failures) == 1, failures
    finally:
        if hole:
            hole.close()


def test_a_replica_dying_with_the_request_in_hand(app, tmp_path):
    """GET is resent to the next replica; POST is not (it may have run): 502, and nothing is sent twice."""
    dying = Dropper()
    try:
        with Nginx(tmp_path / "get", [dying.address, f"127.0.0.1:{app.port}"]) as proxy, http(proxy) as c:
            for _ in range(6):
                r = c.get("/api/health")
                assert (r.status_code, r.json()) == (200, {"status": "ok"})
            assert [line.split()[0] for line in dying.requests] == ["GET"]  # once, then left out
        dying.requests.clear()
        with Nginx(tmp_path / "post", [dying.address, f"127.0.0.1:{app.port}"]) as proxy, http(proxy) as c:
            answers = []
            while not dying.requests and len(answers) < 3:
                answers.append(c.post("/api/models/nosuchmodel/reset").status_code)
            assert dying.requests == ["POST /api/models/nosuchmodel/reset HTTP/1.1"]
            assert answers[-1] == 502  # not resent to the live replica, which would answer 401 or 404
            assert set(answers[:-1]) <= {401, 404}
    finally:
        dying.close()


def test_the_proxy_bounds_each_clients_connections(app, tmp_path):
    """nginx answers 429 past 64 connections from one address, while another address still gets through."""
    import socket

    with Nginx(tmp_path / "nginx", [f"127.0.0.1:{app.port}"]) as proxy:
        held = []
        try:
            for _ in range(64):  # each a request in progress: its head sent, its body never
                s = socket.create_connection(("127.0.0.1", proxy.port), timeout=10, source_address=("127.0.0.2", 0))
                s.sendall(b"POST /api/models HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{")
                held.append(s)
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=10,
                                          source_address=("127.0.0.2", 0)) as extra:
                extra.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert extra.recv(65536).startswith(b"HTTP/1.1 429 ")
            with http(proxy) as c:  # 127.0.0.1
                assert c.get("/api/health").status_code == 200
        finally:
            for s in held:
                s.close()
