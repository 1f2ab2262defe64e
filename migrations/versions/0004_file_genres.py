"""tracks.file_genres: the genre field as the last scan left it, so `tagger report` counts what the files say.

Rows from before this revision have NULL: the report then falls back to our last applied write, else the
owner's genres recorded at the last scan.

Revision ID: 0004_file_genres
Revises: 0003_decided_with
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_file_genres"
down_revision = "0003_decided_with"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("file_genres", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.drop_column("file_genres")
