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
Format 3 adds:
    model hash fields    nbytes (the record's bytes), ckpt_bytes (its checkpoints' bytes)
    checkpoint hash field  nbytes
    <prefix>usage        hash: owner -> bytes of its models and checkpoints;  <prefix>bytes  string: all of them
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

from .base import (FORMAT_VERSION, NO_QUOTA, CheckpointRow, DatasetRow, ModelRecord, ModelRow, NewerFormat,
                   OverQuota, Quota, StaleVersion, Store, checkpoint_bytes, dump_json, dump_setting, load_json,
                   record_bytes, step_or_none, validate_count, validate_id, validate_setting_key)
from .migrate import datasets_from_settings

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "playground:"
_PREFIX_RE = re.compile(r"[!-~]{0,128}")  # printable ASCII without spaces; may be empty
# take or renew: free, expired (PX gone) or already ours
_ACQUIRE = """local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0"""
_RELEASE = """if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"""
# Byte quotas are checked and counted inside one Lua script per write, so every process sees the same counts
# and a refused write changes nothing. Counters: <prefix>usage (hash owner -> bytes), <prefix>bytes (total).
_QUOTA_LUA = """
local function over(usage, total_key, owner, delta, per_owner, total)
  if delta <= 0 then return nil end
  if per_owner > 0 and owner ~= '' then
    local used = tonumber(redis.call('HGET', usage, owner) or '0')
    if used + delta > per_owner then return {2, used, delta} end
  end
  if total > 0 then
    local used = tonumber(redis.call('GET', total_key) or '0')
    if used + delta > total then return {3, used, delta} end
  end
  return nil
end
local function charge(usage, total_key, owner, delta)
  if delta ~= 0 then
    if redis.call('HINCRBY', usage, owner, delta) == 0 then redis.call('HDEL', usage, owner) end
    if redis.call('INCRBY', total_key, delta) == 0 then redis.call('DEL', total_key) end
  end
end
"""
# KEYS: model, models, used, usage, bytes, owned; ARGV: id, now, owner, nbytes, per_owner, total, field, value, ...
_CREATE = _QUOTA_LUA + """
if redis.call('EXISTS', KEYS[1]) == 1 then return {1} end
local o = over(KEYS[4], KEYS[5], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]))
if o then return o end
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
if ARGV[3] ~= '' then redis.call('SADD', KEYS[6], ARGV[1]) end
charge(KEYS[4], KEYS[5], ARGV[3], tonumber(ARGV[4]))
return {0}
"""
# KEYS: model, models, used, usage, bytes; ARGV: id, now, expected version or '', nbytes, per_owner, total, fields...
_PUT = _QUOTA_LUA + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {1} end
if ARGV[3] ~= '' and tonumber(redis.call('HGET', KEYS[1], 'version') or '0') ~= tonumber(ARGV[3]) then return {4} end
local owner = redis.call('HGET', KEYS[1], 'owner') or ''
local delta = tonumber(ARGV[4]) - tonumber(redis.call('HGET', KEYS[1], 'nbytes') or '0')
local o = over(KEYS[4], KEYS[5], owner, delta, tonumber(ARGV[5]), tonumber(ARGV[6]))
if o then return o end
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
charge(KEYS[4], KEYS[5], owner, delta)
return {0}
"""
# KEYS: model, checkpoints, models, used, usage, bytes, lease; ARGV: id, prefix
_DELETE = _QUOTA_LUA + """
local found = redis.call('EXISTS', KEYS[1])
local owner = redis.call('HGET', KEYS[1], 'owner') or ''
local freed = tonumber(redis.call('HGET', KEYS[1], 'nbytes') or '0') +
              tonumber(redis.call('HGET', KEYS[1], 'ckpt_bytes') or '0')
for _, st in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  redis.call('DEL', ARGV[2] .. 'checkpoint:' .. ARGV[1] .. ':' .. st)
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[7])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
if owner ~= '' then redis.call('SREM', ARGV[2] .. 'owned:' .. owner, ARGV[1]) end
if found == 1 then charge(KEYS[5], KEYS[6], owner, -freed) end
return found
"""
# KEYS: model, checkpoints, usage, bytes; ARGV: id, prefix, keep, max_bytes, per_owner, total, now, missing_ok,
# then per checkpoint: step, status, state, history, nbytes
_CHECKPOINTS = _QUOTA_LUA + """
if redis.call('EXISTS', KEYS[1]) == 0 then
  if ARGV[8] == '1' then return {0} end
  return {1}
