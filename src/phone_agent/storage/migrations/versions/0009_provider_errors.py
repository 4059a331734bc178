"""owner notification quotas; provider errors and each provider's latest status

``notify_quota``: owner notifications sent per key in the current hour (shared by every worker).
``provider_errors``: one row per provider failure (provider, kind, detail without secrets, call).
``provider_status``: each provider's last OK and last error, for the admin page of any worker.

Revision ID: 0009_provider_errors
Revises: 0011_call_recordings
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_provider_errors"
down_revision = "0011_call_recordings"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notify_quota",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "provider_errors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("call_sid", sa.String(length=64), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("provider_errors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_provider_errors_at"), ["at"], unique=False)
        batch_op.create_index("ix_provider_errors_provider_at", ["provider", "at"], unique=False)
    op.create_table(
        "provider_status",
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("last_ok_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_kind", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("provider"),
    )


def downgrade() -> None:
    op.drop_table("provider_status")
    with op.batch_alter_table("provider_errors", schema=None) as batch_op:
        batch_op.drop_index("ix_provider_errors_provider_at")
        batch_op.drop_index(batch_op.f("ix_provider_errors_at"))
    op.drop_table("provider_errors")
    op.drop_table("notify_quota")
