"""Moods: results.moods, tracks.user_moods and tracks.file_moods, tag_writes.role.

A track's moods are decided beside its genre and written into the file's MOOD field. ``results.moods`` holds
the mood decision with every label's mean score, so a rescan with other mood options re-decides without
decoding; ``tracks.user_moods`` / ``file_moods`` are the MOOD field's twins of ``user_genres`` / ``file_genres``.
Rows from before this revision have NULL there (no moods computed, not known), and every existing tag write
was a genre write: ``role`` defaults to 'genre'.

Revision ID: 0005_moods
Revises: 0004_file_genres
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_moods"
down_revision = "0004_file_genres"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("moods", sa.JSON(), nullable=True))
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_moods", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("file_moods", sa.JSON(), nullable=True))
    with op.batch_alter_table("tag_writes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("role", sa.String(length=8), nullable=False, server_default="genre"))


def downgrade() -> None:
    with op.batch_alter_table("tag_writes", schema=None) as batch_op:
        batch_op.drop_column("role")
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.drop_column("file_moods")
        batch_op.drop_column("user_moods")
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_column("moods")
