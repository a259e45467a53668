"""Redis store: a hash per model plus a sorted set by updated_at; leased Redis locks per model.

Layout under a key prefix (default "playground:"):
    <prefix>model:<id>   hash: spec, status (JSON), token_hash, created_at, updated_at (float text),
                         state, history (raw bytes)
    <prefix>models       sorted set: member id, score updated_at (count() and oldest_idle())
    <prefix>setting:<key>  string: JSON value
    <prefix>checkpoints:<id>         sorted set: member and score the step
    <prefix>checkpoint:<id>:<step>   hash: status (JSON), created_at (float text), state, history
    <prefix>lock:<id>    redis-py Lock key (random token, PX lease), kept alive while held
Format 2 adds (release 5b7985d wrote format 1, with no marker):
    <prefix>format       string: the layout version
    model hash fields    version (compare-and-swap saves), owner (creator)
    <prefix>used         sorted set: member id, score last use (reads count; eviction picks from here)
    <prefix>owned:<owner>  set of ids that owner created (per-client quota)
    <prefix>lease:<id>   string: the owner of the model's lease (a playing stream), PX ttl
    <prefix>dataset:<id> hash: meta (JSON), data (blob), created_at;  <prefix>datasets  sorted set by created_at
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.exceptions import LockError, LockNotOwnedError, RedisError

from .base import (FORMAT_VERSION, ModelRecord, NewerFormat, StaleVersion, Store, dump_json, dump_setting,
                   load_json, step_or_none, validate_count, validate_id, validate_setting_key)
from .migrate import datasets_from_settings

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "playground:"
_PREFIX_RE = re.compile(r"[!-~]{0,128}")  # printable ASCII without spaces; may be empty
_FIELDS = (b"spec", b"status", b"token_hash", b"created_at", b"updated_at", b"state", b"history")
# take or renew: free, expired (PX gone) or already ours
_ACQUIRE = """local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0"""
_RELEASE = """if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"""


def _valid(model_id: object) -> bool:
    try:
        validate_id(model_id)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


def _split_url(url: str) -> tuple[str, str | None]:
    """Remove our own ?prefix=... from url (redis-py would pass it on to the connection) and return it."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("redis", "rediss"):
        raise ValueError("expected a redis:// or rediss:// URL")
    prefix = None
    kept = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "prefix":
            if prefix is not None:
                raise ValueError("prefix given twice")
            prefix = value
        elif name == "decode_responses":
            raise ValueError("decode_responses cannot be set: the store reads raw bytes")
        else:
            kept.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(kept))), prefix


