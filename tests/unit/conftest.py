"""The store fixtures of the unit tests: every store test runs on SQLite (a file in tmp_path) and on PostgreSQL
(a fresh database on the session's throwaway server, see ``tests.postgres``)."""

from __future__ import annotations

import pytest

from modera.store.db import open_store


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """The URL of an empty store: a SQLite file, or a new PostgreSQL database dropped after the test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/modera.db"
        return
    server = request.getfixturevalue("postgres")
    url = server.create_database()
    yield url
    server.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture
def engine(store_url):
    """An engine on a migrated store at ``store_url`` (its pooled connections are closed after the test)."""
    engine = open_store(store_url)
    yield engine
    engine.dispose()
