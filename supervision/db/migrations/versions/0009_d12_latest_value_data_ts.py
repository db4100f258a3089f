"""latest values remember when each point last had data

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 19:40:00

``latest_value.data_ts_ns``: the time of the point's newest value with data
(any quality but ``comm_loss``). A device that stops answering is reported
as ``comm_loss`` in every snapshot, which replaces the row; this column
keeps when its data stopped, for the data-gap alerts. Rows kept before get
their own time where their quality is not ``comm_loss``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("latest_value", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data_ts_ns", sa.BigInteger(), nullable=True))
    op.execute("UPDATE latest_value SET data_ts_ns = ts_ns WHERE quality <> 'comm_loss'")


def downgrade() -> None:
    with op.batch_alter_table("latest_value", schema=None) as batch_op:
        batch_op.drop_column("data_ts_ns")
