"""Request rate limits on the `limits` library, and concurrency slots: per client address and per token.

Rate limits. A setting of N requests a minute allows a burst of max(10, N/10) requests, refilled at N a
minute. With the `limits` sliding-window-counter strategy that is one item: ``burst`` hits per window of
``burst * 60 / N`` seconds (whole seconds, at least 1). The weighted count of the previous window decays
linearly, so after a burst one more request is allowed every ``window / burst`` seconds: the behaviour of
the token bucket this replaces, in two counters per key whatever the traffic (a moving window would keep
one timestamp per request). Keys are ``client/<address>`` and ``token/<sha256 of the token>``: no
secret is written to the counters' store.

Storage. Memory (one process) by default; the store's Redis when ``PLAYGROUND_STORE`` is redis://, so a
limit holds across workers and hosts (keys under the store's prefix + "ratelimit"). The async storages
keep the event loop free; a dead Redis raises ``LimiterUnavailable`` within the socket timeout.

Slots count calls in progress (concurrency caps) in this process, and order its waiters; on a shared store,
shared_slots.py counts the per-client and per-token caps across processes as well.
"""
from __future__ import annotations

import asyncio
import hashlib
import math
import threading
from collections import deque
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError

MIN_BURST = 10
REDIS_TIMEOUT = 2.0  # seconds: a dead Redis refuses a request quickly instead of holding it


class LimiterUnavailable(Exception):
    """The rate limits' storage (Redis) cannot be reached."""


@dataclass(frozen=True)
class Refusal:
    """Over a limit: which one (``kind`` "client" or "token", its setting ``per_minute``), and the whole
    seconds until a request would be allowed."""
    kind: str
    per_minute: int
    retry_after: int


def window(per_minute: int) -> RateLimitItemPerSecond:
    """The `limits` item for N requests a minute: max(10, ceil(N/10)) per round(burst * 60 / N) seconds."""
    burst = max(MIN_BURST, math.ceil(per_minute / 10))
    return RateLimitItemPerSecond(burst, max(1, round(burst * 60 / per_minute)))


def wait_seconds(item: RateLimitItemPerSecond, prev: int, prev_ttl: float, cur: int, cur_ttl: float) -> float:
    """Seconds until the next hit is allowed, from a sliding window's counts and times to live.

    A hit is allowed while ``prev * prev_ttl / W + cur < amount``; ``prev_ttl`` (equal to ``cur_ttl - W``)
    runs down to the rollover, where the current count becomes the previous one. The library's own
    reset time is the next step of the decay, which can be 0 at a window's edge; this is exact.
    """
    amount, w = item.amount, item.get_expiry()
    if cur >= amount:  # only after the rollover, when this window's hits start to decay
        return max(0.0, cur_ttl - w)
    if prev > 0:
        return max(0.0, prev_ttl - w * (amount - cur) / prev)
    return 0.0


def token_key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class RateLimiter:
    """Per-client-address and per-token request limits (0 turns one off)."""

    def __init__(self, store_url: str, per_client: int, per_token: int):
        self.items = {"client": window(per_client) if per_client > 0 else None,
                      "token": window(per_token) if per_token > 0 else None}
        self.per_minute = {"client": per_client, "token": per_token}
        self.enabled = any(self.items.values())
        self._redis = redis_options(store_url)
        self._shared = None if self._redis else SlidingWindowCounterRateLimiter(MemoryStorage())
        self._per_loop: tuple[asyncio.AbstractEventLoop, SlidingWindowCounterRateLimiter] | None = None

    @property
    def shared_across_processes(self) -> bool:
        return self._redis is not None

    async def hit(self, client: str | None, token: str | None) -> Refusal | None:
        """Charge one request to the client's and the token's limits; None if allowed, else the refusal
        with the longer wait. A refused request is charged to no limit."""
        keys = [(kind, ident) for kind, ident in (("client", client), ("token", token and token_key(token)))
                if ident and self.items[kind] is not None]
        if not keys:
            return None
        limiter = self._limiter()
        refusals = []
        try:
            for kind, ident in keys:
                item = self.items[kind]
                if not await limiter.test(item, kind, ident):
                    refusals.append(await self._refusal(limiter, kind, ident))
            if not refusals:  # test, then hit: a request refused by one limit does not spend the other
                for kind, ident in keys:
                    if not await limiter.hit(self.items[kind], kind, ident):  # lost a race to another request
                        refusals.append(await self._refusal(limiter, kind, ident))
        except StorageError as e:
            raise LimiterUnavailable(str(e.storage_error)) from None
        return max(refusals, key=lambda r: r.retry_after) if refusals else None

    async def _refusal(self, limiter, kind: str, ident: str) -> Refusal:
        item = self.items[kind]
        prev, prev_ttl, cur, cur_ttl = await limiter.storage.get_sliding_window(item.key_for(kind, ident),
                                                                              item.get_expiry())
        wait = wait_seconds(item, prev, prev_ttl, cur, cur_ttl)
        # whole seconds after which a request is allowed (the condition is strict: floor + 1)
        return Refusal(kind, self.per_minute[kind], math.floor(wait) + 1)

    def _limiter(self) -> SlidingWindowCounterRateLimiter:
        if self._shared is not None:
            return self._shared
        # an asyncio Redis connection belongs to the loop that made it: one client per loop (a server has
        # one loop; test clients may start several)
        loop = asyncio.get_running_loop()
        if self._per_loop is None or self._per_loop[0] is not loop:
            url, prefix = self._redis
            storage = RedisStorage("async+" + url, implementation="redispy", key_prefix=prefix + "ratelimit",
                                   wrap_exceptions=True,
                                   socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT)
            self._per_loop = (loop, SlidingWindowCounterRateLimiter(storage))
        return self._per_loop[1]


