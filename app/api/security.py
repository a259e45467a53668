"""Rate limits (per client address and per bearer token) and security headers, as ASGI middleware."""
from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    # uPlot sets inline styles; everything else, scripts included, comes from this origin
    (b"content-security-policy", b"default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
                                 b"connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'"),
]


class TokenBuckets:
    """Per-key token buckets: ``rate`` requests a minute with a burst of a tenth of that (at least 10)."""

    def __init__(self, per_minute: int, max_keys: int = 100_000):
        self.rate = per_minute / 60.0
        self.capacity = max(10.0, per_minute / 10.0)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Spend one token; return 0 if allowed, else the seconds until one is available."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
            self._buckets[key] = (tokens - 1 if tokens >= 1 else tokens, now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return wait


class SecurityMiddleware:
    """Adds security headers to every response and answers 429 with Retry-After over the limits."""

    def __init__(self, app, *, per_client: int, per_token: int):
        self.app = app
        self.clients = TokenBuckets(per_client) if per_client > 0 else None
        self.tokens = TokenBuckets(per_token) if per_token > 0 else None

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path.startswith("/api/") and path != "/api/health":
            wait = self._wait(scope)
            if wait > 0:
                return await _too_many(scope, send, wait)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)

    def _wait(self, scope) -> float:
        wait = 0.0
        if self.clients is not None and scope.get("client"):
            wait = self.clients.take("ip:" + scope["client"][0])
        token = _bearer(scope)
        if self.tokens is not None and token:
            wait = max(wait, self.tokens.take("tok:" + token))
        return wait


def _bearer(scope) -> str | None:
    for name, value in scope.get("headers") or []:
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return value[7:].decode("latin-1").strip()
    query = scope.get("query_string", b"").decode("latin-1")
    for part in query.split("&"):
        if part.startswith("token="):
            return part[6:]
    return None


async def _too_many(scope, send, wait: float) -> None:
    retry = str(max(1, math.ceil(wait))).encode()
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1013, "reason": "rate limit exceeded"})
        return
    body = json.dumps({"detail": f"rate limit exceeded; retry after {retry.decode()} s"}).encode()
    await send({"type": "http.response.start", "status": 429,
                "headers": [(b"content-type", b"application/json"), (b"retry-after", retry),
                            (b"content-length", str(len(body)).encode()), *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})
