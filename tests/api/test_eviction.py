"""Eviction protects others' work: reads count as use, each address has a quota, a model used in the
last protect_recent_seconds is never evicted for someone else (507 instead)."""
from __future__ import annotations

from fastapi.testclient import TestClient

from .utils import XOR, make_app

CREATE_507 = {"detail": "the server holds its limit of 100 models and each was used in the last 600 seconds; "
                        "try again later or ask the operator to raise PLAYGROUND_MAX_MODELS"}


def test_300_creates_from_another_address_never_remove_a_model_read_recently():
    app = make_app(max_models=100, max_models_per_client=0)
    student = TestClient(app, client=("10.0.0.1", 5000))
    player = TestClient(app, client=("10.0.0.2", 5000))
    r = student.post("/api/models", json=XOR)
    assert r.status_code == 201
    mine = r.json()["id"]
    statuses = []
    for i in range(300):
        statuses.append(player.post("/api/models", json=XOR).status_code)
        if i % 50 == 0:  # the student is only watching: reads, no training
            assert student.get(f"/api/models/{mine}").status_code == 200
    assert student.get(f"/api/models/{mine}").status_code == 200
    assert student.get(f"/api/models/{mine}/parameters").status_code == 200
    # every one of the 300 was used moments ago too: once the store is full nothing can go
    assert statuses == [201] * 99 + [507] * 201
    r = player.post("/api/models", json=XOR)
    assert (r.status_code, r.json()) == (507, CREATE_507)
    assert app.state.services.store.count() == 100


def test_models_not_used_for_protect_recent_seconds_make_room_least_recently_used_first():
    app = make_app(max_models=3, protect_recent_seconds=0, touch_interval=0, max_models_per_client=0)
    student = TestClient(app, client=("10.0.0.1", 5000))
    player = TestClient(app, client=("10.0.0.2", 5000))
    ids = [student.post("/api/models", json=XOR).json()["id"] for _ in range(3)]
    assert student.get(f"/api/models/{ids[0]}/history").status_code == 200  # read: now the most recent use
    new = player.post("/api/models", json=XOR)
    assert new.status_code == 201
    assert student.get(f"/api/models/{ids[1]}").status_code == 404  # the least recently used went
    assert student.get(f"/api/models/{ids[0]}").status_code == 200


def test_the_per_address_quota_counts_only_that_address():
    app = make_app(max_models_per_client=3)
    a = TestClient(app, client=("10.0.0.1", 5000))
    b = TestClient(app, client=("10.0.0.2", 5000))
    made = [a.post("/api/models", json=XOR) for _ in range(4)]
    assert [r.status_code for r in made] == [201, 201, 201, 429]
    assert made[3].json() == {"detail": "this address holds its limit of 3 models; delete one first "
                                        "(PLAYGROUND_MAX_MODELS_PER_CLIENT)"}
    assert a.post(f"/api/models/{made[0].json()['id']}/fork").status_code == 429  # forks count too
    assert b.post("/api/models", json=XOR).status_code == 201
    assert app.state.services.store.count() == 4
