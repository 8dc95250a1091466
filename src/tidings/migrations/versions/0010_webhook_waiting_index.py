"""webhook deliveries: index the in-order check by status

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25 14:40:00.000000

`claim_due` asks, for each due delivery, whether an earlier delivery to the same target is
still waiting. Indexed by (waba_id, target_url) alone, that walks every delivery ever made to
the target; with status in the key it reads only the waiting ones.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_webhook_deliveries_target", table_name="webhook_deliveries")
    op.create_index(
        "ix_webhook_deliveries_target_waiting",
        "webhook_deliveries",
        ["waba_id", "target_url", "status"],
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_target_waiting", table_name="webhook_deliveries")
    op.create_index("ix_webhook_deliveries_target", "webhook_deliveries", ["waba_id", "target_url"])
