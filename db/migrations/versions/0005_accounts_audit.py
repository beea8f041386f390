"""accounts and the audit log: readers become accounts; sessions; an append-only audit_log

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 12:30:00

Readers ARE accounts: the readers table gains what a login needs (disabled, e-mail, OpenID
Connect subject, failed-login count, lock time, service identity, last login). Its columns are
added with ALTER TABLE ADD COLUMN (no table copy on SQLite, so nothing that refers to a reader
is touched); the unique e-mail and OIDC subject are unique indexes for the same reason.

`sessions` holds the web app's login sessions: only the sha256 of each token is stored.

`audit_log` is append-only: triggers refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL),
whoever connects. It names accounts and workspace ids only, never a patient.

The account settings get their default rows in `settings` (max_failed_logins 5,
lockout_minutes 15, session_idle_minutes 60) unless present.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DEFAULT_SETTINGS = {
    "max_failed_logins": "5",
    "lockout_minutes": "15",
    "session_idle_minutes": "60",
}
APPEND_ONLY = "audit_log is append-only: its rows cannot be changed or deleted"

READER_COLUMNS = (
    ("disabled", lambda: sa.Column("disabled", sa.Boolean(), nullable=False,
                                   server_default=sa.false())),
    ("email", lambda: sa.Column("email", sa.String(254), nullable=True)),
    ("oidc_subject", lambda: sa.Column("oidc_subject", sa.String(255), nullable=True)),
    ("failed_logins", lambda: sa.Column("failed_logins", sa.Integer(), nullable=False,
                                        server_default="0")),
    ("locked_until", lambda: sa.Column("locked_until", sa.DateTime(timezone=True),
                                       nullable=True)),
    ("service", lambda: sa.Column("service", sa.Boolean(), nullable=False,
                                  server_default=sa.false())),
    ("last_login_at", lambda: sa.Column("last_login_at", sa.DateTime(timezone=True),
                                        nullable=True)),
)  # fmt: skip


def _columns(table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}


def _tables() -> set[str]:
    return set(sa.inspect(op.get_bind()).get_table_names())


def _triggers_sqlite() -> None:
    for event in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER IF NOT EXISTS audit_log_no_{event.lower()} BEFORE {event} "
            f"ON audit_log BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
        )


def _triggers_postgresql() -> None:
    op.execute(
        "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger "
        f"LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$"
    )
    op.execute("DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log")
    op.execute(
        "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
    )
    op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
    op.execute(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"
    )


def upgrade() -> None:
    # Every step is skipped when already done: SQLite commits each DDL statement on its own,
    # so an upgrade killed halfway resumes on the next open instead of failing.
    online = not op.get_context().as_sql
    have = _columns("readers") if online else set()
    for name, column in READER_COLUMNS:
        if name not in have:
            op.add_column("readers", column())
    indexes = (
        {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("readers")} if online else set()
    )
    if "ix_readers_email" not in indexes:
        op.create_index("ix_readers_email", "readers", ["email"], unique=True)
    if "ix_readers_oidc_subject" not in indexes:
        op.create_index("ix_readers_oidc_subject", "readers", ["oidc_subject"], unique=True)

    tables = _tables() if online else set()
    if "sessions" not in tables:
        op.create_table(
            "sessions",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("token_hash", sa.String(64), nullable=False),
            sa.Column("reader_id", sa.Integer(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
            sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
            sa.ForeignKeyConstraint(["reader_id"], ["readers.id"]),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("token_hash", name="uq_sessions_token_hash"),
        )
    if "audit_log" not in tables:
        op.create_table(
            "audit_log",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("actor", sa.String(120), nullable=False),
            sa.Column("actor_id", sa.Integer(), nullable=True),
            sa.Column("action", sa.String(32), nullable=False),
            sa.Column("target", sa.String(255), nullable=False),
            sa.Column("detail", sa.JSON(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_audit_log_at", "audit_log", ["at", "id"])
        op.create_index("ix_audit_log_actor_at", "audit_log", ["actor", "at"])
        op.create_index("ix_audit_log_action_at", "audit_log", ["action", "at"])
    if op.get_bind().dialect.name == "postgresql":
        _triggers_postgresql()
    else:
        _triggers_sqlite()

    settings = sa.table("settings", sa.column("key", sa.String), sa.column("value", sa.Text))
    present = set(op.get_bind().execute(sa.select(settings.c.key)).scalars()) if online else set()
    rows = [{"key": k, "value": v} for k, v in DEFAULT_SETTINGS.items() if k not in present]
    if rows:
        op.bulk_insert(settings, rows)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE IF EXISTS audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
        op.execute("DROP TABLE IF EXISTS audit_log")
    op.drop_table("sessions")
    op.drop_index("ix_readers_oidc_subject", table_name="readers")
    op.drop_index("ix_readers_email", table_name="readers")
    for name, _ in reversed(READER_COLUMNS):
        op.drop_column("readers", name)  # SQLite 3.35+ drops a column in place
    keys = ", ".join(f"'{k}'" for k in DEFAULT_SETTINGS)
    op.execute(f"DELETE FROM settings WHERE key IN ({keys})")
