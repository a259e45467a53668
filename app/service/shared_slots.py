"""Concurrency slots shared by every process on one store, held as leases that a dead process lets lapse.

A slot is a lease (key, holder, expiry). ``acquire(key, cap)`` takes one when fewer than ``cap`` unexpired
leases of the key exist, in one round trip: a Lua script on Redis (server time, so hosts need not agree on
the clock), one IMMEDIATE transaction on SQLite (the workers of one host, in a file beside the store's
locks). ``release`` deletes the lease. A daemon thread renews every lease this process holds each
``ttl / 3`` seconds and ends when the process holds none; a process that dies stops renewing, so its
slots free within ``ttl`` seconds. The in-process ``Slots`` (ratelimit.py) still orders waiters; these
make the cap hold across processes, as the rate limits do.
"""
from __future__ import annotations

import itertools
import logging
import os
import secrets
import socket
import sqlite3
import threading
import time
from abc import ABC, abstractmethod

from .errors import store_errors

log = logging.getLogger("playground")


class SharedSlots(ABC):
    """Leased slots per key under a cap, counted by every process on the store."""

    def __init__(self, ttl: float):
        self.ttl = float(ttl)
        self._me = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._ids = itertools.count()
        self._held: dict[str, str] = {}  # holder -> key, renewed by the thread
        self._mu = threading.Lock()
        self._renewer: threading.Thread | None = None

    def acquire(self, key: str, cap: int) -> str | None:
        """The holder id of a new lease on key, or None when cap leases are held (by any process).
        Raises the store's error when it cannot answer."""
        holder = f"{self._me}:{next(self._ids)}"
        if not self._take(key, holder, cap):
            return None
        with self._mu:
            self._held[holder] = key
            if self._renewer is None:
                self._renewer = threading.Thread(target=self._renew_loop, name="slot-leases", daemon=True)
                self._renewer.start()
        return holder

    def release(self, key: str, holder: str) -> None:
        """Give the lease back; if the store cannot take that now, the lease lapses within ttl."""
        with self._mu:
            self._held.pop(holder, None)
        try:
            self._give(key, holder)
        except store_errors() as e:
            log.warning("could not free the slot %s (it lapses within %s s): %s", key, self.ttl, e)

    def close(self) -> None:
        """Give back every lease this process holds (at shutdown); the renewer ends on its next turn."""
        with self._mu:
            held, self._held = list(self._held.items()), {}
        for holder, key in held:
            self.release(key, holder)
        self._disconnect()

    def _disconnect(self) -> None:
        """Close the connection to the store (a later call opens a new one)."""

    def holding(self) -> int:
        with self._mu:
            return len(self._held)

    def _renew_loop(self) -> None:
        while True:
            time.sleep(self.ttl / 3)
            with self._mu:
                if not self._held:
                    self._renewer = None
                    return
                held = list(self._held.items())
            try:
                self._renew(held)
            except store_errors() as e:
                log.warning("could not renew %d slot leases: %s", len(held), e)

    @abstractmethod
    def _take(self, key: str, holder: str, cap: int) -> bool: ...

    @abstractmethod
    def _give(self, key: str, holder: str) -> None: ...

    @abstractmethod
    def _renew(self, held: list[tuple[str, str]]) -> None:
        """Extend each (holder, key) lease to ttl from now."""


# KEYS[1]: the key's sorted set (member holder, score expiry in ms); ARGV: holder, cap, ttl in ms.
# replicate_commands: writes after TIME on Redis before 5 (a no-op since)
_TAKE = """redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1"""
# KEYS: sorted sets; ARGV: their holders, then the ttl in ms
_RENEW = """redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[#ARGV])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', now + ttl, ARGV[i])
  redis.call('PEXPIRE', key, ttl)
end
return #KEYS"""


class RedisSlots(SharedSlots):
    """Slots in the store's Redis, under ``<prefix>slots:<key>``."""

    def __init__(self, url: str, prefix: str, ttl: float, timeout: float = 2.0):
        super().__init__(ttl)
        import redis  # the store is Redis: the client is installed
        self.prefix = prefix
        self._r = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        self._take_script = self._r.register_script(_TAKE)
        self._renew_script = self._r.register_script(_RENEW)

    def _take(self, key: str, holder: str, cap: int) -> bool:
        return bool(self._take_script(keys=[self.prefix + key], args=[holder, cap, int(self.ttl * 1000)]))

    def _give(self, key: str, holder: str) -> None:
        self._r.zrem(self.prefix + key, holder)

    def _disconnect(self) -> None:
        self._r.close()  # the pool's connections; redis-py opens new ones on the next command

    def _renew(self, held: list[tuple[str, str]]) -> None:
        self._renew_script(keys=[self.prefix + k for _, k in held],
                           args=[h for h, _ in held] + [int(self.ttl * 1000)])


class SqliteSlots(SharedSlots):
    """Slots in a SQLite file shared by the workers of one host (the clock is theirs)."""

    def __init__(self, path: str, ttl: float, busy_timeout: float = 5.0):
        super().__init__(ttl)
        self.path, self._busy = path, busy_timeout
        self._db: sqlite3.Connection | None = None  # opened on first use, closed by close()
        self._db_mu = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        """The one connection (callers hold _db_mu): every statement is short; leases are worth no fsync."""
        if self._db is None:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            db = sqlite3.connect(self.path, timeout=self._busy, isolation_level=None, check_same_thread=False)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=OFF")
                db.execute("CREATE TABLE IF NOT EXISTS slots (key TEXT NOT NULL, holder TEXT NOT NULL, "
                           "expires REAL NOT NULL, PRIMARY KEY (key, holder)) WITHOUT ROWID")
                db.execute("CREATE INDEX IF NOT EXISTS slots_expires ON slots (expires)")
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def _take(self, key: str, holder: str, cap: int) -> bool:
        now = time.time()
        with self._db_mu:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM slots WHERE expires <= ?", (now,))  # every key's lapsed leases
                (n,), = db.execute("SELECT count(*) FROM slots WHERE key = ?", (key,))
                if n < cap:
                    db.execute("INSERT INTO slots VALUES (?, ?, ?)", (key, holder, now + self.ttl))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return n < cap

    def _give(self, key: str, holder: str) -> None:
        with self._db_mu:
            self._conn().execute("DELETE FROM slots WHERE key = ? AND holder = ?", (key, holder))

    def _renew(self, held: list[tuple[str, str]]) -> None:
        expires = time.time() + self.ttl
        with self._db_mu:
            self._conn().executemany("UPDATE slots SET expires = ? WHERE key = ? AND holder = ?",
                                     [(expires, k, h) for h, k in held])

    def _disconnect(self) -> None:
        with self._db_mu:
            if self._db is not None:
                self._db.close()
                self._db = None


def shared_slots(store, store_url: str, ttl: float) -> SharedSlots | None:
    """The shared slots of this store: Redis's, a file beside a SQLite store's locks, or None (memory://,
    one process)."""
    from .ratelimit import redis_options
    redis = redis_options(store_url)
    if redis is not None:
        url, prefix = redis
        return RedisSlots(url, prefix + "slots:", ttl)
    lock_dir = getattr(store, "lock_dir", None)
    if lock_dir:
        return SqliteSlots(os.path.join(lock_dir, "slots.sqlite3"), ttl)
    return None
