"""SQLAlchemy 2.0 typed models of a PneumoLab workspace.

Annotations and findings are append-only: a save adds a row, never rewrites one, so every
revision (who, when, which tool, model-derived or not) stays on record.

Columns that store a vocabulary name (core/vocab.py: finding, status, revision source, review
decision, job state, role) are checked by the database: CHECK constraints ck_<table>_<column>
added by migration 0003, which lists the names. They are deliberately not repeated in
__table_args__ here (db/ may not import core, and a second copy of each list would drift);
the schema is built by the migrations only, and tests/db/test_constraints.py compares the
live constraints with core.vocab.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Setting(Base):
    """Workspace-wide key/value settings (e.g. the de-identification salt)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Reader(Base):
    """A person who labels or reviews; becomes an account once accounts exist."""

    __tablename__ = "readers"
    __table_args__ = (
        Index("ix_readers_email", "email", unique=True),
        Index("ix_readers_oidc_subject", "oidc_subject", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    role: Mapped[str] = mapped_column(String(20), default="annotator")  # vocab.ROLES
    # An argon2 hash (core.accounts), never the password; None: no password login.
    password_hash: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Account columns (migration 0005). An account is disabled, never deleted, so its
    # revisions keep their author. A service identity acts only through the CLI's --as.
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    email: Mapped[str | None] = mapped_column(String(254))
    oidc_subject: Mapped[str | None] = mapped_column(String(255))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    service: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LabelClass(Base):
    __tablename__ = "label_classes"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    color: Mapped[str] = mapped_column(String(9), default="#ff0000")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Image(Base):
    """One stored X-ray. Pixels live in the image store under their content hash."""

    __tablename__ = "images"
    __table_args__ = (
        # One index per worklist filter, ending in the sort key, so a filtered page is read
        # in order from the index instead of sorting every matching row (migration 0002).
        Index("ix_images_imported_at_id", "imported_at", "id"),
        Index("ix_images_status_imported", "status", "imported_at", "id"),
        Index("ix_images_modality_imported", "modality", "imported_at", "id"),
        Index("ix_images_status_modality_imported", "status", "modality", "imported_at", "id"),
        Index("ix_images_patient_key", "patient_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    storage_path: Mapped[str] = mapped_column(String(255))
    thumbnail_path: Mapped[str | None] = mapped_column(String(255))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    modality: Mapped[str] = mapped_column(String(16))
    source_format: Mapped[str] = mapped_column(String(16))
    bits_stored: Mapped[int] = mapped_column(Integer)
    photometric: Mapped[str] = mapped_column(String(16))
    # Modality value = stored pixel * pixel_scale + pixel_offset (fits any range in a uint16 PNG).
    pixel_offset: Mapped[float] = mapped_column(Float, default=0.0)
    pixel_scale: Mapped[float] = mapped_column(Float, default=1.0)
    pixel_spacing_row: Mapped[float | None] = mapped_column(Float)
    pixel_spacing_col: Mapped[float | None] = mapped_column(Float)
    window_center: Mapped[float | None] = mapped_column(Float)
    window_width: Mapped[float | None] = mapped_column(Float)
    value_min: Mapped[float] = mapped_column(Float, default=0.0)
    value_max: Mapped[float] = mapped_column(Float, default=255.0)
    # Salted hashes only: the clear identifiers never reach the database.
    patient_key: Mapped[str | None] = mapped_column(String(64))
    study_key: Mapped[str | None] = mapped_column(String(64))
    series_key: Mapped[str | None] = mapped_column(String(64))
    view: Mapped[str | None] = mapped_column(String(16))
    # Display name without identifying text (e.g. "IMG-000042").
    display_name: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="unlabelled")  # vocab.STATUSES
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    imported_by: Mapped[str | None] = mapped_column(String(120))

    revisions: Mapped[list[AnnotationRevision]] = relationship(back_populates="image")


class AnnotationRevision(Base):
    """One save of one reader's shapes on one image, in original-image pixel coordinates."""

    __tablename__ = "annotation_revisions"
    __table_args__ = (
        UniqueConstraint("image_id", "reader_id", "revision", name="uq_revision_per_reader"),
        Index("ix_revisions_image_reader", "image_id", "reader_id", "revision"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id"))
    revision: Mapped[int] = mapped_column(Integer)
    based_on_revision: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    tool: Mapped[str] = mapped_column(String(32), default="manual")
    source: Mapped[str] = mapped_column(String(16), default="manual")  # vocab.REVISION_SOURCES
    # Where the shapes came from (vocab.REVISION_ORIGINS, migration 0004); model_version_id
    # names the model of accepted, pre_annotation and corrected revisions.
    origin: Mapped[str] = mapped_column(String(16), default="drawn")
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    image_width: Mapped[int] = mapped_column(Integer)
    image_height: Mapped[int] = mapped_column(Integer)
    shapes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    comment: Mapped[str | None] = mapped_column(Text)

    image: Mapped[Image] = relationship(back_populates="revisions")


class ImageFinding(Base):
    """Image-level finding by one reader; append-only, newest wins."""

    __tablename__ = "image_findings"
    __table_args__ = (Index("ix_findings_image_reader", "image_id", "reader_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id"))
    finding: Mapped[str] = mapped_column(String(24))  # a key of vocab.FINDINGS
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelVersion(Base):
    """An immutable trained model: settings, data snapshot, curves and checkpoint."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(64))
    arch: Mapped[str] = mapped_column(String(32))
    encoder: Mapped[str] = mapped_column(String(32))
    image_size: Mapped[int] = mapped_column(Integer)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    data_snapshot: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    history: Mapped[list[Any]] = mapped_column(JSON, default=list)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    checkpoint_path: Mapped[str] = mapped_column(String(255))
    parent_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    device: Mapped[str] = mapped_column(String(32))
    duration_s: Mapped[float] = mapped_column(Float)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Prediction(Base):
    """A model version's output for one image, stored as a probability PNG."""

    __tablename__ = "predictions"
    __table_args__ = (UniqueConstraint("model_version_id", "image_id", name="uq_prediction"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE")
    )
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    probability_path: Mapped[str] = mapped_column(String(255))
    score: Mapped[float] = mapped_column(Float)
    uncertainty: Mapped[float] = mapped_column(Float)
    boxes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Review(Base):
    """A reviewer's verdict on a prediction or a reader's labels (append-only)."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id"))
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    decision: Mapped[str] = mapped_column(String(16))  # vocab.REVIEW_DECISIONS
    # The revision an "adjudicated" decision makes the image's reference standard.
    revision_id: Mapped[int | None] = mapped_column(ForeignKey("annotation_revisions.id"))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Job(Base):
    """Long work (training, batch prediction, big imports) run by a worker process."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_id", "state", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="queued")  # vocab.JOB_STATES
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    log_tail: Mapped[str] = mapped_column(Text, default="")
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker_pid: Mapped[int | None] = mapped_column(Integer)
    worker_host: Mapped[str | None] = mapped_column(String(255))
    # The worker (workers.id) that claimed this job: its lease (migration 0006).
    worker_id: Mapped[str | None] = mapped_column(String(36))
    created_by: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Worker(Base):
    """A job worker process and its lease: it claims jobs of its kinds and writes heartbeat_at
    every few seconds; one whose heartbeat is older than the worker timeout is dead, and the
    live workers fail (or requeue) its job (core/jobs/lease.py, migration 0006)."""

    __tablename__ = "workers"
    __table_args__ = (Index("ix_workers_state_heartbeat", "state", "heartbeat_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    kinds: Mapped[list[Any]] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(16), default="alive")  # alive, stopped, dead
    current_job_id: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)


class Draft(Base):
    """A reader's autosaved drawing of an image, not yet saved as a revision (JSON text:
    shapes, finding, base revision, ...); one per (reader, image), migration 0007."""

    __tablename__ = "drafts"

    reader_id: Mapped[int] = mapped_column(
        ForeignKey("readers.id", ondelete="CASCADE"), primary_key=True
    )
    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    payload: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class LoginSession(Base):
    """A web login session (core.accounts): only the sha256 of its token is stored."""

    __tablename__ = "sessions"
    __table_args__ = (UniqueConstraint("token_hash", name="uq_sessions_token_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """Who did what and when (core.accounts.audit). Append-only: triggers of migration 0005
    refuse UPDATE and DELETE. Names accounts and workspace ids, never a patient."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at", "id"),
        Index("ix_audit_log_actor_at", "actor", "at"),
        Index("ix_audit_log_action_at", "action", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(120))  # an account name, or the name typed
    actor_id: Mapped[int | None] = mapped_column(Integer)  # the account's id, when one
    action: Mapped[str] = mapped_column(String(32))  # vocab.AUDIT_ACTIONS
    target: Mapped[str] = mapped_column(String(255), default="")
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
