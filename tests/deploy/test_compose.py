"""compose.yaml for real: `docker-compose up --scale app=3` (Debian's docker-compose 1.29), a class of 40
streaming through the proxy, then one replica killed (`docker kill`) mid-class.

The stack runs under a project name of its own, published on a free loopback port (PLAYGROUND_PUBLISH),
on a /24 no other Docker network uses (PLAYGROUND_NETWORK), with the working tree's image (conftest.py)
and a short lease (PLAYGROUND_LEASE_TTL) from an override file; it is always taken down (`down -v`).
Needs dockerd, docker-compose and the python, nginx and redis stand-in images (.ci/run builds them).

No request may wait more than lease_ttl + 5 s: every connect, frame and HTTP call has that as its
timeout, and one that runs out is counted as a stall. A step is acknowledged once it is in the store
(the model's status in Redis, read with redis-cli); after the kill, no frame goes below it.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import random
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from tests.support import free_port, unavailable

from .conftest import ROOT, docker, need_images

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ADMIN_TOKEN = "compose-test-admin-token"
LEASE_TTL = 3.0
WAIT = LEASE_TTL + 5  # the longest any request may wait
STUDENTS = 40
SPEC = {"layers": [{"units": 6, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
        "optimizer": {"name": "adam", "learning_rate": 0.02},
        "data": {"dataset": "moons", "samples": 60, "noise": 0.1}}
OVERRIDE = """services:
  app:
    image: {image}
    environment:
      PLAYGROUND_LEASE_TTL: "{ttl}"
      # the whole class comes from this machine's one address
      PLAYGROUND_STREAMS_PER_CLIENT: "100"
      PLAYGROUND_CONCURRENT_PER_CLIENT: "100"
