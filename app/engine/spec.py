"""The model spec: one JSON-able dict shared by the Python API and the REST API.

``normalize_spec`` fills every default and checks what only the engine knows (which activation
may go where, which loss needs which output); it raises SpecError with the field's location.
Plain types and numeric ranges are the REST layer's job, so this stays small.
"""
from __future__ import annotations

import copy
import math

from .activations import ACTIVATIONS
from .datasets import CLASSIFICATION, FEATURES, REGRESSION
from .init import INITS
from .losses import LOSSES, pairing_error
from .network import REGULARIZATIONS
from .optimizers import OPTIMIZER_DEFAULTS

DEFAULT_SPEC = {
    "input_size": None,
    "layers": [{"units": 8, "activation": "tanh"}, {"units": 8, "activation": "tanh"},
               {"units": 1, "activation": "sigmoid"}],
    "loss": "bce",
    "bias": True,
    "init": "xavier",
    "init_std": 0.1,
    "seed": 0,
    "dtype": "float64",
    "optimizer": {"name": "adam", **OPTIMIZER_DEFAULTS["adam"]},
    "regularization": {"kind": "none", "rate": 0.0},
    "batch_size": 10,
    "data": {"dataset": "circle", "samples": 200, "noise": 0.0, "test_fraction": 0.5, "seed": 0,
             "features": ["x1", "x2"]},
}
CUSTOM_DATA_KEYS = ("X", "y", "X_test", "y_test")
# kept with custom data: standardize (true, or the stored {"mean", "std"}) and info (columns, classes, dataset id)
CUSTOM_DATA_EXTRAS = ("standardize", "info")


class SpecError(ValueError):
    """A spec that cannot be built; ``loc`` is the path of the field, e.g. ("layers", 1, "activation")."""

    def __init__(self, loc: tuple, message: str):
        super().__init__(f"{'.'.join(map(str, loc))}: {message}")
        self.loc, self.message = tuple(loc), message


def _choice(loc, value, options):
    if value not in options:
        raise SpecError(loc, f"unknown value {value!r}; choose one of {', '.join(options)}")


def normalize_optimizer(opt: dict | None, current: dict | None = None) -> dict:
    """Fill an optimizer dict's defaults; changing its name starts from that optimizer's defaults."""
    opt = dict(opt or {})
    base = dict(current or DEFAULT_SPEC["optimizer"])
    name = opt.get("name", base["name"])
    _choice(("optimizer", "name"), name, OPTIMIZER_DEFAULTS)
    if name != base["name"]:
        base = {"name": name, **OPTIMIZER_DEFAULTS[name]}
    out = {**base, **{k: v for k, v in opt.items() if k in OPTIMIZER_DEFAULTS[name] and v is not None}}
    for key in ("learning_rate", "beta1", "beta2", "eps", "momentum"):
        if key in out and not (isinstance(out[key], (int, float)) and math.isfinite(out[key]) and out[key] >= 0):
            raise SpecError(("optimizer", key), "must be a finite number >= 0")
    return out


def normalize_regularization(reg: dict | None, current: dict | None = None) -> dict:
    """Fill and check {"kind", "rate"}."""
    out = {**(current or DEFAULT_SPEC["regularization"]), **{k: v for k, v in (reg or {}).items() if v is not None}}
    _choice(("regularization", "kind"), out["kind"], REGULARIZATIONS)
    if not (isinstance(out["rate"], (int, float)) and math.isfinite(out["rate"]) and out["rate"] >= 0):
        raise SpecError(("regularization", "rate"), "must be a finite number >= 0")
    return {"kind": out["kind"], "rate": float(out["rate"])}


def normalize_spec(spec: dict | None = None) -> dict:
    """Return a complete spec with defaults filled, or raise SpecError naming the field."""
    spec = copy.deepcopy(spec or {})
    unknown = set(spec) - set(DEFAULT_SPEC)
    if unknown:
        raise SpecError((sorted(unknown)[0],), "unknown field")
    out = {k: spec.get(k, copy.deepcopy(v)) for k, v in DEFAULT_SPEC.items()}
    layers = out["layers"]
    if not layers:
        raise SpecError(("layers",), "needs at least one layer (the output layer)")
    for i, layer in enumerate(layers):
        layer.setdefault("activation", "tanh" if i < len(layers) - 1 else "identity")
        _choice(("layers", i, "activation"), layer["activation"], ACTIVATIONS)
        if not isinstance(layer.get("units"), int) or layer["units"] < 1:
            raise SpecError(("layers", i, "units"), "must be an integer >= 1")
        if ACTIVATIONS[layer["activation"]].output_only and i != len(layers) - 1:
            raise SpecError(("layers", i, "activation"), f"{layer['activation']} is allowed on the output layer only")
    _choice(("loss",), out["loss"], LOSSES)
    pairing = pairing_error(out["loss"], layers[-1]["activation"])
    if pairing:
        where, message = pairing
        raise SpecError(("loss",) if where == "loss" else ("layers", len(layers) - 1, "activation"), message)
    _choice(("init",), out["init"], INITS)
    _choice(("dtype",), out["dtype"], ("float64", "float32"))
    out["optimizer"] = normalize_optimizer(out["optimizer"])
    out["regularization"] = normalize_regularization(out["regularization"])
    if out["batch_size"] is not None and (not isinstance(out["batch_size"], int) or out["batch_size"] < 1):
        raise SpecError(("batch_size",), "must be an integer >= 1 or null for full batch")
    out["data"] = _normalize_data(out["data"])
    return out


def _normalize_data(data: dict) -> dict:
    """Dataset data gets its defaults; custom data (arrays) is kept as given for the model to check."""
    if any(k in data for k in CUSTOM_DATA_KEYS):
        extra = set(data) - set(CUSTOM_DATA_KEYS) - set(CUSTOM_DATA_EXTRAS)
        if extra:
            raise SpecError(("data", sorted(extra)[0]), "not allowed with custom X/y data")
        for k in ("X", "y"):
            if k not in data:
                raise SpecError(("data", k), "required with custom data")
        if ("X_test" in data) != ("y_test" in data):
            raise SpecError(("data", "y_test" if "X_test" in data else "X_test"), "X_test and y_test go together")
        return data
    out = {**DEFAULT_SPEC["data"], **data}
    extra = set(out) - set(DEFAULT_SPEC["data"])
    if extra:
        raise SpecError(("data", sorted(extra)[0]), "unknown field")
    _choice(("data", "dataset"), out["dataset"], CLASSIFICATION + REGRESSION)
    if out["dataset"] == "sine" and "features" not in data:
        out["features"] = ["x1"]
    for j, f in enumerate(out["features"]):
        _choice(("data", "features", j), f, FEATURES)
    return out
