"""Stream backpressure over a real socket (uvicorn in a thread of this process, so the test can look
at the server's per-connection state): a client that stops reading gets no frames queued for it
beyond the one latest-frame slot, and it never stalls the other clients."""
from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
import uvicorn
from websockets.sync.client import connect

from app.service.scheduler import MAX_PENDING_LOSSES, StreamJob
from tests.support import free_port

from .utils import SMALL, make_app


@pytest.fixture
def live():
    app = make_app()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    yield app, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(20)


def stream_job(app, model_id: str) -> StreamJob:
    """The server's job for the stream of ``model_id`` (once its connection is authorized)."""
    deadline = time.monotonic() + 10
    while not (jobs := [j for j in app.state.scheduler._jobs
                        if isinstance(j, StreamJob) and j.model_id == model_id]):
        assert time.monotonic() < deadline, "the stream never started"
        time.sleep(0.01)
    assert len(jobs) == 1, jobs
    return jobs[0]


def small_socket(url: str) -> socket.socket:
    """A client socket with a tiny receive buffer, so an unread stream fills the path quickly."""
    host, port = url.split("//")[1].split(":")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, int(port)))
    return s


def test_a_client_that_stops_reading_stalls_nobody_and_queues_nothing(live):
    app, url = live
    with httpx.Client(base_url=url) as http:
        # the stalled model's frames carry ~10,000 weights and their gradients (~0.4 MB of JSON), so
        # the socket buffers between it and the server fill within a few frames
        big = {**SMALL, "layers": [{"units": 96, "activation": "tanh"}, {"units": 96, "activation": "tanh"},
                                   {"units": 1, "activation": "sigmoid"}]}
        models = [http.post("/api/models", json=spec).json() for spec in (big, SMALL)]
    (stalled_id, stalled_token), (reader_id, reader_token) = [(m["id"], m["token"]) for m in models]
    ws_url = url.replace("http", "ws", 1)
    with connect(f"{ws_url}/api/models/{stalled_id}/stream", sock=small_socket(url), max_queue=1,
                 compression=None) as stalled, \
            connect(f"{ws_url}/api/models/{reader_id}/stream") as reader:
        stalled.send(json.dumps({"action": "auth", "token": stalled_token}))
        stalled.send(json.dumps({"action": "play"}))
        reader.send(json.dumps({"action": "auth", "token": reader_token}))
        reader.send(json.dumps({"action": "play"}))
        job = stream_job(app, stalled_id)
        # wait until the stalled client's path is full: the server makes no more frames for it
        made, deadline = -1, time.monotonic() + 30
        while job.frames_made != made:
            assert time.monotonic() < deadline, "frames for a client that does not read never stopped"
            made = job.frames_made
            steps = [json.loads(reader.recv(timeout=10))["step"] for _ in range(15)]  # the reader goes on
            assert steps == sorted(steps) and steps[-1] > steps[0]
            assert job.pending <= 1 and len(job.losses) <= MAX_PENDING_LOSSES
        # from now on: the reader keeps receiving frames, the stalled one gets none made or queued
        steps = [json.loads(reader.recv(timeout=10))["step"] for _ in range(20)]
        assert steps == sorted(steps) and steps[-1] > steps[0]
        assert job.frames_made == made and job.pending <= 1 and len(job.losses) <= MAX_PENDING_LOSSES
        # the stalled model still trains (its losses wait, bounded, for the next frame it can take)
        with httpx.Client(base_url=url) as http:
            before = http.get(f"/api/models/{stalled_id}").json()["step"]
            time.sleep(0.3)
            assert http.get(f"/api/models/{stalled_id}").json()["step"] > before
            trained = http.get(f"/api/models/{stalled_id}").json()["step"]
        # once it reads again, frames flow: after the few already in the socket buffers comes a frame
        # with the steps trained meanwhile (not one frame per missed period)
        latest, read = 0, 0
        deadline = time.monotonic() + 20
        while latest < trained:
            assert time.monotonic() < deadline
            latest, read = json.loads(stalled.recv(timeout=10))["step"], read + 1
        assert read <= made + 2
        reader.send(json.dumps({"action": "pause"}))
        stalled.send(json.dumps({"action": "pause"}))
