"""Create, read, change, reset and delete models."""
from __future__ import annotations

from fastapi import APIRouter, Body, Response

from app.api.deps import ModelId, OwnedModelId, ServiceDep
from app.api.schemas import ModelCreate, ModelCreated, ModelPatch, ModelPublic, ResetRequest
from app.api.service import spec_error
from app.engine import SpecError

router = APIRouter(prefix="/models", tags=["models"])


def public(model_id: str, spec: dict, status: dict) -> dict:
    return {"id": model_id, "spec": spec, **{k: status.get(k) for k in ModelPublic.model_fields if k not in ("id", "spec")}}


@router.post("", status_code=201, response_model=ModelCreated)
def create_model(service: ServiceDep, body: ModelCreate = Body(default_factory=ModelCreate)) -> dict:
    """Create a model from a spec (every field optional) and initialise it from its seed.

    The answer carries the model's token, once: send it as ``Authorization: Bearer <token>`` to change the model.
    """
    model_id, token = service.create(model=service.build(body.engine_spec()), nickname=body.nickname)
    return {**public(model_id, *service.status(model_id)), "token": token}


@router.get("/{model_id}", response_model=ModelPublic)
def get_model(model_id: ModelId, service: ServiceDep) -> dict:
    """The spec and the status: step, epoch, losses, divergence."""
    return public(model_id, *service.status(model_id))


@router.patch("/{model_id}", response_model=ModelPublic)
def patch_model(model_id: OwnedModelId, body: ModelPatch, service: ServiceDep) -> dict:
    """Change learning rate, optimizer settings, regularization, batch size or nickname; optimizer state is kept."""
    renamed = {"nickname": body.nickname} if "nickname" in body.model_fields_set else None
    with service.use(model_id, save=True, status=renamed) as model:
        try:
            # only the fields the client sent: a partial optimizer must not fall back to the schema's defaults
            # (name "adam", kind "none"), which would switch the optimizer or drop the regularization
            model.update(optimizer=body.optimizer.model_dump(exclude_unset=True, exclude_none=True)
                         if body.optimizer else None,
                         regularization=body.regularization.model_dump(exclude_unset=True)
                         if body.regularization else None,
                         batch_size=body.batch_size if "batch_size" in body.model_fields_set else "keep")
        except SpecError as e:
            raise spec_error(e) from None
    return public(model_id, *service.status(model_id))


@router.delete("/{model_id}", status_code=204, response_class=Response)
def delete_model(model_id: OwnedModelId, service: ServiceDep) -> Response:
    service.delete(model_id)
    return Response(status_code=204)


@router.post("/{model_id}/reset", response_model=ModelPublic)
def reset_model(model_id: OwnedModelId, service: ServiceDep, body: ResetRequest | None = None) -> dict:
    """Re-initialise from the spec's seed, or from a new seed: step 0, fresh optimizer, empty history."""
    with service.use(model_id, save=True) as model:
        model.reset(seed=body.seed if body else None)
        service.restart_checkpoints(model_id, model)
    return public(model_id, *service.status(model_id))