def redis_options(store_url: str) -> tuple[str, str] | None:
    """(Redis URL, the store's key prefix) when the store is Redis, else None. The store's ?prefix= (default
    "playground:") namespaces the counters and slots too; it is not a connection option."""
    parts = urlsplit(store_url.strip())
    if parts.scheme.lower() not in ("redis", "rediss"):
        return None
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "prefix"), "playground:")
    url = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "prefix"])))
    return url, prefix


class Slots:
    """Counts of calls in progress per key, each under a cap, with a first-come, first-served queue of
    waiters per key. Thread-safe: test clients run several event loops, so a freed slot is handed to the
    oldest waiter through its own loop (``call_soon_threadsafe``), never by polling: a call that waits
    is never overtaken by a later one, so no waiter starves while others come and go."""

    def __init__(self):
        self._held: dict[str, int] = {}
        self._waiters: dict[str, deque] = {}  # key -> (loop, future) of the calls waiting, oldest first
        self._lock = threading.Lock()

    def acquire(self, key: str, cap: int) -> bool:
        """Take a slot for key if fewer than cap are held and nobody waits (cap 0: no cap, always True)."""
        with self._lock:
            return self._take(key, cap)

    def _take(self, key: str, cap: int) -> bool:
        held = self._held.get(key, 0)
        if cap and (held >= cap or self._waiters.get(key)):
            return False
        self._held[key] = held + 1
        return True

    async def wait(self, key: str, cap: int, timeout: float) -> bool:
        """A slot now, or the first one freed after the calls already waiting, within ``timeout`` seconds.

        False when the time runs out (nothing is held then). A cancelled waiter leaves the queue, or gives
        back the slot it was handed at that moment."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._take(key, cap):
                return True
            if timeout <= 0:
                return False
            fut = loop.create_future()
            self._waiters.setdefault(key, deque()).append((loop, fut))
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
            return True
        except BaseException as e:  # timed out or cancelled: still queued, or handed a slot just now?
            with self._lock:
                queue = self._waiters.get(key)
                queued = queue is not None and (loop, fut) in queue
                if queued:
                    queue.remove((loop, fut))
                    if not queue:
                        del self._waiters[key]
            if queued:
                if isinstance(e, asyncio.TimeoutError):
                    return False
                raise
            if isinstance(e, asyncio.TimeoutError):
                return True  # the slot was handed over as the time ran out: it is ours
            self.release(key)  # cancelled with a slot in hand: give it on
            raise

    def release(self, key: str) -> None:
        """Give a slot back: to the oldest waiter when there is one (the count stays), else free it."""
        with self._lock:
            queue = self._waiters.get(key)
            while queue:
                loop, fut = queue.popleft()
                if not queue:
                    del self._waiters[key]
                try:
                    loop.call_soon_threadsafe(_grant, fut)
                    return
                except RuntimeError:  # that waiter's loop is closed: try the next one
                    queue = self._waiters.get(key)
            held = self._held.get(key, 0) - 1
            if held > 0:
                self._held[key] = held
            else:
                self._held.pop(key, None)

    def held(self, key: str) -> int:
        with self._lock:
            return self._held.get(key, 0)


def _grant(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(True)
