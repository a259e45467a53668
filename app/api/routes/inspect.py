"""Look inside a model: gradients, predictions, history, gradient checks, trace, checker, boundary, data.

/derive (your backward pass as equations) is in derive.py and shares ``student_batch``.
"""
from __future__ import annotations

import threading

import numpy as np
from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from app.api.body import BodyRoute
from app.api.deps import LimitsDep, ModelId, Repo, SettingsDep
from app.api.disconnect import CLIENT_LEFT, run_while_connected
from app.api.schemas import (Batch, BoundaryResponse, CheckRequest, DataResponse, CheckResponse, Convention, GradcheckRequest, GradcheckResponse,
                             GradientsResponse, HistoryResponse, PredictRequest, PredictResponse, TraceResponse,
                             finite, jsonable, matrix_array, to_json)
from app.service.errors import Unprocessable as unprocessable
from app.engine.boundary import boundary as boundary_grid
from app.engine.checker import check_student
from app.engine.gradcheck import Stopped as GradcheckStopped
from app.engine.gradcheck import float64_copy
from app.engine.gradcheck import gradcheck as run_gradcheck
from app.engine.losses import target_error
from app.engine.trace import backprop_trace

router = APIRouter(prefix="/models", tags=["inspect"], route_class=BodyRoute)  # large bodies: app/api/body.py


def rows(model, settings, X, loc: str, width: int | None = None) -> np.ndarray:
    """A client matrix as an array: rectangular, within the row limit, with the expected width."""
    if len(X) == 0:
        raise unprocessable(("body", loc), "is empty")
    a = matrix_array(X, ("body", loc))
    if len(a) > settings.max_rows:
        raise unprocessable(("body", loc), f"has {len(a)} rows; the limit is {settings.max_rows}")
    width = model.raw_dim if width is None else width
    if a.shape[1] != width:
        what = "raw input columns" if width == model.raw_dim and loc.startswith("X") else "columns"
        raise unprocessable(("body", loc), f"has {a.shape[1]} columns; the model expects {width} {what}")
    return a


