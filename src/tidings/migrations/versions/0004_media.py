"""media: core attachments (ciphertext by id) and business media records

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 09:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tidings.db.base

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attachments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("uploader_device_pk", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("blob_key", sa.String(length=200), nullable=False),
        sa.Column("created_at", tidings.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", tidings.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
    )
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.create_index("ix_attachments_expires_at", ["expires_at"], unique=False)

    op.create_table(
        "business_media",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("media_id", sa.String(length=32), nullable=False),
        sa.Column("phone_id", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=8), nullable=False),
        sa.Column("mime_type", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("file_size", sa.BigInteger(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("blob_key", sa.String(length=200), nullable=False),
        sa.Column("created_at", tidings.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", tidings.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["phone_id"],
            ["business_phones.id"],
            name=op.f("fk_business_media_phone_id_business_phones"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_business_media")),
        sa.UniqueConstraint("media_id", name=op.f("uq_business_media_media_id")),
    )
    with op.batch_alter_table("business_media", schema=None) as batch_op:
        batch_op.create_index("ix_business_media_expires_at", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("business_media", schema=None) as batch_op:
        batch_op.drop_index("ix_business_media_expires_at")
    op.drop_table("business_media")
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.drop_index("ix_attachments_expires_at")
    op.drop_table("attachments")
