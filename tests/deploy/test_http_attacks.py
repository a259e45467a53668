"""The quoted attacks on one TCP connection, against the server started as the README and the image start it.

The README's quick start command and the Dockerfile's CMD (with its ENV) run as subprocesses on loopback.
While a hostile client at 127.0.0.2 sends a header that never ends, 60 unfinished 16 MB headers, or 1,100
half-open requests, a bystander at 127.0.0.1 gets its GET answered and the server's RSS stays within
200 MB of its idle RSS.
"""
from __future__ import annotations

import threading

import httpx
import pytest

from tests.api.http_attacks import (endless_header, half_open, image_command, large_headers, local_argv,
                                    raise_fd_limit, readme_command, rss_mb, start)
from tests.support import free_port, stop

pytestmark = pytest.mark.slow


@pytest.fixture(params=["readme", "image"])
def server(request, tmp_path):
    port = free_port()
    if request.param == "readme":
        argv, env = readme_command(), {}
    else:
        argv, env = image_command()
    env = {**env, "PLAYGROUND_STORE": f"sqlite:///{tmp_path}/playground.sqlite3"}
    proc = start(local_argv(argv, port), port, env, tmp_path / "server.log")
    try:
        yield proc, port
    finally:
        stop(proc)
        assert "Traceback" not in (tmp_path / "server.log").read_text()


def bystander(port: int) -> None:
    r = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=30, trust_env=False)
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def idle_rss(proc, port) -> float:
    bystander(port)
    return rss_mb(proc.pid)


def test_an_endless_header_leaves_a_bystander_answered(server):
    proc, port = server
    idle = idle_rss(proc, port)
    attack = threading.Thread(target=endless_header, args=(port, 4.0), daemon=True)
    attack.start()
    for _ in range(3):
        bystander(port)
    assert rss_mb(proc.pid) - idle < 200
    attack.join(30)
    assert not attack.is_alive()
    bystander(port)


def assert_held_connections_cost_little(proc, port: int, idle: float, socks: list) -> None:
    """While ``socks`` stay open, a bystander is answered and the server's RSS is within 200 MB of idle."""
    try:
        bystander(port)
        assert rss_mb(proc.pid) - idle < 200
    finally:
        for s in socks:
            s.close()


def test_60_unfinished_16_mb_headers_leave_a_bystander_answered(server):
    proc, port = server
    idle = idle_rss(proc, port)
    assert_held_connections_cost_little(proc, port, idle, large_headers(port, 60, 16 * 1024 * 1024))


def test_1100_half_open_requests_leave_a_bystander_answered(server):
    proc, port = server
    raise_fd_limit(4096)
    idle = idle_rss(proc, port)
    assert_held_connections_cost_little(proc, port, idle, half_open(port, 1100))
