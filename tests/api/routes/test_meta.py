"""GET /api/health, GET /api/catalog, the OpenAPI document, and the last-resort error handler."""
from __future__ import annotations

from fastapi.testclient import TestClient

from app.api.schemas import DatasetName
from app.engine.activations import ACTIVATIONS
from app.engine.losses import LOSSES

from ..utils import make_app


def test_health(client):
    r = client.get("/api/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_catalog_lists_every_choice_the_spec_accepts(client):
    r = client.get("/api/catalog")
    assert r.status_code == 200
    c = r.json()
    assert [a["name"] for a in c["activations"]] == list(ACTIVATIONS)
    assert {a["name"] for a in c["activations"] if a["output_only"]} == {"softmax"}
    assert [x["name"] for x in c["losses"]] == list(LOSSES)
    assert {x["name"]: x["requires_output"] for x in c["losses"]} == {
        "mse": None, "bce": "sigmoid", "cross_entropy": "softmax"}
    assert [o["name"] for o in c["optimizers"]] == ["sgd", "momentum", "adam"]
    assert [i["name"] for i in c["inits"]] == ["xavier", "he", "normal"]
    assert c["regularizations"] == ["none", "l1", "l2"]
    assert [d["name"] for d in c["datasets"]] == list(DatasetName.__args__)
    assert [f["name"] for f in c["features"]] == ["x1", "x2", "x1sq", "x2sq", "x1x2", "sinx1", "sinx2"]
    assert c["dtypes"] == ["float64", "float32"]
    assert c["defaults"]["loss"] == "bce" and c["defaults"]["batch_size"] == 10


def test_catalog_reports_the_configured_limits_but_not_the_store():
    c = TestClient(make_app(max_layers=3, max_resolution=17, at_model_limit="refuse")).get("/api/catalog").json()
    assert c["limits"]["max_layers"] == 3
    assert c["limits"]["max_resolution"] == 17
    assert c["limits"]["at_model_limit"] == "refuse"
    assert "store" not in c["limits"]


def test_openapi_documents_every_endpoint(client):
    paths = client.get("/openapi.json").json()["paths"]
    expected = {
        "/api/health": {"get"}, "/api/catalog": {"get"}, "/api/models": {"post"},
        "/api/models/{model_id}": {"get", "patch", "delete"},
        "/api/models/{model_id}/reset": {"post"}, "/api/models/{model_id}/train": {"post"},
        "/api/models/{model_id}/parameters": {"get", "put"},
        "/api/models/{model_id}/gradients": {"get", "post"}, "/api/models/{model_id}/predict": {"post"},
        "/api/models/{model_id}/history": {"get"}, "/api/models/{model_id}/gradcheck": {"post"},
        "/api/models/{model_id}/trace": {"get"}, "/api/models/{model_id}/check": {"post"},
        "/api/models/{model_id}/boundary": {"get"}, "/api/models/{model_id}/data": {"get"},
        "/api/class/status": {"get"}, "/api/class/models": {"get"}, "/api/class/curves": {"get"},
        "/api/class/hidden-test": {"put", "delete"}, "/api/class/leaderboard": {"get"}, "/api/class/gallery": {"get"},
        "/api/derive/examples": {"get"}, "/api/models/{model_id}/derive": {"post"},
        "/api/models/{model_id}/derive/examples": {"get"},
        "/api/class/preset": {"put", "delete"}, "/api/class/freeze": {"put"},
        "/api/datasets": {"post"}, "/api/datasets/{dataset_id}": {"get"},
        "/api/models/import": {"post"}, "/api/models/{model_id}/export": {"get"},
        "/api/models/{model_id}/checkpoints": {"get"}, "/api/models/{model_id}/fork": {"post"},
        "/api/models/{model_id}/derive": {"post"}, "/api/models/{model_id}/derive/examples": {"get"},
        "/api/derive/examples": {"get"},
    }
    assert {p: set(ops) for p, ops in paths.items()} == expected


def test_an_unexpected_error_is_a_bare_500_without_a_stack_trace(monkeypatch):
    app = make_app()
    client = TestClient(app, raise_server_exceptions=False)

    def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(app.state.services.models, "create", boom)
    r = client.post("/api/models", json={})
    assert r.status_code == 500
    assert r.json() == {"detail": "internal server error"}
    assert "secret" not in r.text and "Traceback" not in r.text
