"""gateway alarms keyed by their alarm id

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 18:05:00

A gateway's alarms are kept per alarm id (``fields.alarm``, as the topic
level of ``alarms/active/<alarm>``), not per device and point: one point has
several alarms (``ch4_high``, ``ch4_power_off``). Rows kept before get the
id ``<device>.<point>``; the gateways' retained active alarms fill in the
real ones at the next subscription.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_NEW = ("alarm", "event", "actor")


def upgrade() -> None:
    with op.batch_alter_table("gateway_alarm", schema=None) as batch_op:
        batch_op.add_column(sa.Column("alarm", sa.String(length=200), nullable=False, server_default=""))  # fmt: skip
        batch_op.add_column(sa.Column("event", sa.String(length=32), nullable=False, server_default=""))  # fmt: skip
        batch_op.add_column(sa.Column("actor", sa.String(length=200), nullable=False, server_default=""))  # fmt: skip
    op.execute("UPDATE gateway_alarm SET alarm = device || '.' || point")
    with op.batch_alter_table("gateway_alarm", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("pk_gateway_alarm"), type_="primary")
        batch_op.create_primary_key(batch_op.f("pk_gateway_alarm"), ["gateway_id", "alarm"])
        for col in _NEW:
            batch_op.alter_column(col, server_default=None)


def downgrade() -> None:
    # several alarms of one point fold into one row: keep the newest
    op.execute(
        "DELETE FROM gateway_alarm WHERE EXISTS (SELECT 1 FROM gateway_alarm AS b"
        " WHERE b.gateway_id = gateway_alarm.gateway_id AND b.device = gateway_alarm.device"
        " AND b.point = gateway_alarm.point AND (b.ts_ns > gateway_alarm.ts_ns"
        " OR (b.ts_ns = gateway_alarm.ts_ns AND b.alarm > gateway_alarm.alarm)))"
    )
    with op.batch_alter_table("gateway_alarm", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("pk_gateway_alarm"), type_="primary")
        batch_op.create_primary_key(batch_op.f("pk_gateway_alarm"), ["gateway_id", "device", "point"])  # fmt: skip
        for col in _NEW:
            batch_op.drop_column(col)
