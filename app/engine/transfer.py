"""Export and import a whole model (spec, data, parameters, optimizer, RNG, history) as JSON or .npz.

Both are exact: float64 values survive JSON because Python writes the shortest repr that
round-trips, so training that continues after an import is bit for bit the same.
"""
from __future__ import annotations

import io
import json
import math
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

from .history import History
from .model import Model, _standardization
from .spec import DEFAULT_SPEC, SpecError, normalize_spec

FORMAT = "backprop-playground-model"
VERSION = 1


class TransferError(ValueError):
    """The upload is not an export this version can read; the message says why."""


@dataclass(frozen=True)
class ImportLimits:
    """Element counts an import may declare, checked before any array is read (the caller passes its settings).

    max_params bounds the parameters and each optimizer state array; max_data_cells each data array
    (rows x columns) and the train + test inputs together; max_history each history column (norms:
    max_history x max_layers). An imported history longer than the retention policy keeps (see
    history.py) is thinned as it is read.
    """

    max_params: int = 2_000_000
    max_data_cells: int = 2_000_000
    max_layers: int = 12
    max_history: int = 1_000_000
    max_header_bytes: int = 4 * 2**20

    def of(self, name: str) -> int | None:
        """The element limit of a state_/history_ array name, or None for a name no export has."""
        kind, _, key = name.partition("_")
        if kind == "state":
            if key == "params" or key in _OPT_STATE:
                return self.max_params
            if key in ("perm", "raw_train", "y_train", "raw_test", "y_test"):
                return self.max_data_cells
        elif kind == "history":
            if key == "n_layers":
                return 1
            if key in _HISTORY_COLUMNS:
                return self.max_history * (self.max_layers if key == "norms" else 1)  # norms: one per layer and step
        elif name == "header":
            return self.max_header_bytes
        return None


_OPT_STATE = ("opt_m", "opt_v")  # Adam's m and v, Momentum's v
_HISTORY_COLUMNS = ("step", "loss", "norms", "eval_step", "eval_train", "eval_test")
MAX_MEMBERS = 32


def export_json(model: Model, status: dict | None = None) -> dict:
    """A JSON-able dict: {"format", "version", "spec", "status", "meta", "state": {name: array}, "history": {...}}."""
    meta, arrays = model.state_arrays()
    return {"format": FORMAT, "version": VERSION, "spec": model.spec, "status": status or model.status(),
            "meta": meta, "state": {k: _array_json(v) for k, v in arrays.items()},
            "history": {k: _array_json(v) for k, v in model.history.arrays().items()}}


