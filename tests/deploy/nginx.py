"""The repo's deploy/nginx.conf, run by Debian's nginx in the foreground on loopback.

`Nginx(tmp, upstreams)` writes a main config (temp prefix, pid and logs in ``tmp``) that includes
deploy/nginx.conf with two lines changed: its `server app:8000 <parameters>;` becomes one line per upstream
with the same parameters, and `listen 8000;` a free loopback port. Everything else is the file compose mounts.
In CI (CI=true) a missing nginx fails the test; elsewhere it skips.
"""
from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from tests.support import free_port, stop, unavailable

CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"
MAIN = """daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/playground.conf;
}}
"""


def render(upstreams: list[str], port: int, text: str | None = None) -> str:
    """deploy/nginx.conf (or ``text``) with its upstream and listen lines pointed at loopback."""
    text = CONF.read_text() if text is None else text
    servers = re.findall(r"^(\s*)server app:8000([^;]*);$", text, re.M)
    assert len(servers) == 1 and text.count("listen 8000;") == 1, "deploy/nginx.conf's upstream or listen changed"
    indent, params = servers[0]
    lines = "\n".join(f"{indent}server {u}{params};" for u in upstreams)
    text = re.sub(r"^\s*server app:8000[^;]*;$", lambda _: lines, text, flags=re.M)
    return text.replace("listen 8000;", f"listen 127.0.0.1:{port};")


class Nginx:
    """nginx -p tmp in the foreground, proxying to ``upstreams`` ("127.0.0.1:PORT"); a context manager."""

    def __init__(self, tmp: Path, upstreams: list[str], text: str | None = None):
        exe = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
        if exe is None:
            unavailable("nginx is not installed (apt-get install nginx)")
        tmp.mkdir(parents=True, exist_ok=True)
        self.tmp, self.port = tmp, free_port()
        (tmp / "playground.conf").write_text(render(upstreams, self.port, text))
        (tmp / "nginx.conf").write_text(MAIN.format(tmp=tmp))
        self.argv = [exe, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(tmp / "nginx.conf")]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Nginx":
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"nginx exited:\n{self.log()}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        stop(self.proc)
        raise AssertionError(f"nginx did not listen within 10 s:\n{self.log()}")

    def __exit__(self, *exc) -> None:
        stop(self.proc)

    def log(self) -> str:
        path = self.tmp / "error.log"
        return path.read_text()[-3000:] if path.exists() else ""


class Blackhole:
    """A loopback port whose SYNs are dropped, as a killed container's address: connects time out.

    A listening socket with a backlog of 0 that never accepts holds one connection; the queue is filled
    at once, so every later connect waits for its timeout."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.filler = socket.create_connection(("127.0.0.1", self.sock.getsockname()[1]), timeout=1)

    def close(self) -> None:
        self.filler.close()
        self.sock.close()


class Dropper:
    """A replica that dies with the request in hand: it reads the request head, records it, closes."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests: list[str] = []  # request lines, e.g. "POST /api/models HTTP/1.1"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                head = b""
                try:
                    while b"\r\n\r\n" not in head and len(head) < 65536:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        head += chunk
                except OSError:
                    pass
                if head:
                    self.requests.append(head.split(b"\r\n", 1)[0].decode("latin1"))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
