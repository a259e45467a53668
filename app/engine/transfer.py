"""Export and import a whole model (spec, data, parameters, optimizer, RNG, history) as JSON or .npz.

Both are exact: float64 values survive JSON because Python writes the shortest repr that
round-trips, so training that continues after an import is bit for bit the same.
"""
from __future__ import annotations

import io
import json

import numpy as np

from .history import History
from .model import Model

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
        return Model.from_state_arrays(doc["spec"], doc["meta"], arrays, history)
    except TransferError:
        raise
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
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise TransferError("not an .npz model export from GET /export?format=npz") from None
    return import_json({**doc, "state": {k: _array_json(v) for k, v in doc["state"].items()},
                        "history": {k: _array_json(v) for k, v in doc["history"].items()}})


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
