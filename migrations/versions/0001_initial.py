"""Initial schema: tracks, results (genres, windows, embedding), tag writes (previous values).

Revision ID: 0001
Revises: 
Create Date: 2026-11-26 09:08:10.096068
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tracks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('root', sa.Text(), nullable=True),
    sa.Column('size', sa.Integer(), nullable=True),
    sa.Column('mtime', sa.Float(), nullable=True),
    sa.Column('fingerprint', sa.String(length=64), nullable=True),
    sa.Column('duration', sa.Float(), nullable=True),
    sa.Column('format', sa.String(length=16), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('user_genres', sa.JSON(), nullable=True),
    sa.Column('first_seen', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('path')
    )
    with op.batch_alter_table('tracks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tracks_fingerprint'), ['fingerprint'], unique=False)
        batch_op.create_index(batch_op.f('ix_tracks_status'), ['status'], unique=False)

    op.create_table('results',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('track_id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.String(length=128), nullable=False),
    sa.Column('vocabulary', sa.String(length=64), nullable=False),
    sa.Column('genres', sa.JSON(), nullable=False),
    sa.Column('chosen', sa.JSON(), nullable=False),
    sa.Column('confident', sa.Boolean(), nullable=False),
    sa.Column('windows', sa.JSON(), nullable=False),
    sa.Column('embedding', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['track_id'], ['tracks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('results', schema=None) as batch_op:
        batch_op.create_index('ix_results_track_created', ['track_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_results_track_id'), ['track_id'], unique=False)

    op.create_table('tag_writes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('track_id', sa.Integer(), nullable=False),
    sa.Column('result_id', sa.Integer(), nullable=True),
    sa.Column('field', sa.String(length=32), nullable=False),
    sa.Column('previous', sa.JSON(), nullable=False),
    sa.Column('new', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('written_at', sa.DateTime(), nullable=False),
    sa.Column('restored_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['result_id'], ['results.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['track_id'], ['tracks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('tag_writes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tag_writes_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_tag_writes_track_id'), ['track_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('tag_writes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tag_writes_track_id'))
        batch_op.drop_index(batch_op.f('ix_tag_writes_status'))

    op.drop_table('tag_writes')
    with op.batch_alter_table('results', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_results_track_id'))
        batch_op.drop_index('ix_results_track_created')

    op.drop_table('results')
    with op.batch_alter_table('tracks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tracks_status'))
        batch_op.drop_index(batch_op.f('ix_tracks_fingerprint'))

    op.drop_table('tracks')
