"""Request and response schemas: the only place arrays become JSON.

Enumerations come from the engine's registries, so the API can never offer a name the engine
does not know. Types and ranges are checked here; what depends on the whole spec (softmax only
on the output, bce needs a sigmoid) is checked by the engine and reported with the same shape.
"""
from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict, StrictBool, WithJsonSchema,
                      WrapSerializer, WrapValidator)
from pydantic_core import PydanticCustomError

from app.engine.activations import ACTIVATIONS
from app.engine.datasets import CLASSIFICATION, FEATURES, REGRESSION
from app.engine.init import INITS
from app.engine.losses import LOSSES
from app.engine.network import REGULARIZATIONS
from app.engine.optimizers import OPTIMIZERS
from app.engine.spec import DEFAULT_SPEC
from app.service.errors import Unprocessable

Activation = Literal[tuple(ACTIVATIONS)]
LossName = Literal[tuple(LOSSES)]
OptimizerName = Literal[tuple(OPTIMIZERS)]
InitName = Literal[tuple(INITS)]
DatasetName = Literal[CLASSIFICATION + REGRESSION]
FeatureName = Literal[tuple(FEATURES)]
RegKind = Literal[REGULARIZATIONS]
Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]
"""A finite JSON number, the entry of every matrix and vector of a request body: integers are fine, while true and
"0.5" are a 422 "Input should be a valid number" at the entry (lax pydantic stored a weight `true` as 1.0)."""
MAX_INT = 2**53 - 1
"""The largest integer a JavaScript client holds exactly: the bound of every integer field without a smaller one,
so a 400-digit integer is a 422 at its field rather than a stored batch size or an error about something else."""
Int = Annotated[int, Strict(), Field(le=MAX_INT)]
"""A JSON integer, for every integer field of a request body: lax pydantic would take true, "5" and 5.0 as 1, 5
and 5 (a student's typo trains one step); strict, each is a 422 "Input should be a valid integer" at the field.
At most MAX_INT unless the field sets a smaller bound."""
Float = Annotated[float, Strict()]
"""A JSON number (integers included, so a learning rate of 1 is fine), for every float field of a request body:
true and "0.5" are a 422 "Input should be a valid number"."""


def _matrix_in(value, handler):
    # app/api/body.py hands large bodies' clean matrices over as (N, p) float64 arrays, already checked
    # (2-D, non-empty, finite): passed through, not copied into a million small lists
    return value if isinstance(value, np.ndarray) else handler(value)


def _matrix_out(value, handler, info):
    if isinstance(value, np.ndarray):
        return value.tolist() if info.mode_is_json() else value
    return handler(value)


Matrix = Annotated[list[list[Number]], WrapValidator(_matrix_in), WrapSerializer(_matrix_out, when_used="always")]
"""Rows of numbers; the JSON schema is that of nested lists, the value may be an array (see app/api/body.py)."""
Rows = Annotated[list[list[Number]], Field(min_length=1), WrapValidator(_matrix_in),
                 WrapSerializer(_matrix_out, when_used="always")]
"""A Matrix of at least one row. Field(min_length=1) on a Matrix field would report "Value should have"
instead of pydantic's "List should have": a length constraint outside a wrap validator is checked apart."""
Seed = Annotated[int, Strict(), Field(ge=0, le=2**31 - 1)]


def matrix_array(rows, loc: tuple, name: str = "") -> np.ndarray:
    """A Matrix or Rows value as an (N, p) float64 array, (0, 0) when it has no rows: the API's one matrix check.

    Pydantic has checked the entries (finite numbers); this checks the shape: Unprocessable at ``loc``, its
    detail starting with ``name`` when one is given, for rows of different lengths. body.py's arrays are
    rectangular already and come back as they are.
    """
    if isinstance(rows, np.ndarray):
        return rows
    if len({len(r) for r in rows}) > 1:
        raise Unprocessable(loc, f"{name + ' ' if name else ''}is ragged: its rows have different lengths")
    if len(rows) == 0:
        return np.zeros((0, 0))
    return np.asarray(rows, np.float64).reshape(len(rows), -1)


def printable_name(name: str) -> str:
    """A nickname without control (Cc: NUL, newline, ...) or format characters (Cf: bidi overrides such as
    U+202E, zero-width joiners): the instructor's lists show nicknames, which must not break or reorder them."""
    for i, ch in enumerate(name):
        if unicodedata.category(ch) in ("Cc", "Cf"):
            raise PydanticCustomError("value_error", f"must not contain control or invisible formatting characters "
                                                     f"(U+{ord(ch):04X} at position {i})")
    return name


