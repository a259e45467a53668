"""Upgrades keep the class: stores written by release 5b7985d (tests/fixtures, made by
make_release_store.py from that commit) open after migration on SQLite and on Redis, and every model
keeps its step, parameters, history, token, checkpoints and parent and trains on; the uploaded dataset
and the class settings (freeze, preset, hidden test set) survive."""
from __future__ import annotations

import base64
import hashlib
import json
import shutil
import sqlite3
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.store import open_store
from app.store.base import FORMAT_VERSION, NewerFormat
from tests.api.test_byte_quota import stored_bytes

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MANIFEST = json.loads((FIXTURES / "release-5b7985d.json").read_text())


def checksum(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def app_on(url: str):
    return create_app(Settings(store=url, admin_token=MANIFEST["admin_token"], checkpoint_every=50,
                               rate_limit_per_client=0, rate_limit_per_token=0))


def check_the_class_survived(client: TestClient, manifest: dict) -> None:
    admin = {"Authorization": f"Bearer {manifest['admin_token']}"}
    status = client.get("/api/class/status").json()
    assert {k: status[k] for k in manifest["class_status"]} == manifest["class_status"]  # frozen, with the preset
    board = client.get("/api/class/leaderboard", headers=admin).json()
    assert board["hidden_rows"] == 3  # the hidden test set is still there
    listed = {r["id"] for r in board["ranked"] + board["apart"]}  # one row per student: their best model
    assert listed and listed <= {m["id"] for m in manifest["models"].values()}
    for name, m in manifest["models"].items():
        mid, auth = m["id"], {"Authorization": f"Bearer {m['token']}"}
        status = client.get(f"/api/models/{mid}").json()
        assert (status["step"], status["nickname"], status["parent"]) == (m["step"], m["nickname"], m["parent"]), name
        params = client.get(f"/api/models/{mid}/parameters").json()
        assert checksum({"layers": [{"W": layer["W"], "b": layer["b"]} for layer in params["layers"]]}) \
            == m["parameters_sha256"], name
        history = client.get(f"/api/models/{mid}/history", params={"max_points": 1_000_000}).json()
        assert len(history["step"]) == m["history_steps"] and checksum(history) == m["history_sha256"], name
        assert [c["step"] for c in client.get(f"/api/models/{mid}/checkpoints").json()] == m["checkpoints"], name
        r = client.post(f"/api/models/{mid}/train", json={"steps": 5}, headers=auth)
        assert (r.status_code, r.json()) == (423, {"detail": "training is frozen by the instructor"})
    assert client.put("/api/class/freeze", json={"frozen": False}, headers=admin).status_code == 200
    for name, m in manifest["models"].items():
        mid, auth = m["id"], {"Authorization": f"Bearer {m['token']}"}
        assert client.post(f"/api/models/{mid}/train", json={"steps": 5},
                           headers={"Authorization": "Bearer " + "0" * 64}).status_code == 403
        r = client.post(f"/api/models/{mid}/train", json={"steps": 5}, headers=auth)  # the old token works
        assert r.status_code == 200 and r.json()["step"] == m["step"] + 5, name
        history = client.get(f"/api/models/{mid}/history", params={"max_points": 1_000_000}).json()["step"]
        assert history == list(range(1, m["step"] + 6)), name  # one entry per step, old and new
    fork = client.post(f"/api/models/{manifest['models']['trained']['id']}/fork", json={"step": 120})
    assert fork.status_code == 201 and fork.json()["step"] == 100  # from a release checkpoint
    made = client.post("/api/models", json={"data": {"dataset_id": manifest["dataset_id"]}, "layers": [
        {"units": 3, "activation": "tanh"}, {"units": 2, "activation": "softmax"}], "loss": "cross_entropy"})
    assert made.status_code == 201, made.text  # the release's uploaded dataset, now a compact record
    assert made.json()["spec"]["data"]["n_train"] + made.json()["spec"]["data"]["n_test"] == manifest["dataset_rows"]


def test_a_release_sqlite_store_opens_migrated_and_the_class_goes_on(tmp_path):
    db = tmp_path / "playground.sqlite3"
    shutil.copy(FIXTURES / "release-5b7985d.sqlite3", db)
    with sqlite3.connect(db) as raw:  # what the release wrote: no format marker, datasets as settings
        assert raw.execute("SELECT name FROM sqlite_master WHERE name = 'meta'").fetchone() is None
        assert raw.execute("SELECT COUNT(*) FROM settings WHERE key LIKE 'dataset.%'").fetchone()[0] == 1
    with TestClient(app_on(f"sqlite:///{db}")) as client:
        store = client.app.state.services.store
        assert store.format_version() == FORMAT_VERSION
        assert [i for i, _, _ in store.list_datasets()] == [MANIFEST["dataset_id"]]
        check_the_class_survived(client, MANIFEST)
        assert store.bytes_used() == stored_bytes(store) > 0  # counted on migration, then by every write
    with sqlite3.connect(db) as raw:  # vacuumed once into incremental mode: a deleted class gives its disk back
        assert raw.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    with TestClient(app_on(f"sqlite:///{db}")) as client:  # opening again migrates nothing twice
        assert client.app.state.services.store.format_version() == FORMAT_VERSION
        mid = MANIFEST["models"]["trained"]["id"]
        assert client.get(f"/api/models/{mid}").json()["step"] == MANIFEST["models"]["trained"]["step"] + 5


def test_a_store_from_a_newer_release_is_refused_not_damaged(tmp_path):
    db = tmp_path / "playground.sqlite3"
    open_store(f"sqlite:///{db}").close()
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE meta SET value = '99' WHERE key = 'format_version'")
    with pytest.raises(NewerFormat) as e:
        open_store(f"sqlite:///{db}")
    assert "store format 99" in str(e.value) and "upgrade the server" in str(e.value)


@pytest.mark.redis
def test_a_release_redis_store_opens_migrated_and_the_class_goes_on(redis_server):
    import redis

    snapshot = json.loads((FIXTURES / "release-5b7985d.redis.json").read_text())
    prefix = f"r{uuid.uuid4().hex[:10]}:"
    raw = redis.Redis.from_url(redis_server)
    for k, entry in snapshot["keys"].items():  # restored under a fresh prefix: the layout is prefix-relative
        key = prefix + base64.b64decode(k).decode()[len("playground:"):]
        value = entry["value"]
        if entry["type"] == "string":
            raw.set(key, base64.b64decode(value))
        elif entry["type"] == "hash":
            raw.hset(key, mapping={base64.b64decode(f): base64.b64decode(v) for f, v in value.items()})
        else:
            raw.zadd(key, {base64.b64decode(m): score for m, score in value})
    assert raw.get(prefix + "format") is None
    with TestClient(app_on(f"{redis_server}?prefix={prefix}")) as client:
        store = client.app.state.services.store
        assert store.format_version() == FORMAT_VERSION
        manifest = {**snapshot["manifest"], "admin_token": MANIFEST["admin_token"]}
        check_the_class_survived(client, manifest)
        assert store.bytes_used() == stored_bytes(store) > 0  # counted on migration, then by every write
    assert not list(raw.scan_iter(match=f"{prefix}setting:dataset.*"))  # moved to dataset records
    raw.close()
