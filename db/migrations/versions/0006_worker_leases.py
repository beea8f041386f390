"""worker leases: a workers table with heartbeats; jobs name the worker that claimed them

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 12:45:00

Several worker processes (several hosts) share one database. Each registers a row in
`workers` (host, pid, the job kinds it takes, its current job) and refreshes heartbeat_at
every few seconds; jobs.worker_id names the worker whose lease a running job is under. A
worker whose heartbeat is older than the worker timeout is dead: the live workers fail (or
requeue) its job (core/jobs/lease.py). Every step is skipped when already done, so an upgrade
killed halfway resumes on the next open.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    online = not op.get_context().as_sql
    inspector = sa.inspect(op.get_bind()) if online else None
    job_columns = {c["name"] for c in inspector.get_columns("jobs")} if online else set()
    if "worker_id" not in job_columns:
        op.add_column("jobs", sa.Column("worker_id", sa.String(36), nullable=True))
    tables = set(inspector.get_table_names()) if online else set()
    if "workers" not in tables:
        op.create_table(
            "workers",
            sa.Column("id", sa.String(36), nullable=False),
            sa.Column("host", sa.String(255), nullable=False),
            sa.Column("pid", sa.Integer(), nullable=False),
            sa.Column("kinds", sa.JSON(), nullable=False),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("current_job_id", sa.Integer(), nullable=True),
            sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("note", sa.Text(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_workers_state_heartbeat", "workers", ["state", "heartbeat_at"])


def downgrade() -> None:
    op.drop_index("ix_workers_state_heartbeat", table_name="workers")
    op.drop_table("workers")
    op.drop_column("jobs", "worker_id")  # SQLite 3.35+ drops a column in place
