"""Exact file state on every engine: tracks.size a 64-bit integer (files of 2 GiB and more), tracks.mtime
(a float: a 32-bit FLOAT on MariaDB) replaced by tracks.mtime_ns, a 64-bit count of nanoseconds.

Revision ID: 0002_db
Revises: 0001
"""

from __future__ import annotations

import os
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

from tagger.store.models import FilePath

revision = "0002_db"
down_revision = "0001"
branch_labels = None
depends_on = None

_tracks = sa.table(
    "tracks",
    sa.column("id", sa.Integer),
    sa.column("path", FilePath),
    sa.column("mtime", sa.Float),
    sa.column("mtime_ns", sa.BigInteger),
)


def _exact_ns(path: str, mtime: float) -> int:
    """The file's st_mtime_ns when the stored float is its st_mtime (as the old check compared), so an
    upgrade does not make the whole library look changed; otherwise the float's shortest decimal, in ns."""
    try:
        stat = os.stat(path)
        if stat.st_mtime == mtime:
            return stat.st_mtime_ns
    except OSError:
        pass
    return round(Decimal(repr(mtime)).scaleb(9))


def upgrade() -> None:
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mtime_ns", sa.BigInteger(), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(sa.select(_tracks.c.id, _tracks.c.path, _tracks.c.mtime).where(_tracks.c.mtime.is_not(None)))
    values = [{"row_id": row_id, "ns": _exact_ns(path, mtime)} for row_id, path, mtime in rows]
    if values:
        update = _tracks.update().where(_tracks.c.id == sa.bindparam("row_id")).values(mtime_ns=sa.bindparam("ns"))
        bind.execute(update, values)
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.drop_column("mtime")
        batch_op.alter_column("size", existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mtime", sa.Float(), nullable=True))
    op.execute(_tracks.update().values(mtime=_tracks.c.mtime_ns / 1e9))
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.drop_column("mtime_ns")
        batch_op.alter_column("size", existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=True)
