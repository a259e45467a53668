"""Fixtures for the API tests (tests/e2e has its own): a fresh app with a memory store per test."""
from __future__ import annotations

import pytest

from .utils import SMALL, ApiClient, client_for, create, make_app


@pytest.fixture
def app():
    return make_app()


@pytest.fixture
def client(app) -> ApiClient:
    with client_for(app) as c:
        yield c


@pytest.fixture
def model(client) -> dict:
    """A small trained-nothing-yet 2-4-1 classifier (its ModelPublic body)."""
    return create(client, SMALL)


@pytest.fixture
def limited():
    """A client factory for an app with the given settings (small limits where a test needs them)."""
    clients = []

    def factory(**settings) -> ApiClient:
        c = client_for(make_app(**settings))
        c.__enter__()
        clients.append(c)
        return c

    yield factory
    for c in clients:
        c.__exit__(None, None, None)
