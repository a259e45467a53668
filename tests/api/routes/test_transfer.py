"""Own data, export and forks: POST /api/datasets and CSV in a spec (every invalid file is a 422 naming
its line), one-hot targets, standardization applied by predict, export -> import -> continue bit for
bit (json and npz), the exported NumPy script against /gradients, checkpoints and forks."""
from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest

from app.engine.csvdata import CsvError, parse_csv
from app.engine.transfer import import_json

from ..utils import SMALL, arr, bool_refused, create, not_found, unprocessable

MLP = {"layers": [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "identity"}], "loss": "mse"}
CSV = "x1,x2,target\n" + "".join(f"{i * 0.5},{10 + i * i},{i % 3 - 0.5}\n" for i in range(12))


def train(client, mid: str, steps: int) -> dict:
    r = client.post(f"/api/models/{mid}/train", json={"steps": steps})
    assert r.status_code == 200, r.text
    return r.json()


def get(client, url: str, **kw):
    r = client.get(url, **kw)
    assert r.status_code == 200, r.text
    return r.json()


# -- CSV errors ------------------------------------------------------------------------------------
REPLACEMENT = "\ufffd"  # what a browser's UTF-8 decoding makes of a latin-1 byte such as 0xe9

CSV_ERRORS = [
    ("ragged", "a,b,c\n1,2,3\n4,5\n", "line 3 has 2 cells, the header (line 1) has 3"),
    ("ragged_long", "a,b\n1,2\n3,4,5\n", "line 3 has 3 cells, the header (line 1) has 2"),
    ("blank_lines_count", "a,b\n\n1,2\n\n3\n", "line 5 has 1 cells, the header (line 1) has 2"),
    ("non_numeric_input", "a,b\n1,2\nx,1\n", 'line 3 column "a": "x" is not a number'),
    ("empty_cell", "a,b\n1,2\n3,\n", 'line 3 column "b": the cell is empty'),
    ("nan_target", "a,b\n1,2\n3,nan\n", 'line 3 column "b": nan is not a finite number'),
    ("inf_input", "a,b\n1,2\n-inf,1\n", 'line 3 column "a": -inf is not a finite number'),
    ("NaN_input", "a,b\nNaN,2\n", 'line 2 column "a": NaN is not a finite number'),
    ("underscore_number", "a,b\n1_000,2\n", 'line 2 column "a": "1_000" is not a number'),
    ("empty", "\n\n", "the file is empty: it needs a header row and at least one data row"),
    ("header_only", "a,b\n", "the file has a header (line 1) but no data rows"),
    ("header_after_blank_only", "\na,b\n\n", "the file has a header (line 2) but no data rows"),
    ("one_column", "a\n1\n", "line 1: the header has 1 column; need at least one input and one target"),
    ("duplicate_name", "a,a\n1,2\n", 'line 1: duplicate column name "a" (columns 1 and 2)'),
    ("blank_name", "a,,c\n1,2,3\n", "line 1: column 2 of the header has a blank name"),
    ("no_header", "1,2\n3,4\n", 'line 1 looks like data, not a header: every name is a number ("1", "2"); '
                                "add a header row of column names"),
    ("unclosed_quote", 'a,b\n1,"2\n', "line 2: malformed CSV row (unexpected end of data)"),
    ("latin1_decoded_by_a_browser", f"a,b\n1,2\ncaf{REPLACEMENT},3\n", f'line 3 column "a": "caf{REPLACEMENT}" is not a number'),
    ("too_many_rows", "a,b\n1,2\n3,4\n5,6\n7,8\n", "line 5: too many data rows; at most 3 are allowed"),
    ("too_many_columns", "a,b,c,d,e\n1,2,3,4,5\n", "line 1: the header has 5 columns; at most 4 are allowed"),
]


@pytest.fixture
def small_limits(limited):
    return limited(max_csv_rows=3, max_units=4)  # max_units also bounds the columns of a CSV


@pytest.mark.parametrize("name,text,msg", CSV_ERRORS, ids=[c[0] for c in CSV_ERRORS])
def test_every_csv_error_names_its_line_in_an_upload(small_limits, name, text, msg):
    unprocessable(small_limits.post("/api/datasets", json={"csv": text}), ["body", "csv"], msg)


