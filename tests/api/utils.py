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
    """An app on a memory store; rate limits are off unless a test sets them."""
    settings.setdefault("rate_limit_per_client", 0)
    settings.setdefault("rate_limit_per_token", 0)
    return create_app(Settings(store=settings.pop("store", "memory://"), **settings))


class ApiClient(TestClient):
    """TestClient that fails the test on any 5xx (but the documented 507 at the model limit) or stack
    trace, whatever the request was. Like the page, it remembers each created model's token and sends
    it (unless the test sets its own Authorization, or asks for none with ``auth=False``)."""

    tokens: dict[str, str]  # shared by every client: ids are unique, and tests use several apps on one store

    def request(self, method, url, *args, auth_token: bool = True, **kwargs):
        token = self._token_for(str(url)) if auth_token else None
        headers = dict(kwargs.pop("headers", None) or {})
        if token and not any(k.lower() == "authorization" for k in headers):
            headers["Authorization"] = f"Bearer {token}"
        r = super().request(method, url, *args, headers=headers, **kwargs)
        assert r.status_code < 500 or r.status_code == 507, f"{r.status_code} {r.text[:500]}"
        assert "Traceback" not in r.text and 'File "' not in r.text, r.text[:500]
        if r.status_code == 201 and r.headers.get("content-type", "").startswith("application/json"):
            body = r.json()
            if isinstance(body, dict) and "token" in body and "id" in body:
                self.tokens[body["id"]] = body["token"]
        return r

    def websocket_connect(self, url, *args, auth_token: bool = True, **kwargs):
        token = self._token_for(str(url)) if auth_token else None
        if token and "token=" not in url:
            url += ("&" if "?" in url else "?") + f"token={token}"
        return super().websocket_connect(url, *args, **kwargs)

    def _token_for(self, url: str) -> str | None:
        parts = url.split("?")[0].split("/")
        if "models" in parts:
            i = parts.index("models")
            if i + 1 < len(parts):
                return TOKENS.get(parts[i + 1])
        return None


def client_for(app) -> ApiClient:
    c = ApiClient(app, raise_server_exceptions=True)
    c.tokens = TOKENS
    return c


TOKENS: dict[str, str] = {}


def token_hooks() -> dict:
    """httpx event hooks that do what ApiClient does, for clients of a real server."""
    def add_token(request):
        token = ApiClient._token_for(None, str(request.url.path))
        if token and "authorization" not in request.headers:
            request.headers["Authorization"] = f"Bearer {token}"

    def remember(response):
        if response.status_code == 201 and response.headers.get("content-type", "").startswith("application/json"):
            response.read()
            body = response.json()
            if isinstance(body, dict) and "token" in body:
                TOKENS[body["id"]] = body["token"]

    return {"request": [add_token], "response": [remember]}


def with_token(url: str) -> str:
    """A stream URL with its model's token as ?token=."""
    token = ApiClient._token_for(None, url)
    return url + ("&" if "?" in url else "?") + f"token={token}" if token else url


def create(client: TestClient, spec: dict | None = None, **fields: Any) -> dict:
    """POST /api/models and return the 201 body as GET shows it (the client keeps the token)."""
    r = client.post("/api/models", json={**(spec or {}), **fields})
    assert r.status_code == 201, r.text
    body = r.json()
    assert len(body.pop("token")) >= 32
    return body


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


def bool_refused(r, loc: list, value) -> None:
    """A JSON true/false is required: "yes", "on", 1 or "true" is a 422 naming the field."""
    assert (r.status_code, r.json()) == (422, {"detail": [{"type": "bool_type", "loc": loc,
                                                           "msg": "Input should be a valid boolean", "input": value}]})


def arr(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


# a tanh net that sgd at learning rate 1e4 drives to weights ~1e156: its true gradients overflow
DIVERGING = {"layers": [{"units": 3, "activation": "tanh"}, {"units": 1, "activation": "identity"}], "loss": "mse",
             "optimizer": {"name": "sgd", "learning_rate": 1e4}, "data": {"dataset": "plane", "samples": 40}}
DIVERGED = ("the model has diverged: its true gradients on this batch are not finite (its weights are so large that "
            "the backward pass overflows), so nothing can be compared; reset the model or lower the learning rate, "
            "then check again")


def diverged_model(client: TestClient) -> str:
    """A model whose 200 sgd steps diverged (the /check and /derive answers for such a model)."""
    mid = create(client, DIVERGING)["id"]
    assert client.post(f"/api/models/{mid}/train", json={"steps": 200}).json()["diverged"] is True  # the premise
    return mid


def call_then_leave(app, method: str, path: str, body: dict, headers: dict | None = None,
                    stay: float = 0.5) -> list[dict]:
    """Raw ASGI: send the request, stay connected ``stay`` seconds, then disconnect while the call runs.
    Returns the ASGI messages the app sent."""
    import json as jsonlib

    import anyio

    raw = jsonlib.dumps(body).encode()

    async def call() -> list[dict]:
        sent: list[dict] = []
        messages = [{"type": "http.request", "body": raw, "more_body": False}]
        started = anyio.current_time()

        async def receive() -> dict:
            if messages:
                return messages.pop(0)
            if anyio.current_time() - started < stay:  # still there: nothing to receive yet
                await anyio.sleep_forever()  # (Starlette polls with a zero timeout, which cancels this)
            return {"type": "http.disconnect"}  # then the client goes away while the call runs

        async def send(message: dict) -> None:
            sent.append(message)

        head = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
        head += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
                 "headers": head, "client": ("127.0.0.1", 5000), "server": ("testserver", 80), "state": {}}
        await app(scope, receive, send)
        return sent

    return anyio.run(call)
