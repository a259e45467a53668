"""Model persistence: pick a backend from a URL with open_store()."""

from __future__ import annotations

import re

from .base import ModelRecord, Store, validate_id, validate_setting_key
from .memory import MemoryStore
from .sqlite import SqliteStore

__all__ = ["ModelRecord", "Store", "MemoryStore", "SqliteStore", "open_store", "validate_id",
           "validate_setting_key"]

_ACCEPTED = ("memory://, sqlite:///relative/path.sqlite3, sqlite:////absolute/path.sqlite3, "
             "redis[s]://[user:password@]host[:port][/db][?prefix=playground:]")


def _bad(url: object, why: str) -> ValueError:
    """ValueError naming the url (password masked, since URLs come from config) and the accepted schemes."""
    shown = re.sub(r"(//[^/@:]*):[^/@]*@", r"\1:***@", url) if isinstance(url, str) else repr(url)
    return ValueError(f"unsupported store URL {shown!r}: {why}; accepted: {_ACCEPTED}")


def open_store(url: str) -> Store:
    """Open the store named by url: memory://, sqlite:///path (four slashes for an absolute path)
    or redis[s]://host:port/db[?prefix=...] (lazy: connects on first use)."""
    if not isinstance(url, str):
        raise _bad(url, "not a string")
    scheme, sep, rest = url.strip().partition("://")
    scheme = scheme.lower()
    if not sep:
        raise _bad(url, "missing '://'")
    if scheme == "memory":
        if rest:
            raise _bad(url, "memory:// takes no path")
        return MemoryStore()
    if scheme == "sqlite":
        # SQLAlchemy convention: sqlite:///rel/path and sqlite:////abs/path; no host part allowed.
        if not rest.startswith("/"):
            raise _bad(url, "sqlite URLs need three slashes before the path")
        path = rest[1:]
        if not path or path.endswith("/"):
            raise _bad(url, "sqlite URL has no file name")
        if path == ":memory:":
            raise _bad(url, "use memory:// for an in-memory store")
        return SqliteStore(path)
    if scheme in ("redis", "rediss"):
        try:
            from .redis import RedisStore  # lazy: the redis client library is an optional dependency
        except ImportError as exc:
            raise ImportError(f"{scheme}:// stores need the 'redis' package (pip install redis)") from exc
        try:
            return RedisStore(url.strip())
        except ValueError as exc:
            raise _bad(url, str(exc)) from None
    raise _bad(url, f"unknown scheme {scheme!r}")
