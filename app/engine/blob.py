"""A minimal binary container for a JSON header and named arrays: faster than .npz for frequent saves.

Layout: b"BPG1", a 4-byte little-endian header length, the UTF-8 JSON header
{"meta": ..., "arrays": [[name, dtype, shape], ...]}, then each array's bytes in order.
"""
from __future__ import annotations

import json

import numpy as np

MAGIC = b"BPG1"


def pack(meta: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """Serialize meta (JSON-able) and arrays (any shape, numeric dtypes)."""
    # np.require keeps 0-d arrays 0-d (ascontiguousarray would make them 1-d)
    arrays = {k: np.require(v, requirements="C") for k, v in arrays.items()}
    header = json.dumps({"meta": meta, "arrays": [[k, v.dtype.str, list(v.shape)] for k, v in arrays.items()]})
    hb = header.encode()
    return b"".join([MAGIC, len(hb).to_bytes(4, "little"), hb, *(v.tobytes() for v in arrays.values())])


def unpack(blob: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """Inverse of pack; ValueError if the blob is not one."""
    if blob[:4] != MAGIC:
        raise ValueError("not a BPG1 blob")
    n = int.from_bytes(blob[4:8], "little")
    header = json.loads(blob[8:8 + n])
    offset, arrays = 8 + n, {}
    for name, dtype, shape in header["arrays"]:
        dt = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        arrays[name] = np.frombuffer(blob, dt, count, offset).reshape(shape).copy()
        offset += count * dt.itemsize
    if offset != len(blob):
        raise ValueError("BPG1 blob has trailing or missing bytes")
    return header["meta"], arrays
