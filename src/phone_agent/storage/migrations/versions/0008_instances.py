"""process instances and heartbeats; calls' holder and stream claim; admin login throttle

``instances``: one row per running process (heartbeat), so calls held by a crashed one can be
closed. ``calls``: ``instance_id`` (the holder), ``stream_started_at`` (the one stream that
claimed the call) and ``stream_token_expires`` (the token minted for it, re-minted identically for
a retried webhook). ``login_throttle``: admin login attempts counted atomically per client address
and for the account.

Revision ID: 0008_instances
Revises: 0005_admin
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_instances"
down_revision = "0007_turn_seq_unique"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instances",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_instances_heartbeat_at"), ["heartbeat_at"], unique=False)
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stream_token_expires", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("stream_started_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("instance_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_calls_instance_id"), ["instance_id"], unique=False)
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_allowed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("login_throttle")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calls_instance_id"))
        batch_op.drop_column("instance_id")
        batch_op.drop_column("stream_started_at")
        batch_op.drop_column("stream_token_expires")
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instances_heartbeat_at"))
    op.drop_table("instances")
