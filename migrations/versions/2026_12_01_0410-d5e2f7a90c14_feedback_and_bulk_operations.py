"""feedback and bulk operations

Revision ID: d5e2f7a90c14
Revises: e1dd525e7799
Create Date: 2026-12-01 03:41:39.393796

`feedback` (sentiment, content hash and MinHash sketch for duplicate detection),
`bulk_operations` (imports and exports with their checkpoint and lease) and
`bulk_operation_errors` (the rejected rows), each with the usual forced tenant policy.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "d5e2f7a90c14"
down_revision: str | None = "e1dd525e7799"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# As on every tenant table (c9f41a995268).
TENANT_POLICY = (
    "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')"
    " OR current_setting('app.bypass_rls', true) = 'on'"
)


def upgrade() -> None:
    op.create_table(
        "bulk_operations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("resource", sa.String(length=20), nullable=False),
        sa.Column("format", sa.String(length=10), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("options", JSON, nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=True),
        sa.Column("source_key", sa.String(length=255), nullable=True),
        sa.Column("result_key", sa.String(length=255), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("total_rows", sa.Integer(), nullable=True),
        sa.Column("checkpoint", sa.Integer(), nullable=False),
        sa.Column("rows_processed", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(length=80), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("actor_type", sa.String(length=20), nullable=False),
        sa.Column("actor_id", sa.String(length=40), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_bulk_operations_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_operations")),
    )
    with op.batch_alter_table("bulk_operations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_bulk_operations_status_lease", ["status", "lease_expires_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_bulk_operations_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "bulk_operation_errors",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("operation_id", sa.String(length=40), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=100), nullable=True),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["bulk_operations.id"],
            name=op.f("fk_bulk_operation_errors_operation_id_bulk_operations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_bulk_operation_errors_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_operation_errors")),
    )
    with op.batch_alter_table("bulk_operation_errors", schema=None) as batch_op:
        batch_op.create_index(
            "ix_bulk_operation_errors_operation_row", ["operation_id", "row"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_bulk_operation_errors_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "feedback",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=True),
        sa.Column("feedback_type", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("rating", sa.SmallInteger(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sentiment_score", sa.Float(), nullable=False),
        sa.Column("sentiment_label", sa.String(length=10), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("sketch", sa.Text(), nullable=False),
        sa.Column("duplicate_of_id", sa.String(length=40), nullable=True),
        sa.Column("duplicate_kind", sa.String(length=10), nullable=True),
        sa.Column("similarity", sa.Float(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_feedback_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["duplicate_of_id"],
            ["feedback.id"],
            name=op.f("fk_feedback_duplicate_of_id_feedback"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_feedback_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index(
            "ix_feedback_tenant_customer_received",
            ["tenant_id", "customer_id", "received_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_feedback_tenant_hash", ["tenant_id", "content_hash"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_feedback_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index(
            "ix_feedback_tenant_received", ["tenant_id", "received_at"], unique=False
        )
        batch_op.create_index("ix_feedback_tenant_status", ["tenant_id", "status"], unique=False)

    if op.get_context().dialect.name == "postgresql":
        for table in ("feedback", "bulk_operations", "bulk_operation_errors"):
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(
                f"CREATE POLICY tenant_isolation ON {table} USING ({TENANT_POLICY})"
                f" WITH CHECK ({TENANT_POLICY})"
            )


def downgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_tenant_status")
        batch_op.drop_index("ix_feedback_tenant_received")
        batch_op.drop_index(batch_op.f("ix_feedback_tenant_id"))
        batch_op.drop_index("ix_feedback_tenant_hash")
        batch_op.drop_index("ix_feedback_tenant_customer_received")

    op.drop_table("feedback")
    with op.batch_alter_table("bulk_operation_errors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bulk_operation_errors_tenant_id"))
        batch_op.drop_index("ix_bulk_operation_errors_operation_row")

    op.drop_table("bulk_operation_errors")
    with op.batch_alter_table("bulk_operations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bulk_operations_tenant_id"))
        batch_op.drop_index("ix_bulk_operations_status_lease")

    op.drop_table("bulk_operations")
