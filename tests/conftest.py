"""Session fixtures shared across the test folders, and the markers applied by folder and fixture."""
from pathlib import Path

import pytest

from tests import support

TESTS = Path(__file__).resolve().parent

# a test is marked when it uses one of these fixtures (directly or through another fixture) ...
MARK_BY_FIXTURE = {"browser": "browser", "redis_server": "redis"}
# ... or lives under one of these folders (paths relative to tests/)
MARK_BY_FOLDER = {"e2e": "browser"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        marks = {mark for fixture, mark in MARK_BY_FIXTURE.items() if fixture in names}
        try:
            folder = item.path.relative_to(TESTS).parts[0]
        except ValueError:
            folder = ""
        if folder in MARK_BY_FOLDER:
            marks.add(MARK_BY_FOLDER[folder])
        for mark in sorted(marks - {m.name for m in item.iter_markers()}):
            item.add_marker(getattr(pytest.mark, mark))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """URL of a throwaway redis-server that lives for the whole session."""
    yield from support.redis_server(tmp_path_factory.mktemp("redis"))