Nickname = Annotated[str, Field(max_length=40), AfterValidator(printable_name)]


def jsonable(a) -> list | float | None:
    """An array as nested lists; NaN and inf become null since JSON has no such numbers."""
    a = np.asarray(a)
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        return np.where(np.isfinite(a), a, None).tolist()
    return a.tolist()


def finite(x) -> float | None:
    """A float for JSON, or null when it is missing or not finite."""
    return None if x is None or not np.isfinite(x) else float(x)


def to_json(obj):
    """Engine result dicts as JSON: arrays to lists, numpy scalars to Python, non-finite floats to null."""
    if isinstance(obj, dict):
        return {k: to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj)
    if isinstance(obj, (float, np.floating)):
        return finite(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- spec ---------------------------------------------------------------------------------
class LayerSpec(Strict):
    units: Int = Field(ge=1, description="n_i, the rows of W_i")
    # None lets the engine choose, so the API builds the same network as Model(spec): tanh for hidden
    # layers, identity for the output layer
    activation: Activation | None = Field(None, description="default tanh; identity on the output layer")


class OptimizerSpec(Strict):
    name: OptimizerName = "adam"
    learning_rate: Float | None = Field(None, ge=0, le=1e6, allow_inf_nan=False, examples=[0.03])
    momentum: Float | None = Field(None, ge=0, lt=1, allow_inf_nan=False, description="momentum only (default 0.9)")
    # true or false only (docs/api.md); omitted means the optimizer's default. The default None is not validated,
    # so an explicit null is a 422 "Input should be a valid boolean" at the field, as for every boolean
    nesterov: StrictBool = None
    beta1: Float | None = Field(None, ge=0, lt=1, allow_inf_nan=False, description="adam only (default 0.9)")
    beta2: Float | None = Field(None, ge=0, lt=1, allow_inf_nan=False, description="adam only (default 0.999)")
    eps: Float | None = Field(None, gt=0, le=1, allow_inf_nan=False, description="adam only (default 1e-8)")


class RegularizationSpec(Strict):
    kind: RegKind = "none"
    rate: Float = Field(0.0, ge=0, le=1e3, allow_inf_nan=False)


class DataSpec(Strict):
    """Either a generated dataset (dataset, samples, ...) or your own arrays (X, y, X_test?, y_test?)."""

    dataset: DatasetName | None = Field(None, description="default circle")
    samples: Int | None = Field(None, ge=4, le=100_000)
    noise: Float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    test_fraction: Float | None = Field(None, ge=0, le=0.9, allow_inf_nan=False)
    seed: Seed | None = None
    features: list[FeatureName] | None = Field(None, min_length=1, max_length=len(FEATURES))
    X: Matrix | None = Field(None, description="(N, p) training inputs, rows are samples")
    y: Matrix | None = Field(None, description="(N, K) training targets")
    X_test: Matrix | None = None
    y_test: Matrix | None = None
    dataset_id: str | None = Field(None, max_length=48, description="an id from POST /api/datasets")
    csv: str | None = Field(None, description="a CSV file's text with a header row (instead of dataset_id)")
    inputs: list[str] | None = Field(None, description="CSV input columns by header name")
    targets: list[str] | None = Field(None, description="CSV target columns by header name")
    standardize: StrictBool = Field(None, description="standardize CSV inputs with training-set statistics (true or "
                                                      "false; omitted: false; null is refused)")


class ModelCreate(Strict):
    """A model spec; every field has a default, and the defaults train a classifier on circle."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"layers": [{"units": 8, "activation": "tanh"}, {"units": 8, "activation": "tanh"},
                    {"units": 1, "activation": "sigmoid"}],
         "loss": "bce", "optimizer": {"name": "adam", "learning_rate": 0.03}, "batch_size": 10,
         "data": {"dataset": "xor", "noise": 0.1}},
        {"layers": [{"units": 3, "activation": "sigmoid"}, {"units": 1, "activation": "sigmoid"}],
         "loss": "mse", "bias": False, "batch_size": None,
         "data": {"X": [[0, 0], [0, 1], [1, 0], [1, 1]], "y": [[0], [1], [1], [0]]}}]})

    input_size: Int | None = Field(None, ge=1, description="p; taken from the data when omitted")
    layers: list[LayerSpec] = Field(default_factory=lambda: [LayerSpec(**x) for x in DEFAULT_SPEC["layers"]],
                                    min_length=1, description="hidden layers then the output layer")
    loss: LossName = DEFAULT_SPEC["loss"]
    bias: StrictBool = True
    init: InitName = DEFAULT_SPEC["init"]
    init_std: Float = Field(DEFAULT_SPEC["init_std"], gt=0, le=100, allow_inf_nan=False)
    seed: Seed = 0
    dtype: Literal["float64", "float32"] = "float64"
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    regularization: RegularizationSpec = Field(default_factory=RegularizationSpec)
    batch_size: Int | None = Field(DEFAULT_SPEC["batch_size"], ge=1, description="null for full batch")
    data: DataSpec = Field(default_factory=DataSpec)
    nickname: Nickname | None = Field(None, description="shown to the instructor, not part of the spec")

    def engine_spec(self) -> dict:
        """The spec dict for the engine: only what the client set, so the engine fills defaults."""
        d = self.model_dump(exclude_none=True, exclude={"nickname"})
        d["batch_size"] = self.batch_size
        if self.input_size is None:
            d.pop("input_size", None)
        return d


class ModelPatch(Strict):
    """What can change between steps without a reset; optimizer state is kept."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"optimizer": {"learning_rate": 0.01}}, {"regularization": {"kind": "l2", "rate": 0.001}, "batch_size": None}]})

    optimizer: OptimizerSpec | None = None
    regularization: RegularizationSpec | None = None
    batch_size: Int | None = Field(None, ge=1, description="send null for full batch")
    nickname: Nickname | None = Field(None, description="shown to the instructor")


class ResetRequest(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{}, {"seed": 7}]})

    seed: Seed | None = None


