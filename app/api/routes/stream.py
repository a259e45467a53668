"""WebSocket /api/models/{id}/stream: play, pause and step, with frames of at most ``stream_fps`` a second.

The connection only talks; the process's training scheduler (app/service/scheduler.py) trains the
model in turns with every other stream and train call, renders each frame and encodes it (orjson,
8-bit grids) off the event loop into this connection's single latest-frame slot. This task sends
what is in the slot when the client has taken the previous frame, so nothing queues for a slow
client. Steps are saved at most every ``save_interval`` seconds while playing, and at once on pause,
step and disconnect. Message shapes: app/api/schemas.py (``StreamFrame``, ``StreamMessage``) and
docs/api.md.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import threading
import weakref

import anyio
import numpy as np
import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from app.api.errors import close_code, error_frame
from app.api.schemas import MAX_TOKEN, StreamMessage, finite
from app.engine.boundary import Grid
from app.engine.network import release_memory
from app.service.errors import DomainError, Frozen, Kind, NotFound, OverLimit, StoreUnavailable, store_errors
from app.service.scheduler import StreamJob
from app.store import validate_id

router = APIRouter(tags=["stream"])
log = logging.getLogger("playground")

FRAME_LOSSES = 100       # at most this many per-step losses per frame, evenly strided
FRAME_MAX_PARAMS = 20_000  # larger nets stream their norms but not their weights
BOUNDARY_RESOLUTION = 40
# Hidden neurons with a thumbnail in a frame, at most (else "neurons" is null). The page draws thumbnails
# only on its network diagram, which it draws for layers of at most 64 units and 5,000 weights
# (static/js/charts/network.js): at most ~250 hidden neurons (11 hidden layers of 22). 256 thumbnails are
# ~87 KB of base64; a 2x1000 net's 2,000 were 680 KB a frame that nothing showed.
FRAME_MAX_NEURONS = 256
# Multiply-adds of a frame's boundary pass (grid points x weights), at most on average: a 5,000-weight net
# at the full 40 x 40 grid (~1-2 ms; every frame of every student waits for it, as the scheduler renders
# frames in turn). Larger nets get a coarser grid (down to BOUNDARY_MIN_RESOLUTION) and, while playing, a
# boundary only every k-th frame (null between: the page keeps the last one), so a 2M-parameter student
# costs the class's trainer about what a 5,000-weight one does; one boundary frame is at most 16^2 x 2M.
FRAME_GRID_MACS = BOUNDARY_RESOLUTION ** 2 * 5_000
BOUNDARY_MIN_RESOLUTION = 16  # a coarser output grid shows little of a boundary
# A frame of a net over FRAME_MAX_PARAMS parameters (no weights) is at most this many bytes: a 40 x 40
# output grid (~2.2 KB of base64), up to 256 16 x 16 thumbnails (~87 KB), 100 losses and 12 norms.
FRAME_BIG_NET_BYTES = 100_000
AUTH_TIMEOUT = 10.0      # seconds a connection without ?token= may take to send its auth message
MAX_MESSAGE = 4096       # characters: the largest client message ({"action": "auth", "token": ...} is ~100)
NESTED = "messages must not nest deeper than a flat JSON object such as {\"action\": \"play\"}"


# -- frames ----------------------------------------------------------------------------------------
def grid(a: np.ndarray) -> dict:
    """An array as 8-bit levels of its finite range: value ~ lo + (hi - lo) * level / 255 (error <= (hi-lo)/510).

    The page draws grids as 8-bit colours, so this loses nothing it shows; a 40 x 40 boundary with
    its neurons is ~8 KB instead of ~120 KB of JSON floats. Non-finite entries are sent as ``lo``.
    """
    a = np.asarray(a, np.float64)
    lo, hi = float(a.min()), float(a.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):  # rare (a diverging net): only the finite range
        ok = np.isfinite(a)
        lo, hi = (float(a[ok].min()), float(a[ok].max())) if ok.any() else (0.0, 0.0)
        a = np.where(ok, a, lo)
    half_span = hi / 2 - lo / 2  # halves: a range of +-1e308 does not overflow
    if half_span > 0:
        q = a / 2 - lo / 2
        q *= 255 / half_span
        q += 0.5  # in [0.5, 255.5): truncation rounds to the nearest level
        levels = q.astype(np.uint8)
    else:
        levels = np.zeros(a.shape, np.uint8)
    return {"shape": list(a.shape), "lo": lo, "hi": hi, "u8": base64.b64encode(levels.tobytes()).decode("ascii")}


def frame(model, losses: list[float], loss_steps: list[int], playing: bool) -> dict:
    """Everything the page redraws after a chunk of training (shape: schemas.StreamFrame)."""
    net = model.net
    stride = max(1, -(-len(losses) // FRAME_LOSSES))
    out = {"type": "frame", "step": model.step, "epoch": model.epoch, "playing": playing,
           "train_loss": finite(model.train_loss), "test_loss": finite(model.test_loss),
           "losses": losses[::stride], "loss_steps": loss_steps[::stride],
           "grad_norms": [finite(x) for x in net.weight_grad_norms()],
           "diverged": model.diverged_at is not None, "diverged_at": model.diverged_at,
           "layers": None, "boundary": None}
    if net.params.size <= FRAME_MAX_PARAMS:
        # float32, written by orjson straight from the arrays (NaN/inf as null): the page draws weights as
        # colours and widths, and half the digits make frames smaller to send and compress
        c = _float32
        out["layers"] = [{"W": c(d.params["W"]), "b": c(d.params["b"]) if d.bias else None,
                          "dW": c(d.grads["W"]), "db": c(d.grads["b"]) if d.bias else None}
                         for d in net.dense]
    if model.raw_dim == 2:
        out["boundary"] = boundary(model, every_frame=not playing)
    return out


def grid_resolution(net) -> int:
    """The frame's boundary resolution R: 40, or less for a net whose R x R pass would cost more than
    FRAME_GRID_MACS multiply-adds (never under BOUNDARY_MIN_RESOLUTION)."""
    fit = math.isqrt(FRAME_GRID_MACS // max(1, _macs_per_row(net)))
    return max(BOUNDARY_MIN_RESOLUTION, min(BOUNDARY_RESOLUTION, fit))


def _macs_per_row(net) -> int:
    return sum(a * b for a, b in zip(net.sizes[:-1], net.sizes[1:]))


class _GridInputs:
    """The boundary's grid for one live model (app/engine/boundary.py's Grid, computed once: the data never
    changes) and how often a playing stream evaluates it. It holds R^2 x input width floats and r^2 row
    indices (a 2-input net: at most 27.6 KB), and goes with the model (a weak key)."""

    def __init__(self, model, resolution: int, neuron_resolution: int = 16):
        self.raw_train, self.sizes = model.raw_train, list(model.net.sizes)
        self.grid = Grid(model, resolution, neuron_resolution)
        self.finite = all(math.isfinite(x) for x in (*self.grid.x_range, *self.grid.y_range))
        self.thumbs = sum(model.net.sizes[1:-1]) <= FRAME_MAX_NEURONS
        # while playing, a boundary every `every` frames keeps the pass's mean cost within FRAME_GRID_MACS
        self.every = max(1, -(-resolution ** 2 * _macs_per_row(model.net) // FRAME_GRID_MACS))
        self.skipped = self.every  # the first frame has a boundary


_GRID_INPUTS: "weakref.WeakKeyDictionary[object, _GridInputs]" = weakref.WeakKeyDictionary()


def boundary(model, every_frame: bool = True) -> dict | None:
    """The frame's boundary: output (R, R) and, for nets of at most FRAME_MAX_NEURONS hidden neurons, each
    hidden layer's z on an (r, r) sub-grid (else null), as 8-bit grids (the values of GET /boundary at this
    resolution); None when the data's range is not finite, or on a skipped frame of a large net (see
    FRAME_GRID_MACS) unless ``every_frame``. The pass runs in ``Network.predict``'s chunks and leaves no
    layer cache on the model."""
    g = _GRID_INPUTS.get(model)
    if g is None or g.raw_train is not model.raw_train or g.sizes != model.net.sizes:
        g = _GRID_INPUTS[model] = _GridInputs(model, grid_resolution(model.net))
    if not g.finite:
        return None
    if not every_frame and g.skipped + 1 < g.every:
        g.skipped += 1
        return None
    g.skipped = 0
    out, zs = g.grid.evaluate(model.net, neurons=g.thumbs)
    return {"resolution": g.grid.resolution, "x_range": g.grid.x_range, "y_range": g.grid.y_range,
            "neuron_resolution": g.grid.r, "output": grid(out), "neurons": None if zs is None else list(map(grid, zs))}


def _float32(a: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # beyond float32's range is inf, sent as null like any non-finite value
        return np.ascontiguousarray(a, np.float32)


def encode(message: dict) -> str:
    """Strict JSON text: orjson writes NaN and +-inf (floats or array entries) as null."""
    return orjson.dumps(message, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def render(model, losses, loss_steps, playing) -> str:
    return encode(frame(model, losses, loss_steps, playing))


# -- the connection --------------------------------------------------------------------------------
@router.websocket("/models/{model_id}/stream")
async def stream(ws: WebSocket, model_id: str):
    services, scheduler = ws.app.state.services, ws.app.state.scheduler
    await ws.accept()
    try:
        status = (await run_in_threadpool(services.models.status, validate_id(model_id))).status
    except (ValueError, NotFound):
        await _refuse(ws, NotFound(f"model {model_id} not found"))
        return
    except store_errors() as e:
        log.warning("store error on stream %s: %s", model_id, e)
        await _refuse(ws, StoreUnavailable())
        return
    # browsers cannot set headers on a WebSocket: the page sends the token in its first message
    # ({"action": "auth", "token": ...}), which keeps it out of URLs and access logs; ?token= still works
    token = ws.query_params.get("token") or _bearer(ws.headers.get("authorization"))
    if not token:
        token = await _wait_for_token(ws)
    try:
        services.auth.authorize(status, token)
    except DomainError as e:
        await _refuse(ws, e)  # 4401 or 4403
        return

    ready = asyncio.Event()
    wakeups = _wakeups_for(asyncio.get_running_loop())
    job = scheduler.open_stream(model_id, render, lambda: wakeups.wake(ready))
    wakeups.attach()
    sender = asyncio.create_task(_send_frames(ws, job, ready, scheduler))
    try:
        while not job.done:
            msg, error = _parse(await _receive(ws))
            if error:
                _reply(job, {"type": "error", "detail": error})
                continue
            if msg.action == "auth":
                continue  # already authorized
            if msg.action in ("play", "step"):
                try:
                    frozen = await run_in_threadpool(services.classroom.frozen)
                except store_errors() as e:
                    log.warning("store error on stream %s: %s", model_id, e)
                    _reply(job, StoreUnavailable())
                    continue
                if frozen:
                    _reply(job, Frozen())
                    continue
            if not job.command(msg.action, msg.steps_per_frame):
                _reply(job, OverLimit(Kind.TOO_MANY, "too many messages are waiting; "
                                                     "wait for a frame before sending more"))
            scheduler.wake()
        await sender  # the job ended (model deleted): send what is left, then close
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        scheduler.close_stream(job)
        wakeups.detach()
        sender.cancel()
        # shielded: a cancelled connection task (server or test client closing it) still saves its steps
        with anyio.CancelScope(shield=True):
            try:
                # save; give up the lease unless another stream or call of this process still trains it
                await run_in_threadpool(scheduler.release, model_id)
            except DomainError:
                pass  # deleted meanwhile: nothing to save
            except store_errors() as e:  # the store cannot take the save: the lease lapses, as on a crash
                log.warning("store error saving stream %s: %s", model_id, e)
            # the stream's steps, frames and saves left freed heap in the trainer's and worker threads' arenas
            # (a large net's: tens of MB each): give it back to the OS, as large request bodies do (app/api/body.py)
            await run_in_threadpool(release_memory)


class _Wakeups:
    """Wakes connections from the scheduler thread without a syscall per frame.

    The thread only marks a connection's event as due (a lock and a set); a task on the event loop
    sets the due events every ``POLL`` seconds while any connection is open. Waking the loop from the
    thread (``call_soon_threadsafe``) writes to its self-pipe and hands the GIL over on every frame,
    which the profile of 40 streams showed as the trainer's third largest cost.
    """

    POLL = 0.004

    def __init__(self):
        self.lock = threading.Lock()
        self.due: set[asyncio.Event] = set()
        self.open = 0
        self.task: asyncio.Task | None = None

    def wake(self, event: asyncio.Event) -> None:  # any thread
        with self.lock:
            self.due.add(event)

    def attach(self) -> None:  # the loop: a connection opened
        self.open += 1
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._poll())

    def detach(self) -> None:  # the loop: a connection closed
        self.open -= 1

    async def _poll(self) -> None:
        while self.open > 0:
            await asyncio.sleep(self.POLL)
            if self.due:
                with self.lock:
                    due, self.due = self.due, set()
                for event in due:
                    event.set()


_WAKEUPS: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Wakeups]" = weakref.WeakKeyDictionary()


def _wakeups_for(loop: asyncio.AbstractEventLoop) -> _Wakeups:
    if loop not in _WAKEUPS:
        _WAKEUPS[loop] = _Wakeups()
    return _WAKEUPS[loop]


async def _send_frames(ws: WebSocket, job: StreamJob, ready: asyncio.Event, scheduler) -> None:
    """Send the slot's frame and any error messages, in order, whenever the scheduler has put one there."""
    try:
        while True:
            await ready.wait()
            ready.clear()
            items = job.take()
            if items:
                scheduler.wake()  # the slot is free: a job waiting for its client may go on
            for item in items:
                await ws.send_text(item if isinstance(item, str) else encode(
                    error_frame(item) if isinstance(item, DomainError) else item))
            if job.done and not job.pending:  # the model is gone: the error is sent, close
                await ws.close()
                return
    except (WebSocketDisconnect, RuntimeError):
        pass


