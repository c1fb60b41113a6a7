"""how each specimen was named; assigned candidates carry their species' current name

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

Why: an assignment said what a specimen was named and how sure, but not from what —
a photograph-only call (family right 90 % of the time on the demo) and a barcode at
99.8 % to a key were the same row, so the exports published both as one kind of
identification. ``assignments`` gains the evidence triage already wrote to its results
file: ``modality`` (dna, image, dna+image, none), ``identity`` to the best key and the
informative bases it was measured on (``overlap``), that key (``top_hit``) and, where
the specimen was not named as deep as its labels go, ``reason``. Rows written before
this revision keep NULL there (nothing to recover: the engine's evidence was not kept).

Also a data fix: a candidate assigned to an accepted new species kept the name and parent
that species had at the time after it was renamed or moved (fixed for new decisions by
d9c3439: ``reviews._follow_taxon``). Here every assigned candidate takes its taxon's
current name and parent, once; its version does not move (nothing a reviewer decided
changed).
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005"
down_revision: Union[str, None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("modality", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("identity", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("overlap", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("top_hit", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    # the _follow_taxon rule, once, for decisions made before it
    op.execute(
        "UPDATE proposals SET "
        "provisional_name = (SELECT t.name FROM taxa t WHERE t.id = proposals.taxon_id), "
        "parent_taxon_id = (SELECT t.parent_id FROM taxa t WHERE t.id = proposals.taxon_id), "
        "parent_rank = (SELECT p.rank FROM taxa t JOIN taxa p ON p.id = t.parent_id WHERE t.id = proposals.taxon_id), "
        "parent_name = (SELECT p.name FROM taxa t JOIN taxa p ON p.id = t.parent_id WHERE t.id = proposals.taxon_id) "
        "WHERE status = 'assigned' AND taxon_id IS NOT NULL "
        "AND EXISTS (SELECT 1 FROM taxa t WHERE t.id = proposals.taxon_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        for column in ("reason", "top_hit", "overlap", "identity", "modality"):
            batch_op.drop_column(column)
