"""event outbox: committed events reach their dispatch jobs through a table of our own

Revision ID: a4e9c1d27f38
Revises: 8d1e5f3a7b62
Create Date: 2026-12-05 05:00:00.000000

A transaction that writes events adds a row here instead of a procrastinate job; workers
turn the rows into `events.dispatch` jobs (docs/decisions/0068). Created on both
databases for one schema; only PostgreSQL uses it. Dispatch jobs queued before this
revision run as they were.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "a4e9c1d27f38"
down_revision: str | None = "8d1e5f3a7b62"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_POLICY = (
    "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')"
    " OR current_setting('app.bypass_rls', true) = 'on'"
)


def upgrade() -> None:
    op.create_table(
        "event_outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column(
            "event_ids", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column(
            "queued_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_outbox")),
    )
    if op.get_context().dialect.name == "postgresql":
        # A writer adds rows for its own tenant only; workers move them as the system.
        op.execute("ALTER TABLE event_outbox ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE event_outbox FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON event_outbox USING ({TENANT_POLICY})"
            f" WITH CHECK ({TENANT_POLICY})"
        )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        # Rows not yet turned into jobs become jobs, one per row, as the old code wrote.
        op.execute("SET LOCAL app.bypass_rls = 'on'")
        op.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, priority, args)"
            " SELECT 'default', 'events.dispatch', 0,"
            " jsonb_build_object('tenant_id', tenant_id, 'event_ids', event_ids)"
            " FROM event_outbox ORDER BY id"
        )
    op.drop_table("event_outbox")
