"""The store on a real SQLite file: migrations, the audit trail, and no drift between models and migrations."""

import pytest
from sqlalchemy import inspect

from modera.store import audit
from modera.store.db import make_engine, migrate, open_store
from modera.store.tables import Base


@pytest.fixture
def engine(tmp_path):
    return open_store(f"sqlite:///{tmp_path}/modera.db")


def test_migrations_create_the_tables_and_are_idempotent(engine):
    migrate(engine)  # a second upgrade is a no-op
    assert {"model_events", "alembic_version"} <= set(inspect(engine).get_table_names())


def test_migrations_match_the_table_definitions(engine):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], "tables.py changed without a migration"


def test_events_are_kept_in_order_and_survive_a_new_engine(tmp_path, engine):
    audit.record(engine, model_name="m", action="promote", from_version=None, to_version="1", actor="ana", reason="first",
                 gate_passed=True, gate_summary="ok")
    audit.record(engine, model_name="m", action="rollback", from_version="2", to_version="1", actor="bo", reason="bad")
    audit.record(engine, model_name="other", action="promote", from_version=None, to_version="7", actor="ana")
    reopened = make_engine(f"sqlite:///{tmp_path}/modera.db")
    events = audit.history(reopened, "m")
    assert [(e.action, e.from_version, e.to_version, e.actor, e.reason) for e in events] == [
        ("promote", None, "1", "ana", "first"), ("rollback", "2", "1", "bo", "bad")]
    assert events[0].gate_passed is True and events[1].gate_passed is None
    assert events[0].created_at <= events[1].created_at and events[0].created_at.tzinfo is not None


def test_unknown_action_is_refused(engine):
    with pytest.raises(ValueError, match="unknown audit action 'delete'"):
        audit.record(engine, model_name="m", action="delete", from_version=None, to_version="1", actor="x")
    assert audit.history(engine, "m") == []