class Passing(BaseModel):
    """A response part whose declared fields are typed and whose further fields (which vary with a choice,
    e.g. an optimizer's hyper-parameters) are passed through as the engine writes them."""

    model_config = ConfigDict(extra="allow")


class LayerOut(BaseModel):
    units: int
    activation: str


class OptimizerOut(Passing):
    """The optimizer's name and learning rate, then its own hyper-parameters (momentum, beta1, ...)."""

    name: str
    learning_rate: float


class RegularizationOut(BaseModel):
    kind: str
    rate: float


class GeneratedData(Passing):
    dataset: str
    samples: int
    noise: float
    test_fraction: float
    seed: int
    features: list[str] | None = None


class Standardization(BaseModel):
    mean: list[float]
    std: list[float]


class CustomData(Passing):
    source: Literal["custom"] = Field(description="your own arrays or an uploaded CSV")
    n_train: int
    n_test: int
    standardize: Standardization | None = Field(description="the inputs' statistics; null: not standardized")
    info: dict[str, Any] | None = Field(description="an upload's columns, classes and dataset id")


class ModelSpec(Passing):
    """The spec as the engine completed it: every default filled in."""

    input_size: int | None
    layers: list[LayerOut]
    loss: str
    bias: bool
    init: str
    init_std: float
    seed: int
    dtype: Literal["float64", "float32"]
    optimizer: OptimizerOut
    regularization: RegularizationOut
    batch_size: int | None
    data: GeneratedData | CustomData


class ParentRef(BaseModel):
    id: str
    step: int


class ModelPublic(BaseModel):
    id: str
    nickname: str | None = None
    parent: ParentRef | None = None
    spec: ModelSpec
    step: int
    epoch: int
    train_loss: float | None
    test_loss: float | None
    diverged: bool
    diverged_at: int | None
    n_params: int
    created_at: float


class ModelCreated(ModelPublic):
    token: str = Field(description="shown once: send as 'Authorization: Bearer <token>' to change this model")


# -- training -----------------------------------------------------------------------------
class TrainRequest(Strict):
    steps: Int = Field(1, ge=1, description="optimizer steps (one minibatch each)", examples=[100])


class TrainResponse(BaseModel):
    step: int
    epoch: int
    steps_done: int
    losses: list[float]
    train_loss: float | None
    test_loss: float | None
    diverged: bool
    diverged_at: int | None
    stopped: Literal["done", "diverged", "time_budget"]


# -- parameters and inspection ------------------------------------------------------------
class LayerParams(BaseModel):
    W: Matrix = Field(description="(n_i, n_{i-1})")
    b: list[Number] | None = Field(None, description="(n_i,), null without bias")


class Parameters(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"layers": [{"W": [[0.5, -0.2], [0.1, 0.3], [-0.4, 0.8]], "b": [0.0, 0.0, 0.0]},
                    {"W": [[1.0, -1.0, 0.5]], "b": [0.0]}]}]})

    layers: list[LayerParams]


class Batch(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {}, {"X": [[1.0, -2.0], [0.5, 0.5]], "y": [[1.0], [0.0]]}]})

    X: Matrix | None = Field(None, description="raw inputs (B, raw_dim); the server applies the features")
    y: Matrix | None = Field(None, description="(B, K) targets")


