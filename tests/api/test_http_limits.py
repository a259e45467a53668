"""app/server.py's bounds on a connection, on a real `playground serve` (python -m app.cli serve) subprocess:
431 for an oversized request head, 408 for a head or a body that stalls, and the connection caps per
TCP peer address (127.0.0.2 capped while 127.0.0.1 still connects) and for a trusted proxy."""
from __future__ import annotations

import json
import sys
import time
from contextlib import ExitStack

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from tests.api.http_attacks import ATTACKER, PARTIAL_HEAD, connect, read_all, start
from tests.support import free_port, stop

CAP = 3


def body(response: bytes) -> tuple[int, dict]:
    head, _, rest = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(rest)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("http")
    port = free_port()
    env = {"PLAYGROUND_STORE": f"sqlite:///{tmp}/s.sqlite3", "PLAYGROUND_HTTP_HEADER_TIMEOUT": "1",
           "PLAYGROUND_HTTP_IDLE_TIMEOUT": "1", "PLAYGROUND_HTTP_BODY_TIMEOUT": "2",
           "PLAYGROUND_CONNECTIONS_PER_CLIENT": str(CAP), "PLAYGROUND_MAX_BODY_BYTES": "100000",
           "FORWARDED_ALLOW_IPS": "127.0.0.3"}
    # one worker: the connection caps are each worker's own, so the cap is exact only within one process
    proc = start([sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--log-level", "warning",
                  "--workers", "1"], port, env, tmp / "server.log")
    yield port
    stop(proc)
    assert "Traceback" not in (tmp / "server.log").read_text()


def test_a_request_head_over_the_limit_is_a_431(server):
    with connect(server) as s:
        s.sendall(PARTIAL_HEAD + b"a" * 40_000 + b"\r\n\r\n")  # whole, in one piece
        assert body(read_all(s)) == (431, {"detail": "the request line and headers exceed 32768 bytes "
                                                     "(PLAYGROUND_HTTP_MAX_HEADER_BYTES)"})
    with connect(server) as s:
        s.sendall(PARTIAL_HEAD + b"a" * 40_000)  # unfinished
        assert body(read_all(s))[0] == 431


def test_a_head_just_under_the_limit_is_served(server):
    with connect(server) as s:
        s.sendall(PARTIAL_HEAD + b"a" * 30_000 + b"\r\nConnection: close\r\n\r\n")
        assert read_all(s).startswith(b"HTTP/1.1 200 ")


def test_a_half_open_request_is_closed_after_the_header_timeout(server):
    with connect(server, timeout=30) as s:
        s.sendall(PARTIAL_HEAD)
        assert body(read_all(s)) == (408, {"detail": "the request line and headers took over 1 s "
                                                     "(PLAYGROUND_HTTP_HEADER_TIMEOUT)"})


def test_a_silent_connection_is_closed_after_the_header_timeout(server):
    with connect(server, timeout=30) as s:
        assert body(read_all(s))[0] == 408


def test_a_stalled_body_is_closed_after_the_idle_timeout(server):
    with connect(server, timeout=30) as s:
        s.sendall(b"POST /api/models HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{")
        status, detail = body(read_all(s))
        assert (status, detail) == (408, {"detail": "the request body paused over 1 s (PLAYGROUND_HTTP_IDLE_TIMEOUT)"})


def test_a_trickled_body_is_closed_after_the_body_timeout(server):
    with connect(server, timeout=30) as s:
        s.sendall(b"POST /api/models HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{")
        try:
            for _ in range(40):  # a byte every 0.25 s: never a pause of 1 s, never the whole body
                time.sleep(0.25)
                s.sendall(b" ")
        except OSError:  # closed by the server
            pass
        assert body(read_all(s)) == (408, {"detail": "the request body took over 2 s (PLAYGROUND_HTTP_BODY_TIMEOUT)"})


@pytest.mark.parametrize("framing", [b"Transfer-Encoding: chunked", b"Content-Length: 100000000000"])
def test_a_body_answered_early_is_not_read_on(server, framing):
    """A 413 ends the connection: the rest of an endless body is never read (only the linger's few KiB)."""
    with connect(server, timeout=30) as s:
        s.sendall(b"POST /api/models HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + framing +
                  b"\r\n\r\n")
        chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n" if b"chunked" in framing else b" " * 0x10000
        sent = 0
        try:
            while sent < 200_000_000:
                s.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        assert sent < 20_000_000  # the body limit is 100 kB: the server stopped reading soon after it
        assert body(read_all(s))[0] == 413


def test_a_forged_forwarded_for_is_ignored_when_no_proxy_is_named(tmp_path):
    """`playground serve` with no FORWARDED_ALLOW_IPS takes no client's word for its address, loopback's neither."""
    port = free_port()
    proc = start([sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--log-level", "warning"], port,
                 {"PLAYGROUND_STORE": f"sqlite:///{tmp_path}/s.sqlite3", "PLAYGROUND_MAX_MODELS_PER_CLIENT": "1"},
                 tmp_path / "server.log")
    try:
        url = f"http://127.0.0.1:{port}/api/models"
        first = httpx.post(url, json={}, headers={"X-Forwarded-For": "10.0.0.1"}, trust_env=False, timeout=30)
        second = httpx.post(url, json={}, headers={"X-Forwarded-For": "10.0.0.2"}, trust_env=False, timeout=30)
    finally:
        stop(proc)
    assert (first.status_code, second.status_code) == (201, 429)


def test_the_per_address_cap_refuses_the_excess_while_another_address_connects(server):
    held = [connect(server, ATTACKER) for _ in range(CAP)]
    try:
        for s in held:
            s.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive: each stays open, answered
            assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
        with connect(server, ATTACKER) as extra:
            assert body(read_all(extra)) == (429, {"detail": f"{CAP} connections are open from your address, its "
                                                             "limit (PLAYGROUND_CONNECTIONS_PER_CLIENT); close one first"})
        r = httpx.get(f"http://127.0.0.1:{server}/api/health", trust_env=False, timeout=10)  # from 127.0.0.1
        assert r.status_code == 200
    finally:
        for s in held:
            s.close()
    with connect(server, ATTACKER) as again:  # closing one frees its place
        again.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_all(again).startswith(b"HTTP/1.1 200 ")


def test_a_trusted_proxy_is_not_held_to_the_per_address_cap(server):
    held = [connect(server, "127.0.0.3") for _ in range(CAP + 2)]  # FORWARDED_ALLOW_IPS=127.0.0.3
    try:
        for s in held:
            s.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.7\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
    finally:
        for s in held:
            s.close()


def test_streams_count_against_the_cap_and_free_their_place(server):
    models = [httpx.post(f"http://127.0.0.1:{server}/api/models", json={}, trust_env=False, timeout=30).json()
              for _ in range(CAP)]
    with ExitStack() as streams:
        for m in models:  # from 127.0.0.1, one model each (the per-token stream cap is 2)
            ws = streams.enter_context(ws_connect(f"ws://127.0.0.1:{server}/api/models/{m['id']}/stream"
                                                  f"?token={m['token']}", open_timeout=10))
            ws.send(json.dumps({"action": "step"}))
            assert json.loads(ws.recv(timeout=30))["step"] == 1
        with connect(server, "127.0.0.1") as extra:
            assert body(read_all(extra))[0] == 429
    for _ in range(50):  # the server sees each close a moment later
        r = httpx.get(f"http://127.0.0.1:{server}/api/health", trust_env=False, timeout=10)
        if r.status_code == 200:
            break
    assert r.status_code == 200
