"""Benchmark, run by hand: how smoothly the page redraws while it plays, as a ratio in one run.

    python bench/bench_page.py [--seconds 3] [--repeats 3]

Starts uvicorn (memory store, rate limits off) on a free port and headless Debian chromium through
Playwright, then for each repeat:

1. baseline: a raw WebSocket client plays a fresh default model and counts the frames per second
   the server delivers (the most the page could draw);
2. the page: opens `/`, presses Play and counts redraws per second from `window.__playground.frames`
   (timestamps render.js records on each redraw), over the same window length.

Reported: both rates and their ratio (page redraws / delivered frames); target ratio >= 0.67 (the
former browser test's 20 redraws/s against the stream's 30 frames/s). This used to be a test
(tests/e2e/test_playground.py, >= 20 redraws/s); on a loaded machine it measured 15.7 and failed the
whole CI run, so it lives here now and no test asserts a rate.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("PLAYGROUND_CHROMIUM", "/usr/bin/chromium")
TARGET_RATIO = 20 / 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(base: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def start_server() -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PLAYGROUND_STORE": "memory://", "PLAYGROUND_RATE_LIMIT_PER_CLIENT": "0",
           "PLAYGROUND_RATE_LIMIT_PER_TOKEN": "0", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1",
                             "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(base + "/api/health", timeout=1):
                return proc, base
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("the server did not start")


def delivered_fps(base: str, seconds: float) -> float:
    """Frames per second a plain WebSocket client receives while playing a fresh default model."""
    m = post(base, "/api/models", {})
    url = base.replace("http", "ws", 1) + f"/api/models/{m['id']}/stream?token={m['token']}"
    with connect(url, open_timeout=10) as ws:
        ws.send(json.dumps({"action": "play"}))
        ws.recv(timeout=10)
        time.sleep(0.5)  # past the first frames, as the page measurement below
        while True:  # drop what queued up meanwhile
            try:
                ws.recv(timeout=0)
            except TimeoutError:
                break
        count, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < seconds:
            count += json.loads(ws.recv(timeout=10)).get("type") == "frame"
        elapsed = time.monotonic() - t0
        ws.send(json.dumps({"action": "pause"}))
    return count / elapsed


def page_redraws(browser, base: str, seconds: float) -> float:
    """Redraws per second of the playground page while it plays the default net."""
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    try:
        page.goto(base + "/")
        page.wait_for_selector("body[data-ready=true]", timeout=20_000)
        page.click("#play")
        page.wait_for_selector("#play[aria-pressed=true]", timeout=5_000)
        time.sleep(0.5)
        t0 = page.evaluate("performance.now()")
        time.sleep(seconds)
        t1 = page.evaluate("performance.now()")
        n = page.evaluate("([a, b]) => window.__playground.frames.filter(t => t >= a && t <= b).length", [t0, t1])
        page.click("#play")
        return n / ((t1 - t0) / 1000.0)
    finally:
        page.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    proc, base = start_server()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            rows = []
            for i in range(args.repeats):
                fps = delivered_fps(base, args.seconds)
                redraws = page_redraws(browser, base, args.seconds)
                rows.append((fps, redraws, redraws / fps))
                print(f"repeat {i + 1}: stream {fps:5.1f} frames/s  page {redraws:5.1f} redraws/s  "
                      f"ratio {redraws / fps:.2f}")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
    ratio = statistics.median(r[2] for r in rows)
    print(f"median ratio page redraws / delivered frames: {ratio:.2f} (target >= {TARGET_RATIO:.2f}); "
          f"median page redraws/s {statistics.median(r[1] for r in rows):.1f}")


if __name__ == "__main__":
    main()
