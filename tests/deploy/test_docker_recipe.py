"""The Dockerfile and compose.yaml, read as text: the properties the class demo relies on.

The recipe is parsed (FROM, ENV, WORKDIR, COPY, RUN, USER, VOLUME, EXPOSE, CMD, HEALTHCHECK) and checked
without a build: a slim Python base, the dependency layer before the code, a non-root user who owns the
/data volume, an exec-form CMD on 0.0.0.0:8000, a HEALTHCHECK on /api/health. The real image is built
and run by tests/deploy/test_container.py (which replaced the former replay of this recipe in a venv).
"""
from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

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
    assert argv[:4] == ["python", "-m", "app.cli", "serve"]  # app/server.py's bounded HTTP, not bare uvicorn
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
    assert [str(p) for p in proxy["ports"]] == ["${PLAYGROUND_PUBLISH:-8000}:8000"] and "app" in proxy["depends_on"]
    # X-Forwarded-For is trusted from the proxy's fixed address only, never from "*"
    net = "${PLAYGROUND_NETWORK:-172.29.157}"
    assert proxy["networks"]["class"]["ipv4_address"] == app["environment"]["FORWARDED_ALLOW_IPS"] == f"{net}.2"
    assert compose["networks"]["class"]["ipam"]["config"] == [{"subnet": f"{net}.0/24", "ip_range": f"{net}.128/25"}]
    # no fallback token: compose refuses to start without one (${VAR:?message})
    assert re.fullmatch(r"\$\{PLAYGROUND_ADMIN_TOKEN:\?[^}]+\}", app["environment"]["PLAYGROUND_ADMIN_TOKEN"])
    assert "change-me" not in (ROOT / "compose.yaml").read_text()
    assert redis["image"].startswith("redis:")
    # the proxy's configuration is in the repository, reaches the app service and passes WebSockets on
    (mount,) = proxy["volumes"]
    source, target = mount.split(":")[:2]
    conf = (ROOT / source).read_text()
    assert target == "/etc/nginx/conf.d/default.conf"
    assert re.search(r"server app:8000[^;]*;", conf) and re.search(r"listen 8000;", conf)
    assert "proxy_set_header Upgrade $http_upgrade;" in conf and "X-Forwarded-For" in conf