class RedisStore(Store):
    """Store on a Redis server; safe to share between threads, processes and hosts.

    url: redis://[user:password@]host[:port][/db][?prefix=...&socket_timeout=...] or rediss:// for
    TLS. prefix (argument or ?prefix=) namespaces every key. lock_lease: seconds a lock survives
    its holder dying; a live holder renews it every lease/3, so long critical sections are safe.
    """

    def __init__(self, url: str, prefix: str | None = None, lock_lease: float = 30.0,
                 **redis_kwargs: Any) -> None:
        conn_url, url_prefix = _split_url(url)
        if prefix is not None and url_prefix is not None and prefix != url_prefix:
            raise ValueError("prefix given both as argument and in the URL")
        prefix = prefix if prefix is not None else url_prefix if url_prefix is not None else DEFAULT_PREFIX
        if not _PREFIX_RE.fullmatch(prefix):
            raise ValueError("prefix must be at most 128 printable ASCII characters without spaces")
        if not lock_lease > 0:
            raise ValueError("lock_lease must be positive")
        self.prefix = prefix
        self.lock_lease = float(lock_lease)
        self.url = re.sub(r"(//[^/@:]*):[^/@]*@", r"\1:***@", url)  # for messages; password masked
        # Bounded socket waits so a dead server raises instead of hanging a request; URL query
        # options (socket_timeout=..., ...) override these defaults.
        kwargs = {"socket_connect_timeout": 5.0, "socket_timeout": 30.0, "health_check_interval": 30,
                  **redis_kwargs, "decode_responses": False}
        # Lazy: nothing connects until the first command; the pool re-creates connections after fork().
        self._r: redis.Redis | None = redis.Redis.from_url(conn_url, **kwargs)
        self._zset = prefix + "models"
        self._used = prefix + "used"
        self._datasets = prefix + "datasets"
        self._format_checked = False
        self._format_mu = threading.Lock()

    def _client(self) -> redis.Redis:
        r = self._r
        if r is None:
            raise RuntimeError(f"store {self.url} is closed")
        if not self._format_checked:  # lazy like the connection: the first command migrates if needed
            with self._format_mu:
                if not self._format_checked:
                    self._migrate(r)
                    self._format_checked = True
        return r

    def _migrate(self, r: redis.Redis) -> None:
        """Bring the keys under prefix to FORMAT_VERSION, once, under a migration lock shared by every process."""
        fkey = self.prefix + "format"
        current = r.get(fkey)
        if current is not None and int(current) == FORMAT_VERSION:
            return
        with r.lock(self.prefix + "migrate", timeout=300, blocking_timeout=300):
            current = r.get(fkey)
            version = int(current) if current is not None else 1  # release 5b7985d wrote no marker
            if version > FORMAT_VERSION:
                raise NewerFormat(f"{self.url} prefix {self.prefix!r} has store format {version}; this release "
                                  f"reads up to {FORMAT_VERSION}: upgrade the server")
            if version < 2:
                for mid, updated in r.zrange(self._zset, 0, -1, withscores=True):
                    key = self._key(mid.decode())
                    status = r.hget(key, b"status")
                    if status is None:
                        continue
                    v = int(load_json(status).get("version", 0) or 0)
                    r.hsetnx(key, b"version", v)
                    r.hsetnx(key, b"owner", b"")
                    r.zadd(self._used, {mid: updated}, nx=True)
                for skey in list(r.scan_iter(match=f"{self.prefix}setting:dataset.*")):
                    name = skey.decode()[len(self.prefix) + len("setting:"):]
                    value = r.get(skey)
                    if value is not None:
                        for dataset_id, meta, data, created in datasets_from_settings({name: load_json(value)}):
                            self._write_dataset(r, dataset_id, meta, data, created)
                    r.delete(skey)
            r.set(fkey, FORMAT_VERSION)

    def _key(self, model_id: str) -> str:
        return f"{self.prefix}model:{model_id}"

    def _owned(self, owner: str) -> str:
        return f"{self.prefix}owned:{owner}"

    def _ckpt_set(self, model_id: str) -> str:
        return f"{self.prefix}checkpoints:{model_id}"

    def _ckpt_key(self, model_id: str, step: int | bytes) -> str:
        return f"{self.prefix}checkpoint:{model_id}:{step.decode() if isinstance(step, bytes) else step}"

    def create(self, record: ModelRecord) -> None:
        """Insert a new record atomically (WATCH/MULTI); KeyError if the id exists."""
        validate_id(record.id)
        now = time.time()
        created = record.created_at or now
        fields = {b"spec": dump_json(record.spec), b"status": dump_json(record.status),
                  b"token_hash": record.token_hash, b"created_at": repr(float(created)),
                  b"updated_at": repr(now), b"state": bytes(record.state), b"history": bytes(record.history),
                  b"version": record.version, b"owner": record.owner}
        key = self._key(record.id)

        def insert(pipe: redis.client.Pipeline) -> None:
            if pipe.exists(key):
                raise KeyError(record.id)
            pipe.multi()
            pipe.hset(key, mapping=fields)
            pipe.zadd(self._zset, {record.id: now})
            pipe.zadd(self._used, {record.id: now})
            if record.owner:
                pipe.sadd(self._owned(record.owner), record.id)

        self._client().transaction(insert, key)
        record.created_at, record.updated_at = created, now

    def get(self, model_id: str) -> ModelRecord | None:
        """Return the record, or None."""
        if not _valid(model_id):
            return None
        row = self._client().hgetall(self._key(model_id))
        if not row:
            return None
        return ModelRecord(model_id, load_json(row[b"spec"]), load_json(row[b"status"]),
                           bytes(row[b"state"]), bytes(row[b"history"]), row[b"token_hash"].decode(),
                           float(row[b"created_at"]), float(row[b"updated_at"]), row.get(b"owner", b"").decode())

    def get_status(self, model_id: str) -> tuple[dict, dict] | None:
        """Return (spec, status) with one HMGET, never transferring the blobs; or None."""
        if not _valid(model_id):
            return None
        spec, status = self._client().hmget(self._key(model_id), [b"spec", b"status"])
        return None if spec is None or status is None else (load_json(spec), load_json(status))

    def put(self, record: ModelRecord, expected_version: int | None = None) -> None:
        """Overwrite an existing record, keeping its created_at; KeyError if missing.

        With expected_version, the stored version is read under WATCH: StaleVersion if it differs, and a
        concurrent save between the read and EXEC makes redis-py retry the check.
        """
        if not _valid(record.id):
            raise KeyError(record.id)
        key = self._key(record.id)
        fields = {b"spec": dump_json(record.spec), b"status": dump_json(record.status),
                  b"token_hash": record.token_hash, b"state": bytes(record.state),
                  b"history": bytes(record.history), b"version": record.version}
        stamp: list[float] = []

        def update(pipe: redis.client.Pipeline) -> None:
            # WATCH makes a concurrent delete() abort this transaction, so a put can never
            # resurrect a deleted model as a half record without created_at.
            if not pipe.exists(key):
                raise KeyError(record.id)
            if expected_version is not None and int(pipe.hget(key, b"version") or 0) != expected_version:
                raise StaleVersion(record.id)
            now = time.time()
            stamp[:] = [now]
            pipe.multi()
            pipe.hset(key, mapping={**fields, b"updated_at": repr(now)})
            pipe.zadd(self._zset, {record.id: now})
            pipe.zadd(self._used, {record.id: now})

        self._client().transaction(update, key)
        record.updated_at = stamp[0]

    def delete(self, model_id: str) -> bool:
        """Remove the hash, its sorted-set entry and its checkpoints atomically; True if it existed."""
        if not _valid(model_id):
            return False
        key, cset = self._key(model_id), self._ckpt_set(model_id)

        def remove(pipe: redis.client.Pipeline) -> None:
            steps = pipe.zrange(cset, 0, -1)  # WATCHed: a checkpoint added meanwhile makes us retry
            owner = pipe.hget(key, b"owner")
            pipe.multi()
            pipe.delete(key)
            pipe.zrem(self._zset, model_id)
            pipe.zrem(self._used, model_id)
            pipe.delete(f"{self.prefix}lease:{model_id}")
            if owner:
                pipe.srem(self._owned(owner.decode()), model_id)
            pipe.delete(cset, *(self._ckpt_key(model_id, s) for s in steps))

        removed = self._client().transaction(remove, key, cset)[0]
        return removed > 0

    def count(self) -> int:
        """Number of records."""
        return self._client().zcard(self._zset)

    def oldest_idle(self) -> str | None:
        """Id with the smallest updated_at; equal scores come back in id order, as the interface asks."""
        first = self._client().zrange(self._zset, 0, 0)
        return first[0].decode() if first else None

    def touch(self, model_id: str, when: float | None = None) -> None:
        # XX: only a model that exists; a touch never creates an entry for a deleted one
        if _valid(model_id):
            self._client().zadd(self._used, {model_id: time.time() if when is None else when}, xx=True)

    def least_used(self, before: float, limit: int = 16) -> list[str]:
        ids = self._client().zrangebyscore(self._used, "-inf", f"({before!r}", start=0, num=int(limit))
        return [i.decode() for i in ids]

    def count_owned(self, owner: str) -> int:
        return self._client().scard(self._owned(owner))

    def acquire_lease(self, model_id: str, owner: str, ttl: float) -> bool:
        validate_id(model_id)
        return bool(self._client().eval(_ACQUIRE, 1, f"{self.prefix}lease:{model_id}", owner,
                                        max(1, int(ttl * 1000))))

    def release_lease(self, model_id: str, owner: str) -> None:
        if _valid(model_id):
            self._client().eval(_RELEASE, 1, f"{self.prefix}lease:{model_id}", owner)

    def lease_holder(self, model_id: str) -> str | None:
        if not _valid(model_id):
            return None
        v = self._client().get(f"{self.prefix}lease:{model_id}")
        return None if v is None else v.decode()

    def _write_dataset(self, r, dataset_id: str, meta: dict, data: bytes, created: float) -> None:
        pipe = r.pipeline(transaction=True)
        pipe.hset(f"{self.prefix}dataset:{dataset_id}", mapping={b"meta": dump_setting(meta), b"data": bytes(data),
                                                                  b"created_at": repr(created)})
        pipe.zadd(self._datasets, {dataset_id: created})
        pipe.execute()

    def put_dataset(self, dataset_id: str, meta: dict, data: bytes) -> None:
        self._write_dataset(self._client(), validate_id(dataset_id), meta, data, time.time())

    def get_dataset(self, dataset_id: str) -> tuple[dict, bytes] | None:
        if not _valid(dataset_id):
            return None
        meta, data = self._client().hmget(f"{self.prefix}dataset:{dataset_id}", [b"meta", b"data"])
        return None if meta is None or data is None else (load_json(meta), bytes(data))

    def list_datasets(self) -> list[tuple[str, float, int]]:
        ids = self._client().zrange(self._datasets, 0, -1, withscores=True)
        pipe = self._client().pipeline(transaction=False)
        for i, _ in ids:
            pipe.hstrlen(f"{self.prefix}dataset:{i.decode()}", b"data")
        return [(i.decode(), created, n) for (i, created), n in zip(ids, pipe.execute())]

    def delete_dataset(self, dataset_id: str) -> bool:
        if not _valid(dataset_id):
            return False
        pipe = self._client().pipeline(transaction=True)
        pipe.delete(f"{self.prefix}dataset:{dataset_id}")
        pipe.zrem(self._datasets, dataset_id)
        return pipe.execute()[0] > 0

    def checkpoint_sizes(self, model_id: str) -> list[tuple[int, int]]:
        if not _valid(model_id):
            return []
        steps = self._client().zrange(self._ckpt_set(model_id), 0, -1)
        pipe = self._client().pipeline(transaction=False)
        for st in steps:
            pipe.hstrlen(self._ckpt_key(model_id, st), b"state")
            pipe.hstrlen(self._ckpt_key(model_id, st), b"history")
        n = pipe.execute()
        return [(int(st), n[2 * i] + n[2 * i + 1]) for i, st in enumerate(steps)]

    def format_version(self) -> int:
        v = self._client().get(self.prefix + "format")
        return int(v) if v is not None else 1

    def ping(self) -> None:
        # a write, with a short life: a server that answers PING but refuses writes (out of memory with
        # noeviction, a read-only replica) cannot serve the app either
        self._client().set(self.prefix + "health", b"1", px=10_000)

    def list_status(self) -> list[tuple[str, dict, dict, float]]:
        """(id, spec, status, updated_at) of every model by created_at then id; pipelined HMGETs, no blobs."""
        ids = self._client().zrange(self._zset, 0, -1)
        pipe = self._client().pipeline(transaction=False)
        for mid in ids:
            pipe.hmget(self._key(mid.decode()), [b"created_at", b"spec", b"status", b"updated_at"])
        rows = [(float(c), mid.decode(), sp, st, float(u))
                for mid, (c, sp, st, u) in zip(ids, pipe.execute()) if None not in (c, sp, st, u)]
        return [(mid, load_json(sp), load_json(st), u) for _, mid, sp, st, u in sorted(rows)]

    def get_setting(self, key: str) -> dict | None:
        """Return the value stored under key, or None."""
        text = self._client().get(f"{self.prefix}setting:{validate_setting_key(key)}")
        return None if text is None else load_json(text)

    def put_setting(self, key: str, value: dict) -> None:
        """Store (overwrite) value under key."""
        self._client().set(f"{self.prefix}setting:{validate_setting_key(key)}", dump_setting(value))

    def put_checkpoint(self, model_id: str, step: int, state: bytes, history: bytes, status: dict) -> None:
        """Save (overwrite) the checkpoint at step; KeyError if the model is missing (WATCHed: no orphans)."""
        validate_id(model_id)
        step = validate_count(step, "step")
        key, ckey = self._key(model_id), self._ckpt_key(model_id, step)
        fields = {b"status": dump_json(status), b"state": bytes(state), b"history": bytes(history)}

        def save(pipe: redis.client.Pipeline) -> None:
            if not pipe.exists(key):
                raise KeyError(model_id)
            pipe.multi()
            pipe.hset(ckey, mapping={**fields, b"created_at": repr(time.time())})
            pipe.zadd(self._ckpt_set(model_id), {str(step): step})

        self._client().transaction(save, key)

    def list_checkpoints(self, model_id: str) -> list[tuple[int, dict, float]]:
        """(step, status, created_at) sorted by step, without transferring the blobs."""
        if not _valid(model_id):
            return []
        steps = self._client().zrange(self._ckpt_set(model_id), 0, -1)
        pipe = self._client().pipeline(transaction=False)
        for s in steps:
            pipe.hmget(self._ckpt_key(model_id, s), [b"status", b"created_at"])
        return [(int(s), load_json(st), float(c)) for s, (st, c) in zip(steps, pipe.execute())
                if st is not None and c is not None]

    def get_checkpoint(self, model_id: str, step: int) -> tuple[bytes, bytes, dict] | None:
        """Return (state, history, status), or None."""
        step = step_or_none(step)
        if step is None or not _valid(model_id):
            return None
        state, history, status = self._client().hmget(self._ckpt_key(model_id, step),
                                                      [b"state", b"history", b"status"])
        return None if None in (state, history, status) else (bytes(state), bytes(history), load_json(status))

    def prune_checkpoints(self, model_id: str, keep: int) -> None:
        """Keep only the `keep` checkpoints with the highest steps, in one WATCHed transaction."""
        keep = validate_count(keep, "keep")
        if not _valid(model_id):
            return
        cset = self._ckpt_set(model_id)

        def prune(pipe: redis.client.Pipeline) -> None:
            old = pipe.zrange(cset, 0, -keep - 1)
            pipe.multi()
            if old:
                pipe.zrem(cset, *old)
                pipe.delete(*(self._ckpt_key(model_id, s) for s in old))

        self._client().transaction(prune, cset)

    def lock(self, model_id: str, timeout: float | None = 30.0) -> _RedisLock:
        """Exclusive, non-reentrant lock across threads, processes and hosts; TimeoutError on timeout.

        The id is validated here, before the with-block, so callers can catch ValueError on the call.
        """
        validate_id(model_id)
        self._client()
        return _RedisLock(self, model_id, timeout)

    def close(self) -> None:
        """Drop the connection pool; idempotent, later calls raise RuntimeError."""
        r, self._r = self._r, None
        if r is not None:
            r.close()
            r.connection_pool.disconnect()

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r}, prefix={self.prefix!r})"


