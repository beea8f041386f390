"""revision provenance and adjudication: where each revision came from; which one is truth

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 10:00:00

annotation_revisions.origin says where a revision came from: drawn, imported, accepted (a
model's prediction accepted as it was), pre_annotation (a prediction opened for correction)
or corrected (a reader's save based on a model revision); model_version_id names the model
for the last three. Existing rows are classified from their source, tool and the revision
they were based on. reviews.revision_id records which revision a reviewer adjudicated as the
reference standard of an image (decision "adjudicated", added to the decision constraint).

The lists are written out here, not imported (a migration is a record of the schema as it was
on this day; db/ never imports core/); tests/db/test_constraints.py compares them with
core/vocab.py. The tables are recreated in an order in which no other table refers to the one
being recreated (reviews.revision_id is added after annotation_revisions is rebuilt), so
SQLite's DROP TABLE of the old copy deletes nothing through a foreign key.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ORIGINS = ("drawn", "imported", "accepted", "pre_annotation", "corrected")
DECISIONS_BEFORE = ("accepted", "rejected", "corrected", "signed_off")
DECISIONS = (*DECISIONS_BEFORE, "adjudicated")


def _in_list(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _classify_existing_rows() -> None:
    op.execute("UPDATE annotation_revisions SET origin = 'imported' WHERE source = 'import'")
    op.execute(
        "UPDATE annotation_revisions SET origin = 'pre_annotation' "
        "WHERE source = 'model' AND tool = 'pre-annotation'"
    )
    op.execute(
        "UPDATE annotation_revisions SET origin = 'accepted' "
        "WHERE source = 'model' AND tool <> 'pre-annotation'"
    )
    # A manual save based on a model revision (or on a correction of one) is a correction of
    # that model's output; chains are followed one step per pass.
    base = (
        "FROM annotation_revisions b WHERE b.image_id = annotation_revisions.image_id "
        "AND b.reader_id = annotation_revisions.reader_id "
        "AND b.revision = annotation_revisions.based_on_revision "
        "AND b.origin IN ('accepted', 'pre_annotation', 'corrected')"
    )
    bind = op.get_bind()
    for _ in range(1000):
        result = bind.exec_driver_sql(
            "UPDATE annotation_revisions SET origin = 'corrected', "
            f"model_version_id = (SELECT b.model_version_id {base}) "
            f"WHERE source = 'manual' AND origin = 'drawn' AND EXISTS (SELECT 1 {base})"
        )
        if not result.rowcount:
            break


def _columns(table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}


def _checks(table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_check_constraints(table)}


def upgrade() -> None:
    # SQLite's driver commits each DDL statement on its own, so an upgrade killed halfway
    # leaves some of these steps done with the schema still at 0003: every step below is
    # skipped when it is already there, and a half-made batch copy is dropped, so the next
    # open finishes the upgrade instead of failing on "duplicate column".
    online = not op.get_context().as_sql
    if online:
        for table in ("annotation_revisions", "reviews"):
            op.execute(f"DROP TABLE IF EXISTS _alembic_tmp_{table}")
    if not online or "origin" not in _columns("annotation_revisions"):
        with op.batch_alter_table("annotation_revisions", recreate="auto") as batch_op:
            batch_op.add_column(
                sa.Column("origin", sa.String(16), nullable=False, server_default="drawn")
            )
    if not op.get_context().as_sql:
        _classify_existing_rows()
    if not online or "ck_annotation_revisions_origin" not in _checks("annotation_revisions"):
        with op.batch_alter_table("annotation_revisions", recreate="auto") as batch_op:
            batch_op.create_check_constraint(
                "ck_annotation_revisions_origin", _in_list("origin", ORIGINS)
            )
    if not online or "revision_id" not in _columns("reviews"):
        with op.batch_alter_table("reviews", recreate="auto") as batch_op:
            batch_op.add_column(sa.Column("revision_id", sa.Integer(), nullable=True))
            batch_op.create_foreign_key(
                "fk_reviews_revision_id", "annotation_revisions", ["revision_id"], ["id"]
            )
            batch_op.drop_constraint("ck_reviews_decision", type_="check")
            batch_op.create_check_constraint("ck_reviews_decision", _in_list("decision", DECISIONS))


def downgrade() -> None:
    op.execute("DELETE FROM reviews WHERE decision = 'adjudicated'")
    with op.batch_alter_table("reviews", recreate="auto") as batch_op:
        batch_op.drop_constraint("ck_reviews_decision", type_="check")
        batch_op.create_check_constraint(
            "ck_reviews_decision", _in_list("decision", DECISIONS_BEFORE)
        )
        batch_op.drop_constraint("fk_reviews_revision_id", type_="foreignkey")
        batch_op.drop_column("revision_id")
    with op.batch_alter_table("annotation_revisions", recreate="auto") as batch_op:
        batch_op.drop_constraint("ck_annotation_revisions_origin", type_="check")
        batch_op.drop_column("origin")
