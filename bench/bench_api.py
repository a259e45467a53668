"""Benchmark, run by hand: HTTP training overhead and stream frame rate, as ratios in one run.

    python bench/bench_api.py [--repeats 5]

1. POST /train with steps=2000 on the playground net (2-8-8-1 tanh, batch 10) over loopback HTTP,
   against the engine's own in-process time for the same 2000 steps. Target: <= 1.3x.
2. The WebSocket stream's frames per second while it trains. Target: >= 20 frames/s.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import httpx
import websockets

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from app.engine import Model  # noqa: E402

SPEC = {"layers": [{"units": 8, "activation": "tanh"}, {"units": 8, "activation": "tanh"},
                   {"units": 1, "activation": "tanh"}],
        "loss": "mse", "batch_size": 10, "optimizer": {"name": "sgd", "learning_rate": 0.03},
        "data": {"dataset": "xor", "samples": 200}}
STEPS = 2000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, store: str, serve: list[str] = ("-m", "uvicorn", "app.main:app"),
                 preexec_fn=None) -> subprocess.Popen:
    """``python <serve> --port P --host 127.0.0.1``; ``serve`` may be ["-m", "app.cli", "serve", ...]."""
    env = {**os.environ, "PLAYGROUND_STORE": store}
    proc = subprocess.Popen([sys.executable, *serve, "--port", str(port), "--host",
                             "127.0.0.1", "--log-level", "warning"], env=env, preexec_fn=preexec_fn,
                            cwd=os.path.join(os.path.dirname(__file__), ".."))
    for _ in range(400):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health").status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


def engine_time() -> float:
    m = Model(SPEC)
    t = time.perf_counter()
    m.train(STEPS)
    return time.perf_counter() - t


def http_time(client: httpx.Client, base: str, model_id: str, token: str) -> float:
    t = time.perf_counter()
    r = client.post(f"{base}/api/models/{model_id}/train", json={"steps": STEPS},
                    headers={"Authorization": f"Bearer {token}"})
    elapsed = time.perf_counter() - t
    assert r.status_code == 200 and r.json()["steps_done"] == STEPS, r.text
    return elapsed


async def stream_fps(base_ws: str, model_id: str, token: str, seconds: float = 3.0) -> tuple[float, int]:
    async with websockets.connect(f"{base_ws}/api/models/{model_id}/stream?token={token}", max_size=2**24) as ws:
        await ws.send(json.dumps({"action": "play"}))
        first = json.loads(await ws.recv())
        t0, n, last = time.perf_counter(), 0, first
        while time.perf_counter() - t0 < seconds:
            last = json.loads(await ws.recv())
            n += 1
        fps = n / (time.perf_counter() - t0)
        await ws.send(json.dumps({"action": "pause"}))
        return fps, last["step"] - first["step"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--store", default=None, help="default: a fresh sqlite file")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    store = args.store or f"sqlite:///{tmp}/bench.sqlite3"
    port = free_port()
    proc = start_server(port, store)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=60) as client:
            created = client.post(f"{base}/api/models", json=SPEC).json()
            model_id, token = created["id"], created["token"]
            http_time(client, base, model_id, token)  # warm-up
            engine_time()
            eng, web = [], []
            for _ in range(args.repeats):  # interleaved, so drift on a shared machine hits both
                eng.append(engine_time())
                web.append(http_time(client, base, model_id, token))
        e, w = statistics.median(eng), statistics.median(web)
        print(f"store: {store}")
        print(f"train {STEPS} steps: engine {e * 1e3:.1f} ms, HTTP {w * 1e3:.1f} ms, "
              f"ratio HTTP/engine = {w / e:.2f} (target <= 1.3)")
        fps, steps = asyncio.run(stream_fps(f"ws://127.0.0.1:{port}", model_id, token))
        print(f"stream: {fps:.1f} frames/s (target >= 20), {steps / 3:.0f} training steps/s while streaming")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
