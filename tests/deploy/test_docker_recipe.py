"""The Dockerfile, replayed without Docker: its properties, and its steps in a fresh venv.

The recipe is parsed (FROM, ENV, WORKDIR, COPY, RUN, USER, VOLUME, EXPOSE, CMD, HEALTHCHECK). Its
COPYed files go to a temporary WORKDIR (honouring .dockerignore), its `RUN pip install` lines run
with a fresh venv's pip (from the package registry, as in a build), its ENV is set with the /data
volume mapped to a temporary directory, and its exact CMD (exec form) runs with the venv's
executables on a free port (only the port replaced). Then the HEALTHCHECK command must exit 0, and a
model created and trained over HTTP must land in the SQLite file in the mapped /data.

What the replay cannot do is noted where it is skipped: the non-pip RUN lines (useradd, chown) and
USER run as root in an image, so they are checked as text instead. The venv is built once a session;
in CI (CI=true) a venv that cannot be built fails the test, elsewhere it skips.
"""
from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support import free_port, unavailable

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
VOLUME = "/data"


# -- parsing ---------------------------------------------------------------------------------------
@dataclass
class Recipe:
    steps: list[tuple[str, str]]  # (INSTRUCTION, arguments), continuation lines joined
    env: dict[str, str] = field(default_factory=dict)

    def all(self, instruction: str) -> list[str]:
        return [args for ins, args in self.steps if ins == instruction]

    def one(self, instruction: str) -> str:
        found = self.all(instruction)
        assert len(found) == 1, f"expected one {instruction}, found {found}"
        return found[0]

    def index(self, instruction: str, pattern: str) -> int:
        for i, (ins, args) in enumerate(self.steps):
            if ins == instruction and re.search(pattern, args):
                return i
        raise AssertionError(f"no {instruction} matching {pattern!r} in the Dockerfile")


def parse(text: str) -> Recipe:
    steps, buf = [], ""
    for line in text.splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):  # a comment inside a continued instruction
            continue
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        full = (buf + line).strip()
        buf = ""
        instruction, _, args = full.partition(" ")
        steps.append((instruction.upper(), args.strip()))
    recipe = Recipe(steps)
    for args in recipe.all("ENV"):
        recipe.env.update(parse_env(args))
    return recipe


def parse_env(args: str) -> dict[str, str]:
    """ENV K=V K2="v 2" or the legacy ENV K V."""
    words = shlex.split(args)
    if "=" not in words[0]:
        return {words[0]: args.split(None, 1)[1]}
    return dict(w.split("=", 1) for w in words)


def exec_form(args: str) -> list[str]:
    """A JSON array (exec form); anything else fails: shell form would not get signals as PID 1."""
    try:
        argv = json.loads(args)
    except ValueError:
        raise AssertionError(f"not in exec form (a JSON array): {args}") from None
    assert isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv), args
    return argv


def healthcheck_argv(args: str) -> list[str]:
    options, sep, command = args.partition("CMD ")
    assert sep, f"HEALTHCHECK without CMD: {args}"
    return exec_form(command.strip())


@pytest.fixture(scope="module")
def recipe() -> Recipe:
    return parse(DOCKERFILE.read_text())


# -- the recipe's properties (no build) ----------------------------------------------------------------
def test_parser_reads_the_forms_the_recipe_may_use():
    r = parse('FROM python:3.11-slim\n# c\nENV A=1 B="two words"\nENV C 3 4\nRUN a \\\n  # inside\n  && b\n'
              'CMD ["x", "y"]\n')
    assert r.steps == [("FROM", "python:3.11-slim"), ("ENV", 'A=1 B="two words"'), ("ENV", "C 3 4"),
                       ("RUN", "a    && b"), ("CMD", '["x", "y"]')]
    assert r.env == {"A": "1", "B": "two words", "C": "3 4"}
    with pytest.raises(AssertionError):
        exec_form("uvicorn app.main:app")


def test_slim_python_base(recipe):
    assert recipe.steps[0][0] == "FROM"
    assert re.fullmatch(r"python:3\.1[1-9](\.\d+)?-slim(-\w+)?", recipe.one("FROM")), recipe.one("FROM")
    image_minor = re.match(r"python:3\.(\d+)", recipe.one("FROM")).group(1)
    assert int(image_minor) >= 11  # pyproject: requires-python >= 3.11


def test_dependency_layer_comes_before_the_code(recipe):
    copy_reqs = recipe.index("COPY", r"^requirements\.txt\s")
    install = recipe.index("RUN", r"pip install .*-r requirements\.txt")
    copy_app = recipe.index("COPY", r"^app\s")
    assert copy_reqs < install < copy_app
    assert "--no-cache-dir" in recipe.steps[install][1]
    for i in range(copy_reqs):  # nothing that changes with the code is copied before the install
        assert recipe.steps[i][0] != "COPY" and recipe.steps[i][0] != "ADD"
    assert not any(ins in ("COPY", "ADD") and args.split()[0] in (".", "./") for ins, args in recipe.steps)


