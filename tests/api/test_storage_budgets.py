"""Storage budgets: datasets have a count and a bytes quota (oldest evicted), checkpoints a bytes budget
per model (oldest pruned), and GET /history a default max_points."""
from __future__ import annotations

from app.engine import Model

from .utils import SMALL, client_for, create, make_app

NO_DATASET = {"detail": [{"loc": ["body", "data", "dataset_id"], "msg": "no uploaded dataset has this id",
                          "type": "value_error"}]}
CSV = "x1,x2,y\n" + "".join(f"{i / 10},{(i * 3) % 7},{i % 2}\n" for i in range(20))  # 20 rows: 60 values


def spec_on(dataset_id: str) -> dict:
    return {"layers": [{"units": 3, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}], "loss": "bce",
            "data": {"dataset_id": dataset_id}}


def test_past_the_dataset_count_the_oldest_datasets_are_evicted():
    with client_for(make_app(max_datasets=3)) as client:
        ids = [client.post("/api/datasets", json={"csv": CSV}).json()["id"] for _ in range(3)]
        built = create(client, spec_on(ids[0]))  # built before its dataset goes: keeps its own rows
        ids += [client.post("/api/datasets", json={"csv": CSV}).json()["id"] for _ in range(2)]
        for gone in ids[:2]:
            r = client.post("/api/models", json=spec_on(gone))
            assert (r.status_code, r.json()) == (422, NO_DATASET)
        for kept in ids[2:]:
            assert client.post("/api/models", json=spec_on(kept)).status_code == 201
        assert client.post(f"/api/models/{built['id']}/train", json={"steps": 3}).json()["step"] == 3
        assert len(client.app.state.services.store.list_datasets()) == 3


def test_past_the_dataset_bytes_the_oldest_datasets_are_evicted_and_one_too_large_is_413():
    one = 20 * 3 * 8  # 20 rows of x1, x2, y as float64
    with client_for(make_app(max_dataset_bytes=int(2.5 * one))) as client:
        ids = [client.post("/api/datasets", json={"csv": CSV}).json()["id"] for _ in range(4)]
        assert [i for i, _, n in client.app.state.services.store.list_datasets()] == ids[2:]
        assert client.post("/api/models", json=spec_on(ids[1])).json() == NO_DATASET
        big = "x1,x2,y\n" + "".join(f"{i},{i},{i % 2}\n" for i in range(60))
        r = client.post("/api/datasets", json={"csv": big})
        assert (r.status_code, r.json()) == (413, {"detail": f"the dataset needs {60 * 3 * 8} bytes; the server keeps "
                                                             f"at most {int(2.5 * one)} bytes of datasets "
                                                             "(PLAYGROUND_MAX_DATASET_BYTES)"})
        assert [i for i, _, n in client.app.state.services.store.list_datasets()] == ids[2:]  # nothing changed


def test_checkpoints_past_the_bytes_budget_are_pruned_oldest_first():
    size = len(Model(SMALL).to_bytes())  # a checkpoint keeps the state and no history
    with client_for(make_app(checkpoint_every=10, checkpoint_bytes_per_model=3 * size + size // 2)) as client:
        mid = create(client, SMALL)["id"]
        assert client.post(f"/api/models/{mid}/train", json={"steps": 100}).status_code == 200
        steps = [c["step"] for c in client.get(f"/api/models/{mid}/checkpoints").json()]
        assert steps == [80, 90, 100]
        assert sum(n for _, n in client.app.state.services.store.checkpoint_sizes(mid)) <= 3 * size + size // 2
        fork = client.post(f"/api/models/{mid}/fork", json={"step": 95})
        assert fork.status_code == 201 and fork.json()["step"] == 90


def test_history_answers_at_most_max_points_by_default_first_and_last_kept():
    with client_for(make_app(history_max_points=50)) as client:
        mid = create(client, SMALL)["id"]
        client.post(f"/api/models/{mid}/train", json={"steps": 500})
        h = client.get(f"/api/models/{mid}/history").json()
        assert len(h["step"]) == 50 and h["step"][0] == 1 and h["step"][-1] == 500
        assert len(h["eval"]["step"]) <= 50 and h["eval"]["step"][-1] == 500
        full = client.get(f"/api/models/{mid}/history", params={"max_points": 1000}).json()
        assert full["step"] == list(range(1, 501))