class PredictRequest(Strict):
    X: Rows = Field(examples=[[[0.5, -1.0], [2.0, 2.0]]])


class PredictResponse(BaseModel):
    y_hat: list[list[float | None]]


class GradNorm(BaseModel):
    W: float | None
    b: float | None


class LayerGradients(BaseModel):
    layer: int
    a: list
    z: list
    delta: list
    dz: list
    dW: list
    db: list | None
    grad_norm: GradNorm


class GradientsResponse(BaseModel):
    loss: float | None
    data_loss: float | None
    penalty: float | None
    batch_size: int
    inputs: list
    layers: list[LayerGradients]


class GradcheckRequest(Batch):
    eps: Float = Field(1e-6, gt=0, le=1e-2, allow_inf_nan=False)


class EvalHistory(BaseModel):
    step: list[int] = Field(description="the evaluation steps")
    train_loss: list[float | None]
    test_loss: list[float | None]


class HistoryResponse(BaseModel):
    step: list[int]
    loss: list[float | None]
    grad_norms: list[list[float | None]]
    eval: EvalHistory


class BoundaryResponse(BaseModel):
    resolution: int
    x_range: list[float]
    y_range: list[float]
    output: list[list[float | None]] = Field(description="(R, R) model output; row j is x2 = y_range value j")
    neuron_resolution: int
    neurons: list[list[list[list[float | None]]]] = Field(description="per hidden layer (n_i, r, r): its z on the "
                                                                      "r x r sub-grid")


class DataSplit(BaseModel):
    X: list[list[float]] = Field(description="raw inputs (N, raw_dim)")
    y: list[list[float]] = Field(description="targets (N, K)")


class DataResponse(BaseModel):
    kind: Literal["classification", "regression"]
    features: list[str] | None = Field(description="the features a generated dataset's inputs become; null for own data")
    train: DataSplit
    test: DataSplit


# -- the catalog --------------------------------------------------------------------------
class ActivationInfo(BaseModel):
    name: str
    params: dict[str, int | float]
    output_only: bool
    derivative: str


class LossInfo(BaseModel):
    name: str
    requires_output: str | None


class NamedParams(BaseModel):
    name: str
    params: dict[str, int | float | bool]


class ParamRange(BaseModel):
    default: int | float
    min: int | float
    max: int | float


class DatasetInfo(BaseModel):
    name: str
    kind: Literal["classification", "regression"]
    raw_dim: int
    classes: int | None
    params: dict[str, ParamRange]


class FeatureInfo(BaseModel):
    name: str
    label: str


class MistakeKind(BaseModel):
    kind: str
    explanation: str = Field(description="one line a teacher can read")


class Catalog(BaseModel):
    activations: list[ActivationInfo]
    losses: list[LossInfo]
    optimizers: list[NamedParams]
    inits: list[NamedParams]
    regularizations: list[str]
    datasets: list[DatasetInfo]
    features: list[FeatureInfo]
    dtypes: list[str]
    defaults: dict[str, Any] = Field(description="the spec every omitted field takes (POST /api/models)")
    limits: dict[str, Any] = Field(description="every PLAYGROUND_* setting but the secrets, by its lower-case name")
    mistake_kinds: list[MistakeKind] = Field([], description="every diagnosis code a verdict's kind may hold")


class Health(BaseModel):
    status: Literal["ok"]



# -- your own gradients and equations (/check, /derive, /trace, /gradcheck) ---------------
MAX_ARRAY_DIMS = 4
"""dW per sample is (B, n_i, n_{i-1}): three axes; one more is allowed so a stray wrapper still gets a verdict."""


def _refuse(msg: str):
    return PydanticCustomError("value_error", msg)


def nested_array(value: Any) -> np.ndarray:
    """A number or nested lists of numbers of any shape as a float64 array, or a 422 saying why not.

    Refused: anything that is not a number (strings, booleans, null, objects), ragged lists, more than
    ``MAX_ARRAY_DIMS`` axes, NaN and infinities. The walk is iterative, so no nesting can exhaust the stack.
    """
    if isinstance(value, np.ndarray):
        value = value.tolist()
    shape, first = [], value
    while isinstance(first, list):  # the shape the first entry at every level promises
        if len(shape) == MAX_ARRAY_DIMS:
            raise _refuse(f"has more than {MAX_ARRAY_DIMS} nested levels; give a matrix, a vector or one per sample")
        shape.append(len(first))
        first = first[0] if first else None
    stack = [(value, ())]
    while stack:
        item, at = stack.pop()
        if len(at) < len(shape):
            if not isinstance(item, list):
                raise _refuse(f"is ragged: {_index(at)} is {_json_type(item)} where a list of {shape[len(at)]} belongs")
            if len(item) != shape[len(at)]:
                raise _refuse(f"is ragged: {_index(at)} has {len(item)} entries where {shape[len(at)]} belong")
            stack.extend((x, (*at, j)) for j, x in enumerate(item))
        elif isinstance(item, list):
            raise _refuse(f"is ragged: {_index(at)} is a list where a number belongs")
        elif isinstance(item, bool) or not isinstance(item, (int, float)):
            raise _refuse(f"must hold numbers only; {_index(at)} is {_json_type(item)}")
        elif not _finite(item):
            raise _refuse(f"must hold finite numbers; {_index(at)} is {item if isinstance(item, float) else 'too large'}")
    return np.asarray(value, dtype=np.float64)


