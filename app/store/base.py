"""Store interface: ModelRecords (JSON metadata plus opaque engine blobs), checkpoints and settings."""

from __future__ import annotations

import json
import operator
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ContextManager, NamedTuple, Sequence

# Ids end up in file names (sqlite lock files), so only URL-safe token characters are allowed;
# the length cap keeps "<id>.lock" well under the usual 255-byte file name limit.
_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")
_KEY_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_STEP = 2**53  # redis scores are doubles: steps stay exact below this

# The layout every backend writes. 1: release 5b7985d (no marker); 2: model versions for compare-and-swap
# saves, last use, creator, leases, datasets in their own compact records; 3: the bytes of every model and
# checkpoint, and byte counters per owner and in all (SQLite: incremental auto-vacuum). Each store migrates
# forward on open; a store newer than this code is refused rather than damaged.
FORMAT_VERSION = 3


class StaleVersion(Exception):
    """put(expected_version=...) found another version stored: someone saved in between."""


class NewerFormat(RuntimeError):
    """The store was written by a newer release than this code understands."""


@dataclass(frozen=True)
class Quota:
    """Bytes of models and their checkpoints a write may leave stored: per owner and in all (0: no bound).

    Datasets have their own budget and are not counted here.
    """

    per_owner: int = 0
    total: int = 0


NO_QUOTA = Quota()


class OverQuota(Exception):
    """A write would leave more bytes stored than its Quota allows; the store changed nothing.

    ``scope`` is "owner" or "total"; ``limit`` the bound, ``used`` the bytes stored before the write and
    ``needed`` the bytes the write adds.
    """

    def __init__(self, scope: str, limit: int, used: int, needed: int):
        super().__init__(f"{scope} quota of {limit} bytes: {used} stored, the write adds {needed}")
        self.scope, self.limit, self.used, self.needed = scope, limit, used, needed


def check_quota(quota: Quota, owner: str, owner_used: int, total_used: int, delta: int) -> None:
    """Raise OverQuota if adding ``delta`` bytes passes a bound; a write that frees bytes always passes.

    An owner of "" (a model made by no client) is bounded only by the total.
    """
    if delta <= 0:
        return
    if quota.per_owner and owner and owner_used + delta > quota.per_owner:
        raise OverQuota("owner", quota.per_owner, owner_used, delta)
    if quota.total and total_used + delta > quota.total:
        raise OverQuota("total", quota.total, total_used, delta)


class ModelRow(NamedTuple):
    """One model as list_status() gives it: no blobs."""

    id: str
    spec: dict
    status: dict
    updated_at: float


class CheckpointRow(NamedTuple):
    """One checkpoint as list_checkpoints() gives it: no blobs."""

    step: int
    status: dict
    created_at: float


class DatasetRow(NamedTuple):
    """One uploaded dataset as list_datasets() gives it: no blob."""

    id: str
    created_at: float
    nbytes: int


@dataclass
class ModelRecord:
    """Everything persisted for one model; the store never looks inside the blobs."""

    id: str
    spec: dict
    status: dict
    state: bytes
    history: bytes
    token_hash: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    owner: str = ""  # who created it (a hash of the client address): the per-client quota counts these

    @property
    def version(self) -> int:
        """The save counter kept in status; put(expected_version=...) compares against it."""
        return int(self.status.get("version", 0) or 0)


def record_bytes(spec: str | bytes, status: str | bytes, state: bytes, history: bytes) -> int:
    """The bytes a model record counts against its quota: its encoded spec and status plus both blobs."""
    return len(spec) + len(status) + len(state) + len(history)


def checkpoint_bytes(status: str | bytes, state: bytes, history: bytes) -> int:
    """The bytes a checkpoint counts against its model owner's quota."""
    return len(status) + len(state) + len(history)


def validate_id(model_id: str) -> str:
    """Return model_id unchanged, or raise ValueError if it is not a URL-safe token."""
    if not isinstance(model_id, str) or not _ID_RE.fullmatch(model_id):
        raise ValueError(f"invalid model id {model_id!r}: expected 1-128 chars of [A-Za-z0-9_-]")
    return model_id


