"""Model repository: create, load, lock and save models, with a per-process cache of live models.

Every use of a model happens under the store's per-model lock, because a forward pass writes the
network's caches. Every save is a compare-and-swap on the version loaded, so no process overwrites a
newer save. A process that keeps unsaved steps of a model (a playing stream) holds the model's *lease*:
writers in other processes wait up to ``lease_wait`` seconds for it and then get Conflict, so
steps a frame has shown are never overwritten. Reads count as use (at most one store write per model
every ``touch_interval``), and eviction never takes a model used in the last ``protect_recent_seconds``.
"""
from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections import OrderedDict
from contextlib import ExitStack, contextmanager
from typing import Iterator

from app.config import Settings
from app.engine import Model
from app.store import ModelRecord, Store
from app.store.base import OverQuota, Quota, StaleVersion

from .auth import new_token, token_hash
from .errors import Busy, Conflict, Kind, NotFound, OverLimit, not_found
from .status import ModelStatus, StoredModel

log = logging.getLogger("playground")

PLAYING_ELSEWHERE = "the model is playing elsewhere; pause it first"
CHANGED_ELSEWHERE = "the model was changed elsewhere during this call; nothing was saved, try again"


def over_quota(e: OverQuota) -> OverLimit:
    """The 507 for a write the store refused by its byte quota, naming the setting that bounds it."""
    if e.scope == "owner":
        return OverLimit(Kind.STORE_FULL, f"this address stores at most {e.limit} bytes of models and checkpoints; "
                                          "delete a model first (PLAYGROUND_MAX_BYTES_PER_CLIENT)")
    return OverLimit(Kind.STORE_FULL, f"the server stores at most {e.limit} bytes of models and checkpoints; "
                                      "delete models or ask the operator to raise PLAYGROUND_MAX_STORE_BYTES")


def model_bytes(model: Model) -> int:
    """The live model's memory in bytes (``Model.nbytes``)."""
    return int(model.nbytes())


def _trained(model: Model) -> tuple:
    """What training changes (a refused, diverging step changes only diverged_at)."""
    return model.step, model.diverged_at


class _Live:
    """A cached model, the stored version it matches, whether it holds unsaved steps, and its size."""

    __slots__ = ("model", "version", "dirty", "saved_at", "nbytes", "status")

    def __init__(self, model: Model, version: int, status: dict | None = None):
        self.model, self.version, self.dirty, self.saved_at = model, version, False, time.monotonic()
        self.nbytes = model_bytes(model)
        # the stored status at `version`: only a save (a new version) changes it, so a save on this
        # version needs no second read of it (the compare-and-swap refuses a stale one anyway)
        self.status = status


CHECKPOINT_BATCH_BYTES = 1 << 20  # a train call's checkpoints held before they are written, at most


def _checkpoint_of(model: Model) -> tuple[int, bytes, bytes, dict]:
    # no history: it is append-only, so a fork takes the parent's history up to the checkpoint's step
    return model.step, model.to_bytes(), b"", {"spec": model.spec, **model.status()}


class _CheckpointBatch:
    """The checkpoints one train call makes, held (newest checkpoints_kept, CHECKPOINT_BATCH_BYTES at most)
    and written in one store call."""

    def __init__(self, repo: "ModelRepository", model_id: str):
        self.repo, self.model_id = repo, model_id
        self.items: list[tuple[int, bytes, bytes, dict]] = []
        self.nbytes = 0

    def add(self, model: Model) -> None:
        item = _checkpoint_of(model)
        self.items.append(item)
        self.nbytes += len(item[1])
        if len(self.items) > self.repo.settings.checkpoints_kept:  # would be pruned at once
            self.nbytes -= len(self.items.pop(0)[1])
        if self.nbytes >= CHECKPOINT_BATCH_BYTES:
            self.write()

    def write(self) -> None:
        if self.items:
            items, self.items, self.nbytes = self.items, [], 0
            self.repo._write_checkpoints(self.model_id, items)