end
local owner = redis.call('HGET', KEYS[1], 'owner') or ''
local base = ARGV[2] .. 'checkpoint:' .. ARGV[1] .. ':'
local all, list, before = {}, {}, 0
for _, st in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local k = base .. st
  local c = {step = st, num = tonumber(st), n = tonumber(redis.call('HGET', k, 'nbytes') or '0'),
             b = redis.call('HSTRLEN', k, 'state') + redis.call('HSTRLEN', k, 'history')}
  all[st] = c; table.insert(list, c); before = before + c.n
end
for i = 9, #ARGV, 5 do
  local c = all[ARGV[i]]
  if c == nil then c = {step = ARGV[i], num = tonumber(ARGV[i])}; all[ARGV[i]] = c; table.insert(list, c) end
  c.n, c.b, c.arg = tonumber(ARGV[i + 4]), string.len(ARGV[i + 2]) + string.len(ARGV[i + 3]), i
end
table.sort(list, function(x, y) return x.num < y.num end)
local keep, max_bytes, count, size, after = tonumber(ARGV[3]), tonumber(ARGV[4]), 0, 0, 0
for j = #list, 1, -1 do
  local c = list[j]
  if count >= keep or (max_bytes > 0 and count > 0 and size + c.b > max_bytes) then break end
  c.kept, count, size, after = true, count + 1, size + c.b, after + c.n
end
local delta = after - before
local o = over(KEYS[3], KEYS[4], owner, delta, tonumber(ARGV[5]), tonumber(ARGV[6]))
if o then return o end
for _, c in ipairs(list) do
  if not c.kept then
    redis.call('DEL', base .. c.step)
    redis.call('ZREM', KEYS[2], c.step)
  elseif c.arg then
    local i = c.arg
    redis.call('HSET', base .. c.step, 'status', ARGV[i + 1], 'state', ARGV[i + 2], 'history', ARGV[i + 3],
               'nbytes', ARGV[i + 4], 'created_at', ARGV[7])
    redis.call('ZADD', KEYS[2], c.step, c.step)
  end
