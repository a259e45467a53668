"""Session fixtures shared across the test folders."""
import pytest

from tests import support


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """URL of a throwaway redis-server that lives for the whole session."""
    yield from support.redis_server(tmp_path_factory.mktemp("redis"))
