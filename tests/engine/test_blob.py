"""The binary state container round-trips every array exactly and refuses what it did not write."""
import numpy as np
import pytest

from app.engine import blob


def test_round_trip_keeps_values_dtypes_and_shapes():
    arrays = {"scalar": np.array(3), "f64": np.random.default_rng(0).normal(size=(4, 3)),
              "f32": np.arange(5, dtype=np.float32), "empty": np.zeros((0, 2)), "perm": np.array([2, 0, 1]),
              "strided": np.arange(12.0).reshape(3, 4)[:, ::2]}
    meta, out = blob.unpack(blob.pack({"step": 7, "rng": {"state": 2**100}}, arrays))
    assert meta == {"step": 7, "rng": {"state": 2**100}}
    assert list(out) == list(arrays)
    for k, v in arrays.items():
        assert out[k].dtype == v.dtype and out[k].shape == v.shape
        np.testing.assert_array_equal(out[k], v)
    out["f64"][0, 0] = 1.0  # unpacked arrays are writable copies, not views of the blob


@pytest.mark.parametrize("bad", [b"", b"PK\x03\x04garbage", blob.pack({}, {"x": np.arange(3)}) + b"\0",
                                 blob.pack({}, {"x": np.arange(3)})[:-1]])
def test_refuses_other_bytes(bad):
    with pytest.raises(ValueError):
        blob.unpack(bad)