def import_json(doc: dict, limits: ImportLimits | None = None) -> Model:
    """Rebuild the model an export_json dict describes; TransferError with the reason otherwise.

    Every array's name, dtype and declared shape are checked against ``limits`` before it is built.
    """
    limits = limits or ImportLimits()
    try:
        if doc.get("format") != FORMAT or doc.get("version") != VERSION:
            raise TransferError(f"format must be {FORMAT!r} version {VERSION}")
        _check_document(doc)
        arrays = {k: _array_from(v, f"state_{k}", limits) for k, v in doc["state"].items()}
        for key in _STATE:
            if key not in arrays:
                raise TransferError(f"state.{key}: is missing")
        history = _history_from({k: _array_from(v, f"history_{k}", limits) for k, v in doc["history"].items()})
        _check_totals(arrays, limits)
        _check_spec(doc["spec"])
        _check_arrays(doc["spec"], doc["meta"], arrays)
        _check_rng(doc["meta"]["rng"])
        try:
            model = Model.from_state_arrays(doc["spec"], doc["meta"], arrays, history)
        except KeyError as e:  # an optimizer state array the spec's optimizer needs
            raise TransferError(f"state.{e.args[0]}: is missing (the spec's optimizer needs it)") from None
        _check_model(model, history)
        # the losses (and so GET /models/{id}) come from the imported parameters and data, not from meta
        model.evaluate()
        return model
    except TransferError:
        raise
    except SpecError as e:
        raise TransferError(f"spec.{'.'.join(map(str, e.loc))}: {e.message}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        # every member is checked above; this only keeps an unforeseen case a 422 without Python internals
        raise TransferError("not a complete model export: a member is missing or has the wrong type") from None


def export_npz(model: Model, status: dict | None = None) -> bytes:
    """The same content as export_json, as an .npz archive (state_*, history_* arrays and a JSON header)."""
    meta, arrays = model.state_arrays()
    header = {"format": FORMAT, "version": VERSION, "spec": model.spec, "status": status or model.status(), "meta": meta}
    buf = io.BytesIO()
    np.savez(buf, header=np.frombuffer(json.dumps(header).encode(), np.uint8),
             **{f"state_{k}": v for k, v in arrays.items()},
             **{f"history_{k}": v for k, v in model.history.arrays().items()})
    return buf.getvalue()


def import_npz(blob: bytes, limits: ImportLimits | None = None) -> Model:
    """Rebuild a model from export_npz bytes.

    Nothing is unpacked before it is checked: first every member's name, then its .npy header (dtype and
    shape, read with numpy.lib.format from the first bytes of the member) against ``limits`` and against
    the member's declared size; only then is any array's data read.
    """
    limits = limits or ImportLimits()
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise TransferError(f"has {len(infos)} members; an export has at most {MAX_MEMBERS}")
            plan = [(info, _npy_header(zf, info, limits)) for info in infos]
            names = [info.filename[:-4] for info, _ in plan]
            if "header" not in names:
                raise TransferError("has no header member")
            _check_totals({n[6:]: h[1] for n, (_, h) in zip(names, plan) if n.startswith("state_")}, limits)
            files = {}
            for name, (info, _) in zip(names, plan):
                with zf.open(info) as f:
                    files[name] = np.lib.format.read_array(f, allow_pickle=False)
        header = json.loads(files.pop("header").tobytes())
        if not isinstance(header, dict):
            raise TransferError("the header member is not a JSON object")
    except TransferError as e:
        raise TransferError(f"not an .npz model export from GET /export?format=npz: {e}") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError,
            UnicodeDecodeError):
        raise TransferError("not an .npz model export from GET /export?format=npz") from None
    doc = {**header, "state": {k[6:]: v for k, v in files.items() if k.startswith("state_")},
           "history": {k[8:]: v for k, v in files.items() if k.startswith("history_")}}
    return import_json(doc, limits)


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limits: ImportLimits) -> tuple:
    """(dtype, shape) of one member from its .npy header, refused when the name, dtype or size is not allowed."""
    name = info.filename[:-4] if info.filename.endswith(".npy") else None
    limit = None if name is None else limits.of(name)
    if limit is None:
        raise TransferError(f"member {info.filename!r} is not part of a model export")
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _fortran, dtype = read(f)
        offset = f.tell()
    _check_declared(name, dtype.str, shape, limit)
    size = math.prod(shape) * dtype.itemsize
    if offset + size != info.file_size:
        raise TransferError(f"member {name}: declares {size} bytes of data, the member holds {info.file_size - offset}")
    return dtype, shape


def _check_declared(name: str, dtype: str, shape, limit: int) -> None:
    """A dtype from the allowed set and a shape of at most ``limit`` elements (before anything is allocated)."""
    if dtype not in _DTYPES:
        raise TransferError(f"{name}: dtype {dtype!r} is not allowed")
    if not isinstance(shape, (list, tuple)) or len(shape) > 2 or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise TransferError(f"{name}: shape must be a list of at most 2 sizes >= 0")
    count = math.prod(shape)
    if count > limit:
        raise TransferError(f"{name}: declares {count} elements; the limit is {limit}")


def _check_totals(arrays: dict, limits: ImportLimits) -> None:
    """The train and test inputs together within max_data_cells (arrays: arrays or shapes)."""
    cells = sum(math.prod(getattr(arrays.get(k), "shape", arrays.get(k)) or ()) for k in ("raw_train", "raw_test")
                if k in arrays)
    if cells > limits.max_data_cells:
        raise TransferError(f"state.raw_train, raw_test: {cells} cells of data; the limit is {limits.max_data_cells}")


# -- checks: an import is client input, so nothing in it may fail later, at train or read time ------------
_INT = (int, np.integer)
_MEMBERS = ("spec", "meta", "state", "history")  # "status" is written for readers; an import recomputes it
_META = ("step", "epoch", "cursor", "opt_t", "diverged_at", "train_loss", "test_loss", "rng")
_STATE = ("params", "perm", "raw_train", "y_train", "raw_test", "y_test")


