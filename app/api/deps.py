"""Dependencies shared by the routers, as Annotated aliases."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.config import Settings
from app.store import validate_id

from .service import ModelService, not_found

bearer = HTTPBearer(auto_error=False, description="the model's token from POST /api/models")


def get_service(request: Request) -> ModelService:
    return request.app.state.service


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def model_id_param(model_id: Annotated[str, Path(description="the id returned by POST /api/models")]) -> str:
    """An id that cannot name a model is simply not found."""
    try:
        return validate_id(model_id)
    except ValueError:
        raise not_found(model_id) from None


ServiceDep = Annotated[ModelService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
ModelId = Annotated[str, Depends(model_id_param)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def owned_model_id(model_id: ModelId, service: ServiceDep, credentials: Credentials) -> str:
    """A model id whose token came with the request: for every call that changes the model."""
    service.authorize(model_id, credentials.credentials if credentials else None)
    return model_id


OwnedModelId = Annotated[str, Depends(owned_model_id)]
