"""customer statistic increments

Revision ID: e518513031b6
Revises: 69b081a4964c
Create Date: 2026-11-22 07:31:17.499212
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e518513031b6"
down_revision: str | None = "69b081a4964c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_stat_increments",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("increment_id", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_stat_increments_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_customer_stat_increments_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_stat_increments")),
        sa.UniqueConstraint(
            "tenant_id",
            "increment_id",
            name=op.f("uq_customer_stat_increments_tenant_id_increment_id"),
        ),
    )
    with op.batch_alter_table("customer_stat_increments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_customer_stat_increments_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_customer_stat_increments_tenant_id"), ["tenant_id"], unique=False
        )

    if op.get_context().dialect.name == "postgresql":
        predicate = (
            "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')"
            " OR current_setting('app.bypass_rls', true) = 'on'"
        )
        op.execute("ALTER TABLE customer_stat_increments ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE customer_stat_increments FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON customer_stat_increments USING ({predicate})"
            f" WITH CHECK ({predicate})"
        )


def downgrade() -> None:
    with op.batch_alter_table("customer_stat_increments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_stat_increments_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_customer_stat_increments_customer_id"))

    op.drop_table("customer_stat_increments")
