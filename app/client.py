"""Python client for the Backprop Playground API, for notebooks and scripts: NumPy arrays in and out.

    from app.client import PlaygroundClient

    pg = PlaygroundClient("http://localhost:8000")
    m = pg.create_model({"data": {"dataset": "xor", "noise": 0.1}})   # remembers the model's token
    pg.train(m["id"], 500)["losses"]                                    # np.ndarray, one per step
    g = pg.gradients(m["id"])                                           # a, z, delta, dz, dW, db per layer
    g["layers"][0]["dW"].shape                                          # (8, 2): W_1 is (out, in)
    for frame in pg.stream(m["id"], frames=20): ...                     # the WebSocket, as an iterator
    pg.check(m["id"], layers=[{"dW": my_dW1}])["first_error"]          # your gradients, any shape
    pg.derive(m["id"], {"dW[i]": "delta[i] @ z[i-1].T", ...})           # your equations (columns or rows)

``AsyncPlaygroundClient`` has the same methods as coroutines (``stream`` is an async iterator).
Every error answer raises ``PlaygroundError`` with the status code and the server's message; a 429
is retried after its ``Retry-After``. Calls that change a model (train, PUT parameters, PATCH, reset,
DELETE, the stream) send ``Authorization: Bearer <token>``: the token from create_model, import_model
or fork, one set with ``set_token``, or the ``token`` given to the constructor.

Both classes share every request builder and response conversion (``_Api``); they differ only in
how a request is sent (``_run``) and how the stream is read.
"""
from __future__ import annotations

import asyncio
import functools
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator

import httpx
import numpy as np

__all__ = ["PlaygroundClient", "AsyncPlaygroundClient", "PlaygroundError"]

MAX_RETRY_WAIT = 60.0   # seconds: a longer Retry-After is not waited for
WS_MAX_MESSAGE = 64 * 1024 * 1024


class PlaygroundError(Exception):
    """An error answer: ``status_code``, ``detail`` (the server's JSON detail) and a readable ``message``.

    For a 422 the message joins each item's location and reason, e.g.
    ``data.csv: line 4 has 3 cells, the header (line 1) has 4``.
    """

    def __init__(self, status_code: int, detail: Any, message: str | None = None):
        self.status_code, self.detail = status_code, detail
        self.message = message if message is not None else _message(detail)
        super().__init__(f"{status_code}: {self.message}")


