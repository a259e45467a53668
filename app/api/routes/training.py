"""Train steps and read or replace the parameters."""
from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Body, Request, Response

from app.api.body import BodyRoute
from app.api.deps import ClassroomDep, LimitsDep, ModelId, OwnedModelId, Repo, SettingsDep
from app.api.disconnect import CLIENT_LEFT, run_while_connected
from app.api.schemas import Parameters, TrainRequest, TrainResponse, jsonable
from app.service.errors import Unprocessable

router = APIRouter(prefix="/models", tags=["training"], route_class=BodyRoute)  # large bodies: app/api/body.py


@router.post("/{model_id}/train", response_model=TrainResponse)
async def train(model_id: OwnedModelId, limits: LimitsDep, classroom: ClassroomDep, settings: SettingsDep,
                request: Request, body: TrainRequest = Body(default_factory=TrainRequest)) -> dict | Response:
    """Run N optimizer steps (one minibatch each; no body or {}: one). Stops early on divergence or at the
    time budget, and when the client leaves (its steps so far are kept; the answer is 499)."""
    limits.check_steps(body.steps)
    scheduler = request.app.state.scheduler

    def run(leaving):  # in a worker thread: the freeze is a store read
        classroom.check_not_frozen()
        # sched: trained in turns with every stream and train call of this process (app/service/scheduler.py)
        return scheduler.train(model_id, body.steps, settings.train_time_budget, leaving)

    result, left = await run_while_connected(request, run)
    if left or result.stopped == "cancelled":
        return Response(status_code=CLIENT_LEFT)
    return result.to_dict()


@router.get("/{model_id}/parameters", response_model=Parameters)
def get_parameters(model_id: ModelId, models: Repo) -> dict:
    """Every layer's W (n_i, n_{i-1}) and b (n_i,)."""
    with models.use(model_id) as model:
        return _parameters(model)


@router.put("/{model_id}/parameters", response_model=Parameters)
def put_parameters(model_id: OwnedModelId, body: Parameters, models: Repo) -> dict:
    """Replace every layer's parameters; each shape must match exactly."""
    with models.use(model_id, save=True) as model:
        dense = model.net.dense
        if len(body.layers) != len(dense):
            raise Unprocessable(("body", "layers"), f"expected {len(dense)} layers, got {len(body.layers)}")
        new = []
        for i, (layer, d) in enumerate(zip(body.layers, dense)):
            W = _array(layer.W, ("body", "layers", i, "W"), f"layer {i + 1} W")
            _same_shape(W, d.params["W"].shape, ("body", "layers", i, "W"), f"layer {i + 1} W")
            if d.bias != (layer.b is not None):
                raise Unprocessable(("body", "layers", i, "b"),
                                    f"layer {i + 1} has {'a' if d.bias else 'no'} bias; "
                                    f"send {'a list of ' + str(d.n_out) + ' numbers' if d.bias else 'null'}")
            b = np.asarray(layer.b, np.float64) if d.bias else None
            if b is not None:
                _same_shape(b, d.params["b"].shape, ("body", "layers", i, "b"), f"layer {i + 1} b")
            new.append((W, b))
        for d, (W, b) in zip(dense, new):  # only after every layer passed, so a refusal changes nothing
            d.params["W"][...] = W
            if b is not None:
                d.params["b"][...] = b
        model.evaluate()
        return _parameters(model)


def _parameters(model) -> dict:
    return {"layers": [{"W": jsonable(d.params["W"]), "b": jsonable(d.params["b"]) if d.bias else None}
                       for d in model.net.dense]}


def _array(rows: list, loc: tuple, name: str) -> np.ndarray:
    if len({len(r) for r in rows}) > 1:
        raise Unprocessable(loc, f"{name} is ragged: its rows have different lengths")
    if len(rows) == 0:  # an array from app/api/body.py has no truth value
        return np.zeros((0, 0))
    return np.asarray(rows, np.float64).reshape(len(rows), -1)


def _same_shape(a: np.ndarray, expected: tuple, loc: tuple, name: str) -> None:
    if a.shape != expected:
        raise Unprocessable(loc, f"{name}: expected shape {list(expected)}, got {list(a.shape)}")