def _finite(x: int | float) -> bool:
    try:
        return bool(np.isfinite(float(x)))
    except OverflowError:  # an integer beyond float64
        return False


def _index(at: tuple) -> str:
    return "the value" if not at else "entry " + "".join(f"[{j}]" for j in at)


def _json_type(x) -> str:
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return "a number"
    return {bool: "a boolean", str: "a string", dict: "an object", list: "a list", type(None): "null"}.get(
        type(x), type(x).__name__)


NestedArray = Annotated[np.ndarray, BeforeValidator(nested_array), WithJsonSchema(
    {"description": "a number or nested lists of numbers, any shape: a matrix, a flat list, a column, one per sample",
     "anyOf": [{"type": "number"}, {"type": "array", "items": {}}]})]


class StudentLayer(Strict):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    dW: NestedArray | None = Field(None, description="your dW_i; the expected shape is W_i's (n_i, n_{i-1})")
    db: NestedArray | None = Field(None, description="your db_i; the expected shape is b_i's (n_i,)")


class CheckRequest(Strict):
    """Your own gradients for some or all layers (in order), on the batch X, y (default: the one GET /gradients uses)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"X": [[1.0, -2.0]], "y": [[1.0]], "layers": [{"dW": [[0.01, -0.02], [0.0, 0.03], [0.02, 0.01]],
                                                        "db": [0.01, 0.0, -0.01]}]},
        {"layers": [{}, {}, {"dW": [0.01, -0.02, 0.03, 0.0, 0.01, 0.02, -0.01, 0.0], "db": [[0.01]]}]}]})

    X: Rows | None = Field(None, description="raw inputs (B, raw_dim); default: GET /gradients' batch")
    y: Rows | None = Field(None, description="(B, K) targets, with X")
    layers: list[StudentLayer]


class Verdict(BaseModel):
    model_config = ConfigDict(extra="allow")

    expected_shape: list[int]
    shape: list[int]
    max_abs_error: float | None
    relative_error: float | None
    passed: bool
    hint: str | None
    kind: str | None = Field(None, description="the mistake's stable code (GET /api/catalog mistake_kinds), its "
                                               "parts joined with '+' when composed; null when passed or unexplained")
    kinds: list[str] = Field([], description="the parts of a composed explanation, in the order of the step")


class FirstError(BaseModel):
    model_config = ConfigDict(extra="allow")

    layer: int | None = Field(description="where the mistake enters: fix this layer first")
    target: str | None = Field(None, description="the gradient or equation, e.g. dW[2] or delta[1]")
    message: str  # with code, also "line": the first line (from 1) whose value is wrong (extra keys are kept)
    kind: str | None = Field(None, description="the entry point's mistake code, as in its verdict "
                                               "('unexplained' when none fits); absent on an equation's error",
                             exclude_if=lambda v: v is None)
    kinds: list[str] = Field([], description="the parts of a composed explanation", exclude_if=lambda v: not v)


class CheckLayer(BaseModel):
    layer: int
    dW: Verdict | None
    db: Verdict | None


class CheckResponse(BaseModel):
    passed: bool
    first_error: FirstError | None = Field(description="null when every gradient passes")
    layers: list[CheckLayer]


Convention = Literal["columns", "rows"]
"""columns: the question's notation, one sample as a column, z_i = f(W_i z_{i-1}); rows: the engine's batch rows."""


class Equation(Strict):
    target: str = Field(max_length=32, examples=["delta[L]", "delta[i]", "dW[i]", "db[i]", "delta[L-1]", "dW[2]"],
                        description="delta[...], dW[...] or db[...] of i (every layer) or one layer: L, L-1, 2, ...")
    expr: str = Field(description="W[i], b[i], a[i], z[i], delta[i], y, y_hat, B, L, f(), fprime(), + - * / @, .T, "
                                  "sum(..., axis=...), mean, outer")


class DeriveRequest(Strict):
    """Your backward pass as equations, evaluated on the batch X, y (default: the one GET /gradients uses)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"convention": "columns", "equations": [
            {"target": "delta[L]", "expr": "2 * (y_hat - y) * fprime(a[L])"},
            {"target": "delta[i]", "expr": "(W[i+1].T @ delta[i+1]) * fprime(a[i])"},
            {"target": "dW[i]", "expr": "delta[i] @ z[i-1].T"},
            {"target": "db[i]", "expr": "delta[i]"}]},
        {"convention": "rows", "equations": [
            {"target": "delta[L]", "expr": "2 * (y_hat - y) / B * fprime(a[L])"},
            {"target": "delta[i]", "expr": "(delta[i+1] @ W[i+1]) * fprime(a[i])"},
            {"target": "dW[i]", "expr": "delta[i].T @ z[i-1]"},
            {"target": "db[i]", "expr": "sum(delta[i], axis=0)"}]},
        {"convention": "columns", "code": "import numpy as np\n\ndef backward(W, a, z, y, fprime, L):\n"
                                          "    k = {L: 2 * (z[L] - y) * fprime(a[L])}\n"
                                          "    for i in range(L - 1, 0, -1):\n"
                                          "        k[i] = (W[i + 1].T @ k[i + 1]) * fprime(a[i])\n"
                                          "    return {i: k[i] @ z[i - 1].T for i in range(1, L + 1)}\n"}]})

    convention: Convention = Field(description="columns (the question's) or rows (the engine's)")
    X: Rows | None = Field(None, description="raw inputs (B, raw_dim); default: GET /gradients' batch")
    y: Rows | None = Field(None, description="(B, K) targets, with X")
    equations: list[Equation] | None = Field(None, min_length=1, description="the backward pass as equations; "
                                             "give this or code")
    code: str | None = Field(None, description="the backward pass as Python source defining def backward(W, a, z, "
                             "y, fprime, L, ...) with NumPy (import numpy as np); give this or equations")


