"""Train steps and read or replace the parameters."""
from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Body, Request, Response

from app.api.body import BodyRoute
from app.api.deps import ClassroomDep, LimitsDep, ModelId, OwnedModelId, Repo, SettingsDep
from app.api.disconnect import CLIENT_LEFT, run_while_connected
from app.api.schemas import Parameters, TrainRequest, TrainResponse, jsonable, matrix_array
from app.engine.network import ParameterError
from app.service.errors import spec_error

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
        # trained in turns with every stream and train call of this process (app/service/scheduler.py)
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
    new = [(matrix_array(layer.W, ("body", "layers", i, "W"), f"layer {i + 1} W"),
            None if layer.b is None else np.asarray(layer.b, np.float64)) for i, layer in enumerate(body.layers)]
    with models.use(model_id, save=True) as model:
        try:
            model.set_parameters(new)
        except ParameterError as e:
            raise spec_error(e) from None
        return _parameters(model)


def _parameters(model) -> dict:
    return {"layers": [{"W": jsonable(d.params["W"]), "b": jsonable(d.params["b"]) if d.bias else None}
                       for d in model.net.dense]}