def _check_document(doc: dict) -> None:
    """The members an export has, each an object, and meta's keys: named when missing or of the wrong type."""
    for key in _MEMBERS:
        if key not in doc:
            raise TransferError(f"{key}: is missing")
        if not isinstance(doc[key], dict):
            raise TransferError(f"{key} must be an object" + (" of arrays" if key in ("state", "history") else ""))
    for key in _META:
        if key not in doc["meta"]:
            raise TransferError(f"meta.{key}: is missing")


def _history_from(arrays: dict) -> History:
    for key in ("n_layers", "loss", "norms", "eval_step", "eval_train", "eval_test"):
        if key not in arrays:
            raise TransferError(f"history.{key}: is missing")
    try:
        return History.from_arrays(arrays)
    except (ValueError, TypeError) as e:
        raise TransferError(str(e)) from None  # History's messages name the column


def _check_rng(state) -> None:
    """meta.rng must be a state the model's generator accepts (tried on a throwaway generator)."""
    try:
        np.random.default_rng().bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError):
        raise TransferError("meta.rng: not a random generator state as the engine writes it") from None


def _check_spec(spec: dict) -> None:
    """The spec must be one the engine normalized: re-normalizing it changes nothing."""
    if not isinstance(spec, dict) or not isinstance(spec.get("data"), dict):
        raise TransferError("spec: not a model spec")
    data = spec["data"]
    custom = data.get("source") == "custom"
    _check_spec_types(spec, custom)
    probe = {k: v for k, v in spec.items() if k not in ("data", "input_size")}
    try:
        normalized = normalize_spec({**probe, "data": {"X": [[0.0]], "y": [[0.0]]} if custom else data})
    except (TypeError, KeyError, AttributeError, IndexError):  # SpecError (a ValueError) names its field itself
        raise TransferError("spec: not a model spec as the engine writes it") from None
    for key in DEFAULT_SPEC:
        if key not in ("data", "input_size") and normalized[key] != spec.get(key):
            raise TransferError(f"spec.{key}: not as the engine writes it")
    if not isinstance(spec.get("input_size"), _INT) or isinstance(spec["input_size"], bool) or spec["input_size"] < 1:
        raise TransferError("spec.input_size: must be an integer >= 1")
    if not custom:
        if normalized["data"] != data:
            raise TransferError("spec.data: not as the engine writes it")
        for key, kind in (("samples", _INT), ("noise", (int, float)), ("test_fraction", (int, float)), ("seed", _INT)):
            if not isinstance(data[key], kind) or isinstance(data[key], bool) or not 0 <= data[key] < 2**53:
                raise TransferError(f"spec.data.{key}: must be a number >= 0")


_SPEC_TYPES = {"layers": (list, "a list of layers"), "loss": (str, "a string"), "init": (str, "a string"),
               "dtype": (str, "a string"), "seed": (int, "an integer"), "optimizer": (dict, "an object"),
               "regularization": (dict, "an object")}


def _check_spec_types(spec: dict, custom: bool) -> None:
    """The JSON types normalize_spec expects (it checks values, after a schema has checked types)."""
    for key, (kind, what) in _SPEC_TYPES.items():
        v = spec.get(key)
        if key in spec and (not isinstance(v, kind) or isinstance(v, bool)):
            raise TransferError(f"spec.{key}: must be {what}")
    if "seed" in spec and not 0 <= spec["seed"] < 2**31:
        raise TransferError("spec.seed: must be an integer from 0 to 2147483647")
    for i, layer in enumerate(spec.get("layers") or ()):
        if not isinstance(layer, dict):
            raise TransferError(f"spec.layers.{i}: must be an object")
    for key, sub in (("optimizer", "name"), ("regularization", "kind")):
        if sub in spec.get(key, {}) and not isinstance(spec[key][sub], str):
            raise TransferError(f"spec.{key}.{sub}: must be a string")
    features = spec["data"].get("features")
    if not custom and not (isinstance(features, list) and all(isinstance(f, str) for f in features)):
        raise TransferError("spec.data.features: must be a list of feature names")