@pytest.mark.parametrize("name,text,msg", CSV_ERRORS, ids=[c[0] for c in CSV_ERRORS])
def test_every_csv_error_names_its_line_in_a_spec(small_limits, name, text, msg):
    r = small_limits.post("/api/models", json={**MLP, "layers": [{"units": 1}], "data": {"csv": text}})
    unprocessable(r, ["body", "data", "csv"], msg)


def test_an_empty_upload_is_refused_by_the_schema(client):
    r = client.post("/api/datasets", json={"csv": ""})
    assert r.status_code == 422
    assert [(i["loc"], i["msg"]) for i in r.json()["detail"]] == [(["body", "csv"], "String should have at least 1 character")]


@pytest.mark.parametrize("where", ["upload", "spec"])
@pytest.mark.parametrize("selection,loc,msg", [
    ({"inputs": ["z"]}, "inputs", 'inputs: no column named "z"; the columns are "a", "b", "c"'),
    ({"targets": ["a", "a"]}, "targets", 'targets: column "a" is listed twice'),
    ({"inputs": ["a"], "targets": ["a"]}, "inputs", 'column "a" is both an input and a target'),
    ({"targets": []}, "targets", "targets must name at least one column"),
])
def test_column_selection_errors_name_the_field(client, where, selection, loc, msg):
    text = "a,b,c\n1,2,3\n"
    if where == "upload":
        unprocessable(client.post("/api/datasets", json={"csv": text, **selection}), ["body", loc], msg)
    else:
        r = client.post("/api/models", json={**MLP, "data": {"csv": text, **selection}})
        unprocessable(r, ["body", "data", loc], msg)


def test_a_file_that_is_not_utf8_names_the_line_of_the_bad_byte():
    """JSON cannot carry such bytes (the page decodes the file first, see the browser case above); the parser
    itself names the line when it gets raw bytes."""
    with pytest.raises(CsvError) as e:
        parse_csv("a,b\n1,2\ncaf\u00e9,3\n".encode("latin-1"))
    assert e.value.message == ("line 3: the file is not UTF-8 text (byte 0xe9 at offset 11); save it as CSV UTF-8")
    assert (e.value.line, e.value.field) == (3, "file")
    assert parse_csv("\ufeffa,b\n1,2\n".encode()).input_columns == ["a"]  # a UTF-8 BOM is fine


def test_a_body_that_is_not_utf8_is_a_client_error_not_a_500(client):
    r = client.post("/api/datasets", content=b'{"csv": "a,b\\n1,\xe9\\n"}', headers={"content-type": "application/json"})
    assert (r.status_code, r.json()) == (422, {"detail": [{"type": "json_invalid", "loc": ["body"], "input": {}, "msg":
        "JSON decode error: the body is not UTF-8 text (invalid continuation byte at byte 16)"}]})


@pytest.mark.parametrize("field", ["standardize", "one_hot"])
@pytest.mark.parametrize("value", ["yes", "on", 1])
def test_upload_booleans_are_strict(client, field, value):
    bool_refused(client.post("/api/datasets", json={"csv": "a,b\n1,2\n", field: value}), ["body", field], value)


def test_an_unknown_dataset_id(client):
    r = client.post("/api/models", json={**MLP, "data": {"dataset_id": "nosuchdataset"}})
    unprocessable(r, ["body", "data", "dataset_id"], "no uploaded dataset has this id")
    r = client.post("/api/models", json={**MLP, "data": {"dataset_id": "x", "samples": 10}})
    unprocessable(r, ["body", "data", "samples"], "cannot be combined with uploaded data (dataset_id or csv)")


def test_an_upload_is_described_by_its_id(client):
    """GET /api/datasets/{id}: the columns and the targets' kind, as the upload answered them."""
    answers = {}
    for kind, text in [("numbers", CSV), ("classes", "a,b,label\n1,2,no\n3,4,yes\n5,6,no\n"),
                       ("binary", "a,b,hit\n1,2,0\n3,4,1\n5,6,1\n")]:
        up = client.post("/api/datasets", json={"csv": text, "standardize": True})
        assert up.status_code == 201, up.text
        assert up.json()["target_kind"] == kind
        r = client.get(f"/api/datasets/{up.json()['id']}")
        assert r.status_code == 200, r.text
        answers[kind] = r.json()
        assert r.json() == {**up.json(), "standardize": None}   # the whole file's statistics are the upload's
    assert answers["classes"]["classes"] == ["no", "yes"] and answers["classes"]["target_columns"] == ["label"]
    r = client.get("/api/datasets/nosuchdataset")
    assert r.status_code == 404 and r.json() == {"detail": "no uploaded dataset has this id"}


