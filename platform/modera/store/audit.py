"""The audit trail of model alias moves: MLflow keeps no history of them, so Modera does."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from modera.store.tables import ModelEvent

ACTIONS = ("promote", "force_promote", "rollback", "external")


@dataclass(frozen=True)
class Event:
    id: int
    model_name: str
    action: str
    from_version: str | None
    to_version: str
    actor: str
    reason: str
    gate_passed: bool | None
    gate_summary: str
    created_at: datetime


def _event(row: ModelEvent) -> Event:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=timezone.utc)
    return Event(row.id, row.model_name, row.action, row.from_version, row.to_version, row.actor, row.reason,
                 row.gate_passed, row.gate_summary, created)


def record(engine: Engine, *, model_name: str, action: str, from_version: str | None, to_version: str, actor: str,
           reason: str = "", gate_passed: bool | None = None, gate_summary: str = "") -> Event:
    """Append one event (committed before returning, so a crash right after cannot lose it)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; expected one of {ACTIONS}")
    row = ModelEvent(model_name=model_name, action=action, from_version=from_version, to_version=to_version,
                     actor=actor, reason=reason, gate_passed=gate_passed, gate_summary=gate_summary,
                     created_at=datetime.now(timezone.utc))
    with Session(engine) as session, session.begin():
        session.add(row)
        session.flush()
        event = _event(row)
    return event


def history(engine: Engine, model_name: str) -> list[Event]:
    """Every recorded move of one model, oldest first."""
    with Session(engine) as session:
        rows = session.scalars(select(ModelEvent).where(ModelEvent.model_name == model_name).order_by(ModelEvent.id))
        return [_event(r) for r in rows]
