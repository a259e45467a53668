"""Model service: create, load, lock and save models, with a per-process cache of live models.

Every use of a model happens under the store's per-model lock, because a forward pass writes the
network's caches. Live models stay in an LRU cache and are checked against the stored version,
so several processes on one store agree; the stream saves at most every ``save_interval``.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from typing import Iterator

import numpy as np
from fastapi import HTTPException

from app.config import Settings
from app.engine import Model, SpecError
from app.engine.csvdata import CsvData, CsvError, parse_csv
from app.store import ModelRecord, Store


def spec_error(e: SpecError, prefix: tuple = ("body",)) -> HTTPException:
    """422 in FastAPI's validation shape, so clients parse engine and schema errors alike."""
    return HTTPException(422, detail=[{"loc": [*prefix, *e.loc], "msg": e.message, "type": "value_error"}])


def unprocessable(loc: tuple, msg: str) -> HTTPException:
    return HTTPException(422, detail=[{"loc": list(loc), "msg": msg, "type": "value_error"}])


class _Live:
    """A cached model, the stored version it matches, and whether it holds unsaved steps."""

    __slots__ = ("model", "version", "dirty", "saved_at")

    def __init__(self, model: Model, version: int):
        self.model, self.version, self.dirty, self.saved_at = model, version, False, time.monotonic()


