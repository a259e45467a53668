"""Export and import a whole model (spec, data, parameters, optimizer, RNG, history) as JSON or .npz.

Both are exact: float64 values survive JSON because Python writes the shortest repr that
round-trips, so training that continues after an import is bit for bit the same.
"""
from __future__ import annotations

import io
import json
import zipfile
import zlib

import numpy as np

from .history import History
from .model import Model, _standardization
from .spec import DEFAULT_SPEC, SpecError, normalize_spec

FORMAT = "backprop-playground-model"
VERSION = 1


class TransferError(ValueError):
    """The upload is not an export this version can read; the message says why."""


def export_json(model: Model, status: dict | None = None) -> dict:
    """A JSON-able dict: {"format", "version", "spec", "status", "meta", "state": {name: array}, "history": {...}}."""
    meta, arrays = model.state_arrays()
    return {"format": FORMAT, "version": VERSION, "spec": model.spec, "status": status or model.status(),
            "meta": meta, "state": {k: _array_json(v) for k, v in arrays.items()},
            "history": {k: _array_json(v) for k, v in model.history.arrays().items()}}


def import_json(doc: dict) -> Model:
    """Rebuild the model an export_json dict describes; TransferError with the reason otherwise."""
    try:
        if doc.get("format") != FORMAT or doc.get("version") != VERSION:
            raise TransferError(f"format must be {FORMAT!r} version {VERSION}")
        arrays = {k: _array_from(v, k) for k, v in doc["state"].items()}
        history = History.from_arrays({k: _array_from(v, k) for k, v in doc["history"].items()})
        _check_spec(doc["spec"])
        _check_arrays(doc["spec"], doc["meta"], arrays)
        model = Model.from_state_arrays(doc["spec"], doc["meta"], arrays, history)
        _check_model(model, history)
        return model
    except TransferError:
        raise
    except SpecError as e:
        raise TransferError(f"spec.{'.'.join(map(str, e.loc))}: {e.message}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise TransferError(f"not a complete model export: {type(e).__name__} {e}") from None


def export_npz(model: Model, status: dict | None = None) -> bytes:
    """The same content as export_json, as an .npz archive (state_*, history_* arrays and a JSON header)."""
    meta, arrays = model.state_arrays()
    header = {"format": FORMAT, "version": VERSION, "spec": model.spec, "status": status or model.status(), "meta": meta}
    buf = io.BytesIO()
    np.savez(buf, header=np.frombuffer(json.dumps(header).encode(), np.uint8),
             **{f"state_{k}": v for k, v in arrays.items()},
             **{f"history_{k}": v for k, v in model.history.arrays().items()})
    return buf.getvalue()


def import_npz(blob: bytes) -> Model:
    """Rebuild a model from export_npz bytes."""
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            files = {k: z[k] for k in z.files}
        header = json.loads(files.pop("header").tobytes())
        doc = {**header, "state": {k[6:]: v for k, v in files.items() if k.startswith("state_")},
               "history": {k[8:]: v for k, v in files.items() if k.startswith("history_")}}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError):
        raise TransferError("not an .npz model export from GET /export?format=npz") from None
    return import_json({**doc, "state": {k: _array_json(v) for k, v in doc["state"].items()},
                        "history": {k: _array_json(v) for k, v in doc["history"].items()}})


# -- checks: an import is client input, so nothing in it may fail later, at train or read time ------------
_INT = (int, np.integer)


def _check_spec(spec: dict) -> None:
    """The spec must be one the engine normalized: re-normalizing it changes nothing."""
    if not isinstance(spec, dict) or not isinstance(spec.get("data"), dict):
        raise TransferError("spec: not a model spec")
    data = spec["data"]
    custom = data.get("source") == "custom"
    probe = {k: v for k, v in spec.items() if k not in ("data", "input_size")}
    normalized = normalize_spec({**probe, "data": {"X": [[0.0]], "y": [[0.0]]} if custom else data})
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


def _check_arrays(spec: dict, meta: dict, arrays: dict) -> None:
    """Shapes and values before anything is copied (NumPy would broadcast a wrong shape silently)."""
    for key in ("step", "epoch", "cursor", "opt_t"):
        if not isinstance(meta[key], _INT) or isinstance(meta[key], bool) or not 0 <= meta[key] < 2**53:
            raise TransferError(f"meta.{key}: must be an integer >= 0")
    d = meta["diverged_at"]
    if d is not None and (not isinstance(d, _INT) or isinstance(d, bool) or not 0 < d < 2**53):
        raise TransferError("meta.diverged_at: must be null or an integer >= 1")
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


def _array_from(d: dict, name: str) -> np.ndarray:
    if d["dtype"] not in _DTYPES:
        raise TransferError(f"{name}: dtype {d['dtype']!r} is not allowed")
    a = np.asarray(d["data"], dtype=np.dtype(d["dtype"]))
    return a.reshape([int(n) for n in d["shape"]])
