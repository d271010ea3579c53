"""customer write path: no index on tenant_id alone; the search rows follow deletes by trigger

Revision ID: c3f8a1e6d2b4
Revises: b7e2d4f91c05
Create Date: 2026-12-05 07:00:00.000000

Both cost every new customer, and a bulk import most of all:
- `ix_customers_tenant_id`: every other index of `customers` but the primary key starts
  with the tenant, and `ix_customers_tenant_phone_e164` and `ix_customers_tenant_email_key`
  cover every row, so reads by tenant alone lose nothing.
- PostgreSQL: `customer_search`'s foreign key to `customers` checked each new search row
  (the insert trigger writes one per customer) with a look-up and a row lock of the
  customer it was written for: a twentieth of a bulk import's database time, measured.
  Its one use, removing the search row with its customer (ON DELETE CASCADE; the id never
  changes), is a statement-level delete trigger now, as the insert is.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "c3f8a1e6d2b4"
down_revision: str | None = "b7e2d4f91c05"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POSTGRES_UPGRADE = [
    # Runs as the writer, as the insert and update triggers do: the tenant policy applies.
    """
    CREATE FUNCTION customer_search_deleted() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        DELETE FROM public.customer_search AS search
        USING deleted_customers AS deleted
        WHERE search.customer_id = deleted.id;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER customer_search_delete AFTER DELETE ON customers
    REFERENCING OLD TABLE AS deleted_customers
    FOR EACH STATEMENT EXECUTE FUNCTION customer_search_deleted()
    """,
    "ALTER TABLE customer_search DROP CONSTRAINT customer_search_customer_id_fkey",
]

POSTGRES_DOWNGRADE = [
    # Search rows whose customer is gone would refuse the constraint (of every tenant).
    "SET LOCAL app.bypass_rls = 'on'",
    "DELETE FROM customer_search AS search WHERE NOT EXISTS"
    " (SELECT 1 FROM customers WHERE customers.id = search.customer_id)",
    "ALTER TABLE customer_search ADD CONSTRAINT customer_search_customer_id_fkey"
    " FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE ON UPDATE CASCADE",
    "DROP TRIGGER customer_search_delete ON customers",
    "DROP FUNCTION customer_search_deleted()",
]


def upgrade() -> None:
    op.drop_index("ix_customers_tenant_id", table_name="customers")
    if op.get_context().dialect.name == "postgresql":
        for statement in POSTGRES_UPGRADE:
            op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for statement in POSTGRES_DOWNGRADE:
            op.execute(statement)
    op.create_index("ix_customers_tenant_id", "customers", ["tenant_id"])
