"""Domain and store errors mapped to the wire, once: every route raises app.service.errors, never builds these.

``WIRE`` maps each domain Kind to its HTTP status, its extra headers, whether a stream's error frame names
the status, and the close code of a stream refused with it (4000 + status, as a browser can read).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.service.errors import DomainError, Kind, StoreUnavailable, store_errors

log = logging.getLogger("playground")


@dataclass(frozen=True)
class Wire:
    """How one kind of domain error is answered: an HTTP status (and fixed headers); on a stream, an error
    frame (``{"type": "error", "status"?, "detail", "retry_after"?}``) and the close code."""
    status: int
    headers: dict = field(default_factory=dict)
    frame_status: bool = True  # the frame names the status; frames that only end or refuse a stream do not

    @property
    def close_code(self) -> int:
        return 4000 + self.status


WIRE: dict[Kind, Wire] = {
    Kind.NOT_FOUND: Wire(404, frame_status=False),
    Kind.UNAUTHORIZED: Wire(401, {"WWW-Authenticate": "Bearer"}, frame_status=False),
    Kind.FORBIDDEN: Wire(403, frame_status=False),
    Kind.FROZEN: Wire(423),
    Kind.CONFLICT: Wire(409),
    Kind.BUSY: Wire(503),
    Kind.TOO_LARGE: Wire(413),
    Kind.TOO_MANY: Wire(429),
    Kind.STORE_FULL: Wire(507),
    Kind.UNPROCESSABLE: Wire(422),
    Kind.STORE_UNAVAILABLE: Wire(503),
    Kind.FAILED: Wire(500, frame_status=False),
}


def status_of(err: DomainError) -> int:
    return WIRE[err.kind].status


def retry_after(err: DomainError) -> int | None:
    """Whole seconds of the Retry-After header (at least 1), or None when the error names no wait."""
    return None if err.retry_after is None else max(1, int(round(err.retry_after)))


def headers_of(err: DomainError) -> dict:
    headers = dict(WIRE[err.kind].headers)
    if retry_after(err) is not None:
        headers["Retry-After"] = str(retry_after(err))
    return headers


def close_code(err: DomainError) -> int:
    return WIRE[err.kind].close_code


def error_frame(err: DomainError) -> dict:
    """The stream's error message for err."""
    frame: dict = {"type": "error"}
    if WIRE[err.kind].frame_status:
        frame["status"] = status_of(err)
    frame["detail"] = err.detail
    if frame.get("status") is not None and retry_after(err) is not None:
        frame["retry_after"] = retry_after(err)
    return frame


class ErrorResponse(JSONResponse):
    """A JSON error that may echo what the client sent, including a lone UTF-16 surrogate ("\\ud800" is valid
    JSON but no UTF-8): such a character goes out as its \\uXXXX escape instead of failing the answer."""

    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode(
            "utf-8", "backslashreplace")


def domain_response(exc: DomainError) -> JSONResponse:
    return ErrorResponse({"detail": exc.detail}, status_code=status_of(exc), headers=headers_of(exc) or None)


def register(app: FastAPI) -> None:
    """Install the handlers: DomainError → its status and detail; store outages → 503 with Retry-After."""

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError):
        return domain_response(exc)

    async def store_down(request: Request, exc: Exception):
        log.warning("store error on %s %s: %s", request.method, request.url.path, exc)
        return domain_response(StoreUnavailable())

    for kind in store_errors():
        app.add_exception_handler(kind, store_down)

    async def lock_timeout(request: Request, exc: TimeoutError):
        # a lock the repository did not wrap (it raises Busy itself): still a 503, never a 500
        return domain_response(StoreUnavailable("the model is busy; try again shortly", retry_after=1.0))

    app.add_exception_handler(TimeoutError, lock_timeout)