class DeriveStep(BaseModel):
    model_config = ConfigDict(extra="allow")

    target: str
    expr: str | None = None
    shape: list[int] | None = Field(None, description="the result's shape; null when it failed")
    error: str | None = None


class DeriveLayer(BaseModel):
    layer: int
    dW: Verdict | None
    db: Verdict | None
    steps: list[DeriveStep]


class UnusedEquation(BaseModel):
    """An equation no layer of this net evaluates, so a mistake in it cannot show in the verdicts."""

    index: int = Field(description="its position in the request's equations, from 0")
    target: str = Field(examples=["delta[i]"])
    expr: str
    reason: str = Field(description="why it was not evaluated, e.g. named targets cover every layer")


class DeriveResponse(BaseModel):
    passed: bool
    first_error: FirstError | None
    layers: list[DeriveLayer]
    unused: list[UnusedEquation] = Field(default_factory=list, description="equations no layer evaluated on this "
                                         "net (a general delta[i] that delta[L] and delta[L-1] override everywhere, "
                                         "a db without biases, a target given twice)")


class DeriveExamples(BaseModel):
    question: dict[Convention, list[Equation]] = Field(description="the question's recurrence, its mistake included")
    correct: dict[Convention, list[Equation]] = Field(description="the backward pass that passes")
    code: dict[str, str] = Field(default_factory=dict, description="code for POST /derive's code: "
                                 "\"question\" (the question's recurrence in NumPy, one sample as a column, its "
                                 "mistake included) and \"fixed\"")


Dim = int | str
"""A shape entry: a size, or "B" for a symbolic batch."""


class Operand(BaseModel):
    name: str = Field(examples=["W_1"])
    shape: list[Dim] = Field(description="the shape as the equation uses it")
    stored_shape: list[Dim] = Field(description="the shape the engine stores")
    transposed: bool


class TraceStep(BaseModel):
    layer: int
    target: str = Field(examples=["a_1", "delta_2", "dW_2"])
    equation: str = Field(examples=["a_1 = z_0 W_1^T + b_1"])
    operands: list[Operand]
    result_shape: list[Dim]
    note: str


class TraceResponse(BaseModel):
    batch_size: Dim
    convention: Convention = "rows"
    forward: list[TraceStep]
    backward: list[TraceStep]
    closed_form: str | None = None