class _RedisLock:
    """One acquisition of a model lock: a fresh redis-py Lock (its own random token, so two threads
    of one process exclude each other) plus a daemon thread renewing the lease while it is held."""

    def __init__(self, store: RedisStore, model_id: str, timeout: float | None) -> None:
        self._store, self._id, self._timeout = store, model_id, timeout
        self._lk: redis.lock.Lock | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def __enter__(self) -> None:
        if self._lk is not None:
            raise RuntimeError("model locks are not reentrant")
        store, timeout = self._store, self._timeout
        # thread_local=False: the token must be visible to the renewer thread; the Lock object is
        # private to this acquisition, so no other thread can use it.
        lk = store._client().lock(f"{store.prefix}lock:{self._id}", timeout=store.lock_lease,
                                  thread_local=False)
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        delay = 0.001
        while not lk.acquire(blocking=False):  # one SET NX PX per attempt; we do the backoff
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"could not lock model {self._id!r} within {timeout}s")
            time.sleep(delay if left is None else min(delay, left))
            delay = min(delay * 2, 0.02)
        self._lk, self._stop = lk, threading.Event()
        self._renewer = threading.Thread(target=self._renew, args=(lk, self._stop),
                                         name=f"redis-lock-renew:{self._id}", daemon=True)
        self._renewer.start()

    def _renew(self, lk: redis.lock.Lock, stop: threading.Event) -> None:
        interval = self._store.lock_lease / 3
        while not stop.wait(interval):
            try:
                lk.reacquire()  # resets the TTL to a full lease if our token still owns the key
            except LockNotOwnedError:
                log.warning("lock on model %r expired while held (lease %.1fs)", self._id,
                            self._store.lock_lease)
                return
            except RedisError as exc:  # transient; the lease still has up to 2/3 left
                log.warning("could not renew lock on model %r: %s", self._id, exc)

    def __exit__(self, *exc: object) -> None:
        lk, self._lk = self._lk, None
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        try:
            lk.release()
        except LockNotOwnedError:
            # The lease ran out (server unreachable for a whole lease); someone may hold it now,
            # so there is nothing safe to release. Logged rather than raised so an exception from
            # the with-body is not masked.
            log.warning("lock on model %r was lost before release", self._id)
        except (LockError, RedisError) as exc:
            log.warning("could not release lock on model %r (it expires with its lease): %s", self._id, exc)


__all__ = ["RedisStore", "DEFAULT_PREFIX"]
