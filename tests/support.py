"""Shared by the test folders: free loopback ports, the CI rule for missing tools, a real redis-server."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest

IN_CI = os.environ.get("CI", "").strip().lower() == "true"


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    """Ask a child process to exit (SIGTERM) and kill it if it has not within ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def unavailable(why: str) -> None:
    """A missing browser, server or package fails the test in CI (CI=true) and skips it elsewhere."""
    if IN_CI:
        pytest.fail(f"{why} (CI=true: this test must run)", pytrace=False)
    pytest.skip(why)


def redis_server(workdir):
    """Generator: yields the URL of a throwaway redis-server (no RDB/AOF) on a free port, then stops it."""
    try:
        import redis
    except ImportError as e:
        unavailable(f"the redis client package is not installed ({e}); pip install redis")
    exe = shutil.which("redis-server")
    if exe is None:
        unavailable("redis-server is not on PATH (Debian/Ubuntu: apt-get install redis-server)")
    last_err = ""
    for _ in range(3):  # the free port can be taken between probing and binding: retry on a new one
        port = free_port()
        log = open(workdir / f"redis-{port}.log", "w+")
        proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", str(workdir), "--daemonize", "no"],
                                stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        else:
            proc.kill()
            proc.wait()
            log.seek(0)
            last_err = log.read()[-2000:]
            log.close()
            continue
        client.close()
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            stop(proc)
            log.close()
        return
    pytest.fail(f"redis-server did not start: {last_err}")
