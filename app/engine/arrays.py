"""The engine's one check of the arrays a caller hands it: numbers, rectangular, finite."""
from __future__ import annotations

import numpy as np


class ArrayError(ValueError):
    """Not a finite number array. ``kind``: "not_numbers", "ragged" or "non_finite"; ``index``: the first
    non-finite entry's index (a tuple) for "non_finite", else None."""

    def __init__(self, kind: str, index: tuple | None = None):
        super().__init__(kind)
        self.kind, self.index = kind, index


def as_array(value, copy: bool = False) -> np.ndarray:
    """Nested lists (or an array) of finite numbers, any shape, as float64: a copy with ``copy``, else an array
    that may be the caller's own. ArrayError for text, objects, ragged lists, NaN and infinities."""
    if isinstance(value, (str, bytes, dict)):
        raise ArrayError("not_numbers")
    try:
        arr = np.array(value, dtype=np.float64) if copy else np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ArrayError("ragged" if "inhomogeneous" in str(e) else "not_numbers") from None
    if not np.isfinite(arr).all():
        raise ArrayError("non_finite", tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0]))
    return arr
