"""specimens keep the barcode as submitted: its length, and the whole read where it was cut

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

Why: ingest cleans a barcode and keeps its first 660 nt (``MAX_NUCLEOTIDES``, as the
BIOSCAN-5M loader does), and ``specimens`` kept only that, so the Darwin Core archive's
DNA-derived data and the FASTA export sent a 1,500-nt full-length COI on as 660 nt with
nothing saying it was cut (a taxonomist's review of a real plate, C2). ``specimens``
gains ``submitted_barcode_length`` (the cleaned read's length before the cut) and
``submitted_barcode`` (that read, only where it is longer than ``dna_barcode``: nearly
every barcode is ~658 nt and is not stored twice). ``dna_barcode`` stays what the
analysis reads. Rows written before this revision keep NULL in both: what was submitted
was never recorded, and a 660-nt barcode may or may not have been a longer read's start,
so nothing is filled in.
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006"
down_revision: Union[str, None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("specimens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("submitted_barcode_length", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("submitted_barcode", sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("specimens", schema=None) as batch_op:
        batch_op.drop_column("submitted_barcode")
        batch_op.drop_column("submitted_barcode_length")