def _message(detail: Any) -> str:
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = [str(x) for x in item.get("loc", []) if x not in ("body", "query", "path")]
                parts.append(f"{'.'.join(loc)}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)


# -- conversions ---------------------------------------------------------------------------------
def _array(x) -> np.ndarray | None:
    """JSON lists to float64 arrays; null entries (non-finite on the server) become NaN."""
    return None if x is None else np.asarray(x, dtype=np.float64)


def _lists(x):
    """An array (or nested lists, or a number) as JSON-able lists."""
    return None if x is None else np.asarray(x, dtype=np.float64).tolist()


def _plain(x):
    """Arrays (any shape) as nested lists; lists and numbers as they are, so the server judges their structure."""
    return x.tolist() if isinstance(x, (np.ndarray, np.generic)) else x


def _matrix(x) -> list:
    """A batch as rows: a 1-D array is one column (B,) -> (B, 1)."""
    a = np.asarray(x, dtype=np.float64)
    return (a[:, None] if a.ndim == 1 else a).tolist()


def _batch(X, y) -> dict:
    """{"X", "y"} as rows, or {} for the server's default batch."""
    if (X is None) != (y is None):
        raise ValueError("X and y go together")
    return {} if X is None else {"X": _matrix(X), "y": _matrix(y)}


def _arrays(d: dict, *keys: str) -> dict:
    return {**d, **{k: _array(d[k]) for k in keys if k in d}}


def _layers(layers) -> list:
    """Parameters to send: [{"W", "b"}] dicts or (W, b) pairs."""
    out = []
    for layer in layers:
        W, b = (layer["W"], layer.get("b")) if isinstance(layer, dict) else layer
        out.append({"W": _lists(W), "b": _lists(b)})
    return out


def _parameters(body: dict) -> list[dict]:
    return [{"W": _array(layer["W"]), "b": _array(layer["b"])} for layer in body["layers"]]


def _gradients(body: dict) -> dict:
    return {**_arrays(body, "inputs"),
            "layers": [_arrays(layer, "a", "z", "delta", "dz", "dW", "db") for layer in body["layers"]]}


def _history(body: dict) -> dict:
    ev = body["eval"]
    return {"step": np.asarray(body["step"], np.int64), "loss": _array(body["loss"]),
            "grad_norms": _array(body["grad_norms"]),
            "eval": {"step": np.asarray(ev["step"], np.int64), "train_loss": _array(ev["train_loss"]),
                     "test_loss": _array(ev["test_loss"])}}


def _boundary(body: dict) -> dict:
    return {**_arrays(body, "output"), "neurons": [_array(n) for n in body.get("neurons") or []]}


def _data(body: dict) -> dict:
    return {**body, "train": _arrays(body["train"], "X", "y"), "test": _arrays(body["test"], "X", "y")}


def _frame(msg: dict) -> dict:
    """A stream frame with arrays: losses, loss_steps, grad_norms, each layer's W, b, dW, db, the boundary."""
    out = _arrays(msg, "losses", "grad_norms")
    if "loss_steps" in msg:
        out["loss_steps"] = np.asarray(msg["loss_steps"], np.int64)
    if msg.get("layers"):
        out["layers"] = [_arrays(layer, "W", "b", "dW", "db") for layer in msg["layers"]]
    if msg.get("boundary"):
        b = msg["boundary"]
        if isinstance(b.get("output"), dict):  # frames carry 8-bit grids (docs/api.md "Stream messages")
            b = {**b, "output": _ungrid(b["output"]), "neurons": [_ungrid(n) for n in b.get("neurons") or []]}
        out["boundary"] = _boundary(b)
    return out


def _ungrid(g: dict) -> np.ndarray:
    """A stream grid as floats: lo + (hi - lo) * level / 255, reshaped to its shape."""
    import base64
    levels = np.frombuffer(base64.b64decode(g["u8"]), np.uint8).reshape(g["shape"])
    return g["lo"] + (g["hi"] - g["lo"]) * levels / 255.0


def _csv_text(path_or_text) -> str:
    """The CSV's text: from a path (str or PathLike) or the text itself (a str with a line break)."""
    if isinstance(path_or_text, (bytes, bytearray)):
        raw = bytes(path_or_text)
    elif isinstance(path_or_text, os.PathLike) or ("\n" not in path_or_text and Path(path_or_text).is_file()):
        raw = Path(path_or_text).read_bytes()
    else:
        return path_or_text
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ValueError(f"line {line}: the file is not UTF-8 text (byte 0x{raw[e.start]:02x}); "
                         "save it as CSV UTF-8") from None


# -- requests ------------------------------------------------------------------------------------
@dataclass
class _Call:
    """One HTTP request and how to turn its answer into a result."""

    method: str
    path: str
    json: Any = None
    params: dict | None = None
    content: bytes | None = None
    headers: dict = field(default_factory=dict)
    parse: Callable[[httpx.Response], Any] = lambda r: r.json()


def _endpoint(build: Callable[..., _Call]):
    """A public method from a request builder (which returns a _Call): the sync class's ``_run`` sends it and
    returns the result, the async class's ``_run`` returns a coroutine."""
    @functools.wraps(build)
    def method(self, *args, **kwargs):
        return self._run(build(self, *args, **kwargs))
    return method


def _error(r: httpx.Response) -> PlaygroundError:
    try:
        detail = r.json().get("detail", r.text)
    except (ValueError, AttributeError):
        detail = r.text or r.reason_phrase
    return PlaygroundError(r.status_code, detail)


def _retry_after(r: httpx.Response, attempt: int) -> float:
    try:
        wait = float(r.headers.get("retry-after", ""))
    except ValueError:
        wait = 2.0 ** attempt
    return min(max(wait, 0.1), MAX_RETRY_WAIT)


class _Api:
    """Everything but sending: the endpoints as request builders, tokens, URLs and conversions."""

    def __init__(self, base_url: str = "http://localhost:8000", *, token: str | None = None, timeout: float = 60,
                 retries: int = 5):
        base = base_url.rstrip("/")
        self.base_url = base[:-4] if base.endswith("/api") else base
        self.api_url = self.base_url + "/api"
        self.token, self.timeout, self.retries = token, timeout, retries
        self.tokens: dict[str, str] = {}

    def set_token(self, model_id: str, token: str) -> None:
        """Use this token for the calls that change model_id."""
        self.tokens[model_id] = token

    def _auth(self, model_id: str) -> dict:
        token = self.tokens.get(model_id, self.token)
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _created(self, r: httpx.Response) -> dict:
        body = r.json()
        if body.get("token"):
            self.tokens[body["id"]] = body["token"]
        return body

    def _ws_url(self, model_id: str) -> str:
        base = "ws" + self.api_url[4:] if self.api_url.startswith("http") else self.api_url  # http -> ws, https -> wss
        return f"{base}/models/{model_id}/stream"

    # -- models --------------------------------------------------------------------------------
    @_endpoint
    def create_model(self, spec: dict | None = None, nickname: str | None = None, **fields):
        """POST /api/models: the spec (every field optional) plus any fields given as keywords; returns the
        ModelPublic body with "token" (remembered for this id)."""
        body = {**(spec or {}), **fields}
        if nickname is not None:
            body["nickname"] = nickname
        return _Call("POST", "/models", json=body, parse=self._created)

    @_endpoint
    def get_model(self, model_id: str):
        """GET /api/models/{id}: the spec and status (step, losses, divergence, parent)."""
        return _Call("GET", f"/models/{model_id}")

    @_endpoint
    def patch_model(self, model_id: str, **changes):
        """PATCH: optimizer={...}, regularization={...}, batch_size=n or None (full batch)."""
        return _Call("PATCH", f"/models/{model_id}", json=changes, headers=self._auth(model_id))

    @_endpoint
    def delete_model(self, model_id: str):
        return _Call("DELETE", f"/models/{model_id}", headers=self._auth(model_id), parse=lambda r: None)

    @_endpoint
    def reset(self, model_id: str, seed: int | None = None):
        """Re-initialise from the spec's seed (or a new one): step 0, history cleared."""
        return _Call("POST", f"/models/{model_id}/reset", json=None if seed is None else {"seed": seed},
                     headers=self._auth(model_id))

    @_endpoint
    def train(self, model_id: str, steps: int = 1):
        """Run steps optimizer steps; "losses" is an array with one minibatch objective per step."""
        return _Call("POST", f"/models/{model_id}/train", json={"steps": steps}, headers=self._auth(model_id),
                     parse=lambda r: _arrays(r.json(), "losses"))

    @_endpoint
    def get_parameters(self, model_id: str):
        """[{"W": (n_i, n_{i-1}), "b": (n_i,) or None}] per layer."""
        return _Call("GET", f"/models/{model_id}/parameters", parse=lambda r: _parameters(r.json()))

    @_endpoint
    def put_parameters(self, model_id: str, layers):
        """Replace every layer's W and b (dicts or (W, b) pairs); every shape must match."""
        return _Call("PUT", f"/models/{model_id}/parameters", json={"layers": _layers(layers)},
                     headers=self._auth(model_id), parse=lambda r: _parameters(r.json()))

    # -- inspection ----------------------------------------------------------------------------
    @_endpoint
    def gradients(self, model_id: str, X=None, y=None):
        """Forward and backward on raw X, y (default: the first training rows): per layer a, z, delta, dz,
        dW, db as arrays."""
        if (X is None) != (y is None):
            raise ValueError("X and y go together")
        if X is None:
            return _Call("GET", f"/models/{model_id}/gradients", parse=lambda r: _gradients(r.json()))
        return _Call("POST", f"/models/{model_id}/gradients", json={"X": _matrix(X), "y": _matrix(y)},
                     parse=lambda r: _gradients(r.json()))

    @_endpoint
    def predict(self, model_id: str, X):
        """y_hat (B, K) for raw inputs X (B, raw_dim)."""
        return _Call("POST", f"/models/{model_id}/predict", json={"X": _matrix(X)},
                     parse=lambda r: _array(r.json()["y_hat"]))

    @_endpoint
    def history(self, model_id: str, since: int = 0, max_points: int | None = None):
        """step, loss, grad_norms (layers x steps) and eval {step, train_loss, test_loss} as arrays."""
        params = {"since": since, **({"max_points": max_points} if max_points else {})}
        return _Call("GET", f"/models/{model_id}/history", params=params, parse=lambda r: _history(r.json()))

    @_endpoint
    def gradcheck(self, model_id: str, X=None, y=None, eps: float | None = None):
        """Analytic against central-difference gradients, per layer."""
        body = {k: v for k, v in (("X", None if X is None else _matrix(X)), ("y", None if y is None else _matrix(y)),
                                  ("eps", eps)) if v is not None}
        return _Call("POST", f"/models/{model_id}/gradcheck", json=body)

    @_endpoint
    def trace(self, model_id: str, batch_size: int | None = None, convention: str | None = None):
        """The forward and backward equations with the shape of every operand as used; convention "rows" (the
        engine's, default) or "columns" (the question's: one sample as a column)."""
        params = {k: v for k, v in (("batch_size", batch_size), ("convention", convention)) if v is not None}
        return _Call("GET", f"/models/{model_id}/trace", params=params or None)

    @_endpoint
    def check(self, model_id: str, X=None, y=None, layers=()):
        """Verdicts and hints for your own gradients on X, y (default: the batch ``gradients(model_id)`` uses):
        layers is [{"dW": array, "db": array}, ...] from layer 1, each in any shape (a matrix, flat, a column,
        one per sample); leave a key out, or give None / {}, to skip it. The answer's "first_error" names the
        layer where the mistake enters."""
        body = _batch(X, y)
        body["layers"] = [{k: _plain(v) for k, v in (layer or {}).items() if v is not None} for layer in layers]
        return _Call("POST", f"/models/{model_id}/check", json=body)

    @_endpoint
    def derive(self, model_id: str, equations=None, convention: str = "columns", X=None, y=None, code: str | None = None):
        """Your backward pass as equations, run and diagnosed: equations is [{"target", "expr"}] or a
        {target: expr} dict, e.g. {"delta[L]": "2 * (y_hat - y) * fprime(a[L])", ...}; convention "columns" (the
        question's) or "rows". Returns {"passed", "first_error", "layers": [{"layer", "dW", "db", "steps"}]}."""
        if code is not None:  # Python source defining def backward(...): first_error also names its "line"
            return _Call("POST", f"/models/{model_id}/derive", json={"convention": convention, **_batch(X, y),
                                                                      "code": code})
        if isinstance(equations, dict):
            equations = [{"target": t, "expr": e} for t, e in equations.items()]
        body = {"convention": convention, **_batch(X, y), "equations": list(equations)}
        return _Call("POST", f"/models/{model_id}/derive", json=body)

    @_endpoint
    def derive_examples(self, model_id: str | None = None):
        """{"question": {convention: equations}, "correct": {...}}: the question's recurrence and the correct
        backward pass; for a model, adapted to its loss (delta_L) and bias."""
        return _Call("GET", f"/models/{model_id}/derive/examples" if model_id else "/derive/examples")

    @_endpoint
    def boundary(self, model_id: str, resolution: int | None = None):
        """The output over a grid (2-D inputs) and every hidden neuron's grid, as arrays."""
        return _Call("GET", f"/models/{model_id}/boundary",
                     params=None if resolution is None else {"resolution": resolution},
                     parse=lambda r: _boundary(r.json()))

    @_endpoint
    def data(self, model_id: str):
        """Training and test points (raw X) and targets as arrays."""
        return _Call("GET", f"/models/{model_id}/data", parse=lambda r: _data(r.json()))

    @_endpoint
    def catalog(self):
        return _Call("GET", "/catalog")

    @_endpoint
    def health(self):
        return _Call("GET", "/health")

    # -- own data, export, forks ---------------------------------------------------------------
    @_endpoint
    def upload_csv(self, path_or_text, inputs: list[str] | None = None, targets: list[str] | None = None,
                   standardize: bool = False):
        """POST /api/datasets with a CSV file (path) or its text; use the returned "id" in a spec as
        {"data": {"dataset_id": id}}."""
        body = {"csv": _csv_text(path_or_text), "inputs": inputs, "targets": targets, "standardize": standardize}
        return _Call("POST", "/datasets", json={k: v for k, v in body.items() if v is not None})

    @_endpoint
    def export(self, model_id: str, format: str = "json"):
        """The whole model: format "json" -> dict, "npz" -> bytes; "numpy" -> a standalone script (str)."""
        parse = {"json": lambda r: r.json(), "npz": lambda r: r.content, "numpy": lambda r: r.text}
        if format not in parse:
            raise ValueError(f"format must be json, npz or numpy, not {format!r}")
        return _Call("GET", f"/models/{model_id}/export", params={"format": format}, parse=parse[format])

    @_endpoint
    def import_model(self, exported: dict | bytes):
        """A new model (new id and token, remembered) from export(..., "json") or export(..., "npz")."""
        if isinstance(exported, (bytes, bytearray)):
            return _Call("POST", "/models/import", content=bytes(exported), parse=self._created,
                         headers={"content-type": "application/octet-stream"})
        return _Call("POST", "/models/import", json=exported, parse=self._created)

    @_endpoint
    def fork(self, model_id: str, step: int | None = None):
        """A new model from the latest checkpoint at or before step (default: the current state)."""
        return _Call("POST", f"/models/{model_id}/fork", json=None if step is None else {"step": step},
                     parse=self._created)

    @_endpoint
    def checkpoints(self, model_id: str):
        """[{"step", "created_at", "train_loss", "test_loss"}], oldest first."""
        return _Call("GET", f"/models/{model_id}/checkpoints")

    # -- the stream, shared parts --------------------------------------------------------------
    def _stream_open(self, model_id: str, steps_per_frame: int | None) -> tuple[str, dict, str]:
        play = {"action": "play", **({"steps_per_frame": steps_per_frame} if steps_per_frame else {})}
        return self._ws_url(model_id), self._auth(model_id), json.dumps(play)


class _StreamState:
    """When a stream stops: after `frames` frames, after `seconds`, or when the server stops playing."""

    def __init__(self, frames: int | None, seconds: float | None):
        self.frames, self.count = frames, 0
        self.deadline = None if seconds is None else time.monotonic() + seconds

    def done(self, frame: dict) -> bool:
        self.count += 1
        return (not frame.get("playing") or (self.frames is not None and self.count >= self.frames)
                or (self.deadline is not None and time.monotonic() >= self.deadline))


def _stream_error(msg: dict, close_code: int | None) -> PlaygroundError:
    """An error message's status, or the close code that follows it (4404 -> 404; 1013: rate limited)."""
    status = msg.get("status")
    if status is None:
        status = close_code - 4000 if close_code and close_code >= 4000 else (429 if close_code == 1013 else 400)
    return PlaygroundError(status, msg.get("detail") or f"the stream was closed (code {close_code})")


PAUSE = json.dumps({"action": "pause"})
PAUSE_TIMEOUT = 30.0


class PlaygroundClient(_Api):
    """Blocking client on httpx.Client; use as a context manager or call close()."""

    def __init__(self, base_url: str = "http://localhost:8000", *, token: str | None = None, timeout: float = 60,
                 retries: int = 5, **httpx_options):
        super().__init__(base_url, token=token, timeout=timeout, retries=retries)
        self._http = httpx.Client(base_url=self.api_url, timeout=timeout, **httpx_options)
        self._ws_proxy = httpx_options.get("trust_env", True) or None  # trust_env=False: no proxy for the stream too

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "PlaygroundClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self, call: _Call):
        for attempt in range(self.retries + 1):
            r = self._http.request(call.method, call.path, json=call.json, params=call.params, content=call.content,
                                   headers=call.headers)
            if r.status_code != 429 or attempt == self.retries:
                break
            time.sleep(_retry_after(r, attempt))
        if r.is_error:
            raise _error(r)
        return call.parse(r)

    def stream(self, model_id: str, *, steps_per_frame: int | None = None, frames: int | None = None,
               seconds: float | None = None) -> Iterator[dict]:
        """Play over the WebSocket and yield frames (arrays) until `frames` frames or `seconds` have passed
        (or the model diverges), then pause; leaving the loop early pauses too."""
        from websockets.exceptions import ConnectionClosed
        from websockets.sync.client import connect

        url, headers, play = self._stream_open(model_id, steps_per_frame)
        state = _StreamState(frames, seconds)
        with connect(url, additional_headers=headers, proxy=self._ws_proxy, open_timeout=self.timeout,
                     max_size=WS_MAX_MESSAGE) as ws:
            try:
                ws.send(play)
                while True:
                    msg = json.loads(ws.recv(timeout=self.timeout))
                    if msg.get("type") == "error":
                        raise _failure_sync(ws, msg)
                    frame = _frame(msg)
                    yield frame
                    if state.done(frame):
                        break
            except ConnectionClosed:
                raise _failure_sync(ws, None) from None
            finally:
                _pause_sync(ws)


def _failure_sync(ws, msg: dict | None) -> PlaygroundError:
    """The error for an error message, or (msg None) for a closed stream: an error sent just before the close
    is still queued, and the close code tells 401, 403 and 404 apart."""
    for _ in range(2):
        if msg is not None and ("status" in msg or ws.close_code is not None):
            break
        try:
            got = json.loads(ws.recv(timeout=5))
            msg = got if msg is None else msg
        except Exception:  # closed (or silent): nothing more to read
            break
    return _stream_error(msg or {}, ws.close_code)


def _pause_sync(ws) -> None:
    """Pause, and read until the paused frame so the server has saved the steps it trained."""
    try:
        ws.send(PAUSE)
        deadline = time.monotonic() + PAUSE_TIMEOUT
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv(timeout=PAUSE_TIMEOUT))
            if msg.get("type") != "frame" or not msg.get("playing"):
                return
    except Exception:  # the connection is gone: the server saves on disconnect
        pass


