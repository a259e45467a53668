"""Domain errors of the service layer: each carries a ``kind`` and the exact ``detail`` a client sees.

No HTTP here: app/api/errors.py maps every kind to its HTTP status, headers, stream error frame and
close code, in one table. ``retry_after`` (seconds) says when a refused call may succeed.
"""
from __future__ import annotations

import enum
import functools
import sqlite3


class Kind(enum.Enum):
    """What went wrong, in the domain's terms."""

    NOT_FOUND = "not_found"                  # no such model (or other named thing)
    UNAUTHORIZED = "unauthorized"            # no credentials where they are needed
    FORBIDDEN = "forbidden"                  # credentials that do not open this model or route
    FROZEN = "frozen"                        # the instructor froze training
    CONFLICT = "conflict"                    # the model is in a state that forbids the call
    BUSY = "busy"                            # a lock, lease or slot could not be had in time
    TOO_LARGE = "too_large"                  # a size limit
    TOO_MANY = "too_many"                    # a count or rate limit of one client
    STORE_FULL = "store_full"                # a limit of the whole store
    UNPROCESSABLE = "unprocessable"          # bad input, naming the field
    STORE_UNAVAILABLE = "store_unavailable"  # the store cannot serve
    FAILED = "failed"                        # a stream stopped on a fault of the server


FROZEN = "training is frozen by the instructor"


class DomainError(Exception):
    """Base: a refusal that changes nothing. Subclasses set ``kind``."""

    kind: Kind

    def __init__(self, detail, *, retry_after: float | None = None):
        super().__init__(detail if isinstance(detail, str) else repr(detail))
        self.detail, self.retry_after = detail, retry_after


class NotFound(DomainError):
    kind = Kind.NOT_FOUND


class Unauthorized(DomainError):
    kind = Kind.UNAUTHORIZED


class Forbidden(DomainError):
    kind = Kind.FORBIDDEN


class Frozen(DomainError):
    """The instructor froze training."""

    kind = Kind.FROZEN

    def __init__(self, detail: str = FROZEN):
        super().__init__(detail)


class Conflict(DomainError):
    kind = Kind.CONFLICT


class Busy(DomainError):
    """A lock or a lease could not be had in time: try again after ``retry_after`` seconds."""

    kind = Kind.BUSY

    def __init__(self, detail: str, retry_after: float = 1.0):
        super().__init__(detail, retry_after=retry_after)


class OverLimit(DomainError):
    """A size, count or rate limit: ``kind`` is TOO_LARGE, TOO_MANY (with ``retry_after``) or STORE_FULL."""

    KINDS = (Kind.TOO_LARGE, Kind.TOO_MANY, Kind.STORE_FULL)

    def __init__(self, kind: Kind, detail: str, retry_after: float | None = None):
        if kind not in self.KINDS:
            raise ValueError(f"an OverLimit's kind is one of {[k.name for k in self.KINDS]}, not {kind!r}")
        super().__init__(detail, retry_after=retry_after)
        self.kind = kind


class Unprocessable(DomainError):
    """Bad input naming the field, in FastAPI's validation shape, so clients parse both alike."""

    kind = Kind.UNPROCESSABLE

    def __init__(self, loc: tuple | list, msg: str):
        super().__init__([{"loc": list(loc), "msg": msg, "type": "value_error"}])
        self.loc, self.msg = tuple(loc), msg


class StoreUnavailable(DomainError):
    """The store (SQLite file, Redis server) cannot be reached, refuses, or is locked for too long."""

    kind = Kind.STORE_UNAVAILABLE

    def __init__(self, detail: str = "the model store is unavailable; try again shortly", retry_after: float = 5.0):
        super().__init__(detail, retry_after=retry_after)


class StreamFailed(DomainError):
    """A stream stopped on a fault of the server (logged where it happened)."""

    kind = Kind.FAILED

    def __init__(self, detail: str = "the stream stopped on a server error"):
        super().__init__(detail)


@functools.cache
def store_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the store cannot serve (unreachable, refusing, full, read-only, stuck), not
    that the request was wrong. A Redis ResponseError is one too: the app's commands are fixed, so an error
    reply (NOAUTH, OOM, READONLY, MISCONF, ...) is the server's state, never the client's input."""
    kinds: list[type[BaseException]] = [sqlite3.OperationalError]
    try:
        from redis.exceptions import RedisError
        kinds.append(RedisError)
    except ImportError:  # redis is optional
        pass
    return tuple(kinds)


def not_found(model_id: str) -> NotFound:
    return NotFound(f"model {model_id} not found")


def spec_error(e, prefix: tuple = ("body",)) -> Unprocessable:
    """An engine SpecError (loc, message) as an Unprocessable under ``prefix``."""
    return Unprocessable((*prefix, *e.loc), e.message)
