"""NumPy backprop engine: layers, activations, losses, optimizers, datasets, gradient checks, trace."""
from .model import Model, TrainResult
from .network import Network
from .spec import DEFAULT_SPEC, SpecError, normalize_spec

__all__ = ["Model", "Network", "TrainResult", "SpecError", "DEFAULT_SPEC", "normalize_spec"]
