"""In-process store: dicts guarded by a mutex, plus one threading.Lock per model."""

from __future__ import annotations

import threading
import time
import weakref
from contextlib import contextmanager
from typing import Iterator

from .base import (FORMAT_VERSION, NO_QUOTA, CheckpointRow, DatasetRow, ModelRecord, ModelRow, Quota, StaleVersion,
                   Store, check_quota, checkpoint_bytes, checkpoints_within, dump_json, dump_setting, load_json,
                   record_bytes, step_or_none, validate_count, validate_id, validate_setting_key)


class MemoryStore(Store):
    """Keeps records in memory; JSON is stored encoded so callers never share mutable dicts with it."""

    def __init__(self) -> None:
        self._mu = threading.Lock()  # guards _rows and _locks; never held while waiting on a model lock
        self._rows: dict[str, tuple] = {}
        self._settings: dict[str, str] = {}  # key -> JSON text
        self._ckpts: dict[str, dict[int, tuple]] = {}  # id -> step -> (status JSON, state, history, created, bytes)
        # Weak values: a model's lock lives exactly as long as someone holds or waits on it,
        # so locks never leak and delete() cannot hand out a second lock for a held id.
        self._locks: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()
        self._used: dict[str, float] = {}  # id -> last use
        self._owner: dict[str, str] = {}  # id -> creator
        self._leases: dict[str, tuple[str, float]] = {}  # id -> (owner, expires, monotonic)
        self._datasets: dict[str, tuple[str, bytes, float]] = {}  # id -> (meta JSON, blob, created_at)
        self._bytes: dict[str, int] = {}  # owner -> bytes of its records and checkpoints
        self._total = 0

    def _charge(self, owner: str, delta: int) -> None:
        """Count delta bytes for owner and in all; the caller holds _mu and has checked the quota."""
        self._bytes[owner] = self._bytes.get(owner, 0) + delta
        if not self._bytes[owner]:
            del self._bytes[owner]
        self._total += delta

    def _check(self, quota: Quota, owner: str, delta: int) -> None:
        check_quota(quota, owner, self._bytes.get(owner, 0), self._total, delta)

    @staticmethod
    def _size(row: tuple) -> int:
        return record_bytes(row[0], row[1], row[2], row[3])

    def bytes_used(self, owner: str | None = None) -> int:
        with self._mu:
            return self._total if owner is None else self._bytes.get(owner, 0)

    @staticmethod
    def _row(r: ModelRecord) -> tuple:
        # Encoding up front mirrors the sqlite backend: non-JSON values fail here, not later.
        return (dump_json(r.spec), dump_json(r.status), bytes(r.state), bytes(r.history),
                r.token_hash, r.created_at, r.updated_at)

    def create(self, record: ModelRecord, quota: Quota = NO_QUOTA) -> None:
        """Insert a new record; KeyError if the id exists."""
        validate_id(record.id)
        now = time.time()
        record.created_at = record.created_at or now
        record.updated_at = now
        row = self._row(record)
        with self._mu:
            if record.id in self._rows:
                raise KeyError(record.id)
            self._check(quota, record.owner, self._size(row))
            self._charge(record.owner, self._size(row))
            self._rows[record.id] = row
            self._used[record.id] = now
            self._owner[record.id] = record.owner

    def get(self, model_id: str) -> ModelRecord | None:
        """Return a copy of the record, or None."""
        with self._mu:
            row = self._rows.get(model_id)
        if row is None:
            return None
        spec, status, state, history, token_hash, created, updated = row
        return ModelRecord(model_id, load_json(spec), load_json(status), state, history,
                           token_hash, created, updated, self._owner.get(model_id, ""))

    def get_status(self, model_id: str) -> tuple[dict, dict] | None:
        """Return (spec, status), or None."""
        with self._mu:
            row = self._rows.get(model_id)
        return None if row is None else (load_json(row[0]), load_json(row[1]))

    def put(self, record: ModelRecord, expected_version: int | None = None, quota: Quota = NO_QUOTA) -> None:
        """Overwrite an existing record, keeping its created_at; KeyError if missing, StaleVersion on a CAS miss."""
        with self._mu:
            old = self._rows.get(record.id)
            if old is None:
                raise KeyError(record.id)
            if expected_version is not None and int(load_json(old[1]).get("version", 0) or 0) != expected_version:
                raise StaleVersion(record.id)
            now = time.time()
            row = self._row(record)
            owner, delta = self._owner.get(record.id, ""), self._size(row) - self._size(old)
            self._check(quota, owner, delta)
            self._charge(owner, delta)
            record.updated_at = now
            self._rows[record.id] = row[:5] + (old[5], now)  # created_at is fixed by create()
            self._used[record.id] = now

    def delete(self, model_id: str) -> bool:
        """Remove a record and its checkpoints; True if the record existed."""
        with self._mu:
            row = self._rows.pop(model_id, None)
            ckpts = self._ckpts.pop(model_id, {})
            self._used.pop(model_id, None)
            owner = self._owner.pop(model_id, "")
            self._leases.pop(model_id, None)
            if row is not None:
                self._charge(owner, -self._size(row) - sum(c[4] for c in ckpts.values()))
            return row is not None

    def count(self) -> int:
        """Number of records."""
        with self._mu:
            return len(self._rows)

    def oldest_idle(self) -> str | None:
        """Id with the smallest updated_at, or None."""
        with self._mu:
            return min(self._rows, key=lambda k: (self._rows[k][6], k), default=None)

    def touch(self, model_id: str, when: float | None = None) -> None:
        with self._mu:
            if model_id in self._rows:
                self._used[model_id] = time.time() if when is None else when

    def least_used(self, before: float, limit: int = 16) -> list[str]:
        with self._mu:
            old = sorted((t, k) for k, t in self._used.items() if t < before)
        return [k for _, k in old[:limit]]

    def count_owned(self, owner: str) -> int:
        with self._mu:
            return sum(1 for o in self._owner.values() if o == owner)

    def acquire_lease(self, model_id: str, owner: str, ttl: float) -> bool:
        validate_id(model_id)
        now = time.monotonic()
        with self._mu:
            held = self._leases.get(model_id)
            if held and held[0] != owner and held[1] > now:
                return False
            self._leases[model_id] = (owner, now + ttl)
            return True

    def release_lease(self, model_id: str, owner: str) -> None:
        with self._mu:
            if self._leases.get(model_id, ("",))[0] == owner:
                del self._leases[model_id]

    def lease_holder(self, model_id: str) -> str | None:
        with self._mu:
            held = self._leases.get(model_id)
        return held[0] if held and held[1] > time.monotonic() else None

    def put_dataset(self, dataset_id: str, meta: dict, data: bytes) -> None:
        validate_id(dataset_id)
        row = (dump_setting(meta), bytes(data), time.time())
        with self._mu:
            self._datasets[dataset_id] = row

    def get_dataset(self, dataset_id: str) -> tuple[dict, bytes] | None:
        with self._mu:
            row = self._datasets.get(dataset_id) if isinstance(dataset_id, str) else None
        return None if row is None else (load_json(row[0]), row[1])

    def list_datasets(self) -> list[DatasetRow]:
        with self._mu:
            return sorted((DatasetRow(k, r[2], len(r[1])) for k, r in self._datasets.items()),
                          key=lambda t: (t[1], t[0]))

    def delete_dataset(self, dataset_id: str) -> bool:
        with self._mu:
            return self._datasets.pop(dataset_id, None) is not None

    def checkpoint_sizes(self, model_id: str) -> list[tuple[int, int]]:
        with self._mu:
            return [(step, len(r[1]) + len(r[2])) for step, r in sorted(self._ckpts.get(model_id, {}).items())]

    def format_version(self) -> int:
        return FORMAT_VERSION

    def ping(self) -> None:
        return None

    def list_status(self) -> list[ModelRow]:
        """Every model, ordered by created_at then id."""
        with self._mu:
            rows = sorted(((r[5], k, r[0], r[1], r[6]) for k, r in self._rows.items()))
        return [ModelRow(k, load_json(spec), load_json(status), updated) for _, k, spec, status, updated in rows]

    def get_setting(self, key: str) -> dict | None:
        """Return the value stored under key, or None."""
        validate_setting_key(key)
        with self._mu:
            text = self._settings.get(key)
        return None if text is None else load_json(text)

    def put_setting(self, key: str, value: dict) -> None:
        """Store (overwrite) value under key."""
        validate_setting_key(key)
        text = dump_setting(value)
        with self._mu:
            self._settings[key] = text

    def put_checkpoints(self, model_id: str, checkpoints, keep: int, max_bytes: int = 0,
                        quota: Quota = NO_QUOTA) -> None:
        """Save, prune and charge in one step under the store's mutex (see Store.put_checkpoints)."""
        validate_id(model_id)
        keep = validate_count(keep, "keep")
        now = time.time()
        new = {}
        for step, state, history, status in checkpoints:
            text = dump_json(status)
            new[validate_count(step, "step")] = (text, bytes(state), bytes(history), now,
                                                 checkpoint_bytes(text, state, history))
        with self._mu:
            if model_id not in self._rows:
                raise KeyError(model_id)
            self._replace_checkpoints(model_id, {**self._ckpts.get(model_id, {}), **new}, keep, max_bytes, quota)

    def _replace_checkpoints(self, model_id: str, merged: dict, keep: int, max_bytes: int, quota: Quota) -> None:
        """Keep the newest ``keep`` (and those within max_bytes) of merged as the model's checkpoints; _mu held."""
        steps = sorted(merged)[max(0, len(merged) - keep):]
        if max_bytes:
            steps = steps[len(steps) - checkpoints_within([(st, len(merged[st][1]) + len(merged[st][2]))
                                                           for st in steps], max_bytes):]
        kept = {st: merged[st] for st in steps}
        owner = self._owner.get(model_id, "")
        delta = sum(c[4] for c in kept.values()) - sum(c[4] for c in self._ckpts.get(model_id, {}).values())
        self._check(quota, owner, delta)
        self._charge(owner, delta)
        self._ckpts[model_id] = kept

    def list_checkpoints(self, model_id: str) -> list[CheckpointRow]:
        """Checkpoints sorted by step."""
        with self._mu:
            rows = sorted(self._ckpts.get(model_id, {}).items())
        return [CheckpointRow(step, load_json(r[0]), r[3]) for step, r in rows]

    def get_checkpoint(self, model_id: str, step: int) -> tuple[bytes, bytes, dict] | None:
        """Return (state, history, status), or None."""
        with self._mu:
            row = self._ckpts.get(model_id, {}).get(step_or_none(step))
        return None if row is None else (row[1], row[2], load_json(row[0]))

    def prune_checkpoints(self, model_id: str, keep: int) -> None:
        """Keep only the `keep` checkpoints with the highest steps."""
        keep = validate_count(keep, "keep")
        with self._mu:
            if model_id in self._ckpts:
                self._replace_checkpoints(model_id, self._ckpts[model_id], keep, 0, NO_QUOTA)

    @contextmanager
    def lock(self, model_id: str, timeout: float | None = 30.0, lease: float | None = None) -> Iterator[None]:
        """Exclusive per-model lock across threads of this process (it dies with the process: no lease)."""
        validate_id(model_id)
        with self._mu:
            lk = self._locks.get(model_id)
            if lk is None:
                lk = self._locks[model_id] = threading.Lock()
        ok = lk.acquire() if timeout is None else lk.acquire(timeout=max(0.0, timeout))
        if not ok:
            raise TimeoutError(f"could not lock model {model_id!r} within {timeout}s")
        try:
            yield
        finally:
            lk.release()

    def close(self) -> None:
        """Nothing to release; data stays readable so close() is harmless."""