def validate_setting_key(key: str) -> str:
    """Return key unchanged, or raise ValueError unless it is 1-64 chars of [A-Za-z0-9_.-]."""
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise ValueError(f"invalid setting key {key!r}: expected 1-64 chars of [A-Za-z0-9_.-]")
    return key


def validate_count(value: int, what: str) -> int:
    """Return value as a plain int (numpy ints welcome) if in [0, 2**53), else raise ValueError."""
    try:
        n = -1 if isinstance(value, bool) else operator.index(value)
    except TypeError:
        n = -1
    if not 0 <= n < MAX_STEP:
        raise ValueError(f"invalid {what} {value!r}: expected an int in [0, 2**53)")
    return n


def step_or_none(step: object) -> int | None:
    """validate_count(step) for lookups: None instead of ValueError, so a bad step just finds nothing."""
    try:
        return validate_count(step, "step")  # type: ignore[arg-type]
    except ValueError:
        return None


def _json_default(obj: Any) -> Any:
    """Let numpy scalars/arrays through (they expose tolist()) without importing numpy here."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def dump_json(obj: dict) -> str:
    """Encode spec/status; NaN/inf stay allowed because a diverged run reports them as losses."""
    return json.dumps(obj, separators=(",", ":"), default=_json_default)


def load_json(text: str) -> dict:
    """Decode what dump_json produced."""
    return json.loads(text)


def dump_setting(value: dict) -> str:
    """Encode a setting value; TypeError unless it is a dict."""
    if not isinstance(value, dict):
        raise TypeError(f"setting values must be dicts, not {type(value).__name__}")
    return dump_json(value)


def checkpoints_within(sizes: Sequence[tuple[int, int]], max_bytes: int) -> int:
    """How many of the newest checkpoints fit in max_bytes; ``sizes`` is (step, bytes) by step. At least 1."""
    total = keep = 0
    for _, n in reversed(sizes):
        if keep and total + n > max_bytes:
            break
        total, keep = total + n, keep + 1
    return keep


class Store(ABC):
    """Persistence for model records; every backend must be safe to share between threads."""

    @abstractmethod
    def create(self, record: ModelRecord, quota: Quota = NO_QUOTA) -> None:
        """Insert a new record (sets created_at if 0, and updated_at); KeyError if the id exists, OverQuota
        if its bytes do not fit (nothing stored)."""

    @abstractmethod
    def get(self, model_id: str) -> ModelRecord | None:
        """Return a fresh copy of the record, or None."""

    @abstractmethod
    def bytes_used(self, owner: str | None = None) -> int:
        """Bytes of model records and checkpoints stored for ``owner`` (the whole store with None)."""

    @abstractmethod
    def get_status(self, model_id: str) -> tuple[dict, dict] | None:
        """Return (spec, status) without loading the blobs, or None."""

    @abstractmethod
    def put(self, record: ModelRecord, expected_version: int | None = None, quota: Quota = NO_QUOTA) -> None:
        """Overwrite an existing record (created_at and owner are kept) and bump updated_at; KeyError if missing.

        With expected_version, a compare-and-swap: StaleVersion unless the stored version is that one.
        OverQuota (nothing written) if the record grows past the quota of its owner or of the store.
        """

    @abstractmethod
    def delete(self, model_id: str) -> bool:
        """Remove a record and all its checkpoints; True if the record existed."""

    @abstractmethod
    def count(self) -> int:
        """Number of stored records."""

    @abstractmethod
    def oldest_idle(self) -> str | None:
        """Id with the smallest updated_at (ties broken by id), or None when empty."""

    @abstractmethod
    def touch(self, model_id: str, when: float | None = None) -> None:
        """Record a use (a read counts) at ``when`` (default now); nothing if the model is gone."""

    @abstractmethod
    def least_used(self, before: float, limit: int = 16) -> list[str]:
        """Up to ``limit`` ids last used before ``before`` (epoch seconds), least recently used first."""

    @abstractmethod
    def count_owned(self, owner: str) -> int:
        """Number of stored models whose record names this owner."""

    # -- leases: a process that keeps unsaved steps of a model (a playing stream) holds its lease --
    @abstractmethod
    def acquire_lease(self, model_id: str, owner: str, ttl: float) -> bool:
        """Take or renew the model's lease for ttl seconds; False if another owner holds an unexpired one."""

    @abstractmethod
    def release_lease(self, model_id: str, owner: str) -> None:
        """Give up the lease if this owner holds it."""

    @abstractmethod
    def lease_holder(self, model_id: str) -> str | None:
        """The owner of the model's unexpired lease, or None."""

    # -- uploaded datasets: compact blobs, oldest evicted under a quota --
    @abstractmethod
    def put_dataset(self, dataset_id: str, meta: dict, data: bytes) -> None:
        """Store (overwrite) a dataset: JSON meta plus one opaque blob."""

    @abstractmethod
    def get_dataset(self, dataset_id: str) -> tuple[dict, bytes] | None:
        """(meta, blob) or None; ValueError-free: a bad id finds nothing."""

    @abstractmethod
    def list_datasets(self) -> list[DatasetRow]:
        """(id, created_at, blob bytes) of every dataset, oldest first."""

    @abstractmethod
    def delete_dataset(self, dataset_id: str) -> bool:
        """Remove a dataset; True if it existed."""

    @abstractmethod
    def checkpoint_sizes(self, model_id: str) -> list[tuple[int, int]]:
        """(step, bytes of state + history) of the model's checkpoints by step."""

    @abstractmethod
    def format_version(self) -> int:
        """The layout version this store is in (FORMAT_VERSION once opened by this code)."""

    @abstractmethod
    def ping(self) -> None:
        """Raise the backend's own error if the store cannot serve right now: read, and where a backend can
        refuse writes alone (Redis out of memory or read-only), write (health checks)."""

    @abstractmethod
    def list_status(self) -> list[ModelRow]:
        """(id, spec, status, updated_at) of every model, without blobs, ordered by created_at then id."""

    @abstractmethod
    def get_setting(self, key: str) -> dict | None:
        """Return the JSON value stored under key, or None; ValueError for an invalid key."""

    @abstractmethod
    def put_setting(self, key: str, value: dict) -> None:
        """Store (overwrite) a JSON dict under key; ValueError for a bad key, TypeError for a non-dict."""

    def put_checkpoint(self, model_id: str, step: int, state: bytes, history: bytes, status: dict,
                       quota: Quota = NO_QUOTA) -> None:
        """Save (overwrite) the checkpoint at step; ValueError for a bad id/step, KeyError if no such model,
        OverQuota if it does not fit."""
        self.put_checkpoints(model_id, [(step, state, history, status)], MAX_STEP - 1, quota=quota)

    @abstractmethod
    def list_checkpoints(self, model_id: str) -> list[CheckpointRow]:
        """(step, status, created_at) of the model's checkpoints sorted by step; [] if none."""

    @abstractmethod
    def get_checkpoint(self, model_id: str, step: int) -> tuple[bytes, bytes, dict] | None:
        """Return (state, history, status) of one checkpoint, or None."""

    @abstractmethod
    def prune_checkpoints(self, model_id: str, keep: int) -> None:
        """Delete all but the `keep` checkpoints with the highest steps (their bytes are freed)."""

    @abstractmethod
    def put_checkpoints(self, model_id: str, checkpoints: Sequence[tuple[int, bytes, bytes, dict]], keep: int,
                        max_bytes: int = 0, quota: Quota = NO_QUOTA) -> None:
        """Save several checkpoints ``(step, state, history, status)``, then keep only the model's newest
        ``keep`` and, with ``max_bytes``, only the newest whose state + history fit in ``max_bytes`` (the
        newest always stays), all in one atomic write.

        ValueError for a bad id or step, KeyError if no such model, OverQuota if the checkpoints left add
        more bytes than the quota allows: in every case nothing is written.
        """

    def reclaim(self) -> None:
        """Give freed space back to the file system where the backend keeps a file (SQLite); else nothing."""

    @abstractmethod
    def lock(self, model_id: str, timeout: float | None = 30.0, lease: float | None = None) -> ContextManager[None]:
        """Exclusive, non-reentrant per-model lock; TimeoutError after timeout seconds (None waits forever).

        A holder that dies frees the lock within ``lease`` seconds (the backend's default with None): at
        once for the flock and thread locks of SQLite and memory, after its lease for Redis.
        """

    @abstractmethod
    def close(self) -> None:
        """Release resources; idempotent."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
