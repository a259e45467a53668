"""The instructor's views over every model: the class list, the loss curves, the leaderboard, the gallery.

HTTP-free: each returns plain values and arrays (app/api/routes/classroom.py makes them JSON). No view
waits on one student's lock: a model another call holds is read from its last saved state
(``ModelRepository.peek``), so a student's long train or derive never makes the instructor's page wait.
"""
from __future__ import annotations

import numpy as np

from app.config import Settings
from app.engine.boundary import boundary

from . import assignment as tasks
from .classroom import Classroom
from .errors import NotFound
from .repository import ModelRepository


def architecture(spec: dict) -> str:
    """E.g. "2-8-8-1 tanh,tanh,sigmoid"."""
    sizes = [spec.get("input_size") or "?"] + [layer["units"] for layer in spec["layers"]]
    return "-".join(map(str, sizes)) + " " + ",".join(layer["activation"] for layer in spec["layers"])


def _about(model_id: str, spec: dict, status: dict) -> dict:
    return {"id": model_id, "nickname": status.get("nickname"), "dataset": tasks.dataset_of(spec),
            "architecture": architecture(spec)}


def class_models(models: ModelRepository) -> list[dict]:
    """Every model with its nickname, dataset, architecture, step, losses and divergence (from the status)."""
    return [{**_about(model_id, spec, status), "step": status.get("step", 0), "train_loss": status.get("train_loss"),
             "test_loss": status.get("test_loss"), "diverged": bool(status.get("diverged")),
             "diverged_at": status.get("diverged_at"), "updated_at": updated_at}
            for model_id, spec, status, updated_at in models.list_status()]


def curves(models: ModelRepository, max_points: int) -> list[dict]:
    """Every model's evaluated train and test loss at its evaluation steps, strided to at most max_points."""
    out = []
    for model_id, _spec, status, _ in models.list_status():
        try:
            with models.peek(model_id) as model:
                c = model.history.columns()
        except NotFound:  # deleted meanwhile
            continue
        stride = max(1, -(-len(c["eval_step"]) // max_points))
        out.append({"id": model_id, "nickname": status.get("nickname"), "step": c["eval_step"][::stride],
                    "train_loss": c["eval_train"][::stride], "test_loss": c["eval_test"][::stride]})
    return out


def leaderboard(models: ModelRepository, classroom: Classroom) -> dict:
    """The assignment's students ranked on the hidden test set, one row each (their best model).

    {assignment, hidden_rows (None without a hidden set: nothing is ranked), ranked, apart}: models on
    another task, or whose inputs and outputs do not fit the hidden set, are in ``apart`` with the reason.
    """
    task = classroom.assignment()
    hidden = classroom.hidden_test()
    X = y = None
    if hidden:
        X, y = np.asarray(hidden["X"], np.float64), np.asarray(hidden["y"], np.float64)
    scored, apart = [], []
    for model_id, spec, status, _ in models.list_status():
        row = {**_about(model_id, spec, status), "step": int(status.get("step", 0))}
        reason = tasks.mismatch(task, spec, row["step"]) if task else None
        if reason is None and X is not None:
            try:
                with models.peek(model_id) as model:
                    reason = _score(model, X, y, row)
            except NotFound:  # deleted meanwhile
                continue
        if reason is not None:
            apart.append({**row, "reason": reason})
        elif X is not None:
            scored.append(row)
    return {"assignment": task, "hidden_rows": None if X is None else len(X),
            "ranked": tasks.best_per_student(scored), "apart": apart}


def _score(model, X: np.ndarray, y: np.ndarray, row: dict) -> str | None:
    """Score the model on (X, y) into row (its step, hidden_loss, hidden_accuracy); the reason it cannot be ranked."""
    if model.raw_dim != X.shape[1] or model.net.sizes[-1] != y.shape[1]:
        return (f"has {model.raw_dim} inputs and {model.net.sizes[-1]} outputs; the hidden "
                f"test set has {X.shape[1]} and {y.shape[1]}")
    row["step"] = model.step
    reason = tasks.unscorable(model, y)
    if reason is not None:
        return reason
    row.update(tasks.score(model, X, y))
    if row["hidden_loss"] is None:  # non-finite outputs: never ranked above a finite one
        del row["hidden_loss"], row["hidden_accuracy"]
        return "its hidden loss is not finite (the model has diverged)"
    return None


def gallery(models: ModelRepository, settings: Settings, resolution: int) -> dict:
    """Every model's decision boundary for the projector: one forward pass over an R x R grid per model.

    {resolution, total, limit, models}: at most gallery_max_models tiles (the most recently updated
    models), each with at most gallery_max_points training points [x1, x2, label]; ordered by student.
    A tile of data that is not 2-D has no ranges, output or points.
    """
    listed = models.list_status()
    newest = sorted(listed, key=lambda r: r[3], reverse=True)[:settings.gallery_max_models]
    tiles = []
    for model_id, spec, status, updated_at in newest:
        try:
            with models.peek(model_id) as model:
                tiles.append(_tile(model, _about(model_id, spec, status), updated_at, resolution,
                                   settings.gallery_max_points))
        except NotFound:  # deleted meanwhile
            continue
    tiles.sort(key=lambda t: (tasks.student_key(t["id"], t["nickname"]), t["id"]))
    return {"resolution": resolution, "total": len(listed), "limit": settings.gallery_max_models, "models": tiles}


def _tile(model, about: dict, updated_at: float, resolution: int, max_points: int) -> dict:
    tile = {**about, "step": model.step, "test_loss": model.test_loss, "diverged": model.diverged_at is not None,
            "kind": model.kind, "updated_at": updated_at, "x_range": None, "y_range": None, "output": None,
            "points": []}
    if model.raw_dim == 2:
        b = boundary(model, resolution, neurons=False)
        pts = tasks.training_points(model, max_points)
        # 3 decimals: a tile shows 256 colours, and 50 tiles stay a small response
        tile.update(x_range=b["x_range"], y_range=b["y_range"], output=np.round(b["output"], 3),
                    points=np.round(np.column_stack([pts["X"], pts["label"]]), 3))
    return tile