def xy(model, settings, X, y) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Client (X, y) checked against the model, or (None, None) for the training set."""
    if X is None and y is None:
        return None, None
    if X is None or y is None:
        raise unprocessable(("body", "y" if y is None else "X"), "X and y go together")
    Xa = rows(model, settings, X, "X")
    ya = rows(model, settings, y, "y", width=model.net.sizes[-1])
    if len(Xa) != len(ya):
        raise unprocessable(("body", "y"), f"has {len(ya)} rows but X has {len(Xa)}")
    problem = target_error(model.spec["loss"], ya)  # the targets model creation accepts, for every inspection
    if problem:
        raise unprocessable(("body", "y"), problem)
    return Xa, ya


def _gradients(model_id, models, settings, body: Batch | None) -> dict:
    with models.use(model_id) as model:
        X, y = xy(model, settings, body.X if body else None, body.y if body else None)
        if X is not None:  # the per-row a, z, delta, dz are bounded before anything is computed
            per_row = model.net.display_values(1)
            if len(X) * per_row > settings.max_gradient_values:
                raise unprocessable(("body", "X"), f"has {len(X)} rows; this network's a, z, delta and dz take "
                                                   f"{per_row} numbers a row, so at most "
                                                   f"{max(1, settings.max_gradient_values // per_row)} rows fit the "
                                                   f"limit of {settings.max_gradient_values} numbers")
        g = model.gradients(X, y, cap=settings.gradients_default_rows)
        return {"loss": finite(g["loss"]), "data_loss": finite(g["data_loss"]), "penalty": finite(g["penalty"]),
                "batch_size": g["batch_size"], "inputs": jsonable(g["inputs"]),
                "layers": [{"layer": i + 1, "a": jsonable(q.a), "z": jsonable(q.z), "delta": jsonable(q.delta),
                            "dz": jsonable(q.dz), "dW": jsonable(q.dW), "db": None if q.db is None else jsonable(q.db),
                            "grad_norm": {"W": finite(q.norm_W), "b": finite(q.norm_b)}}
                           for i, q in enumerate(g["layers"])]}


@router.post("/{model_id}/gradients", response_model=GradientsResponse)
def gradients(model_id: ModelId, models: Repo, settings: SettingsDep, body: Batch | None = None) -> dict:
    """Forward and backward on X, y (or the first rows of the training set): a, z, delta, dz, dW, db per layer."""
    return _gradients(model_id, models, settings, body)


@router.get("/{model_id}/gradients", response_model=GradientsResponse)
def gradients_get(model_id: ModelId, models: Repo, settings: SettingsDep) -> dict:
    """As POST with no body: the first ``gradients_default_rows`` rows of the training set."""
    return _gradients(model_id, models, settings, None)


@router.post("/{model_id}/predict", response_model=PredictResponse)
def predict(model_id: ModelId, body: PredictRequest, models: Repo, settings: SettingsDep) -> dict:
    """y_hat for raw inputs X (B, raw_dim)."""
    with models.use(model_id) as model:
        return {"y_hat": jsonable(model.predict(rows(model, settings, body.X, "X")))}


@router.get("/{model_id}/history", response_model=HistoryResponse)
def history(model_id: ModelId, models: Repo, settings: SettingsDep,
            since: int = Query(0, ge=0, description="return steps after this one"),
            max_points: int | None = Query(None, ge=2, le=1_000_000,
                                           description="at most this many steps and as many evaluations, evenly "
                                                       "spread, first and last kept (default "
                                                       "PLAYGROUND_HISTORY_MAX_POINTS)")) -> dict:
    """Per step: loss and per-layer ||dW_i||; at evaluation steps: full train and test loss."""
    with models.use(model_id) as model:
        c = model.history.columns(since)
    n = max_points or settings.history_max_points
    s, e = _spread(len(c["step"]), n), _spread(len(c["eval_step"]), n)
    return {"step": c["step"][s].tolist(), "loss": jsonable(c["loss"][s]),
            "grad_norms": jsonable(c["norms"][:, s]),
            "eval": {"step": c["eval_step"][e].tolist(), "train_loss": jsonable(c["eval_train"][e]),
                     "test_loss": jsonable(c["eval_test"][e])}}


def _spread(length: int, n: int) -> np.ndarray | slice:
    """Indices of at most n of length entries, evenly spread, the first and the last among them."""
    if length <= n:
        return slice(None)
    return np.unique(np.linspace(0, length - 1, n).round().astype(np.int64))


@router.post("/{model_id}/gradcheck", response_model=GradcheckResponse)
async def gradcheck(model_id: ModelId, models: Repo, limits: LimitsDep, settings: SettingsDep, request: Request,
                    body: GradcheckRequest | None = None) -> dict:
    """Analytic against central-difference gradients, per layer (float64).

    Bounded by PLAYGROUND_GRADCHECK_MAX_COST (rows x checked entries x parameters): the training rows and
    the entries per tensor are capped to fit, more rows sent in X are a 422. It runs on a copy of the
    parameters taken under the model's lock, so the owner's training goes on meanwhile, and it stops when
    the client leaves.
    """
    body = body or GradcheckRequest()
    net, Xb, yb, k = await run_in_threadpool(_gradcheck_input, model_id, models, limits, settings, body)

    def compute(leaving: threading.Event) -> dict | None:
        try:
            return to_json(run_gradcheck(net, Xb, yb, eps=body.eps, max_entries=k, stop=leaving.is_set))
        except GradcheckStopped:
            return None

    out, left = await run_while_connected(request, compute)
    if left or out is None:  # the client left and the work stopped: nobody reads this answer
        return Response(status_code=CLIENT_LEFT)
    return out


def _gradcheck_input(model_id, models, limits, settings, body):
    """Under the model's lock: a float64 copy of the network and the batch; the lock is released on return."""
    with models.use(model_id) as model:
        X, y = xy(model, settings, body.X, body.y)
        sizes = [int(p.size) for d in model.net.dense for p in d.params.values()]
        n_rows = len(X) if X is not None else min(settings.gradients_default_rows, len(model.X_train))
        rows, k = limits.gradcheck_plan(n_rows, sizes, rows_sent=X is not None)
        Xb, yb = model.batch(X, y, cap=rows)
        return float64_copy(model.net), np.array(Xb, np.float64), np.array(yb, np.float64), k


