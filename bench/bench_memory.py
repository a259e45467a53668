"""Benchmark, run by hand: a server's peak and retained memory for the large-net cases.

    python bench/bench_memory.py [--safety-mb 3000] [--skip gradients]

Starts one uvicorn server (default settings, a fresh SQLite store in a temporary folder) and reads
its resident memory from /proc: the peak of each call (VmHWM, reset before the call through
/proc/PID/clear_refs, or sampled every 5 ms where that is not allowed) and what stays resident
afterwards (VmRSS). Cases, in order:

1. create a 12 x 400 tanh net (11 hidden layers of 400, a sigmoid output) on 20,000 spiral samples;
2. GET /boundary at the maximum resolution (PLAYGROUND_MAX_RESOLUTION, 200: 40,000 grid points);
3. POST /predict with PLAYGROUND_MAX_ROWS rows (10,000);
4. POST /gradients with PLAYGROUND_MAX_ROWS rows;
5. create a small net on custom data at the size limit (PLAYGROUND_MAX_SAMPLES_X_FEATURES cells:
   1,000,000 rows x 2 columns, as short integers so that the body fits PLAYGROUND_MAX_BODY_BYTES).

Targets: every call's peak < 500 MB above idle; after the calls, < 100 MB resident beyond the
models' own arrays (``Model.nbytes()`` of the same models, built here). A call that drives the server
past ``--safety-mb`` above idle is stopped by killing the server (the machine is shared), and the
case is reported as over the limit.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

import httpx
import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
from app.config import Settings  # noqa: E402
from app.engine import Model  # noqa: E402
from tests.support import free_port  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_api import start_server  # noqa: E402  (the same uvicorn start as bench_api)

BIG = {"layers": [{"units": 400, "activation": "tanh"}] * 11 + [{"units": 1, "activation": "sigmoid"}],
       "data": {"dataset": "spiral", "samples": 20_000}}
SMALL = {"layers": [{"units": 8, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]}
MB = 2**20


def _status(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) * 1024
    return out


class Watch:
    """Peak RSS of a process during a call: VmHWM after a reset, or sampling; kills it past a safety limit."""

    def __init__(self, proc: subprocess.Popen, limit: int):
        self.proc, self.limit, self.peak, self.killed = proc, limit, 0, False

    def __enter__(self):
        try:
            with open(f"/proc/{self.proc.pid}/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
            self.hwm = True
        except OSError:
            self.hwm = False
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while not self.stop.is_set() and self.proc.poll() is None:
            try:
                rss = _status(self.proc.pid)["VmRSS"]
            except OSError:
                return
            self.peak = max(self.peak, rss)
            if rss > self.limit:
                self.killed = True
                self.proc.kill()
                return
            time.sleep(0.005)

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        if self.proc.poll() is None and self.hwm:
            self.peak = max(self.peak, _status(self.proc.pid)["VmHWM"])
        return False


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--safety-mb", type=int, default=3000, help="kill the server past this many MB above idle")
    ap.add_argument("--skip", action="append", default=[], help="skip a case by name (create, boundary, predict, "
                                                                 "gradients, custom)")
    args = ap.parse_args(argv)
    s = Settings()
    rng = np.random.default_rng(0)
    X_rows = rng.uniform(-5, 5, (s.max_rows, 2)).round(3).tolist()
    custom_rows = s.max_samples_x_features // 2
    custom_X = rng.integers(0, 10, (custom_rows, 2)).tolist()
    custom_y = (rng.integers(0, 2, (custom_rows, 1))).tolist()

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc = start_server(port, f"sqlite:///{tmp}/bench.sqlite3")
        base = f"http://127.0.0.1:{port}/api"
        client = httpx.Client(timeout=600)
        rows, auth, own = [], {}, []
        try:
            client.get(f"{base}/models/nosuch")  # warm the routes once
            time.sleep(0.5)
            idle = _status(proc.pid)["VmRSS"]
            limit = idle + args.safety_mb * MB
            print(f"server pid {proc.pid}, idle RSS {idle / MB:.0f} MB; safety limit {limit / MB:.0f} MB")

            def case(name: str, method: str, url: str, **kw):
                if name in args.skip or proc.poll() is not None:
                    rows.append((name, None, None, "skipped"))
                    return None
                before = _status(proc.pid)["VmRSS"]
                t0 = time.perf_counter()
                with Watch(proc, limit) as w:
                    try:
                        r = client.request(method, url, headers=auth, **kw)
                        status = str(r.status_code)
                    except httpx.HTTPError as e:
                        r, status = None, f"failed ({type(e).__name__})"
                if w.killed:
                    status = f"killed past {args.safety_mb} MB"
                seconds = time.perf_counter() - t0
                time.sleep(0.5)
                after = _status(proc.pid)["VmRSS"] if proc.poll() is None else None
                rows.append((name, w.peak - idle, None if after is None else after - idle,
                             f"{status} in {seconds:.1f} s (RSS before {(before - idle) / MB:.0f} MB above idle)"))
                return r

            r = case("create", "POST", f"{base}/models", json=BIG)
            if r is not None and r.status_code == 201:
                mid = r.json()["id"]
                auth["Authorization"] = f"Bearer {r.json()['token']}"
                own.append(Model(BIG).nbytes())
                case("boundary", "GET", f"{base}/models/{mid}/boundary", params={"resolution": s.max_resolution})
                case("predict", "POST", f"{base}/models/{mid}/predict", json={"X": X_rows})
                y_rows = [[float(i % 2)] for i in range(len(X_rows))]
                case("gradients", "POST", f"{base}/models/{mid}/gradients", json={"X": X_rows, "y": y_rows})
            auth.clear()
            spec = {**SMALL, "loss": "bce", "data": {"X": custom_X, "y": custom_y}}
            r = case("custom", "POST", f"{base}/models", json=spec)
            if r is not None and r.status_code == 201:
                own.append(Model(spec).nbytes())
            final = _status(proc.pid)["VmRSS"] if proc.poll() is None else None
        finally:
            client.close()
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)

    print(f"\n{'case':10} {'peak above idle':>16} {'resident after':>15}  result")
    for name, peak, after, note in rows:
        p = "-" if peak is None else f"{peak / MB:.0f} MB"
        a = "-" if after is None else f"{after / MB:.0f} MB"
        ok = "" if peak is None else ("ok" if peak < 500 * MB else "MISSED (< 500 MB)")
        print(f"{name:10} {p:>16} {a:>15}  {note} {ok}")
    if final is not None:
        models = sum(own)
        retained = final - idle - models
        print(f"\nresident after all calls: {(final - idle) / MB:.0f} MB above idle; the models' own arrays "
              f"{models / MB:.0f} MB; beyond them {retained / MB:.0f} MB "
              f"({'ok' if retained < 100 * MB else 'MISSED'}, target < 100 MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
