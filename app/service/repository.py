"""Model repository: create, load, lock and save models, with a per-process cache of live models.

Every use of a model happens under the store's per-model lock, because a forward pass writes the
network's caches. Live models stay in an LRU cache and are checked against the stored version,
so several processes on one store agree; the stream saves at most every ``save_interval``.
"""
from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from typing import Iterator

from app.config import Settings
from app.engine import Model
from app.store import ModelRecord, Store

from .auth import new_token, token_hash
from .errors import Busy, NotFound, OverLimit, not_found


class _Live:
    """A cached model, the stored version it matches, and whether it holds unsaved steps."""

    __slots__ = ("model", "version", "dirty", "saved_at")

    def __init__(self, model: Model, version: int):
        self.model, self.version, self.dirty, self.saved_at = model, version, False, time.monotonic()


class ModelRepository:
    def __init__(self, store: Store, settings: Settings):
        self.store, self.settings = store, settings
        self._live: OrderedDict[str, _Live] = OrderedDict()
        self._cache_lock = threading.Lock()

    # -- creation -------------------------------------------------------------------------
    def create(self, *, model: Model, nickname: str | None = None, parent: dict | None = None) -> tuple[str, str]:
        """Store a new model under a fresh id; return (id, token). Evicts or refuses at the model limit."""
        self._make_room()
        # 128 random bits, unguessable; hex, so an id never starts with "-" and reads as an option in a shell
        model_id = secrets.token_hex(16)
        token = new_token()
        status = {**model.status(), "version": 1, "created_at": time.time(), "nickname": nickname,
                  "parent": parent, "token_hash": token_hash(token)}
        record = ModelRecord(id=model_id, spec=model.spec, status=status, created_at=status["created_at"],
                             token_hash=status["token_hash"], state=model.to_bytes(), history=model.history.to_bytes())
        self.store.create(record)
        self._remember(model_id, _Live(model, 1))
        self.checkpoint(model_id, model)
        return model_id, token

    def _make_room(self) -> None:
        if self.store.count() < self.settings.max_models:
            return
        if self.settings.at_model_limit == "refuse":
            raise OverLimit(507, f"the server holds its limit of {self.settings.max_models} models; "
                                 "delete one or ask the operator to raise PLAYGROUND_MAX_MODELS")
        victim = self.store.oldest_idle()
        if victim:
            try:
                self.delete(victim)
            except NotFound:
                pass

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

    def checkpoints(self, model_id: str) -> list[tuple[int, dict, float]]:
        """(step, status, created_at) of the model's checkpoints by step; NotFound for an unknown model."""
        self.status(model_id)
        return self.store.list_checkpoints(model_id)

    def checkpoint_at_or_before(self, model_id: str, step: int) -> tuple[bytes, dict]:
        """(state, status) of the latest checkpoint at or before step; NotFound when there is none."""
        steps = [s for s, _, _ in self.checkpoints(model_id) if s <= step]
        found = self.store.get_checkpoint(model_id, steps[-1]) if steps else None
        if found is None:
            raise NotFound(f"model {model_id} has no checkpoint at or before step {step}")
        return found[0], found[2]

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

    def list_status(self) -> list[tuple[str, dict, dict, float]]:
        """(id, spec, status, updated_at) of every model, each as fresh as this process knows it."""
        return [(mid, *self.freshest(mid, spec, status), updated)
                for mid, spec, status, updated in self.store.list_status()]

    @contextmanager
    def _locked(self, model_id: str, timeout: float | None = -1.0) -> Iterator[None]:
        """The store's model lock; NotFound for an id that cannot exist, Busy when not had within timeout."""
        timeout = self.settings.lock_timeout if timeout == -1.0 else timeout
        try:
            lock = self.store.lock(model_id, timeout=timeout)
            lock.__enter__()
        except ValueError:
            raise not_found(model_id) from None
        except TimeoutError:
            raise Busy(f"model {model_id} is busy with another call; try again shortly",
                       retry_after=min(timeout or 1.0, 5.0)) from None
        try:
            yield
        finally:
            lock.__exit__(None, None, None)

    @contextmanager
    def use(self, model_id: str, *, save: bool | str = False, status: dict | None = None) -> Iterator[Model]:
        """Hold the model's lock and yield the live model; save after (save="lazy": when due).

        ``status`` holds fields kept beside the model (its nickname) to store with this save.
        """
        with self._locked(model_id):
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
            try:
                self.flush(model_id)
            except NotFound:
                pass

    def flush(self, model_id: str) -> None:
        """Save unsaved stream steps now (pause, disconnect)."""
        live = self._live.get(model_id)
        if live is not None and live.dirty:
            with self._locked(model_id, timeout=None):
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
        if record is None:
            raise not_found(model_id)
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
        with self._locked(model_id):
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
