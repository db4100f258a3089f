"""publish outbox: a finished check's findings waiting for each sink

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 19:40:00

A row per survey and configured sink (``[[publish.sinks]]``), written with
the job's completion; the service's publisher sends it and sets
``sent_ns`` (at-least-once; a sink down is tried again).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "publish_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("sink", sa.String(length=100), nullable=False),
        sa.Column("records", sa.Text(), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.Column("sent_ns", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_try_ns", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["survey_id"], ["survey.id"], name=op.f("fk_publish_outbox_survey_id_survey")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_publish_outbox")),
        sa.UniqueConstraint("survey_id", "sink", name=op.f("uq_publish_outbox_survey_id_sink")),
    )
    with op.batch_alter_table("publish_outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_publish_outbox_sent_ns"), ["sent_ns"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_publish_outbox_survey_id"), ["survey_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("publish_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_publish_outbox_survey_id"))
        batch_op.drop_index(batch_op.f("ix_publish_outbox_sent_ns"))
    op.drop_table("publish_outbox")
