"""quarantine table, ingest quarantine counts, run results

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Why: an ingest's set-aside rows lived only in a CSV written after the commit, so a
failed write lost them and a re-run of the same file reported "quarantined: 0".
They now go into ``quarantine`` in the same transactions as the rows kept, with
the count and report path on the ``ingests`` row. ``runs.result`` holds what a
finished run produced (a batch item's triage run id) so the batch ledger reads a
column instead of parsing its human message; existing batch items get theirs
from that message here, once.
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004"
down_revision: Union[str, None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ingest_id", sa.Integer(), nullable=False),
        sa.Column("file", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.Column("processid", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("raw", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(["ingest_id"], ["ingests.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_quarantine_ingest_id"), ["ingest_id"], unique=False)
    with op.batch_alter_table("ingests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("n_quarantined", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("quarantine_file", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("result", sa.JSON(), nullable=True))
    # legacy batch items said "triage run <id>: …" in their message; keep that id as data
    op.execute(
        "UPDATE runs SET result = json_object('triage_run_id', CAST(substr(message, 12, "
        "instr(substr(message, 12), ':') - 1) AS INTEGER)) "
        "WHERE kind = 'batch_item' AND status = 'completed' AND message GLOB 'triage run [0-9]*:*'"
    )


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("result")
    with op.batch_alter_table("ingests", schema=None) as batch_op:
        batch_op.drop_column("quarantine_file")
        batch_op.drop_column("n_quarantined")
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quarantine_ingest_id"))
    op.drop_table("quarantine")
