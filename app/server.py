"""The HTTP server every start path runs (``playground serve``, the image's CMD): uvicorn with h11, bounded.

Before a request reaches the app, each connection is bounded here, from the PLAYGROUND_* settings:

- the request line and headers: at most ``http_max_header_bytes`` (h11 buffers linearly; more is a 431);
- the time to send them: ``http_header_timeout`` seconds from the connection's start, or from the first
  byte of the next request on a keep-alive connection (then a 408);
- a pause inside a request body: ``http_idle_timeout`` seconds, and the whole body ``http_body_timeout``
  seconds, however slowly it trickles (then a 408); a body the app answered without reading it whole (a
  413, say) is not read on: the connection closes after the answer; between requests,
  ``http_keep_alive`` seconds; WebSocket streams keep uvicorn's ping and ping timeout (20 s each);
- open connections, streams included: ``connections_per_client`` per TCP peer address, and
  ``max_connections`` per process. An excess connection gets a 429 or 503 and is closed, before any
  byte of its request is read. A peer trusted for X-Forwarded-For (``FORWARDED_ALLOW_IPS`` with proxy
  headers on) is a proxy carrying many clients: only the process cap counts its connections, and the
  proxy bounds each client's connections itself.

``uvicorn app.main:app --http app.server:HTTPProtocol`` runs the same protocol from uvicorn's own CLI.
"""
from __future__ import annotations

import functools
import http
import json
import logging
import os
import resource

import h11
from uvicorn.config import Config
from uvicorn.middleware.proxy_headers import _TrustedHosts
from uvicorn.protocols.http.h11_impl import H11Protocol

from app.config import Settings, get_settings

log = logging.getLogger("playground")

# A refused or timed-out connection is read and discarded this long (or this many bytes, so that a client
# sending without end costs little), so that its answer arrives before the close; then it is closed.
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 * 1024
FD_RESERVE = 128  # descriptors kept for the store, logs and pipes besides the connections
FD_TARGET = 65536  # the soft RLIMIT_NOFILE is raised towards this (within the hard limit)


