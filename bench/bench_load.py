"""Load benchmark, run by hand: a class of N students on one server.

    python bench/bench_load.py [--students 50] [--seconds 30] [--store sqlite|memory|redis|<url>]
                               [--url http://host:port] [--steps 10] [--nat] [--workers 1]

Each simulated student creates their own playground model (the default 2-8-8-1 spec, with a
nickname) and then loops, with no think time, POST /train {"steps": 10} and GET /api/models/{id}
until the time is up. At the end every model's step must equal 10 x its successful train calls.

Without --url the script starts the server itself the way the Dockerfile's CMD does (uvicorn with
--proxy-headers, default settings, so the rate limits are on) on a free port, with a throwaway
SQLite file, memory://, or a throwaway redis-server (--store redis). Each student sends its own
X-Forwarded-For address, as students on their own machines would appear behind the proxy; --nat
sends none, so the whole class shares one address (a class behind one NAT) and meets the per-client
rate limit.

Reported per call type: count, throughput, p50 / p90 / p99 / max latency and errors (any status
other than the expected one, or a transport error), and the CPU the server and this client used.
Target (2 cores): 50 students, p99 of GET /api/models/{id} under 150 ms, no errors, exact steps.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
TARGET_P99_GET_MS = 150.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(tmp: Path) -> tuple[subprocess.Popen, str]:
    exe = shutil.which("redis-server")
    if exe is None:
        sys.exit("--store redis needs redis-server on PATH (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis
    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(200):
        try:
            client.ping()
            return proc, f"redis://127.0.0.1:{port}/0"
        except redis.ConnectionError:
            time.sleep(0.02)
    proc.kill()
    sys.exit("redis-server did not start")


def start_server(store: str, workers: int, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYGROUND_")}
    env["PLAYGROUND_STORE"] = store
    cmd = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port),
           "--proxy-headers", "--log-level", "warning"]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/api/health", timeout=1, trust_env=False).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("the server did not start")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU so far of these processes and all their descendants (Linux /proc)."""
    total, tick, todo, seen = 0.0, os.sysconf("SC_CLK_TCK"), list(pids), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, IndexError, ValueError):
            pass
    return total


class Stats:
    def __init__(self):
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, Counter] = defaultdict(Counter)

    def record(self, kind: str, started: float, outcome: str | None) -> None:
        self.latency[kind].append(time.perf_counter() - started)
        if outcome is not None:
            self.errors[kind][outcome] += 1


async def call(stats: Stats, kind: str, client: httpx.AsyncClient, method: str, url: str, expect: int, **kw):
    """One request, timed; a 429 counts as an error, and the student then waits its Retry-After, as the page does."""
    started = time.perf_counter()
    try:
        r = await client.request(method, url, **kw)
    except httpx.HTTPError as e:
        stats.record(kind, started, type(e).__name__)
        return None
    stats.record(kind, started, None if r.status_code == expect else str(r.status_code))
    if r.status_code == 429:
        await asyncio.sleep(float(r.headers.get("retry-after", "1")))
    return r if r.status_code == expect else None


async def final_step(client: httpx.AsyncClient, mid: str) -> int | None:
    for _ in range(30):  # not timed; waits out a rate limit
        r = await client.get(f"/api/models/{mid}")
        if r.status_code != 429:
            return r.json()["step"] if r.status_code == 200 else None
        await asyncio.sleep(float(r.headers.get("retry-after", "1")))
    return None


async def student(i: int, base: str, args, stats: Stats, start_line: asyncio.Event, deadline: list[float]) -> dict:
    headers = {} if args.nat else {"X-Forwarded-For": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256 or 1}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60, trust_env=False,
                                 limits=httpx.Limits(max_connections=1)) as client:
        r = await call(stats, "POST /api/models", client, "POST", "/api/models", 201,
                       json={"nickname": f"student {i}"})
        if r is None:
            return {"id": None, "trains": 0}
        mid, token = r.json()["id"], r.json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        await start_line.wait()
        trains = 0
        while time.perf_counter() < deadline[0]:
            if await call(stats, "POST /train", client, "POST", f"/api/models/{mid}/train", 200,
                          json={"steps": args.steps}, headers=auth) is not None:
                trains += 1
            await call(stats, "GET /api/models/{id}", client, "GET", f"/api/models/{mid}", 200)
        return {"id": mid, "trains": trains, "step": await final_step(client, mid)}


