"""Rate limits (per client address and per bearer token, every stream message included), security
headers, and secrets kept out of the logs.

SecurityMiddleware is the outermost ASGI middleware: a refused request never reaches the app, so it
changes nothing. An HTTP request over a limit answers 429 with Retry-After. A stream is charged for its
opening and for every message the client sends; over the limit it gets an error frame
``{"type": "error", "status": 429, "detail", "retry_after"}`` and the close code 4429, and the route sees
an ordinary disconnect (it saves its steps and ends). The counting is app/service/ratelimit.py.

The stream's token may come as ``?token=``, as ``Authorization: Bearer``, or in a client message's
``"token"`` field; uvicorn logs the URL of every request, so ``install_log_redaction`` filters tokens
and other secrets out of uvicorn's access and error logs.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
from urllib.parse import unquote_plus

from app.api.errors import close_code, domain_response, error_frame
from app.service.errors import DomainError, Kind, OverLimit, StoreUnavailable
from app.service.ratelimit import LimiterUnavailable, RateLimiter, Refusal

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    # uPlot sets inline styles; everything else, scripts included, comes from this origin
    (b"content-security-policy", b"default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
                                 b"connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'"),
]
UNLIMITED_PATHS = ("/api/health",)  # a load balancer's probe is never refused
SETTING = {"client": "PLAYGROUND_RATE_LIMIT_PER_CLIENT", "token": "PLAYGROUND_RATE_LIMIT_PER_TOKEN"}
WHO = {"client": "client address", "token": "model token"}


def rate_limit_detail(r: Refusal) -> str:
    return (f"rate limit exceeded: {r.per_minute} requests a minute per {WHO[r.kind]} ({SETTING[r.kind]}); "
            f"retry after {r.retry_after} s")


class SecurityMiddleware:
    """Adds security headers to every response and refuses requests and stream messages over the limits."""

    def __init__(self, app, *, per_client: int, per_token: int, store: str = "memory://"):
        self.app = app
        self.limiter = RateLimiter(store, per_client, per_token)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        limited = self.limiter.enabled and path.startswith("/api/") and path not in UNLIMITED_PATHS
        client = scope["client"][0] if scope.get("client") else None
        token = bearer(scope)
        websocket = scope["type"] == "websocket"

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers") or []) + SECURITY_HEADERS
            await send(message)

        if limited:
            refusal = await self._check(client, token)
            if refusal is not None:
                if websocket:
                    return await refuse_handshake(receive, send, refusal)
                return await refuse_http(scope, receive, with_headers, refusal)
        if websocket:
            if limited:
                receive, send = self._metered(client, token, receive, send)
            return await self.app(scope, receive, send)
        await self.app(scope, receive, with_headers)

    async def _check(self, client: str | None, token: str | None) -> DomainError | None:
        try:
            refusal = await self.limiter.hit(client, token)
        except LimiterUnavailable:  # the counters live in the store's Redis: the same 503 as the store's
            return StoreUnavailable()
        return None if refusal is None else OverLimit(Kind.TOO_MANY, rate_limit_detail(refusal), refusal.retry_after)

    def _metered(self, client, token, receive, send):
        """receive and send for a stream whose every client message is charged to the limits."""
        guard = SocketGuard(receive, send)
        known = {"token": token}

        async def metered_receive():
            message = await guard.receive()
            if message["type"] == "websocket.receive":
                known["token"] = known["token"] or message_token(message)
                refusal = await self._check(client, known["token"])
                if refusal is not None:
                    return await guard.refuse(refusal)
            return message

        return metered_receive, guard.send


# -- refusals ------------------------------------------------------------------------------------
async def refuse_http(scope, receive, send, err: DomainError) -> None:
    """Answer a domain error (its status, detail and Retry-After) without calling the app; the same
    response app/api/errors.py gives when a route raises it."""
    await domain_response(err)(scope, receive, send)


def close_reason(detail: str) -> str:
    """A close frame's reason holds at most 123 bytes of UTF-8."""
    raw = detail.encode()
    return detail if len(raw) <= 123 else raw[:120].decode(errors="ignore") + "..."


