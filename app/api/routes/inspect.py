"""Look inside a model: gradients, predictions, history, gradient checks, trace, checker, boundary, data."""
from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Query

from app.api.deps import ModelId, Repo, SettingsDep
from app.api.schemas import (Batch, CheckRequest, GradcheckRequest, GradientsResponse, HistoryResponse,
                             PredictRequest, PredictResponse, finite, jsonable, to_json)
from app.service.errors import Unprocessable as unprocessable
from app.engine.boundary import boundary as boundary_grid
from app.engine.checker import check_student
from app.engine.gradcheck import gradcheck as run_gradcheck
from app.engine.trace import backprop_trace

router = APIRouter(prefix="/models", tags=["inspect"])


def rows(model, settings, X, loc: str, width: int | None = None) -> np.ndarray:
    """A client matrix as an array: rectangular, within the row limit, with the expected width."""
    if len(X) == 0:
        raise unprocessable(("body", loc), "is empty")
    if len({len(r) for r in X}) > 1:
        raise unprocessable(("body", loc), "is ragged: its rows have different lengths")
    if len(X) > settings.max_rows:
        raise unprocessable(("body", loc), f"has {len(X)} rows; the limit is {settings.max_rows}")
    a = np.asarray(X, np.float64).reshape(len(X), -1)
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
    return Xa, ya


def _gradients(model_id, models, settings, body: Batch | None) -> dict:
    with models.use(model_id) as model:
        X, y = xy(model, settings, body.X if body else None, body.y if body else None)
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
def history(model_id: ModelId, models: Repo,
            since: int = Query(0, ge=0, description="return steps after this one"),
            max_points: int | None = Query(None, ge=2, le=1_000_000, description="downsample to about this many")) -> dict:
    """Per step: loss and per-layer ||dW_i||; at evaluation steps: full train and test loss."""
    with models.use(model_id) as model:
        c = model.history.columns(since)
    stride = 1 if max_points is None else max(1, -(-len(c["step"]) // max_points))
    return {"step": c["step"][::stride].tolist(), "loss": jsonable(c["loss"][::stride]),
            "grad_norms": jsonable(c["norms"][:, ::stride]),
            "eval": {"step": c["eval_step"].tolist(), "train_loss": jsonable(c["eval_train"]),
                     "test_loss": jsonable(c["eval_test"])}}


@router.post("/{model_id}/gradcheck")
def gradcheck(model_id: ModelId, models: Repo, settings: SettingsDep,
              body: GradcheckRequest | None = None) -> dict:
    """Analytic against central-difference gradients, per layer (float64)."""
    body = body or GradcheckRequest()
    with models.use(model_id) as model:
        X, y = xy(model, settings, body.X, body.y)
        Xb, yb = model.batch(X, y, cap=settings.gradients_default_rows)
        return to_json(run_gradcheck(model.net, Xb, yb, eps=body.eps, max_entries=settings.gradcheck_max_entries))


@router.get("/{model_id}/trace")
def trace(model_id: ModelId, models: Repo,
          batch_size: int | None = Query(None, ge=1, le=1_000_000, description="B; symbolic when omitted")) -> dict:
    """The backward pass step by step: equations with the shape of every operand and result."""
    with models.use(model_id) as model:
        return backprop_trace(model.net, batch_size if batch_size is not None else "B")


@router.post("/{model_id}/check")
def check(model_id: ModelId, body: CheckRequest, models: Repo, settings: SettingsDep) -> dict:
    """Verdicts on your own dW and db for X, y: shapes, errors, pass or fail, and a hint for common mistakes."""
    with models.use(model_id) as model:
        X, y = xy(model, settings, body.X, body.y)
        if len(body.layers) > model.net.n_layers:
            raise unprocessable(("body", "layers"), f"has {len(body.layers)} entries; the network has "
                                                    f"{model.net.n_layers} layers")
        Xb, yb = model.batch(X, y)
        layers = [layer.model_dump(exclude_none=True) for layer in body.layers]
        try:
            return to_json(check_student(model.net, Xb, yb, layers))
        except ValueError as e:  # e.g. db for a network without bias
            raise unprocessable(("body", "layers"), str(e)) from None


@router.get("/{model_id}/boundary")
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


@router.get("/{model_id}/data")
def data(model_id: ModelId, models: Repo) -> dict:
    """The training and test points (raw inputs) and targets."""
    with models.use(model_id) as model:
        return {"kind": model.kind, "features": model.features,
                "train": {"X": jsonable(model.raw_train), "y": jsonable(model.y_train)},
                "test": {"X": jsonable(model.raw_test), "y": jsonable(model.y_test)}}

