"""Gallery cost for a class of 50 (run by hand: python -m bench.bench_gallery).

Reports GET /api/class/gallery?resolution=R for 50 models as a ratio to GET /api/class/models (the
table the page polls anyway) measured in the same run, on a memory store with every model live.
"""
from __future__ import annotations

import statistics
import time

from tests.api.utils import client_for, make_app

ADMIN = {"Authorization": "Bearer bench"}
STUDENTS = 50


def best_of(fn, runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    with client_for(make_app(admin_token="bench")) as c:
        for i in range(STUDENTS):
            m = c.post("/api/models", json={"nickname": f"s{i}", "data": {"dataset": "spiral"}}).json()
            c.post(f"/api/models/{m['id']}/train", json={"steps": 20})
        base = best_of(lambda: c.get("/api/class/models", headers=ADMIN).raise_for_status())
        print(f"{STUDENTS} models; baseline GET /api/class/models = 1.0 ({base * 1000:.0f} ms on this machine)")
        for r in (16, 32, 48):
            t = best_of(lambda: c.get(f"/api/class/gallery?resolution={r}", headers=ADMIN).raise_for_status())
            print(f"GET /api/class/gallery?resolution={r}: {t / base:.1f}x the baseline")
        sizes = [len(c.get(f"/api/class/gallery?resolution={r}", headers=ADMIN).content) for r in (16, 32, 48)]
        print("response sizes (kB):", ", ".join(f"{s / 1024:.0f}" for s in sizes), statistics.mean(sizes) > 0)


if __name__ == "__main__":
    main()
