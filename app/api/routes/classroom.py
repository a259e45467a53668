"""The instructor's view of a class: every model, loss curves, a hidden-test leaderboard, presets, freeze.

Enabled only when PLAYGROUND_ADMIN_TOKEN is set. The hidden test set is stored server-side and
no response ever contains it; students see only /api/class/status.
"""
from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from app.api.body import BodyRoute
from app.api.deps import ClassroomDep, Credentials, DatasetsDep, Repo, SettingsDep
from app.api.schemas import (ClassCurve, ClassModel, ClassStatus, Freeze, GalleryResponse, HiddenTest, HiddenTestStored,
                             LeaderboardResponse, Preset, matrix_array, to_json)
from app.service import assignment as tasks
from app.service import instructor
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


@router.get("/status", response_model=ClassStatus)
def class_status(classroom: ClassroomDep, settings: SettingsDep) -> dict:
    """Public: whether training is frozen, and the setup the instructor shared."""
    return {"enabled": bool(settings.admin_token), "frozen": classroom.frozen(), "preset": classroom.preset(),
            "assignment": classroom.assignment()}


@router.get("/models", response_model=list[ClassModel])
def class_models(_: Admin, models: Repo) -> list[dict]:
    """Every model in the store with its nickname, architecture and status."""
    return to_json(instructor.class_models(models))


@router.get("/curves", response_model=list[ClassCurve])
def class_curves(_: Admin, models: Repo,
                 max_points: int = Query(200, ge=2, le=10_000)) -> list[dict]:
    """Every model's evaluated train and test loss, downsampled: the overlay chart. A model busy with another
    call shows its last saved curve."""
    return to_json(instructor.curves(models, max_points))


@router.put("/hidden-test", response_model=HiddenTestStored)
def put_hidden_test(_: Admin, body: HiddenTest, classroom: ClassroomDep, datasets: DatasetsDep) -> dict:
    """Store the hidden test set the leaderboard scores on; it is never returned."""
    X, y = matrix_array(body.X, ("body", "X")), matrix_array(body.y, ("body", "y"))
    if len(y) != len(X):
        raise Unprocessable(("body", "y"), f"has {len(y)} rows but X has {len(X)}")
    task = classroom.assignment()
    uploaded = datasets.load(task["dataset"][4:]) if task and task["dataset"].startswith("csv ") else None
    problem = tasks.hidden_set_error(task, X, y, uploaded)
    if problem:
        raise Unprocessable(("body", problem[0]), problem[1])
    classroom.set_hidden_test(X, y)
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
    before one exists, and that is not an error. A model busy with another call is scored as last saved.
    """
    return to_json(instructor.leaderboard(models, classroom))


@router.get("/gallery", response_model=GalleryResponse)
def gallery(_: Admin, models: Repo, settings: SettingsDep,
            resolution: int = Query(24, ge=2, description="grid points per side (<= PLAYGROUND_GALLERY_MAX_RESOLUTION)")
            ) -> dict:
    """Every model's decision boundary for the projector: one forward pass over an R x R grid per model.

    At most PLAYGROUND_GALLERY_MAX_MODELS tiles (the most recently updated models), each with at most
    PLAYGROUND_GALLERY_MAX_POINTS training points; ordered by student. A model busy with another call
    shows its last saved state.
    """
    if resolution > settings.gallery_max_resolution:
        raise Unprocessable(("query", "resolution"), f"must be at most {settings.gallery_max_resolution}")
    return to_json(instructor.gallery(models, settings, resolution))


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
