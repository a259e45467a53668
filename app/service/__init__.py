"""The service layer, with no HTTP in it: model repository, auth, limits, class settings and datasets.

Routes reach these through app/api/deps.py; errors are app/service/errors.py's, mapped to responses
once in app/api/errors.py.
"""
from __future__ import annotations

from app.config import Settings
from app.engine import Model, SpecError
from app.store import Store

from .auth import Auth
from .classroom import Classroom
from .datasets import Datasets
from .errors import spec_error
from .limits import Limits
from .repository import ModelRepository


class Services:
    """Everything the routes use, built once per app over one store."""

    def __init__(self, store: Store, settings: Settings):
        self.store, self.settings = store, settings
        self.auth = Auth(settings)
        self.limits = Limits(settings)
        self.classroom = Classroom(store)
        self.datasets = Datasets(store, settings)
        self.models = ModelRepository(store, settings)

    def build(self, spec: dict) -> Model:
        """A model from a spec (uploaded data resolved), within the limits; Unprocessable naming the field."""
        spec = self.datasets.resolve(spec)
        self.limits.check_spec(spec)
        try:
            model = Model(spec)
        except SpecError as e:
            raise spec_error(e) from None
        self.limits.check_data_size(model)
        self.limits.check_step_cost(model)
        return model


__all__ = ["Services", "Auth", "Classroom", "Datasets", "Limits", "ModelRepository"]
