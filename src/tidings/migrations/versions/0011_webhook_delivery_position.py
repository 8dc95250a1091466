"""webhook deliveries: carry the event's position, index the waiting ones by it

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26 09:30:00.000000

`claim_due` orders each target's deliveries by their event's position. With the position only
on `webhook_events`, the in-order check and the run behind a head joined every waiting
delivery of the target to its event and sorted them, so a claim cost grew with the queue
(163 µs per webhook with 2,000 queued, 462 µs with 10,000). A copy of the position on the
delivery, indexed with the target over the waiting rows only, makes both a seek.

The (waba_id, target_url, status) index stays: the endpoint health queries read by it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# As in the model: the claim's queries state it in these words, so the planners can use it.
WAITING = "status IN ('pending', 'delivering')"


def upgrade() -> None:
    # Nullable until the existing rows have their value, then required.
    with op.batch_alter_table("webhook_deliveries") as batch_op:
        batch_op.add_column(sa.Column("position", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE webhook_deliveries SET position = (SELECT webhook_events.position"
        " FROM webhook_events WHERE webhook_events.id = webhook_deliveries.event_id)"
    )
    with op.batch_alter_table("webhook_deliveries") as batch_op:
        batch_op.alter_column("position", existing_type=sa.BigInteger(), nullable=False)
    op.create_index(
        "ix_webhook_deliveries_waiting_order",
        "webhook_deliveries",
        ["waba_id", "target_url", "position"],
        sqlite_where=sa.text(WAITING),
        postgresql_where=sa.text(WAITING),
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_waiting_order", table_name="webhook_deliveries")
    with op.batch_alter_table("webhook_deliveries") as batch_op:
        batch_op.drop_column("position")
