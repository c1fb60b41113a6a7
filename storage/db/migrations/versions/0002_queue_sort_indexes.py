"""queue sort indexes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Why: the review queue sorts 100k proposals by size / novelty / identity / parent
/ name / update time; with only (status, column) indexes SQLite sorted every
live row for each page. One index per sort column lets it walk the index in
order and stop after one page. Index-only change: no table rebuild needed, but
it still runs in batch mode like every migration here.
"""
from typing import Sequence, Union

from alembic import op

revision: str = "0002"
down_revision: Union[str, None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

INDEXES = (
    ("ix_proposals_size", ["size"]),
    ("ix_proposals_novelty", ["novelty"]),
    ("ix_proposals_identity", ["nearest_identity"]),
    ("ix_proposals_parent_name", ["parent_name"]),
    ("ix_proposals_provisional_name", ["provisional_name"]),
    ("ix_proposals_updated", ["updated_at"]),
)


def upgrade() -> None:
    with op.batch_alter_table("proposals", schema=None) as batch_op:
        for name, cols in INDEXES:
            batch_op.create_index(name, cols, unique=False)


def downgrade() -> None:
    with op.batch_alter_table("proposals", schema=None) as batch_op:
        for name, _ in INDEXES:
            batch_op.drop_index(name)