class ModelRepository:
    def __init__(self, store: Store, settings: Settings):
        self.store, self.settings = store, settings
        self._live: OrderedDict[str, _Live] = OrderedDict()
        self._cache_lock = threading.Lock()
        # who holds a lease: this repository (one per process), never reused after a restart
        self.lease_owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._leased: dict[str, float] = {}  # model id -> monotonic time of the last acquire/renew
        self._touched: dict[str, float] = {}  # model id -> monotonic time of the last recorded use

    # -- creation and eviction ------------------------------------------------------------
    def create(self, *, model: Model, nickname: str | None = None, parent: dict | None = None,
               owner: str = "") -> tuple[str, str]:
        """Store a new model under a fresh id; return (id, token).

        ``owner`` (a key for the client address) counts against ``max_models_per_client`` (OverLimit TOO_MANY)
        and, with the model's first checkpoint, against ``max_bytes_per_client`` and ``max_store_bytes``
        (OverLimit STORE_FULL, nothing stored). At ``max_models`` the least recently used model is evicted,
        never one used in the last ``protect_recent_seconds`` nor one playing: OverLimit STORE_FULL when none
        can go.
        """
        self._make_room(owner)
        # 128 random bits, unguessable; hex, so an id never starts with "-" and reads as an option in a shell
        model_id = secrets.token_hex(16)
        token = new_token()
        status = {**model.status(), "version": 1, "created_at": time.time(), "nickname": nickname,
                  "parent": parent, "token_hash": token_hash(token)}
        record = ModelRecord(id=model_id, spec=model.spec, status=status, created_at=status["created_at"],
                             token_hash=status["token_hash"], state=model.to_bytes(),
                             history=model.history.to_bytes(), owner=owner)
        try:
            self.store.create(record, self.quota())
        except OverQuota as e:
            raise over_quota(e) from None
        try:
            self.checkpoint(model_id, model)
        except OverLimit:
            self.store.delete(model_id)  # the record fit but not its first checkpoint: store neither
            raise
        self._remember(model_id, _Live(model, 1))
        return model_id, token

    def quota(self) -> Quota:
        """The byte bounds every write of a model or checkpoint passes to the store."""
        return Quota(per_owner=self.settings.max_bytes_per_client, total=self.settings.max_store_bytes)

    def _make_room(self, owner: str) -> None:
        s = self.settings
        if s.max_models_per_client and owner and self.store.count_owned(owner) >= s.max_models_per_client:
            raise OverLimit(Kind.TOO_MANY, f"this address holds its limit of {s.max_models_per_client} models; delete one "
                                 "first (PLAYGROUND_MAX_MODELS_PER_CLIENT)")
        if self.store.count() < s.max_models:
            return
        if s.at_model_limit == "refuse":
            raise OverLimit(Kind.STORE_FULL, f"the server holds its limit of {s.max_models} models; "
                                 "delete one or ask the operator to raise PLAYGROUND_MAX_MODELS")
        cutoff = time.time() - s.protect_recent_seconds
        for victim in self.store.least_used(cutoff, limit=16):
            if self.store.lease_holder(victim):
                continue  # playing somewhere
            try:
                self.delete(victim, lock_timeout=1.0, wait_for_lease=False)
                return
            except NotFound:
                return  # someone else removed it: the room is there
            except (Busy, Conflict):
                continue  # in use right now, or started playing since the check
        raise OverLimit(Kind.STORE_FULL, f"the server holds its limit of {s.max_models} models and each was used in the last "
                             f"{s.protect_recent_seconds:g} seconds; try again later or ask the operator to raise "
                             "PLAYGROUND_MAX_MODELS")

    # -- training and checkpoints ---------------------------------------------------------
    def train(self, model_id: str, model: Model, steps: int, time_budget: float):
        """Train under the caller's lock, checkpointing at every multiple of checkpoint_every.

        The call's checkpoints are written together when the steps end (one store transaction instead
        of one round of writes per checkpoint: a 2,000-step call makes 20), or earlier once
        CHECKPOINT_BATCH_BYTES of them wait.
        """
        every = self.settings.checkpoint_every
        batch = _CheckpointBatch(self, model_id)
        try:
            return model.train(steps, time_budget=time_budget, checkpoint_every=every, on_checkpoint=batch.add)
        finally:
            batch.write()

    def checkpoint(self, model_id: str, model: Model) -> None:
        """Keep the model's current state as a checkpoint (with the spec it had then); prune old ones
        past ``checkpoints_kept`` and past ``checkpoint_bytes_per_model`` (oldest first, the newest stays)."""
        if self.settings.checkpoint_every:
            self._write_checkpoints(model_id, [_checkpoint_of(model)])

    def _write_checkpoints(self, model_id: str, checkpoints: list) -> None:
        s = self.settings
        try:
            self.store.put_checkpoints(model_id, checkpoints, s.checkpoints_kept, s.checkpoint_bytes_per_model,
                                       self.quota())
        except KeyError:  # deleted by another process (after its wait for this one's lease)
            self._forget(model_id)
            raise not_found(model_id) from None
        except OverQuota as e:  # the live model went past what is stored: drop it, the stored one stays
            self._forget(model_id)
            raise over_quota(e) from None

    def restart_checkpoints(self, model_id: str, model: Model) -> None:
        """After a reset the old run's checkpoints no longer describe this model."""
        self.store.prune_checkpoints(model_id, 0)
        self.checkpoint(model_id, model)

    def checkpoints(self, model_id: str) -> list[tuple[int, dict, float]]:
        """(step, status, created_at) of the model's checkpoints by step; NotFound for an unknown model."""
        self.status(model_id)  # NotFound
        return self.store.list_checkpoints(model_id)

    def checkpoint_at_or_before(self, model_id: str, step: int) -> tuple[bytes, dict]:
        """(state, status) of the latest checkpoint at or before step; NotFound when there is none."""
        steps = [s for s, _, _ in self.checkpoints(model_id) if s <= step]
        found = self.store.get_checkpoint(model_id, steps[-1]) if steps else None
        if found is None:
            raise NotFound(f"model {model_id} has no checkpoint at or before step {step}")
        return found[0], found[2]

    # -- reads ----------------------------------------------------------------------------
    def status(self, model_id: str) -> StoredModel:
        """The model's spec and status without loading arrays; a live model with unsaved steps answers for
        itself. A use; NotFound."""
        found = self.store.get_status(model_id)
        if found is None:
            raise not_found(model_id)
        self._touch(model_id)
        spec, status = self.freshest(model_id, *found)
        return StoredModel(model_id, spec, ModelStatus.from_dict(status))

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

    def _touch(self, model_id: str) -> None:
        """Record a use in the store, at most once per touch_interval per model (reads must stay cheap)."""
        now = time.monotonic()
        if now - self._touched.get(model_id, -1e18) < self.settings.touch_interval:
            return
        if len(self._touched) > 100_000:  # bounded: forgetting only costs one extra write
            self._touched.clear()
        self._touched[model_id] = now
        self.store.touch(model_id)

    # -- leases ---------------------------------------------------------------------------
    def hold(self, model_id: str) -> None:
        """Take or renew this process's lease on the model (a playing stream); Conflict if another
        process holds it. Renewals reach the store at most every lease_ttl / 3."""
        ttl = self.settings.lease_ttl
        last = self._leased.get(model_id)
        if last is not None and time.monotonic() - last < ttl / 3:
            return
        if not self.store.acquire_lease(model_id, self.lease_owner, ttl):
            self._leased.pop(model_id, None)
            raise Conflict(PLAYING_ELSEWHERE)
        self._leased[model_id] = time.monotonic()

    def release(self, model_id: str) -> None:
        """Save unsaved steps and give up this process's lease (pause, disconnect, shutdown)."""
        try:
            self.flush(model_id)
        finally:
            if self._leased.pop(model_id, None) is not None:
                self.store.release_lease(model_id, self.lease_owner)

    def _held_elsewhere(self, model_id: str) -> bool:
        holder = self.store.lease_holder(model_id)
        return holder is not None and holder != self.lease_owner

    def _wait_for_lease(self, model_id: str) -> None:
        """Writers give another process's stream up to lease_wait seconds to pause, then Conflict."""
        deadline = time.monotonic() + self.settings.lease_wait
        delay = 0.02
        while self._held_elsewhere(model_id):
            if time.monotonic() >= deadline:
                raise Conflict(PLAYING_ELSEWHERE)
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    # -- use ------------------------------------------------------------------------------
    @contextmanager
    def _locked(self, model_id: str, timeout: float | None = -1.0) -> Iterator[None]:
        """The store's model lock; NotFound for an id that cannot exist, Busy when not had within timeout."""
        timeout = self.settings.lock_timeout if timeout == -1.0 else timeout
        try:
            # the lock's lease is the stream lease's: a killed process frees both within lease_ttl
            lock = self.store.lock(model_id, timeout=timeout, lease=self.settings.lease_ttl)
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
        """Hold the model's lock and yield the live model; save after (save="lazy": when due, under a lease).

        ``status`` holds fields kept beside the model (its nickname) to store with this save.
        Writers (save=True) wait up to lease_wait for another process's stream, then raise Conflict; a
        lazy writer (a stream's or the scheduler's slice) takes the lease itself and gets Conflict at once
        when another process holds it (it must not block a shared thread). Busy when the lock is not
        had within lock_timeout.
        """
        if save is True:
            self._wait_for_lease(model_id)
        with self._locked(model_id):
            if save == "lazy":
                self.hold(model_id)
            elif save and self._held_elsewhere(model_id):  # taken between the wait and the lock
                raise Conflict(PLAYING_ELSEWHERE)
            live = self._load(model_id)
            before = _trained(live.model)
            yield live.model
            if save == "lazy":
                # a lazy use only trains: a visit that trained nothing leaves nothing unsaved (and reads
                # elsewhere in this process keep answering from the store)
                live.dirty = live.dirty or _trained(live.model) != before
                if live.dirty and time.monotonic() - live.saved_at >= self.settings.save_interval:
                    self._save(model_id, live)
            elif save or live.dirty:
                self._save(model_id, live, status)
        self._touch(model_id)

    @contextmanager
    def peek(self, model_id: str) -> Iterator[Model]:
        """A read that never waits on the model's lock (the instructor's views over every model).

        Yields the live model under its lock when the lock is free at once; while another call holds it
        (a long train, a derive), a private copy of the model's last saved state, read from the store
        without the lock. Saves nothing. NotFound for a model that is gone.
        """
        with ExitStack() as held:
            try:
                held.enter_context(self._locked(model_id, timeout=0.0))
            except Busy:
                record = self.store.get(model_id)
                if record is None:
                    raise not_found(model_id) from None
                model = Model.from_bytes(record.spec, record.state, record.history)
            else:
                model = self._load(model_id).model
            yield model
        self._touch(model_id)

    def flush_all(self) -> None:
        """Save every live model's unsaved steps and give up the leases (shutdown)."""
        for model_id in list(self._live) + list(self._leased):
            try:
                self.release(model_id)
            except (NotFound, Conflict, Busy):
                pass

    def flush(self, model_id: str) -> None:
        """Save unsaved stream steps now; the lease stays (something in this process still trains the model)."""
        live = self._live.get(model_id)
        if live is not None and live.dirty:
            with self._locked(model_id, timeout=None):
                if live.dirty:
                    self._save(model_id, live)

    def _load(self, model_id: str) -> _Live:
        live = self._live.get(model_id)
        leased = self._leased.get(model_id)
        if live is not None and live.dirty and leased is not None and \
                time.monotonic() - leased < self.settings.lease_ttl / 2:
            # while this process holds the lease nobody else saves the model, so a playing stream's
            # turns skip the store read (a fifth of the trainer's time with 40 streams)
            return live
        found = self.store.get_status(model_id)
        if found is None:
            self._forget(model_id)
            raise not_found(model_id)
        version = found[1].get("version", 0)
        live = self._live.get(model_id)
        if live is not None and live.version == version:
            live.status = found[1]
            with self._cache_lock:
                if model_id in self._live:
                    self._live.move_to_end(model_id)
            return live
        if live is not None and live.dirty:
            # saved elsewhere although this process held unsaved steps (its lease lapsed): the newer
            # stored state wins, and the log says what was dropped
            log.warning("model %s was saved elsewhere (version %s) over %d unsaved steps here; going on from it",
                        model_id, version, live.model.step)
        record = self.store.get(model_id)
        if record is None:
            raise not_found(model_id)
        live = _Live(Model.from_bytes(record.spec, record.state, record.history), record.version, record.status)
        self._remember(model_id, live)
        return live

    def _save(self, model_id: str, live: _Live, extra: dict | None = None) -> None:
        """Compare-and-swap on the version loaded: Conflict (nothing saved, cache dropped) if it moved on;
        OverLimit 507 (nothing saved, cache dropped) past a byte quota."""
        old = live.status
        if old is None:
            found = self.store.get_status(model_id)
            if found is None:
                self._forget(model_id)
                raise not_found(model_id)
            old = found[1]
        m = live.model
        status = {**old, **(extra or {}), **m.status(), "version": live.version + 1}
        try:
            self.store.put(ModelRecord(id=model_id, spec=m.spec, status=status, token_hash=old.get("token_hash", ""),
                                       state=m.to_bytes(), history=m.history.to_bytes()),
                           expected_version=live.version, quota=self.quota())
        except OverQuota as e:
            self._forget(model_id)
            raise over_quota(e) from None
        except StaleVersion:
            self._forget(model_id)
            raise Conflict(CHANGED_ELSEWHERE) from None
        except KeyError:
            self._forget(model_id)
            raise not_found(model_id) from None
        live.version, live.status = live.version + 1, status
        live.dirty, live.saved_at = False, time.monotonic()

    def delete(self, model_id: str, lock_timeout: float | None = -1.0, wait_for_lease: bool = True) -> None:
        """Remove the model and its checkpoints. Like any writer, waits up to lease_wait for another
        process's playing stream (Conflict after it; at once without wait_for_lease); NotFound, Busy."""
        if wait_for_lease:
            self._wait_for_lease(model_id)
        with self._locked(model_id, timeout=lock_timeout):
            if self._held_elsewhere(model_id):
                raise Conflict(PLAYING_ELSEWHERE)
            if not self.store.delete(model_id):
                raise not_found(model_id)
            self._forget(model_id)
            self._leased.pop(model_id, None)

    # -- cache ----------------------------------------------------------------------------
    def _remember(self, model_id: str, live: _Live) -> None:
        """Keep at most cache_size models and cache_bytes bytes, least recently used out first."""
        with self._cache_lock:
            self._live[model_id] = live
            self._live.move_to_end(model_id)
            total = sum(x.nbytes for x in self._live.values())
            for old_id in list(self._live):
                if len(self._live) <= self.settings.cache_size and total <= self.settings.cache_bytes:
                    break
                old = self._live[old_id]
                if old.dirty or old_id == model_id:  # never drop unsaved steps, nor the model just loaded
                    continue
                del self._live[old_id]
                total -= old.nbytes

    def _forget(self, model_id: str) -> None:
        with self._cache_lock:
            self._live.pop(model_id, None)
