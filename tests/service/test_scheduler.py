"""The training scheduler (app/service/scheduler.py) on its own: leases after a pause, and a heavy job kept
to its share of the training thread. No timing is asserted; waits have generous bounds only."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import pytest

from app.config import Settings
from app.engine import Model
from app.engine.model import TrainResult
from app.service import Services
from app.service.scheduler import Scheduler
from app.store import SqliteStore

from ..api.utils import SMALL


def wait_until(cond, what: str, bound: float = 30.0) -> None:
    deadline = time.monotonic() + bound
    while not cond():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.002)


def render(model, losses, loss_steps, playing) -> str:
    return f"{model.step}:{playing}"


@pytest.fixture
def two_processes(tmp_path):
    """Process A (its services and scheduler) and process B's services on one SQLite file, a model made in A."""
    db = str(tmp_path / "db.sqlite3")
    a = Services(SqliteStore(db), Settings(store=f"sqlite:///{db}", save_interval=1000))
    b = Services(SqliteStore(db), Settings(store=f"sqlite:///{db}", lease_wait=0))
    mid, _ = a.models.create(model=a.build(SMALL))
    sched = Scheduler(a.models, fps=30)
    yield a, b, mid, sched
    sched.stop()


def test_a_pause_frame_sent_after_the_client_read_late_gives_the_lease_back(two_processes):
    """The pause's frame waits while the client has not read the previous one; the visit that finally
    sends it must not keep the model's lease, or writers in other processes wait until it lapses."""
    a, b, mid, sched = two_processes
    job = sched.open_stream(mid, render, notify=lambda: None)
    job.command("play")
    wait_until(lambda: job.pending == 1, "a frame waiting for the client")  # the client is not reading
    job.command("pause")
    wait_until(lambda: not job.commands and not job.playing and b.store.lease_holder(mid) is None,
               "the pause processed, and the lease given up")
    assert job.pending == 1  # the pause's frame still waits for the client
    job.take()  # the client reads at last: the pause's frame goes out
    wait_until(lambda: job.pending == 1, "the pause frame")
    paused_at = int(job.take()[-1].split(":")[0])
    assert b.store.lease_holder(mid) is None
    with b.models.use(mid, save=True) as m:  # another process writes at once, from the paused step
        assert m.step == paused_at
        m.train(1)
    assert a.models.status(mid).status.step == paused_at + 1  # and this process sees that write


def test_a_train_call_beside_a_playing_stream_of_the_same_model_leaves_it_the_lease(two_processes):
    """The call saves its steps when it ends, but the lease stays while this process's stream plays the model:
    another process must not take the model from under the student who pressed Play."""
    from app.service.errors import Conflict

    a, b, mid, sched = two_processes
    job = sched.open_stream(mid, render, notify=lambda: None)
    job.command("play")
    wait_until(lambda: b.store.lease_holder(mid) == a.models.lease_owner, "the stream's lease")
    r = sched.train(mid, 20_000, 60.0)  # beside a stream: slices in turns, then saved and handed back
    assert r.steps_done == 20_000
    assert b.store.lease_holder(mid) == a.models.lease_owner
    with pytest.raises(Conflict):
        with b.models.use(mid, save=True):
            pass
    job.command("pause")
    wait_until(lambda: b.store.lease_holder(mid) is None, "the pause gives the lease up")


class _TimedService:
    """A stand-in for the repository: each model's training costs `cost[model_id]` seconds per visit (a big
    model's one step cannot be cut to a slice), and visits are counted."""

    def __init__(self, cost: dict[str, float]):
        self.cost, self.visits = cost, {k: 0 for k in cost}
        self.models = {k: Model(SMALL) for k in cost}
        self.settings = Settings()

    @contextmanager
    def use(self, model_id, save=False):
        yield self.models[model_id]

    def train(self, model_id, model, steps, budget):
        self.visits[model_id] += 1
        end = time.perf_counter() + max(self.cost[model_id], budget or 0.0)
        while time.perf_counter() < end:  # CPU, as training is
            pass
        model.step += 1
        return TrainResult(step=model.step, epoch=0, steps_done=1, losses=[0.5], train_loss=0.5, test_loss=None,
                           diverged=False, diverged_at=None, stopped="done")

    def flush(self, model_id):
        pass

    release = flush


def test_a_job_whose_turns_cost_far_more_than_a_slice_gets_fewer_turns():
    heavy = {"heavy": 0.08}
    light = {f"light{i}": 0.0 for i in range(3)}  # 0: train for the slice the scheduler gives
    service = _TimedService({**heavy, **light})
    sched = Scheduler(service, fps=30)
    jobs = [sched.open_stream(k, render, notify=lambda: None) for k in service.cost]
    reader = threading.Event()

    def read() -> None:  # every client reads as fast as frames come
        while not reader.is_set():
            for j in jobs:
                j.take()
            time.sleep(0.001)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    try:
        for j in jobs:
            j.command("play")
        # from the 20th turn on (a job's weight is a running mean, so pacing settles after a few turns)
        wait_until(lambda: min(service.visits[k] for k in light) >= 20, "20 turns of each light stream")
        start = dict(service.visits)
        wait_until(lambda: min(service.visits[k] for k in light) >= 60, "60 turns of each light stream")
        counts = {k: n - start[k] for k, n in service.visits.items()}
    finally:
        reader.set()
        sched.stop()
        t.join(5)
    # round-robin alone would give the heavy stream as many turns as each light one; paced to its share it
    # waits ~4 x its cost (320 ms) between turns while the light ones come every frame period (33 ms)
    assert counts["heavy"] <= min(counts[k] for k in light) / 2, counts
