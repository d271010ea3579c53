"""feedback bands: the near-duplicate index

Revision ID: 7b3c2e9d4f10
Revises: d3f1a7c9e2b4
Create Date: 2026-12-05 00:00:00.000000

`feedback_bands` holds the LSH band keys of each item's text (custos.feedback.dedup), so
a new item's near-duplicate candidates are found by index, not by comparing it against
every earlier item (docs/decisions/0060). Existing feedback is indexed here.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7b3c2e9d4f10"
down_revision: str | None = "d3f1a7c9e2b4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As on every tenant table (c9f41a995268).
TENANT_POLICY = (
    "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')"
    " OR current_setting('app.bypass_rls', true) = 'on'"
)


def upgrade() -> None:
    op.create_table(
        "feedback_bands",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("band", sa.BigInteger(), nullable=False),
        sa.Column("feedback_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["feedback_id"],
            ["feedback.id"],
            name=op.f("fk_feedback_bands_feedback_id_feedback"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_feedback_bands_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "band", "feedback_id", name=op.f("pk_feedback_bands")),
    )
    with op.batch_alter_table("feedback_bands", schema=None) as batch_op:
        # The cascade from a deleted item looks its rows up by this.
        batch_op.create_index("ix_feedback_bands_feedback_id", ["feedback_id"], unique=False)
    postgres = op.get_context().dialect.name == "postgresql"
    if postgres:
        op.execute("ALTER TABLE feedback_bands ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE feedback_bands FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON feedback_bands USING ({TENANT_POLICY})"
            f" WITH CHECK ({TENANT_POLICY})"
        )
        op.execute("SET LOCAL app.bypass_rls = 'on'")
    _index_existing()


def _index_existing() -> None:
    # The algorithm is the application's: band keys must be the ones ingest computes.
    from custos.feedback import dedup

    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, tenant_id, customer_id, content FROM feedback"))
    batch: list[dict[str, object]] = []
    insert = sa.text(
        "INSERT INTO feedback_bands (tenant_id, band, feedback_id) VALUES (:t, :b, :f)"
    )
    for feedback_id, tenant_id, customer_id, content in rows.all():
        _, bins = dedup.fingerprint(dedup.normalise(content))
        batch.extend(
            {"t": tenant_id, "b": key, "f": feedback_id}
            for key in set(dedup.band_keys(bins, customer_id))
        )
        if len(batch) >= 10_000:
            conn.execute(insert, batch)
            batch = []
    if batch:
        conn.execute(insert, batch)


def downgrade() -> None:
    with op.batch_alter_table("feedback_bands", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_bands_feedback_id")
    op.drop_table("feedback_bands")
