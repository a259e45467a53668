"""Engine limits seen through the API: statistics that are not finite are a 422 naming the
column (custom data, CSV in a spec, CSV upload), no export holds a non-JSON number, and imports are
checked before they are unpacked (a compressed bomb and a member declaring a huge shape are 4xx)."""
from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

from tests.engine.test_transfer import _header_only, _members, _zip, npz_bomb

from ..utils import SMALL, create, unprocessable

HUGE = [[1e308, 1.0], [1e308, 2.0], [-1e308, 3.0], [1e308, 4.0]]
MLP = {"layers": [{"units": 3, "activation": "tanh"}, {"units": 1, "activation": "identity"}], "loss": "mse"}
CSV = "size,weight,target\n1e308,1,0.5\n1e308,2,0.1\n-1e308,3,0.2\n1e308,4,0.7\n"
STATS_MSG = ("column 0{name} cannot be standardized: its mean or standard deviation is not a finite number "
             "(values up to 1e+308); rescale the column or turn standardize off")


def _strict(text: str):
    """json.loads that refuses NaN and Infinity, which are not JSON."""
    def bad(token):
        raise ValueError(f"not JSON: {token}")
    return json.loads(text, parse_constant=bad)


def test_custom_data_whose_std_overflows_is_422_naming_the_column(client):
    r = client.post("/api/models", json={**MLP, "data": {"X": HUGE, "y": [[0.0]] * 4, "standardize": True}})
    unprocessable(r, ["body", "data", "X", 0], STATS_MSG.format(name=""))


def test_csv_in_a_spec_whose_std_overflows_is_422_naming_the_column(client):
    r = client.post("/api/models", json={**MLP, "data": {"csv": CSV, "standardize": True, "test_fraction": 0.25}})
    unprocessable(r, ["body", "data", "X", 0], STATS_MSG.format(name=' ("size")'))


def test_csv_upload_whose_std_overflows_is_422_naming_the_column(client):
    r = client.post("/api/datasets", json={"csv": CSV, "standardize": True})
    unprocessable(r, ["body", "standardize"], 'column "size" cannot be standardized: its mean or standard deviation '
                                              "is not a finite number (values up to 1e+308); rescale the column or "
                                              "turn standardize off")
    assert client.post("/api/datasets", json={"csv": CSV}).status_code == 201  # without standardize it is data


def test_huge_values_without_standardize_train_and_export_as_strict_json(client):
    m = create(client, {**MLP, "data": {"X": HUGE, "y": [[0.0]] * 4}})
    with np.errstate(all="ignore"):
        r = client.post(f"/api/models/{m['id']}/train", json={"steps": 5})
    assert r.status_code == 200, r.text
    r = client.get(f"/api/models/{m['id']}/export", params={"format": "json"})
    assert r.status_code == 200, r.text
    assert _strict(r.text)["spec"]["data"]["standardize"] is None


def _post_npz(client, blob: bytes):
    return client.post("/api/models/import", content=blob, headers={"content-type": "application/octet-stream"})


@pytest.mark.slow
def test_npz_bomb_is_refused_before_its_data_is_read(client):
    blob = npz_bomb()
    tracemalloc.start()
    try:
        r = _post_npz(client, blob)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    unprocessable(r, ["body"], "cannot import: not an .npz model export from GET /export?format=npz: "
                               "member 'state_extra.npy' is not part of a model export")
    assert peak < 64 * 2**20  # the member alone is 800 MB
    assert client.get("/api/health").status_code == 200


def test_member_declaring_a_huge_shape_is_422_not_500(client):
    m = create(client, SMALL)
    blob = client.get(f"/api/models/{m['id']}/export", params={"format": "npz"}).content
    members = _members(blob)
    members["history_loss.npy"] = _header_only((10**12,), "<f4")
    r = _post_npz(client, _zip(members))
    unprocessable(r, ["body"], "cannot import: not an .npz model export from GET /export?format=npz: "
                               "history_loss: declares 1000000000000 elements; the limit is 1000000")
    members["state_params.npy"] = _header_only((10**12,), "<f8")
    del members["history_loss.npy"]
    r = _post_npz(client, _zip(members))
    unprocessable(r, ["body"], "cannot import: not an .npz model export from GET /export?format=npz: "
                               "state_params: declares 1000000000000 elements; the limit is 2000000")


