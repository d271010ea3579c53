"""feedback bands: deleted with their item by one statement, not checked row by row

Revision ID: 5c2d8e4f6a17
Revises: 7b3c2e9d4f10
Create Date: 2026-12-05 03:00:00.000000

On PostgreSQL the two foreign keys of `feedback_bands` checked every inserted row (16 per
item): two thirds of the time of writing a feedback call's band index. They go; an item's
band rows are deleted with it by a statement-level trigger, which also covers the
cascades from a customer or a tenant (they delete the feedback rows). SQLite keeps its
foreign keys and their cascade (docs/decisions/0063).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "5c2d8e4f6a17"
down_revision: str | None = "7b3c2e9d4f10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE feedback_bands DROP CONSTRAINT fk_feedback_bands_tenant_id_tenants")
    op.execute("ALTER TABLE feedback_bands DROP CONSTRAINT fk_feedback_bands_feedback_id_feedback")
    # The bands of deleted items go whatever tenant the deleting session names: a cascade
    # from a tenant runs outside any. The SET clause holds only while the function runs.
    op.execute(
        """
        CREATE FUNCTION feedback_bands_of_deleted() RETURNS trigger
        LANGUAGE plpgsql SET app.bypass_rls = 'on' AS $$
        BEGIN
            DELETE FROM public.feedback_bands
             WHERE feedback_id IN (SELECT id FROM deleted_feedback);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER feedback_bands_follow AFTER DELETE ON feedback"
        " REFERENCING OLD TABLE AS deleted_feedback"
        " FOR EACH STATEMENT EXECUTE FUNCTION feedback_bands_of_deleted()"
    )


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER feedback_bands_follow ON feedback")
    op.execute("DROP FUNCTION feedback_bands_of_deleted()")
    op.execute(
        "DELETE FROM feedback_bands b"
        " WHERE NOT EXISTS (SELECT 1 FROM feedback f WHERE f.id = b.feedback_id)"
    )
    op.execute(
        "ALTER TABLE feedback_bands ADD CONSTRAINT fk_feedback_bands_feedback_id_feedback"
        " FOREIGN KEY (feedback_id) REFERENCES feedback (id) ON DELETE CASCADE"
    )
    op.execute(
        "ALTER TABLE feedback_bands ADD CONSTRAINT fk_feedback_bands_tenant_id_tenants"
        " FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE"
    )
