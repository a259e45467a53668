"""A real uvicorn server (SQLite store in a temporary directory) shared by the client and CLI tests."""
from __future__ import annotations

import pytest

from app.client import PlaygroundClient

from ..api.test_live_server import Server

SPEC = {"layers": [{"units": 5, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
        "optimizer": {"name": "adam", "learning_rate": 0.02}, "batch_size": 8,
        "data": {"dataset": "moons", "samples": 40, "noise": 0.1}}
"""A 2-5-1 classifier on moons: 20 training and 20 test rows."""


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("client-server")
    s = Server(tmp / "db.sqlite3", tmp / "uvicorn.log", checkpoint_every=10, rate_limit_per_client=0,
               rate_limit_per_token=0).start()
    yield s
    s.stop()
    s.assert_no_tracebacks()


@pytest.fixture
def pg(server):
    with PlaygroundClient(server.url, trust_env=False) as c:
        yield c
