"""The class's assignment (the task a pushed preset defines) and the fair leaderboard's rules.

HTTP-free: app/service/instructor.py builds the instructor's views from these.

A *task* is what makes two models comparable: the dataset (a generated one by name, or an uploaded
CSV by its dataset id), the input features, and optionally the loss and a step budget. A *student*
is a nickname (trimmed, case-folded); a model without one is its own student.
"""
from __future__ import annotations

from typing import Iterable
from urllib.parse import parse_qs, urlsplit

import numpy as np

from app.engine import Model
from app.engine.datasets import CLASSIFICATION, FEATURES, REGRESSION
from app.engine.losses import target_error
from app.engine.spec import DEFAULT_SPEC

ONE_D = {"sine": ["x1"]}  # datasets with one raw input, and the features they always use


class TaskError(ValueError):
    """A preset link that names no task this server knows; ``field`` is the query key."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def task_from_link(link: str, *, match_loss: bool = False, step_budget: int | None = None) -> dict:
    """The assignment a playground link defines: {dataset, features, loss, step_budget}.

    ``dataset`` is a generated dataset's name or "csv <dataset id>" for an uploaded file (the link's
    ``did``); ``features`` is None for uploaded data (its columns are fixed) and for 1-D data;
    ``loss`` is None unless ``match_loss``. Raises TaskError for names the engine does not know.
    """
    q = {k: v[-1] for k, v in parse_qs(urlsplit(link).query).items()}
    did = q.get("did")
    if did:
        dataset, features = f"csv {did}", None
    else:
        dataset = q.get("dataset") or DEFAULT_SPEC["data"]["dataset"]
        if dataset not in CLASSIFICATION + REGRESSION:
            raise TaskError("dataset", f"unknown dataset {dataset!r}")
        features = None if dataset in ONE_D else (
            [f for f in q["f"].split(",") if f] if "f" in q else list(DEFAULT_SPEC["data"]["features"]))
        for f in features or ():
            if f not in FEATURES:
                raise TaskError("f", f"unknown feature {f!r}")
    loss = (q.get("loss") or DEFAULT_SPEC["loss"]) if match_loss else None
    return {"dataset": dataset, "features": features, "loss": loss, "step_budget": step_budget}


def dataset_of(spec: dict) -> str:
    """A model's dataset as a task names it: "circle", or "csv <id>" / "own data" for custom data."""
    d = spec.get("data") or {}
    if d.get("dataset"):
        return d["dataset"]
    did = (d.get("info") or {}).get("dataset_id") or d.get("dataset_id")
    return f"csv {did}" if did else "own data"


def mismatch(task: dict, spec: dict, step: int) -> str | None:
    """Why a model is not on the task ("trained on spiral"), or None when it is."""
    dataset = dataset_of(spec)
    if dataset != task["dataset"]:
        return f"trained on {dataset}"
    if task["features"] is not None:
        used = (spec.get("data") or {}).get("features") or []
        if sorted(used) != sorted(task["features"]):
            return f"uses features {', '.join(used)} (the assignment: {', '.join(task['features'])})"
    if task["loss"] and spec.get("loss") != task["loss"]:
        return f"uses loss {spec.get('loss')} (the assignment: {task['loss']})"
    if task["step_budget"] is not None and step > task["step_budget"]:
        return f"trained {step} steps, over the budget of {task['step_budget']}"
    return None


def hidden_set_error(task: dict | None, X: np.ndarray, y: np.ndarray,
                     uploaded: dict | None = None) -> tuple[str, str] | None:
    """(field, reason) when a hidden test set X (N, p), y (N, K) cannot be the assignment's task, else None.

    A generated dataset fixes the raw inputs (1 for sine, else 2) and the targets: a classification
    dataset has 2 classes, one 0/1 column (values in [0, 1]) or 2 one-hot columns (rows of values in
    [0, 1] that sum to 1); a regression dataset has one target column. An uploaded dataset (a "csv"
    task; ``uploaded`` is its {"input_columns", "target_columns", "classes"}) fixes the column counts,
    and one-hot rows when its target is categorical. Without a task nothing is checked here: the
    leaderboard checks each model's loss against y.
    """
    name = (task or {}).get("dataset")
    if uploaded is not None and name and name.startswith("csv "):
        return _uploaded_set_error(name, uploaded, X, y)
    if name not in CLASSIFICATION + REGRESSION:
        return None
    inputs = len(ONE_D.get(name, ["x1", "x2"]))
    if X.shape[1] != inputs:
        return "X", f"has {X.shape[1]} columns but the assignment's dataset {name} has {inputs} inputs"
    if name in REGRESSION:
        if y.shape[1] != 1:
            return "y", f"has {y.shape[1]} columns but the assignment's dataset {name} has 1 target"
        return None
    if y.shape[1] not in (1, 2):
        return "y", (f"has {y.shape[1]} columns but the assignment's dataset {name} has 2 classes: "
                     "one 0/1 column or 2 one-hot columns")
    bad = np.argwhere((y < 0) | (y > 1))
    if len(bad):
        row, col = (int(i) for i in bad[0])
        return "y", (f"row {row} has {y[row, col]:g}, but the assignment's dataset {name} is a classification: "
                     "targets must be in [0, 1]")
    if y.shape[1] == 2:
        off = np.flatnonzero(np.abs(y.sum(axis=1) - 1) > 1e-6)
        if len(off):
            return "y", f"row {int(off[0])} does not sum to 1: two columns must be one-hot (or probability) rows"
    return None


