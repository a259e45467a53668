"""The instructor's view of a class: every model, loss curves, a hidden-test leaderboard, presets, freeze.

Enabled only when PLAYGROUND_ADMIN_TOKEN is set. The hidden test set is stored server-side and
no response ever contains it; students see only /api/class/status.
"""
from __future__ import annotations

import hmac
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Query, Response
from pydantic import Field, StrictBool

from app.api.body import BodyRoute
from app.api.deps import ClassroomDep, Credentials, DatasetsDep, Repo, SettingsDep
from app.api.schemas import ClassStatus, GalleryResponse, Int, LeaderboardResponse, Rows, Strict, finite, jsonable
from app.service import assignment as tasks
from app.service.errors import Forbidden, NotFound, Unauthorized, Unprocessable

router = APIRouter(prefix="/class", tags=["class"], route_class=BodyRoute)  # large bodies: app/api/body.py


async def require_admin(settings: SettingsDep, credentials: Credentials) -> None:
    if not settings.admin_token:
        raise NotFound("the instructor view is disabled: set PLAYGROUND_ADMIN_TOKEN")
    if credentials is None:
        raise Unauthorized("send the instructor token as 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(credentials.credentials.encode(), settings.admin_token.encode()):
        raise Forbidden("wrong instructor token")


Admin = Annotated[None, Depends(require_admin)]


class HiddenTest(Strict):
    X: Rows = Field(description="raw inputs (N, raw_dim)")
    y: Rows = Field(description="targets (N, K)")


class Preset(Strict):
    """A playground link every student page offers; it defines the class's task (the assignment)."""

    # page-relative only: "//host" and "/\\host" are protocol-relative links to another site
    link: str = Field(min_length=1, max_length=4000, pattern=r"^/([^/\\].*)?$",
                      examples=["/?dataset=circle&f=x1,x2&h=8.tanh,8.tanh"])
    match_loss: StrictBool = Field(False, description="rank only models that use the link's loss")
    step_budget: Int | None = Field(None, ge=1, le=10_000_000, description="rank only models trained at most this many steps")


class Freeze(Strict):
    frozen: StrictBool  # "yes", "on", 1 are refused: a switch is true or false


def architecture(spec: dict) -> str:
    """E.g. "2-8-8-1 tanh,tanh,sigmoid"."""
    sizes = [spec.get("input_size") or "?"] + [layer["units"] for layer in spec["layers"]]
    return "-".join(map(str, sizes)) + " " + ",".join(layer["activation"] for layer in spec["layers"])


@router.get("/status", response_model=ClassStatus)
def class_status(classroom: ClassroomDep, settings: SettingsDep) -> dict:
    """Public: whether training is frozen, and the setup the instructor shared."""
    return {"enabled": bool(settings.admin_token), "frozen": classroom.frozen(), "preset": classroom.preset(),
            "assignment": classroom.assignment()}


@router.get("/models")
def class_models(_: Admin, models: Repo) -> list[dict]:
    """Every model in the store with its nickname, architecture and status."""
    out = []
    for model_id, spec, status, updated_at in models.list_status():
        out.append({"id": model_id, "nickname": status.get("nickname"), "dataset": tasks.dataset_of(spec),
                    "architecture": architecture(spec),
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
def put_hidden_test(_: Admin, body: HiddenTest, classroom: ClassroomDep, datasets: DatasetsDep) -> dict:
    """Store the hidden test set the leaderboard scores on; it is never returned."""
    y = body.y
    if len({len(r) for r in body.X}) > 1 or len({len(r) for r in y}) > 1:  # before np.asarray, which raises on ragged
        raise Unprocessable(("body", "X"), "X and y must be rectangular")
    X = np.asarray(body.X, np.float64)
    if len(y) != len(X):
        raise Unprocessable(("body", "y"), f"has {len(y)} rows but X has {len(X)}")
    task = classroom.assignment()
    uploaded = datasets.load(task["dataset"][4:]) if task and task["dataset"].startswith("csv ") else None
    problem = tasks.hidden_set_error(task, X, np.asarray(y, np.float64), uploaded)
    if problem:
        raise Unprocessable(("body", problem[0]), problem[1])
    classroom.set_hidden_test(body.X, y)
    return {"rows": len(X), "columns": X.shape[1]}


@router.delete("/hidden-test", status_code=204, response_class=Response)
def delete_hidden_test(_: Admin, classroom: ClassroomDep) -> Response:
    """Forget the hidden test set: the leaderboard ranks nothing until another is uploaded."""
    classroom.clear_hidden_test()
    return Response(status_code=204)


@router.get("/leaderboard", response_model=LeaderboardResponse)
def leaderboard(_: Admin, models: Repo, classroom: ClassroomDep) -> dict:
    """The assignment's students ranked on the hidden test set, one row each (their best model).

    Models on another task, or whose inputs and outputs do not fit the hidden set, are listed apart
    with the reason. Without a hidden set nothing is ranked (200, ``hidden_rows`` null): the page asks
    before one exists, and that is not an error.
    """
    task = classroom.assignment()
    hidden = classroom.hidden_test()
    X = y = None
    if hidden:
        X, y = np.asarray(hidden["X"], np.float64), np.asarray(hidden["y"], np.float64)
    scored, apart = [], []
    for model_id, spec, status, _ in models.list_status():
        row = {"id": model_id, "nickname": status.get("nickname"), "dataset": tasks.dataset_of(spec),
               "architecture": architecture(spec), "step": int(status.get("step", 0))}
        reason = tasks.mismatch(task, spec, row["step"]) if task else None
        if reason is None and X is not None:
            try:
                with models.use(model_id) as model:
                    if model.raw_dim != X.shape[1] or model.net.sizes[-1] != y.shape[1]:
                        reason = (f"has {model.raw_dim} inputs and {model.net.sizes[-1]} outputs; the hidden "
                                  f"test set has {X.shape[1]} and {y.shape[1]}")
                    else:
                        row["step"] = model.step
                        reason = tasks.unscorable(model, y)
                        if reason is None:
                            row.update(tasks.score(model, X, y))
                            if row["hidden_loss"] is None:  # non-finite outputs: never ranked above a finite one
                                reason = "its hidden loss is not finite (the model has diverged)"
                                del row["hidden_loss"], row["hidden_accuracy"]
            except NotFound:  # deleted meanwhile
                continue
        if reason is not None:
            apart.append({**row, "reason": reason})
        elif X is not None:
            scored.append(row)
    return {"assignment": task, "hidden_rows": None if X is None else len(X),
            "ranked": tasks.best_per_student(scored), "apart": apart}


@router.get("/gallery", response_model=GalleryResponse)
def gallery(_: Admin, models: Repo, settings: SettingsDep,
            resolution: int = Query(24, ge=2, description="grid points per side (<= PLAYGROUND_GALLERY_MAX_RESOLUTION)")
            ) -> dict:
    """Every model's decision boundary for the projector: one forward pass over an R x R grid per model.

    At most PLAYGROUND_GALLERY_MAX_MODELS tiles (the most recently updated models), each with at most
    PLAYGROUND_GALLERY_MAX_POINTS training points; ordered by student.
    """
    if resolution > settings.gallery_max_resolution:
        raise Unprocessable(("query", "resolution"), f"must be at most {settings.gallery_max_resolution}")
    listed = models.list_status()
    newest = sorted(listed, key=lambda r: r[3], reverse=True)[:settings.gallery_max_models]
    tiles = []
    for model_id, spec, status, updated_at in newest:
        try:
            with models.use(model_id) as model:
                grid = tasks.gallery_grid(model, resolution)
                pts = tasks.training_points(model, settings.gallery_max_points) if grid else None
                tile = {"id": model_id, "nickname": status.get("nickname"), "dataset": tasks.dataset_of(spec),
                        "architecture": architecture(spec), "step": model.step, "test_loss": finite(model.test_loss),
                        "diverged": model.diverged_at is not None, "kind": model.kind, "updated_at": updated_at,
                        "x_range": grid and grid["x_range"], "y_range": grid and grid["y_range"],
                        # 3 decimals: a tile shows 256 colours, and 50 tiles stay a small response
                        "output": grid and jsonable(np.round(grid["output"], 3)),
                        "points": [] if pts is None else np.round(np.column_stack([pts["X"], pts["label"]]), 3).tolist()}
        except NotFound:  # deleted meanwhile
            continue
        tiles.append(tile)
    tiles.sort(key=lambda t: (tasks.student_key(t["id"], t["nickname"]), t["id"]))
    return {"resolution": resolution, "total": len(listed), "limit": settings.gallery_max_models, "models": tiles}


@router.put("/preset", response_model=ClassStatus)
def put_preset(_: Admin, body: Preset, classroom: ClassroomDep, settings: SettingsDep) -> dict:
    """Share a setup (a playground link) with every student page; it becomes the class's assignment."""
    try:
        task = tasks.task_from_link(body.link, match_loss=body.match_loss, step_budget=body.step_budget)
    except tasks.TaskError as e:
        raise Unprocessable(("body", "link"), f"{e.field}: {e.message}") from None
    classroom.set_preset(body.link, task)
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
