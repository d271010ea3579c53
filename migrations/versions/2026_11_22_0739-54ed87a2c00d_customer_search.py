"""customer search: a search_text column, trigram-indexed on PostgreSQL

Revision ID: 54ed87a2c00d
Revises: cf572a18d151
Create Date: 2026-11-22 07:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "54ed87a2c00d"
down_revision: str | None = "cf572a18d151"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch_op:
        batch_op.add_column(sa.Column("search_text", sa.Text(), nullable=False, server_default=""))
    # Existing rows: name, email and company (phone digits arrive with their next write).
    op.execute(
        "UPDATE customers SET search_text = lower(full_name || ' ' || coalesce(email, '')"
        " || ' ' || coalesce(company, ''))"
    )
    if op.get_context().dialect.name == "postgresql":
        # pg_trgm is a trusted extension: the database owner may create it.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            "CREATE INDEX ix_customers_search_text_trgm ON customers"
            " USING gin (search_text gin_trgm_ops)"
        )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_customers_search_text_trgm")
    with op.batch_alter_table("customers") as batch_op:
        batch_op.drop_column("search_text")
