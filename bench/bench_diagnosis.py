"""The composed diagnosis on a 12-layer net against GET /gradients on the default net, as a ratio.

Run by hand (pytest does not collect this file):

    PYTHONPATH=$PWD python bench/bench_diagnosis.py [--reps 30]

The diagnosis case is check_student on a 12-layer net (3 -> 11 x 8 tanh -> 1 sigmoid + mse, batch 32)
whose student gradients carry two mistakes at layer 11 (f'(a) left out and the factor 2 missing),
so every layer is wrong and the composed search runs at the entry and at each layer below. The
reference is GET /api/models/{id}/gradients on the default model through the app (TestClient, the
sqlite store in a temporary directory). Medians of interleaved repetitions, CPU time of this process.
Target: diagnosis / gradients <= 50.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

from app.engine.checker import Batch, check_student
from app.engine.network import Network


def twelve_layer_case():
    net = Network([3] + [8] * 11 + [1], ["tanh"] * 11 + ["sigmoid"], loss="mse", bias=True)
    net.initialize(0, "normal", 0.7)
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(32, 3)), rng.normal(size=(32, 1))
    b = Batch.of(net, X, y)
    deltas = b.carry(11, 0.5 * b.down(11, b.delta[11], "no_fprime"), None)
    layers = [{"dW": b.grads(i, deltas[i])[0], "db": b.grads(i, deltas[i])[1]} if i in deltas
              else {"dW": b.dW[i - 1], "db": b.db[i - 1]} for i in range(1, 13)]
    return net, X, y, layers


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    os.environ.setdefault("PLAYGROUND_STORE", f"sqlite:///{tempfile.mkdtemp()}/bench.db")
    from fastapi.testclient import TestClient

    from app.config import Settings
    from app.main import create_app

    net, X, y, layers = twelve_layer_case()
    r = check_student(net, X, y, layers)
    print("first_error:", r["first_error"]["layer"], r["first_error"]["kind"])
    with TestClient(create_app(Settings())) as client:
        mid = client.post("/api/models", json={}).json()["id"]
        client.get(f"/api/models/{mid}/gradients").raise_for_status()
        diag, grads = [], []
        for _ in range(args.reps):
            t = time.process_time()
            check_student(net, X, y, layers)
            diag.append(time.process_time() - t)
            t = time.process_time()
            client.get(f"/api/models/{mid}/gradients").raise_for_status()
            grads.append(time.process_time() - t)
    d, g = statistics.median(diag), statistics.median(grads)
    print(f"composed diagnosis, 12 layers: {d * 1e3:.2f} ms CPU; GET /gradients, default net: {g * 1e3:.2f} ms CPU; "
          f"ratio {d / g:.1f}x (target <= 50x)")


if __name__ == "__main__":
    main()
