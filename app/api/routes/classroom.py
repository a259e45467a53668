"""The instructor's view of a class: every model, loss curves, a hidden-test leaderboard, presets, freeze.

Enabled only when PLAYGROUND_ADMIN_TOKEN is set. The hidden test set is stored server-side and
no response ever contains it; students see only /api/class/status.
"""
from __future__ import annotations

import hmac
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from app.api.deps import ClassroomDep, Credentials, Repo, SettingsDep
from app.api.schemas import Matrix, Strict, finite, jsonable
from app.engine import Model
from app.service.errors import Conflict, Forbidden, NotFound, Unauthorized, Unprocessable

router = APIRouter(prefix="/class", tags=["class"])


def require_admin(settings: SettingsDep, credentials: Credentials) -> None:
    if not settings.admin_token:
        raise NotFound("the instructor view is disabled: set PLAYGROUND_ADMIN_TOKEN")
    if credentials is None:
        raise Unauthorized("send the instructor token as 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(credentials.credentials.encode(), settings.admin_token.encode()):
        raise Forbidden("wrong instructor token")


Admin = Annotated[None, Depends(require_admin)]


class HiddenTest(Strict):
    X: Matrix = Field(min_length=1, description="raw inputs (N, raw_dim)")
    y: Matrix = Field(min_length=1, description="targets (N, K)")


class Preset(Strict):
    # page-relative only: "//host" and "/\\host" are protocol-relative links to another site
    link: str = Field(min_length=1, max_length=4000, pattern=r"^/([^/\\].*)?$",
                      examples=["/?dataset=spiral&hidden=8,8"])


class Freeze(Strict):
    frozen: bool


class ClassStatus(BaseModel):
    enabled: bool
    frozen: bool
    preset: str | None


def architecture(spec: dict) -> str:
    """E.g. "2-8-8-1 tanh,tanh,sigmoid"."""
    sizes = [spec.get("input_size") or "?"] + [layer["units"] for layer in spec["layers"]]
    return "-".join(map(str, sizes)) + " " + ",".join(layer["activation"] for layer in spec["layers"])


@router.get("/status", response_model=ClassStatus)
def class_status(classroom: ClassroomDep, settings: SettingsDep) -> dict:
    """Public: whether training is frozen, and the setup the instructor shared."""
    return {"enabled": bool(settings.admin_token), "frozen": classroom.frozen(), "preset": classroom.preset()}


@router.get("/models")
def class_models(_: Admin, models: Repo) -> list[dict]:
    """Every model in the store with its nickname, architecture and status."""
    out = []
    for model_id, spec, status, updated_at in models.list_status():
        out.append({"id": model_id, "nickname": status.get("nickname"), "architecture": architecture(spec),
                    "step": status.get("step", 0), "train_loss": finite(status.get("train_loss")),
                    "test_loss": finite(status.get("test_loss")), "diverged": bool(status.get("diverged")),
                    "diverged_at": status.get("diverged_at"), "updated_at": updated_at})
    return out


@router.get("/curves")
def class_curves(_: Admin, models: Repo,
                 max_points: int = Query(200, ge=2, le=10_000)) -> list[dict]:
    """Every model's evaluated train and test loss, downsampled: the overlay chart."""
    out = []
    for model_id, _spec, status, _ in models.list_status():
        try:
            with models.use(model_id) as model:
                c = model.history.columns()
        except NotFound:  # deleted meanwhile
            continue
        stride = max(1, -(-len(c["eval_step"]) // max_points))
        out.append({"id": model_id, "nickname": status.get("nickname"), "step": c["eval_step"][::stride].tolist(),
                    "train_loss": jsonable(c["eval_train"][::stride]), "test_loss": jsonable(c["eval_test"][::stride])})
    return out


@router.put("/hidden-test")
def put_hidden_test(_: Admin, body: HiddenTest, classroom: ClassroomDep) -> dict:
    """Store the hidden test set the leaderboard scores on; it is never returned."""
    y = body.y
    if len({len(r) for r in body.X}) > 1 or len({len(r) for r in y}) > 1:  # before np.asarray, which raises on ragged
        raise Unprocessable(("body", "X"), "X and y must be rectangular")
    X = np.asarray(body.X, np.float64)
    if len(y) != len(X):
        raise Unprocessable(("body", "y"), f"has {len(y)} rows but X has {len(X)}")
    classroom.set_hidden_test(body.X, y)
    return {"rows": len(X), "columns": X.shape[1]}


@router.get("/leaderboard")
def leaderboard(_: Admin, models: Repo, classroom: ClassroomDep) -> list[dict]:
    """Models ranked by their loss on the hidden test set (models whose shapes fit it)."""
    hidden = classroom.hidden_test()
    if not hidden:
        raise Conflict("upload a hidden test set first (PUT /api/class/hidden-test)")
    X, y = np.asarray(hidden["X"], np.float64), np.asarray(hidden["y"], np.float64)
    rows = []
    for model_id, spec, status, _ in models.list_status():
        try:
            with models.use(model_id) as model:
                if model.raw_dim != X.shape[1] or model.net.sizes[-1] != y.shape[1]:
                    continue
                rows.append({"id": model_id, "nickname": status.get("nickname"), "architecture": architecture(spec),
                             "step": model.step, **_score(model, X, y)})
        except NotFound:
            continue
    rows.sort(key=lambda r: (r["hidden_loss"] is None, r["hidden_loss"] or 0.0))
    return [{"rank": i + 1, **r} for i, r in enumerate(rows)]


def _score(model: Model, X: np.ndarray, y: np.ndarray) -> dict:
    y_hat = model.predict(X)
    loss = model.net.loss_value(model.inputs(X), y.astype(model.net.dtype))
    acc = None
    if model.kind == "classification":
        pred = (y_hat[:, 0] > 0.5) if y.shape[1] == 1 else y_hat.argmax(axis=1)
        true = (y[:, 0] > 0.5) if y.shape[1] == 1 else y.argmax(axis=1)
        acc = float((pred == true).mean())
    return {"hidden_loss": finite(loss), "hidden_accuracy": acc}


@router.put("/preset", response_model=ClassStatus)
def put_preset(_: Admin, body: Preset, classroom: ClassroomDep, settings: SettingsDep) -> dict:
    """Share a setup (a playground link) with every student page."""
    classroom.set_preset(body.link)
    return class_status(classroom, settings)


@router.delete("/preset", status_code=204, response_class=Response)
def delete_preset(_: Admin, classroom: ClassroomDep) -> Response:
    classroom.set_preset(None)
    return Response(status_code=204)


@router.put("/freeze", response_model=ClassStatus)
def freeze(_: Admin, body: Freeze, classroom: ClassroomDep, settings: SettingsDep) -> dict:
    """Freeze or unfreeze training for everyone; reads keep working."""
    classroom.set_frozen(body.frozen)
    return class_status(classroom, settings)
