"""call routing rules; the rule that fired, routing events and tags on the call

``routing_rules``: ordered rules (conditions + action as JSON, checked by ``brain.routing.rules``).
``calls``: ``routing_rule`` (name of the last rule that fired), ``routing_events`` (every rule that
fired, where and why) and ``tags`` (labels given by tag rules).

Revision ID: 0012_routing
Revises: 0009_provider_errors
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_routing"
down_revision = "0009_provider_errors"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "routing_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("conditions", sa.JSON(), nullable=False),
        sa.Column("action", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("routing_rules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_routing_rules_position"), ["position"], unique=False)
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("routing_rule", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("routing_events", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("tags", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("tags")
        batch_op.drop_column("routing_events")
        batch_op.drop_column("routing_rule")
    with op.batch_alter_table("routing_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_routing_rules_position"))
    op.drop_table("routing_rules")
