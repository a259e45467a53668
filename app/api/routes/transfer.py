"""Own data in, models out: CSV datasets, export and import, checkpoints and forks."""
from __future__ import annotations

import json

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field, StrictBool
from starlette.concurrency import run_in_threadpool

from app.api.body import BodyRoute
from app.api.deps import ClientKey, DatasetsDep, LimitsDep, ModelId, Repo
from app.api.routes.models import public
from app.api.schemas import Int, ModelCreated, Nickname, Strict
from app.engine import Model
from app.engine.codegen import numpy_script
from app.engine.csvdata import CsvError, one_hot_labels, standardization
from app.engine.transfer import ImportLimits, TransferError, export_json, export_npz, import_json, import_npz
from app.service.errors import Unprocessable

router = APIRouter(tags=["transfer"], route_class=BodyRoute)  # large bodies: app/api/body.py


class CsvUpload(Strict):
    csv: str = Field(min_length=1, description="the file's text, with a header row",
                     examples=["x1,x2,label\n0.1,0.2,red\n0.5,-1,blue\n"])
    inputs: list[str] | None = Field(None, description="input columns by header name; default all but the targets")
    targets: list[str] | None = Field(None, description="target columns by header name; default the last column")
    standardize: StrictBool = Field(False, description="report the inputs' mean and std; a model standardizes its inputs "
                                                 "when its spec's data says \"standardize\": true")
    one_hot: StrictBool = Field(False, description="one target column of integer class labels (0, 1, 2, ...) becomes "
                                             "one-hot columns, one per class, for a softmax output")


class Standardization(BaseModel):
    mean: list[float]
    std: list[float]


class DatasetPublic(BaseModel):
    id: str
    rows: int
    input_columns: list[str]
    target_columns: list[str]
    classes: list[str] | None
    standardize: Standardization | None = None


class ForkRequest(Strict):
    step: Int | None = Field(None, ge=0, description="fork from the latest checkpoint at or before this step")


@router.post("/datasets", status_code=201, response_model=DatasetPublic, tags=["datasets"])
def upload_dataset(body: CsvUpload, datasets: DatasetsDep) -> dict:
    """Upload a CSV; use the returned id in a spec as {"data": {"dataset_id": ...}}."""
    parsed = datasets.parse(text=body.csv, inputs=body.inputs, targets=body.targets)
    if body.one_hot and parsed.classes is None:
        try:
            parsed.y, parsed.classes = one_hot_labels(parsed.y, parsed.target_columns, datasets.settings.max_units)
        except CsvError as e:
            raise Unprocessable(("body", "one_hot"), e.message) from None
    stats = None
    if body.standardize:  # checked before saving: statistics that are not finite are refused, naming the column
        try:
            stats = standardization(parsed.X, parsed.input_columns)
        except CsvError as e:
            raise Unprocessable(("body", "standardize"), e.message) from None
    dataset_id = datasets.save(parsed)  # the raw inputs: a model standardizes with its own training rows
    return {"id": dataset_id, "rows": parsed.n_rows, "input_columns": parsed.input_columns,
            "target_columns": parsed.target_columns, "classes": parsed.classes, "standardize": stats}


@router.get("/models/{model_id}/export", tags=["transfer"],
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


@router.get("/models/{model_id}/checkpoints", tags=["transfer"])
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
