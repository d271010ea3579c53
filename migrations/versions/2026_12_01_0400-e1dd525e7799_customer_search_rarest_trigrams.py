"""customer search: look words up by their rarest trigrams (PostgreSQL)

Revision ID: e1dd525e7799
Revises: c9e5a13b7d42
Create Date: 2026-12-01 04:00:00.000000

A GIN trigram index answers `LIKE '%customer4242%'` by intersecting the posting lists of
every trigram of the word, and `cus`, `ust`, `sto`, `tom`, `ome`, `mer` are in nearly every
row of a tenant whose emails look alike: the intersection reads most of the index (15 ms
for 11 hits in 100,000 rows). The statistics object `customer_search_trigrams` has ANALYZE
(and autovacuum) count the trigrams of the search text like any column's values;
`customer_search_refresh_statistics()` copies the most common ones and their frequencies
into `customer_search_trigram_stats` (reading the statistics view costs milliseconds, a
look-up in this table microseconds). The search function then looks each word up by its
three rarest trigrams (`LIKE '%424%'`: a substring of the word, so every match still
qualifies) and keeps the rows that contain the whole word. Without statistics, or for a
word with no plain-ASCII trigram, it uses the whole word, as before.

The index's pending list (GIN's buffer of recent inserts, read in full by every search until
it is merged) is capped at 128 kB instead of the server-wide 4 MB: at 4 MB a search read some
360 pages of it (7 ms), at 128 kB at most 16, and an insert merges it every hundred rows or
so. SQLite is unchanged (its FTS5 trigram index).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "e1dd525e7799"
down_revision: str | None = "c9e5a13b7d42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Escaping for LIKE: each word is literal text, wildcards included.
_LIKE_WORD = r"'%' || replace(replace(replace(word, '\', '\\'), '%', '\%'), '_', '\_') || '%'"

STATISTICS_TABLE = """
    CREATE TABLE customer_search_trigram_stats (
        trigram text PRIMARY KEY,
        frequency real NOT NULL
    )
"""

# Owner's rights (SECURITY DEFINER): ANALYZE and the statistics view need them; the
# runtime role, which cannot read the table, calls this from a periodic job.
REFRESH_FUNCTION = r"""
    CREATE FUNCTION customer_search_refresh_statistics() RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        refreshed integer;
    BEGIN
        IF NOT EXISTS (
            SELECT 1 FROM pg_stats_ext_exprs
             WHERE statistics_schemaname = 'public'
               AND statistics_name = 'customer_search_trigrams'
               AND most_common_elems IS NOT NULL
        ) THEN
            ANALYZE public.customer_search;
        END IF;
        DELETE FROM public.customer_search_trigram_stats;
        -- The frequencies array ends with three summary numbers, paired here with nulls.
        INSERT INTO public.customer_search_trigram_stats (trigram, frequency)
        SELECT common.trigram, common.frequency
          FROM pg_stats_ext_exprs AS x,
               unnest(x.most_common_elems::text::text[], x.most_common_elem_freqs)
                   AS common (trigram, frequency)
         WHERE x.statistics_schemaname = 'public'
           AND x.statistics_name = 'customer_search_trigrams'
           AND common.trigram IS NOT NULL
        ON CONFLICT (trigram) DO NOTHING;
        GET DIAGNOSTICS refreshed = ROW_COUNT;
        RETURN refreshed;
    END
    $$
"""

SEARCH_FUNCTION = rf"""
    CREATE OR REPLACE FUNCTION customer_search_ids(query text) RETURNS SETOF varchar
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    ROWS 100
    AS $$
    DECLARE
        tenant text := NULLIF(current_setting('app.tenant_id', true), '');
        stmt text := 'SELECT customer_id FROM public.customer_search WHERE tenant_id = $1';
        known boolean;
        word text;
        rarest text[];
        trigram text;
    BEGIN
        IF tenant IS NULL OR query IS NULL THEN
            RETURN;
        END IF;
        known := EXISTS (SELECT 1 FROM public.customer_search_trigram_stats);
        FOR word IN SELECT w FROM regexp_split_to_table(query, '\s+') AS w WHERE w <> '' LOOP
            rarest := NULL;
            IF known THEN
                -- A trigram missing from the statistics is rarer than every one in them.
                SELECT array_agg(picked.t) INTO rarest FROM (
                    SELECT windows.t
                      FROM (
                          SELECT substr(word, i, 3) AS t, i
                          FROM generate_series(1, length(word) - 2) AS i
                      ) AS windows
                      LEFT JOIN public.customer_search_trigram_stats AS stats
                             ON stats.trigram = windows.t
                     WHERE windows.t ~ '^[a-z0-9]{{3}}$'
                     GROUP BY windows.t
                     ORDER BY coalesce(min(stats.frequency), 0), min(windows.i)
                     LIMIT 3
                ) AS picked;
            END IF;
            IF rarest IS NULL THEN
                stmt := stmt || format(' AND search_text LIKE %L', {_LIKE_WORD});
            ELSE
                FOREACH trigram IN ARRAY rarest LOOP
                    stmt := stmt || format(' AND search_text LIKE %L', '%' || trigram || '%');
                END LOOP;
                -- Not indexable on purpose: checked on the few rows the trigrams found.
                stmt := stmt || format(' AND strpos(search_text, %L) > 0', word);
            END IF;
        END LOOP;
        RETURN QUERY EXECUTE stmt USING tenant;
    END
    $$
"""

# As a7c3e91f5b20 made it.
PREVIOUS_SEARCH_FUNCTION = rf"""
    CREATE OR REPLACE FUNCTION customer_search_ids(query text) RETURNS SETOF varchar
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
            stmt := stmt || format(' AND search_text LIKE %L', {_LIKE_WORD});
        END LOOP;
        RETURN QUERY EXECUTE stmt USING tenant;
    END
    $$
"""


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE STATISTICS customer_search_trigrams ON (public.show_trgm(search_text))"
        " FROM customer_search"
    )
    op.execute("ALTER INDEX ix_customer_search_trgm SET (gin_pending_list_limit = 128)")
    op.execute(STATISTICS_TABLE)
    op.execute(REFRESH_FUNCTION)
    op.execute(SEARCH_FUNCTION)
    op.execute("SELECT customer_search_refresh_statistics()")


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(PREVIOUS_SEARCH_FUNCTION)
    op.execute("DROP FUNCTION IF EXISTS customer_search_refresh_statistics()")
    op.execute("DROP TABLE IF EXISTS customer_search_trigram_stats")
    op.execute("DROP STATISTICS IF EXISTS customer_search_trigrams")
    op.execute("ALTER INDEX ix_customer_search_trgm RESET (gin_pending_list_limit)")
