"""The package as a user installs it: a clean copy of the tree, a fresh venv, a server run from elsewhere.

`pip install .` (not editable) must ship the page: `uvicorn app.main:app` started from another folder
serves `/`, every file of static/ byte for byte, and `/api/health`. Then the same venv gets the
editable install (`pip install -e .`) and `playground serve` from another folder serves the same page.
The built wheel holds every file of static/ under app/static/, and docs/question.md as app/docs/question.md.

In CI (CI=true) a venv or an install that cannot be made fails the test; elsewhere it skips.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.support import free_port, stop, unavailable

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def clean_copy(dest: Path) -> Path:
    """The files a fresh clone of the working tree holds: tracked and new files, nothing git ignores."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, timeout=60)
    if listed.returncode != 0:  # not a git checkout (a release tarball): everything but build droppings
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", "build",
                                                                  "test-artifacts", "data", ".venv"))
        return dest
    for rel in filter(None, listed.stdout.decode().split("\0")):
        src = ROOT / rel
        if src.is_file():  # a tracked file deleted in the working tree is not in the copy
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def clean_env(venv: Path) -> dict[str, str]:
    """Nothing of this test's Python (no PYTHONPATH): only the venv and pip's own configuration."""
    keep = {k: v for k, v in os.environ.items()
            if k.startswith("PIP_") or k in ("HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE",
                                             "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
                                             "no_proxy")}
    return {**keep, "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", "VIRTUAL_ENV": str(venv)}


def run(argv: list, cwd: Path, env: dict, timeout: float = 900) -> None:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        unavailable(f"{' '.join(map(str, argv))} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")


def serving(argv: list, cwd: Path, env: dict, log: Path):
    """Start a server on a free port from ``cwd``; return (process, base URL) once /api/health answers."""
    port = free_port()
    argv = [str(a).replace("{port}", str(port)) for a in argv]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{argv} exited:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            stop(proc)
            pytest.fail(f"no /api/health within 60 s:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/api/health", timeout=2, trust_env=False).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)


def assert_serves_the_page(base: str, tree: Path) -> None:
    with httpx.Client(base_url=base, timeout=30, trust_env=False) as http:
        assert http.get("/api/health").json() == {"status": "ok"}
        index = http.get("/")
        assert index.status_code == 200 and "text/html" in index.headers["content-type"]
        assert index.content == (tree / "static" / "index.html").read_bytes()
        files = sorted(p for p in (tree / "static").rglob("*") if p.is_file())
        assert any(p.suffix == ".js" for p in files)
        for path in files:
            rel = path.relative_to(tree / "static").as_posix()
            r = http.get("/" + rel)
            assert r.status_code == 200, f"/{rel}: {r.status_code}"
            assert r.content == path.read_bytes(), f"/{rel} differs from static/{rel}"
            if path.suffix == ".js":
                assert "javascript" in r.headers["content-type"], (rel, r.headers["content-type"])


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return clean_copy(tmp_path_factory.mktemp("clone") / "backprop-playground")


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("venv") / "venv"
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=120)
    if made.returncode != 0:
        unavailable(f"python -m venv failed: {made.stderr[-2000:]}")
    return venv


def test_the_wheel_holds_every_file_of_the_page(tree, tmp_path):
    env = clean_env(Path(sys.prefix))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), "."], cwd=tree, env=env)
    (wheel,) = tmp_path.glob("backprop_playground-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for path in (tree / "static").rglob("*"):
            if path.is_file():
                name = "app/static/" + path.relative_to(tree / "static").as_posix()
                assert name in names, f"{name} is missing from the wheel"
                assert z.read(name) == path.read_bytes()
        assert z.read("app/docs/question.md") == (tree / "docs" / "question.md").read_bytes()  # served at /question
        assert "app/py.typed" in names  # the PEP 561 marker pyproject.toml declares
    assert not [n for n in names if n.startswith(("tests/", "static/", "bench/", "docs/"))]


def test_pip_install_then_editable_serve_the_page_from_another_folder(tree, venv, tmp_path):
    env = clean_env(venv)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run([venv / "bin" / "pip", "install", "-q", "."], cwd=tree, env=env)
    site = subprocess.run([venv / "bin" / "python", "-c", "import app; print(app.__file__)"], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=60)
    assert site.returncode == 0 and Path(site.stdout.strip()).is_relative_to(venv), site.stdout + site.stderr
    proc, base = serving([venv / "bin" / "uvicorn", "app.main:app", "--port", "{port}"], elsewhere, env,
                         tmp_path / "installed.log")
    try:
        assert_serves_the_page(base, tree)
    finally:
        stop(proc)

    # the editable install: the same page, straight from the tree
    run([venv / "bin" / "pip", "install", "-q", "--no-deps", "-e", "."], cwd=tree, env=env)
    proc, base = serving([venv / "bin" / "playground", "serve", "--port", "{port}", "--store", "memory://"],
                         elsewhere, env, tmp_path / "editable.log")
    try:
        assert_serves_the_page(base, tree)
    finally:
        stop(proc)
