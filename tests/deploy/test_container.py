"""The real image: built from the working tree, run with a volume and an admin token, as the README says.

Checks what reading the recipe (test_docker_recipe.py) cannot: every file the app needs is COPYed, and
nothing else (no tests, no test dependencies); the page and /api/health answer from the container; a
model keeps its step across `docker restart` (the /data volume is writable by the image's user), which
stops uvicorn gracefully; the process does not run as root (uid 10001); the Dockerfile's HEALTHCHECK
turns the container healthy (its interval shortened with --health-interval, the command unchanged) and
its command fails when nothing answers.

Needs a running Docker daemon and the python:3.11-slim base image; `.ci/run` installs docker.io, starts
dockerd and makes a local stand-in for the base image (../shared/tools/standin-python-image.sh). In CI
(CI=true) a missing daemon fails the test; elsewhere it skips. Built with `docker build --network host`.
"""
from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from tests.support import free_port

from .conftest import ROOT, docker

ADMIN_TOKEN = "container-test-admin-token"
pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def container(image):
    """A running container of the image, as the README's `docker run` line, on a free loopback port."""
    name = f"playground-test-{uuid.uuid4().hex[:12]}"
    volume = f"{name}-data"
    port = free_port()
    docker("volume", "create", volume)
    docker("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8000", "-v", f"{volume}:/data",
           "-e", f"PLAYGROUND_ADMIN_TOKEN={ADMIN_TOKEN}", "--health-interval", "1s", "--health-start-period", "30s",
           image)
    try:
        yield name, f"http://127.0.0.1:{port}"
    finally:
        logs = docker("logs", name, check=False)
        print(logs.stdout[-3000:], logs.stderr[-3000:])
        docker("rm", "-f", name, check=False)
        docker("volume", "rm", "-f", volume, check=False)


def wait_healthy(name: str, timeout: float = 90) -> None:
    """Until the HEALTHCHECK reports healthy; fails on unhealthy, on an exit, or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        state = json.loads(docker("inspect", "-f", "{{json .State}}", name).stdout)
        assert state["Running"], f"the container stopped: {state}"
        health = state["Health"]["Status"]
        assert health != "unhealthy", state["Health"]["Log"][-3:]
        if health == "healthy":
            return
        assert time.monotonic() < deadline, f"not healthy after {timeout} s: {state['Health']}"
        time.sleep(0.5)


def test_the_image_serves_keeps_models_across_restarts_runs_as_10001_and_turns_healthy(container):
    name, base = container
    wait_healthy(name)
    with httpx.Client(base_url=base, timeout=30, trust_env=False) as http:
        assert http.get("/api/health").json() == {"status": "ok"}
        page = http.get("/")
        assert page.status_code == 200 and page.content == (ROOT / "static" / "index.html").read_bytes()
        script = http.get("/js/main.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert http.get("/docs").status_code == 200 and http.get("/question").status_code == 200
        assert http.get("/api/class/status").json()["enabled"] is True  # the admin token reached the app

        created = http.post("/api/models", json={"data": {"dataset": "xor", "samples": 60}})
        assert created.status_code == 201, created.text
        mid, token = created.json()["id"], created.json()["token"]
        trained = http.post(f"/api/models/{mid}/train", json={"steps": 25},
                            headers={"Authorization": f"Bearer {token}"})
        assert trained.status_code == 200 and trained.json()["step"] == 25, trained.text

    docker("restart", name, timeout=120)  # SIGTERM to uvicorn (PID 1, exec form), then a new start
    wait_healthy(name)
    logs = docker("logs", name).stdout + docker("logs", name).stderr
    assert "Application shutdown complete" in logs and "Traceback" not in logs  # a graceful stop
    with httpx.Client(base_url=base, timeout=30, trust_env=False) as http:
        again = http.get(f"/api/models/{mid}")
        assert again.status_code == 200 and again.json()["step"] == 25, again.text

    uid = docker("exec", name, "id", "-u").stdout.strip()
    assert uid == "10001"
    assert docker("exec", name, "stat", "-c", "%u", "/data").stdout.strip() == "10001"
    assert docker("inspect", "-f", "{{.Config.User}}", name).stdout.strip() not in ("", "root", "0")

    # only what the app needs is in the image: no tests, no test dependencies, no bytecode from the tree
    listing = docker("exec", name, "sh", "-c", "ls /srv/playground; find /srv/playground -name __pycache__ "
                     "-not -path '*/site-packages/*' | head -3; python -c 'import pytest' 2>&1 | tail -1").stdout
    assert "app" in listing.split() and "static" in listing.split() and "tests" not in listing.split()
    assert "__pycache__" not in listing and "No module named 'pytest'" in listing


def test_the_healthcheck_fails_when_nothing_answers(image):
    """The HEALTHCHECK's own command, in the image, with no server running: it must not report healthy."""
    health = json.loads(docker("image", "inspect", "-f", "{{json .Config.Healthcheck}}", image).stdout)
    assert health["Test"][0] == "CMD" and "/api/health" in " ".join(health["Test"])
    done = docker("run", "--rm", "--entrypoint", health["Test"][1], image, *health["Test"][2:], check=False)
    assert done.returncode != 0, done.stdout + done.stderr


def test_the_image_runs_one_worker_per_cpu_it_may_use(container):
    """`docker top` lists the container's processes: the supervisor and one spawned worker per CPU."""
    name, _ = container
    wait_healthy(name)
    cpus = int(docker("exec", name, "python", "-c", "import os; print(len(os.sched_getaffinity(0)))").stdout)
    commands = docker("top", name, "-o", "pid,args").stdout.splitlines()[1:]
    workers = [c for c in commands if "multiprocessing.spawn" in c]
    supervisors = [c for c in commands if "app.cli serve" in c]
    assert (len(supervisors), len(workers)) == (1, cpus), commands