class TensorCheck(BaseModel):
    max_abs_error: float | None
    relative_error: float | None
    checked: int = Field(description="entries compared (all, or a seeded sample)")
    kinks: int = Field(description="entries left out: w +- eps meets a kink of the activation")
    analytic_norm: float | None
    numeric_norm: float | None
    abs_error: float | None = Field(description="||analytic - numeric|| over the entries compared")
    roundoff: float | None = Field(description="bound on abs_error from finite-difference round-off and truncation; "
                                               "computed for a tensor above the tolerance, else null")
    within_roundoff: bool = Field(description="above the tolerance but abs_error <= roundoff: passes, the gradient is "
                                              "too small for its relative error to mean anything")
    best_eps: float | None = Field(description="the eps where round-off and truncation balance, when estimated")


class GradcheckLayer(BaseModel):
    layer: int
    W: TensorCheck
    b: TensorCheck | None


class GradcheckResponse(BaseModel):
    passed: bool
    max_relative_error: float | None
    eps: float
    tolerance: float
    dtype_checked: Literal["float64"]
    kinks: int
    eps_note: str | None = Field(description="why an eps outside [1e-8, 1e-4] misleads; null inside it")
    roundoff_note: str | None = Field(description="the tensors that pass within round-off, and an eps to try; "
                                                   "null when none does")
    layers: list[GradcheckLayer]


# -- own data in, models out (datasets, export and import, checkpoints, forks) --------------
class CsvUpload(Strict):
    csv: str = Field(min_length=1, description="the file's text, with a header row",
                     examples=["x1,x2,label\n0.1,0.2,red\n0.5,-1,blue\n"])
    inputs: list[str] | None = Field(None, description="input columns by header name; default all but the targets")
    targets: list[str] | None = Field(None, description="target columns by header name; default the last column")
    standardize: StrictBool = Field(False, description="report the inputs' mean and std; a model standardizes its inputs "
                                                 "when its spec's data says \"standardize\": true")
    one_hot: StrictBool = Field(False, description="one target column of integer class labels (0, 1, 2, ...) becomes "
                                             "one-hot columns, one per class, for a softmax output")


class DatasetPublic(BaseModel):
    id: str
    rows: int
    input_columns: list[str]
    target_columns: list[str]
    classes: list[str] | None
    target_kind: Literal["classes", "binary", "numbers"] = Field(
        description="classes: one-hot (softmax, cross_entropy); binary: one 0/1 column (sigmoid, bce); "
                    "numbers (identity, mse)")
    standardize: Standardization | None = None


class ForkRequest(Strict):
    step: Int | None = Field(None, ge=0, description="fork from the latest checkpoint at or before this step")


class Checkpoint(BaseModel):
    step: int
    created_at: float = Field(description="seconds since the epoch")
    train_loss: float | None
    test_loss: float | None


# -- the class: status, the instructor's views and settings ---------------------------------
class HiddenTest(Strict):
    X: Rows = Field(description="raw inputs (N, raw_dim)")
    y: Rows = Field(description="targets (N, K)")


class HiddenTestStored(BaseModel):
    rows: int = Field(description="rows of the stored hidden test set")
    columns: int = Field(description="its input columns")


class Preset(Strict):
    """A playground link every student page offers; it defines the class's task (the assignment)."""

    # page-relative only: "//host" and "/\\host" are protocol-relative links to another site
    link: str = Field(min_length=1, max_length=4000, pattern=r"^/([^/\\].*)?$",
                      examples=["/?dataset=circle&f=x1,x2&h=8.tanh,8.tanh"])
    match_loss: StrictBool = Field(False, description="rank only models that use the link's loss")
    step_budget: Int | None = Field(None, ge=1, le=10_000_000, description="rank only models trained at most this many steps")


class Freeze(Strict):
    frozen: StrictBool  # "yes", "on", 1 are refused: a switch is true or false


class ClassModel(BaseModel):
    id: str
    nickname: str | None
    dataset: str = Field(description='a dataset name, "csv <dataset id>" or "own data"')
    architecture: str = Field(examples=["2-8-8-1 tanh,tanh,sigmoid"])
    step: int
    train_loss: float | None
    test_loss: float | None
    diverged: bool
    diverged_at: int | None
    updated_at: float = Field(description="seconds since the epoch of the last save")


class ClassCurve(BaseModel):
    id: str
    nickname: str | None
    step: list[int] = Field(description="evaluation steps, strided to at most max_points")
    train_loss: list[float | None]
    test_loss: list[float | None]


class Assignment(BaseModel):
    """The class's task, defined by the pushed preset: models on another task are not ranked."""

    dataset: str = Field(description='a dataset name, or "csv <dataset id>" for an uploaded file')
    features: list[str] | None = Field(description="input features; null for uploaded or 1-D data")
    loss: str | None = Field(description="the loss every model must use; null: any")
    step_budget: int | None = Field(description="models trained more steps are not ranked; null: no budget")


