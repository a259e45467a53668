"""Own data in, models out: CSV datasets, export and import, checkpoints and forks."""
from __future__ import annotations

import json

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from app.api.body import BodyRoute
from app.api.deps import ClientKey, DatasetsDep, LimitsDep, ModelId, Repo
from app.api.routes.models import public
from app.api.schemas import Checkpoint, CsvUpload, DatasetPublic, ForkRequest, ModelCreated, Nickname
from app.engine import Model
from app.engine.codegen import numpy_script
from app.engine.transfer import ImportLimits, TransferError, export_json, export_npz, import_json, import_npz
from app.service.datasets import target_kind
from app.service.errors import Unprocessable

router = APIRouter(tags=["transfer"], route_class=BodyRoute)  # large bodies: app/api/body.py


@router.post("/datasets", status_code=201, response_model=DatasetPublic, tags=["datasets"])
def upload_dataset(body: CsvUpload, datasets: DatasetsDep) -> dict:
    """Upload a CSV; use the returned id in a spec as {"data": {"dataset_id": ...}}."""
    dataset_id, parsed, stats = datasets.upload(text=body.csv, inputs=body.inputs, targets=body.targets,
                                                one_hot=body.one_hot, standardize=body.standardize)
    return {"id": dataset_id, "rows": parsed.n_rows, "input_columns": parsed.input_columns,
            "target_columns": parsed.target_columns, "classes": parsed.classes,
            "target_kind": target_kind(parsed.y, parsed.classes), "standardize": stats}


@router.get("/datasets/{dataset_id}", response_model=DatasetPublic, tags=["datasets"])
def describe_dataset(dataset_id: str, datasets: DatasetsDep) -> dict:
    """An upload's columns and the kind of its targets (a page opened by its id fits the output layer to them)."""
    return datasets.describe(dataset_id)


@router.get("/models/{model_id}/export", tags=["transfer"], response_class=Response,
            responses={200: {"content": {"application/json": {}, "application/octet-stream": {},
                                         "text/x-python": {}}}})
def export_model(model_id: ModelId, models: Repo,
                 format: str = Query("json", pattern="^(json|npz|numpy)$",
                                     description="json or npz: the whole model; numpy: a standalone script")):
    """The spec, data, parameters, optimizer and RNG state and history; or the model as NumPy code."""
    with models.use(model_id) as model:
        if format == "numpy":
            X, y = model.batch(cap=8)
            return PlainTextResponse(numpy_script(model.net, X, y), media_type="text/x-python",
                                     headers=_attachment(f"model_{model_id}.py"))
        status = models.status(model_id).status.public()
        if format == "npz":
            return Response(export_npz(model, status), media_type="application/octet-stream",
                            headers=_attachment(f"model_{model_id}.npz"))
        return JSONResponse(export_json(model, status), headers=_attachment(f"model_{model_id}.json"))


@router.post("/models/import", status_code=201, response_model=ModelCreated, tags=["transfer"],
             openapi_extra={"requestBody": {"content": {"application/json": {"schema": {"type": "object"}},
                                                        "application/octet-stream": {}}, "required": True}})
async def import_model(request: Request, models: Repo, limits: LimitsDep, client: ClientKey,
                       nickname: Nickname | None = Query(None, description="shown to the instructor")) -> dict:
    """Recreate an exported model (JSON body, or the .npz bytes as application/octet-stream) under a new id."""
    body = await request.body()
    binary = request.headers.get("content-type", "").startswith("application/octet-stream")
    return await run_in_threadpool(_import, body, binary, models, limits, nickname, client)


def _import(body: bytes, binary: bool, models, limits, nickname: str | None, client: str = "") -> dict:
    s = limits.settings
    # every array's declared size is checked against these before its data is read
    sizes = ImportLimits(max_params=s.max_params, max_data_cells=s.max_samples_x_features, max_layers=s.max_layers)
    try:
        if binary:
            model = import_npz(body, sizes)
        else:
            doc = json.loads(body)
            if not isinstance(doc, dict):
                raise TransferError("the body must be a JSON object from GET /export?format=json")
            model = import_json(doc, sizes)
    except (TransferError, ValueError) as e:
        raise Unprocessable(("body",), f"cannot import: {e}") from None
    except RecursionError:  # json recurses once per level: "[[[...]]]" thousands deep exhausts the stack
        raise Unprocessable(("body",), "cannot import: the JSON nests too deeply to be a model export") from None
    limits.check_spec(model.spec)
    limits.check_data_size(model)
    limits.check_step_cost(model)
    model_id, token = models.create(model=model, nickname=nickname, owner=client)
    return {**public(models.status(model_id)), "token": token}


@router.get("/models/{model_id}/checkpoints", tags=["transfer"], response_model=list[Checkpoint])
def checkpoints(model_id: ModelId, models: Repo) -> list[dict]:
    """Automatic checkpoints, taken every PLAYGROUND_CHECKPOINT_EVERY steps."""
    return [{"step": step, "created_at": created_at, "train_loss": status.get("train_loss"),
             "test_loss": status.get("test_loss")}
            for step, status, created_at in models.checkpoints(model_id)]


@router.post("/models/{model_id}/fork", status_code=201, response_model=ModelCreated, tags=["transfer"])
def fork(model_id: ModelId, models: Repo, limits: LimitsDep, client: ClientKey,
         body: ForkRequest | None = None) -> dict:
    """A new model from the latest checkpoint at or before ``step`` (default: the model as it is now)."""
    step = body.step if body else None
    if step is None:
        with models.use(model_id) as model:
            child = Model.from_bytes(model.spec, model.to_bytes(), model.history.to_bytes())
    else:
        state, status = models.checkpoint_at_or_before(model_id, step)
        child = Model.from_bytes(status["spec"], state)
        with models.use(model_id) as parent:
            child.history = parent.history.truncated(child.step)
    limits.check_step_cost(child, loc=("path", "model_id"))  # a model stored under a higher limit
    parent = {"id": model_id, "step": child.step}
    child_id, token = models.create(model=child, nickname=models.status(model_id).status.nickname, parent=parent,
                                    owner=client)
    return {**public(models.status(child_id)), "token": token}


def _attachment(name: str) -> dict:
    return {"content-disposition": f'attachment; filename="{name}"'}
