"""customer notes

Revision ID: 69b081a4964c
Revises: b01a8e7cb5fd
Create Date: 2026-11-22 07:28:54.705181
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "69b081a4964c"
down_revision: str | None = "b01a8e7cb5fd"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_notes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("author_type", sa.String(length=20), nullable=False),
        sa.Column("author_id", sa.String(length=40), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_notes_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_customer_notes_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_notes")),
    )
    with op.batch_alter_table("customer_notes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_customer_notes_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_customer_notes_tenant_id"), ["tenant_id"], unique=False
        )

    if op.get_context().dialect.name == "postgresql":
        predicate = (
            "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')"
            " OR current_setting('app.bypass_rls', true) = 'on'"
        )
        op.execute("ALTER TABLE customer_notes ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE customer_notes FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON customer_notes USING ({predicate})"
            f" WITH CHECK ({predicate})"
        )


def downgrade() -> None:
    with op.batch_alter_table("customer_notes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_notes_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_customer_notes_customer_id"))

    op.drop_table("customer_notes")
