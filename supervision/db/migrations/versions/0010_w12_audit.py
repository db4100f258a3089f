"""audit trail of registry and user changes

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 19:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=300), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("region_id", sa.Integer(), nullable=True),
        sa.Column("city_id", sa.Integer(), nullable=True),
        sa.Column("county_id", sa.Integer(), nullable=True),
        sa.Column("mine_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        for col in ("ts_ns", "region_id", "city_id", "county_id", "mine_id"):
            batch_op.create_index(batch_op.f(f"ix_audit_event_{col}"), [col], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        for col in ("ts_ns", "region_id", "city_id", "county_id", "mine_id"):
            batch_op.drop_index(batch_op.f(f"ix_audit_event_{col}"))
    op.drop_table("audit_event")
