"""/derive with code against GET /gradients on the default net, in-process (run by hand, not a test).

    PYTHONPATH=$PWD python bench/bench_derive_code.py   # prints the ratio of the medians; the bound is 20x
"""
from __future__ import annotations

import statistics
import time

from fastapi.testclient import TestClient

from app.engine.program import FIXED_CODE
from app.main import app



def median_ms(call, n: int = 30) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    with TestClient(app) as c:
        made = c.post("/api/models", json={}).json()
        mid, headers = made["id"], {"authorization": f"Bearer {made['token']}"}
        body = {"convention": "columns", "code": FIXED_CODE}
        assert c.post(f"/api/models/{mid}/derive", json=body, headers=headers).status_code == 200
        grads = median_ms(lambda: c.get(f"/api/models/{mid}/gradients", headers=headers))
        code = median_ms(lambda: c.post(f"/api/models/{mid}/derive", json=body, headers=headers))
    print(f"GET /gradients {grads:.2f} ms, /derive with code {code:.2f} ms: {code / grads:.1f}x (bound 20x)")


if __name__ == "__main__":
    main()
