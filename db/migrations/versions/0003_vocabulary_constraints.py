"""vocabulary constraints: a CHECK on every column that stores a vocabulary name

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 10:00:00

The database refuses a finding, status, revision source, review decision, job state or role
that the application does not know, whoever writes it. The names are written out here, not
imported: a migration is a record of the schema as it was on this day, and db/ never imports
core/. tests/db/test_constraints.py fails when core/vocab.py and these lists drift apart; a
changed vocabulary needs a new migration that replaces the constraint.

SQLite cannot add a constraint to a table, so batch mode copies each table into a new one
with the constraint (indexes and the other constraints are reflected and re-created).
"""

from collections.abc import Iterator
from contextlib import contextmanager

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# (table, column) -> the names that column may hold on this day.
ALLOWED: dict[tuple[str, str], tuple[str, ...]] = {
    ("image_findings", "finding"): (
        "pneumonia",
        "no_pneumonia",
        "uncertain",
        "reviewed_no_finding",
    ),
    ("annotation_revisions", "source"): ("manual", "import", "model"),
    ("images", "status"): ("unlabelled", "labelled", "negative", "reviewed"),
    ("reviews", "decision"): ("accepted", "rejected", "corrected", "signed_off"),
    ("jobs", "state"): ("queued", "running", "succeeded", "failed", "cancelled"),
    ("readers", "role"): ("annotator", "reviewer", "admin"),
}


def constraint_name(table: str, column: str) -> str:
    return f"ck_{table}_{column}"


def _in_list(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


def _refuse_unknown_values() -> None:
    """Name the rows the new constraints would reject, instead of a bare IntegrityError (or,
    on PostgreSQL, a 'check constraint is violated by some row') halfway through."""
    bind = op.get_bind()
    found = []
    for (table, column), values in ALLOWED.items():
        rows = bind.exec_driver_sql(
            f"SELECT {column}, COUNT(*) FROM {table} "
            f"WHERE NOT ({_in_list(column, values)}) GROUP BY {column} ORDER BY {column}"
        ).all()
        found += [f"{table}.{column} = {value!r} ({n} rows)" for value, n in rows]
    if found:
        raise RuntimeError(
            "cannot add the vocabulary constraints: the database holds names the application "
            f"does not know: {'; '.join(found)}. Correct or remove those rows, then open the "
            "workspace again."
        )


@contextmanager
def _sqlite_foreign_keys_off() -> Iterator[None]:
    """Batch mode on SQLite drops the old table after copying it, and with foreign keys on a
    DROP TABLE first deletes every row, cascading: recreating `images` would delete every
    finding, revision, review and prediction. The pragma is ignored inside a transaction, so
    it is switched in an autocommit block (which commits the migrations before this one) and
    switched back on before the pooled connection goes back to the application; on failure
    the connection is discarded instead, which also rolls the recreates back."""
    bind = op.get_bind()
    if (
        bind.dialect.name != "sqlite"
        or op.get_context().as_sql
        or not bind.exec_driver_sql("PRAGMA foreign_keys").scalar()
    ):
        yield
        return
    context = op.get_context()
    with context.autocommit_block():
        op.execute("PRAGMA foreign_keys=OFF")
    if op.get_bind().exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError("could not switch SQLite foreign keys off to recreate tables")
    try:
        # The sqlite3 driver opens a transaction only before DML, so the first CREATE TABLE
        # would commit on its own: begin here, and a failure undoes every table's recreate.
        op.execute("BEGIN")
        yield
        dangling = op.get_bind().exec_driver_sql("PRAGMA foreign_key_check").all()
        if dangling:
            raise RuntimeError(f"recreating tables left dangling foreign keys: {dangling}")
    except BaseException:
        # Roll back, and never hand a connection without foreign keys back to the pool.
        op.get_bind().invalidate()
        raise
    with context.autocommit_block():
        op.execute("PRAGMA foreign_keys=ON")


def upgrade() -> None:
    if not op.get_context().as_sql:  # offline (--sql) there are no rows to look at
        _refuse_unknown_values()
    with _sqlite_foreign_keys_off():
        for (table, column), values in ALLOWED.items():
            with op.batch_alter_table(table, recreate="auto") as batch_op:
                batch_op.create_check_constraint(
                    constraint_name(table, column), _in_list(column, values)
                )


def downgrade() -> None:
    with _sqlite_foreign_keys_off():
        for table, column in ALLOWED:
            with op.batch_alter_table(table, recreate="auto") as batch_op:
                batch_op.drop_constraint(constraint_name(table, column), type_="check")
