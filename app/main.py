"""create_app(): the routers under /api and the static playground at /."""
from __future__ import annotations

import logging
import math
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from app.api import errors
from app.api.body import BodyGate
from app.api.limits import BodySizeLimit
from app.api.fairness import FairnessMiddleware
from app.api.routes import classroom, derive, docs, inspect, meta, models, stream, training, transfer
from app.api.security import SecurityMiddleware, install_log_redaction
from app.assets import STATIC
from app.config import Settings, get_settings
from app.service import Services
from app.service.scheduler import Scheduler
from app.store import open_store

log = logging.getLogger("playground")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    store = open_store(settings.store)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        app.state.scheduler.stop()  # the training thread ends before the last saves
        app.state.services.models.flush_all()
        store.close()

    # docs_url/redoc_url off: FastAPI's pages load from CDNs; app/api/routes/docs.py serves vendored ones
    app = FastAPI(title="Backprop Playground", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Define an MLP, step its training, and inspect every layer's weights and gradients. "
                              "Notation: W_i is (out, in), X is (B, p), a_i = z_{i-1} W_i^T + b_i, z_i = f(a_i), "
                              "delta_i = dL/da_i.")
    app.state.settings = settings
    app.state.services = Services(store, settings)
    app.state.body_gate = BodyGate(settings.max_large_bodies)  # large bodies in work at once
    # one training thread per process shares the CPU among streams and train calls
    app.state.scheduler = Scheduler(app.state.services.models, fps=settings.stream_fps,
                                    frozen=app.state.services.classroom.frozen)
    if settings.cors_origins:  # closed (same origin) unless the operator names origins
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["authorization", "content-type"])
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(FairnessMiddleware, settings=settings, store=store)  # concurrency caps; worker threads at startup
    app.add_middleware(SecurityMiddleware, per_client=settings.rate_limit_per_client,
                       per_token=settings.rate_limit_per_token, store=settings.store)
    install_log_redaction()  # tokens out of uvicorn's logs, however the app is served

    errors.register(app)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        # the echoed input may hold NaN/Infinity (JSON literals Python accepts), which strict JSON cannot carry
        return errors.ErrorResponse({"detail": _json_safe(jsonable_encoder(exc.errors()))}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        # never show a stack trace to a client; the log keeps it
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error"}, status_code=500)

    for router in (meta.router, models.router, training.router, inspect.router, derive.router, stream.router,
                   classroom.router, transfer.router):
        app.include_router(router, prefix="/api")

    app.include_router(docs.router)  # /docs, /redoc, /question

    @app.get("/class", include_in_schema=False)
    def class_page() -> FileResponse:
        return FileResponse(STATIC / "class.html")

    if STATIC.is_dir():
        app.mount("/", StaticFiles(directory=STATIC, html=True), name="static")
    return app


def _json_safe(obj):
    """Non-finite floats become the JSON literal the client sent ("NaN", "Infinity", "-Infinity")."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


app = create_app()