def test_runs_as_a_non_root_user_who_owns_the_data_volume(recipe):
    user = recipe.one("USER")
    assert user.split(":")[0] not in ("root", "0", "")
    created = recipe.index("RUN", rf"useradd\b.*\b{re.escape(user)}\b")
    user_at = recipe.index("USER", ".")
    assert created < user_at
    run = recipe.steps[created][1]
    assert re.search(rf"mkdir -p {VOLUME}\b", run) and re.search(rf"chown {re.escape(user)}\S* {VOLUME}\b", run)
    # nothing after USER needs root
    assert not [args for ins, args in recipe.steps[user_at:] if ins == "RUN"]
    volume = recipe.one("VOLUME")
    assert volume in (VOLUME, json.dumps([VOLUME])), volume
    assert recipe.env["PLAYGROUND_STORE"].startswith(f"sqlite:///{VOLUME}/")


def test_cmd_is_exec_form_on_all_interfaces_port_8000(recipe):
    argv = exec_form(recipe.one("CMD"))
    assert argv[0] == "uvicorn" or argv[:3] == ["python", "-m", "uvicorn"]
    assert "app.main:app" in argv
    assert argv[argv.index("--host") + 1] == "0.0.0.0" and argv[argv.index("--port") + 1] == "8000"
    assert recipe.one("EXPOSE") == "8000"


def test_healthcheck_polls_api_health(recipe):
    args = recipe.one("HEALTHCHECK")
    argv = healthcheck_argv(args)
    assert argv[0] == "python" and any("/api/health" in a and ":8000/" in a for a in argv)
    assert re.search(r"--timeout=\d+s", args) and re.search(r"--interval=\d+s", args)


def test_compose_scales_behind_one_port_and_needs_an_admin_token():
    import yaml  # a test dependency (pyproject [test]): missing, this fails rather than skips

    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"app", "redis", "proxy"} <= set(services)
    app, redis, proxy = services["app"], services["redis"], services["proxy"]
    assert app["build"] in (".", {"context": "."})
    assert re.fullmatch(r"redis://redis:6379/\d+", app["environment"]["PLAYGROUND_STORE"])
    assert "redis" in app["depends_on"]
    # `--scale app=N` needs the replicas unpublished; the one published port is the proxy's
    assert "ports" not in app and [str(p) for p in app["expose"]] == ["8000"]
    assert [str(p) for p in proxy["ports"]] == ["8000:8000"] and "app" in proxy["depends_on"]
    # no fallback token: compose refuses to start without one (${VAR:?message})
    assert re.fullmatch(r"\$\{PLAYGROUND_ADMIN_TOKEN:\?[^}]+\}", app["environment"]["PLAYGROUND_ADMIN_TOKEN"])
    assert "change-me" not in (ROOT / "compose.yaml").read_text()
    assert redis["image"].startswith("redis:")
    # the proxy's configuration is in the repository, reaches the app service and passes WebSockets on
    (mount,) = proxy["volumes"]
    source, target = mount.split(":")[:2]
    conf = (ROOT / source).read_text()
    assert target == "/etc/nginx/conf.d/default.conf"
    assert re.search(r"server app:8000;", conf) and re.search(r"listen 8000;", conf)
    assert "proxy_set_header Upgrade $http_upgrade;" in conf and "X-Forwarded-For" in conf


# -- the recipe, replayed ----------------------------------------------------------------------------

def ignored(rel: str, patterns: list[str]) -> bool:
    parts = rel.split("/")
    for p in patterns:
        p = p.rstrip("/")
        if p.startswith("**/"):
            if any(fnmatch.fnmatch(part, p[3:]) for part in parts):
                return True
        elif fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(parts[0], p) or fnmatch.fnmatch(parts[-1], p):
            return True
    return False


def copy_context(recipe: Recipe, workdir: Path) -> None:
    """Each COPY <src> <dest> from the repository into the mapped WORKDIR, honouring .dockerignore."""
    ignore_file = ROOT / ".dockerignore"
    patterns = [ln.strip() for ln in ignore_file.read_text().splitlines()
                if ln.strip() and not ln.startswith("#")] if ignore_file.exists() else []
    for args in recipe.all("COPY"):
        *sources, dest = shlex.split(args)
        assert not any(s.startswith("--") for s in sources), f"COPY options are not replayed: {args}"
        for src in sources:
            target = workdir / dest / (Path(src).name if dest.endswith("/") or dest == "." else "")
            path = ROOT / src
            if path.is_dir():
                for f in path.rglob("*"):
                    rel = f.relative_to(ROOT).as_posix()
                    if f.is_file() and not ignored(rel, patterns):
                        out = target / f.relative_to(path)
                        out.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(f, out)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)


def mapped(value: str, data: Path) -> str:
    """Point the image's /data volume at a local directory."""
    return re.sub(rf"(?<![\w.]){VOLUME}(?=/|$)", str(data), value)


