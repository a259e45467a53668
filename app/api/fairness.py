"""Per-client fairness: concurrency caps on expensive calls and open streams, and threads kept for reads.

FairnessMiddleware (ASGI, inside SecurityMiddleware, so a rate-limited request takes no slot) matches
method + path against EXPENSIVE and STREAM; the routes know nothing of it. A call takes, in order:

1. a slot of its client address (``PLAYGROUND_CONCURRENT_PER_CLIENT``) and of its bearer token
   (``PLAYGROUND_CONCURRENT_PER_TOKEN``), else 429 + Retry-After: one student's 40 parallel train
   calls get 36 refusals instead of 40 threads;
2. a slot of the process (``PLAYGROUND_CONCURRENT_EXPENSIVE``), else 503 + Retry-After: the server,
   not this client, is busy.

A call waits up to ``PLAYGROUND_BUSY_WAIT`` seconds in all for its slots before it is refused, so a
page that fires a few calls at once, or a class pressing Train together, queues briefly instead of
failing. Waiting holds no thread.

A stream holds a slot of its address (``PLAYGROUND_STREAMS_PER_CLIENT``) and of its token
(``PLAYGROUND_STREAMS_PER_TOKEN``) while it is open; over either, it is accepted, sent an error frame and
closed with 4429. A token that arrives in the stream's first message is counted when it arrives.

Why a process-wide cap and not a second thread pool. Sync routes run in anyio's default thread limiter
(40 threads unless set). An expensive call holds one of those threads for as long as it runs (a train call
up to its 20 s budget), and the sync dependencies before it run in the same pool, one at a time. Capping
the expensive calls in flight at ``concurrent_expensive`` (16) below the pool's size (``worker_threads``,
40, set explicitly at startup, and validated to be larger) guarantees ``worker_threads -
concurrent_expensive`` threads for everything else, so a read never waits for a thread behind training.
A dedicated pool for expensive routes would give the same guarantee but needs every route (and the
threads FastAPI starts for their dependencies) to use it; the cap lives in one middleware, and a refused
call has not read its body or touched a model, so it changes nothing. The CPU itself is shared by the
scheduler that trains (app/service/scheduler.py); this module bounds how many calls may ask for it.

The process slot is per process, like the threads and the CPU it protects. The address and token caps
hold across processes when they share a store, as the rate limits (security.py) do: each such slot is
also a lease in app/service/shared_slots.py (one round trip to take, one to give back; a dead process's
leases lapse within ``PLAYGROUND_LEASE_TTL``). A call refused there by other processes' leases retries
with a growing pause until its wait is over; a store that cannot count answers 503, as the store does.
"""
from __future__ import annotations

import hmac
import logging
import re

import anyio
import anyio.to_thread

from app.api.security import SocketGuard, bearer, install_log_redaction, message_token, refuse_handshake, refuse_http
from app.config import Settings
from app.service.errors import Busy, Kind, OverLimit, StoreUnavailable, store_errors
from app.service.ratelimit import Slots, token_key
from app.service.shared_slots import shared_slots

log = logging.getLogger("playground")

_ID = r"[^/]+"
EXPENSIVE: list[tuple[str, re.Pattern]] = [(method, re.compile(path)) for method, path in [
    ("POST", r"/api/models"),                 # create: builds and evaluates the data
    ("POST", r"/api/models/import"),
    ("POST", r"/api/datasets"),               # parses a CSV of up to the body limit
    ("GET", rf"/api/datasets/{_ID}"),         # decodes the stored dataset's rows to describe its targets
    ("POST", rf"/api/models/{_ID}/(train|gradcheck|predict|gradients|check|derive|fork|reset)"),
    ("GET", rf"/api/models/{_ID}/(boundary|gradients|export)"),
    ("GET", rf"/api/models/{_ID}/(data|parameters)"),  # every row, every weight: up to megabytes of JSON
    ("PUT", rf"/api/models/{_ID}/parameters"),  # evaluates the full data
    ("GET", r"/api/class/(leaderboard|curves|gallery)"),  # every model of the class
]]
# the calls that run a student's own work (equations, gradients, a gradient check), each up to about a
# second of CPU: they share a smaller part of the process's slots, so a few students' heavy calls never
# take every slot from the class's train, predict and create
HEAVY = re.compile(rf"/api/models/{_ID}/(derive|check|gradcheck)")
STREAM = re.compile(rf"/api/models/{_ID}/stream")
PROCESS = "process"
HEAVY_SLOTS = "heavy"
WAITING = "waiting"  # calls waiting for a slot, counted for tests and diagnostics
RETRY_AFTER = 1  # seconds: most expensive calls take well under that; the client retries
SHARED_POLL = (0.05, 0.5)  # seconds between tries at a slot other processes hold: first, at most (doubling)
STREAM_GRACE = 0.5  # seconds a stream over its cap across processes retries before it is refused


