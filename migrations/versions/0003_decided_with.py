"""results.decided_with: the tagging options (policy, top-k, minimum confidence) a result was decided with.

A scan whose options differ re-decides such a track from its stored result instead of skipping it
(no decoding). Rows from before this revision have NULL: unknown, so re-decided once.

Revision ID: 0003_decided_with
Revises: 0002_db
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_decided_with"
down_revision = "0002_db"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("decided_with", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_column("decided_with")