def _uploaded_set_error(name: str, uploaded: dict, X: np.ndarray, y: np.ndarray) -> tuple[str, str] | None:
    inputs, targets = len(uploaded["input_columns"]), len(uploaded["target_columns"])
    classes = uploaded.get("classes")
    if X.shape[1] != inputs:
        return "X", f"has {X.shape[1]} columns but the assignment's dataset ({name}) has {inputs} input columns"
    width = len(classes) if classes else targets
    if y.shape[1] != width:
        what = f"{width} one-hot columns, one per class" if classes else f"{width} target columns"
        return "y", f"has {y.shape[1]} columns but the assignment's dataset ({name}) has {what}"
    if classes and (((y < 0) | (y > 1)).any() or (np.abs(y.sum(axis=1) - 1) > 1e-6).any()):
        return "y", (f"must hold one-hot rows (values in [0, 1] that sum to 1): the assignment's dataset ({name}) "
                     f"has the classes {', '.join(map(str, classes))}")
    return None


def unscorable(model: Model, y: np.ndarray) -> str | None:
    """Why a model cannot be ranked on hidden targets y: it diverged, or its loss cannot take y."""
    if model.diverged_at is not None:
        return f"diverged at step {model.diverged_at}"
    problem = target_error(model.spec["loss"], y)
    return f"its loss cannot score the hidden test set: {problem}" if problem else None


def student_key(model_id: str, nickname: str | None) -> str:
    """Models under one nickname (any case or spacing) belong to one student."""
    name = " ".join((nickname or "").split()).casefold()
    return f"name:{name}" if name else f"id:{model_id}"


def score(model: Model, X: np.ndarray, y: np.ndarray) -> dict:
    """Hidden loss (the model's own loss, data term only) and, for classification, accuracy.

    X (N, raw_dim) raw points, y (N, K) targets. A sigmoid output predicts class 1 above 0.5;
    several outputs predict their argmax.
    """
    y_hat = model.predict(X)
    loss = float(model.net.loss_value(model.inputs(X), y.astype(model.net.dtype)))
    acc = None
    if model.kind == "classification":
        pred = (y_hat[:, 0] > 0.5) if y.shape[1] == 1 else y_hat.argmax(axis=1)
        true = (y[:, 0] > 0.5) if y.shape[1] == 1 else y.argmax(axis=1)
        acc = float((pred == true).mean())
    return {"hidden_loss": loss if np.isfinite(loss) and np.isfinite(y_hat).all() else None,
            "hidden_accuracy": acc}


def rank_key(row: dict) -> tuple:
    """Classification ranks by accuracy (higher first), then hidden loss; regression by hidden loss.

    A missing (diverged) score sorts last.
    """
    acc, loss = row.get("hidden_accuracy"), row.get("hidden_loss")
    return (acc is None, -(acc or 0.0), loss is None, loss if loss is not None else 0.0)


def best_per_student(rows: Iterable[dict]) -> list[dict]:
    """One row per student: their best-ranked model, with ``models`` = how many of theirs were scored."""
    best: dict[str, dict] = {}
    count: dict[str, int] = {}
    for row in rows:
        key = student_key(row["id"], row.get("nickname"))
        count[key] = count.get(key, 0) + 1
        if key not in best or rank_key(row) < rank_key(best[key]):
            best[key] = row
    out = sorted(best.values(), key=rank_key)
    return [{"rank": i + 1, **r, "models": count[student_key(r["id"], r.get("nickname"))]}
            for i, r in enumerate(out)]


def training_points(model: Model, limit: int) -> dict:
    """At most ``limit`` training points (evenly spaced rows): X (n, 2) raw, label (n,) one value per row."""
    idx = np.linspace(0, len(model.raw_train) - 1, min(limit, len(model.raw_train))).round().astype(int)
    y = model.y_train[idx]
    label = y[:, 0] if y.shape[1] == 1 else y.argmax(axis=1) / max(1, y.shape[1] - 1)
    return {"X": model.raw_train[idx, :2], "label": label}
