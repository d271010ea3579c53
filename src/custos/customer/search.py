"""`?q=`: every whitespace-separated word must occur in the customer's search text.

Words of three or more characters go through the search index the migration `a7c3e91f5b20`
builds: on PostgreSQL the trigram-indexed `customer_search` table, read through the
SECURITY DEFINER function `customer_search_ids()` (row-level security on `customers` would
keep the planner from using any index for LIKE); on SQLite the FTS5 trigram table
`customer_search`. A trigram index cannot serve shorter words, so a query made only of
them is a LIKE over the tenant's rows, newest first, which stops as soon as a page is full.
See docs/decisions/0009-customer-search.md.
"""

from __future__ import annotations

import sqlalchemy as sa

from custos.models import Customer

# The shortest word a trigram index can look up.
MIN_INDEXED_LENGTH = 3

_fts = sa.table("customer_search", sa.column("rowid", sa.Integer))
_fts_rowids = sa.table(
    "customer_search_rowids", sa.column("id", sa.Integer), sa.column("customer_id", sa.String)
)


def matches(term: str, dialect: str) -> sa.ColumnElement[bool]:
    """The condition on `customers` for a search term (already through `search_term()`)."""
    words = term.split()
    if not words:
        return sa.true()
    indexed = [w for w in words if len(w) >= MIN_INDEXED_LENGTH]
    short = [Customer.search_text.contains(w, autoescape=True) for w in words if w not in indexed]
    if not indexed:
        return sa.and_(*short)
    if dialect == "postgresql":
        # The function takes every word, short ones included, and checks the tenant itself.
        found = sa.select(sa.func.customer_search_ids(" ".join(words)).column_valued("id"))
        return Customer.id.in_(found)
    return sa.and_(Customer.id.in_(_sqlite_ids(indexed)), *short)


def _sqlite_ids(words: list[str]) -> sa.Select[tuple[str]]:
    # Each word an FTS5 string: quotes doubled, so `*`, `AND`, `NEAR(`, `-` and the like are
    # text to find, not query syntax. Strings side by side must all match.
    expression = " ".join('"' + w.replace('"', '""') + '"' for w in words)
    rowids = sa.select(_fts.c.rowid).where(sa.literal_column("customer_search").match(expression))
    return sa.select(_fts_rowids.c.customer_id).where(_fts_rowids.c.id.in_(rowids))
