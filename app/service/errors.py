"""Domain errors of the service layer: no HTTP here; app/api/errors.py maps each to a response once.

Every error carries the exact ``detail`` a client sees; the status lives on the class (or instance).
"""
from __future__ import annotations


class DomainError(Exception):
    """Base: a refusal that changes nothing. ``status`` is the HTTP status the API answers with."""

    status = 400

    def __init__(self, detail, *, headers: dict | None = None):
        super().__init__(detail if isinstance(detail, str) else repr(detail))
        self.detail, self.headers = detail, headers or {}


class NotFound(DomainError):
    status = 404


class Unauthorized(DomainError):
    """No credentials where they are needed (401 with a Bearer challenge)."""

    status = 401

    def __init__(self, detail: str):
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(DomainError):
    status = 403


class Frozen(DomainError):
    """The instructor froze training (423)."""

    status = 423

    def __init__(self, detail: str = "training is frozen by the instructor"):
        super().__init__(detail)


class Conflict(DomainError):
    status = 409


class Busy(DomainError):
    """A lock or a lease could not be had in time: try again after ``retry_after`` seconds (503)."""

    status = 503

    def __init__(self, detail: str, retry_after: float = 1.0):
        super().__init__(detail, headers={"Retry-After": str(max(1, int(round(retry_after))))})
        self.retry_after = retry_after


class OverLimit(DomainError):
    """A size, count or rate limit: 413 (too large), 429 (too many, with Retry-After) or 507 (store full)."""

    def __init__(self, status: int, detail: str, retry_after: float | None = None):
        headers = {"Retry-After": str(max(1, int(round(retry_after))))} if retry_after is not None else None
        super().__init__(detail, headers=headers)
        self.status, self.retry_after = status, retry_after


class Unprocessable(DomainError):
    """Bad input naming the field: 422 in FastAPI's validation shape, so clients parse both alike."""

    status = 422

    def __init__(self, loc: tuple | list, msg: str):
        super().__init__([{"loc": list(loc), "msg": msg, "type": "value_error"}])
        self.loc, self.msg = tuple(loc), msg


class StoreUnavailable(DomainError):
    """The store (SQLite file, Redis server) cannot be reached or is locked for too long (503)."""

    status = 503

    def __init__(self, detail: str = "the model store is unavailable; try again shortly", retry_after: float = 5.0):
        super().__init__(detail, headers={"Retry-After": str(max(1, int(round(retry_after))))})
        self.retry_after = retry_after


def not_found(model_id: str) -> NotFound:
    return NotFound(f"model {model_id} not found")


def spec_error(e, prefix: tuple = ("body",)) -> Unprocessable:
    """An engine SpecError (loc, message) as a 422 under ``prefix``."""
    return Unprocessable((*prefix, *e.loc), e.message)
