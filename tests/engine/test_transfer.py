"""Export and import (app/engine/transfer.py): exact round trips in JSON and .npz, and imports checked
before they are unpacked: member names, dtypes and declared shapes against the caller's limits, so a
compressed bomb or a member declaring a huge shape is refused without allocating it."""
from __future__ import annotations

import functools
import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest

from app.engine import Model
from app.engine.transfer import (ImportLimits, TransferError, export_json, export_npz, import_json,
                                 import_npz)

SPEC = {"layers": [{"units": 5, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
        "data": {"dataset": "xor", "samples": 60}}
BOMB_ELEMENTS = 100_000_000


@pytest.fixture(scope="module")
def trained() -> Model:
    m = Model(SPEC)
    m.train(57)
    return m


def _continue(m: Model, steps: int = 40) -> tuple:
    r = m.train(steps)
    return np.array(m.net.params), r.losses


def test_json_round_trip_continues_bit_for_bit(trained):
    doc = json.loads(json.dumps(export_json(trained)))  # through real JSON text
    a, b = import_json(doc), Model.from_bytes(trained.spec, trained.to_bytes(), trained.history.to_bytes())
    assert a.step == trained.step == 57
    np.testing.assert_array_equal(a.history.columns()["step"], np.arange(1, 58))
    pa, la = _continue(a)
    pb, lb = _continue(b)
    np.testing.assert_array_equal(pa, pb)
    assert la == lb


def test_npz_round_trip_continues_bit_for_bit(trained):
    a = import_npz(export_npz(trained))
    b = Model.from_bytes(trained.spec, trained.to_bytes(), trained.history.to_bytes())
    for key in ("loss", "norms", "eval_step", "eval_train"):
        np.testing.assert_array_equal(a.history.columns()[key], trained.history.columns()[key])
    pa, la = _continue(a)
    pb, lb = _continue(b)
    np.testing.assert_array_equal(pa, pb)
    assert la == lb


def test_an_export_from_before_the_step_column_imports(trained):
    doc = export_json(trained)
    del doc["history"]["step"]
    m = import_json(doc)
    np.testing.assert_array_equal(m.history.columns()["step"], np.arange(1, 58))


def _members(blob: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _zip(members: dict[str, bytes], extra=None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if extra is not None:
            extra(zf)
    return buf.getvalue()


def _zeros_member(name: str, n: int):
    """A member holding np.zeros(n) written in 8 MB pieces, so the test itself never holds the array."""
    def write(zf: zipfile.ZipFile) -> None:
        with zf.open(name, "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (n,)})
            piece = bytes(8 * 2**20)
            left = 8 * n
            while left:
                f.write(piece[:min(left, len(piece))])
                left -= min(left, len(piece))
    return write


def _header_only(shape, descr="<f8", data: bytes = b"\0" * 8) -> bytes:
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": descr, "fortran_order": False, "shape": shape})
    return f.getvalue() + data


@functools.lru_cache(maxsize=1)
def npz_bomb() -> bytes:
    """An export of a small model with one extra member, np.zeros(100_000_000): 800 MB, about 3.5 MB compressed.
    Built once per test process (the API tests use it too)."""
    m = Model(SPEC)
    m.train(5)
    return _zip(_members(export_npz(m)), _zeros_member("state_extra.npy", BOMB_ELEMENTS))


def _peak_while(fn) -> int:
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.slow
def test_a_compressed_bomb_is_refused_before_its_data_is_read(monkeypatch):
    blob = npz_bomb()
    msg = "member 'state_extra.npy' is not part of a model export"
    assert len(blob) < 4 * 2**20  # 800 MB of zeros, compressed
    reads = []
    real = np.lib.format.read_array
    monkeypatch.setattr(np.lib.format, "read_array", lambda *a, **k: reads.append(1) or real(*a, **k))

    def attempt():
        with pytest.raises(TransferError) as e:
            import_npz(blob)
        assert str(e.value) == f"not an .npz model export from GET /export?format=npz: {msg}"

    assert _peak_while(attempt) < 8 * 2**20  # the array alone would be 800 MB
    assert reads == []  # refused before any member's data was read


def test_a_known_member_past_its_limit_is_refused_from_its_header(trained, monkeypatch):
    members = _members(export_npz(trained))
    members["history_loss.npy"] = _header_only((3_000_000,), "<f4", bytes(12_000_000))
    blob = _zip(members)
    reads = []
    real = np.lib.format.read_array
    monkeypatch.setattr(np.lib.format, "read_array", lambda *a, **k: reads.append(1) or real(*a, **k))
    with pytest.raises(TransferError, match="history_loss: declares 3000000 elements; the limit is 1000000"):
        import_npz(blob)
    assert reads == []


@pytest.mark.parametrize("member,shape,descr,msg", [
    ("history_loss.npy", (10**12,), "<f4", "history_loss: declares 1000000000000 elements; the limit is 1000000"),
    ("state_params.npy", (3, 10**6), "<f8", "state_params: declares 3000000 elements; the limit is 2000000"),
    ("state_params.npy", (21,), "|O", "state_params: dtype '|O' is not allowed"),
    ("state_params.npy", (21,), "<f8", "member state_params: declares 168 bytes of data, the member holds 8"),
    ("state_raw_train.npy", (2, 2, 2), "<f8", "state_raw_train: shape must be a list of at most 2 sizes >= 0"),
])
def test_a_member_declaring_a_wrong_or_huge_shape_is_refused(trained, member, shape, descr, msg):
    members = _members(export_npz(trained))
    members[member] = _header_only(shape, descr)
    with pytest.raises(TransferError) as e:
        import_npz(_zip(members))
    assert msg in str(e.value)


def test_limits_come_from_the_caller(trained):
    blob = export_npz(trained)
    with pytest.raises(TransferError, match="state_params: declares 21 elements; the limit is 10"):
        import_npz(blob, ImportLimits(max_params=10))
    with pytest.raises(TransferError, match="state.raw_train, raw_test: 120 cells of data; the limit is 100"):
        import_npz(blob, ImportLimits(max_data_cells=100))
    with pytest.raises(TransferError, match="state.raw_train, raw_test: 120 cells of data; the limit is 100"):
        import_json(export_json(trained), ImportLimits(max_data_cells=100))
    with pytest.raises(TransferError, match="raw_train: declares 60 elements; the limit is 50"):
        import_json(export_json(trained), ImportLimits(max_data_cells=50))


@pytest.mark.parametrize("path,value,msg", [
    (("history", "loss"), {"dtype": "<f4", "shape": [10**12], "data": [0.0]},
     "loss: declares 1000000000000 elements; the limit is 1000000"),
    (("state", "params"), {"dtype": "<f8", "shape": [21], "data": [0.0] * 3},
     "params: shape [21] needs 21 values, data has 3"),
    (("state", "extra"), {"dtype": "<f8", "shape": [1], "data": [0.0]}, "state.extra: is not part of a model export"),
    (("state", "params"), {"dtype": "<f8", "shape": [21], "data": [[0.0]] * 21}, "params: data must be a flat list"),
    (("state", "params"), {"dtype": "|O", "shape": [21], "data": [0.0] * 21}, "params: dtype '|O' is not allowed"),
])
def test_json_imports_get_the_same_checks(trained, path, value, msg):
    doc = export_json(trained)
    doc[path[0]][path[1]] = value
    with pytest.raises(TransferError) as e:
        import_json(doc)
    assert msg in str(e.value)