@dataclass
class Built:
    root: Path
    workdir: Path
    data: Path
    venv: Path
    env: dict[str, str]  # the container's environment: PATH with the venv first, plus the recipe's ENV


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Built:
    """The recipe's build steps in a fresh venv, once a session."""
    recipe = parse(DOCKERFILE.read_text())
    root = tmp_path_factory.mktemp("image")
    workdir = root / recipe.one("WORKDIR").lstrip("/")
    data = root / VOLUME.lstrip("/")
    workdir.mkdir(parents=True)
    data.mkdir()
    copy_context(recipe, workdir)
    venv = root / "venv"
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=120)
    if made.returncode != 0:
        unavailable(f"python -m venv failed: {made.stderr[-2000:]}")
    # a clean environment: nothing from this test process's Python, but pip's own configuration
    base = {k: v for k, v in os.environ.items()
            if k.startswith("PIP_") or k in ("HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE",
                                             "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
                                             "no_proxy")}
    base.update(PATH=f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", VIRTUAL_ENV=str(venv))
    env = dict(base)
    for ins, args in recipe.steps:
        if ins == "ENV":
            env.update({k: mapped(v, data) for k, v in parse_env(args).items()})
        elif ins == "RUN" and re.match(r"pip install\b", args):
            ran = subprocess.run(["sh", "-c", args], cwd=workdir, env=env, capture_output=True, text=True,
                                 timeout=900)
            if ran.returncode != 0:
                unavailable(f"RUN {args} failed in a fresh venv:\n{ran.stdout[-2000:]}\n{ran.stderr[-3000:]}")
    return Built(root, workdir, data, venv, env)


def with_port(argv: list[str], port: int) -> list[str]:
    """The same command with port 8000 replaced by port, and nothing else changed."""
    return [str(port) if a == "8000" else a.replace(":8000/", f":{port}/") for a in argv]


def resolve(argv: list[str], env: dict[str, str]) -> list[str]:
    exe = shutil.which(argv[0], path=env["PATH"])
    assert exe, f"{argv[0]} is not on the image's PATH"
    return [exe, *argv[1:]]


@pytest.mark.slow
def test_the_venv_is_isolated_and_imports_the_copied_code(built):
    py = built.venv / "bin" / "python"
    where = subprocess.run([py, "-c", "import app, sys; print(app.__file__); print(sys.prefix)"], cwd=built.workdir,
                           env=built.env, capture_output=True, text=True, timeout=60)
    assert where.returncode == 0, where.stderr
    app_file, prefix = where.stdout.split()
    assert Path(app_file).is_relative_to(built.workdir) and Path(prefix) == built.venv
    # the test dependencies are not in the image: only requirements.txt was installed
    assert subprocess.run([py, "-c", "import pytest"], env=built.env, capture_output=True).returncode != 0
    assert not (built.workdir / "tests").exists() and (built.workdir / "static" / "index.html").exists()
    assert not list(built.workdir.rglob("__pycache__"))  # .dockerignore, and PYTHONDONTWRITEBYTECODE


@pytest.mark.slow
def test_the_recipe_serves_passes_its_healthcheck_and_stores_in_the_volume(recipe, built):
    port = free_port()
    argv = resolve(with_port(exec_form(recipe.one("CMD")), port), built.env)
    health = resolve(with_port(healthcheck_argv(recipe.one("HEALTHCHECK")), port), built.env)
    log_path = built.root / f"server-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, cwd=built.workdir, env=built.env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"the CMD exited:\n{log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no /api/health within 60 s:\n{log_path.read_text()[-3000:]}"
            try:
                if httpx.get(f"{url}/api/health", timeout=2, trust_env=False).json() == {"status": "ok"}:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        checked = subprocess.run(health, cwd=built.workdir, env=built.env, capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr

        with httpx.Client(base_url=url, timeout=30, trust_env=False) as http:
            created = http.post("/api/models", json={"data": {"dataset": "xor", "samples": 60}})
            assert created.status_code == 201, created.text
            mid, token = created.json()["id"], created.json()["token"]
            t = http.post(f"/api/models/{mid}/train", json={"steps": 20}, headers={"Authorization": f"Bearer {token}"})
            assert t.status_code == 200 and t.json()["step"] == 20, t.text
            assert http.get("/").status_code == 200 and "text/html" in http.get("/").headers["content-type"]
        db = built.data / Path(built.env["PLAYGROUND_STORE"].split(str(built.data), 1)[1]).name
        assert db.is_file() and db.parent == built.data
        with sqlite3.connect(db) as conn:
            (status,) = conn.execute("SELECT status FROM models WHERE id = ?", (mid,)).fetchone()
        assert json.loads(status)["step"] == 20
    finally:
        proc.send_signal(signal.SIGTERM)  # what `docker stop` sends to PID 1 (exec form: uvicorn itself)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # a graceful stop: the lifespan shutdown (which flushes streamed steps) ran; uvicorn may re-raise SIGTERM
    assert proc.returncode in (0, -signal.SIGTERM), log_path.read_text()[-3000:]
    assert "Application shutdown complete" in log_path.read_text()
    assert "Traceback" not in log_path.read_text()
    # and the healthcheck fails when nothing answers
    down = subprocess.run(health, env=built.env, capture_output=True, text=True, timeout=30)
    assert down.returncode != 0
