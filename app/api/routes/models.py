"""Create, read, change, reset and delete models."""
from __future__ import annotations

from fastapi import APIRouter, Body, Response

from app.api.body import BodyRoute
from app.api.deps import ClientKey, FoundModel, LimitsDep, OwnedModel, Repo, ServicesDep
from app.service.status import StoredModel
from app.api.schemas import ModelCreate, ModelCreated, ModelPatch, ModelPublic, ResetRequest
from app.engine import SpecError
from app.service.errors import spec_error

router = APIRouter(prefix="/models", tags=["models"], route_class=BodyRoute)  # large bodies: app/api/body.py


def public(stored: StoredModel) -> dict:
    """The answer's model fields from the service's typed view."""
    return {"id": stored.id, "spec": stored.spec, **stored.status.public()}


@router.post("", status_code=201, response_model=ModelCreated)
def create_model(services: ServicesDep, models: Repo, client: ClientKey, body: ModelCreate = Body(default_factory=ModelCreate)) -> dict:
    """Create a model from a spec (every field optional) and initialise it from its seed.

    The answer carries the model's token, once: send it as ``Authorization: Bearer <token>`` to change the model.
    """
    model_id, token = models.create(model=services.build(body.engine_spec()), nickname=body.nickname, owner=client)
    return {**public(models.status(model_id)), "token": token}


@router.get("/{model_id}", response_model=ModelPublic)
async def get_model(found: FoundModel) -> dict:  # async: found_model did the store read; no second thread hop
    """The spec and the status: step, epoch, losses, divergence."""
    return public(found)


@router.patch("/{model_id}", response_model=ModelPublic)
def patch_model(owned: OwnedModel, body: ModelPatch, models: Repo, limits: LimitsDep) -> dict:
    """Change learning rate, optimizer settings, regularization, batch size or nickname; optimizer state is kept."""
    renamed = {"nickname": body.nickname} if "nickname" in body.model_fields_set else None
    model_id = owned.id
    with models.use(model_id, save=True, status=renamed) as model:
        if "batch_size" in body.model_fields_set:  # before any change: a refusal leaves the model as it was
            limits.check_step_cost(model, body.batch_size)
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
    return public(models.status(model_id))


@router.delete("/{model_id}", status_code=204, response_class=Response)
def delete_model(owned: OwnedModel, models: Repo) -> Response:
    models.delete(owned.id)
    return Response(status_code=204)


@router.post("/{model_id}/reset", response_model=ModelPublic)
def reset_model(owned: OwnedModel, models: Repo, body: ResetRequest | None = None) -> dict:
    """Re-initialise from the spec's seed, or from a new seed: step 0, fresh optimizer, empty history."""
    model_id = owned.id
    with models.use(model_id, save=True) as model:
        model.reset(seed=body.seed if body else None)
        models.restart_checkpoints(model_id, model)
    return public(models.status(model_id))
