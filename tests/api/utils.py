"""Helpers shared by the API tests: an app with a memory store, a client that refuses any 5xx,
and exact assertions on error bodies."""
from __future__ import annotations

from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app

SMALL = {"layers": [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
         "data": {"dataset": "circle", "samples": 40}}
"""A cheap 2-4-1 classifier on circle: 20 training and 20 test rows."""

XOR = {"layers": [{"units": 3, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
       "loss": "bce", "batch_size": None,
       "data": {"X": [[0, 0], [0, 1], [1, 0], [1, 1]], "y": [[0], [1], [1], [0]]}}


def make_app(**settings: Any):
    return create_app(Settings(store=settings.pop("store", "memory://"), **settings))


class ApiClient(TestClient):
    """TestClient that fails the test on any 5xx (but the documented 507 at the model limit) or stack
    trace, whatever the request was."""

    def request(self, *args, **kwargs):
        r = super().request(*args, **kwargs)
        assert r.status_code < 500 or r.status_code == 507, f"{r.status_code} {r.text[:500]}"
        assert "Traceback" not in r.text and 'File "' not in r.text, r.text[:500]
        return r


def client_for(app) -> ApiClient:
    return ApiClient(app, raise_server_exceptions=True)


def create(client: TestClient, spec: dict | None = None, **fields: Any) -> dict:
    """POST /api/models and return the 201 body."""
    r = client.post("/api/models", json={**(spec or {}), **fields})
    assert r.status_code == 201, r.text
    return r.json()


def not_found(r, model_id: str) -> None:
    assert r.status_code == 404, r.text
    assert r.json() == {"detail": f"model {model_id} not found"}


def unprocessable(r, loc: list, msg: str) -> None:
    """A 422 from the app's own checks: exactly one item with this loc and msg."""
    assert r.status_code == 422, r.text
    assert r.json() == {"detail": [{"loc": loc, "msg": msg, "type": "value_error"}]}, r.text


def invalid(r, loc: list, msg: str) -> None:
    """A 422 from schema validation: an item with this loc and msg (input and ctx vary)."""
    assert r.status_code == 422, r.text
    items = [(item["loc"], item["msg"]) for item in r.json()["detail"]]
    assert (loc, msg) in items, items


def arr(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)
