"""drafts: each reader's autosaved, not yet saved drawing of an image, one row per pair

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 13:30:00

The annotator autosaves what a reader is drawing (shapes, finding, the revision it started
from) so that a reload, a closed tab or an app restart loses nothing; a Save turns it into a
revision and removes it (core/labels/drafts.py). The primary key (reader, image) makes two
tabs of one account write the same row. Deleting an image or a reader takes its drafts along.
Every step is skipped when already done, so an upgrade killed halfway resumes on the next open.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    online = not op.get_context().as_sql
    tables = set(sa.inspect(op.get_bind()).get_table_names()) if online else set()
    if "drafts" not in tables:
        op.create_table(
            "drafts",
            sa.Column("reader_id", sa.Integer(), nullable=False),
            sa.Column("image_id", sa.Integer(), nullable=False),
            sa.Column("payload", sa.Text(), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.ForeignKeyConstraint(["reader_id"], ["readers.id"], ondelete="CASCADE"),
            sa.ForeignKeyConstraint(["image_id"], ["images.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("reader_id", "image_id"),
        )


def downgrade() -> None:
    op.drop_table("drafts")
