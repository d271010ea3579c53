"""redundant tenant indexes: events and audit_logs lose the index on tenant_id alone

Revision ID: b7e2d4f91c05
Revises: a4e9c1d27f38
Create Date: 2026-12-05 06:00:00.000000

Every read of either table names the tenant and is served by an index that starts with
it (`ix_events_tenant_seq`, `uq_audit_logs_tenant_id_seq`, ...); the index on the tenant
alone only cost every insert (and every sealing update) one more entry.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "b7e2d4f91c05"
down_revision: str | None = "a4e9c1d27f38"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_events_tenant_id", table_name="events")
    op.drop_index("ix_audit_logs_tenant_id", table_name="audit_logs")


def downgrade() -> None:
    op.create_index("ix_audit_logs_tenant_id", "audit_logs", ["tenant_id"])
    op.create_index("ix_events_tenant_id", "events", ["tenant_id"])
