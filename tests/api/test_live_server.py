"""A real uvicorn server (subprocess, SQLite store, loopback port) driven with httpx and the
`websockets` client: HTTP, the stream's frame rate, SIGKILL and restart, two processes on one
file, and concurrency."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support import free_port, stop
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from app.engine import Model

from .utils import TOKENS, token_hooks, with_token

ROOT = Path(__file__).resolve().parents[2]
SPEC = {"layers": [{"units": 6, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
        "optimizer": {"name": "adam", "learning_rate": 0.02},
        "data": {"dataset": "moons", "samples": 60, "noise": 0.1}}




class Server:
    """`python -m uvicorn app.main:app` on a free loopback port, with PLAYGROUND_* settings from env."""

    log_level = "warning"  # "info" logs every request (the access log)

    def __init__(self, db: Path, log: Path, **env: str):
        self.db, self.log_path = db, log
        self.env = {**os.environ, "PLAYGROUND_STORE": f"sqlite:///{db}",
                    **{f"PLAYGROUND_{k.upper()}": str(v) for k, v in env.items()}}
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Server":
        for _ in range(3):  # a free port can be taken between the probe and the bind
            self.port = free_port()
            self.url, self.ws_url = f"http://127.0.0.1:{self.port}", f"ws://127.0.0.1:{self.port}"
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(self.argv(), cwd=ROOT, env=self.env, stdout=log,
                                             stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if httpx.get(f"{self.url}/api/health", timeout=1, trust_env=False).status_code == 200:
                        return self
                except httpx.HTTPError:
                    time.sleep(0.1)
            self.stop()
        raise RuntimeError(f"uvicorn did not start:\n{self.log_path.read_text()[-3000:]}")

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(self.port),
                "--log-level", self.log_level]

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, trust_env=False, event_hooks=token_hooks())

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, no flush."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def assert_no_tracebacks(self) -> None:
        text = self.log_path.read_text() if self.log_path.exists() else ""
        assert "Traceback" not in text, text[-3000:]


class WorkersServer(Server):
    """`playground serve --workers N`: N processes on one listening socket (the kernel spreads connections)."""

    def __init__(self, db: Path, log: Path, workers: int = 2, **env: str):
        super().__init__(db, log, **env)
        self.workers = workers

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                "--workers", str(self.workers), "--log-level", self.log_level, "--no-proxy-headers"]

    def worker_pids(self) -> list[int]:
        """The serving processes under the supervisor (multiprocessing's resource tracker left out)."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return [int(p) for p in children
                if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


@pytest.fixture
def servers(tmp_path):
    """Factory: start(db_name, **settings) -> a running Server; all are stopped after the test."""
    started: list[Server] = []

    def start(db: str = "db.sqlite3", workers: int | None = None, **env) -> Server:
        log = tmp_path / f"uvicorn-{len(started)}.log"
        s = (Server(tmp_path / db, log, **env) if workers is None
             else WorkersServer(tmp_path / db, log, workers=workers, **env)).start()
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One server for the tests that need no restart: 3 s train budget, 4 kB body limit."""
    tmp = tmp_path_factory.mktemp("live")
    s = Server(tmp / "db.sqlite3", tmp / "uvicorn.log", train_time_budget=3, max_steps=100_000_000,
               max_body_bytes=4096, concurrent_per_client=8, concurrent_per_token=8).start()  # 8 parallel calls
    yield s
    s.stop()
    s.assert_no_tracebacks()


def create(http: httpx.Client, spec: dict = SPEC) -> str:
    r = http.post("/api/models", json=spec)
    assert r.status_code == 201, r.text
    return r.json()["id"]


# -- HTTP ----------------------------------------------------------------------------------------
def test_http_round_trip_and_errors(shared):
    with shared.client() as http:
        assert http.get("/api/health").json() == {"status": "ok"}
        mid = create(http)
        t = http.post(f"/api/models/{mid}/train", json={"steps": 12}).json()
        assert t["losses"] == Model(SPEC).train(12).losses
        r = http.get("/api/models/nosuchmodel")
        assert (r.status_code, r.json()) == (404, {"detail": "model nosuchmodel not found"})
        r = http.post("/api/models", content=b'{"data": {"X": [[NaN, 1]], "y": [[1]]}}',
                      headers={"content-type": "application/json"})
        assert r.status_code == 422
        assert [(i["loc"], i["msg"]) for i in r.json()["detail"]] == [
            (["body", "data", "X", 0, 0], "Input should be a finite number")]


def test_body_limit_over_a_real_socket(shared):
    body = json.dumps({"data": {"X": [[0.5, 0.5]] * 600, "y": [[1]] * 600}}).encode()
    assert len(body) > 4096
    too_large = {"detail": "request body is larger than the limit of 4096 bytes"}
    with shared.client() as http:
        r = http.post("/api/models", content=body, headers={"content-type": "application/json"})
        assert (r.status_code, r.json()) == (413, too_large)

        def chunks():
            for i in range(0, len(body), 1000):
                yield body[i:i + 1000]

        r = http.post("/api/models", content=chunks(), headers={"content-type": "application/json"})
        assert "content-length" not in r.request.headers and r.request.headers["transfer-encoding"] == "chunked"
        assert (r.status_code, r.json()) == (413, too_large)
        assert http.get("/api/health").status_code == 200


# -- WebSocket -----------------------------------------------------------------------------------
def test_stream_play_frames_pause(shared):
    with shared.client() as http:
        mid = create(http)
    with connect(with_token(f"{shared.ws_url}/api/models/{mid}/stream"), proxy=None, open_timeout=10) as ws:
        ws.send(json.dumps({"action": "play"}))
        # a count of frames, not a time window: the frame rate (at most ~30/s) is measured by
        # bench/bench_api.py, and the suite asserts no rate
        frames = [json.loads(ws.recv(timeout=10)) for _ in range(8)]
        steps = [f["step"] for f in frames]
        assert all(b > a for a, b in zip(steps, steps[1:])), steps
        assert all(f["type"] == "frame" and f["playing"] for f in frames)
        assert all(f["boundary"]["resolution"] == 40 for f in frames)

        ws.send(json.dumps({"action": "pause"}))
        while (f := json.loads(ws.recv(timeout=5)))["playing"]:
            pass
        paused_at = f["step"]
        assert paused_at >= steps[-1]
        with pytest.raises(TimeoutError):  # nothing more arrives while paused
            ws.recv(timeout=0.7)
        with shared.client() as http:
            assert http.get(f"/api/models/{mid}").json()["step"] == paused_at  # saved on pause
            time.sleep(0.3)
            assert http.get(f"/api/models/{mid}").json()["step"] == paused_at
            assert len(http.get(f"/api/models/{mid}/history", params={"max_points": 1_000_000}).json()["step"]) == paused_at

        ws.send(json.dumps({"action": "step"}))
        assert json.loads(ws.recv(timeout=5))["step"] == paused_at + 1
        ws.send("nonsense")
        assert json.loads(ws.recv(timeout=5)) == {
            "type": "error", "detail": 'messages must be JSON objects such as {"action": "play"}'}


def test_stream_binary_deep_and_large_messages_over_a_real_socket(shared):
    """uvicorn's WebSocket: a binary frame, a too-deep and a too-large message get error frames, before and after
    auth, and the connection goes on (the module's teardown asserts no traceback in the server's log)."""
    binary = {"type": "error", "detail": 'messages must be text frames holding JSON such as {"action": "play"}, '
                                         'not binary frames'}
    deep = {"type": "error", "detail": 'messages must not nest deeper than a flat JSON object such as '
                                       '{"action": "play"}'}
    large = {"type": "error", "detail": "messages must be at most 4096 characters"}
    with shared.client() as http:
        mid = create(http)
    with connect(f"{shared.ws_url}/api/models/{mid}/stream", proxy=None, open_timeout=10) as ws:
        ws.send(b"\x00")  # before auth
        assert json.loads(ws.recv(timeout=5)) == binary
        ws.send(json.dumps({"action": "auth", "token": TOKENS[mid]}))
        for message, error in ((b"\x00", binary), ("[" * 1000 + "]" * 1000, deep), ("x" * 5000, large)):
            ws.send(message)
            assert json.loads(ws.recv(timeout=5)) == error
        ws.send(json.dumps({"action": "step"}))
        assert json.loads(ws.recv(timeout=5))["step"] == 1


def test_stream_unknown_model_over_a_real_socket(shared):
    with connect(f"{shared.ws_url}/api/models/nosuchmodel/stream", proxy=None) as ws:
        assert json.loads(ws.recv(timeout=5)) == {"type": "error", "detail": "model nosuchmodel not found"}
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.close_code == 4404


# -- concurrency ---------------------------------------------------------------------------------
def test_eight_parallel_train_calls_lose_no_update(shared):
    with shared.client() as http:
        mid = create(http)

    def train(_):
        with shared.client() as h:
            r = h.post(f"/api/models/{mid}/train", json={"steps": 50})
            assert r.status_code == 200, r.text
            return r.json()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(train, range(8)))
    assert sorted(r["step"] for r in results) == list(range(50, 401, 50))
    with shared.client() as http:
        assert http.get(f"/api/models/{mid}").json()["step"] == 400
        assert len(http.get(f"/api/models/{mid}/history").json()["step"]) == 400
    losses = [x for r in sorted(results, key=lambda r: r["step"]) for x in r["losses"]]
    assert losses == Model(SPEC).train(400).losses


def test_a_long_train_call_does_not_block_other_requests(shared):
    with shared.client() as http:
        busy, other = create(http), create(http)
    finished: dict[str, float] = {}
    long_result: dict = {}

    def long_call():
        with shared.client() as h:
            long_result["started"] = time.monotonic()
            long_result["body"] = h.post(f"/api/models/{busy}/train", json={"steps": 100_000_000}).json()
            finished["long"] = time.monotonic()

    t = threading.Thread(target=long_call)
    t.start()
    time.sleep(0.5)
    took = {}
    with shared.client() as http:
        for name, call in [
            ("health", lambda: http.get("/api/health").json() == {"status": "ok"}),
            ("get other", lambda: http.get(f"/api/models/{other}").status_code == 200),
            ("train other", lambda: http.post(f"/api/models/{other}/train", json={"steps": 10}).json()["step"] == 10),
        ]:
            started = time.monotonic()
            assert call(), name
            took[name] = time.monotonic() - started
        finished["others"] = time.monotonic()
    t.join(60)
    assert long_result["body"]["stopped"] == "time_budget"
    assert finished["others"] < finished["long"], took  # all of them overlapped the long call (no timing asserted)


# -- restarts and processes ----------------------------------------------------------------------
def test_sigkill_and_restart_resumes_exactly(servers):
    server = servers()
    with server.client() as http:
        mid = create(http)
        first = http.post(f"/api/models/{mid}/train", json={"steps": 30}).json()["losses"]
        params = http.get(f"/api/models/{mid}/parameters").json()
        history = http.get(f"/api/models/{mid}/history").json()
    server.kill()
    assert server.proc.returncode == -signal.SIGKILL

    again = servers()  # same database file, fresh process
    with again.client() as http:
        status = http.get(f"/api/models/{mid}").json()
        assert (status["step"], status["spec"]) == (30, Model(SPEC).spec)
        assert http.get(f"/api/models/{mid}/parameters").json() == params
        assert http.get(f"/api/models/{mid}/history").json() == history
        second = http.post(f"/api/models/{mid}/train", json={"steps": 20}).json()
    assert second["step"] == 50
    never_stopped = Model(SPEC).train(50)
    assert first + second["losses"] == never_stopped.losses
    assert second["train_loss"] == never_stopped.train_loss


def test_two_processes_on_one_file_share_models(servers):
    a, b = servers(), servers()
    with a.client() as http_a, b.client() as http_b:
        mid = create(http_a)
        assert http_a.get(f"/api/models/{mid}/parameters").status_code == 200  # cached in a
        t = http_b.post(f"/api/models/{mid}/train", json={"steps": 25}).json()
        assert t["step"] == 25
        status = http_a.get(f"/api/models/{mid}").json()
        assert (status["step"], status["train_loss"]) == (25, t["train_loss"])
        assert http_a.get(f"/api/models/{mid}/parameters").json() == http_b.get(f"/api/models/{mid}/parameters").json()
        more = http_a.post(f"/api/models/{mid}/train", json={"steps": 5}).json()["losses"]
        assert t["losses"] + more == Model(SPEC).train(30).losses
        assert http_b.get(f"/api/models/{mid}").json()["step"] == 30
        assert http_b.delete(f"/api/models/{mid}").status_code == 204
        r = http_a.get(f"/api/models/{mid}")
        assert (r.status_code, r.json()) == (404, {"detail": f"model {mid} not found"})
    a.assert_no_tracebacks()
    b.assert_no_tracebacks()


def test_stream_steps_reach_other_processes_on_pause_and_disconnect(servers):
    a, b = servers(save_interval=1000), servers(save_interval=1000)  # no periodic saves while playing
    with a.client() as http_a, b.client() as http_b:
        mid = create(http_a)
        with connect(with_token(f"{a.ws_url}/api/models/{mid}/stream"), proxy=None) as ws:
            ws.send(json.dumps({"action": "play", "steps_per_frame": 2}))
            for _ in range(3):
                json.loads(ws.recv(timeout=5))
            ws.send(json.dumps({"action": "pause"}))
            while (f := json.loads(ws.recv(timeout=5)))["playing"]:
                pass
            assert http_b.get(f"/api/models/{mid}").json()["step"] == f["step"]  # saved on pause
            ws.send(json.dumps({"action": "play", "steps_per_frame": 2}))
            last = [json.loads(ws.recv(timeout=5)) for _ in range(3)][-1]
        # the client is gone: the server saves what it trained (at least up to the last frame sent)
        deadline = time.monotonic() + 10
        while http_b.get(f"/api/models/{mid}").json()["step"] < last["step"] and time.monotonic() < deadline:
            time.sleep(0.05)
        step = http_b.get(f"/api/models/{mid}").json()["step"]
        assert step >= last["step"]
        assert http_a.get(f"/api/models/{mid}").json()["step"] == step
        losses = http_b.post(f"/api/models/{mid}/train", json={"steps": 3}).json()["losses"]
        assert losses == Model(SPEC).train(step + 3).losses[-3:]