def _check_arrays(spec: dict, meta: dict, arrays: dict) -> None:
    """Shapes and values before anything is copied (NumPy would broadcast a wrong shape silently)."""
    for key in ("step", "epoch", "cursor", "opt_t"):
        if not isinstance(meta[key], _INT) or isinstance(meta[key], bool) or not 0 <= meta[key] < 2**53:
            raise TransferError(f"meta.{key}: must be an integer >= 0")
    d = meta["diverged_at"]
    if d is not None and (not isinstance(d, _INT) or isinstance(d, bool) or not 0 < d <= meta["step"]):
        raise TransferError("meta.diverged_at: must be null or an integer from 1 to meta.step")
    for key in ("train_loss", "test_loss"):
        v = meta[key]
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v)):
            raise TransferError(f"meta.{key}: must be null or a finite number")
    for key in ("raw_train", "y_train", "raw_test", "y_test", "params"):
        a = arrays[key]
        if a.dtype.kind != "f" or not np.isfinite(a).all():
            raise TransferError(f"state.{key}: must hold finite floats")
    n = len(arrays["raw_train"])
    if n < 1 or arrays["y_train"].ndim != 2 or arrays["raw_train"].ndim != 2 or len(arrays["y_train"]) != n:
        raise TransferError("state.raw_train, y_train: need the same number (>= 1) of rows")
    perm = arrays["perm"]
    if perm.dtype.kind not in "iu" or perm.shape != (n,) or not np.array_equal(np.sort(perm), np.arange(n)):
        raise TransferError(f"state.perm: must be a permutation of the {n} training rows")
    if meta["cursor"] >= n:
        raise TransferError(f"meta.cursor: must be below the {n} training rows")
    sizes = [spec["input_size"]] + [layer["units"] for layer in spec["layers"]]
    n_params = sum(o * (i + bool(spec["bias"])) for i, o in zip(sizes[:-1], sizes[1:]))
    for key, a in arrays.items():
        if (key == "params" or key.startswith("opt_")) and a.shape != (n_params,):
            raise TransferError(f"state.{key}: the spec's network has {n_params} parameters, got shape {list(a.shape)}")
        if key.startswith("opt_") and (a.dtype.kind != "f" or not np.isfinite(a).all()):
            raise TransferError(f"state.{key}: must hold finite floats")


def _check_model(model: Model, history: History) -> None:
    """What only the rebuilt model can check: data against the layers and loss, parameter and state shapes."""
    model._check_data(model.spec["layers"][-1]["units"])
    if model.features is None:
        stats = model.spec["data"].get("standardize")
        if stats is not None and _standardization(stats, model.raw_train) != stats:
            raise TransferError("spec.data.standardize: not as the engine writes it")
        d = model.spec["data"]
        if (d.get("n_train"), d.get("n_test")) != (len(model.raw_train), len(model.raw_test)):
            raise TransferError("spec.data.n_train, n_test: do not match the data")
    if history.n_layers != model.net.n_layers:
        raise TransferError(f"history: has {history.n_layers} layers, the network {model.net.n_layers}")


def _array_json(a: np.ndarray) -> dict:
    """JSON has no NaN or inf, so those become the strings "nan" / "inf" / "-inf" (NumPy parses them back)."""
    a = np.asarray(a)
    flat = a.ravel()
    data = flat.tolist()
    if a.dtype.kind == "f" and not np.isfinite(flat).all():
        data = [v if np.isfinite(v) else str(v) for v in data]
    return {"dtype": a.dtype.str, "shape": list(a.shape), "data": data}


_DTYPES = {"<f8", "<f4", "<i8", "<i4", "<u1", "|u1"}


def _array_from(d, member: str, limits: ImportLimits) -> np.ndarray:
    """An array from {"dtype", "shape", "data"} (or an array read from an .npz), checked before it is built."""
    limit, name = limits.of(member), member.partition("_")[2]
    if limit is None:
        raise TransferError(f"{member.replace('_', '.', 1)}: is not part of a model export")
    if isinstance(d, np.ndarray):
        _check_declared(name, d.dtype.str, list(d.shape), limit)
        return d
    if not isinstance(d, dict) or not isinstance(d.get("data"), list) or not isinstance(d.get("dtype"), str):
        raise TransferError(f"{name}: must be {{\"dtype\", \"shape\", \"data\"}}")
    shape = d.get("shape")
    _check_declared(name, d["dtype"], shape, limit)
    if len(d["data"]) != math.prod(shape):
        raise TransferError(f"{name}: shape {shape} needs {math.prod(shape)} values, data has {len(d['data'])}")
    if not all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in d["data"]):
        raise TransferError(f"{name}: data must be a flat list of numbers")
    a = np.asarray(d["data"], dtype=np.dtype(d["dtype"]))
    return a.reshape(shape)