# -- categorical targets and standardization --------------------------------------------------------
LABELS = ["red", "blue", "green", "blue", "red", "green", "green", "red", "blue"]
LABELLED = "x1,x2,colour\n" + "".join(f"{i},{-i * 0.5},{c}\n" for i, c in enumerate(LABELS))


def test_a_categorical_target_becomes_one_hot_with_sorted_classes(client):
    ds = client.post("/api/datasets", json={"csv": LABELLED}).json()
    assert ds == {"id": ds["id"], "rows": 9, "input_columns": ["x1", "x2"], "target_columns": ["colour"],
                  "classes": ["blue", "green", "red"], "target_kind": "classes",
                  "standardize": None}
    spec = {"layers": [{"units": 3}, {"units": 3, "activation": "softmax"}], "loss": "cross_entropy",
            "data": {"dataset_id": ds["id"], "test_fraction": 0.0}}
    m = create(client, spec)
    assert m["spec"]["data"]["info"] == {"dataset_id": ds["id"], "input_columns": ["x1", "x2"],
                                         "target_columns": ["colour"], "classes": ["blue", "green", "red"]}
    data = get(client, f"/api/models/{m['id']}/data")
    assert len(data["train"]["X"]) == 9 and data["test"]["X"] == []
    for x, y in zip(data["train"]["X"], data["train"]["y"]):  # rows are shuffled: look each label up by its x1
        label = LABELS[int(x[0])]
        assert y == [1.0 if c == label else 0.0 for c in ["blue", "green", "red"]]
    # the same file in the spec itself gives the same model
    inline = create(client, {**spec, "data": {"csv": LABELLED, "test_fraction": 0.0}})
    assert get(client, f"/api/models/{inline['id']}/data") == data


def test_upload_reports_standardization_statistics(client):
    ds = client.post("/api/datasets", json={"csv": CSV, "standardize": True}).json()
    X = np.array([[i * 0.5, 10 + i * i] for i in range(12)])
    assert np.allclose(ds["standardize"]["mean"], X.mean(axis=0), rtol=1e-15)
    assert np.allclose(ds["standardize"]["std"], X.std(axis=0), rtol=1e-15)
    # the stored data stay raw: a model standardizes with its own training rows
    m = create(client, {**MLP, "data": {"dataset_id": ds["id"], "test_fraction": 0.0}})
    assert sorted(map(tuple, get(client, f"/api/models/{m['id']}/data")["train"]["X"])) == sorted(map(tuple, X))


@pytest.mark.parametrize("source", ["csv", "dataset_id"])
def test_standardization_is_stored_in_the_spec_and_applied_by_predict(client, source):
    data = {"csv": CSV} if source == "csv" else {"dataset_id": client.post("/api/datasets", json={"csv": CSV}).json()["id"]}
    m = create(client, {**MLP, "data": {**data, "standardize": True, "test_fraction": 0.25, "seed": 3}})
    train(client, m["id"], 20)
    stats = m["spec"]["data"]["standardize"]
    d = get(client, f"/api/models/{m['id']}/data")
    X_train = arr(d["train"]["X"])
    assert (len(X_train), len(d["test"]["X"])) == (9, 3)
    std = X_train.std(axis=0)
    assert stats == {"mean": X_train.mean(axis=0).tolist(), "std": np.where(std > 0, std, 1.0).tolist()}

    X_raw = np.array([[0.0, 10.0], [3.5, 59.0], [-2.0, 200.0]])
    y_hat = arr(client.post(f"/api/models/{m['id']}/predict", json={"X": X_raw.tolist()}).json()["y_hat"])
    engine = import_json(get(client, f"/api/models/{m['id']}/export"))  # the same model, in this process
    X_std = (X_raw - np.asarray(stats["mean"])) / np.asarray(stats["std"])
    np.testing.assert_array_equal(y_hat, engine.net.forward(X_std))
    assert not np.allclose(y_hat, engine.net.forward(X_raw))  # raw X would give something else
    # gradients on raw rows report the standardized network inputs z_0
    g = client.post(f"/api/models/{m['id']}/gradients", json={"X": X_raw.tolist(), "y": [[0], [1], [0]]}).json()
    np.testing.assert_array_equal(arr(g["inputs"]), X_std)


