"""Benchmark, run by hand: a bystander's GET p99 while one hostile client attacks the server.

    python bench/bench_attacks.py [--seconds 10] [--only endless,xff]

The server runs as the image runs it (the Dockerfile's CMD, on loopback, a fresh SQLite store). A bystander
at 127.0.0.1 sends `GET /api/models/{id}` every 50 ms; the hostile client, at 127.0.0.2 in its own process
(so it takes no GIL from the bystander), runs one attack at a time, each stopped after a hard time limit:

- endless: one header that never ends, reconnecting whenever the server closes it;
- large-headers: 60 connections with 16 MB unfinished headers;
- half-open: 1,100 connections that start a request and never finish its head;
- derive-outer, derive-broadcast, derive-chain: the /derive bombs quoted in the issue (columns
  `delta[L] = outer(z[1], z[1])` on 2-1024-1 and `delta[i] = W[2]` on 2-512-512-1 at 256 rows, rows: a
  109-character chain of `@` on 2-1024-1024-1), one call after another;
- xff: 8 connections sending GETs as fast as they can, each with a forged X-Forwarded-For;
- trickle: 256 connections (the per-address cap) each sending a body a byte every 2 s;
- endless-body: 6 connections each sending a chunked body without end, as fast as they can.

One line per attack, after a baseline with no attack ("none"): the bystander's p50 / p99 and its failures. Target: p99 <= 300 ms. The server's
address space is capped (--server-memory-gb) so that a bomb that is not refused cannot take the machine.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import httpx

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from bench.bench_api import free_port, start_server  # noqa: E402
from tests.api.http_attacks import (ATTACKER, endless_header, half_open, image_command, large_headers,  # noqa: E402
                                    raise_fd_limit)

TARGET_MS = 300
CHAIN = " @ ".join(["W[2]"] * 16)  # 109 characters, 1024 x 1024 operands
BOMBS = {
    "derive-outer": ([1024], "columns", "delta[L]", "outer(z[1], z[1])"),
    "derive-broadcast": ([512, 512], "columns", "delta[i]", "W[2]"),
    "derive-chain": ([1024, 1024], "rows", "delta[i]", CHAIN),
}


def derive_bomb(base: str, hidden: list[int], convention: str, target: str, expr: str, seconds: float) -> None:
    spec = {"input_size": 2, "layers": [{"units": n, "activation": "tanh"} for n in hidden] +
            [{"units": 1, "activation": "sigmoid"}], "data": {"dataset": "xor", "samples": 300}}
    transport = httpx.HTTPTransport(local_address=ATTACKER)
    with httpx.Client(base_url=base, timeout=seconds, transport=transport, trust_env=False) as c:
        model = c.post("/api/models", json=spec).json()
        X = [[random.uniform(-1, 1), random.uniform(-1, 1)] for _ in range(256)]
        y = [[float(a * b > 0)] for a, b in X]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                c.post(f"/api/models/{model['id']}/derive", timeout=max(0.1, deadline - time.monotonic()),
                       json={"convention": convention, "X": X, "y": y,
                             "equations": [{"target": target, "expr": expr}]})
            except httpx.HTTPError:
                pass


def in_threads(run, n: int) -> None:
    """``run`` in n threads at once, until every one returns."""
    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def xff_flood(base: str, seconds: float, connections: int = 8) -> None:
    deadline = time.monotonic() + seconds

    def one() -> None:
        transport = httpx.HTTPTransport(local_address=ATTACKER)
        with httpx.Client(base_url=base, timeout=10, transport=transport, trust_env=False) as c:
            while time.monotonic() < deadline:
                forged = ".".join(str(random.randrange(1, 255)) for _ in range(4))
                try:
                    c.get("/api/health", headers={"X-Forwarded-For": forged})
                except httpx.HTTPError:
                    pass

    in_threads(one, connections)


def trickle(port: int, seconds: float, connections: int = 256) -> None:
    socks = []
    for _ in range(connections):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(ATTACKER, 0))
            s.sendall(b"POST /api/models HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{")
            socks.append(s)
        except OSError:
            pass
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(2)
        for s in socks:
            try:
                s.sendall(b" ")
            except OSError:
                pass
    for s in socks:
        s.close()


def endless_body(port: int, seconds: float, connections: int = 6) -> None:
    deadline = time.monotonic() + seconds
    chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n"

    def one() -> None:
        while time.monotonic() < deadline:  # reconnect whenever the server closes
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(ATTACKER, 0)) as s:
                    s.sendall(b"POST /api/models HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
                    while time.monotonic() < deadline:
                        s.sendall(chunk)
            except OSError:
                pass

    in_threads(one, connections)


def hold(make, seconds: float) -> None:
    """Open the connections ``make`` returns and keep them for ``seconds``."""
    socks = make()
    time.sleep(seconds)
    for s in socks:
        s.close()


def attacks(base: str, port: int, seconds: float) -> dict:
    found = {
        "none": lambda: time.sleep(seconds),  # the baseline: the bystander alone, on the same machine
        "endless": lambda: endless_header(port, seconds),
        "large-headers": lambda: hold(lambda: large_headers(port, 60, 16 * 1024 * 1024), seconds),
        "half-open": lambda: hold(lambda: half_open(port, 1100), seconds),
        "xff": lambda: xff_flood(base, seconds),
        "trickle": lambda: trickle(port, seconds),
        "endless-body": lambda: endless_body(port, seconds),
    }
    for name, args in BOMBS.items():
        found[name] = lambda args=args: derive_bomb(base, *args, seconds)
    return found


def bystander(base: str, model_id: str, stop: threading.Event, times: list, failures: list) -> None:
    with httpx.Client(base_url=base, timeout=30, trust_env=False) as c:
        while not stop.is_set():
            t = time.perf_counter()
            try:
                r = c.get(f"/api/models/{model_id}")
                (times if r.status_code == 200 else failures).append(time.perf_counter() - t)
            except httpx.HTTPError:
                failures.append(time.perf_counter() - t)
            stop.wait(0.05)


def limit_memory(gb: float) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (int(gb * 2**30), resource.RLIM_INFINITY))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10, help="each attack's length (its hard limit adds 10 s)")
    ap.add_argument("--only", default="", help="comma-separated attack names")
    ap.add_argument("--server-memory-gb", type=float, default=6)
    args = ap.parse_args()
    raise_fd_limit(4096)
    cmd, _ = image_command()
    assert cmd[:4] == ["python", "-m", "app.cli", "serve"], cmd
    port = free_port()
    serve = [a for i, a in enumerate(cmd[1:], 1) if a not in ("--host", "--port") and
             cmd[i - 1] not in ("--host", "--port")]  # start_server gives the host and port
    proc = start_server(port, f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3", serve=serve,
                        preexec_fn=lambda: limit_memory(args.server_memory_gb))
    base = f"http://127.0.0.1:{port}"
    try:
        model_id = httpx.post(f"{base}/api/models", json={}, trust_env=False).json()["id"]
        runs = attacks(base, port, args.seconds)
        names = [n for n in args.only.split(",") if n] or list(runs)
        print(f"server: {' '.join(cmd)} (on 127.0.0.1:{port}); attacks of {args.seconds:g} s")
        for name in names:
            times, failures, stop = [], [], threading.Event()
            watcher = threading.Thread(target=bystander, args=(base, model_id, stop, times, failures))
            attacker = multiprocessing.get_context("fork").Process(target=runs[name], daemon=True)
            attacker.start()
            watcher.start()
            attacker.join(args.seconds + 10)
            if attacker.is_alive():  # the hard limit
                attacker.kill()
                attacker.join(5)
            stop.set()
            watcher.join(60)
            p50 = statistics.median(times) * 1e3 if times else float("nan")
            p99 = statistics.quantiles(times, n=100)[98] * 1e3 if len(times) >= 2 else float("nan")
            verdict = "ok" if p99 <= TARGET_MS and not failures else "MISSED"
            print(f"{name:<17} bystander GET p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  ({len(times)} answered, "
                  f"{len(failures)} failed)  target p99 <= {TARGET_MS} ms: {verdict}", flush=True)
            time.sleep(2)  # refused connections linger up to 2 s
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # still inside a derive bomb
            proc.kill()
            proc.wait(10)


if __name__ == "__main__":
    main()
