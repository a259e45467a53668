"""Uploaded CSV datasets, kept in the store so every process sees them, and the spec's data resolved from them."""
from __future__ import annotations

import secrets

import numpy as np

from app.config import Settings
from app.engine.csvdata import CsvData, CsvError, one_hot_labels, parse_csv, standardization
from app.store import Store

from .errors import Kind, NotFound, OverLimit, Unprocessable


def encode(X: np.ndarray, y: np.ndarray) -> bytes:
    """X then y as row-major little-endian float64: 8 bytes a value (JSON lists took about 20)."""
    return np.ascontiguousarray(X, "<f8").tobytes() + np.ascontiguousarray(y, "<f8").tobytes()


def decode(meta: dict, data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(X (rows, x_columns), y (rows, y_columns)) from encode()'s bytes (copies: the blob can be dropped)."""
    n, p, k = meta["rows"], meta["x_columns"], meta["y_columns"]
    flat = np.frombuffer(data, "<f8")
    if flat.size != n * (p + k):
        raise ValueError(f"dataset blob holds {flat.size} values, expected {n * (p + k)}")
    return flat[:n * p].reshape(n, p).astype(np.float64), flat[n * p:].reshape(n, k).astype(np.float64)


def target_kind(y: np.ndarray, classes) -> str:
    """What the targets y (rows, k) are, for the output layer that fits them: "classes" (one-hot of
    `classes`: softmax, cross_entropy), "binary" (one column of 0 and 1: sigmoid, bce) or "numbers"
    (k columns: identity, mse)."""
    if classes:
        return "classes"
    return "binary" if y.shape[1] == 1 and bool(np.isin(y, (0.0, 1.0)).all()) else "numbers"


def valid_dataset_id(dataset_id) -> bool:
    return isinstance(dataset_id, str) and 0 < len(dataset_id) <= 48 and all(c.isalnum() or c in "-_" for c in dataset_id)


class Datasets:
    def __init__(self, store: Store, settings: Settings):
        self.store, self.settings = store, settings

    def parse(self, *, text: str, inputs=None, targets=None, loc: tuple = ("body", "csv")) -> CsvData:
        """Parse an uploaded CSV, or Unprocessable naming the line the problem is on."""
        try:
            return parse_csv(text, inputs=inputs, targets=targets, max_rows=self.settings.max_csv_rows,
                             max_columns=self.settings.max_units)
        except CsvError as e:
            raise Unprocessable(loc if e.field == "file" else (*loc[:-1], e.field), e.message) from None

    def upload(self, *, text: str, inputs=None, targets=None, one_hot: bool = False,
               standardize: bool = False) -> tuple[str, CsvData, dict | None]:
        """Parse and keep an upload: (dataset id, the parsed data, {"mean", "std"} of its inputs or None).

        ``one_hot`` turns one target column of integer labels into one column per class (at most
        max_units); ``standardize`` reports the inputs' statistics, checked before anything is kept. The
        stored inputs stay raw: a model standardizes with its own training rows. Unprocessable at
        ("body", "csv"), ("body", "one_hot") or ("body", "standardize"); OverLimit as ``save``.
        """
        parsed = self.parse(text=text, inputs=inputs, targets=targets)
        if one_hot and parsed.classes is None:
            try:
                parsed.y, parsed.classes = one_hot_labels(parsed.y, parsed.target_columns, self.settings.max_units)
            except CsvError as e:
                raise Unprocessable(("body", "one_hot"), e.message) from None
        stats = None
        if standardize:
            try:
                stats = standardization(parsed.X, parsed.input_columns)
            except CsvError as e:
                raise Unprocessable(("body", "standardize"), e.message) from None
        return self.save(parsed), parsed, stats

    def save(self, parsed: CsvData) -> str:
        """Keep a parsed upload in the store, compactly; return its id.

        Within max_datasets and max_dataset_bytes (all datasets together): the oldest datasets are
        evicted to make room (models built from them keep their own copy of the rows). One dataset
        larger than the whole budget is OverLimit TOO_LARGE, and nothing is stored.
        """
        s = self.settings
        data = encode(parsed.X, parsed.y)
        if len(data) > s.max_dataset_bytes:
            raise OverLimit(Kind.TOO_LARGE, f"the dataset needs {len(data)} bytes; the server keeps at most "
                                 f"{s.max_dataset_bytes} bytes of datasets (PLAYGROUND_MAX_DATASET_BYTES)")
        dataset_id = secrets.token_hex(12)
        meta = {"rows": int(parsed.X.shape[0]), "x_columns": int(parsed.X.shape[1]),
                "y_columns": int(parsed.y.shape[1]), "input_columns": parsed.input_columns,
                "target_columns": parsed.target_columns, "classes": parsed.classes, "encoding": "f8le-rows"}
        self.store.put_dataset(dataset_id, meta, data)
        self._evict(keep=dataset_id)
        return dataset_id

    def _evict(self, keep: str) -> None:
        """Oldest first, until the count and the bytes are within the quotas."""
        s = self.settings
        rows = self.store.list_datasets()
        count, total = len(rows), sum(n for _, _, n in rows)
        for dataset_id, _, n in rows:
            if count <= s.max_datasets and total <= s.max_dataset_bytes:
                break
            if dataset_id != keep and self.store.delete_dataset(dataset_id):
                count, total = count - 1, total - n

    def load(self, dataset_id) -> dict | None:
        """{"X", "y" (arrays), "input_columns", "target_columns", "classes"} or None."""
        found = self.store.get_dataset(dataset_id) if valid_dataset_id(dataset_id) else None
        if not found:
            return None
        meta, data = found
        X, y = decode(meta, data)
        return {**meta, "X": X, "y": y}

    def describe(self, dataset_id) -> dict:
        """{"id", "rows", "input_columns", "target_columns", "classes", "target_kind"} of a stored upload
        (its rows are decoded once to tell the targets' kind); NotFound when no upload has this id."""
        ds = self.load(dataset_id)
        if not ds:
            raise NotFound("no uploaded dataset has this id")
        return {"id": dataset_id, "rows": ds["rows"], "target_kind": target_kind(ds["y"], ds["classes"]),
                **{k: ds[k] for k in ("input_columns", "target_columns", "classes")}}

    def resolve(self, spec: dict) -> dict:
        """Turn {"dataset_id"} or {"csv"} data into the engine's custom X/y split (seeded)."""
        data = spec.get("data") or {}
        if "dataset_id" not in data and "csv" not in data:
            return spec
        clash = sorted(set(data) - {"dataset_id", "csv", "inputs", "targets", "standardize", "test_fraction", "seed"})
        if clash or ("dataset_id" in data and "csv" in data):
            raise Unprocessable(("body", "data", clash[0] if clash else "csv"),
                                "cannot be combined with uploaded data (dataset_id or csv)")
        if "csv" in data:
            parsed = self.parse(text=data["csv"], inputs=data.get("inputs"), targets=data.get("targets"),
                                loc=("body", "data", "csv"))
            ds = {"X": parsed.X, "y": parsed.y, "input_columns": parsed.input_columns,
                  "target_columns": parsed.target_columns, "classes": parsed.classes}
        else:
            ds = self.load(data["dataset_id"])
            if not ds:
                raise Unprocessable(("body", "data", "dataset_id"), "no uploaded dataset has this id")
        X, y = np.asarray(ds["X"], np.float64), np.asarray(ds["y"], np.float64)
        order = np.random.default_rng(data.get("seed", 0)).permutation(len(X))
        n_test = min(int(len(X) * data.get("test_fraction", 0.2)), len(X) - 1)
        test, train = order[:n_test], order[n_test:]
        info = {"dataset_id": data.get("dataset_id"), **{k: ds[k] for k in ("input_columns", "target_columns", "classes")}}
        custom = {"X": X[train], "y": y[train], "standardize": bool(data.get("standardize")), "info": info}
        if n_test:
            custom.update(X_test=X[test], y_test=y[test])
        return {**spec, "data": custom}