async def refuse_handshake(receive, send, err: DomainError) -> None:
    """Refuse a stream before the app sees it: accept, send the error frame, close with its code (as
    the stream route does for 4401/4403/4404), so a browser can read why."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": json.dumps(error_frame(err))})
    await send({"type": "websocket.close", "code": close_code(err), "reason": close_reason(str(err.detail))})


class SocketGuard:
    """A stream's receive and send, through which a middleware can end the stream at any moment.

    ``refuse`` sends an error frame and a close, and returns the disconnect message to give the app in
    place of the client's message. Afterwards the app's sends fail with OSError, which Starlette turns
    into WebSocketDisconnect, so the route ends as if the client had left; sends are serialized, so a
    refusal never interleaves with a frame.
    """

    def __init__(self, receive, send):
        self._receive, self._send = receive, send
        self._lock = asyncio.Lock()
        self.closed_code: int | None = None

    async def receive(self):
        if self.closed_code is not None:
            return {"type": "websocket.disconnect", "code": self.closed_code}
        return await self._receive()

    async def send(self, message) -> None:
        async with self._lock:
            if self.closed_code is not None:
                if message["type"] == "websocket.close":
                    return
                raise OSError(f"the server closed this stream (code {self.closed_code})")
            await self._send(message)
            if message["type"] == "websocket.close":
                self.closed_code = message.get("code", 1000)

    async def refuse(self, err: DomainError) -> dict:
        code = close_code(err)
        async with self._lock:
            if self.closed_code is None:
                self.closed_code = code
                try:
                    await self._send({"type": "websocket.send", "text": json.dumps(error_frame(err))})
                    await self._send({"type": "websocket.close", "code": code, "reason": close_reason(str(err.detail))})
                except OSError:  # the client left meanwhile
                    pass
        return {"type": "websocket.disconnect", "code": code}


# -- tokens --------------------------------------------------------------------------------------
def bearer(scope) -> str | None:
    """The request's token: ``Authorization: Bearer`` or the query's ``token=``."""
    for name, value in scope.get("headers") or []:
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return value[7:].decode("latin-1").strip() or None
    for part in scope.get("query_string", b"").decode("latin-1").split("&"):
        name, _, value = part.partition("=")
        if unquote_plus(name) == "token" and value:
            return unquote_plus(value)
    return None


MAX_TOKEN_MESSAGE = 4096  # a message carrying the token is small; longer ones are not parsed for it


def message_token(message) -> str | None:
    """The ``"token"`` of a stream message ``{"token": ..., ...}`` (how the page authenticates a stream)."""
    text = message.get("text")
    if not text or len(text) > MAX_TOKEN_MESSAGE or '"token"' not in text:
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    token = doc.get("token") if isinstance(doc, dict) else None
    return token if isinstance(token, str) and token else None


# -- logs ----------------------------------------------------------------------------------------
REDACTED = "[redacted]"
SECRET_NAME = re.compile(r"token|secret|passw|pwd|api[_-]?key|auth|session|signature|credential", re.I)
_QUERY_PAIR = re.compile(r"(?<=[?&;])([^=&;#\s\"']+)=([^&;#\s\"']*)")
_BEARER = re.compile(r"(bearer\s+)[^\s\"',;]+", re.I)
_URL_PASSWORD = re.compile(r"(//[^/@:\s]*:)[^@/\s]+@")


def redact(text: str) -> str:
    """text with the values of secret query parameters (token=, admin_token=, %74oken=, ...), bearer
    tokens and URL passwords replaced by [redacted]."""
    if "=" in text:
        text = _QUERY_PAIR.sub(lambda m: f"{m[1]}={REDACTED}" if SECRET_NAME.search(unquote_plus(m[1])) else m[0],
                               text)
    if "earer" in text or "EARER" in text:
        text = _BEARER.sub(rf"\1{REDACTED}", text)
    if "@" in text:
        text = _URL_PASSWORD.sub(rf"\1{REDACTED}@", text)
    return text


class RedactSecrets(logging.Filter):
    """Rewrites a record's message and string arguments with ``redact`` (keeping the arguments' shape,
    which uvicorn's access formatter unpacks)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


# uvicorn logs each request's path and query on "uvicorn.access", each stream's on "uvicorn.error"
REDACTED_LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn", "gunicorn.access", "gunicorn.error", "playground")


def install_log_redaction() -> None:
    """Attach RedactSecrets to the loggers that print request URLs (idempotent). Logger filters outlive
    a later logging.config.dictConfig, which replaces handlers but keeps filters."""
    for name in REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
