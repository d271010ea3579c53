"""customer full-text search: FTS5 on SQLite, tsvector + trigram on PostgreSQL

Revision ID: a7c3e91f5b20
Revises: 54ed87a2c00d
Create Date: 2026-11-22 09:00:00.000000

Both databases get a search index beside `customers`, kept in step with
`customers.search_text` by triggers (see docs/decisions/0009-customer-search.md).

PostgreSQL: `customer_search` (customer id, tenant, search text) with a pg_trgm GIN index and
the usual forced tenant policy, read through `customer_search_ids(query)`, a SECURITY DEFINER
function that filters the transaction's tenant (`app.tenant_id`) itself. The trigram index on
`customers.search_text` is dropped: under the forced row-level security policy the planner
never used it, because LIKE is not leakproof.

SQLite: `customer_search`, an FTS5 table with the trigram tokenizer, whose rowids come from
`customer_search_rowids` (a stable integer key per customer id: the implicit rowid of
`customers` may change on VACUUM).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "a7c3e91f5b20"
down_revision: str | None = "54ed87a2c00d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As on every tenant table (c9f41a995268).
TENANT_POLICY = (
    "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')"
    " OR current_setting('app.bypass_rls', true) = 'on'"
)

POSTGRES_UPGRADE = [
    """
    CREATE TABLE customer_search (
        customer_id varchar(40) PRIMARY KEY
            REFERENCES customers (id) ON DELETE CASCADE ON UPDATE CASCADE,
        tenant_id varchar(40) NOT NULL,
        search_text text NOT NULL
    )
    """,
    "CREATE INDEX ix_customer_search_trgm ON customer_search USING gin (search_text gin_trgm_ops)",
    # The tenant policy of every tenant table holds the runtime role (and, FORCE'd, the owner).
    "ALTER TABLE customer_search ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE customer_search FORCE ROW LEVEL SECURITY",
    f"CREATE POLICY tenant_isolation ON customer_search USING ({TENANT_POLICY})"
    f" WITH CHECK ({TENANT_POLICY})",
    # Reads by the owner (this migration's role) are unrestricted, so that inside
    # customer_search_ids(), which runs as the owner and filters the tenant itself, the
    # policy adds no security qual and the planner may use the trigram index: LIKE is not
    # leakproof, and under any qualifying policy it is only ever a filter after a full scan.
    "CREATE POLICY owner_reads ON customer_search FOR SELECT TO CURRENT_USER USING (true)",
    # Statement level with a transition table, so a COPY or a batch insert is one INSERT here.
    # The triggers run as the writer: the tenant policy checks what they write.
    """
    CREATE FUNCTION customer_search_inserted() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        INSERT INTO public.customer_search (customer_id, tenant_id, search_text)
        SELECT id, tenant_id, search_text FROM inserted_customers;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER customer_search_insert AFTER INSERT ON customers
    REFERENCING NEW TABLE AS inserted_customers
    FOR EACH STATEMENT EXECUTE FUNCTION customer_search_inserted()
    """,
    """
    CREATE FUNCTION customer_search_updated() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        UPDATE public.customer_search SET search_text = NEW.search_text
        WHERE customer_id = NEW.id;
        RETURN NULL;
    END
    $$
    """,
    # Row level with WHEN: updates that leave the text alone (statistics, status) cost nothing.
    """
    CREATE TRIGGER customer_search_update AFTER UPDATE OF search_text ON customers
    FOR EACH ROW WHEN (OLD.search_text IS DISTINCT FROM NEW.search_text)
    EXECUTE FUNCTION customer_search_updated()
    """,
    # The ids of the transaction's tenant's customers whose search text contains every
    # whitespace-separated word of `query`, literally (LIKE wildcards escaped). SECURITY
    # DEFINER for the policy above; the tenant check is here, so a caller learns nothing about
    # another tenant, and with no tenant set it finds nothing. Dynamic SQL (values quoted by
    # %L) so that each word is its own indexable condition.
    r"""
    CREATE FUNCTION customer_search_ids(query text) RETURNS SETOF varchar
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    ROWS 100
    AS $$
    DECLARE
        tenant text := NULLIF(current_setting('app.tenant_id', true), '');
        stmt text := 'SELECT customer_id FROM public.customer_search WHERE tenant_id = $1';
        word text;
    BEGIN
        IF tenant IS NULL OR query IS NULL THEN
            RETURN;
        END IF;
        FOR word IN SELECT w FROM regexp_split_to_table(query, '\s+') AS w WHERE w <> '' LOOP
            stmt := stmt || format(
                ' AND search_text LIKE %L',
                '%' || replace(replace(replace(word, '\', '\\'), '%', '\%'), '_', '\_') || '%'
            );
        END LOOP;
        RETURN QUERY EXECUTE stmt USING tenant;
    END
    $$
    """,
    # Rows already there. FORCE'd row-level security holds a non-superuser owner to the
    # policy too: the bypass setting lets this transaction read and write every tenant.
    "SELECT set_config('app.bypass_rls', 'on', true)",
    "INSERT INTO customer_search (customer_id, tenant_id, search_text)"
    " SELECT id, tenant_id, search_text FROM customers",
    "DROP INDEX IF EXISTS ix_customers_search_text_trgm",
]

POSTGRES_DOWNGRADE = [
    "DROP TRIGGER IF EXISTS customer_search_update ON customers",
    "DROP TRIGGER IF EXISTS customer_search_insert ON customers",
    "DROP FUNCTION IF EXISTS customer_search_ids(text)",
    "DROP FUNCTION IF EXISTS customer_search_updated()",
    "DROP FUNCTION IF EXISTS customer_search_inserted()",
    "DROP TABLE IF EXISTS customer_search",
    "CREATE INDEX IF NOT EXISTS ix_customers_search_text_trgm ON customers"
    " USING gin (search_text gin_trgm_ops)",
]

SQLITE_UPGRADE = [
    # A stable integer per customer id for the FTS rowid (INTEGER PRIMARY KEY survives VACUUM,
    # the implicit rowid of `customers` does not have to).
    """
    CREATE TABLE customer_search_rowids (
        id INTEGER PRIMARY KEY,
        customer_id VARCHAR(40) NOT NULL UNIQUE
    )
    """,
    # The trigram tokenizer (SQLite >= 3.34) matches any substring of three or more
    # characters, case-insensitively.
    "CREATE VIRTUAL TABLE customer_search USING fts5(search_text, tokenize = 'trigram')",
    """
    CREATE TRIGGER customer_search_insert AFTER INSERT ON customers
    BEGIN
        INSERT INTO customer_search_rowids (customer_id) VALUES (new.id);
        INSERT INTO customer_search (rowid, search_text)
        VALUES ((SELECT id FROM customer_search_rowids WHERE customer_id = new.id),
                new.search_text);
    END
    """,
    """
    CREATE TRIGGER customer_search_update AFTER UPDATE OF search_text ON customers
    WHEN old.search_text IS NOT new.search_text
    BEGIN
        UPDATE customer_search SET search_text = new.search_text
        WHERE rowid = (SELECT id FROM customer_search_rowids WHERE customer_id = new.id);
    END
    """,
    """
    CREATE TRIGGER customer_search_delete AFTER DELETE ON customers
    BEGIN
        DELETE FROM customer_search
        WHERE rowid = (SELECT id FROM customer_search_rowids WHERE customer_id = old.id);
        DELETE FROM customer_search_rowids WHERE customer_id = old.id;
    END
    """,
    "INSERT INTO customer_search_rowids (customer_id) SELECT id FROM customers ORDER BY id",
    """
    INSERT INTO customer_search (rowid, search_text)
    SELECT r.id, c.search_text
    FROM customer_search_rowids r JOIN customers c ON c.id = r.customer_id
    """,
]

SQLITE_DOWNGRADE = [
    "DROP TRIGGER IF EXISTS customer_search_delete",
    "DROP TRIGGER IF EXISTS customer_search_update",
    "DROP TRIGGER IF EXISTS customer_search_insert",
    "DROP TABLE IF EXISTS customer_search",
    "DROP TABLE IF EXISTS customer_search_rowids",
]


def _run(statements: list[str]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        _run(POSTGRES_UPGRADE)
    else:
        _run(SQLITE_UPGRADE)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        _run(POSTGRES_DOWNGRADE)
    else:
        _run(SQLITE_DOWNGRADE)
