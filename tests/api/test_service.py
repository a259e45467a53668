"""ModelRepository: the per-process cache against the stored version, lazy saves and flush, and
concurrency through the API (parallel training on one model, no blocking across models)."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from app.config import Settings
from app.engine import Model
from app.service import Services
from app.service.errors import Kind, NotFound
from app.store import SqliteStore

from .utils import SMALL, XOR, client_for, create, make_app


@pytest.fixture
def db(tmp_path) -> str:
    return str(tmp_path / "db.sqlite3")


class _Service:
    """The repository with a build() that goes through the same checks as the API."""

    def __init__(self, services: Services):
        self.services = services

    def __getattr__(self, name):
        return getattr(self.services.models, name)

    def build(self, spec):
        return self.services.build(spec)


def service(db: str, **settings):
    return _Service(Services(SqliteStore(db), Settings(store=f"sqlite:///{db}", **settings)))


# -- cache and versions --------------------------------------------------------------------------
def test_a_cached_model_is_reloaded_when_another_process_saved_it(db):
    a, b = service(db), service(db)
    mid, _ = a.create(model=a.build(SMALL))
    with a.use(mid) as m:
        assert m.step == 0  # now cached in a
    with b.use(mid, save=True) as m:
        m.train(7)
    with a.use(mid) as m:
        assert m.step == 7
        ref = Model(SMALL)
        ref.train(7)
        np.testing.assert_array_equal(m.net.params, ref.net.params)
    assert a.status(mid).status.step == 7


def test_lazy_saves_wait_for_the_interval_and_flush_saves_now(db):
    a, b = service(db, save_interval=1000), service(db)
    mid, _ = a.create(model=a.build(SMALL))
    with a.use(mid, save="lazy") as m:
        m.train(5)
    assert a.status(mid).status.step == 5  # the live model answers for its unsaved steps
    assert b.status(mid).status.step == 0  # not stored yet
    a.flush(mid)
    assert b.status(mid).status.step == 5
    with b.use(mid) as m:
        assert m.step == 5


def test_lazy_saves_are_written_once_the_interval_has_passed(db):
    a, b = service(db, save_interval=0.0), service(db)
    mid, _ = a.create(model=a.build(SMALL))
    with a.use(mid, save="lazy") as m:
        m.train(3)
    assert b.status(mid).status.step == 3


def test_the_cache_is_bounded_but_never_drops_unsaved_steps(db):
    s = service(db, cache_size=2, save_interval=1000)
    ids = [s.create(model=s.build(XOR))[0] for _ in range(3)]
    assert len(s._live) == 2
    with s.use(ids[0], save="lazy") as m:  # reloaded from the store, then left dirty
        m.train(2)
    for mid in ids[1:]:
        with s.use(mid):
            pass
    assert ids[0] in s._live and s._live[ids[0]].dirty
    s.flush(ids[0])
    assert SqliteStore(db).get_status(ids[0])[1]["step"] == 2


def test_use_of_an_unknown_or_deleted_model_is_404(db):
    s = service(db)
    mid, _ = s.create(model=s.build(XOR))
    s.delete(mid)
    for model_id in (mid, "neverExisted"):
        with pytest.raises(NotFound) as e:
            with s.use(model_id):
                pass
        assert (e.value.kind, e.value.detail) == (Kind.NOT_FOUND, f"model {model_id} not found")
    with pytest.raises(NotFound) as e:
        s.delete(mid)
    assert e.value.kind is Kind.NOT_FOUND


def test_eviction_picks_the_least_recently_used_model(db):
    s = service(db, max_models=2, protect_recent_seconds=0, touch_interval=0)
    first, _ = s.create(model=s.build(XOR))
    time.sleep(0.01)
    second, _ = s.create(model=s.build(XOR))
    time.sleep(0.01)
    with s.use(first, save=True) as m:
        m.train(1)
    time.sleep(0.01)
    third, _ = s.create(model=s.build(XOR))
    assert s.store.get_status(second) is None
    assert s.store.get_status(first) is not None and s.store.get_status(third) is not None
    assert second not in s._live


# -- concurrency through the API -----------------------------------------------------------------
@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_parallel_training_on_one_model_loses_no_update(tmp_path, store):
    url = "memory://" if store == "memory" else f"sqlite:///{tmp_path / 'db.sqlite3'}"
    # 8 calls at once from one address with one token: above the default concurrency caps (fairness.py)
    with client_for(make_app(store=url, concurrent_per_client=8, concurrent_per_token=8)) as client:
        mid = create(client, SMALL)["id"]
        barrier = threading.Barrier(8)

        def train(_):
            barrier.wait()
            r = client.post(f"/api/models/{mid}/train", json={"steps": 50})
            assert r.status_code == 200, r.text
            return r.json()

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(train, range(8)))
        assert sorted(r["step"] for r in results) == list(range(50, 401, 50))
        assert all(r["steps_done"] == 50 for r in results)
        assert client.get(f"/api/models/{mid}").json()["step"] == 400
        assert len(client.get(f"/api/models/{mid}/history").json()["step"]) == 400
        # the calls ran one after another: together they are exactly one 400-step run
        ref = Model(SMALL)
        losses = [x for r in sorted(results, key=lambda r: r["step"]) for x in r["losses"]]
        assert losses == ref.train(400).losses
        W = client.get(f"/api/models/{mid}/parameters").json()["layers"][0]["W"]
        np.testing.assert_array_equal(W, ref.net.dense[0].params["W"])


def test_a_long_training_call_does_not_block_other_models():
    app = make_app(train_time_budget=3.0, max_steps=100_000_000)
    with client_for(app) as client:
        busy, other = create(client, SMALL)["id"], create(client, XOR)["id"]
        done: dict[str, float] = {}
        result: dict = {}

        def long_call():
            result["started"] = time.monotonic()
            result["body"] = client.post(f"/api/models/{busy}/train", json={"steps": 100_000_000}).json()
            done["long"] = time.monotonic()

        t = threading.Thread(target=long_call)
        t.start()
        time.sleep(0.5)  # let the long call take the model's lock
        assert "long" not in done
        took = {}
        for name, call in [
            ("health", lambda: client.get("/api/health").json() == {"status": "ok"}),
            ("get other", lambda: client.get(f"/api/models/{other}").status_code == 200),
            ("train other", lambda: client.post(f"/api/models/{other}/train", json={"steps": 20}).json()["step"] == 20),
            ("parameters of other", lambda: client.get(f"/api/models/{other}/parameters").status_code == 200),
            ("status of busy", lambda: client.get(f"/api/models/{busy}").status_code == 200),  # needs no lock
        ]:
            started = time.monotonic()
            assert call(), name
            took[name] = time.monotonic() - started
        done["others"] = time.monotonic()
        t.join(30)
        assert result["body"]["stopped"] == "time_budget"
        assert done["others"] < done["long"], took  # everything else finished while the long call ran
        # (no bound on the time each took: the suite asserts no timing; bench/bench_load.py measures latency)


# -- leases and compare-and-swap saves across processes (two repositories on one file) -------------
def test_a_playing_stream_holds_the_model_against_other_processes_writers(db):
    from app.service.errors import Conflict

    a, b = service(db, save_interval=1000, lease_wait=0), service(db, lease_wait=0)
    mid, _ = a.create(model=a.build(SMALL))
    with a.use(mid, save="lazy") as m:  # A streams: unsaved steps, and the lease
        m.train(5)
    with pytest.raises(Conflict) as e:
        with b.use(mid, save=True) as m:
            m.train(3)
    assert (e.value.kind, e.value.detail) == (Kind.CONFLICT, "the model is playing elsewhere; pause it first")
    with b.use(mid) as m:  # reads go on (from the last save)
        assert m.step == 0
    a.release(mid)  # pause: A saves its 5 steps and gives the lease up
    with b.use(mid, save=True) as m:
        m.train(3)
    assert b.status(mid).status.step == 8
    with a.use(mid, save="lazy") as m:  # A plays on from B's newer save: nothing lost either way
        assert m.step == 8
        m.train(2)
    a.release(mid)
    with b.use(mid) as m:
        assert m.step == 10 and m.history.columns()["step"].tolist() == list(range(1, 11))


def test_a_delete_from_another_process_waits_for_the_stream_like_any_writer(db):
    from app.service.errors import Conflict

    a, b = service(db, save_interval=1000, lease_wait=0), service(db, lease_wait=0)
    mid, _ = a.create(model=a.build(SMALL))
    with a.use(mid, save="lazy") as m:  # A plays: unsaved steps under its lease
        m.train(5)
    with pytest.raises(Conflict) as e:
        b.delete(mid)
    assert (e.value.kind, e.value.detail) == (Kind.CONFLICT, "the model is playing elsewhere; pause it first")
    assert b.status(mid).status.step == 0  # still there
    a.release(mid)
    b.delete(mid)
    with pytest.raises(NotFound):
        b.status(mid)


def test_checkpoints_of_a_model_deleted_elsewhere_end_in_not_found(db):
    a, b = service(db, checkpoint_every=10), service(db)
    mid, _ = a.create(model=a.build(SMALL))
    with a.use(mid) as m:
        b.services.store.delete(mid)  # as a delete that got in after A's lease lapsed
        with pytest.raises(NotFound) as e:
            a.train(mid, m, 25, 60.0)
    assert e.value.detail == f"model {mid} not found"


def test_a_lazy_use_that_trains_nothing_leaves_nothing_unsaved(db):
    a, b = service(db, save_interval=1000), service(db, lease_wait=0)
    mid, _ = a.create(model=a.build(SMALL))
    with a.use(mid, save="lazy"):  # a stream's visit that only sent a frame
        pass
    a.release(mid)
    assert b.services.store.get_status(mid)[1]["version"] == 1  # nothing to save: no write
    with b.use(mid, save=True) as m:
        m.train(4)
    assert a.status(mid).status.step == 4  # A answers from the store, not from a stale live copy


def test_a_save_over_a_newer_version_is_refused_and_changes_nothing(db):
    from app.service.errors import Conflict

    a, b = service(db), service(db)
    mid, _ = a.create(model=a.build(SMALL))
    with a.use(mid) as m:
        assert m.step == 0  # cached in A at version 1
    with b.use(mid, save=True) as m:
        m.train(4)  # version 2, written by B
    live = a._live[mid]
    live.model.train(1)  # as if A had trained its stale copy outside the lock
    with pytest.raises(Conflict) as e:
        a._save(mid, live)
    assert e.value.detail == "the model was changed elsewhere during this call; nothing was saved, try again"
    assert b.status(mid).status.step == 4
    with a.use(mid) as m:  # A reloads and goes on from the newer state
        assert m.step == 4


def test_the_live_cache_is_bounded_by_bytes_too(db):
    from app.service.repository import model_bytes

    one = model_bytes(Model(XOR))
    s = service(db, cache_size=100, cache_bytes=2 * one + one // 2, save_interval=1000)
    ids = [s.create(model=s.build(XOR))[0] for _ in range(4)]
    assert list(s._live) == ids[2:]  # two fit; the least recently used went first
    with s.use(ids[0], save="lazy") as m:  # reloaded, then left with unsaved steps
        m.train(1)
    for mid in ids[1:]:
        with s.use(mid):
            pass
    assert ids[0] in s._live and sum(x.nbytes for x in s._live.values()) <= 3 * one  # unsaved steps stay
    s.flush(ids[0])


# -- checkpoints ---------------------------------------------------------------------------------
def _spy_checkpoint_writes(svc) -> list:
    """Each store.put_checkpoints call's steps, in order."""
    calls, store = [], svc.services.store
    real = store.put_checkpoints

    def spy(model_id, checkpoints, *args, **kw):
        calls.append([c[0] for c in checkpoints])
        return real(model_id, checkpoints, *args, **kw)

    store.put_checkpoints = spy
    return calls


