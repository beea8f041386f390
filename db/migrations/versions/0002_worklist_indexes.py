"""worklist indexes: filter columns followed by the sort key

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 22:30:00

A filtered worklist page (status and/or modality, newest first) was answered by reading every
matching row and sorting it; with the sort key at the end of the index SQLite and PostgreSQL
read the page straight from the index.
"""
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index('ix_images_status_id')
        batch_op.drop_index('ix_images_modality_id')
        batch_op.create_index(
            'ix_images_status_imported', ['status', 'imported_at', 'id'], unique=False
        )
        batch_op.create_index(
            'ix_images_modality_imported', ['modality', 'imported_at', 'id'], unique=False
        )
        batch_op.create_index(
            'ix_images_status_modality_imported',
            ['status', 'modality', 'imported_at', 'id'],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index('ix_images_status_modality_imported')
        batch_op.drop_index('ix_images_modality_imported')
        batch_op.drop_index('ix_images_status_imported')
        batch_op.create_index('ix_images_modality_id', ['modality', 'id'], unique=False)
        batch_op.create_index('ix_images_status_id', ['status', 'id'], unique=False)
