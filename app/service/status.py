"""A model's status as the service hands it out: typed fields instead of the stored JSON dict."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class ModelStatus:
    """What is known of a model without its arrays: the engine's summary plus what is kept beside it.

    Losses are floats (NaN or inf once diverged) or None before the first evaluation; ``created_at`` is
    epoch seconds; ``parent`` is ``{"id", "step"}`` for a fork; ``version`` counts saves.
    """

    step: int = 0
    epoch: int = 0
    train_loss: float | None = None
    test_loss: float | None = None
    diverged: bool = False
    diverged_at: int | None = None
    n_params: int = 0
    version: int = 0
    created_at: float = 0.0
    nickname: str | None = None
    parent: dict | None = None
    token_hash: str = ""

    @classmethod
    def from_dict(cls, status: dict) -> "ModelStatus":
        """From a stored status dict; keys this code does not know are left out."""
        return cls(**{f.name: status[f.name] for f in fields(cls) if f.name in status})

    def public(self) -> dict:
        """Every field a client may see (all but the token's hash)."""
        return {k: v for k, v in asdict(self).items() if k != "token_hash"}


@dataclass(frozen=True)
class StoredModel:
    """A model's id with its spec and status as stored (merged with this process's unsaved steps); no arrays."""

    id: str
    spec: dict
    status: ModelStatus
