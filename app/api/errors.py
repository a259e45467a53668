"""Domain and store errors mapped to responses, once: every route raises app.service.errors, never builds these."""
from __future__ import annotations

import json
import logging
import sqlite3

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.service.errors import DomainError, StoreUnavailable

log = logging.getLogger("playground")


def store_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the store is unreachable or stuck, not that the request was wrong."""
    kinds: list[type[BaseException]] = [sqlite3.OperationalError]
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
        kinds += [RedisConnectionError, RedisTimeoutError]
    except ImportError:  # redis is optional
        pass
    return tuple(kinds)


class ErrorResponse(JSONResponse):
    """A JSON error that may echo what the client sent, including a lone UTF-16 surrogate ("\\ud800" is valid
    JSON but no UTF-8): such a character goes out as its \\uXXXX escape instead of failing the answer."""

    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode(
            "utf-8", "backslashreplace")


def domain_response(exc: DomainError) -> JSONResponse:
    return ErrorResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers or None)


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
