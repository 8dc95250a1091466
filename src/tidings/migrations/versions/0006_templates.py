"""templates: message templates and every submitted version of them

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 10:57:53.118240
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tidings.db.base

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "message_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.String(length=32), nullable=False),
        sa.Column("business_id", sa.Integer(), nullable=False),
        sa.Column("waba_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("previous_category", sa.String(length=32), nullable=True),
        sa.Column("correct_category", sa.String(length=32), nullable=True),
        sa.Column("parameter_format", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("rejected_reason", sa.String(length=32), nullable=False),
        sa.Column("components", sa.Text(), nullable=False),
        sa.Column("options", sa.Text(), nullable=False),
        sa.Column("review", sa.Text(), nullable=False),
        sa.Column("needs_human_review", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("approved_version", sa.Integer(), nullable=True),
        sa.Column("quality_score", sa.String(length=16), nullable=False),
        sa.Column("quality_updated_at", tidings.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("pause_count", sa.Integer(), nullable=False),
        sa.Column("paused_until", tidings.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", tidings.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tidings.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", tidings.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_message_templates_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_templates")),
        sa.UniqueConstraint("template_id", name=op.f("uq_message_templates_template_id")),
    )
    with op.batch_alter_table("message_templates", schema=None) as batch_op:
        batch_op.create_index(
            "ix_message_templates_business_created", ["business_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_message_templates_live_name",
            ["business_id", "name", "language"],
            unique=True,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.create_index(
            "ix_message_templates_review_queue", ["needs_human_review", "status"], unique=False
        )

    op.create_table(
        "message_template_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("template_pk", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("parameter_format", sa.String(length=16), nullable=False),
        sa.Column("components", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("edited_from", sa.String(length=24), nullable=True),
        sa.Column("review", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("submitted_at", tidings.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", tidings.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["template_pk"],
            ["message_templates.id"],
            name=op.f("fk_message_template_versions_template_pk_message_templates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_template_versions")),
        sa.UniqueConstraint(
            "template_pk", "version", name=op.f("uq_message_template_versions_template_pk_version")
        ),
    )


def downgrade() -> None:
    op.drop_table("message_template_versions")
    with op.batch_alter_table("message_templates", schema=None) as batch_op:
        batch_op.drop_index("ix_message_templates_review_queue")
        batch_op.drop_index(
            "ix_message_templates_live_name",
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
        batch_op.drop_index("ix_message_templates_business_created")

    op.drop_table("message_templates")