"""


def free_network() -> str:
    """The first three numbers of a 172.28.x.0/24 that overlaps no Docker network on this host."""
    ids = docker("network", "ls", "-q").stdout.split()
    taken = []
    for config in docker("network", "inspect", "-f", "{{json .IPAM.Config}}", *ids).stdout.split():
        taken += [ipaddress.ip_network(c["Subnet"]) for c in json.loads(config) or [] if c.get("Subnet")]
    for third in random.sample(range(256), 256):
        net = ipaddress.ip_network(f"172.28.{third}.0/24")
        if not any(net.overlaps(t) for t in taken):
            return f"172.28.{third}"
    raise AssertionError("no free 172.28.x.0/24 for the test stack")

READY = ("import time, urllib.request\n"
         "for _ in range(300):\n"
         "    try:\n"
         "        urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=1); break\n"
         "    except OSError:\n"
         "        time.sleep(0.2)\n"
         "else:\n"
         "    raise SystemExit('no answer from /api/health')")


class Stack:
    def __init__(self, tmp: Path, image: str):
        self.project = f"playgroundtest{uuid.uuid4().hex[:10]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        override = tmp / "override.yaml"
        override.write_text(OVERRIDE.format(image=image, ttl=LEASE_TTL))
        self.files = ["-f", str(ROOT / "compose.yaml"), "-f", str(override)]
        self.env = {**os.environ, "PLAYGROUND_ADMIN_TOKEN": ADMIN_TOKEN, "PLAYGROUND_NETWORK": free_network(),
                    "PLAYGROUND_PUBLISH": f"127.0.0.1:{self.port}"}

    def compose(self, *args: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(["docker-compose", "-p", self.project, "--project-directory", str(ROOT),
                               *self.files, *args], capture_output=True, text=True, timeout=timeout, env=self.env)
        assert not check or done.returncode == 0, f"docker-compose {' '.join(args)}:\n{done.stderr[-3000:]}"
        return done

    def containers(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service).stdout.split()

    def locks(self) -> list[int]:
        """Milliseconds left on every model lock in Redis (a killed replica's locks outlive it by their lease)."""
        (redis,) = self.containers("redis")
        keys = docker("exec", redis, "redis-cli", "--scan", "--pattern", "playground:lock:*").stdout.split()
        return [int(docker("exec", redis, "redis-cli", "PTTL", k).stdout) for k in keys]

    def saved_steps(self, ids: list[str]) -> dict[str, int]:
        """Each model's step as stored in Redis (app/store/redis.py's layout: the model hash's status)."""
        (redis,) = self.containers("redis")
        script = "".join(f"HGET playground:model:{mid} status\n" for mid in ids)
        done = subprocess.run(["docker", "exec", "-i", redis, "redis-cli"], input=script, capture_output=True,
                              text=True, timeout=30, check=True)
        return {mid: json.loads(line)["step"] for mid, line in zip(ids, done.stdout.splitlines(), strict=True)}


@pytest.fixture(scope="module")
def stack(image, tmp_path_factory):
    need_images("nginx:1.27-alpine", "redis:7-alpine")
    if subprocess.run(["which", "docker-compose"], capture_output=True).returncode != 0:
        unavailable("docker-compose is not installed (apt-get install docker-compose)")
    s = Stack(tmp_path_factory.mktemp("compose"), image)
    try:
        # the replicas first: nginx leaves out for fail_timeout a replica that refused while starting
        s.compose("up", "-d", "--scale", "app=3", "redis", "app")
        for replica in s.containers("app"):
            docker("exec", replica, "python", "-c", READY, timeout=90)
        s.compose("up", "-d", "--scale", "app=3")
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{s.url}/api/health", timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, s.compose("logs", "--tail", "50", check=False).stdout[-4000:]
            time.sleep(0.3)
        yield s
    finally:
        logs = s.compose("logs", "--no-color", "--tail", "100", check=False)
        print(logs.stdout[-6000:])
        for proxy in s.containers("proxy"):  # Debian's nginx logs its errors to a file
            print(docker("exec", proxy, "head", "-c", "20000", "/var/log/nginx/error.log", check=False).stdout)
        s.compose("down", "-v", "--remove-orphans", "-t", "5", check=False, timeout=120)


@dataclass
class Student:
    id: str
    token: str
    # (when its connection opened, step, playing), monotonic seconds: a connection's first frames may have
    # waited in socket buffers, but one opened after the kill can only carry steps loaded from the store
    frames: list[tuple[float, int, bool]] = field(default_factory=list)
    reconnects: int = 0
    stalls: list[str] = field(default_factory=list)  # requests that waited WAIT seconds and got nothing
    errors: list[dict] = field(default_factory=list)

    received: list[float] = field(default_factory=list)  # when each frame arrived

    def playing_since(self, t: float) -> int:
        return sum(1 for at, (_, _, playing) in zip(self.received, self.frames) if at > t and playing)


async def attend(s: Student, ws_url: str, stop: asyncio.Event) -> None:
    """Play the model; on a lost stream reconnect with backoff (0.25 s doubling to 2 s) and play again.
    A model still leased by the dead replica answers 409 until its lease runs out: play again after backoff."""
    backoff = 0.25
    while not stop.is_set():
        stage = "connect"
        try:
            async with connect(f"{ws_url}/api/models/{s.id}/stream", open_timeout=WAIT, close_timeout=2) as ws:
                opened = time.monotonic()
                await ws.send(json.dumps({"action": "auth", "token": s.token}))
                await ws.send(json.dumps({"action": "play"}))
                stage = "first frame"
                while not stop.is_set():
                    msg = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
                    if msg["type"] == "frame":
                        stage = "next frame"
                        s.frames.append((opened, msg["step"], msg["playing"]))
                        s.received.append(time.monotonic())
                        backoff = 0.25
                        continue
                    s.errors.append(msg)
                    assert msg.get("status") == 409, msg
                    await asyncio.sleep(backoff)
                    backoff = min(2 * backoff, 2)
                    await ws.send(json.dumps({"action": "play"}))
                await ws.send(json.dumps({"action": "pause"}))
                while True:  # the pause frame: its step is saved before it is sent
                    msg = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
                    if msg["type"] == "frame" and not msg["playing"]:
                        s.frames.append((opened, msg["step"], False))
                        s.received.append(time.monotonic())
                        return
        except TimeoutError:
            s.stalls.append(f"{stage}: nothing in {WAIT} s")
        except (ConnectionClosed, InvalidHandshake, InvalidStatus, OSError):
            pass
        if stop.is_set():
            return
        s.reconnects += 1
        await asyncio.sleep(backoff)
        backoff = min(2 * backoff, 2)


async def poll(url: str, ids: list[str], stop: asyncio.Event, answers: list) -> None:
    """Reads through the proxy all along: each must answer 200 within WAIT."""
    async with httpx.AsyncClient(base_url=url, timeout=WAIT, trust_env=False) as http:
        i = 0
        while not stop.is_set():
            try:
                r = await http.get(f"/api/models/{ids[i % len(ids)]}")
                answers.append((time.monotonic(), r.status_code, r.text[:200] if r.status_code != 200 else ""))
            except httpx.TimeoutException:
                answers.append((time.monotonic(), "timeout", ""))
            i += 1
            await asyncio.sleep(0.1)


async def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.2)


