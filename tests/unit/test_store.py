"""The store on SQLite and PostgreSQL (``store_url``/``engine`` in conftest): migrations, the audit trail, and no
drift between models and migrations."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from modera.store import audit
from modera.store.db import make_engine, migrate
from modera.store.tables import Base, ModelEvent

_MIGRATE = "import sys; from modera.store.db import make_engine, migrate; migrate(make_engine(sys.argv[1]))"


def test_migrations_create_the_tables_and_are_idempotent(engine):
    migrate(engine)  # a second upgrade is a no-op
    assert {"model_events", "alembic_version"} <= set(inspect(engine).get_table_names())


def test_migrations_match_the_table_definitions(engine):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], "tables.py changed without a migration"


def test_events_are_kept_in_order_and_survive_a_new_engine(store_url, engine):
    audit.record(engine, model_name="m", action="promote", from_version=None, to_version="1", actor="ana", reason="first",
                 gate_passed=True, gate_summary="ok")
    audit.record(engine, model_name="m", action="rollback", from_version="2", to_version="1", actor="bo", reason="bad")
    audit.record(engine, model_name="other", action="promote", from_version=None, to_version="7", actor="ana")
    reopened = make_engine(store_url)
    events = audit.history(reopened, "m")
    assert [(e.action, e.from_version, e.to_version, e.actor, e.reason) for e in events] == [
        ("promote", None, "1", "ana", "first"), ("rollback", "2", "1", "bo", "bad")]
    assert events[0].gate_passed is True and events[1].gate_passed is None
    assert events[0].created_at <= events[1].created_at and events[0].created_at.tzinfo is not None
    assert events[0].created_at.utcoffset() == timedelta(0)  # UTC, whatever the server's time zone


def test_unknown_action_is_refused(engine):
    with pytest.raises(ValueError, match="unknown audit action 'delete'"):
        audit.record(engine, model_name="m", action="delete", from_version=None, to_version="1", actor="x")
    assert audit.history(engine, "m") == []


def test_processes_migrating_one_empty_store_at_once_all_succeed(store_url):
    # Replicas starting together each migrate: without a lock two of them create the same tables and one fails.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, "-c", _MIGRATE, store_url], stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(4)]
    failures = [stderr[-2000:] for stderr, code in ((p.communicate(timeout=120)[1], p.returncode) for p in procs)
                if code != 0]
    assert failures == []
    engine = make_engine(store_url)
    with Session(engine) as session:
        assert session.scalars(select(ModelEvent)).all() == []
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1
    engine.dispose()
