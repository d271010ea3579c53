"""feedback write path: band rows keyed by item, looked up by (tenant, band)

Revision ID: d5a7c3e9f1b8
Revises: c3f8a1e6d2b4
Create Date: 2026-12-05 08:00:00.000000

A feedback call writes 16 band rows per item and looks up as many keys; both were most of
its database time. The primary key was (tenant_id, band, feedback_id): each new row went
to a random place of an index of wide keys, and a second index on feedback_id found an
item's rows when it was deleted. Now the primary key is (feedback_id, band): ids grow
with time, so new rows go at the end of that index, and it finds an item's rows for the
delete trigger (or the cascade on SQLite); look-ups go through (tenant_id, band), which
no longer carries the id. (An index on the band alone was smaller still, but a plan made
without the values, as a prepared statement's is, then scanned the whole table on a
small one.)

Also `ix_feedback_tenant_id`: every other index of `feedback` starts with the tenant.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "d5a7c3e9f1b8"
down_revision: str | None = "c3f8a1e6d2b4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_feedback_tenant_id", table_name="feedback")
    if op.get_context().dialect.name == "postgresql":
        op.execute("ALTER TABLE feedback_bands DROP CONSTRAINT pk_feedback_bands")
        op.execute(
            "ALTER TABLE feedback_bands ADD CONSTRAINT pk_feedback_bands"
            " PRIMARY KEY (feedback_id, band)"
        )
        op.execute("DROP INDEX ix_feedback_bands_feedback_id")
        op.execute("CREATE INDEX ix_feedback_bands_tenant_band ON feedback_bands (tenant_id, band)")
        return
    _rebuild_sqlite_bands(
        ("feedback_id", "band"), "ix_feedback_bands_tenant_band", "tenant_id, band"
    )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_feedback_bands_tenant_band")
        op.execute("CREATE INDEX ix_feedback_bands_feedback_id ON feedback_bands (feedback_id)")
        op.execute("ALTER TABLE feedback_bands DROP CONSTRAINT pk_feedback_bands")
        op.execute(
            "ALTER TABLE feedback_bands ADD CONSTRAINT pk_feedback_bands"
            " PRIMARY KEY (tenant_id, band, feedback_id)"
        )
    else:
        _rebuild_sqlite_bands(
            ("tenant_id", "band", "feedback_id"), "ix_feedback_bands_feedback_id", "feedback_id"
        )
    op.create_index("ix_feedback_tenant_id", "feedback", ["tenant_id"])


def _rebuild_sqlite_bands(key: tuple[str, ...], index: str, indexed: str) -> None:
    """SQLite cannot change a primary key: the table is made again with the same columns
    and foreign keys (nothing refers to it)."""
    op.execute(
        f"""
        CREATE TABLE feedback_bands_new (
            tenant_id VARCHAR(40) NOT NULL,
            band BIGINT NOT NULL,
            feedback_id VARCHAR(40) NOT NULL,
            CONSTRAINT pk_feedback_bands PRIMARY KEY ({", ".join(key)}),
            CONSTRAINT fk_feedback_bands_feedback_id_feedback FOREIGN KEY (feedback_id)
                REFERENCES feedback (id) ON DELETE CASCADE,
            CONSTRAINT fk_feedback_bands_tenant_id_tenants FOREIGN KEY (tenant_id)
                REFERENCES tenants (id) ON DELETE CASCADE
        )
        """
    )
    op.execute(
        "INSERT INTO feedback_bands_new (tenant_id, band, feedback_id)"
        " SELECT tenant_id, band, feedback_id FROM feedback_bands"
    )
    op.execute("DROP TABLE feedback_bands")
    op.execute("ALTER TABLE feedback_bands_new RENAME TO feedback_bands")
    op.execute(f"CREATE INDEX {index} ON feedback_bands ({indexed})")
