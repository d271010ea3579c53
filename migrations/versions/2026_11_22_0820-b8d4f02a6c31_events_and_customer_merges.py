"""events and customer merges

Revision ID: b8d4f02a6c31
Revises: a7c3e91f5b20
Create Date: 2026-11-22 08:20:21.280732
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "b8d4f02a6c31"
down_revision: str | None = "a7c3e91f5b20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("schema_version", sa.SmallInteger(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_type", sa.String(length=20), nullable=False),
        sa.Column("actor_id", sa.String(length=40), nullable=True),
        sa.Column("subject_type", sa.String(length=40), nullable=True),
        sa.Column("subject_id", sa.String(length=40), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_events_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_events")),
        sa.UniqueConstraint("id", name=op.f("uq_events_id")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index("ix_events_tenant_seq", ["tenant_id", "seq"], unique=False)
        batch_op.create_index(
            "ix_events_tenant_subject", ["tenant_id", "subject_type", "subject_id"], unique=False
        )
        batch_op.create_index(
            "ix_events_tenant_type_seq", ["tenant_id", "type", "seq"], unique=False
        )

    op.create_table(
        "customer_merges",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("primary_id", sa.String(length=40), nullable=False),
        sa.Column("secondary_id", sa.String(length=40), nullable=False),
        sa.Column("actor_type", sa.String(length=20), nullable=False),
        sa.Column("actor_id", sa.String(length=40), nullable=True),
        sa.Column("choices", JSON, nullable=False),
        sa.Column("snapshot", JSON, nullable=False),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("undone_by", sa.String(length=40), nullable=True),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["primary_id"],
            ["customers.id"],
            name=op.f("fk_customer_merges_primary_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["secondary_id"],
            ["customers.id"],
            name=op.f("fk_customer_merges_secondary_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_customer_merges_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_merges")),
    )
    with op.batch_alter_table("customer_merges", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_customer_merges_primary_id"), ["primary_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_customer_merges_secondary_id"), ["secondary_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_customer_merges_tenant_id"), ["tenant_id"], unique=False
        )

    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("merged_into_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("email_key", sa.String(length=320), nullable=True))
        batch_op.create_index(
            "ix_customers_tenant_email_key", ["tenant_id", "email_key"], unique=False
        )
    _backfill_email_keys()

    if op.get_context().dialect.name == "postgresql":
        predicate = (
            "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')"
            " OR current_setting('app.bypass_rls', true) = 'on'"
        )
        for table in ("events", "customer_merges"):
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(
                f"CREATE POLICY tenant_isolation ON {table} USING ({predicate})"
                f" WITH CHECK ({predicate})"
            )


# A frozen copy of custos.customer.duplicates.email_key as it was when this ran.
_DOTLESS = {"gmail.com", "googlemail.com"}


def _email_key(email: str) -> str:
    local, _, domain = email.lower().rpartition("@")
    local = local.split("+", 1)[0]
    if domain in _DOTLESS:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def _backfill_email_keys() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        # The owner may be subject to the FORCE'd policies; a migration sees every tenant.
        conn.execute(sa.text("SELECT set_config('app.bypass_rls', 'on', true)"))
    rows = conn.execute(sa.text("SELECT id, email FROM customers WHERE email IS NOT NULL"))
    updates = [{"id": row.id, "key": _email_key(row.email)} for row in rows]
    if updates:
        conn.execute(sa.text("UPDATE customers SET email_key = :key WHERE id = :id"), updates)


def downgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index("ix_customers_tenant_email_key")
        batch_op.drop_column("email_key")
        batch_op.drop_column("merged_into_id")

    with op.batch_alter_table("customer_merges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_merges_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_customer_merges_secondary_id"))
        batch_op.drop_index(batch_op.f("ix_customer_merges_primary_id"))

    op.drop_table("customer_merges")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_tenant_type_seq")
        batch_op.drop_index("ix_events_tenant_subject")
        batch_op.drop_index("ix_events_tenant_seq")
        batch_op.drop_index(batch_op.f("ix_events_tenant_id"))

    op.drop_table("events")