def is_expensive(method: str, path: str) -> bool:
    path = path.rstrip("/") or "/"
    return any(method == m and p.fullmatch(path) for m, p in EXPENSIVE)


class FairnessMiddleware:
    def __init__(self, app, *, settings: Settings, store=None):
        self.app = app
        self.settings = settings
        self.slots = Slots()
        self.shared = shared_slots(store, settings.store, settings.lease_ttl)
        # the store's calls run in threads of their own, never in the pool the routes need
        self._store_threads = anyio.CapacityLimiter(8) if self.shared else None

    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind == "lifespan":
            return await self.app(scope, self._with_startup(receive), send)
        if kind == "http" and is_expensive(scope["method"], scope.get("path", "")):
            return await self._expensive(scope, receive, send)
        if kind == "websocket" and STREAM.fullmatch(scope.get("path", "")):
            return await self._stream(scope, receive, send)
        return await self.app(scope, receive, send)

    # -- startup -----------------------------------------------------------------------------------
    def _with_startup(self, receive):
        async def lifespan_receive():
            message = await receive()
            if message["type"] == "lifespan.startup":
                # the pool every sync route and dependency runs in; expensive calls get at most
                # concurrent_expensive of its threads
                anyio.to_thread.current_default_thread_limiter().total_tokens = self.settings.worker_threads
                install_log_redaction()
            elif message["type"] == "lifespan.shutdown" and self.shared is not None:
                await anyio.to_thread.run_sync(self.shared.close, limiter=self._store_threads)
            return message
        return lifespan_receive

    # -- expensive calls ---------------------------------------------------------------------------
    async def _expensive(self, scope, receive, send):
        s = self.settings
        deadline = anyio.current_time() + s.busy_wait
        held: list[tuple[str, str | None]] = []
        try:
            for key, cap, refusal in self._caps(scope, "call", s.concurrent_per_client, s.concurrent_per_token):
                if not await self._slot(key, cap, deadline):
                    return await refuse_http(scope, receive, send, OverLimit(Kind.TOO_MANY, refusal, RETRY_AFTER))
                held.append((key, None))
                try:
                    lease = await self._shared_slot(key, cap, deadline)
                except store_errors() as e:
                    log.warning("store error counting %s: %s", key, e)
                    return await refuse_http(scope, receive, send, StoreUnavailable())
                if lease is False:
                    return await refuse_http(scope, receive, send, OverLimit(Kind.TOO_MANY, refusal, RETRY_AFTER))
                held[-1] = (key, lease)
            if s.concurrent_heavy and scope["method"] == "POST" and HEAVY.fullmatch(scope.get("path", "")):
                if not await self._slot(HEAVY_SLOTS, s.concurrent_heavy, deadline):
                    busy = Busy(heavy_detail(s.concurrent_heavy), RETRY_AFTER)
                    return await refuse_http(scope, receive, send, busy)
                held.append((HEAVY_SLOTS, None))
            # The instructor's calls keep their per-token cap but never queue behind the class's work:
            # a few students' heavy calls must not take the teacher's board off the projector.
            if not self._is_admin(scope):
                if not await self._slot(PROCESS, s.concurrent_expensive, deadline):
                    busy = Busy(busy_detail(s.concurrent_expensive), RETRY_AFTER)
                    return await refuse_http(scope, receive, send, busy)
                held.append((PROCESS, None))

            async def freeing_send(message):
                # the slots are free before the client has the whole answer, so its next call finds them
                if message["type"] == "http.response.body" and not message.get("more_body", False):
                    await self._release(held)
                await send(message)

            await self.app(scope, receive, freeing_send)
        finally:
            await self._release(held)

    async def _slot(self, key: str, cap: int, deadline: float) -> bool:
        """A slot under cap, waiting in line until deadline for one to free (a page's burst of a few calls
        queues instead of failing; first come, first served). Waiting holds no thread."""
        if self.slots.acquire(key, cap):
            return True
        self.slots.acquire(WAITING, 0)
        try:
            return await self.slots.wait(key, cap, deadline - anyio.current_time())
        finally:
            self.slots.release(WAITING)

    async def _shared_slot(self, key: str, cap: int, deadline: float | None) -> str | None | bool:
        """A lease on key's slot across processes: its holder id; None when nothing is shared (one process,
        or no cap); False when other processes hold cap slots until deadline (None: no wait). Raises the
        store's error when it cannot count."""
        if self.shared is None or not cap:
            return None
        pause = SHARED_POLL[0]
        while True:
            with anyio.CancelScope(shield=True):  # a lease taken is always handed back to the caller to free
                holder = await anyio.to_thread.run_sync(self.shared.acquire, key, cap, limiter=self._store_threads)
            if holder is not None:
                return holder
            if deadline is None or anyio.current_time() + pause > deadline:
                return False
            await anyio.sleep(pause)
            pause = min(2 * pause, SHARED_POLL[1])

    async def _release(self, held: list[tuple[str, str | None]]) -> None:
        """Give back every slot and lease in held (shielded: a cancelled call still frees what it holds). The
        local slots go first, at once; a waiter handed one retries for the lease while it is given back."""
        leases = [(key, lease) for key, lease in held if lease is not None]
        while held:  # emptied as it goes: a second call gives nothing back twice
            self.slots.release(held.pop()[0])
        with anyio.CancelScope(shield=True):
            for key, lease in leases:
                await anyio.to_thread.run_sync(self.shared.release, key, lease, limiter=self._store_threads)

    def _is_admin(self, scope) -> bool:
        admin, token = self.settings.admin_token, bearer(scope)
        return bool(admin and token and hmac.compare_digest(token.encode(), admin.encode()))

    def _caps(self, scope, what: str, per_client: int, per_token: int):
        """(slot key, cap, refusal detail) for the client address and the token, when each is known."""
        if scope.get("client"):
            yield f"{what}:client:{scope['client'][0]}", per_client, cap_detail(what, "client", per_client)
        token = bearer(scope)
        if token:
            yield f"{what}:token:{token_key(token)}", per_token, cap_detail(what, "token", per_token)

    # -- streams -----------------------------------------------------------------------------------
    async def _stream(self, scope, receive, send):
        s = self.settings
        held: list[tuple[str, str | None]] = []
        try:
            for key, cap, refusal in self._caps(scope, "stream", s.streams_per_client, s.streams_per_token):
                refused = await self._stream_slot(held, key, cap, refusal)
                if refused is not None:
                    return await refuse_handshake(receive, send, refused)
            if bearer(scope) is None:  # the token may come in a message: count it when it does
                guard = SocketGuard(receive, send)

                async def counted_receive():
                    message = await guard.receive()
                    counted = any(k.startswith("stream:token:") for k, _ in held)
                    if not counted and message["type"] == "websocket.receive":
                        token = message_token(message)
                        if token:
                            detail = cap_detail("stream", "token", s.streams_per_token)
                            refused = await self._stream_slot(held, f"stream:token:{token_key(token)}",
                                                              s.streams_per_token, detail)
                            if refused is not None:
                                return await guard.refuse(refused)
                    return message

                receive, send = counted_receive, guard.send
            await self.app(scope, *self._freeing(held, receive, send))
        finally:
            await self._release(held)

    def _freeing(self, held: list, receive, send):
        """receive and send that give the stream's slots back as soon as the connection ends, before the
        route's last save, so the client may open its next stream at once."""
        async def freeing_receive():
            message = await receive()
            if message["type"] == "websocket.disconnect":
                await self._release(held)
            return message

        async def freeing_send(message):
            if message["type"] == "websocket.close":
                await self._release(held)
            await send(message)

        return freeing_receive, freeing_send

    async def _stream_slot(self, held: list, key: str, cap: int, refusal: str):
        """Take key's stream slot here and across processes, adding it to held; the refusal if there is one."""
        if not self.slots.acquire(key, cap):
            return OverLimit(Kind.TOO_MANY, refusal, RETRY_AFTER)
        held.append((key, None))
        try:  # a stream closed a moment ago, here or in another process, may still be giving its lease back
            lease = await self._shared_slot(key, cap, anyio.current_time() + STREAM_GRACE)
        except store_errors() as e:
            log.warning("store error counting %s: %s", key, e)
            return StoreUnavailable()
        if lease is False:
            return OverLimit(Kind.TOO_MANY, refusal, RETRY_AFTER)
        held[-1] = (key, lease)
        return None