class ModelService:
    def __init__(self, store: Store, settings: Settings):
        self.store, self.settings = store, settings
        self._live: OrderedDict[str, _Live] = OrderedDict()
        self._cache_lock = threading.Lock()

    # -- creation -------------------------------------------------------------------------
    def build(self, spec: dict) -> Model:
        """Check limits and build a model from a spec, or raise a 422 naming the field."""
        spec = self._resolve_data(spec)
        self.check_limits(spec)
        try:
            model = Model(spec)
        except SpecError as e:
            raise spec_error(e) from None
        self.check_data_size(model)
        return model

    # -- own data -------------------------------------------------------------------------
    def parse_csv_upload(self, *, text: str, inputs=None, targets=None, loc: tuple = ("body", "csv")) -> CsvData:
        """Parse an uploaded CSV, or 422 naming the line the problem is on."""
        try:
            return parse_csv(text, inputs=inputs, targets=targets, max_rows=self.settings.max_csv_rows,
                             max_columns=self.settings.max_units)
        except CsvError as e:
            raise unprocessable(loc if e.field == "file" else (*loc[:-1], e.field), e.message) from None

    def save_dataset(self, parsed: CsvData) -> str:
        """Keep a parsed upload in the store (shared by every process); return its id."""
        dataset_id = secrets.token_hex(12)
        self.store.put_setting(f"dataset.{dataset_id}", {
            "X": parsed.X.tolist(), "y": parsed.y.tolist(), "input_columns": parsed.input_columns,
            "target_columns": parsed.target_columns, "classes": parsed.classes})
        return dataset_id

    def _resolve_data(self, spec: dict) -> dict:
        """Turn {"dataset_id"} or {"csv"} data into the engine's custom X/y split (seeded)."""
        data = spec.get("data") or {}
        if "dataset_id" not in data and "csv" not in data:
            return spec
        clash = sorted(set(data) - {"dataset_id", "csv", "inputs", "targets", "standardize", "test_fraction", "seed"})
        if clash or ("dataset_id" in data and "csv" in data):
            raise unprocessable(("body", "data", clash[0] if clash else "csv"),
                                "cannot be combined with uploaded data (dataset_id or csv)")
        if "csv" in data:
            parsed = self.parse_csv_upload(text=data["csv"], inputs=data.get("inputs"), targets=data.get("targets"),
                                           loc=("body", "data", "csv"))
            ds = {"X": parsed.X, "y": parsed.y, "input_columns": parsed.input_columns,
                  "target_columns": parsed.target_columns, "classes": parsed.classes}
        else:
            ds = self.store.get_setting(f"dataset.{data['dataset_id']}") if _valid_key(data["dataset_id"]) else None
            if not ds:
                raise unprocessable(("body", "data", "dataset_id"), "no uploaded dataset has this id")
        X, y = np.asarray(ds["X"], np.float64), np.asarray(ds["y"], np.float64)
        order = np.random.default_rng(data.get("seed", 0)).permutation(len(X))
        n_test = min(int(len(X) * data.get("test_fraction", 0.2)), len(X) - 1)
        test, train = order[:n_test], order[n_test:]
        info = {"dataset_id": data.get("dataset_id"), **{k: ds[k] for k in ("input_columns", "target_columns", "classes")}}
        custom = {"X": X[train], "y": y[train], "standardize": bool(data.get("standardize")), "info": info}
        if n_test:
            custom.update(X_test=X[test], y_test=y[test])
        return {**spec, "data": custom}

    def create(self, *, model: Model, nickname: str | None = None, parent: dict | None = None) -> tuple[str, str]:
        """Store a new model under a fresh id; return (id, token). Evicts or refuses at the model limit."""
        self._make_room()
        # 128 random bits, unguessable; hex, so an id never starts with "-" and reads as an option in a shell
        model_id = secrets.token_hex(16)
        token = secrets.token_hex(32)
        status = {**model.status(), "version": 1, "created_at": time.time(), "nickname": nickname,
                  "parent": parent, "token_hash": token_hash(token)}
        record = ModelRecord(id=model_id, spec=model.spec, status=status, created_at=status["created_at"],
                             token_hash=status["token_hash"], state=model.to_bytes(), history=model.history.to_bytes())
        self.store.create(record)
        self._remember(model_id, _Live(model, 1))
        self.checkpoint(model_id, model)
        return model_id, token

    # -- training and checkpoints ---------------------------------------------------------
    def train(self, model_id: str, model: Model, steps: int, time_budget: float):
        """Train under the caller's lock, checkpointing at every multiple of checkpoint_every."""
        every = self.settings.checkpoint_every
        return model.train(steps, time_budget=time_budget, checkpoint_every=every,
                           on_checkpoint=lambda m: self.checkpoint(model_id, m))

    def checkpoint(self, model_id: str, model: Model) -> None:
        """Keep the model's current state as a checkpoint (with the spec it had then); prune old ones."""
        if not self.settings.checkpoint_every:
            return
        # no history: it is append-only, so a fork takes the parent's history up to the checkpoint's step
        self.store.put_checkpoint(model_id, model.step, model.to_bytes(), b"", {"spec": model.spec, **model.status()})
        self.store.prune_checkpoints(model_id, self.settings.checkpoints_kept)

    def restart_checkpoints(self, model_id: str, model: Model) -> None:
        """After a reset the old run's checkpoints no longer describe this model."""
        self.store.prune_checkpoints(model_id, 0)
        self.checkpoint(model_id, model)

    # -- ownership ------------------------------------------------------------------------
    def authorize(self, model_id: str, token: str | None) -> None:
        """The model's own token, or the instructor's, may change it; 404 first, then 401 / 403."""
        _, status = self.status(model_id)
        if not token:
            raise HTTPException(401, detail="this call changes the model: send its token as "
                                            "'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"})
        admin = self.settings.admin_token
        if not (hmac.compare_digest(token_hash(token), status.get("token_hash", "")) or
                (admin and hmac.compare_digest(token.encode(), admin.encode()))):
            raise HTTPException(403, detail="the token does not match this model")

    def check_not_frozen(self) -> None:
        """423 while the instructor has frozen training for everyone."""
        if (self.store.get_setting("class.frozen") or {}).get("frozen"):
            raise HTTPException(423, detail="training is frozen by the instructor")

    def check_limits(self, spec: dict) -> None:
        """Refuse oversized architectures before any work starts."""
        s, layers = self.settings, spec.get("layers") or []
        if len(layers) > s.max_layers:
            raise unprocessable(("body", "layers"), f"has {len(layers)} layers; the limit is {s.max_layers}")
        for i, layer in enumerate(layers):
            if layer.get("units", 0) > s.max_units:
                raise unprocessable(("body", "layers", i, "units"), f"is {layer['units']}; the limit is {s.max_units}")
        data = spec.get("data") or {}
        X = data.get("X")
        width = spec.get("input_size") or len(data.get("features") or []) or (len(X[0]) if X is not None and len(X) else 2)
        sizes = [width] + [layer.get("units", 1) for layer in layers]
        n_params = sum(o * (i + 1) for i, o in zip(sizes[:-1], sizes[1:]))
        if n_params > s.max_params:
            raise unprocessable(("body", "layers"), f"need {n_params} parameters; the limit is {s.max_params}")
        samples = data.get("samples") or 0
        if samples * width > s.max_samples_x_features:
            raise unprocessable(("body", "data", "samples"),
                                f"{samples} samples x {width} features exceeds the limit {s.max_samples_x_features}")

    def check_data_size(self, model: Model) -> None:
        cells = (len(model.X_train) + len(model.X_test)) * model.X_train.shape[1]
        if cells > self.settings.max_samples_x_features:
            raise unprocessable(("body", "data", "X"),
                                f"{cells} samples x features exceeds the limit {self.settings.max_samples_x_features}")

    def _make_room(self) -> None:
        if self.store.count() < self.settings.max_models:
            return
        if self.settings.at_model_limit == "refuse":
            raise HTTPException(507, detail=f"the server holds its limit of {self.settings.max_models} models; "
                                             "delete one or ask the operator to raise PLAYGROUND_MAX_MODELS")
        victim = self.store.oldest_idle()
        if victim:
            self.delete(victim)

    # -- use ------------------------------------------------------------------------------
    def status(self, model_id: str) -> tuple[dict, dict]:
        """(spec, status) without loading arrays; a live model with unsaved steps answers for itself."""
        found = self.store.get_status(model_id)
        if found is None:
            raise not_found(model_id)
        return self.freshest(model_id, *found)

    def freshest(self, model_id: str, spec: dict, status: dict) -> tuple[dict, dict]:
        """The stored (spec, status), updated from this process's live model when it has unsaved steps."""
        live = self._live.get(model_id)
        if live is not None and live.dirty:
            return live.model.spec, {**status, **live.model.status()}
        return spec, status

    @contextmanager
    def use(self, model_id: str, *, save: bool | str = False, status: dict | None = None) -> Iterator[Model]:
        """Hold the model's lock and yield the live model; save after (save="lazy": when due).

        ``status`` holds fields kept beside the model (its nickname) to store with this save.
        """
        try:
            lock = self.store.lock(model_id, timeout=self.settings.train_time_budget + 30)
        except ValueError:
            raise not_found(model_id) from None
        with lock:
            live = self._load(model_id)
            yield live.model
            if save == "lazy":
                live.dirty = True
                if time.monotonic() - live.saved_at >= self.settings.save_interval:
                    self._save(model_id, live)
            elif save or live.dirty:
                self._save(model_id, live, status)

    def flush_all(self) -> None:
        """Save every live model's unsaved steps (shutdown)."""
        for model_id in list(self._live):
            self.flush(model_id)

    def flush(self, model_id: str) -> None:
        """Save unsaved stream steps now (pause, disconnect)."""
        live = self._live.get(model_id)
        if live is not None and live.dirty:
            with self.store.lock(model_id):
                if live.dirty:
                    self._save(model_id, live)

    def _load(self, model_id: str) -> _Live:
        found = self.store.get_status(model_id)
        if found is None:
            self._forget(model_id)
            raise not_found(model_id)
        version = found[1].get("version", 0)
        live = self._live.get(model_id)
        if live is not None and (live.dirty or live.version == version):
            with self._cache_lock:
                if model_id in self._live:
                    self._live.move_to_end(model_id)
            return live
        record = self.store.get(model_id)
        live = _Live(Model.from_bytes(record.spec, record.state, record.history), version)
        self._remember(model_id, live)
        return live

    def _save(self, model_id: str, live: _Live, extra: dict | None = None) -> None:
        found = self.store.get_status(model_id)
        if found is None:
            raise not_found(model_id)
        old = found[1]
        live.version = old.get("version", 0) + 1
        m = live.model
        status = {**old, **(extra or {}), **m.status(), "version": live.version}
        self.store.put(ModelRecord(id=model_id, spec=m.spec, status=status, token_hash=old.get("token_hash", ""),
                                   state=m.to_bytes(), history=m.history.to_bytes()))
        live.dirty, live.saved_at = False, time.monotonic()

    def delete(self, model_id: str) -> None:
        with self.store.lock(model_id):
            if not self.store.delete(model_id):
                raise not_found(model_id)
            self._forget(model_id)

    # -- cache ----------------------------------------------------------------------------
    def _remember(self, model_id: str, live: _Live) -> None:
        with self._cache_lock:
            self._live[model_id] = live
            self._live.move_to_end(model_id)
            while len(self._live) > self.settings.cache_size:
                old_id, old = next(iter(self._live.items()))
                if old.dirty:  # a streaming model is never dropped with unsaved steps
                    self._live.move_to_end(old_id)
                    break
                del self._live[old_id]

    def _forget(self, model_id: str) -> None:
        with self._cache_lock:
            self._live.pop(model_id, None)


def _valid_key(dataset_id) -> bool:
    return isinstance(dataset_id, str) and 0 < len(dataset_id) <= 48 and all(c.isalnum() or c in "-_" for c in dataset_id)


def token_hash(token: str) -> str:
    """Only a token's SHA-256 is stored, so a leaked database holds no usable tokens."""
    return hashlib.sha256(token.encode()).hexdigest()


def not_found(model_id: str) -> HTTPException:
    return HTTPException(404, detail=f"model {model_id} not found")