def test_a_train_calls_checkpoints_are_written_together_on_exact_steps(db):
    svc = service(db, checkpoint_every=10, checkpoints_kept=50)
    mid, _ = svc.create(model=svc.build(SMALL))
    writes = _spy_checkpoint_writes(svc)
    with svc.use(mid, save=True) as m:
        svc.train(mid, m, 35, 60.0)
        svc.train(mid, m, 40, 60.0)
    assert writes == [[10, 20, 30], [40, 50, 60, 70]]  # one store write per call
    ref = Model(SMALL)
    for step in (30, 70):
        ref.train(step - ref.step)
        assert svc.checkpoint_at_or_before(mid, step)[0] == ref.to_bytes()


def test_a_calls_checkpoints_are_bounded_while_they_wait(db, monkeypatch):
    from app.service import repository
    svc = service(db, checkpoint_every=10, checkpoints_kept=3)
    mid, _ = svc.create(model=svc.build(SMALL))
    writes = _spy_checkpoint_writes(svc)
    with svc.use(mid, save=True) as m:
        svc.train(mid, m, 100, 60.0)  # ten checkpoints: only the newest three would be kept
        monkeypatch.setattr(repository, "CHECKPOINT_BATCH_BYTES", 2 * len(m.to_bytes()))
        svc.train(mid, m, 60, 60.0)  # two checkpoints' bytes: written two at a time
    assert writes == [[80, 90, 100], [110, 120], [130, 140], [150, 160]]
    assert [s for s, _, _ in svc.checkpoints(mid)] == [140, 150, 160]
