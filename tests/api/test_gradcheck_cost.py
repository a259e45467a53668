"""Gradcheck is bounded: rows x checked entries x parameters within gradcheck_max_cost (sent rows past
it are a 422, training rows and entries are capped), and it runs on a copy outside the model's lock, so
the owner's training is never refused while it runs."""
from __future__ import annotations

import threading

from fastapi.testclient import TestClient

from .utils import call_then_leave, make_app

LARGE = {"layers": [{"units": 256, "activation": "tanh"}] * 8 + [{"units": 1, "activation": "sigmoid"}],
         "loss": "bce", "data": {"dataset": "circle", "samples": 200}}
LIMIT = 2_000_000_000  # the default


def tensor_sizes(client: TestClient, mid: str) -> list[int]:
    layers = client.get(f"/api/models/{mid}/parameters").json()["layers"]
    return [n for layer in layers for n in (len(layer["W"]) * len(layer["W"][0]), len(layer["b"]))]


def test_ten_thousand_sent_rows_on_a_large_net_are_refused_naming_the_rows_that_fit():
    with TestClient(make_app()) as client:
        made = client.post("/api/models", json=LARGE).json()
        mid = made["id"]
        sizes = tensor_sizes(client, mid)
        entries, params = sum(min(64, n) for n in sizes), sum(sizes)
        X = [[(i % 100) / 50 - 1, (i % 37) / 18 - 1] for i in range(10_000)]
        y = [[i % 2] for i in range(10_000)]
        r = client.post(f"/api/models/{mid}/gradcheck", json={"X": X, "y": y})
        assert r.status_code == 422
        assert r.json() == {"detail": [{"loc": ["body", "X"], "type": "value_error", "msg":
                                        f"10000 rows x {entries} checked entries x {params} parameters exceeds the "
                                        f"gradcheck cost limit {LIMIT}; send at most {LIMIT // (entries * params)} "
                                        "rows"}]}


def test_without_rows_the_training_rows_and_entries_are_capped_to_the_limit():
    with TestClient(make_app(gradcheck_max_cost=50_000_000)) as client:
        mid = client.post("/api/models", json=LARGE).json()["id"]
        sizes = tensor_sizes(client, mid)
        r = client.post(f"/api/models/{mid}/gradcheck")
        assert r.status_code == 200, r.text
        checked = [t["checked"] for layer in r.json()["layers"] for t in (layer["W"], layer["b"])]
        assert sum(checked) * sum(sizes) <= 50_000_000  # one row at most this many entries
        assert max(checked) < 64  # fewer than the default entries per tensor


def test_a_network_too_large_for_one_row_and_entry_is_refused():
    with TestClient(make_app(gradcheck_max_cost=1000)) as client:
        mid = client.post("/api/models", json=LARGE).json()["id"]
        sizes = tensor_sizes(client, mid)
        r = client.post(f"/api/models/{mid}/gradcheck")
        assert (r.status_code, r.json()["detail"][0]["loc"]) == (422, ["path", "model_id"])
        assert r.json()["detail"][0]["msg"] == (f"1 rows x {len(sizes)} checked entries x {sum(sizes)} parameters "
                                                "exceeds the gradcheck cost limit 1000: the network is too large to "
                                                "check under PLAYGROUND_GRADCHECK_MAX_COST")


def test_the_owners_training_is_never_refused_while_a_gradcheck_runs(monkeypatch):
    from app.api.routes import inspect

    copied = threading.Semaphore(0)

    def copy_and_tell(net):  # the gradcheck's snapshot, taken under the model's lock
        out = real_copy(net)
        copied.release()
        return out

    real_copy = inspect.float64_copy
    monkeypatch.setattr(inspect, "float64_copy", copy_and_tell)
    # a lock wait this short turns any train call that waits for a running gradcheck into a 503
    with TestClient(make_app(lock_timeout=0.5)) as client:
        made = client.post("/api/models", json=LARGE).json()
        mid, auth = made["id"], {"Authorization": f"Bearer {made['token']}"}
        checks, trains = [], []

        def check() -> None:
            r = client.post(f"/api/models/{mid}/gradcheck")
            checks.append(r.status_code if r.status_code == 200 else (r.status_code, r.text))

        threads = [threading.Thread(target=check) for _ in range(2)]
        for t in threads:
            t.start()
        for _ in threads:
            assert copied.acquire(timeout=60)  # both gradchecks now compute on their copies
        while any(t.is_alive() for t in threads) or not trains:
            trains.append(client.post(f"/api/models/{mid}/train", json={"steps": 2}, headers=auth).status_code)
        for t in threads:
            t.join()
        assert checks == [200, 200]
        assert set(trains) == {200}, trains
        assert client.get(f"/api/models/{mid}").json()["step"] == 2 * len(trains)


def test_a_gradcheck_stops_when_its_client_leaves():
    """The client sends its request, then disconnects. A check that would run for minutes (a large net, a
    cost limit far above it) ends with the 499 the route gives a departed client."""
    app = make_app(gradcheck_max_cost=10**15, gradcheck_max_entries=10**6)
    with TestClient(app) as client:
        mid = client.post("/api/models", json=LARGE).json()["id"]
    sent = call_then_leave(app, "POST", f"/api/models/{mid}/gradcheck", {"X": [[0.1, 0.2]] * 50, "y": [[1]] * 50})
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 499