def test_json_import_declaring_a_huge_shape_is_422(client):
    m = create(client, SMALL)
    doc = client.get(f"/api/models/{m['id']}/export").json()
    doc["state"]["params"] = {"dtype": "<f8", "shape": [10**12], "data": [0.0]}
    r = client.post("/api/models/import", json=doc)
    unprocessable(r, ["body"], "cannot import: params: declares 1000000000000 elements; the limit is 2000000")


def test_import_limits_follow_the_settings(limited):
    small = limited(max_params=10)
    big = limited()
    m = create(big, SMALL)
    blob = big.get(f"/api/models/{m['id']}/export", params={"format": "npz"}).content
    r = _post_npz(small, blob)
    unprocessable(r, ["body"], "cannot import: not an .npz model export from GET /export?format=npz: "
                               "state_params: declares 17 elements; the limit is 10")


# -- integer class labels -------------------------------------------------------------------
LABELS = "x1,x2,label\n" + "".join(f"{i * 0.1},{(i * 7) % 5 * 0.2},{i % 3}\n" for i in range(30))
SOFTMAX3 = {"layers": [{"units": 4, "activation": "tanh"}, {"units": 3, "activation": "softmax"}],
            "loss": "cross_entropy"}


def test_integer_labels_without_one_hot_get_the_hint(client):
    r = client.post("/api/datasets", json={"csv": LABELS})
    assert r.status_code == 201 and r.json()["classes"] is None
    r = client.post("/api/models", json={**SOFTMAX3, "data": {"dataset_id": r.json()["id"]}})
    unprocessable(r, ["body", "data", "y"], (
        "has 1 columns but the output layer has 3 units; its values look like integer class labels (0, 1, 2): a "
        "3-unit output needs them one-hot encoded, one column per class (row [0, 1, 0] for label 1); upload the "
        "CSV with \"one_hot\": true to have them encoded"))


def test_csv_upload_one_hot_encodes_integer_labels(client):
    r = client.post("/api/datasets", json={"csv": LABELS, "one_hot": True})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["classes"] == ["0", "1", "2"] and body["target_columns"] == ["label"]
    m = create(client, {**SOFTMAX3, "data": {"dataset_id": body["id"]}})
    r = client.post(f"/api/models/{m['id']}/train", json={"steps": 20})
    assert r.status_code == 200, r.text
    y = np.asarray(client.get(f"/api/models/{m['id']}/data").json()["train"]["y"])
    assert y.shape[1] == 3 and (y.sum(axis=1) == 1).all()


def test_one_hot_of_labels_that_are_not_integers_is_422(client):
    r = client.post("/api/datasets", json={"csv": LABELS.replace(",2\n", ",2.5\n", 1), "one_hot": True})
    unprocessable(r, ["body", "one_hot"], 'one_hot: column "label" holds 2.5 in data row 3, which is not an '
                                          "integer class label")


def test_gradients_per_row_quantities_are_bounded(limited):
    c = limited(max_gradient_values=4 * 5 * 30)  # SMALL: 4 + 1 units, so 20 numbers a row: 30 rows
    m = create(c, SMALL)
    X = [[0.1 * i, 0.2] for i in range(31)]
    y = [[1.0]] * 31
    r = c.post(f"/api/models/{m['id']}/gradients", json={"X": X, "y": y})
    unprocessable(r, ["body", "X"], "has 31 rows; this network's a, z, delta and dz take 20 numbers a row, so at "
                                    "most 30 rows fit the limit of 600 numbers")
    r = c.post(f"/api/models/{m['id']}/gradients", json={"X": X[:30], "y": y[:30]})
    assert r.status_code == 200 and r.json()["batch_size"] == 30
