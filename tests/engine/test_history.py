"""History (app/engine/history.py): one entry per step with its own step number, full resolution for the
recent steps and thinner further back, bounded size, saves and old saves without a step column."""
from __future__ import annotations

import numpy as np
import pytest

from app.engine import Model
from app.engine.history import OLDER_STEPS, RECENT_STEPS, History


def _record(h: History, first: int, last: int, block: int = 97) -> None:
    """Steps first..last in blocks; loss = step, norms = (step, -step, -step, ...)."""
    for s in range(first, last + 1, block):
        e = min(s + block - 1, last)
        steps = np.arange(s, e + 1, dtype=np.float64)
        h.record_steps(s, steps, np.column_stack([steps] + [-steps] * (h.n_layers - 1)))


def test_columns_hold_each_step_once_with_its_values():
    h = History(2)
    _record(h, 1, 250)
    h.record_step(251.0, np.array([251.0, -251.0]))
    c = h.columns()
    np.testing.assert_array_equal(c["step"], np.arange(1, 252))
    np.testing.assert_array_equal(c["loss"], np.arange(1, 252, dtype=np.float32))
    np.testing.assert_array_equal(c["norms"], np.float32([np.arange(1, 252), -np.arange(1, 252)]))
    since = h.columns(since=200)
    np.testing.assert_array_equal(since["step"], np.arange(201, 252))
    assert since["norms"].shape == (2, 51)


def test_recording_a_step_again_replaces_it_and_everything_after():
    h = History(2)
    _record(h, 1, 50)
    h.record_steps(41, [0.5, 0.25], np.zeros((2, 2)))  # a reload from step 40 recorded 41 and 42 again
    c = h.columns()
    np.testing.assert_array_equal(c["step"], np.arange(1, 43))
    assert c["loss"][-2:].tolist() == [0.5, 0.25]
    h.record_eval(10, 1.0, None)
    h.record_eval(20, 2.0, 3.0)
    h.record_eval(20, 9.0, 9.0)   # the same step again: kept once
    h.record_eval(15, 4.0, None)  # an older step: later evaluations are dropped
    c = h.columns()
    assert c["eval_step"].tolist() == [10, 15] and c["eval_train"].tolist() == [1.0, 4.0]
    assert np.isnan(c["eval_test"]).all()


def test_long_histories_are_thinned_further_back_and_bounded():
    h = History(2, recent=1000, older=500, recent_evals=100, older_evals=50)
    _record(h, 1, 60_000)
    for s in range(10, 60_001, 10):
        h.record_eval(s, float(s), float(-s))
    c = h.columns()
    steps = c["step"]
    assert len(steps) <= 1500 and len(c["eval_step"]) <= 150
    assert h.nbytes() <= h.max_nbytes() == 1500 * (8 + 4 + 2 * 4) + 150 * (8 + 4 + 4)  # what Model.nbytes counts
    np.testing.assert_array_equal(steps[-1000:], np.arange(59_001, 60_001))  # the recent steps, all of them
    assert steps[0] == 1 and (np.diff(steps) > 0).all()                       # the first kept, no step twice
    gaps = np.diff(steps[:-1000])
    assert (np.diff(gaps) <= 0).all() and gaps[0] > gaps[-1] > 1  # sparser the further back
    np.testing.assert_array_equal(c["loss"], steps.astype(np.float32))       # each entry keeps its own values
    np.testing.assert_array_equal(c["norms"][1], -steps.astype(np.float32))
    np.testing.assert_array_equal(c["eval_step"][-100:], np.arange(59_010, 60_001, 10))
    np.testing.assert_array_equal(c["eval_train"], c["eval_step"].astype(np.float32))


def test_default_policy_keeps_saves_small():
    h = History(12)
    _record(h, 1, 200_000, block=1000)
    assert len(h) <= RECENT_STEPS + OLDER_STEPS
    assert len(h.to_bytes()) < 2 * 2**20
    np.testing.assert_array_equal(h.columns()["step"][-RECENT_STEPS:], np.arange(200_001 - RECENT_STEPS, 200_001))


def test_save_round_trip_and_truncated_copy():
    h = History(2, recent=100, older=50)
    _record(h, 1, 1000)
    h.record_eval(0, 5.0, None)
    h.record_eval(500, 1.0, 2.0)
    h.record_eval(1000, 0.5, 1.5)
    back = History.from_bytes(h.to_bytes())
    for k, v in h.columns().items():
        np.testing.assert_array_equal(back.columns()[k], v)
    t = h.truncated(950)
    assert t.last_step <= 950 and list(t.eval_step) == [0, 500]
    np.testing.assert_array_equal(t.columns()["step"], h.columns()["step"][h.columns()["step"] <= 950])


def test_a_save_from_before_the_step_column_reads_and_is_compacted():
    n = RECENT_STEPS + OLDER_STEPS + 5000
    old = {"n_layers": np.array(1), "loss": np.arange(n, dtype=np.float32), "norms": np.zeros(n, np.float32),
           "eval_step": np.array([0, 10], np.int64), "eval_train": np.ones(2, np.float32),
           "eval_test": np.ones(2, np.float32)}
    h = History.from_arrays(old)
    c = h.columns()
    assert len(h) <= RECENT_STEPS + OLDER_STEPS and c["step"][0] == 1 and c["step"][-1] == n
    np.testing.assert_array_equal(c["loss"], (c["step"] - 1).astype(np.float32))


@pytest.mark.parametrize("change,msg", [
    ({"step": np.array([1, 1, 2], np.int64)}, "history step must be increasing steps >= 0"),
    ({"loss": np.zeros(2, np.float32)}, "history columns have inconsistent lengths"),
    ({"eval_step": np.array([5], np.int64)}, "history columns have inconsistent lengths"),
    ({"loss": np.array(["a", "b", "c"])}, "history column loss must be a 1-D numeric array"),
])
def test_inconsistent_saves_are_refused(change, msg):
    arrays = {"n_layers": np.array(1), "step": np.array([1, 2, 3], np.int64), "loss": np.zeros(3, np.float32),
              "norms": np.zeros(3, np.float32), "eval_step": np.zeros(0, np.int64),
              "eval_train": np.zeros(0, np.float32), "eval_test": np.zeros(0, np.float32)}
    with pytest.raises(ValueError, match=msg):
        History.from_arrays({**arrays, **change})


def test_a_model_records_one_entry_per_step_across_calls_and_checkpoints():
    m = Model({"layers": [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]})
    seen = []
    m.train(37, checkpoint_every=10, on_checkpoint=lambda mm: seen.append(mm.history.last_step))
    m.train(300)
    assert seen == [10, 20, 30]  # the history is complete when a checkpoint is taken
    np.testing.assert_array_equal(m.history.columns()["step"], np.arange(1, 338))
    assert m.history.nbytes() == 337 * (8 + 4 + 2 * 4) + len(m.history.eval_step) * 16
