"""A server started from a command line (the README's, the Dockerfile's CMD), and a hostile client's raw sockets.

Shared by tests/api/test_http_limits.py, tests/deploy/test_http_attacks.py and bench/bench_attacks.py.
"""
from __future__ import annotations

import json
import os
import re
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
ATTACKER = "127.0.0.2"  # another loopback address than the bystander's 127.0.0.1
PARTIAL_HEAD = b"GET /api/health HTTP/1.1\r\nHost: playground\r\nX-Slow: "


def readme_command() -> list[str]:
    """The README quick start's serve command, as argv."""
    m = re.search(r"pip install -e \. && (playground serve [^\n]*)", (ROOT / "README.md").read_text())
    assert m, "the README's quick start has no `pip install -e . && playground serve ...`"
    return m.group(1).split()


def image_command() -> tuple[list[str], dict[str, str]]:
    """The Dockerfile's CMD (exec form) and its ENV lines."""
    text = (ROOT / "Dockerfile").read_text()
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(re.findall(r"^ENV (.*)$", text, re.M))))
    return cmd, env


def local_argv(argv: list[str], port: int) -> list[str]:
    """``argv`` on this machine: this Python for `playground`/`python`, loopback, and ``port``."""
    out = list(argv)
    if out[0] == "playground":
        out[:1] = [sys.executable, "-m", "app.cli"]
    elif out[0] == "python":
        out[0] = sys.executable
    out[out.index("--host") + 1] = "127.0.0.1"
    out[out.index("--port") + 1] = str(port)
    return out


def start(argv: list[str], port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    """Run ``argv`` from the checkout until /api/health answers on ``port`` (30 s), or fail with its log."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1, trust_env=False).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    proc.wait(10)
    raise RuntimeError(f"{argv} did not start:\n{log.read_text()[-3000:]}")


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def raise_fd_limit(needed: int) -> None:
    """Raise this process's soft RLIMIT_NOFILE to ``needed`` descriptors (within the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed if hard == resource.RLIM_INFINITY else min(needed, hard), hard))


def connect(port: int, source: str = ATTACKER, timeout: float = 10) -> socket.socket:
    """A TCP connection to the server from ``source`` (a loopback address)."""
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def read_all(s: socket.socket) -> bytes:
    """Everything the server sends until it closes (a reset ends it too)."""
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    return data


def send_until_closed(s: socket.socket, total: int, chunk: int = 64 * 1024) -> int:
    """Send up to ``total`` header bytes (no end of header) until the server closes; the bytes sent."""
    piece, sent = b"a" * chunk, 0
    try:
        while sent < total:
            s.sendall(piece)
            sent += chunk
    except OSError:
        pass
    return sent


def half_open(port: int, n: int, source: str = ATTACKER) -> list[socket.socket]:
    """``n`` connections that each start a request and never finish its head."""
    socks = []
    for _ in range(n):
        try:
            s = connect(port, source)
            s.sendall(PARTIAL_HEAD)
        except OSError:
            continue  # refused or reset at once: the server's cap at work
        socks.append(s)
    return socks


def endless_header(port: int, seconds: float, source: str = ATTACKER) -> int:
    """One client sending a header that never ends, reconnecting whenever it is closed; bytes sent."""
    sent, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            s = connect(port, source)
        except OSError:
            continue
        with s:
            try:
                s.sendall(PARTIAL_HEAD)
                while time.monotonic() < deadline:
                    s.sendall(b"a" * 65536)
                    sent += 65536
            except OSError:
                pass
    return sent


def large_headers(port: int, n: int, size: int, source: str = ATTACKER) -> list[socket.socket]:
    """``n`` connections that each send ``size`` bytes of one unfinished header, then stay open."""
    socks = half_open(port, n, source)
    for s in socks:
        send_until_closed(s, size)
    return socks
