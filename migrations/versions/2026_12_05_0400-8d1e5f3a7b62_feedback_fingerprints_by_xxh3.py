"""feedback fingerprints: shingles hashed with XXH3, sketches and band keys made again

Revision ID: 8d1e5f3a7b62
Revises: 5c2d8e4f6a17
Create Date: 2026-12-05 04:00:00.000000

The shingle hash of near-duplicate detection is XXH3 instead of BLAKE2b (a tenth of the
cost; docs/decisions/0063). Sketches and band keys made with the old hash would never
match new ones, so every item's are made again here from its stored content, with the
application's own functions. Content hashes (SHA-256 of the text) do not change.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8d1e5f3a7b62"
down_revision: str | None = "5c2d8e4f6a17"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 2_000


def upgrade() -> None:
    from custos.feedback import dedup

    conn = op.get_bind()
    if op.get_context().dialect.name == "postgresql":
        op.execute("SET LOCAL app.bypass_rls = 'on'")
    update = sa.text("UPDATE feedback SET sketch = :sketch WHERE id = :id")
    delete = sa.text("DELETE FROM feedback_bands WHERE feedback_id = :id")
    insert = sa.text(
        "INSERT INTO feedback_bands (tenant_id, band, feedback_id) VALUES (:t, :b, :f)"
    )
    last = ""
    while True:
        rows = conn.execute(
            sa.text(
                "SELECT id, tenant_id, customer_id, content FROM feedback"
                " WHERE id > :last ORDER BY id LIMIT :batch"
            ),
            {"last": last, "batch": BATCH},
        ).all()
        if not rows:
            return
        sketches, bands = [], []
        for feedback_id, tenant_id, customer_id, content in rows:
            sketch, bins = dedup.fingerprint(dedup.normalise(content))
            sketches.append({"id": feedback_id, "sketch": dedup.encode(sketch)})
            bands.extend(
                {"t": tenant_id, "b": key, "f": feedback_id}
                for key in set(dedup.band_keys(bins, customer_id))
            )
        conn.execute(update, sketches)
        conn.execute(delete, [{"id": r[0]} for r in rows])
        if bands:
            conn.execute(insert, bands)
        last = rows[-1][0]


def downgrade() -> None:
    # The BLAKE2b fingerprints are not kept; going back leaves the XXH3 ones, which the
    # older code would not match against its own (near-duplicates found again as the
    # window moves on). Nothing to undo in the schema.
    pass
