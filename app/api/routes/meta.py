"""GET /api/health and GET /api/catalog: what a client needs to build its forms."""
from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import ServicesDep, SettingsDep
from app.api.schemas import Catalog, Health
from app.engine import activations, losses
from app.engine.datasets import FEATURE_LABELS, dataset_catalog
from app.engine.init import INITS
from app.engine.mistakes import catalog as mistake_catalog
from app.engine.network import REGULARIZATIONS
from app.engine.optimizers import OPTIMIZER_DEFAULTS
from app.engine.spec import DEFAULT_SPEC

router = APIRouter(tags=["meta"])


@router.get("/health", response_model=Health,
            responses={503: {"description": "the store cannot be reached (a load balancer should stop sending here)"}})
def health(services: ServicesDep) -> dict:
    """ok when this process can read its store; 503 with Retry-After when it cannot."""
    services.store.ping()  # a store error is mapped to 503 in app/api/errors.py
    return {"status": "ok"}


@router.get("/catalog", response_model=Catalog)
def catalog(settings: SettingsDep) -> dict:
    """Activations, losses, optimizers, inits, datasets and features with their parameters, and the limits."""
    limits = settings.model_dump(exclude={"store", "admin_token", "cors_origins"})
    return {
        "activations": activations.catalog(),
        "losses": losses.catalog(),
        "optimizers": [{"name": n, "params": p} for n, p in OPTIMIZER_DEFAULTS.items()],
        "inits": [{"name": n, "params": {"std": DEFAULT_SPEC["init_std"]} if n == "normal" else {}} for n in INITS],
        "regularizations": list(REGULARIZATIONS),
        "datasets": dataset_catalog(),
        "features": [{"name": n, "label": label} for n, label in FEATURE_LABELS.items()],
        "dtypes": ["float64", "float32"],
        "defaults": DEFAULT_SPEC,
        "limits": limits,
        "mistake_kinds": mistake_catalog(),
    }
