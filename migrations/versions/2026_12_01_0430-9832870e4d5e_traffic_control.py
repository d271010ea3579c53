"""traffic control: per-key and per-tenant rate limits, usage metering

Revision ID: 9832870e4d5e
Revises: d4e6a8b0c2f1
Create Date: 2026-11-23 10:00:00.000000

`api_keys` gains the key's own limits per minute, hour and day; `tenants` gains
`rate_limits`, the platform's overrides of the plan's limits. `usage_records` (per minute)
and `usage_daily` (rolled up) hold the metered requests, tenant-owned with the usual forced
policy.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "9832870e4d5e"
down_revision: str | None = "d4e6a8b0c2f1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As on every tenant table (c9f41a995268).
TENANT_POLICY = (
    "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')"
    " OR current_setting('app.bypass_rls', true) = 'on'"
)
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _usage_table(name: str, period: str) -> None:
    op.create_table(
        name,
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column(period, sa.Integer(), nullable=False),
        sa.Column("principal_type", sa.String(length=10), nullable=False),
        sa.Column("principal_id", sa.String(length=40), nullable=False),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("latency_bucket", sa.SmallInteger(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("request_bytes", sa.BigInteger(), nullable=False),
        sa.Column("response_bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f(f"fk_{name}_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
    )
    with op.batch_alter_table(name, schema=None) as batch_op:
        batch_op.create_index(f"ix_{name}_tenant_{period}", ["tenant_id", period], unique=False)
        batch_op.create_index(
            f"ix_{name}_tenant_principal_{period}",
            ["tenant_id", "principal_id", period],
            unique=False,
        )
        batch_op.create_index(f"ix_{name}_{period}", [period], unique=False)
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {name} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {name} USING ({TENANT_POLICY})"
            f" WITH CHECK ({TENANT_POLICY})"
        )


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rate_limit_per_minute", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("rate_limit_per_hour", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("rate_limit_per_day", sa.Integer(), nullable=True))
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("rate_limits", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=True)
        )
    _usage_table("usage_records", "minute")
    _usage_table("usage_daily", "day")


def downgrade() -> None:
    op.drop_table("usage_daily")
    op.drop_table("usage_records")
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("rate_limits")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("rate_limit_per_day")
        batch_op.drop_column("rate_limit_per_hour")
        batch_op.drop_column("rate_limit_per_minute")
