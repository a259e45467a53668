"""One training step cannot be split between stream frames, so rows per step x weights is bounded by
max_step_cost at every place a model's spec or batch size is set: create, PATCH, import."""
from __future__ import annotations

import pytest

from ..utils import create, unprocessable

TANH = {"activation": "tanh"}
OUT = [{"units": 1, "activation": "sigmoid"}]
BIG = {"layers": [{"units": 1000, **TANH}, {"units": 1000, **TANH}, {"units": 990, **TANH}] + OUT,
       "data": {"dataset": "circle", "samples": 100_000}}  # 1,992,990 weights; 50,000 training rows
# the same net on fewer rows: creating a model evaluates its loss on every row, slow for 100,000
SMALLER_DATA = {**BIG, "data": {"dataset": "circle", "samples": 200}}
LIMIT = "the limit is 100000000 (PLAYGROUND_MAX_STEP_COST)"


@pytest.mark.parametrize("spec,msg", [
    ({**BIG, "batch_size": None}, "a full batch of 50000 rows x 1992990 weights is 99649500000 multiply-adds per "
                                  f"step; {LIMIT}: use a batch of at most 50 rows or a smaller network"),
    ({"layers": [{"units": 1000, **TANH}] * 2 + OUT, "batch_size": None, "data": {"samples": 20_000}},
     "a full batch of 10000 rows x 1003000 weights is 10030000000 multiply-adds per step; "
     f"{LIMIT}: use a batch of at most 99 rows or a smaller network"),
    ({**BIG, "batch_size": 51}, "a batch of 51 rows x 1992990 weights is 101642490 multiply-adds per step; "
                                f"{LIMIT}: use a batch of at most 50 rows or a smaller network"),
])
def test_a_step_over_the_cost_limit_is_refused_at_create(client, spec, msg):
    unprocessable(client.post("/api/models", json=spec), ["body", "batch_size"], msg)


def test_the_same_net_with_a_batch_of_ten_is_accepted_and_trains(client):
    made = create(client, {**SMALLER_DATA, "batch_size": 10})
    assert made["spec"]["batch_size"] == 10
    r = client.post(f"/api/models/{made['id']}/train", json={"steps": 1})
    assert r.status_code == 200 and r.json()["step"] == 1


def test_patch_to_a_full_batch_on_a_big_model_is_refused_and_changes_nothing(client):
    made = create(client, {**SMALLER_DATA, "batch_size": 10})
    r = client.patch(f"/api/models/{made['id']}", json={"batch_size": None, "optimizer": {"learning_rate": 0.5}})
    unprocessable(r, ["body", "batch_size"], "a full batch of 100 rows x 1992990 weights is 199299000 "
                                             f"multiply-adds per step; {LIMIT}: use a batch of at most 50 rows or a "
                                             "smaller network")
    assert client.get(f"/api/models/{made['id']}").json()["spec"] == made["spec"]
    assert client.patch(f"/api/models/{made['id']}", json={"batch_size": 50}).json()["spec"]["batch_size"] == 50


def test_raising_the_setting_admits_the_full_batch(limited):
    c = limited(max_step_cost=10_100_000_000)
    spec = {"layers": [{"units": 1000, **TANH}] * 2 + OUT, "batch_size": None, "data": {"samples": 20_000}}
    assert create(c, spec)["spec"]["batch_size"] is None


@pytest.mark.parametrize("data", [{"samples": 200}, {"X": [[i / 100, 1 - i / 100] for i in range(100)],
                                                     "y": [[i % 2] for i in range(100)]}])
def test_import_over_the_cost_limit_is_refused(limited, data):
    spec = {"layers": [{"units": 8, **TANH}] + OUT, "batch_size": None, "data": data}  # 100 rows x 24 weights
    wide = limited()
    mid = create(wide, spec)["id"]
    doc = wide.get(f"/api/models/{mid}/export", params={"format": "json"}).json()
    r = limited(max_step_cost=2399).post("/api/models/import", json=doc)
    unprocessable(r, ["body", "batch_size"], "a full batch of 100 rows x 24 weights is 2400 multiply-adds "
                                                     "per step; the limit is 2399 (PLAYGROUND_MAX_STEP_COST): use a "
                                                     "batch of at most 99 rows or a smaller network")
    assert limited(max_step_cost=2400).post("/api/models/import", json=doc).status_code == 201


def test_the_catalog_reports_the_limit(limited):
    assert limited(max_step_cost=12345).get("/api/catalog").json()["limits"]["max_step_cost"] == 12345
