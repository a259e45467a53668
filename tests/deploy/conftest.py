"""The image both Docker tests run (test_container.py alone, test_compose.py as compose's `app`), built once."""
from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.support import unavailable

ROOT = Path(__file__).resolve().parents[2]


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, f"docker {' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def need_images(*names: str) -> None:
    """A Docker daemon and the named base images, or the test is unavailable (a failure in CI)."""
    if shutil.which("docker") is None:
        unavailable("the docker command is not installed (apt-get install docker.io)")
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        unavailable(f"no Docker daemon answers (start dockerd): {info.stderr.strip()[-500:]}")
    for name in names:
        if docker("image", "inspect", name, check=False).returncode != 0:
            unavailable(f"no {name} image: run .ci/run's stand-in lines (../shared/tools/standin-*.sh) "
                        "or docker pull it")


@pytest.fixture(scope="session")
def image():
    """The working tree's image, `docker build --network host` (the registries are reached from the host)."""
    need_images("python:3.11-slim")
    tag = f"backprop-playground-test:{uuid.uuid4().hex[:12]}"
    docker("build", "--network", "host", "-t", tag, str(ROOT), timeout=1200)
    yield tag
    docker("rmi", "-f", tag, check=False)
