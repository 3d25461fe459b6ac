"""Table definitions. Every schema change comes with a migration in ``migrations/versions``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ModelEvent(Base):
    """One move of a model alias: a promotion, a rollback, or a move made outside Modera."""

    __tablename__ = "model_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(256), index=True)
    action: Mapped[str] = mapped_column(String(32))
    from_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    to_version: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(Text, default="")
    gate_passed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    gate_summary: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class Bank(Base):
    """A named set of known items. ``kind`` is ``block`` (matches flag content) or ``allow`` (a negative bank of
    known false positives: a match clears content that another bank or a classifier flagged)."""

    __tablename__ = "banks"
    __table_args__ = (Index("ix_banks_name", "name", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    labels: Mapped[list] = mapped_column(JSON)  # category names applied on a match
    thresholds: Mapped[dict] = mapped_column(JSON)  # per signal: {"pdq": 31, "embedding": 0.85}
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BankItem(Base):
    """One known item of a bank. Removal is soft (status ``removed``) so incremental index refreshes see it;
    ``revision`` is bumped on every change to a value above every revision handed out before."""

    __tablename__ = "bank_items"
    __table_args__ = (
        Index("ix_bank_items_bank_external", "bank_id", "external_id", unique=True),
        Index("ix_bank_items_revision", "revision", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bank_id: Mapped[int] = mapped_column(Integer, ForeignKey("banks.id"))
    external_id: Mapped[str] = mapped_column(String(256))
    labels: Mapped[list | None] = mapped_column(JSON, nullable=True)
    provenance: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    pdq_hex: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pdq_quality: Mapped[int | None] = mapped_column(Integer, nullable=True)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # float32 bytes
    embedding_model: Mapped[str | None] = mapped_column(String(256), nullable=True)
    media: Mapped[str] = mapped_column(String(16), default="image")  # "image" or "video"
    # video only: {"times": [s...], "pdq": [[hex, quality] | null...], "duration": s, "dim": d}
    frames: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    frame_embeddings: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # float32 [frames, dim]
    revision: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class BankRevision(Base):
    """A one-row counter: the last revision handed to a bank item change. A counter rather than
    ``max(revision) + 1`` so revisions never go back when a bank is deleted with its items."""

    __tablename__ = "bank_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(Integer)