@router.get("/{model_id}/trace", response_model=TraceResponse)
def trace(model_id: ModelId, models: Repo,
          batch_size: int | None = Query(None, ge=1, le=1_000_000, description="B; symbolic when omitted"),
          convention: Convention = Query("rows", description="rows: the engine's batch rows; columns: the "
                                                             "question's notation, one sample as a column")) -> dict:
    """The backward pass step by step: equations with the shape of every operand as it is used, and the result."""
    with models.use(model_id) as model:
        return to_json(backprop_trace(model.net, batch_size if batch_size is not None else "B", convention=convention))


def student_batch(model, settings, X, y) -> tuple[np.ndarray, np.ndarray]:
    """The network's inputs and targets for /check and /derive: the client's (X, y), or GET /gradients' batch."""
    X, y = xy(model, settings, X, y)
    return model.batch(X, y, cap=settings.gradients_default_rows)


@router.post("/{model_id}/check", response_model=CheckResponse)
def check(model_id: ModelId, body: CheckRequest, models: Repo, settings: SettingsDep) -> dict:
    """Verdicts on your own dW and db, in any shape, for X, y: shapes, errors, pass or fail, a hint naming the
    mistake, and ``first_error``, the layer where the mistake enters."""
    for i, layer in enumerate(body.layers):
        for key in ("dW", "db"):
            a = getattr(layer, key)
            if a is not None and a.size > settings.check_max_entries:
                raise unprocessable(("body", "layers", i, key), f"has {a.size} numbers; the limit is "
                                                                f"{settings.check_max_entries}")
    with models.use(model_id) as model:
        Xb, yb = student_batch(model, settings, body.X, body.y)
        if len(body.layers) > model.net.n_layers:
            raise unprocessable(("body", "layers"), f"has {len(body.layers)} entries; the network has "
                                                    f"{model.net.n_layers} layers")
        layers = [{k: v for k, v in (("dW", layer.dW), ("db", layer.db)) if v is not None} for layer in body.layers]
        try:
            return to_json(check_student(model.net, Xb, yb, layers, model.spec["optimizer"].get("lr")))
        except ValueError as e:  # e.g. db for a network without bias
            raise unprocessable(("body", "layers"), str(e)) from None


@router.get("/{model_id}/boundary", response_model=BoundaryResponse)
def boundary(model_id: ModelId, models: Repo, settings: SettingsDep,
             resolution: int = Query(50, ge=2, description="grid points per axis")) -> dict:
    """Output over a grid covering the data, and every hidden neuron at a lower resolution (2-D inputs)."""
    if resolution > settings.max_resolution:
        raise unprocessable(("query", "resolution"), f"is {resolution}; the limit is {settings.max_resolution}")
    with models.use(model_id) as model:
        if model.raw_dim != 2:
            raise unprocessable(("path", "model_id"), f"the boundary needs 2 raw inputs; this model has {model.raw_dim}")
        return boundary_json(model, resolution)


def boundary_json(model, resolution: int, neuron_resolution: int = 16) -> dict:
    b = boundary_grid(model, resolution, neuron_resolution)
    return {**b, "output": jsonable(b["output"]), "neurons": [jsonable(n) for n in b["neurons"]]}


@router.get("/{model_id}/data", response_model=DataResponse)
def data(model_id: ModelId, models: Repo) -> dict:
    """The training and test points (raw inputs) and targets."""
    with models.use(model_id) as model:
        return {"kind": model.kind, "features": model.features,
                "train": {"X": jsonable(model.raw_train), "y": jsonable(model.y_train)},
                "test": {"X": jsonable(model.raw_test), "y": jsonable(model.y_test)}}

