"""Pieces of the forward migrations shared by the backends (each backend runs its own steps on open).

Format 1 (release 5b7985d) kept an uploaded dataset as the setting ``dataset.<id>`` holding JSON lists;
format 2 keeps it as a dataset record: JSON meta plus one blob of little-endian float64, X then y.
"""
from __future__ import annotations

import sys
import time
from array import array
from typing import Iterator


def pack_floats(rows: list[list[float]]) -> bytes:
    """Row-major little-endian float64 bytes of a rectangular list of rows."""
    a = array("d", (float(v) for row in rows for v in row))
    if sys.byteorder == "big":
        a.byteswap()
    return a.tobytes()


def datasets_from_settings(settings: dict[str, dict]) -> Iterator[tuple[str, dict, bytes, float]]:
    """(id, meta, blob, created_at) for every format-1 ``dataset.<id>`` setting in ``settings``."""
    for key, value in settings.items():
        if not key.startswith("dataset.") or not isinstance(value, dict) or "X" not in value:
            continue
        X, y = value["X"], value["y"]
        meta = {"rows": len(X), "x_columns": len(X[0]) if X else 0, "y_columns": len(y[0]) if y else 0,
                "input_columns": value.get("input_columns"), "target_columns": value.get("target_columns"),
                "classes": value.get("classes"), "encoding": "f8le-rows"}
        yield key[len("dataset."):], meta, pack_floats(X) + pack_floats(y), time.time()
