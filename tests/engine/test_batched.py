"""Stacked steps of same-shape models (app/engine/batched.py) are bit for bit each model's own training."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from app.engine import Model
from app.engine.batched import can_share, train_together


def _specs(opt: str, reg: str, bs: int) -> list[dict]:
    out = []
    for k in range(5):
        out.append({"seed": k, "batch_size": bs,
                    "layers": [{"units": 6, "activation": "tanh"}, {"units": 5, "activation": "relu"},
                               {"units": 1, "activation": "sigmoid"}],
                    "optimizer": {"name": opt, "learning_rate": 0.01 * (k + 1)},
                    "regularization": {"kind": reg, "rate": 0.001 * k},
                    "data": {"dataset": ("circle", "xor", "spiral", "moons", "gauss")[k], "samples": 90 + 2 * k,
                             "seed": k}})
    return out


def _same(a: Model, b: Model, ra, rb) -> None:
    np.testing.assert_array_equal(a.net.params, b.net.params)
    np.testing.assert_array_equal(a.net.grads, b.net.grads)
    for (k, v), w in zip(a.optimizer.state_arrays().items(), b.optimizer.state_arrays().values()):
        np.testing.assert_array_equal(v, w, err_msg=k)
    assert a.optimizer.t == b.optimizer.t
    assert (a.step, a.epoch, a.cursor, a.diverged_at) == (b.step, b.epoch, b.cursor, b.diverged_at)
    np.testing.assert_array_equal(a.perm, b.perm)
    assert ra.losses == rb.losses and (ra.train_loss, ra.test_loss) == (rb.train_loss, rb.test_loss)
    for key, v in a.history.columns().items():
        np.testing.assert_array_equal(v, b.history.columns()[key], err_msg=key)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
@pytest.mark.parametrize("reg", ["none", "l2", "l1"])
@pytest.mark.parametrize("bs", [10, 7])  # 7: epochs end with short batches, which train alone
def test_stacked_training_is_bit_identical_to_each_model_alone(opt, reg, bs):
    specs = _specs(opt, reg, bs)
    alone = [Model(copy.deepcopy(s)) for s in specs]
    stacked = [Model(copy.deepcopy(s)) for s in specs]
    assert can_share(stacked)
    for steps in (23, 61):
        r_alone = [m.train(steps) for m in alone]
        r_stacked = train_together(stacked, steps)
        for a, b, ra, rb in zip(stacked, alone, r_stacked, r_alone):
            _same(a, b, ra, rb)


def test_a_diverging_model_stops_alone_and_the_others_go_on():
    specs = _specs("sgd", "none", 10)
    specs[2]["optimizer"]["learning_rate"] = 1e308
    specs[2]["layers"][-1] = {"units": 1, "activation": "identity"}
    specs[2]["loss"] = "mse"
    for s in specs:
        s["layers"][-1], s["loss"] = {"units": 1, "activation": "identity"}, "mse"
    alone = [Model(copy.deepcopy(s)) for s in specs]
    stacked = [Model(copy.deepcopy(s)) for s in specs]
    with np.errstate(all="ignore"):
        r_alone = [m.train(40) for m in alone]
        r_stacked = train_together(stacked, 40)
    assert r_stacked[2].diverged and r_stacked[2].stopped == "diverged"
    for a, b, ra, rb in zip(stacked, alone, r_stacked, r_alone):
        _same(a, b, ra, rb)


def test_models_of_different_shapes_train_one_by_one():
    a, b = Model({"seed": 1}), Model({"layers": [{"units": 3}, {"units": 1, "activation": "sigmoid"}]})
    assert not can_share([a, b])
    ra, rb = train_together([a, b], 5)
    assert ra.step == rb.step == 5


_OUTPUTS = [("mse", "identity"), ("mse", "tanh"), ("mse", "sigmoid"), ("bce", "sigmoid")]


@pytest.mark.parametrize("seed", range(12))
def test_random_configs_train_stacked_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    loss, out = _OUTPUTS[seed % len(_OUTPUTS)]
    hidden = [{"units": int(rng.integers(1, 9)), "activation": str(rng.choice(["tanh", "relu", "sigmoid"]))}
              for _ in range(int(rng.integers(1, 4)))]
    opt, bs, n = str(rng.choice(["sgd", "adam"])), int(rng.integers(1, 33)), int(rng.integers(40, 200))
    specs = [{"seed": int(rng.integers(1000)), "batch_size": bs, "loss": loss,
              "layers": hidden + [{"units": 1, "activation": out}],
              "optimizer": {"name": opt, "learning_rate": float(rng.uniform(0.001, 0.3))},
              "data": {"dataset": str(rng.choice(["circle", "xor", "spiral", "moons", "gauss"])),
                       "samples": n, "seed": k}} for k in range(int(rng.integers(2, 12)))]
    alone = [Model(copy.deepcopy(s)) for s in specs]
    stacked = [Model(copy.deepcopy(s)) for s in specs]
    assert can_share(stacked)
    with np.errstate(all="ignore"):
        r_alone = [m.train(37) for m in alone]
        r_stacked = train_together(stacked, 37)
    for a, b, ra, rb in zip(stacked, alone, r_stacked, r_alone):
        _same(a, b, ra, rb)
