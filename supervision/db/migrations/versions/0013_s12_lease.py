"""leases: one instance at a time runs the alert evaluator's timer sweep;
latest values updated in place (PostgreSQL fillfactor 50: room on the page
for a HOT update, no index write per point, bench/results/platform_profile.md)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 19:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lease",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("expires_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_lease")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE latest_value SET (fillfactor = 50)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE latest_value RESET (fillfactor)")
    op.drop_table("lease")
