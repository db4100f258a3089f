"""survey kind (underground / open pit) and the publish outbox's claim lease

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 20:10:00

* ``survey.kind``: what the survey is checked as, chosen at upload
  (``open_pit`` lets a survey of clouds or meshes alone be checked as a
  pit); surveys made before are ``open_pit`` when they hold a raster, else
  ``underground`` (what the job decided from their files).
* ``publish_outbox.claim`` / ``claimed_until_ns``: the publisher instance
  sending a row and until when; another instance takes it only after.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("survey", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="underground")
        )
    op.execute(
        "UPDATE survey SET kind = 'open_pit' WHERE id IN "
        "(SELECT survey_id FROM survey_file WHERE kind = 'raster')"
    )
    with op.batch_alter_table("publish_outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("claimed_until_ns", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("publish_outbox", schema=None) as batch_op:
        batch_op.drop_column("claimed_until_ns")
        batch_op.drop_column("claim")
    with op.batch_alter_table("survey", schema=None) as batch_op:
        batch_op.drop_column("kind")