def test_forty_students_keep_playing_when_a_replica_is_killed(stack):
    with httpx.Client(base_url=stack.url, timeout=WAIT, trust_env=False) as http:
        made = [http.post("/api/models", json={**SPEC, "nickname": f"student {i}"}) for i in range(STUDENTS)]
        assert [r.status_code for r in made] == [201] * STUDENTS, made[-1].text
    students = [Student(r.json()["id"], r.json()["token"]) for r in made]
    ids = [s.id for s in students]
    replicas = stack.containers("app")
    assert len(replicas) == 3

    acked_at: list[float] = []
    locks: list[int] = []  # ms left on the model locks in Redis right after the kill

    async def run() -> tuple[dict[str, int], list]:
        stop, answers = asyncio.Event(), []
        ws_url = stack.url.replace("http", "ws")
        tasks = [asyncio.create_task(attend(s, ws_url, stop)) for s in students]
        poller = asyncio.create_task(poll(stack.url, ids, stop, answers))
        try:
            start = time.monotonic()
            await wait_until(lambda: all(s.playing_since(start) >= 3 for s in students), 60, "every student plays")
            await asyncio.sleep(2.5)  # PLAYGROUND_SAVE_INTERVAL (2 s): every model has saved steps
            acked = await asyncio.to_thread(stack.saved_steps, ids)
            acked_at.append(time.monotonic())
            await asyncio.to_thread(docker, "kill", replicas[0])
            killed = time.monotonic()
            locks.extend(await asyncio.to_thread(stack.locks))
            await wait_until(lambda: all(s.playing_since(killed + WAIT) >= 3 for s in students), 60,
                             "every student plays again after the kill")
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks, poller), 2 * WAIT + 5)
        return acked, answers

    acked, answers = asyncio.run(run())
    assert [a for a in answers if a[1] != 200] == []
    stalled = [(s.id, s.stalls, s.reconnects) for s in students if s.stalls]
    assert not stalled, f"{len(stalled)} students stalled; model locks left after the kill (ms): {locks}; {stalled}"
    moved = [s for s in students if s.reconnects]
    assert moved, "no stream was on the killed replica"
    for s in students:
        later = [step for opened, step, _ in s.frames if opened > acked_at[0]]
        assert all(step >= acked[s.id] for step in later), (s.id, acked[s.id], later[:5])
        assert [e["status"] for e in s.errors] == [409] * len(s.errors)
    # every pause frame's step is the stored one: nothing a student was shown as saved is lost
    paused = {s.id: s.frames[-1][1] for s in students}
    assert all(not s.frames[-1][2] for s in students)
    assert stack.saved_steps(ids) == paused
    with httpx.Client(base_url=stack.url, timeout=WAIT, trust_env=False) as http:
        for s in students[:5]:
            assert http.get(f"/api/models/{s.id}").json()["step"] == paused[s.id]



def stream_replica(stack: Stack, timeout: float = 10) -> str:
    """The one replica with an established connection on :8000 (the page's stream, once the class has left)."""
    deadline = time.monotonic() + timeout
    while True:
        holding = []
        for replica in stack.containers("app"):
            table = docker("exec", replica, "cat", "/proc/net/tcp", check=False).stdout.splitlines()[1:]
            if any(row.split()[1].endswith(":1F40") and row.split()[3] == "01" for row in table):
                holding.append(replica)
        if len(holding) == 1:
            return holding[0]
        assert time.monotonic() < deadline, f"replicas with an open connection: {holding}"
        time.sleep(0.3)


def test_a_page_through_the_proxy_reconnects_when_its_replica_is_killed(stack):
    """The page's contract: while its stream is away #connection-banner is visible; back, it is hidden and
    the page plays on from the saved step."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install playwright)")
    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
    if not Path(CHROMIUM).exists():
        unavailable(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    banner = "#connection-banner"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context()
            context.add_init_script("window.__testHooks = true;")  # the page exposes window.__playground
            page = context.new_page()
            page.goto(f"{stack.url}/?dataset=xor&h=4.tanh&bs=10")
            page.wait_for_selector("body[data-ready=true]", timeout=30_000)
            model = page.evaluate("window.__playground.state.modelId")
            assert page.is_hidden(banner)
            page.click("#play")
            page.wait_for_selector("#play[aria-pressed=true]", timeout=5_000)
            page.wait_for_function("() => window.__playground.state.step >= 50", timeout=30_000)

            docker("kill", stream_replica(stack))
            page.locator(banner).wait_for(state="visible", timeout=WAIT * 1000)
            page.locator(banner).wait_for(state="hidden", timeout=WAIT * 1000)
            with httpx.Client(base_url=stack.url, timeout=WAIT, trust_env=False) as http:
                saved = http.get(f"/api/models/{model}").json()["step"]
            page.wait_for_function("s => window.__playground.state.step > s + 20", arg=saved, timeout=30_000)
            back = page.evaluate("window.__playground.state")
            assert (back["modelId"], back["playing"]) == (model, True)
            assert page.get_attribute("#play", "aria-pressed") == "true"
            assert page.is_hidden("#error-banner")
        finally:
            browser.close()