class ClassStatus(BaseModel):
    enabled: bool
    frozen: bool
    preset: str | None
    assignment: Assignment | None = None


class RankedRow(BaseModel):
    rank: int
    id: str = Field(description="the student's best model")
    nickname: str | None
    dataset: str
    architecture: str
    step: int
    hidden_loss: float | None = Field(description="the model's loss on the hidden test set (data term)")
    hidden_accuracy: float | None = Field(description="classification: the share of hidden rows right")
    models: int = Field(description="how many of this student's models are on the task")


class ApartRow(BaseModel):
    id: str
    nickname: str | None
    dataset: str
    architecture: str
    step: int
    reason: str = Field(examples=["trained on spiral"])


class LeaderboardResponse(BaseModel):
    assignment: Assignment | None = Field(description="null: no preset pushed; every model that fits is ranked")
    hidden_rows: int | None = Field(description="rows of the hidden test set; null: none uploaded, nothing ranked")
    ranked: list[RankedRow] = Field(description="one row per student (their best model), best first")
    apart: list[ApartRow] = Field(description="models not on the assignment, with the reason")


class GalleryTile(BaseModel):
    id: str
    nickname: str | None
    dataset: str
    architecture: str
    step: int
    test_loss: float | None
    diverged: bool
    kind: Literal["classification", "regression"]
    updated_at: float = Field(description="seconds since the epoch of the last save: the student's live model is their newest")
    x_range: list[float] | None = Field(description="[lo, hi] of x1; null for data that is not 2-D")
    y_range: list[float] | None
    output: list[list[float | None]] | None = Field(description="(R, R) model output; row j is x2 = y_range value j")
    points: list[list[float]] = Field(description="training points [x1, x2, label]")


class GalleryResponse(BaseModel):
    resolution: int
    total: int = Field(description="models in the class")
    limit: int = Field(description="PLAYGROUND_GALLERY_MAX_MODELS: at most this many tiles, most recently updated")
    models: list[GalleryTile]


# -- stream messages: WebSocket /api/models/{id}/stream; see docs/api.md ------------
MAX_TOKEN = 256  # characters of a stream message's token (a model's token has 64)


class StreamMessage(BaseModel):
    """A client message. ``auth`` (first, when the URL has no ?token=) carries the model's token;
    ``play`` may set ``steps_per_frame`` (exactly that many steps per frame; default: as many as fit)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"action": "auth", "token": "<token>"}, {"action": "play", "steps_per_frame": 5},
        {"action": "pause"}, {"action": "step"}]})

    action: Literal["auth", "play", "pause", "step"]
    steps_per_frame: int | None = Field(None, strict=True, ge=1, le=100_000)
    token: str | None = Field(None, strict=True, max_length=MAX_TOKEN)


class StreamGrid(BaseModel):
    """An array as 8-bit levels, base64: value = lo + (hi - lo) * level / 255 (row-major, ``shape``)."""

    model_config = ConfigDict(extra="forbid")

    shape: list[int]
    lo: float
    hi: float
    u8: str


class StreamBoundary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resolution: int
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    neuron_resolution: int
    output: StreamGrid        # (resolution, resolution); row j is x2 = y_range value j
    # per hidden layer (n_i, r, r), r = neuron_resolution; null over 256 hidden neurons (the page draws none)
    neurons: list[StreamGrid] | None


class StreamLayer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    W: list[list[float | None]]
    b: list[float | None] | None
    dW: list[list[float | None]]
    db: list[float | None] | None


class StreamFrame(BaseModel):
    """What the page redraws after a chunk of training. ``losses`` are the per-step losses since
    the previous frame (evenly strided to at most 100) at ``loss_steps``; ``layers`` is null for
    nets over 20,000 parameters, ``boundary`` for data that is not 2-D and, while playing, on the frames
    between a large net's boundaries (the page keeps the last one). Frames of nets over 20,000
    parameters are under 100,000 bytes (stream.FRAME_BIG_NET_BYTES)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["frame"]
    step: int
    epoch: int
    playing: bool
    train_loss: float | None
    test_loss: float | None
    losses: list[float]
    loss_steps: list[int]
    grad_norms: list[float | None]
    diverged: bool
    diverged_at: int | None
    layers: list[StreamLayer] | None
    boundary: StreamBoundary | None


class StreamError(BaseModel):
    """An error message; ``status`` 409 (playing in another process), 423 (frozen) or 429 (too many
    messages waiting) when set. A refused token or unknown model is followed by a close with code
    4000 + status."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["error"]
    detail: str
    status: int | None = None
