"""WebSocket /api/models/{id}/stream: play, pause and step, with frames of at most ~30 a second.

Training runs in a worker thread for most of each frame period, as many steps as fit (or the
client's steps_per_frame), then one frame carries everything the page redraws. Steps are saved
at most every ``save_interval`` seconds while playing, and at once on pause or disconnect.
"""
from __future__ import annotations

import asyncio
import json
import time

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from app.api.routes.inspect import boundary_json
from app.api.schemas import finite, jsonable
from app.service.errors import DomainError, NotFound
from app.store import validate_id

router = APIRouter(tags=["stream"])

FRAME_LOSSES = 100       # at most this many per-step losses per frame, evenly strided
FRAME_MAX_PARAMS = 20_000  # larger nets stream their norms but not their weights
BOUNDARY_RESOLUTION = 40


def frame(model, result, playing: bool) -> dict:
    """Everything the page needs to redraw after a chunk of training."""
    net = model.net
    losses = result.losses if result else []
    stride = max(1, -(-len(losses) // FRAME_LOSSES))
    first = model.step - len(losses) + 1
    out = {"type": "frame", "step": model.step, "epoch": model.epoch, "playing": playing,
           "train_loss": finite(model.train_loss), "test_loss": finite(model.test_loss),
           "losses": [float(x) for x in losses[::stride]], "loss_steps": list(range(first, model.step + 1))[::stride],
           "grad_norms": jsonable(net.weight_grad_norms()),
           "diverged": model.diverged_at is not None, "diverged_at": model.diverged_at,
           "layers": None, "boundary": None}
    if net.params.size <= FRAME_MAX_PARAMS:
        out["layers"] = [{"W": jsonable(d.params["W"]), "b": jsonable(d.params["b"]) if d.bias else None,
                          "dW": jsonable(d.grads["W"]), "db": jsonable(d.grads["b"]) if d.bias else None}
                         for d in net.dense]
    if model.raw_dim == 2:
        out["boundary"] = boundary_json(model, BOUNDARY_RESOLUTION)
    return out


@router.websocket("/models/{model_id}/stream")
async def stream(ws: WebSocket, model_id: str):
    services, settings = ws.app.state.services, ws.app.state.settings
    service = services.models
    await ws.accept()
    try:
        _, status = service.status(validate_id(model_id))
    except (ValueError, NotFound):
        await ws.send_json({"type": "error", "detail": f"model {model_id} not found"})
        await ws.close(code=4404)
        return
    try:  # browsers cannot set headers on a WebSocket, hence ?token=
        services.auth.authorize(status, ws.query_params.get("token") or _bearer(ws.headers.get("authorization")))
    except DomainError as e:
        await ws.send_json({"type": "error", "detail": e.detail})
        await ws.close(code=4000 + e.status)  # 4401 or 4403
        return
    inbox: asyncio.Queue = asyncio.Queue()

    async def receive() -> None:
        try:
            while True:
                inbox.put_nowait(await ws.receive_text())
        except (WebSocketDisconnect, RuntimeError):
            inbox.put_nowait(None)

    receiver = asyncio.create_task(receive())
    period = 1.0 / settings.stream_fps
    playing, steps_per_frame = False, None

    def run(steps: int | None, lazy: bool) -> dict:
        with service.use(model_id, save="lazy" if lazy else True) as model:
            budget = period * 0.6 if steps is None else period
            result = service.train(model_id, model, steps or settings.max_steps, budget) if steps != 0 else None
            return frame(model, result, playing and not (result and result.diverged))

    try:
        while True:
            raw = await inbox.get() if not playing else (inbox.get_nowait() if not inbox.empty() else "")
            if raw is None:
                break
            if raw:
                msg, error = _parse(raw)
                if error:
                    await ws.send_json({"type": "error", "detail": error})
                    continue
                action = msg["action"]
                if action in ("play", "step") and services.classroom.frozen():
                    playing = False
                    await ws.send_json({"type": "error", "status": 423, "detail": FROZEN})
                    continue
                if action == "play":
                    playing, steps_per_frame = True, msg.get("steps_per_frame")
                elif action == "pause":
                    playing = False
                    await ws.send_json(await run_in_threadpool(run, 0, False))
                elif action == "step":
                    await ws.send_json(await run_in_threadpool(run, 1, False))
            if playing and services.classroom.frozen():
                playing = False
                await ws.send_json({"type": "error", "status": 423, "detail": FROZEN})
                await ws.send_json(await run_in_threadpool(run, 0, False))
            if playing:
                started = time.monotonic()
                out = await run_in_threadpool(run, steps_per_frame, True)
                playing = out["playing"]
                await ws.send_json(out)
                await asyncio.sleep(max(0.0, period - (time.monotonic() - started)))
    except (WebSocketDisconnect, RuntimeError):
        pass
    except DomainError as e:  # the model was deleted while streaming
        await _send_quietly(ws, {"type": "error", "detail": e.detail})
    finally:
        receiver.cancel()
        # shielded: a cancelled connection task (server or test client closing it) still saves its steps
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(service.flush, model_id)


FROZEN = "training is frozen by the instructor"


def _bearer(header: str | None) -> str | None:
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip()
    return None


def _parse(raw: str) -> tuple[dict, str | None]:
    """A client message, or the reason it is refused."""
    try:
        msg = json.loads(raw)
    except ValueError:
        return {}, "messages must be JSON objects such as {\"action\": \"play\"}"
    if not isinstance(msg, dict) or msg.get("action") not in ("play", "pause", "step"):
        return {}, "action must be one of play, pause, step"
    k = msg.get("steps_per_frame")
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 100_000):
        return {}, "steps_per_frame must be an integer from 1 to 100000"
    return msg, None


async def _send_quietly(ws: WebSocket, payload: dict) -> None:
    try:
        await ws.send_json(payload)
    except (WebSocketDisconnect, RuntimeError):
        pass
