"""No secrets in logs: tokens are redacted from uvicorn's access and error logs by a filter the app installs
(app/api/security.py), however it is served."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import time

import httpx
import pytest
from websockets.sync.client import connect

from app.api.security import REDACTED_LOGGERS, RedactSecrets, install_log_redaction, redact
from tests.support import free_port, stop

from .test_live_server import ROOT, SPEC, Server

R = "[redacted]"


@pytest.mark.parametrize("raw,clean", [
    ("/api/models/abc/stream?token=s3cr3t", f"/api/models/abc/stream?token={R}"),
    ("/x?a=1&token=s3cr3t&b=2", f"/x?a=1&token={R}&b=2"),
    ("/x?%74oken=s3cr3t", f"/x?%74oken={R}"),                      # the name URL-encoded
    ("/x?admin_token=s3cr3t;api_key=k3y", f"/x?admin_token={R};api_key={R}"),
    ("/x?Token=a%20b", f"/x?Token={R}"),
    ("/x?steps=100&max_points=5", "/x?steps=100&max_points=5"),   # nothing secret: unchanged
    ("Authorization: Bearer s3cr3t", f"Authorization: Bearer {R}"),
    ("redis://user:pa55@host:6379/0", f"redis://user:{R}@host:6379/0"),
])
def test_redact(raw, clean):
    assert redact(raw) == clean


def test_the_filter_keeps_the_shape_of_uvicorns_access_records():
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", "/api/models/x?token=s3cr3t", "1.1", 200), None)
    assert RedactSecrets().filter(record) is True
    assert record.args == ("127.0.0.1:5000", "GET", f"/api/models/x?token={R}", "1.1", 200)
    assert record.getMessage() == f'127.0.0.1:5000 - "GET /api/models/x?token={R} HTTP/1.1" 200'


def test_installed_once_on_every_logger_that_prints_urls():
    install_log_redaction()
    install_log_redaction()
    for name in ("uvicorn.access", "uvicorn.error"):
        assert name in REDACTED_LOGGERS
        assert sum(isinstance(f, RedactSecrets) for f in logging.getLogger(name).filters) == 1


class LoggingServer(Server):
    log_level = "info"  # the access log on, and every stream's URL on uvicorn.error


def read_log(server: Server) -> str:
    return server.log_path.read_text() if server.log_path.exists() else ""


def exercise(url: str, ws_url: str, admin: str) -> list[str]:
    """REST calls with the token as a bearer and in queries, and a stream opened with ?token=."""
    with httpx.Client(base_url=url, timeout=60, trust_env=False) as h:
        created = h.post("/api/models", json=SPEC).json()
        mid, token = created["id"], created["token"]
        auth = {"Authorization": f"Bearer {token}"}
        assert h.post(f"/api/models/{mid}/train", json={"steps": 3}, headers=auth).status_code == 200
        assert h.get(f"/api/models/{mid}", headers=auth).status_code == 200
        assert h.get(f"/api/models/{mid}?token={token}").status_code == 200
        assert h.get(f"/api/models/{mid}/history?%74oken={token}&max_points=5").status_code == 200
        assert h.get("/api/class/models", headers={"Authorization": f"Bearer {admin}"}).status_code == 200
        assert h.get(f"/api/class/status?admin_token={admin}").status_code == 200
        assert h.post(f"/api/models/{mid}/train", json={"steps": 1},
                      headers={"Authorization": "Bearer wrong-token-value"}).status_code == 403
    with connect(f"{ws_url}/api/models/{mid}/stream?token={token}", proxy=None, open_timeout=30) as ws:
        ws.send(json.dumps({"action": "step"}))
        assert json.loads(ws.recv(timeout=30))["step"] == 4
    return [token, admin, "wrong-token-value"]


def assert_clean(log: str, secrets: list[str], mid_marker: str = "/stream?token=") -> None:
    for secret in secrets:
        assert secret not in log, log[-3000:]
    assert f"{mid_marker}{R}" in log, log[-3000:]  # the lines are there, redacted
    assert f"?%74oken={R}&max_points=5" in log and f"?admin_token={R}" in log


@pytest.mark.slow
def test_a_live_servers_log_never_contains_a_token(tmp_path):
    admin = "instructor-secret-in-the-logs-test"
    server = LoggingServer(tmp_path / "db.sqlite3", tmp_path / "uvicorn.log", admin_token=admin).start()
    try:
        secrets = exercise(server.url, server.ws_url, admin)
    finally:
        server.stop()
    log = read_log(server)
    assert '"POST /api/models HTTP/1.1" 201' in log  # the access log is on
    assert_clean(log, secrets)
    server.assert_no_tracebacks()


@pytest.mark.slow
def test_playground_serve_redacts_its_log_too(tmp_path):
    """The `playground serve` entry point (uvicorn.run, its own logging setup) gets the same filter."""
    port = free_port()
    log_path = tmp_path / "serve.log"
    env = {"PLAYGROUND_ADMIN_TOKEN": "instructor-secret-for-serve", "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(ROOT)}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                                 "--store", f"sqlite:///{tmp_path / 'db.sqlite3'}"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/api/health", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        secrets = exercise(url, f"ws://127.0.0.1:{port}", "instructor-secret-for-serve")
    finally:
        stop(proc)
    log = log_path.read_text()
    assert '"POST /api/models HTTP/1.1" 201' in log, log[-3000:]
    assert_clean(log, secrets)