def answer(status: int, detail: str, retry_after: int | None = None) -> bytes:
    """A whole HTTP/1.1 response with a JSON ``{"detail"}`` body and ``connection: close``."""
    body = json.dumps({"detail": detail}).encode()
    extra = f"retry-after: {retry_after}\r\n" if retry_after is not None else ""
    head = (f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n{extra}\r\n")
    return head.encode() + body


class ConnectionGate:
    """Open connections per TCP peer address and in all, for one server process."""

    def __init__(self, settings: Settings, trusted: _TrustedHosts | None):
        self.per_client, self.trusted = settings.connections_per_client, trusted
        self.total = min(settings.max_connections, _raise_fd_limit(settings.max_connections))
        self.open: dict[object, str] = {}  # transport -> peer address
        self.by_host: dict[str, int] = {}

    def admit(self, transport, host: str) -> bytes | None:
        """None when the connection is counted; else the response that refuses it."""
        if transport in self.open:  # a WebSocket taking over its HTTP connection
            return None
        if len(self.open) >= self.total:
            return answer(503, f"the server has {self.total} open connections, its limit "
                               f"(PLAYGROUND_MAX_CONNECTIONS); retry shortly", retry_after=1)
        proxy = self.trusted is not None and host in self.trusted
        if self.per_client and not proxy and self.by_host.get(host, 0) >= self.per_client:
            return answer(429, f"{self.per_client} connections are open from your address, its limit "
                               f"(PLAYGROUND_CONNECTIONS_PER_CLIENT); close one first", retry_after=1)
        self.open[transport] = host
        self.by_host[host] = self.by_host.get(host, 0) + 1
        return None

    def release(self, transport) -> None:
        host = self.open.pop(transport, None)
        if host is not None:
            left = self.by_host[host] - 1
            if left:
                self.by_host[host] = left
            else:
                del self.by_host[host]


def _raise_fd_limit(connections: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards FD_TARGET; return how many connections it leaves room for."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, FD_TARGET, connections + FD_RESERVE)
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    if want > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    room = max(1, soft - FD_RESERVE)
    if room < connections:
        log.warning("RLIMIT_NOFILE is %d: at most %d open connections, not PLAYGROUND_MAX_CONNECTIONS=%d",
                    soft, room, connections)
    return room


def gate_for(config: Config) -> ConnectionGate:
    """The one gate of this server (its Config), made at its first connection."""
    gate = getattr(config, "playground_gate", None)
    if gate is None:
        trusted = _TrustedHosts(config.forwarded_allow_ips) if config.proxy_headers else None
        gate = config.playground_gate = ConnectionGate(get_settings(), trusted)
    return gate


class HTTPProtocol(H11Protocol):
    """uvicorn's h11 protocol with a bounded request head, header and body timeouts, and the gate."""

    def __init__(self, config: Config, server_state, app_state, _loop=None):
        settings = get_settings()
        config.h11_max_incomplete_event_size = settings.http_max_header_bytes  # read by H11Protocol.__init__
        super().__init__(config, server_state, app_state, _loop)
        self.settings = settings
        self.timeout_keep_alive = settings.http_keep_alive
        self.gate = gate_for(config)
        if self.ws_protocol_class is not None:
            self.ws_protocol_class = websocket_protocol(self.ws_protocol_class)
        self.timer = None  # the header or body deadline, whichever applies
        self.body_deadline: float | None = None  # loop time by which the request body must be whole
        self.lingering = False
        self.discarded = 0
        self.error_status = 400
        self.head_bytes = 0  # bytes of the request head received so far
        next_event = self.conn.next_event

        def next_event_noting_status():
            try:
                return next_event()
            except h11.RemoteProtocolError as e:
                self.error_status = e.error_status_hint
                raise

        self.conn.next_event = next_event_noting_status

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        refusal = self.gate.admit(transport, self.client[0] if self.client else "")
        if refusal is not None:
            self.connections.discard(self)  # not the server's to wait for at shutdown: it closes by itself
            self.linger(refusal)
            return
        self.arm(self.settings.http_header_timeout, self.head_timed_out)

    def connection_lost(self, exc) -> None:
        self.gate.release(self.transport)
        self.disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            self.discarded += len(data)
            if self.discarded > LINGER_BYTES:
                self.transport.close()
            return
        if self.conn.their_state is h11.IDLE:
            if self.timer is None:  # the next request on a kept-alive connection
                self.arm(self.settings.http_header_timeout, self.head_timed_out)
            # h11 bounds only a head still incomplete: one that arrives whole in a chunk is counted here
            end = data.find(b"\r\n\r\n")
            head = self.head_bytes + (len(data) if end < 0 else end + 4)
            if head > self.settings.http_max_header_bytes:
                self.error_status = 431
                self.send_400_response("")
                return
            self.head_bytes = head if end < 0 else 0
        super().data_received(data)
        if self.lingering or self.transport.get_protocol() is not self:
            return
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            now = self.loop.time()
            if self.body_deadline is None:
                self.body_deadline = now + self.settings.http_body_timeout
            self.arm(min(self.settings.http_idle_timeout, max(0.0, self.body_deadline - now)), self.body_timed_out)
        else:
            self.body_deadline = None
            if state is not h11.IDLE:
                self.disarm()

    def on_response_complete(self) -> None:
        if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            # the app answered before the body ended (a 413, say): reading the rest would cost CPU for nothing
            self.server_state.total_requests += 1
            self.linger(b"")
            return
        super().on_response_complete()

    def handle_websocket_upgrade(self, event) -> None:
        self.disarm()
        super().handle_websocket_upgrade(event)

    def send_400_response(self, msg: str) -> None:
        if self.error_status == 431:
            self.linger(answer(431, f"the request line and headers exceed {self.settings.http_max_header_bytes} "
                                    f"bytes (PLAYGROUND_HTTP_MAX_HEADER_BYTES)"))
        else:
            self.linger(answer(400, "invalid HTTP request"))

    # -- deadlines ---------------------------------------------------------------------------
    def arm(self, seconds: float, callback) -> None:
        self.disarm()
        self.timer = self.loop.call_later(seconds, callback)

    def disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def head_timed_out(self) -> None:
        self.timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.linger(answer(408, f"the request line and headers took over {self.settings.http_header_timeout:g} "
                                    f"s (PLAYGROUND_HTTP_HEADER_TIMEOUT)"))

    def body_timed_out(self) -> None:
        self.timer = None
        if self.conn.their_state is not h11.SEND_BODY or self.transport.is_closing():
            return
        if self.flow.read_paused:  # the app is not reading the body yet: the pause is ours, not the client's
            self.arm(self.settings.http_idle_timeout, self.body_timed_out)
            return
        if self.cycle is not None:
            self.cycle.disconnected = True
        if self.body_deadline is not None and self.loop.time() >= self.body_deadline:
            self.linger(answer(408, f"the request body took over {self.settings.http_body_timeout:g} s "
                                    f"(PLAYGROUND_HTTP_BODY_TIMEOUT)"))
        else:
            self.linger(answer(408, f"the request body paused over {self.settings.http_idle_timeout:g} s "
                                    f"(PLAYGROUND_HTTP_IDLE_TIMEOUT)"))

    def linger(self, response: bytes) -> None:
        """Send ``response``, stop writing, and close after discarding what the client still sends."""
        self.lingering = True
        self.disarm()
        self._unset_keepalive_if_required()
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(response)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.transport.resume_reading()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


@functools.cache
def websocket_protocol(base: type) -> type:
    """``base`` (uvicorn's WebSocket protocol) releasing its connection's place in the gate when it ends."""

    class GatedWebSocketProtocol(base):
        def connection_lost(self, exc) -> None:
            gate_for(self.config).release(self.transport)
            super().connection_lost(exc)

    return GatedWebSocketProtocol


def default_workers() -> int:
    """One worker per CPU this process may use (its affinity mask, which a container's cpuset narrows)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no sched_getaffinity (macOS)
        return max(1, os.cpu_count() or 1)


def worker_count(store: str, asked: int | None) -> int:
    """The processes to start for ``store``: ``asked``, or one per CPU; the memory store lives in one process,
    so it takes 1 by default and refuses more (ValueError, naming the setting)."""
    single = store.split(":", 1)[0] == "memory"
    if asked is None:
        return 1 if single else default_workers()
    if single and asked > 1:
        raise ValueError(f"--workers {asked}: the memory store lives in one process, which other workers cannot "
                         "see; use --workers 1, or a sqlite:/// or redis:// store")
    return asked


def run(host: str, port: int, log_level: str = "info", proxy_headers: bool = True, workers: int = 1) -> None:
    """Serve app.main:app on ``host:port`` with HTTPProtocol in ``workers`` processes (one listening socket,
    the kernel spreads connections; a stream stays in the worker that accepted it) until SIGINT/SIGTERM."""
    import uvicorn

    uvicorn.run("app.main:app", host=host, port=port, log_level=log_level, http=HTTPProtocol,
                proxy_headers=proxy_headers, workers=workers)
