"""novelty decision stored with the run

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Why: whether a specimen was flagged novel was not stored, so the report and the
exports re-derived it as ``novelty >= 0.5`` — wrong whenever the engine used
another threshold or a fused DNA+image call overrode the flag. ``assignments.is_novel``
holds the engine's own decision and ``runs.novelty_threshold`` the threshold it
used. Rows written before this revision get what every reader assumed for them
(novelty >= 0.5, the novelty detector's fixed default then; no novelty = not
novel), so old reports read the same after the upgrade.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: Union[str, None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

#: the threshold every reader assumed before it was recorded
LEGACY_THRESHOLD = 0.5


def upgrade() -> None:
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("is_novel", sa.Boolean(), nullable=True))
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("novelty_threshold", sa.Float(), nullable=True))
    op.execute(f"UPDATE assignments SET is_novel = COALESCE(novelty >= {LEGACY_THRESHOLD}, 0)")
    op.execute(f"UPDATE runs SET novelty_threshold = {LEGACY_THRESHOLD} "
               "WHERE id IN (SELECT DISTINCT run_id FROM assignments)")


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("novelty_threshold")
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_column("is_novel")