_CAP_TEXT = {
    ("call", "client"): ("too many expensive calls at once from your address", "PLAYGROUND_CONCURRENT_PER_CLIENT"),
    ("call", "token"): ("too many expensive calls at once with this model token", "PLAYGROUND_CONCURRENT_PER_TOKEN"),
    ("stream", "client"): ("too many open streams from your address", "PLAYGROUND_STREAMS_PER_CLIENT"),
    ("stream", "token"): ("too many open streams with this model token", "PLAYGROUND_STREAMS_PER_TOKEN"),
}


def cap_detail(what: str, who: str, cap: int) -> str:
    text, env = _CAP_TEXT[what, who]
    then = "close one, then retry" if what == "stream" else f"retry after {RETRY_AFTER} s"
    return f"{text}: the limit is {cap} ({env}); {then}"


def busy_detail(cap: int) -> str:
    return (f"the server is busy: {cap} expensive calls are running, the limit per process "
            f"(PLAYGROUND_CONCURRENT_EXPENSIVE); retry after {RETRY_AFTER} s")


def heavy_detail(cap: int) -> str:
    return (f"the server is busy: {cap} derive, check and gradcheck calls are running, the limit per process "
            f"(PLAYGROUND_CONCURRENT_HEAVY); retry after {RETRY_AFTER} s")