# -- export and import -------------------------------------------------------------------------------
SPECS = {
    "adam_minibatch": SMALL,
    "momentum_l2_features": {"layers": [{"units": 5, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}],
                             "optimizer": {"name": "momentum", "learning_rate": 0.05, "nesterov": True},
                             "regularization": {"kind": "l2", "rate": 0.01}, "batch_size": 7,
                             "data": {"dataset": "moons", "samples": 50, "noise": 0.2, "features": ["x1", "x2", "x1x2"]}},
    "csv_standardized": {**MLP, "batch_size": 4, "data": {"csv": CSV, "standardize": True, "test_fraction": 0.25}},
}


def export_and_import(client, mid: str, fmt: str) -> dict:
    r = client.get(f"/api/models/{mid}/export", params={"format": fmt})
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"] == f'attachment; filename="model_{mid}.{fmt}"'
    if fmt == "json":
        assert r.headers["content-type"] == "application/json"
        r = client.post("/api/models/import", json=r.json())
    else:
        assert r.headers["content-type"] == "application/octet-stream"
        r = client.post("/api/models/import", content=r.content, headers={"content-type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.mark.parametrize("fmt", ["json", "npz"])
@pytest.mark.parametrize("name", list(SPECS))
def test_export_import_continue_is_bit_for_bit(client, name, fmt):
    original = create(client, SPECS[name])
    first = train(client, original["id"], 23)
    imported = export_and_import(client, original["id"], fmt)
    assert imported["id"] != original["id"] and len(imported["token"]) >= 32
    assert (imported["step"], imported["epoch"], imported["spec"], imported["parent"]) == (
        23, first["epoch"], original["spec"], None)
    assert (imported["train_loss"], imported["test_loss"]) == (first["train_loss"], first["test_loss"])
    for mid in (original["id"], imported["id"]):  # nothing differs before training either
        assert get(client, f"/api/models/{mid}/history") == get(client, f"/api/models/{original['id']}/history")

    a, b = train(client, original["id"], 31), train(client, imported["id"], 31)
    np.testing.assert_array_equal(arr(a["losses"]), arr(b["losses"]))
    assert a == b
    pa, pb = (get(client, f"/api/models/{m}/parameters") for m in (original["id"], imported["id"]))
    for la, lb in zip(pa["layers"], pb["layers"]):
        np.testing.assert_array_equal(arr(la["W"]), arr(lb["W"]))
        np.testing.assert_array_equal(arr(la["b"]), arr(lb["b"]))
    assert get(client, f"/api/models/{original['id']}/history") == get(client, f"/api/models/{imported['id']}/history")
    X = [[0.3, -0.7], [1.0, 2.0]] if name != "csv_standardized" else [[1.0, 11.0], [4.0, 40.0]]
    assert (client.post(f"/api/models/{original['id']}/predict", json={"X": X}).json()
            == client.post(f"/api/models/{imported['id']}/predict", json={"X": X}).json())


def test_the_imported_model_has_its_own_token(client):
    original = create(client, SMALL)
    imported = export_and_import(client, original["id"], "json")
    r = client.post(f"/api/models/{imported['id']}/train", json={"steps": 1},
                    headers={"Authorization": f"Bearer {client.tokens[original['id']]}"})
    assert (r.status_code, r.json()) == (403, {"detail": "the token does not match this model"})


def _tampered(doc: dict, path: tuple, value) -> dict:
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


@pytest.fixture
def exported(client) -> dict:
    mid = create(client, SMALL)["id"]
    train(client, mid, 5)
    return get(client, f"/api/models/{mid}/export")


@pytest.mark.parametrize("body,msg", [
    (b"not json", "cannot import: Expecting value: line 1 column 1 (char 0)"),
    (b"[1, 2]", "cannot import: the body must be a JSON object from GET /export?format=json"),
    (b"{}", "cannot import: format must be 'backprop-playground-model' version 1"),
    (b'{"format": "backprop-playground-model", "version": 2}', "cannot import: format must be "
                                                               "'backprop-playground-model' version 1"),
])
def test_a_body_that_is_no_export_is_422(client, body, msg):
    r = client.post("/api/models/import", content=body, headers={"content-type": "application/json"})
    unprocessable(r, ["body"], msg)


@pytest.mark.parametrize("path,value,msg", [
    (("state",), None, "state must be an object of arrays"),
    (("history",), [], "history must be an object of arrays"),
    (("meta",), None, "meta must be an object"),
    (("spec",), "x", "spec must be an object"),
    (("meta", "rng"), None, "meta.rng: not a random generator state as the engine writes it"),
    (("meta", "rng"), {"bit_generator": "PCG64", "state": None}, "meta.rng: not a random generator state as the "
                                                                  "engine writes it"),
    (("meta", "diverged_at"), 10**6, "meta.diverged_at: must be null or an integer from 1 to meta.step"),
    (("state", "params"), None, 'params: must be {"dtype", "shape", "data"}'),
    (("history", "n_layers"), {"dtype": "<i8", "shape": [], "data": [0]}, "history n_layers must be >= 1"),
    (("meta", "step"), "abc", "meta.step: must be an integer >= 0"),
    (("meta", "cursor"), 10**6, "meta.cursor: must be below the 20 training rows"),
    (("meta", "train_loss"), "low", "meta.train_loss: must be null or a finite number"),
    (("meta", "rng"), "x", "meta.rng: not a random generator state as the engine writes it"),
    (("state", "perm", "data"), [0] * 20, "state.perm: must be a permutation of the 20 training rows"),
    (("state", "params", "shape"), [16], "state.params: the spec's network has 17 parameters, got shape [16]"),
    (("state", "y_train", "dtype"), "<c16", "y_train: dtype '<c16' is not allowed"),
    (("spec", "loss"), "nope", "spec.loss: unknown value 'nope'; choose one of mse, bce, cross_entropy"),
    (("spec", "optimizer", "learning_rate"), "fast", "spec.optimizer.learning_rate: must be a finite number >= 0"),
    (("spec", "layers"), [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "relu"}],
     "spec.loss: bce requires a sigmoid output layer, got relu"),
    (("spec", "data", "samples"), "many", "spec.data.samples: must be a number >= 0"),
    (("spec", "unknown"), 1, "spec.unknown: unknown field"),
    (("spec", "layers"), 1.5, "spec.layers: must be a list of layers"),
    (("spec", "layers"), [[1]], "spec.layers.0: must be an object"),
    (("spec", "loss"), [], "spec.loss: must be a string"),
    (("spec", "seed"), None, "spec.seed: must be an integer"),
    (("spec", "seed"), -1, "spec.seed: must be an integer from 0 to 2147483647"),
    (("spec", "optimizer"), True, "spec.optimizer: must be an object"),
    (("spec", "optimizer", "name"), {}, "spec.optimizer.name: must be a string"),
    (("spec", "regularization"), "x", "spec.regularization: must be an object"),
    (("spec", "data", "features"), None, "spec.data.features: must be a list of feature names"),
])
def test_a_tampered_export_is_422_and_never_a_500_later(client, exported, path, value, msg):
    if path == ("state", "params", "shape"):
        exported["state"]["params"]["data"] = exported["state"]["params"]["data"][:16]
    r = client.post("/api/models/import", json=_tampered(exported, path, value))
    unprocessable(r, ["body"], f"cannot import: {msg}")


@pytest.mark.parametrize("member", ["format", "spec", "meta", "state", "history"])
def test_a_missing_member_is_named(client, exported, member):
    del exported[member]
    msg = "format must be 'backprop-playground-model' version 1" if member == "format" else f"{member}: is missing"
    unprocessable(client.post("/api/models/import", json=exported), ["body"], f"cannot import: {msg}")


@pytest.mark.parametrize("where,key", [("meta", "step"), ("meta", "rng"), ("meta", "train_loss"),
                                       ("state", "params"), ("state", "perm"), ("state", "opt_m"),
                                       ("history", "loss"), ("history", "n_layers")])
def test_a_missing_key_is_named(client, exported, where, key):
    del exported[where][key]
    msg = f"{where}.{key}: is missing" + (" (the spec's optimizer needs it)" if key == "opt_m" else "")
    unprocessable(client.post("/api/models/import", json=exported), ["body"], f"cannot import: {msg}")


def test_a_too_deep_json_body_is_422(client):
    r = client.post("/api/models/import", content=b"[" * 100_000 + b"]" * 100_000,
                    headers={"content-type": "application/json"})
    unprocessable(r, ["body"], "cannot import: the JSON nests too deeply to be a model export")


@pytest.mark.parametrize("train_loss,test_loss", [(-1, 0.5), (1e308, None), (None, None)])
def test_imported_losses_are_recomputed_not_taken_from_meta(client, exported, train_loss, test_loss):
    original = exported["status"]
    exported["meta"].update(train_loss=train_loss, test_loss=test_loss)
    r = client.post("/api/models/import", json=exported)
    assert r.status_code == 201, r.text
    got = client.get(f"/api/models/{r.json()['id']}").json()
    assert (got["train_loss"], got["test_loss"]) == (original["train_loss"], original["test_loss"])
    assert got["train_loss"] > 0


@pytest.mark.parametrize("name,where", [("a\x00b", "U+0000 at position 1"), ("\u202eada", "U+202E at position 0")])
def test_import_nickname_refuses_control_and_bidi_characters(client, exported, name, where):
    r = client.post("/api/models/import", json=exported, params={"nickname": name})
    assert (r.status_code, r.json()) == (422, {"detail": [{
        "type": "value_error", "loc": ["query", "nickname"], "input": name,
        "msg": f"must not contain control or invisible formatting characters ({where})"}]})


@pytest.mark.parametrize("member,value,msg", [("meta", None, "meta must be an object"),
                                               ("spec", [], "spec must be an object"),
                                               ("meta", {"step": 0}, "meta.epoch: is missing")])
def test_an_npz_header_with_a_bad_member_names_it(client, member, value, msg):
    import io
    import zipfile
    mid = create(client, SMALL)["id"]
    blob = client.get(f"/api/models/{mid}/export", params={"format": "npz"}).content
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        files = {i.filename: zf.read(i) for i in zf.infolist()}
    header = json.loads(np.lib.format.read_array(io.BytesIO(files["header.npy"])).tobytes())
    header[member] = value
    out = io.BytesIO()
    np.save(out, np.frombuffer(json.dumps(header).encode(), np.uint8))
    files["header.npy"] = out.getvalue()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    r = client.post("/api/models/import", content=buf.getvalue(), headers={"content-type": "application/octet-stream"})
    unprocessable(r, ["body"], f"cannot import: {msg}")


def test_garbage_npz_is_422(client):
    r = client.post("/api/models/import", content=b"PK\x03\x04 nonsense", headers={"content-type": "application/octet-stream"})
    unprocessable(r, ["body"], "cannot import: not an .npz model export from GET /export?format=npz")


def test_export_format_and_unknown_model(client, model):
    r = client.get(f"/api/models/{model['id']}/export", params={"format": "pickle"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "format"]
    not_found(client.get("/api/models/nosuchmodel/export"), "nosuchmodel")


# -- the exported NumPy script ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["momentum_l2_features", "csv_standardized"])
def test_the_numpy_script_matches_the_servers_gradients(client, tmp_path, name):
    mid = create(client, SPECS[name])["id"]
    train(client, mid, 15)
    r = client.get(f"/api/models/{mid}/export", params={"format": "numpy"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/x-python")
    script = tmp_path / "model.py"
    script.write_text(r.text)

    out = subprocess.run([sys.executable, str(script), "--json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    mine = json.loads(out.stdout)
    data = get(client, f"/api/models/{mid}/data")
    rows = {"X": data["train"]["X"][:8], "y": data["train"]["y"][:8]}  # the script's sample: the first 8 rows
    server = client.post(f"/api/models/{mid}/gradients", json=rows).json()
    assert mine["loss"] == pytest.approx(server["loss"], rel=1e-12)
    assert len(mine["layers"]) == len(server["layers"])
    for a, b in zip(mine["layers"], server["layers"]):
        np.testing.assert_allclose(arr(a["dW"]), arr(b["dW"]), rtol=1e-9, atol=1e-14)
        np.testing.assert_allclose(arr(a["db"]), arr(b["db"]), rtol=1e-9, atol=1e-14)

    checked = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "PASSED" in checked.stdout


# -- checkpoints and forks -----------------------------------------------------------------------------
@pytest.fixture
def ckpt(limited):
    return limited(checkpoint_every=10, checkpoints_kept=3)


def test_checkpoints_land_every_checkpoint_every_steps(limited):
    client = limited(checkpoint_every=10)
    mid = create(client, SMALL)["id"]
    assert [c["step"] for c in get(client, f"/api/models/{mid}/checkpoints")] == [0]
    for _ in range(5):
        train(client, mid, 7)  # 35 steps in chunks that straddle the multiples of 10
    cks = get(client, f"/api/models/{mid}/checkpoints")
    assert [c["step"] for c in cks] == [0, 10, 20, 30]
    assert set(cks[0]) == {"step", "created_at", "train_loss", "test_loss"}
    ref = create(client, SMALL)["id"]
    train(client, ref, 30)
    assert cks[-1]["train_loss"] == get(client, f"/api/models/{ref}")["train_loss"]
    not_found(client.get("/api/models/nosuchmodel/checkpoints"), "nosuchmodel")


def test_fork_from_the_latest_checkpoint_at_or_before_a_step(ckpt):
    parent = create(ckpt, SMALL, nickname="ada")
    run = train(ckpt, parent["id"], 55)
    assert [c["step"] for c in get(ckpt, f"/api/models/{parent['id']}/checkpoints")] == [30, 40, 50]  # 3 kept

    r = ckpt.post(f"/api/models/{parent['id']}/fork", json={"step": 47})
    assert r.status_code == 201, r.text
    child = r.json()
    assert (child["step"], child["parent"], child["nickname"]) == (40, {"id": parent["id"], "step": 40}, "ada")
    assert child["id"] != parent["id"] and len(child["token"]) >= 32
    assert get(ckpt, f"/api/models/{child['id']}")["parent"] == {"id": parent["id"], "step": 40}

    ph, ch = (get(ckpt, f"/api/models/{m}/history") for m in (parent["id"], child["id"]))
    assert ch["step"] == ph["step"][:40] and ch["loss"] == ph["loss"][:40]
    assert ch["grad_norms"] == [row[:40] for row in ph["grad_norms"]]
    upto = [i for i, s in enumerate(ph["eval"]["step"]) if s <= 40]
    assert ch["eval"] == {k: [v[i] for i in upto] for k, v in ph["eval"].items()}

    # the fork continues exactly as the parent did from step 40
    assert train(ckpt, child["id"], 15)["losses"] == run["losses"][40:55]
    pp, cp = (get(ckpt, f"/api/models/{m}/parameters") for m in (parent["id"], child["id"]))
    assert pp == cp

    exact = ckpt.post(f"/api/models/{parent['id']}/fork", json={"step": 50}).json()
    assert exact["step"] == 50 and exact["parent"] == {"id": parent["id"], "step": 50}
    beyond = ckpt.post(f"/api/models/{parent['id']}/fork", json={"step": 10**6}).json()
    assert beyond["step"] == 50


def test_fork_before_any_kept_checkpoint_is_404(ckpt):
    mid = create(ckpt, SMALL)["id"]
    train(ckpt, mid, 55)
    r = ckpt.post(f"/api/models/{mid}/fork", json={"step": 29})
    assert (r.status_code, r.json()) == (404, {"detail": f"model {mid} has no checkpoint at or before step 29"})
    not_found(ckpt.post("/api/models/nosuchmodel/fork", json={"step": 1}), "nosuchmodel")
    not_found(ckpt.post("/api/models/nosuchmodel/fork"), "nosuchmodel")
    r = ckpt.post(f"/api/models/{mid}/fork", json={"step": -1})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "step"]


def test_fork_without_a_step_copies_the_current_state(ckpt):
    parent = create(ckpt, SMALL)
    train(ckpt, parent["id"], 33)
    r = ckpt.post(f"/api/models/{parent['id']}/fork")
    assert r.status_code == 201, r.text
    child = r.json()
    assert (child["step"], child["parent"]) == (33, {"id": parent["id"], "step": 33})
    assert get(ckpt, f"/api/models/{child['id']}/parameters") == get(ckpt, f"/api/models/{parent['id']}/parameters")
    assert get(ckpt, f"/api/models/{child['id']}/history") == get(ckpt, f"/api/models/{parent['id']}/history")
    a, b = train(ckpt, parent["id"], 12), train(ckpt, child["id"], 12)
    assert a == b
    assert get(ckpt, f"/api/models/{parent['id']}")["parent"] is None
    assert [c["step"] for c in get(ckpt, f"/api/models/{child['id']}/checkpoints")] == [33, 40]
