"""SQLite store: one WAL-mode file shared by threads and processes, flock files for per-model locks."""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
import weakref
from contextlib import contextmanager
from typing import Iterator, Sequence

from .base import (FORMAT_VERSION, NO_QUOTA, CheckpointRow, DatasetRow, ModelRecord, ModelRow, NewerFormat, Quota,
                   StaleVersion, Store, check_quota, checkpoint_bytes, checkpoints_within, dump_json, dump_setting,
                   load_json, record_bytes, step_or_none, validate_count, validate_id, validate_setting_key)
from .migrate import datasets_from_settings

log = logging.getLogger(__name__)

# spec/status come before the blobs so get_status() never has to read the blobs' overflow pages.
# Format 1 (release 5b7985d) had models without version/used_at/owner, no meta, leases or datasets.
_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    token_hash TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    state BLOB NOT NULL,
    history BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS models_updated ON models (updated_at, id);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    model_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    state BLOB NOT NULL,
    history BLOB NOT NULL,
    PRIMARY KEY (model_id, step)
);
"""
# 1 -> 2: compare-and-swap versions, last use (reads count), creator, leases, compact datasets.
_MIGRATE_1_TO_2 = """
ALTER TABLE models ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE models ADD COLUMN used_at REAL NOT NULL DEFAULT 0;
ALTER TABLE models ADD COLUMN owner TEXT NOT NULL DEFAULT '';
UPDATE models SET version = COALESCE(json_extract(status, '$.version'), 0), used_at = updated_at;
CREATE INDEX IF NOT EXISTS models_used ON models (used_at, id);
CREATE INDEX IF NOT EXISTS models_owner ON models (owner);
CREATE TABLE IF NOT EXISTS leases (model_id TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY,
    meta TEXT NOT NULL,
    created_at REAL NOT NULL,
    bytes INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS datasets_created ON datasets (created_at, id);
"""
# 2 -> 3: every model's and checkpoint's bytes, and the bytes stored per owner (the quotas read these).
_MIGRATE_2_TO_3 = """
ALTER TABLE models ADD COLUMN nbytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE checkpoints ADD COLUMN nbytes INTEGER NOT NULL DEFAULT 0;
UPDATE models SET nbytes = length(spec) + length(status) + length(state) + length(history);
UPDATE checkpoints SET nbytes = length(status) + length(state) + length(history);
CREATE TABLE IF NOT EXISTS usage (owner TEXT PRIMARY KEY, bytes INTEGER NOT NULL);
INSERT INTO usage (owner, bytes) SELECT owner, SUM(nbytes + COALESCE((SELECT SUM(c.nbytes) FROM checkpoints c
    WHERE c.model_id = models.id), 0)) FROM models GROUP BY owner;
DELETE FROM checkpoints WHERE model_id NOT IN (SELECT id FROM models);
"""
_COLS = "id, spec, status, token_hash, created_at, updated_at, state, history, owner"
_PRUNE = ("DELETE FROM checkpoints WHERE model_id = ? AND step NOT IN"
          " (SELECT step FROM checkpoints WHERE model_id = ? ORDER BY step DESC LIMIT ?)")
# the WAL file is cut back to this after a checkpoint, so freed space leaves the WAL too
_WAL_KEPT_BYTES = 16 * 1024 * 1024


class _Conn(sqlite3.Connection):
    """Plain connection; subclassed only because the base type cannot be weakly referenced."""


class SqliteStore(Store):
    """Store backed by one SQLite file; each thread (and each process) gets its own connection."""

    def __init__(self, path: str | os.PathLike, busy_timeout: float = 10.0, synchronous: str = "NORMAL"):
        # Absolute so a later chdir cannot move the database or its lock directory.
        self.path = os.path.abspath(os.fspath(path))
        self.lock_dir = self.path + ".locks"
        self._busy = busy_timeout
        # WAL + NORMAL: a commit is in the OS page cache when put() returns, so kill -9 loses
        # nothing; only a power cut could drop the last commits. Pass "FULL" to fsync each commit.
        self._sync = synchronous
        self._local = threading.local()
        # Threads of one process queue here for a write transaction: SQLite's busy handler polls, and a
        # thread that writes in a loop would starve the others until busy_timeout.
        self._writing = threading.RLock()
        self._conns: weakref.WeakSet[_Conn] = weakref.WeakSet()  # so close() reaches every thread's connection
        self._closed = False
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        os.makedirs(self.lock_dir, exist_ok=True)
        conn = self._conn()
        # before the first table: a new file frees deleted pages on incremental_vacuum (reclaim());
        # an older file is vacuumed into this mode once by _vacuum_into_incremental
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL")  # persistent in the file; readers never block the writer
        self._migrate(conn)
        self._vacuum_into_incremental(conn)

    def _vacuum_into_incremental(self, conn: sqlite3.Connection) -> None:
        """A file made without incremental auto-vacuum is rewritten once (VACUUM: it needs the file's size
        again free for a moment) so that later deletes can give their space back."""
        if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            try:
                conn.execute("VACUUM")
            except sqlite3.OperationalError as exc:  # another process is using the file: the next open retries
                log.warning("could not vacuum %s into incremental mode yet: %s", self.path, exc)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring the file to FORMAT_VERSION in one write transaction (so two processes opening it agree)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = conn.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()
            version = int(row[0]) if row else 1  # release 5b7985d wrote no marker
            if version > FORMAT_VERSION:
                raise NewerFormat(f"{self.path} has store format {version}; this release reads up to "
                                  f"{FORMAT_VERSION}: upgrade the server")
            if version < 2:
                for statement in (_SCHEMA_V1 + _MIGRATE_1_TO_2).split(";"):
                    if statement.strip():
                        conn.execute(statement)
                for key, value in conn.execute("SELECT key, value FROM settings WHERE key LIKE 'dataset.%'").fetchall():
                    for dataset_id, meta, data, created in datasets_from_settings({key: load_json(value)}):
                        conn.execute("INSERT OR REPLACE INTO datasets (id, meta, created_at, bytes, data)"
                                     " VALUES (?, ?, ?, ?, ?)", (dataset_id, dump_json(meta), created, len(data), data))
                    conn.execute("DELETE FROM settings WHERE key = ?", (key,))
            if version < 3:
                for statement in _MIGRATE_2_TO_3.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('format_version', ?)", (str(FORMAT_VERSION),))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use (and again after a fork)."""
        if self._closed:
            raise RuntimeError(f"store {self.path} is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():  # a connection must never cross fork()
            # isolation_level=None: every statement commits on its own, so put() is durable on return.
            conn = sqlite3.connect(self.path, timeout=self._busy, isolation_level=None,
                                   check_same_thread=False, factory=_Conn)
            conn.execute(f"PRAGMA busy_timeout={int(self._busy * 1000)}")
            conn.execute(f"PRAGMA synchronous={self._sync}")
            conn.execute(f"PRAGMA journal_size_limit={_WAL_KEPT_BYTES}")
            self._local.conn, self._local.pid = conn, os.getpid()
            self._conns.add(conn)
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """Run the block's statements as one write transaction."""
        conn = self._conn()
        with self._writing:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @staticmethod
    def _charge(conn: sqlite3.Connection, quota: Quota, owner: str, delta: int) -> None:
        """Check delta bytes against the quota and count them for owner, inside the caller's transaction."""
        if delta > 0 and (quota.per_owner or quota.total):
            row = conn.execute("SELECT COALESCE(SUM(bytes), 0), COALESCE(SUM(CASE WHEN owner = ? THEN bytes END), 0)"
                               " FROM usage", (owner,)).fetchone()
            check_quota(quota, owner, row[1], row[0], delta)
        if delta:
            conn.execute("INSERT INTO usage (owner, bytes) VALUES (?, ?)"
                         " ON CONFLICT (owner) DO UPDATE SET bytes = bytes + excluded.bytes", (owner, delta))

    def bytes_used(self, owner: str | None = None) -> int:
        if owner is None:
            return self._conn().execute("SELECT COALESCE(SUM(bytes), 0) FROM usage").fetchone()[0]
        row = self._conn().execute("SELECT bytes FROM usage WHERE owner = ?", (owner,)).fetchone()
        return row[0] if row else 0

    def create(self, record: ModelRecord, quota: Quota = NO_QUOTA) -> None:
        """Insert a new record and count its bytes in one transaction; KeyError if the id exists."""
        validate_id(record.id)
        now = time.time()
        spec, status = dump_json(record.spec), dump_json(record.status)
        state, history = bytes(record.state), bytes(record.history)
        nbytes = record_bytes(spec, status, state, history)
        with self._tx() as conn:
            if conn.execute("SELECT 1 FROM models WHERE id = ?", (record.id,)).fetchone():
                raise KeyError(record.id)
            self._charge(conn, quota, record.owner, nbytes)
            conn.execute(
                f"INSERT INTO models ({_COLS}, version, used_at, nbytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.id, spec, status, record.token_hash, record.created_at or now, now, state, history,
                 record.owner, record.version, now, nbytes))
        record.created_at = record.created_at or now
        record.updated_at = now

    def get(self, model_id: str) -> ModelRecord | None:
        """Return the record, or None."""
        row = self._conn().execute(f"SELECT {_COLS} FROM models WHERE id = ?", (model_id,)).fetchone()
        if row is None:
            return None
        mid, spec, status, token_hash, created, updated, state, history, owner = row
        return ModelRecord(mid, load_json(spec), load_json(status), bytes(state), bytes(history),
                           token_hash, created, updated, owner)

    def get_status(self, model_id: str) -> tuple[dict, dict] | None:
        """Return (spec, status) without touching the blobs, or None."""
        row = self._conn().execute("SELECT spec, status FROM models WHERE id = ?", (model_id,)).fetchone()
        return None if row is None else (load_json(row[0]), load_json(row[1]))

    def put(self, record: ModelRecord, expected_version: int | None = None, quota: Quota = NO_QUOTA) -> None:
        """Overwrite an existing record, keeping its created_at; KeyError if missing.

        The version check, the write and the byte count are one transaction: a save never overwrites a
        newer one (StaleVersion) and never passes the quota (OverQuota), and then nothing changes.
        """
        now = time.time()
        spec, status = dump_json(record.spec), dump_json(record.status)
        state, history = bytes(record.state), bytes(record.history)
        nbytes = record_bytes(spec, status, state, history)
        with self._tx() as conn:
            row = conn.execute("SELECT version, nbytes, owner FROM models WHERE id = ?", (record.id,)).fetchone()
            if row is None:
                raise KeyError(record.id)
            if expected_version is not None and row[0] != int(expected_version):
                raise StaleVersion(record.id)
            self._charge(conn, quota, row[2], nbytes - row[1])
            conn.execute("UPDATE models SET spec = ?, status = ?, token_hash = ?, updated_at = ?, used_at = ?,"
                         " state = ?, history = ?, version = ?, nbytes = ? WHERE id = ?",
                         (spec, status, record.token_hash, now, now, state, history, record.version, nbytes,
                          record.id))
        record.updated_at = now

    def delete(self, model_id: str) -> bool:
        """Remove a record, its checkpoints and its lock file, uncount their bytes and give the space back
        to the file system (reclaim); True if the record existed."""
        with self._tx() as conn:
            row = conn.execute("SELECT owner, nbytes + (SELECT COALESCE(SUM(nbytes), 0) FROM checkpoints"
                               " WHERE model_id = ?) FROM models WHERE id = ?", (model_id, model_id)).fetchone()
            conn.execute("DELETE FROM models WHERE id = ?", (model_id,))
            conn.execute("DELETE FROM checkpoints WHERE model_id = ?", (model_id,))
            conn.execute("DELETE FROM leases WHERE model_id = ?", (model_id,))
            if row is not None:
                self._charge(conn, NO_QUOTA, row[0], -row[1])
        if row is not None:
            try:
                # Waiters re-check the inode and move to a fresh file; the only overlap left is a
                # current holder and a new locker, which both see the model as gone.
                os.unlink(self._lock_path(model_id))
            except FileNotFoundError:
                pass
            self.reclaim()
        return row is not None

    def reclaim(self) -> None:
        """Cut the file's free pages off its end (incremental_vacuum), then checkpoint the WAL so the file
        shrinks now. Best effort: when another connection is busy the space is simply reused later."""
        try:
            conn = self._conn()
            with self._writing:
                conn.executescript("PRAGMA incremental_vacuum;")  # execute() would free one page per call
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.OperationalError as exc:
            log.info("could not reclaim free space in %s now: %s", self.path, exc)

    def count(self) -> int:
        """Number of records."""
        return self._conn().execute("SELECT COUNT(*) FROM models").fetchone()[0]

    def oldest_idle(self) -> str | None:
        """Id with the smallest updated_at, or None."""
        row = self._conn().execute("SELECT id FROM models ORDER BY updated_at, id LIMIT 1").fetchone()
        return None if row is None else row[0]

    def touch(self, model_id: str, when: float | None = None) -> None:
        self._conn().execute("UPDATE models SET used_at = ? WHERE id = ?",
                             (time.time() if when is None else when, model_id))

    def least_used(self, before: float, limit: int = 16) -> list[str]:
        rows = self._conn().execute("SELECT id FROM models WHERE used_at < ? ORDER BY used_at, id LIMIT ?",
                                    (before, int(limit)))
        return [r[0] for r in rows]

    def count_owned(self, owner: str) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM models WHERE owner = ?", (owner,)).fetchone()[0]

    def acquire_lease(self, model_id: str, owner: str, ttl: float) -> bool:
        validate_id(model_id)
        now = time.time()  # wall clock: every process on this host's file shares it
        cur = self._conn().execute(
            "INSERT INTO leases (model_id, owner, expires_at) VALUES (?, ?, ?)"
            " ON CONFLICT (model_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at"
            " WHERE leases.owner = excluded.owner OR leases.expires_at <= ?",
            (model_id, owner, now + ttl, now))
        return cur.rowcount > 0

    def release_lease(self, model_id: str, owner: str) -> None:
        self._conn().execute("DELETE FROM leases WHERE model_id = ? AND owner = ?", (model_id, owner))

    def lease_holder(self, model_id: str) -> str | None:
        row = self._conn().execute("SELECT owner FROM leases WHERE model_id = ? AND expires_at > ?",
                                   (model_id, time.time())).fetchone()
        return None if row is None else row[0]

    def put_dataset(self, dataset_id: str, meta: dict, data: bytes) -> None:
        self._conn().execute("INSERT OR REPLACE INTO datasets (id, meta, created_at, bytes, data) VALUES (?, ?, ?, ?, ?)",
                             (validate_id(dataset_id), dump_setting(meta), time.time(), len(data), bytes(data)))

    def get_dataset(self, dataset_id: str) -> tuple[dict, bytes] | None:
        row = self._conn().execute("SELECT meta, data FROM datasets WHERE id = ?", (str(dataset_id),)).fetchone()
        return None if row is None else (load_json(row[0]), bytes(row[1]))

    def list_datasets(self) -> list[DatasetRow]:
        return [DatasetRow(*r) for r in
                self._conn().execute("SELECT id, created_at, bytes FROM datasets ORDER BY created_at, id")]

    def delete_dataset(self, dataset_id: str) -> bool:
        return self._conn().execute("DELETE FROM datasets WHERE id = ?", (str(dataset_id),)).rowcount > 0

    def checkpoint_sizes(self, model_id: str) -> list[tuple[int, int]]:
        rows = self._conn().execute("SELECT step, length(state) + length(history) FROM checkpoints"
                                    " WHERE model_id = ? ORDER BY step", (model_id,))
        return [(step, n) for step, n in rows]

    def format_version(self) -> int:
        row = self._conn().execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()
        return int(row[0]) if row else 1

    def ping(self) -> None:
        self._conn().execute("SELECT 1 FROM models LIMIT 1").fetchall()

    def list_status(self) -> list[ModelRow]:
        """Every model, ordered by created_at then id; no blob reads."""
        rows = self._conn().execute("SELECT id, spec, status, updated_at FROM models ORDER BY created_at, id")
        return [ModelRow(mid, load_json(spec), load_json(status), updated) for mid, spec, status, updated in rows]

    def get_setting(self, key: str) -> dict | None:
        """Return the value stored under key, or None."""
        row = self._conn().execute("SELECT value FROM settings WHERE key = ?",
                                   (validate_setting_key(key),)).fetchone()
        return None if row is None else load_json(row[0])

    def put_setting(self, key: str, value: dict) -> None:
        """Store (overwrite) value under key."""
        self._conn().execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                             (validate_setting_key(key), dump_setting(value)))

    def put_checkpoints(self, model_id: str, checkpoints: Sequence[tuple[int, bytes, bytes, dict]], keep: int,
                        max_bytes: int = 0, quota: Quota = NO_QUOTA) -> None:
        """Save the checkpoints, prune by count and bytes and count the bytes in one write transaction."""
        validate_id(model_id)
        keep = validate_count(keep, "keep")
        now = time.time()
        rows = []
        for step, state, history, status in checkpoints:
            text, state, history = dump_json(status), bytes(state), bytes(history)
            rows.append((model_id, validate_count(step, "step"), text, now, state, history,
                         checkpoint_bytes(text, state, history)))
        with self._tx() as conn:
            owner = conn.execute("SELECT owner FROM models WHERE id = ?", (model_id,)).fetchone()
            if owner is None:
                raise KeyError(model_id)
            before = self._checkpoint_bytes(conn, model_id)
            conn.executemany("INSERT OR REPLACE INTO checkpoints (model_id, step, status, created_at, state, history,"
                             " nbytes) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            self._prune(conn, model_id, keep, max_bytes)
            self._charge(conn, quota, owner[0], self._checkpoint_bytes(conn, model_id) - before)

    @staticmethod
    def _checkpoint_bytes(conn: sqlite3.Connection, model_id: str) -> int:
        return conn.execute("SELECT COALESCE(SUM(nbytes), 0) FROM checkpoints WHERE model_id = ?",
                            (model_id,)).fetchone()[0]

    @staticmethod
    def _prune(conn: sqlite3.Connection, model_id: str, keep: int, max_bytes: int = 0) -> None:
        conn.execute(_PRUNE, (model_id, model_id, keep))
        if max_bytes:
            sizes = conn.execute("SELECT step, length(state) + length(history) FROM checkpoints"
                                 " WHERE model_id = ? ORDER BY step", (model_id,)).fetchall()
            fit = checkpoints_within(sizes, max_bytes)
            if fit < len(sizes):
                conn.execute(_PRUNE, (model_id, model_id, fit))

    def list_checkpoints(self, model_id: str) -> list[CheckpointRow]:
        """Checkpoints sorted by step; no blob reads."""
        rows = self._conn().execute(
            "SELECT step, status, created_at FROM checkpoints WHERE model_id = ? ORDER BY step", (model_id,))
        return [CheckpointRow(step, load_json(status), created) for step, status, created in rows]

    def get_checkpoint(self, model_id: str, step: int) -> tuple[bytes, bytes, dict] | None:
        """Return (state, history, status), or None."""
        row = self._conn().execute(
            "SELECT state, history, status FROM checkpoints WHERE model_id = ? AND step = ?",
            (model_id, step_or_none(step))).fetchone()
        return None if row is None else (bytes(row[0]), bytes(row[1]), load_json(row[2]))

    def prune_checkpoints(self, model_id: str, keep: int) -> None:
        """Keep only the `keep` checkpoints with the highest steps, uncounting the others' bytes."""
        keep = validate_count(keep, "keep")
        with self._tx() as conn:
            owner = conn.execute("SELECT owner FROM models WHERE id = ?", (model_id,)).fetchone()
            before = self._checkpoint_bytes(conn, model_id)
            self._prune(conn, model_id, keep)
            if owner is not None:
                self._charge(conn, NO_QUOTA, owner[0], self._checkpoint_bytes(conn, model_id) - before)

    def _lock_path(self, model_id: str) -> str:
        return os.path.join(self.lock_dir, validate_id(model_id) + ".lock")

    @contextmanager
    def lock(self, model_id: str, timeout: float | None = 30.0, lease: float | None = None) -> Iterator[None]:
        """Exclusive per-model lock across threads and processes (flock on a per-model file: the kernel frees
        it when its holder dies, so it needs no lease)."""
        path = self._lock_path(model_id)
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        delay = 0.001
        while True:
            # A fresh open per attempt: flock belongs to the open file description, so two
            # acquisitions in one process (two threads) exclude each other too.
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"could not lock model {model_id!r} within {timeout}s") from None
                time.sleep(delay if left is None else min(delay, left))
                delay = min(delay * 2, 0.02)
                continue
            # delete() may have unlinked the file after we opened it; a lock on that orphaned
            # inode would exclude nobody, so only keep it if the path still names our file.
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            yield
        finally:
            os.close(fd)  # closing releases the flock; the file stays for the next locker

    def close(self) -> None:
        """Close every thread's connection; later calls raise RuntimeError."""
        self._closed = True
        for conn in list(self._conns):
            conn.close()
        self._conns.clear()
