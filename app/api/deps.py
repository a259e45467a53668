"""Dependencies shared by the routers, as Annotated aliases; the model ones return the loaded model record.

Dependencies that do no I/O are ``async def``: FastAPI runs a plain ``def`` dependency in a worker
thread, and the hand-over costs the event loop more than the work (about nine per train call, most
of the loop's time under a class's load). Only ``found_model`` reads the store, so it stays a ``def``.
"""
from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.config import Settings
from app.service import Auth, Classroom, Datasets, Limits, ModelRepository, Services
from app.service.errors import not_found
from app.service.status import StoredModel
from app.store import validate_id

bearer = HTTPBearer(auto_error=False, description="the model's token from POST /api/models")


async def get_services(request: Request) -> Services:
    return request.app.state.services


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def get_models(request: Request) -> ModelRepository:
    return request.app.state.services.models


async def get_classroom(request: Request) -> Classroom:
    return request.app.state.services.classroom


async def get_datasets(request: Request) -> Datasets:
    return request.app.state.services.datasets


async def get_limits(request: Request) -> Limits:
    return request.app.state.services.limits


async def get_auth(request: Request) -> Auth:
    return request.app.state.services.auth


Repo = Annotated[ModelRepository, Depends(get_models)]
ClassroomDep = Annotated[Classroom, Depends(get_classroom)]
DatasetsDep = Annotated[Datasets, Depends(get_datasets)]
LimitsDep = Annotated[Limits, Depends(get_limits)]
AuthDep = Annotated[Auth, Depends(get_auth)]

async def client_key(request: Request) -> str:
    """Who is asking, for quotas: a short hash of the client address (the address itself is never stored)."""
    host = request.client.host if request.client else ""
    return hashlib.sha256(host.encode()).hexdigest()[:16]


ClientKey = Annotated[str, Depends(client_key)]


async def model_id_param(model_id: Annotated[str, Path(description="the id returned by POST /api/models")]) -> str:
    """An id that cannot name a model is simply not found."""
    try:
        return validate_id(model_id)
    except ValueError:
        raise not_found(model_id) from None


ModelId = Annotated[str, Depends(model_id_param)]


def found_model(model_id: ModelId, models: Repo) -> StoredModel:
    """The model named in the path, or 404."""
    return models.status(model_id)


FoundModel = Annotated[StoredModel, Depends(found_model)]


async def owned_model(found: FoundModel, auth: AuthDep, credentials: Credentials) -> StoredModel:
    """The path's model, when its token (or the instructor's) came with the request: for every change."""
    auth.authorize(found.status, credentials.credentials if credentials else None)
    return found


OwnedModel = Annotated[StoredModel, Depends(owned_model)]


async def owned_model_id(owned: OwnedModel) -> str:
    return owned.id


OwnedModelId = Annotated[str, Depends(owned_model_id)]