async def run(base: str, args, server_pids: list[int]) -> bool:
    stats = Stats()
    start_line, deadline = asyncio.Event(), [0.0]
    tasks = [asyncio.create_task(student(i, base, args, stats, start_line, deadline)) for i in range(args.students)]
    while len(stats.latency["POST /api/models"]) < args.students:  # everyone has a model before the clock starts
        await asyncio.sleep(0.05)
    server_cpu0, client_cpu0 = cpu_seconds(server_pids), time.process_time()
    t0 = time.perf_counter()
    deadline[0] = t0 + args.seconds
    start_line.set()
    results = await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    server_cpu = (cpu_seconds(server_pids) - server_cpu0) / elapsed if server_pids else None
    client_cpu = (time.process_time() - client_cpu0) / elapsed

    print(f"\n{args.students} students, {elapsed:.1f} s, store {args.store_shown}, "
          f"{'one shared address (--nat)' if args.nat else 'one address each'}, "
          f"{os.cpu_count()} cores")
    print(f"{'call':24} {'count':>7} {'per s':>7} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7}  errors")
    for kind in ("POST /api/models", "POST /train", "GET /api/models/{id}"):
        lat = sorted(stats.latency[kind])
        if not lat:
            continue
        q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else [lat[0]] * 99
        rate = len(lat) / elapsed if kind != "POST /api/models" else float("nan")
        errs = ", ".join(f"{k} x{v}" for k, v in stats.errors[kind].most_common()) or "none"
        print(f"{kind:24} {len(lat):7d} {rate:7.1f} {q[49] * 1e3:7.1f} {q[89] * 1e3:7.1f} {q[98] * 1e3:7.1f} "
              f"{lat[-1] * 1e3:7.1f}  {errs}")
    total = sum(len(stats.latency[k]) for k in ("POST /train", "GET /api/models/{id}"))
    steps = sum(r["trains"] for r in results) * args.steps
    print(f"requests/s (train + get): {total / elapsed:.1f}; steps/s: {steps / elapsed:.0f}")
    if server_cpu is not None:
        print(f"CPU: server processes (uvicorn, and redis-server if started) {server_cpu:.2f} cores, "
              f"this client {client_cpu:.2f} cores")
    else:
        print(f"CPU: this client {client_cpu:.2f} cores")

    wrong = [r for r in results if r["id"] is None or r["step"] != args.steps * r["trains"]]
    errors = sum(sum(c.values()) for c in stats.errors.values())
    lat = sorted(stats.latency["GET /api/models/{id}"])
    p99_get = statistics.quantiles(lat, n=100, method="inclusive")[98] * 1e3 if len(lat) > 1 else float("inf")
    print(f"steps exact (step == {args.steps} x successful trains) for {args.students - len(wrong)}/{args.students} "
          "models" + (f"; wrong: {wrong[:5]}" if wrong else ""))
    ok = not wrong and errors == 0 and p99_get < TARGET_P99_GET_MS
    print(f"target (p99 GET < {TARGET_P99_GET_MS:.0f} ms, no errors, exact steps): {'met' if ok else 'MISSED'}")
    return ok


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--students", type=int, default=50)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--steps", type=int, default=10, help="steps per train call")
    p.add_argument("--url", help="an already running server (nothing is started)")
    p.add_argument("--store", default="sqlite", help="sqlite, memory, redis, or a PLAYGROUND_STORE URL")
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (sqlite and redis share models)")
    p.add_argument("--nat", action="store_true", help="every student from one address (no X-Forwarded-For)")
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.students + 256)), hard))

    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        tmp = Path(tmp)
        procs: list[subprocess.Popen] = []
        try:
            server_pids: list[int] = []
            if args.url:
                base, args.store_shown = args.url.rstrip("/"), "(remote)"
            else:
                store = {"sqlite": f"sqlite:///{tmp}/playground.sqlite3", "memory": "memory://"}.get(args.store)
                if args.store == "redis":
                    redis_proc, store = start_redis(tmp)
                    procs.append(redis_proc)
                if args.workers > 1 and store == "memory://":
                    sys.exit("memory:// is per process: use sqlite or redis with --workers")
                args.store_shown = store or args.store
                server, base = start_server(store or args.store, args.workers, tmp / "server.log")
                procs.append(server)
                server_pids = [proc.pid for proc in procs]
            ok = asyncio.run(run(base, args, server_pids))
            if not args.url:
                log = (tmp / "server.log").read_text()
                if "Traceback" in log:
                    print("the server log has tracebacks:\n" + log[-3000:])
                    ok = False
        finally:
            for proc in reversed(procs):
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