class AsyncPlaygroundClient(_Api):
    """The same methods as PlaygroundClient, as coroutines, on httpx.AsyncClient (``async with`` or aclose())."""

    def __init__(self, base_url: str = "http://localhost:8000", *, token: str | None = None, timeout: float = 60,
                 retries: int = 5, **httpx_options):
        super().__init__(base_url, token=token, timeout=timeout, retries=retries)
        self._http = httpx.AsyncClient(base_url=self.api_url, timeout=timeout, **httpx_options)
        self._ws_proxy = httpx_options.get("trust_env", True) or None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncPlaygroundClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def _run(self, call: _Call):
        for attempt in range(self.retries + 1):
            r = await self._http.request(call.method, call.path, json=call.json, params=call.params,
                                         content=call.content, headers=call.headers)
            if r.status_code != 429 or attempt == self.retries:
                break
            await asyncio.sleep(_retry_after(r, attempt))
        if r.is_error:
            raise _error(r)
        return call.parse(r)

    async def stream(self, model_id: str, *, steps_per_frame: int | None = None, frames: int | None = None,
                     seconds: float | None = None) -> AsyncIterator[dict]:
        """As PlaygroundClient.stream, as an async iterator."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        url, headers, play = self._stream_open(model_id, steps_per_frame)
        state = _StreamState(frames, seconds)
        async with connect(url, additional_headers=headers, proxy=self._ws_proxy, open_timeout=self.timeout,
                           max_size=WS_MAX_MESSAGE) as ws:
            try:
                await ws.send(play)
                while True:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), self.timeout))
                    if msg.get("type") == "error":
                        raise await _failure_async(ws, msg)
                    frame = _frame(msg)
                    yield frame
                    if state.done(frame):
                        break
            except ConnectionClosed:
                raise await _failure_async(ws, None) from None
            finally:
                await _pause_async(ws)


async def _failure_async(ws, msg: dict | None) -> PlaygroundError:
    """As _failure_sync."""
    for _ in range(2):
        if msg is not None and ("status" in msg or ws.close_code is not None):
            break
        try:
            got = json.loads(await asyncio.wait_for(ws.recv(), 5))
            msg = got if msg is None else msg
        except Exception:
            break
    return _stream_error(msg or {}, ws.close_code)


async def _pause_async(ws) -> None:
    try:
        await ws.send(PAUSE)
        async with asyncio.timeout(PAUSE_TIMEOUT):
            while True:
                msg = json.loads(await ws.recv())
                if msg.get("type") != "frame" or not msg.get("playing"):
                    return
    except Exception:
        pass
