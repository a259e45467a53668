"""app/engine/arrays.py: the engine's one check of caller arrays, and the messages each caller makes of it."""
from __future__ import annotations

import numpy as np
import pytest

from app.engine import Model, SpecError
from app.engine.arrays import ArrayError, as_array
from app.engine.checker import as_array as checked


@pytest.mark.parametrize("value,kind,index", [("1.5", "not_numbers", None), ({"a": 1}, "not_numbers", None),
                                              ([[1, 2], [3]], "ragged", None), ([[1, 2], [3, "x"]], "not_numbers", None),
                                              ([[1.0, 2.0], [3.0, float("inf")]], "non_finite", (1, 1))])
def test_refusals_say_what_is_wrong(value, kind, index):
    with pytest.raises(ArrayError) as e:
        as_array(value)
    assert (e.value.kind, e.value.index) == (kind, index)


def test_a_copy_only_when_asked():
    a = np.ones((2, 2))
    assert as_array(a) is a and as_array(a, copy=True) is not a
    np.testing.assert_array_equal(as_array([[1, 2]], copy=True), [[1.0, 2.0]])


def test_the_checker_and_the_model_phrase_the_same_refusals():
    with pytest.raises(ValueError, match="^layer 1 dW is ragged: its rows have different lengths$"):
        checked([[1, 2], [3]], "layer 1 dW")
    with pytest.raises(ValueError, match="^layer 1 dW contains a non-finite number$"):
        checked([float("nan")], "layer 1 dW")
    spec = {"layers": [{"units": 1}], "loss": "mse"}
    for X, message in (([[1, 2], [3]], "must be a rectangular list of rows of numbers"),
                       ([[1, 2], [3, float("nan")]], "has a non-finite number in row 1")):
        with pytest.raises(SpecError) as e:
            Model({**spec, "data": {"X": X, "y": [[1], [0]]}})
        assert (e.value.loc, e.value.message) == (("data", "X"), message)
