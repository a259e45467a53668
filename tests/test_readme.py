"""Every ```bash and ```python block of README.md and docs/api.md runs as written, in order, against a live server.

How a block runs (what a reader does, in a fresh checkout):

- The server: uvicorn on default settings (the default SQLite store, in a temporary folder) on a free
  loopback port; ``localhost:8000`` in a block becomes that server's address.
- bash blocks run in a clean copy of the repository (as a fresh clone), in one shell session: variables a
  block sets (``ID=$(...)``, ``TOKEN=$(...)``) and the folder it ends in are there for the next one. A
  block fails on the first failing command (``set -euo pipefail``), and ``curl`` fails on an HTTP error
  (``--fail-with-body``): an example that answers 401 or 422 is a broken example. ``pip`` and ``python``
  are those of a virtualenv (with this Python's packages visible), so ``pip install -e .`` installs nothing
  outside it.
- A bash block that starts a server (``uvicorn`` or ``playground serve``) is started in the background
  with port 8000 replaced by a free port and 0.0.0.0 by 127.0.0.1; it passes when ``/api/health`` and
  ``/`` answer, and is then stopped.
- python blocks run in one namespace per file, in this process, with the copy as working directory, so
  files one block writes (model.py, my_grads.npz) are there for the next bash block.
- Not run: blocks fenced otherwise (```text, ```console, ```json), and the Quick start's test command
  (the one .ci/run runs, which would run this suite inside itself).
"""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.deploy.test_install import clean_copy
from tests.support import free_port, stop, unavailable

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md", "docs/api.md"]
FENCE = re.compile(r"^([ \t]*)```([\w+-]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.M | re.S)  # indented in a list too
SERVES = re.compile(r"\buvicorn\b|\bplayground\s+serve\b")


@dataclass
class Block:
    document: str
    line: int
    lang: str
    text: str

    @property
    def name(self) -> str:
        return f"{self.document}:{self.line}-{self.lang}"


def ci_test_command() -> str:
    """The last command of .ci/run: the README's test command, word for word."""
    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")][-1]


def runnable_blocks(document: str) -> list[Block]:
    text = (ROOT / document).read_text()
    found = []
    for m in FENCE.finditer(text):
        lang, body = m.group(2), textwrap.dedent(m.group(3))
        if lang not in ("bash", "python") or ci_test_command() in body:
            continue
        found.append(Block(document, text.count("\n", 0, m.start()) + 1, lang, body))
    return found


BLOCKS = [b for doc in DOCUMENTS for b in runnable_blocks(doc)]


def test_the_readme_holds_the_ci_test_command_word_for_word():
    command = ci_test_command()
    assert "python -m pytest" in command
    quick_start = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert [b for b in FENCE.findall(quick_start) if command in b[2] and b[1] == "bash"], command


def test_every_document_has_runnable_examples():
    assert [b for b in BLOCKS if b.document == "README.md" and b.lang == "bash"]
    assert [b for b in BLOCKS if b.document == "README.md" and b.lang == "python"]


class Reader:
    """The shell session, Python namespaces and working copy the blocks share."""

    def __init__(self, tmp: Path, server: str):
        self.server = server
        self.tree = clean_copy(tmp / "checkout")
        self.state = tmp / "shell-state.sh"
        self.namespaces: dict[str, dict] = {}
        venv = tmp / "venv"
        made = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                              capture_output=True, text=True, timeout=120)
        if made.returncode != 0:
            unavailable(f"python -m venv failed: {made.stderr[-2000:]}")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV") and
               not k.startswith("PLAYGROUND_")}
        env.update(PATH=f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}", VIRTUAL_ENV=str(venv),
                   NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", PIP_DISABLE_PIP_VERSION_CHECK="1",
                   PLAYGROUND_SERVER=server)  # the CLI's default server, http://localhost:8000, is the test server
        self.env = env
        self.state.write_text(f"cd {shlex.quote(str(self.tree))}\n")

    def localize(self, text: str) -> str:
        return text.replace("localhost:8000", self.server.removeprefix("http://"))

    def bash(self, block: Block) -> None:
        script = "\n".join([
            "set -a",  # every assignment is exported, so that export -p below carries it to the next block
            f". {shlex.quote(str(self.state))}",
            "curl() { command curl --fail-with-body \"$@\"; }",
            "set -euo pipefail",
            self.localize(block.text),
            f"{{ export -p; echo \"cd $(printf %q \"$PWD\")\"; }} > {shlex.quote(str(self.state))}",
        ])
        done = subprocess.run(["bash", "-c", script], env=self.env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (f"{block.name} failed (exit {done.returncode}):\n{block.text}\n"
                                      f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}")

    def serve(self, block: Block, log: Path) -> None:
        port = free_port()
        text = re.sub(r"(--port[ =])8000\b", rf"\g<1>{port}", block.text).replace("0.0.0.0", "127.0.0.1")
        assert str(port) in text, f"{block.name}: a server block must say --port 8000"
        script = f". {shlex.quote(str(self.state))}\nset -euo pipefail\n{text}"
        with open(log, "wb") as out:
            proc = subprocess.Popen(["bash", "-c", script], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                assert proc.poll() is None, f"{block.name} exited:\n{block.text}\n{log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"{block.name}: no /api/health in 120 s\n{log.read_text()[-3000:]}"
                try:
                    if httpx.get(f"{base}/api/health", timeout=2, trust_env=False).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.3)
            page = httpx.get(f"{base}/", timeout=10, trust_env=False)
            assert page.status_code == 200 and "text/html" in page.headers["content-type"], block.name
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            stop(proc)

    def python(self, block: Block, monkeypatch) -> None:
        monkeypatch.chdir(self.tree)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        namespace = self.namespaces.setdefault(block.document, {"__name__": "__readme__"})
        code = compile(self.localize(block.text), block.name, "exec")
        exec(code, namespace)  # a failure shows the block's name and line in the traceback


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """uvicorn with the default settings (default SQLite store, rate limits on) in an empty folder."""
    folder = tmp_path_factory.mktemp("readme-server")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYGROUND_")}
    env.update(PYTHONPATH=str(ROOT))
    log = open(folder / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port",
                             str(port)], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (folder / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the server did not answer /api/health within 60 s"
            try:
                if httpx.get(f"{base}/api/health", timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield base
    finally:
        stop(proc)
        log.close()


@pytest.fixture(scope="module")
def reader(tmp_path_factory, live_server) -> Reader:
    return Reader(tmp_path_factory.mktemp("reader"), live_server)


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
def test_example_runs_as_written(block, reader, monkeypatch, tmp_path):
    if block.lang == "python":
        reader.python(block, monkeypatch)
    elif SERVES.search(block.text):
        reader.serve(block, tmp_path / "served.log")
    else:
        reader.bash(block)
