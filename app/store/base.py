"""Store interface: one ModelRecord per model, JSON metadata plus opaque engine blobs."""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ContextManager

# Ids end up in file names (sqlite lock files), so only URL-safe token characters are allowed;
# the length cap keeps "<id>.lock" well under the usual 255-byte file name limit.
_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")


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


def validate_id(model_id: str) -> str:
    """Return model_id unchanged, or raise ValueError if it is not a URL-safe token."""
    if not isinstance(model_id, str) or not _ID_RE.fullmatch(model_id):
        raise ValueError(f"invalid model id {model_id!r}: expected 1-128 chars of [A-Za-z0-9_-]")
    return model_id


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


class Store(ABC):
    """Persistence for model records; every backend must be safe to share between threads."""

    @abstractmethod
    def create(self, record: ModelRecord) -> None:
        """Insert a new record (sets created_at if 0, and updated_at); KeyError if the id exists."""

    @abstractmethod
    def get(self, model_id: str) -> ModelRecord | None:
        """Return a fresh copy of the record, or None."""

    @abstractmethod
    def get_status(self, model_id: str) -> tuple[dict, dict] | None:
        """Return (spec, status) without loading the blobs, or None."""

    @abstractmethod
    def put(self, record: ModelRecord) -> None:
        """Overwrite an existing record (created_at is kept) and bump updated_at; KeyError if missing."""

    @abstractmethod
    def delete(self, model_id: str) -> bool:
        """Remove a record; True if it existed."""

    @abstractmethod
    def count(self) -> int:
        """Number of stored records."""

    @abstractmethod
    def oldest_idle(self) -> str | None:
        """Id with the smallest updated_at (ties broken by id), or None when empty."""

    @abstractmethod
    def lock(self, model_id: str, timeout: float = 30.0) -> ContextManager[None]:
        """Exclusive, non-reentrant per-model lock; TimeoutError after timeout seconds (None waits forever)."""

    @abstractmethod
    def close(self) -> None:
        """Release resources; idempotent."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