def _reply(job: StreamJob, message: DomainError | dict) -> None:
    job.put_message(message)
    job.notify()


async def _refuse(ws: WebSocket, err: DomainError) -> None:
    try:
        await ws.send_text(encode(error_frame(err)))
        await ws.close(code=close_code(err))
    except (WebSocketDisconnect, RuntimeError):
        pass


def _bearer(header: str | None) -> str | None:
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip()
    return None


async def _wait_for_token(ws: WebSocket) -> str | None:
    """The token of the first valid message, if it is an auth message sent within AUTH_TIMEOUT.

    A malformed message (binary, too large, not JSON, bad fields) is answered with an error frame
    and the wait goes on; a valid message other than auth ends it without a token (then 4401).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + AUTH_TIMEOUT
    while True:
        try:
            raw = await asyncio.wait_for(_receive(ws), max(0.0, deadline - loop.time()))
        except (asyncio.TimeoutError, WebSocketDisconnect, RuntimeError):
            return None
        msg, error = _parse(raw)
        if msg is not None:
            return msg.token if msg.action == "auth" else None
        try:
            await ws.send_text(encode({"type": "error", "detail": error}))
        except (WebSocketDisconnect, RuntimeError):
            return None


class _Refused(str):
    """A message refused before parsing: its text is the reason."""


async def _receive(ws: WebSocket) -> str:
    """The next client message's text, or a ``_Refused`` reason for a binary or oversized frame.

    ``receive_text`` fails with a KeyError on a binary frame; this answers it instead.
    Raises WebSocketDisconnect when the client has gone.
    """
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    if text is None:
        return _Refused("messages must be text frames holding JSON such as {\"action\": \"play\"}, "
                        "not binary frames")
    if len(text) > MAX_MESSAGE:
        return _Refused(f"messages must be at most {MAX_MESSAGE} characters")
    return text


def _parse(raw: str) -> tuple[StreamMessage | None, str | None]:
    """A client message (schemas.StreamMessage), or the reason it is refused."""
    if isinstance(raw, _Refused):
        return None, str(raw)
    try:
        msg = json.loads(raw)
    except ValueError:
        return None, "messages must be JSON objects such as {\"action\": \"play\"}"
    except RecursionError:  # json recurses once per level: "[[[...]]]" or '{"":{"":...}}' deep enough
        return None, NESTED
    # every field of a message is a string or a number: an object or list inside it (in any field,
    # known or not, at any depth) is the nesting the docs refuse, whatever its depth under the stack limit
    if isinstance(msg, (dict, list)) and any(isinstance(v, (dict, list))
                                             for v in (msg.values() if isinstance(msg, dict) else msg)):
        return None, NESTED
    if not isinstance(msg, dict):
        return None, "action must be one of play, pause, step"
    try:
        return StreamMessage.model_validate(msg), None
    except ValidationError as e:
        field = e.errors()[0]["loc"][0] if e.errors()[0]["loc"] else "action"
        if field == "steps_per_frame":
            return None, "steps_per_frame must be an integer from 1 to 100000"
        if field == "token":
            if isinstance(msg.get("token"), str):  # only the length can be wrong
                return None, f"token must be at most {MAX_TOKEN} characters"
            return None, "token must be a string"
        return None, "action must be one of play, pause, step"
