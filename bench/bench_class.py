"""Class benchmark, run by hand: N students press Play together on one server.

    python bench/bench_class.py [--students 40] [--seconds 10] [--lone-seconds 5] [--workers 1]
                                [--store sqlite|memory] [--url http://host:port]

Without --url it starts uvicorn itself on a free loopback port with the default settings (a
throwaway SQLite file as the store, --proxy-headers as the Dockerfile runs it; ``--workers 2``
optional). Each student creates their own model (the default 2-8-8-1 net on spiral) and sends its
own X-Forwarded-For address, as students on their own machines would appear behind the proxy.

1. One student streams alone for ``--lone-seconds``: frames/s and training steps/s.
2. All N stream together for ``--seconds`` while a bystander (its own process, its own model, not
   streaming) sends GET /api/models/{id} every 100 ms.

Reported: the slowest and median student's frames/s (counting only frames that carry what the page
draws: a frame with the layers and the boundary), the class's training steps/s against the lone
stream's (measured in the same run), and the bystander's p50 / p99 latency. The frames are read
with the page's own protocol: the token in the first message, then {"action": "play"}.

Targets (2 cores): slowest >= 15 frames/s, class steps/s >= 0.5 x lone, bystander p99 <= 150 ms,
lone stream >= 25 frames/s.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
from websockets.asyncio.client import connect

from bench_load import start_server  # the same server start as the load benchmark (this folder)

ROOT = Path(__file__).resolve().parents[1]
SPEC = {"data": {"dataset": "spiral"}}  # the playground's default 2-8-8-1 tanh net
WARMUP = 1.0  # seconds of play before counting (connections opening, first frames)


def address(i: int) -> str:
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


def create_models(url: str, n: int) -> list[tuple[str, str, str]]:
    """(id, token, client address) per student, plus one more for the bystander (last)."""
    out = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for i in range(n + 1):
            ip = address(i + 1)
            r = http.post("/api/models", json={**SPEC, "nickname": f"s{i}"}, headers={"X-Forwarded-For": ip})
            r.raise_for_status()
            out.append((r.json()["id"], r.json()["token"], ip))
    return out


class Student:
    query_token = False  # --query-token: ?token= instead of the first message (servers before it)

    def __init__(self, url: str, model_id: str, token: str, ip: str):
        self.ws_url = url.replace("http", "ws", 1) + f"/api/models/{model_id}/stream"
        if self.query_token:
            self.ws_url += f"?token={token}"
        self.token, self.ip = token, ip
        self.frames: list[tuple[float, int]] = []  # (arrival time, step) of full frames
        self.other = 0

    async def play(self, seconds: float, two_d: bool = True) -> None:
        async with connect(self.ws_url, additional_headers={"X-Forwarded-For": self.ip},
                           max_size=2 ** 24, open_timeout=60) as ws:
            if not self.query_token:
                await ws.send(orjson.dumps({"action": "auth", "token": self.token}).decode())
            await ws.send('{"action": "play"}')
            end = time.monotonic() + seconds
            while (left := end - time.monotonic()) > 0:
                try:
                    raw = await asyncio.wait_for(ws.recv(), left)
                except asyncio.TimeoutError:
                    break
                msg = orjson.loads(raw)
                if msg.get("type") == "frame" and msg.get("layers") and (msg.get("boundary") or not two_d):
                    self.frames.append((time.monotonic(), msg["step"]))
                else:
                    self.other += 1
            await ws.send('{"action": "pause"}')

    def window(self, t0: float, t1: float) -> tuple[float, int]:
        """(frames/s, steps trained) between t0 and t1, from the frames that arrived in it."""
        inside = [(t, s) for t, s in self.frames if t0 <= t <= t1]
        if len(inside) < 2:
            return 0.0, 0
        return len(inside) / (t1 - t0), inside[-1][1] - inside[0][1]


def bystander(url: str, model_id: str, seconds: float, queue) -> None:
    """GET /api/models/{id} every 100 ms; puts the latencies (s) on the queue."""
    lat = []
    with httpx.Client(base_url=url, timeout=30, headers={"X-Forwarded-For": "10.255.255.254"}) as http:
        end = time.monotonic() + seconds
        next_at = time.monotonic()
        while time.monotonic() < end:
            started = time.perf_counter()
            http.get(f"/api/models/{model_id}").raise_for_status()
            lat.append(time.perf_counter() - started)
            next_at += 0.1
            time.sleep(max(0.0, next_at - time.monotonic()))
    queue.put(lat)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (uvicorn workers), from /proc."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for p in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (FileNotFoundError, IndexError):
            pass
    return total


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def run(args, url: str, pid: int | None) -> None:
    models = await asyncio.to_thread(create_models, url, args.students)
    students = [Student(url, *m) for m in models[:-1]]
    by_id = models[-1][0]

    lone = Student(url, *models[0])
    cpu0 = cpu_seconds(pid) if pid else None
    started = time.monotonic()
    await lone.play(args.lone_seconds + WARMUP)
    lone_cpu = (cpu_seconds(pid) - cpu0) / (time.monotonic() - started) if pid else None
    lone_fps, lone_steps = lone.window(started + WARMUP, started + WARMUP + args.lone_seconds)
    lone_steps_s = lone_steps / args.lone_seconds

    q = mp.Queue()
    watcher = mp.Process(target=bystander, args=(url, by_id, args.seconds + WARMUP, q), daemon=True)
    cpu0 = cpu_seconds(pid) if pid else None
    started = time.monotonic()
    watcher.start()
    await asyncio.gather(*(s.play(args.seconds + WARMUP) for s in students))
    t0, t1 = started + WARMUP, started + WARMUP + args.seconds
    cpu = (cpu_seconds(pid) - cpu0) / (time.monotonic() - started) if pid else None
    latencies = q.get(timeout=60)
    watcher.join(10)

    per = [s.window(t0, t1) for s in students]
    fps = sorted(f for f, _ in per)
    class_steps_s = sum(n for _, n in per) / args.seconds
    print(f"students {args.students}, workers {args.workers}, store {args.store}, class {args.seconds:.0f} s")
    print(f"{'measure':44} {'figure':>12} target")
    print(f"{'lone stream frames/s':44} {lone_fps:12.1f} >= 25")
    print(f"{'lone stream steps/s':44} {lone_steps_s:12.0f}")
    print(f"{'class: slowest student frames/s':44} {fps[0]:12.1f} >= 15")
    print(f"{'class: median student frames/s':44} {statistics.median(fps):12.1f}")
    print(f"{'class: training steps/s':44} {class_steps_s:12.0f}")
    print(f"{'class steps/s / lone stream steps/s':44} {class_steps_s / max(lone_steps_s, 1e-9):12.2f} >= 0.5")
    print(f"{'bystander GET p50 / p99 ms':44} {pct(latencies, 50) * 1e3:5.0f} / {pct(latencies, 99) * 1e3:4.0f} p99 <= 150")
    print(f"{'bystander GETs':44} {len(latencies):12d}")
    print(f"{'non-frame messages (errors)':44} {sum(s.other for s in students):12d}")
    if cpu is not None:
        # on a shared machine the server may get less CPU during the class than alone: per CPU-second
        # figures show what the server does with the CPU it gets
        print(f"{'server CPU (cores): lone stream / class':44} {lone_cpu:5.2f} / {cpu:4.2f}")
        print(f"{'class frames per server CPU-second':44} {sum(fps) / cpu:12.0f}")
        print(f"{'steps per server CPU-second: class / lone':44} "
              f"{(class_steps_s / cpu) / max(lone_steps_s / lone_cpu, 1e-9):12.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--students", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--lone-seconds", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--store", default="sqlite", help="sqlite (a throwaway file) or memory")
    ap.add_argument("--url", help="a running server instead of starting one")
    ap.add_argument("--query-token", action="store_true", help="send the token as ?token= (older servers)")
    args = ap.parse_args()
    Student.query_token = args.query_token
    if args.url:
        asyncio.run(run(args, args.url, None))
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench_class_"))
    store = f"sqlite:///{tmp / 'bench.sqlite3'}" if args.store == "sqlite" else "memory://"
    if args.store == "memory" and args.workers > 1:
        sys.exit("memory:// is per process: use --store sqlite with --workers > 1")
    proc, url = start_server(store, args.workers, tmp / "server.log")
    try:
        asyncio.run(run(args, url, proc.pid))
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
