"""audit sealing

Revision ID: c9e5a13b7d42
Revises: b8d4f02a6c31
Create Date: 2026-11-22 08:30:00.184864
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c9e5a13b7d42"
down_revision: str | None = "b8d4f02a6c31"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_logs", schema=None) as batch_op:
        batch_op.alter_column("seq", existing_type=sa.BIGINT(), nullable=True)
        batch_op.alter_column("prev_hash", existing_type=sa.VARCHAR(length=64), nullable=True)
        batch_op.alter_column("hash", existing_type=sa.VARCHAR(length=64), nullable=True)
        batch_op.create_index(
            "ix_audit_logs_unsealed",
            ["tenant_id", "occurred_at"],
            unique=False,
            sqlite_where=sa.text("seq IS NULL"),
            postgresql_where=sa.text("seq IS NULL"),
        )
    if op.get_context().dialect.name == "postgresql":
        # The runtime role may set the chain columns (custos migrate grants it that much)
        # of a row not yet sealed; a sealed row is final, for every role.
        op.execute(
            """
            CREATE FUNCTION audit_logs_sealed_rows_are_final() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
              IF OLD.seq IS NOT NULL THEN
                RAISE EXCEPTION 'audit row % is sealed and cannot change', OLD.id
                  USING ERRCODE = 'insufficient_privilege';
              END IF;
              RETURN NEW;
            END $$
            """
        )
        op.execute(
            "CREATE TRIGGER audit_logs_sealed_rows_are_final BEFORE UPDATE ON audit_logs"
            " FOR EACH ROW EXECUTE FUNCTION audit_logs_sealed_rows_are_final()"
        )


def downgrade() -> None:
    # Every row must be sealed first (`custos seal-audit`): the columns become NOT NULL again.
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_logs_sealed_rows_are_final ON audit_logs")
        op.execute("DROP FUNCTION IF EXISTS audit_logs_sealed_rows_are_final()")
    with op.batch_alter_table("audit_logs", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_audit_logs_unsealed",
            sqlite_where=sa.text("seq IS NULL"),
            postgresql_where=sa.text("seq IS NULL"),
        )
        batch_op.alter_column("hash", existing_type=sa.VARCHAR(length=64), nullable=False)
        batch_op.alter_column("prev_hash", existing_type=sa.VARCHAR(length=64), nullable=False)
        batch_op.alter_column("seq", existing_type=sa.BIGINT(), nullable=False)
