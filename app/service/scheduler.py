"""Training scheduler: one thread per process trains everything that trains, in turns.

Why one dedicated thread, round-robin, with a slice that shrinks as more jobs are active:

- Training small nets is pure Python/NumPy call overhead, so it holds the GIL; two training threads
  in one process never run at once. Forty threads (the old per-stream design) only add switching
  and let every stream ask for its own 20 ms per frame, so N streams asked N times the CPU there
  is and each got a frame every N x 20 ms.
- One thread visits the active jobs in turn. A visit takes the model's lock, trains for one slice,
  and (for a stream) renders a frame. The slice is ``train_share x period / N`` (never more than a
  lone stream's ``train_share x period``, never under ``MIN_SLICE``), so a round over N jobs lasts
  about one frame period plus N frame renders: a lone stream keeps the old 60 % duty cycle and
  speed, and N streams split the training time instead of multiplying it.
- A stream job is paced: it is visited once per frame period at most (``next_at``). A train call
  (REST) trains its first slice in the caller's own thread and saves there (short calls, the usual
  case, are then done, and their saves' I/O overlaps as before); the rest of a longer call is a job
  here that is always runnable, so a lone call trains flat out, and beside streams it gets one slice
  per round like any of them.
- Frames are rendered and encoded here, off the event loop, into a single latest-frame slot per
  connection. A frame is only made when the slot is empty, i.e. when the client has read the last
  one; meanwhile the steps' losses accumulate (bounded) and go in the next frame. A client that
  stops reading gets no more frames queued, and never delays anyone else.
- Between visits the thread yields the GIL (``time.sleep(0)``) so the event loop and request
  threads run promptly; requests for other models never wait for a whole round.

The scheduler knows nothing of HTTP: a stream job gets a ``render(model, losses, loss_steps, playing)``
callable that returns the encoded frame, and a ``notify()`` callable that wakes its connection.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager
from typing import Callable, Iterator

from app.engine.model import TrainResult

from .errors import Busy, Conflict, DomainError, Frozen, NotFound, StoreUnavailable, StreamFailed, store_errors

log = logging.getLogger("playground.scheduler")

MIN_SLICE = 0.0004        # seconds of training per visit, at least (a few steps of the default net)
HEAVY_VISIT = 0.01        # CPU seconds: a job whose visits cost more (and 4 slices) is paced to its share (_pace)
COST_WEIGHT = 0.25        # of the last visit in a job's mean visit cost: one slow visit (a save, a GC) is no trend
TRAIN_SHARE = 0.6         # of each frame period a lone stream trains; the rest is left to requests
LONE_CALL_SLICE = 0.1      # seconds per slice of a train call when nothing else trains in this process
MAX_PENDING_LOSSES = 4096  # losses kept for a client that is not reading; halved (every other) past it
MAX_COMMANDS = 32          # unprocessed play/pause/step messages per stream
MAX_MESSAGES = 8           # error messages waiting to be sent per stream
SWITCH_INTERVAL = 0.001    # seconds a thread may hold the GIL while another waits (Python's default: 0.005)
_FRAME = object()          # where the slot's frame goes among a stream's outgoing messages


class _Job:
    """Something that trains: a stream or a train call."""

    def __init__(self, model_id: str):
        self.model_id = model_id
        self.next_at = 0.0      # monotonic time of the next visit
        self.retry_at = 0.0     # not before then, whatever is pending (another process holds the model)
        self.cost = 0.0         # its visits' mean CPU seconds, exponentially weighted
        self.done = False

    def runnable(self, now: float) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def trains(self) -> bool:
        """Whether this job competes for training time now (counts in the slice's N)."""
        return True


class CallJob(_Job):
    """The rest of a REST train call: ``steps`` more steps within ``time_budget`` seconds, in slices."""

    def __init__(self, model_id: str, steps: int, time_budget: float, cancelled: threading.Event | None = None):
        super().__init__(model_id)
        self.left, self.deadline = steps, time.monotonic() + time_budget
        self.cancelled = cancelled or threading.Event()  # set when the caller left: train no more
        self.losses: list[float] = []
        self.result: TrainResult | None = None
        self.error: BaseException | None = None
        self.finished = threading.Event()

    def runnable(self, now: float) -> bool:
        return not self.done and (now >= self.next_at or self.cancelled.is_set())


class StreamJob(_Job):
    """One WebSocket stream's training and its latest-frame slot.

    The connection (event loop) calls ``play``, ``pause``, ``step``, ``take`` and ``close``; the
    scheduler thread does the rest. ``render(model, losses, loss_steps, playing) -> str`` encodes a
    frame; ``notify()`` must be thread-safe (``loop.call_soon_threadsafe``).
    """

    def __init__(self, model_id: str, render: Callable, notify: Callable[[], None]):
        super().__init__(model_id)
        self.render, self.notify = render, notify
        self.lock = threading.Lock()
        self.commands: deque = deque()
        self.playing = False          # as frames show it; changed by the training thread only
        self.halted = False           # a pause is on its way: train no more
        self.steps_per_frame: int | None = None
        self.chunk_left = 0           # steps still to train for the current steps_per_frame frame
        self.frame_wanted = False     # a frame must go out as soon as the slot is free (training waits)
        self.owed = False             # free play trained while the slot was full: a frame when it frees
        self.losses: list[float] = []  # trained since the last frame
        self.loss_steps: list[int] = []
        self.slot: str | None = None  # the latest encoded frame, not yet taken by the connection
        self.out: deque = deque()     # error messages and at most one _FRAME marker, in sending order
        self.frames_made = 0
        self.blocked_since: float | None = None

    # -- called from the connection --------------------------------------------------------
    def command(self, action: str, steps_per_frame: int | None = None) -> bool:
        """Queue play/pause/step; False when too many are pending. Pause stops training at once."""
        with self.lock:
            if len(self.commands) >= MAX_COMMANDS:
                return False
            if action == "pause":
                self.halted = True  # no visit trains any more, even before the command is processed
            self.commands.append((action, steps_per_frame))
        return True

    def take(self) -> list:
        """What to send now, in order: errors (DomainError from training, dicts the connection put) and the
        latest frame (encoded text)."""
        with self.lock:
            items = [self.slot if x is _FRAME else x for x in self.out]
            self.out.clear()
            self.slot = None
        return items

    def put_message(self, message: DomainError | dict) -> None:
        """An error for the client, which the web layer writes as a frame; at most MAX_MESSAGES wait (older
        ones are dropped)."""
        with self.lock:
            if sum(1 for x in self.out if x is not _FRAME) >= MAX_MESSAGES:
                for i, x in enumerate(self.out):
                    if x is not _FRAME:
                        del self.out[i]
                        break
            self.out.append(message)

    def put_frame(self, text: str) -> None:
        with self.lock:
            self.slot = text
            self.out.append(_FRAME)

    @property
    def pending(self) -> int:
        """Frames held for this client, not yet taken (0 or 1: the slot)."""
        return 0 if self.slot is None else 1

    # -- scheduling ------------------------------------------------------------------------
    def runnable(self, now: float) -> bool:
        if self.done or now < self.retry_at:
            return False
        if self.commands:
            return True
        if self.frame_wanted or (self.owed and self.slot is None):
            return self.slot is None
        if not self.playing or self.halted or now < self.next_at:
            return False
        if self.steps_per_frame is not None and self.chunk_left == 0:
            return self.slot is None  # the next chunk starts when the client has read the last frame
        return True

    def trains(self) -> bool:
        return self.playing and not self.halted and not self.done


class Scheduler:
    """One training thread per process; see the module docstring.

    ``service`` provides ``use(model_id, save=...)`` (the model under its lock; save="lazy" also takes
    or renews this process's lease on the model), ``train(model_id, model, steps, time_budget)`` (a
    TrainResult, with checkpoints), ``flush(model_id)`` (save unsaved steps, keep the lease) and
    ``release(model_id)`` (flush and give up the lease). The training thread never waits for a lease: a visit uses save="lazy" (Conflict at
    once if another process plays the model) and saves with flush/release after it.
    ``frozen()`` says whether the instructor froze training; it is read at most every 0.25 s.
    """

    def __init__(self, service, *, fps: float, frozen: Callable[[], bool] | None = None):
        self.service, self.period = service, 1.0 / fps
        self._frozen_fn, self._frozen_at, self._frozen = frozen, -1.0, False
        self._cv = threading.Condition()
        self._jobs: list[_Job] = []
        self._call_locks: dict[str, list] = {}  # model id -> [lock, callers]: its train calls one at a time
        self._turn = 0
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        with self._cv:
            if self._thread is None or not self._thread.is_alive():
                # each syscall of a visit (lock file, store read, waking the loop) hands the GIL to the
                # event loop, which by default keeps it up to 5 ms before the trainer gets it back
                if sys.getswitchinterval() > SWITCH_INTERVAL:
                    sys.setswitchinterval(SWITCH_INTERVAL)
                self._stopping = False
                self._thread = threading.Thread(target=self._run, name="trainer", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        for job in list(self._jobs):
            if isinstance(job, CallJob):
                job.error = RuntimeError("the server is shutting down")
                job.finished.set()
        self._jobs.clear()

    def wake(self) -> None:
        with self._cv:
            self._cv.notify_all()

    @property
    def active(self) -> int:
        return sum(1 for j in self._jobs if j.trains())

    # -- jobs ------------------------------------------------------------------------------
    def open_stream(self, model_id: str, render: Callable, notify: Callable[[], None]) -> StreamJob:
        job = StreamJob(model_id, render, notify)
        with self._cv:
            self._jobs.append(job)
        self.start()
        return job

    def close_stream(self, job: StreamJob) -> None:
        with self._cv:
            job.done = True
            if job in self._jobs:
                self._jobs.remove(job)

    def train(self, model_id: str, steps: int, time_budget: float,
              cancelled: threading.Event | None = None) -> TrainResult:
        """Train a stored model by ``steps`` steps in turns with everything else; blocks the caller.

        The model's lock is taken per slice, so reads of it and other models go on meanwhile.
        Raises what ``service.use`` raises (the model was deleted). Unsaved steps are saved before
        this returns. Once ``cancelled`` is set (the caller left), no further slice trains; the result
        then says ``stopped="cancelled"``.
        """
        with self._one_call_at_a_time(model_id):  # each call's steps contiguous, as under one lock
            return self._train_call(model_id, steps, time_budget, cancelled)

    @contextmanager
    def _one_call_at_a_time(self, model_id: str) -> Iterator[None]:
        with self._cv:
            entry = self._call_locks.setdefault(model_id, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._cv:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._call_locks[model_id]

    def _train_call(self, model_id: str, steps: int, time_budget: float,
                    cancelled: threading.Event | None) -> TrainResult:
        # the first slice runs here, in the caller's thread, and saves like any short request, so the
        # saves of many short calls overlap their I/O instead of queueing in the training thread; what is
        # left of a longer call goes on in turns in the training thread. use(save=True) waits here, in the
        # caller's thread, for another process's playing stream to pause (Conflict after lease_wait).
        # Alone in the process, the first slice is a lone call's: most calls then end in one slice and
        # one save, with no hand-over to the training thread.
        started = time.monotonic()
        first = LONE_CALL_SLICE if self.active == 0 else self._slice(self.active + 1)
        with self.service.use(model_id, save=True) as model:
            r = self.service.train(model_id, model, steps, min(first, time_budget))
        if r.diverged or r.steps_done >= steps or time.monotonic() - started >= time_budget:
            return r
        if cancelled is not None and cancelled.is_set():
            r.stopped = "cancelled"
            return r
        job = CallJob(model_id, steps - r.steps_done, time_budget - (time.monotonic() - started), cancelled)
        job.losses, job.result = list(r.losses), r
        with self._cv:
            self._jobs.append(job)
            self._cv.notify_all()
        self.start()
        job.finished.wait()
        try:
            if job.error is not None:
                raise job.error
        finally:
            self.release(model_id)  # save the call's steps and give up the lease its slices took
        return job.result

    def release(self, model_id: str) -> None:
        """Save unsaved steps now and, unless another job of this process still trains the model (a second
        tab's stream, a train call), give up this process's lease, so other processes may write it again."""
        with self._cv:
            busy = any(j.model_id == model_id and not j.done and j.trains() for j in self._jobs)
        if busy:
            self.service.flush(model_id)
        else:
            self.service.release(model_id)


    # -- the thread ------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cv:
                if self._stopping:
                    return
                now = time.monotonic()
                job = self._next(now)
                if job is None:
                    waits = [max(j.next_at, j.retry_at) - now for j in self._jobs
                             if (isinstance(j, CallJob) or j.playing or j.commands) and max(j.next_at, j.retry_at) > now]
                    self._cv.wait(min(waits) if waits else 1.0)
                    continue
                n = max(1, self.active)
            slice_s = self._slice(n)
            cpu = time.thread_time()
            try:
                if isinstance(job, CallJob):
                    # alone, a call needs no turns: longer slices save the per-slice cost (a lock, an evaluation)
                    self._visit_call(job, LONE_CALL_SLICE if n == 1 else slice_s)
                else:
                    self._visit_stream(job, slice_s, now)
            except Exception:  # never let one model stop the class's trainer
                log.exception("scheduler visit failed for model %s", job.model_id)
            # CPU time, not wall time: a visit that waited for the GIL or a busy machine is not heavy
            self._pace(job, now, time.thread_time() - cpu, slice_s, n)
            time.sleep(0)  # let the event loop and request threads take the GIL between visits

    def _pace(self, job: _Job, start: float, cost: float, slice_s: float, n: int) -> None:
        """Keep a heavy job to its share of the thread: when its visits cost far more than a slice (one step
        or one frame of a big model cannot be cut), it waits after each until n such visits' time has passed,
        so the class's other jobs get their turns meanwhile. Commands (pause) are still served at once."""
        if n == 1:  # alone, nobody waits for it (and a lone call's long slices are not its weight beside others)
            return
        job.cost += COST_WEIGHT * (cost - job.cost)
        if job.cost > max(HEAVY_VISIT, 4 * slice_s):
            job.next_at = max(job.next_at, start + job.cost * n)

    def _slice(self, n: int) -> float:
        """Seconds of training per turn with n jobs training: a lone stream's share of a frame period, split."""
        return max(MIN_SLICE, min(TRAIN_SHARE * self.period, TRAIN_SHARE * self.period / n))

    def _next(self, now: float) -> _Job | None:
        """The next runnable job after the last one visited (round-robin).

        Train calls on one model run one after the other (in arrival order), so each call's steps
        are contiguous, as if it had held the model's lock throughout.
        """
        jobs = self._jobs
        first_call: dict[str, _Job] = {}
        for j in jobs:
            if isinstance(j, CallJob):
                first_call.setdefault(j.model_id, j)
        for i in range(len(jobs)):
            k = (self._turn + i) % len(jobs)
            job = jobs[k]
            if job.runnable(now) and (not isinstance(job, CallJob) or first_call[job.model_id] is job):
                self._turn = k + 1
                return job
        return None

    def _visit_call(self, job: CallJob, slice_s: float) -> None:
        if job.cancelled.is_set():
            job.result.stopped = "cancelled"
            self._finish_call(job)
            return
        try:
            # the rest of a long call: its steps stay unsaved under this process's lease until the end
            with self.service.use(job.model_id, save="lazy") as model:
                budget = max(0.0, min(slice_s, job.deadline - time.monotonic()))
                r = self.service.train(job.model_id, model, job.left, budget)
        except BaseException as e:
            self._finish_call(job, error=e)
            return
        job.left -= r.steps_done
        job.losses.extend(r.losses)
        stopped = ("diverged" if r.diverged else "done" if job.left <= 0 else
                   "time_budget" if time.monotonic() >= job.deadline else None)
        job.result = TrainResult(step=r.step, epoch=r.epoch, steps_done=len(job.losses), losses=job.losses,
                                 train_loss=r.train_loss, test_loss=r.test_loss, diverged=r.diverged,
                                 diverged_at=r.diverged_at, stopped=stopped or "time_budget")
        if stopped:
            self._finish_call(job)

    def _finish_call(self, job: CallJob, error: BaseException | None = None) -> None:
        with self._cv:
            job.done, job.error = True, error
            if job in self._jobs:
                self._jobs.remove(job)
        job.finished.set()

    def _frozen_now(self) -> bool:
        if self._frozen_fn is None:
            return False
        now = time.monotonic()
        if now - self._frozen_at > 0.25:
            self._frozen_at = now
            try:
                self._frozen = bool(self._frozen_fn())
            except Exception:
                log.exception("reading the class freeze failed")
        return self._frozen

    def _visit_stream(self, job: StreamJob, slice_s: float, now: float) -> None:
        try:
            self._stream_turn(job, slice_s, now)
        except Busy:  # another process holds the model's lock for long: try again next period
            job.next_at = now + self.period
        except Conflict as e:
            # another process holds the model's lease (its stream plays, or a train call runs there): like
            # a writer there, wait up to lease_wait for it, retrying every period, then say so
            job.blocked_since = job.blocked_since or now
            if now - job.blocked_since < getattr(self.service.settings, "lease_wait", 2.0):
                job.retry_at = now + self.period
                return
            job.blocked_since = None
            self._stream_refused(job, e)
            return
        except NotFound as e:  # deleted: the stream ends
            job.put_message(e)
            job.playing = False
            self.close_stream(job)
            job.notify()
        except DomainError as e:
            self._stream_refused(job, e)
        except store_errors() as e:  # the store refuses or is away: play stops, the client may retry
            log.warning("store error on the stream of model %s: %s", job.model_id, e)
            self._stream_refused(job, StoreUnavailable())
        except Exception:
            log.exception("stream of model %s failed", job.model_id)
            job.put_message(StreamFailed())
            job.playing = False
            self.close_stream(job)
            job.notify()

    def _stream_refused(self, job: StreamJob, e) -> None:
        """A refusal (playing elsewhere, the store full, ...): play stops, the connection stays open."""
        with job.lock:
            job.playing = job.halted = False
            job.commands.clear()
        job.frame_wanted = job.owed = False
        job.put_message(e)
        job.notify()

    def _stream_turn(self, job: StreamJob, slice_s: float, now: float) -> None:
        paused = stepped = False
        with self.service.use(job.model_id, save="lazy") as model:
            job.blocked_since = None
            with job.lock:  # taken only once the model is had, so a refused visit keeps them for the retry
                commands = list(job.commands)
                job.commands.clear()
            for action, k in commands:
                if action == "play":
                    with job.lock:
                        job.playing, job.steps_per_frame, job.chunk_left = True, k, 0
                    job.next_at = 0.0
                elif action == "pause":
                    with job.lock:
                        job.playing = job.halted = False
                    job.frame_wanted = paused = True
                elif action == "step":
                    self._train(job, model, 1, None)
                    job.frame_wanted = stepped = True
            if job.playing and self._frozen_now():
                job.playing = False
                job.put_message(Frozen())
                job.frame_wanted = paused = True
            if job.playing and not job.halted and not job.frame_wanted and now >= job.next_at:
                job.next_at = now + self.period
                if job.steps_per_frame is None:
                    # free play trains on while the client reads slowly; its losses wait for the frame
                    # that goes out as soon as the client has taken the previous one
                    diverged = self._train(job, model, 1_000_000, slice_s)
                    job.owed = True
                else:
                    if job.chunk_left == 0:
                        job.chunk_left = job.steps_per_frame
                    diverged = self._train(job, model, job.chunk_left, slice_s)
                    job.frame_wanted = job.chunk_left == 0  # exactly steps_per_frame steps per frame
                if diverged:
                    with job.lock:
                        job.playing = False
                    job.frame_wanted = True
            emit = (job.frame_wanted or job.owed) and job.slot is None
            if emit and not (paused or stepped):
                self._emit(job, model)
        if paused or stepped:
            # the steps a pause or step frame shows are saved before it is sent; a stream that is not
            # playing gives up its lease, so other processes may write the model again
            if job.playing:
                self.service.flush(job.model_id)
            else:
                self.release(job.model_id)
            if emit:
                with self.service.use(job.model_id) as model:
                    self._emit(job, model)
        elif not job.playing:
            # every visit takes the lease (save="lazy"); one that only sent a frame after a pause, or
            # stopped on divergence, must give it back, or writers elsewhere wait for it to lapse
            self.release(job.model_id)

    def _train(self, job: StreamJob, model, steps: int, budget: float | None) -> bool:
        """Train and keep the losses for the next frame; True when the step diverged."""
        r = self.service.train(job.model_id, model, steps, budget)
        first = r.step - r.steps_done + 1
        job.losses.extend(r.losses)
        job.loss_steps.extend(range(first, r.step + 1))
        if job.steps_per_frame is not None and job.playing:
            job.chunk_left = max(0, job.chunk_left - r.steps_done)
        if len(job.losses) > MAX_PENDING_LOSSES:  # a client that is not reading: keep every other one
            del job.losses[::2], job.loss_steps[::2]
        return r.diverged

    def _emit(self, job: StreamJob, model) -> None:
        job.put_frame(job.render(model, job.losses, job.loss_steps, job.playing))
        job.losses, job.loss_steps = [], []
        job.frame_wanted = job.owed = False
        job.frames_made += 1
        job.notify()

