"""limits and pricing: business tiers, customers reached, throughput levels, policy
counters, message charges

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 12:43:18.659941
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tidings.db.base

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_counters",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("tat_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_policy_counters")),
    )
    op.create_table(
        "business_limit_reaches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("business_id", sa.Integer(), nullable=False),
        sa.Column("customer", sa.String(length=32), nullable=False),
        sa.Column("reached_at", tidings.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_business_limit_reaches_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_business_limit_reaches")),
    )
    with op.batch_alter_table("business_limit_reaches", schema=None) as batch_op:
        batch_op.create_index(
            "ix_business_limit_reaches_business_at", ["business_id", "reached_at"], unique=False
        )
        batch_op.create_index(
            "ix_business_limit_reaches_customer",
            ["business_id", "customer", "reached_at"],
            unique=False,
        )

    op.create_table(
        "business_tiers",
        sa.Column("business_id", sa.Integer(), nullable=False),
        sa.Column("tier", sa.String(length=24), nullable=False),
        sa.Column("pending_tier", sa.String(length=24), nullable=True),
        sa.Column(
            "pending_effective_at", tidings.db.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("updated_at", tidings.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_business_tiers_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("business_id", name=op.f("pk_business_tiers")),
    )
    op.create_table(
        "business_phone_throughput",
        sa.Column("phone_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("updated_at", tidings.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["phone_id"],
            ["business_phones.id"],
            name=op.f("fk_business_phone_throughput_phone_id_business_phones"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("phone_id", name=op.f("pk_business_phone_throughput")),
    )
    op.create_table(
        "message_charges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("business_id", sa.Integer(), nullable=False),
        sa.Column("phone_id", sa.Integer(), nullable=False),
        sa.Column("wamid", sa.String(length=100), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("pricing_category", sa.String(length=40), nullable=False),
        sa.Column("pricing_type", sa.String(length=32), nullable=False),
        sa.Column("billable", sa.Boolean(), nullable=False),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("accepted_at", tidings.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", tidings.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_message_charges_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["phone_id"],
            ["business_phones.id"],
            name=op.f("fk_message_charges_phone_id_business_phones"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_charges")),
        sa.UniqueConstraint("wamid", name=op.f("uq_message_charges_wamid")),
    )
    with op.batch_alter_table("message_charges", schema=None) as batch_op:
        batch_op.create_index(
            "ix_message_charges_business_delivered", ["business_id", "delivered_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("message_charges", schema=None) as batch_op:
        batch_op.drop_index("ix_message_charges_business_delivered")

    op.drop_table("message_charges")
    op.drop_table("business_phone_throughput")
    op.drop_table("business_tiers")
    with op.batch_alter_table("business_limit_reaches", schema=None) as batch_op:
        batch_op.drop_index("ix_business_limit_reaches_customer")
        batch_op.drop_index("ix_business_limit_reaches_business_at")

    op.drop_table("business_limit_reaches")
    op.drop_table("policy_counters")
