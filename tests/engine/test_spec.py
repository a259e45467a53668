"""The model spec (app/engine/spec.py): defaults filled, every engine-level error names its field,
optimizer and regularization updates, custom data kept for the model to check."""
from __future__ import annotations

import copy

import pytest

from app.engine.spec import (DEFAULT_SPEC, SpecError, normalize_optimizer, normalize_regularization,
                             normalize_spec)


def test_empty_spec_is_the_default_playground_net():
    s = normalize_spec()
    assert s == normalize_spec({}) == {**DEFAULT_SPEC, "data": DEFAULT_SPEC["data"]}
    assert [layer["units"] for layer in s["layers"]] == [8, 8, 1] and s["loss"] == "bce"
    s["layers"][0]["units"] = 99  # a copy: the default is never changed through a result
    assert DEFAULT_SPEC["layers"][0]["units"] == 8


def test_normalizing_is_idempotent_and_does_not_change_its_input():
    given = {"layers": [{"units": 3}, {"units": 1}], "loss": "mse", "data": {"dataset": "sine"}}
    before = copy.deepcopy(given)
    s = normalize_spec(given)
    assert given == before
    assert normalize_spec(s) == s
    assert [layer["activation"] for layer in s["layers"]] == ["tanh", "identity"]  # hidden tanh, output identity
    assert s["data"]["features"] == ["x1"]  # sine has one raw input


@pytest.mark.parametrize("spec,loc,msg", [
    ({"nope": 1}, ("nope",), "unknown field"),
    ({"layers": []}, ("layers",), "needs at least one layer (the output layer)"),
    ({"layers": [{"units": 0}]}, ("layers", 0, "units"), "must be an integer >= 1"),
    ({"layers": [{"units": 2.5}]}, ("layers", 0, "units"), "must be an integer >= 1"),
    ({"layers": [{"units": 2, "activation": "swish"}, {"units": 1}], "loss": "mse"}, ("layers", 0, "activation"),
     "unknown value 'swish'; choose one of "),
    ({"layers": [{"units": 2, "activation": "softmax"}, {"units": 2, "activation": "softmax"}],
      "loss": "cross_entropy"}, ("layers", 0, "activation"), "softmax is allowed on the output layer only"),
    ({"layers": [{"units": 2, "activation": "softmax"}], "loss": "mse"}, ("layers", 0, "activation"),
     "softmax output requires loss cross_entropy"),
    ({"layers": [{"units": 1, "activation": "tanh"}], "loss": "bce"}, ("loss",), "bce requires a sigmoid output layer, got tanh"),
    ({"loss": "hinge"}, ("loss",), "unknown value 'hinge'; choose one of mse, bce, cross_entropy"),
    ({"init": "zeros"}, ("init",), "unknown value 'zeros'; choose one of xavier, he, normal"),
    ({"dtype": "float16"}, ("dtype",), "unknown value 'float16'; choose one of float64, float32"),
    ({"batch_size": 0}, ("batch_size",), "must be an integer >= 1 or null for full batch"),
    ({"optimizer": {"name": "rmsprop"}}, ("optimizer", "name"), "unknown value 'rmsprop'; choose one of sgd, momentum, adam"),
    ({"optimizer": {"learning_rate": -1}}, ("optimizer", "learning_rate"), "must be a finite number >= 0"),
    ({"optimizer": {"learning_rate": float("inf")}}, ("optimizer", "learning_rate"), "must be a finite number >= 0"),
    ({"regularization": {"kind": "l3"}}, ("regularization", "kind"), "unknown value 'l3'; choose one of none, l1, l2"),
    ({"regularization": {"kind": "l2", "rate": float("nan")}}, ("regularization", "rate"), "must be a finite number >= 0"),
    ({"data": {"dataset": "mnist"}}, ("data", "dataset"), "unknown value 'mnist'; choose one of "),
    ({"data": {"dataset": "xor", "colour": 1}}, ("data", "colour"), "unknown field"),
    ({"data": {"features": ["x1", "x3"]}}, ("data", "features", 1), "unknown value 'x3'; choose one of "),
    ({"data": {"X": [[1.0]]}}, ("data", "y"), "required with custom data"),
    ({"data": {"X": [[1.0]], "y": [[1.0]], "X_test": [[1.0]]}}, ("data", "y_test"), "X_test and y_test go together"),
    ({"data": {"X": [[1.0]], "y": [[1.0]], "samples": 5}}, ("data", "samples"), "not allowed with custom X/y data"),
])
def test_errors_name_the_field(spec, loc, msg):
    with pytest.raises(SpecError) as e:
        normalize_spec(spec)
    assert e.value.loc == loc
    assert e.value.message.startswith(msg), e.value.message
    assert str(e.value) == f"{'.'.join(map(str, loc))}: {e.value.message}"


def test_custom_data_is_kept_for_the_model_to_check():
    data = {"X": [[1.0, 2.0]], "y": [[0.0]], "standardize": True, "info": {"input_columns": ["a", "b"]}}
    assert normalize_spec({"data": data})["data"] == data


def test_optimizer_updates_keep_or_reset_hyper_parameters():
    adam = normalize_optimizer({"name": "adam", "learning_rate": 0.1, "beta1": 0.8})
    assert adam == {"name": "adam", "learning_rate": 0.1, "beta1": 0.8, "beta2": 0.999, "eps": 1e-8}
    assert normalize_optimizer({"learning_rate": 0.2}, adam) == {**adam, "learning_rate": 0.2}
    assert normalize_optimizer({"learning_rate": None}, adam) == adam  # None means "keep"
    # another optimizer starts from its own defaults, not the old one's values
    assert normalize_optimizer({"name": "momentum"}, adam) == {"name": "momentum", "learning_rate": 0.03,
                                                               "momentum": 0.9, "nesterov": False}
    assert "beta1" not in normalize_optimizer({"name": "sgd", "beta1": 0.5})


def test_regularization_updates():
    assert normalize_regularization(None) == {"kind": "none", "rate": 0.0}
    r = normalize_regularization({"kind": "l2", "rate": 1})
    assert r == {"kind": "l2", "rate": 1.0} and isinstance(r["rate"], float)
    assert normalize_regularization({"rate": 0.5}, r) == {"kind": "l2", "rate": 0.5}
