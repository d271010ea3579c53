"""customers

Revision ID: b01a8e7cb5fd
Revises: 077ac4521b5e
Create Date: 2026-11-22 07:22:27.741362
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "b01a8e7cb5fd"
down_revision: str | None = "077ac4521b5e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("phone_e164", sa.String(length=20), nullable=True),
        sa.Column("company", sa.String(length=200), nullable=True),
        sa.Column("address", JSON, nullable=True),
        sa.Column("customer_type", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("order_count", sa.Integer(), nullable=False),
        sa.Column("total_order_value", sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("complaint_count", sa.Integer(), nullable=False),
        sa.Column("last_order_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_customers_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
    )
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_customers_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index(
            "ix_customers_tenant_phone_e164", ["tenant_id", "phone_e164"], unique=False
        )
        batch_op.create_index(
            "uq_customers_tenant_email_live",
            ["tenant_id", "email"],
            unique=True,
            sqlite_where=sa.text("deleted_at IS NULL AND email IS NOT NULL"),
            postgresql_where=sa.text("deleted_at IS NULL AND email IS NOT NULL"),
        )
        batch_op.create_index(
            "uq_customers_tenant_external_id",
            ["tenant_id", "external_id"],
            unique=True,
            sqlite_where=sa.text("external_id IS NOT NULL"),
            postgresql_where=sa.text("external_id IS NOT NULL"),
        )

    if op.get_context().dialect.name == "postgresql":
        # As for every tenant table: the second wall behind scoped repositories.
        predicate = (
            "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')"
            " OR current_setting('app.bypass_rls', true) = 'on'"
        )
        op.execute("ALTER TABLE customers ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE customers FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON customers USING ({predicate})"
            f" WITH CHECK ({predicate})"
        )


def downgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_customers_tenant_external_id",
            sqlite_where=sa.text("external_id IS NOT NULL"),
            postgresql_where=sa.text("external_id IS NOT NULL"),
        )
        batch_op.drop_index(
            "uq_customers_tenant_email_live",
            sqlite_where=sa.text("deleted_at IS NULL AND email IS NOT NULL"),
            postgresql_where=sa.text("deleted_at IS NULL AND email IS NOT NULL"),
        )
        batch_op.drop_index("ix_customers_tenant_phone_e164")
        batch_op.drop_index(batch_op.f("ix_customers_tenant_id"))

    op.drop_table("customers")