end
if delta ~= 0 then redis.call('HINCRBY', KEYS[1], 'ckpt_bytes', delta) end
charge(KEYS[3], KEYS[4], owner, delta)
return {0}
"""


def _outcome(reply: list, model_id: str, quota: Quota) -> None:
    """Raise what a write script answered: KeyError, StaleVersion or OverQuota; nothing for success."""
    code = int(reply[0])
    if code == 1:
        raise KeyError(model_id)
    if code == 4:
        raise StaleVersion(model_id)
    if code in (2, 3):
        raise OverQuota("owner" if code == 2 else "total", quota.per_owner if code == 2 else quota.total,
                        int(reply[1]), int(reply[2]))


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


HEALTH_TIMEOUT = 2.0  # seconds /api/health waits for Redis

class RedisStore(Store):
    """Store on a Redis server; safe to share between threads, processes and hosts.

    url: redis://[user:password@]host[:port][/db][?prefix=...&socket_timeout=...] or rediss:// for
    TLS. prefix (argument or ?prefix=) namespaces every key. lock_lease: seconds a lock survives
    its holder dying when lock() names no lease; a live holder renews it every lease/3, so long
    critical sections are safe.
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
        # health answers within a load balancer's check (a few seconds) even when the server hangs
        health = {**kwargs, "socket_timeout": min(HEALTH_TIMEOUT, kwargs["socket_timeout"] or HEALTH_TIMEOUT),
                  "socket_connect_timeout": HEALTH_TIMEOUT}
        self._health: redis.Redis | None = redis.Redis.from_url(conn_url, **health)
        self._zset = prefix + "models"
        self._used = prefix + "used"
        self._datasets = prefix + "datasets"
        self._usage, self._total = prefix + "usage", prefix + "bytes"
        self._scripts = {name: self._r.register_script(src) for name, src in
                         (("create", _CREATE), ("put", _PUT), ("delete", _DELETE), ("checkpoints", _CHECKPOINTS))}
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
            if version < 3:
                self._count_bytes(r)
            r.set(fkey, FORMAT_VERSION)

    def _count_bytes(self, r: redis.Redis) -> None:
        """Format 3: every model's and checkpoint's bytes, and the counters per owner and in all, from scratch."""
        usage: dict[str, int] = {}
        for mid in r.zrange(self._zset, 0, -1):
            mid = mid.decode()
            key, ckpt_total = self._key(mid), 0
            for st in r.zrange(self._ckpt_set(mid), 0, -1):
                ckey = self._ckpt_key(mid, st)
                n = sum(r.hstrlen(ckey, f) for f in (b"status", b"state", b"history"))
                r.hset(ckey, b"nbytes", n)
                ckpt_total += n
            n = sum(r.hstrlen(key, f) for f in (b"spec", b"status", b"state", b"history"))
            r.hset(key, mapping={b"nbytes": n, b"ckpt_bytes": ckpt_total})
            owner = (r.hget(key, b"owner") or b"").decode()
            usage[owner] = usage.get(owner, 0) + n + ckpt_total
        pipe = r.pipeline(transaction=True)
        pipe.delete(self._usage)
        if usage:
            pipe.hset(self._usage, mapping=usage)
        pipe.set(self._total, sum(usage.values()))
        pipe.execute()

    def _key(self, model_id: str) -> str:
        return f"{self.prefix}model:{model_id}"

    def _owned(self, owner: str) -> str:
        return f"{self.prefix}owned:{owner}"

    def _ckpt_set(self, model_id: str) -> str:
        return f"{self.prefix}checkpoints:{model_id}"

    def _ckpt_key(self, model_id: str, step: int | bytes) -> str:
        return f"{self.prefix}checkpoint:{model_id}:{step.decode() if isinstance(step, bytes) else step}"

    def bytes_used(self, owner: str | None = None) -> int:
        v = self._client().get(self._total) if owner is None else self._client().hget(self._usage, owner)
        return int(v or 0)

    def _fields(self, record: ModelRecord) -> tuple[int, list]:
        """(bytes, field value ...) of a record's hash, as the write scripts take them."""
        spec, status = dump_json(record.spec), dump_json(record.status)
        state, history = bytes(record.state), bytes(record.history)
        nbytes = record_bytes(spec, status, state, history)
        return nbytes, [b"spec", spec, b"status", status, b"token_hash", record.token_hash, b"state", state,
                        b"history", history, b"version", record.version, b"nbytes", nbytes]

    def create(self, record: ModelRecord, quota: Quota = NO_QUOTA) -> None:
        """Insert a new record and count its bytes atomically (one script); KeyError if the id exists."""
        validate_id(record.id)
        now = time.time()
        created = record.created_at or now
        nbytes, fields = self._fields(record)
        fields += [b"created_at", repr(float(created)), b"updated_at", repr(now), b"owner", record.owner,
                   b"ckpt_bytes", 0]
        reply = self._scripts["create"](
            keys=[self._key(record.id), self._zset, self._used, self._usage, self._total, self._owned(record.owner)],
            args=[record.id, repr(now), record.owner, nbytes, quota.per_owner, quota.total, *fields],
            client=self._client())
        _outcome(reply, record.id, quota)
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

    def put(self, record: ModelRecord, expected_version: int | None = None, quota: Quota = NO_QUOTA) -> None:
        """Overwrite an existing record, keeping its created_at; KeyError if missing.

        One script checks the stored version (StaleVersion) and the quota (OverQuota), writes and counts
        the bytes, so a refused save changes nothing and a deleted model is never resurrected.
        """
        if not _valid(record.id):
            raise KeyError(record.id)
        now = time.time()
        nbytes, fields = self._fields(record)
        reply = self._scripts["put"](
            keys=[self._key(record.id), self._zset, self._used, self._usage, self._total],
            args=[record.id, repr(now), "" if expected_version is None else int(expected_version), nbytes,
                  quota.per_owner, quota.total, *fields, b"updated_at", repr(now)],
            client=self._client())
        _outcome(reply, record.id, quota)
        record.updated_at = now

    def delete(self, model_id: str) -> bool:
        """Remove the hash, its sorted-set entries and its checkpoints and uncount their bytes atomically (one
        script); True if it existed."""
        if not _valid(model_id):
            return False
        keys = [self._key(model_id), self._ckpt_set(model_id), self._zset, self._used, self._usage, self._total,
                f"{self.prefix}lease:{model_id}"]
        return int(self._scripts["delete"](keys=keys, args=[model_id, self.prefix], client=self._client())) == 1

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

    def list_datasets(self) -> list[DatasetRow]:
        ids = self._client().zrange(self._datasets, 0, -1, withscores=True)
        pipe = self._client().pipeline(transaction=False)
        for i, _ in ids:
            pipe.hstrlen(f"{self.prefix}dataset:{i.decode()}", b"data")
        return [DatasetRow(i.decode(), created, n) for (i, created), n in zip(ids, pipe.execute())]

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
        self._client()  # closed, or a format to migrate: the same answer as every other call
        health = self._health
        if health is None:
            raise RuntimeError(f"store {self.url} is closed")
        health.set(self.prefix + "health", b"1", px=10_000)

    def list_status(self) -> list[ModelRow]:
        """Every model by created_at then id; pipelined HMGETs, no blobs."""
        ids = self._client().zrange(self._zset, 0, -1)
        pipe = self._client().pipeline(transaction=False)
        for mid in ids:
            pipe.hmget(self._key(mid.decode()), [b"created_at", b"spec", b"status", b"updated_at"])
        rows = [(float(c), mid.decode(), sp, st, float(u))
                for mid, (c, sp, st, u) in zip(ids, pipe.execute()) if None not in (c, sp, st, u)]
        return [ModelRow(mid, load_json(sp), load_json(st), u) for _, mid, sp, st, u in sorted(rows)]

    def get_setting(self, key: str) -> dict | None:
        """Return the value stored under key, or None."""
        text = self._client().get(f"{self.prefix}setting:{validate_setting_key(key)}")
        return None if text is None else load_json(text)

    def put_setting(self, key: str, value: dict) -> None:
        """Store (overwrite) value under key."""
        self._client().set(f"{self.prefix}setting:{validate_setting_key(key)}", dump_setting(value))

    def put_checkpoints(self, model_id: str, checkpoints, keep: int, max_bytes: int = 0,
                        quota: Quota = NO_QUOTA) -> None:
        """Save, prune and count the checkpoints' bytes in one script (see Store.put_checkpoints)."""
        validate_id(model_id)
        keep = validate_count(keep, "keep")
        args: list = []
        for step, state, history, status in checkpoints:
            text, state, history = dump_json(status), bytes(state), bytes(history)
            args += [str(validate_count(step, "step")), text, state, history, checkpoint_bytes(text, state, history)]
        self._run_checkpoints(model_id, keep, max_bytes, quota, args, missing_ok=False)

    def _run_checkpoints(self, model_id: str, keep: int, max_bytes: int, quota: Quota, args: list,
                         missing_ok: bool) -> None:
        reply = self._scripts["checkpoints"](
            keys=[self._key(model_id), self._ckpt_set(model_id), self._usage, self._total],
            args=[model_id, self.prefix, keep, int(max_bytes), quota.per_owner, quota.total, repr(time.time()),
                  "1" if missing_ok else "0", *args],
            client=self._client())
        _outcome(reply, model_id, quota)

    def list_checkpoints(self, model_id: str) -> list[CheckpointRow]:
        """Checkpoints sorted by step, without transferring the blobs."""
        if not _valid(model_id):
            return []
        steps = self._client().zrange(self._ckpt_set(model_id), 0, -1)
        pipe = self._client().pipeline(transaction=False)
        for s in steps:
            pipe.hmget(self._ckpt_key(model_id, s), [b"status", b"created_at"])
        return [CheckpointRow(int(s), load_json(st), float(c)) for s, (st, c) in zip(steps, pipe.execute())
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
        """Keep only the `keep` checkpoints with the highest steps, uncounting the others (one script)."""
        keep = validate_count(keep, "keep")
        if _valid(model_id):
            self._run_checkpoints(model_id, keep, 0, NO_QUOTA, [], missing_ok=True)

    def lock(self, model_id: str, timeout: float | None = 30.0, lease: float | None = None) -> _RedisLock:
        """Exclusive, non-reentrant lock across threads, processes and hosts; TimeoutError on timeout.

        A holder that dies frees it after ``lease`` seconds (lock_lease with None). The id is validated
        here, before the with-block, so callers can catch ValueError on the call.
        """
        validate_id(model_id)
        if lease is not None and not lease > 0:
            raise ValueError("lease must be positive")
        self._client()
        return _RedisLock(self, model_id, timeout, self.lock_lease if lease is None else float(lease))

    def close(self) -> None:
        """Drop the connection pool; idempotent, later calls raise RuntimeError."""
        r, self._r = self._r, None
        health, self._health = self._health, None
        for client in (r, health):
            if client is not None:
                client.close()
                client.connection_pool.disconnect()

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r}, prefix={self.prefix!r})"


class _RedisLock:
    """One acquisition of a model lock: a fresh redis-py Lock (its own random token, so two threads
    of one process exclude each other) plus a daemon thread renewing the lease while it is held."""

    def __init__(self, store: RedisStore, model_id: str, timeout: float | None, lease: float) -> None:
        self._store, self._id, self._timeout, self._lease = store, model_id, timeout, lease
        self._lk: redis.lock.Lock | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def __enter__(self) -> None:
        if self._lk is not None:
            raise RuntimeError("model locks are not reentrant")
        store, timeout = self._store, self._timeout
        # thread_local=False: the token must be visible to the renewer thread; the Lock object is
        # private to this acquisition, so no other thread can use it.
        lk = store._client().lock(f"{store.prefix}lock:{self._id}", timeout=self._lease,
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
        interval = self._lease / 3
        while not stop.wait(interval):
            try:
                lk.reacquire()  # resets the TTL to a full lease if our token still owns the key
            except LockNotOwnedError:
                log.warning("lock on model %r expired while held (lease %.1fs)", self._id, self._lease)
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
