"""customer full-text search: FTS5 on SQLite, tsvector + trigram on PostgreSQL

Revision ID: a7c3e91f5b20
Revises: 54ed87a2c00d
Create Date: 2026-11-22 09:00:00.000000
"""

from collections.abc import Sequence

revision: str = "a7c3e91f5b20"
down_revision: str | None = "54ed87a2c00d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
