"""Engines and migrations."""

from __future__ import annotations

import contextlib
import fcntl
import logging
from functools import cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
# The key of the PostgreSQL advisory lock that serialises migrations (any constant bigint; this one spells "modera").
MIGRATION_LOCK = 0x6D6F64657261


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets Serve replicas read while a pipeline writes; busy_timeout waits instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with Alembic (idempotent).

    Replicas and jobs that start together all migrate: the first takes a lock for the length of its migration (on
    PostgreSQL an advisory lock; on SQLite an flock on ``<file>.migrate.lock`` beside the database), the others wait
    for it and then find the schema up to date, instead of racing to create the same tables.
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with _file_lock(engine), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


@contextlib.contextmanager
def _file_lock(engine: Engine):
    """An exclusive flock beside a SQLite database file (waits for other processes' migrations); else nothing."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    with open(f"{database}.migrate.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@cache
def open_store(url: str) -> Engine:
    """An engine on an up-to-date schema (migrated once per process and URL)."""
    engine = make_engine(url)
    migrate(engine)
    logger.info("store ready at %s", engine.url.render_as_string(hide_password=True))
    return engine
