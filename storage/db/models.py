"""SQLModel tables of the biodiscover database (schema revision ``0006``).

Why these tables, and why this shape:

* ``collections`` / ``ingests`` keep provenance: which file (path, SHA-256, time)
  brought each specimen version in. ``quarantine`` keeps every row an ingest set
  aside (file, line, processid, problem), written in the same transactions as the
  rows it kept, so a re-run of the same file can say what was set aside before
  even when the report file is gone (revision 0004).
* ``specimens`` holds every BIOSCAN-5M field. A record that changed between two
  ingests gets a new row (``version`` + 1, ``current`` = 1) and the old row keeps
  ``current`` = 0, so nothing a collection once said is overwritten. The rank
  columns (``order`` … ``species``) are the identification *provided with the
  collection*; predictions live only in ``assignments``. ``dna_barcode`` is what the
  analysis reads (cleaned, its first 660 nt); ``submitted_barcode_length`` how long the
  cleaned read was as submitted, and ``submitted_barcode`` that whole read where it was
  longer (revision 0006; both NULL in rows written before it: never recorded).
* ``taxa`` is the taxonomy graph (``parent_id`` edges) with a status
  (accepted / provisional / rejected) and where the taxon came from.
* ``runs`` record every discovery job with its parameters and model
  fingerprint, a heartbeat and progress, so a reviewer can watch a batch job,
  and the novelty threshold its engine flagged specimens with; ``result`` holds
  what a finished job produced in machine-readable form (a batch item's triage
  run id), so nothing parses the human ``message`` (revision 0004).
* ``assignments``: one row per specimen per run — label and confidence at every
  rank, the deepest confident rank and taxon, the novelty probability and the
  engine's decision ``is_novel`` (readers never re-derive it from a threshold), and
  what it was named from: the modality, the identity to its best key and the bases
  shared, that key, and why it was not named deeper (revision 0005).
* ``proposals`` are candidate species. ``version`` grows on every change (a
  review or a re-clustering), and a review names the version it saw, so a
  decision is never applied to members it did not see. ``lineage`` ties the
  versions of one candidate across re-clusterings.
* ``reviews`` is an append-only log (never updated, never deleted) with
  before/after snapshots so any decision can be undone by a new entry.
* ``proposal_edges`` is the history of merges, splits, moves and re-clusterings.
* ``counters`` hold never-reused sequences (provisional names ``BD-0007``).

Times are ISO-8601 UTC strings (``2026-01-02T03:04:05.123456Z``): sortable,
readable in any SQLite shell, and identical across processes.
"""

from __future__ import annotations

from typing import Any, Optional

from sqlalchemy import JSON, Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from biodiscover.storage.records import DESCRIBED, RANKS

#: Proposal statuses a reviewer sees in the queue ("live").
#: ``assigned``: a reviewer identified the candidate's members as a known species (no new taxon).
LIVE_STATUSES: tuple[str, ...] = ("pending", "accepted", "rejected", "assigned")
#: Every proposal status: ``merged`` (folded into another), ``superseded``
#: (re-clustered by a newer run), ``withdrawn`` (a split undone).
PROPOSAL_STATUSES: tuple[str, ...] = LIVE_STATUSES + ("merged", "superseded", "withdrawn")
#: Taxon statuses: ``accepted`` (the reference's, or one a collection named), ``provisional`` (a species a reviewer
#: accepted, or a genus or family a reviewer added, under an interim name until described), ``described`` (a
#: published taxon a reviewer determined that the reference lacks: its name is a described one, not an interim
#: label, and no reference key stood behind it), ``rejected`` (taken out again by an undo).
TAXON_STATUSES: tuple[str, ...] = ("accepted", "provisional", DESCRIBED, "rejected")
RUN_STATUSES: tuple[str, ...] = ("running", "completed", "failed", "interrupted")



class Collection(SQLModel, table=True):
    __tablename__ = "collections"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    created_at: str


class Ingest(SQLModel, table=True):
    """One ingest of one file (or iterable) into a collection: the provenance."""

    __tablename__ = "ingests"
    id: Optional[int] = Field(default=None, primary_key=True)
    collection_id: int = Field(foreign_key="collections.id", index=True)
    source: Optional[str] = None
    checksum: Optional[str] = Field(default=None, index=True)
    started_at: str
    finished_at: Optional[str] = None
    status: str = "running"
    n_records: int = 0
    n_new: int = 0
    n_changed: int = 0
    n_unchanged: int = 0
    #: Revision 0004: rows set aside, and the report file they were written to.
    n_quarantined: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    quarantine_file: Optional[str] = None


class QuarantinedRow(SQLModel, table=True):
    """One input row an ingest set aside, with the reason (revision 0004)."""

    __tablename__ = "quarantine"
    id: Optional[int] = Field(default=None, primary_key=True)
    ingest_id: int = Field(foreign_key="ingests.id", index=True)
    file: str
    line: Optional[int] = None
    processid: Optional[str] = None
    kind: str
    reason: str
    raw: str = ""


class SpecimenRow(SQLModel, table=True):
    """One version of one specimen record (all BIOSCAN-5M fields)."""

    __tablename__ = "specimens"
    __table_args__ = (
        UniqueConstraint("processid", "version", name="uq_specimens_processid_version"),
        Index("ix_specimens_current_processid", "processid", unique=True,
              sqlite_where=text("current = 1")),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    processid: str
    version: int = 1
    current: bool = True
    record_hash: str
    collection_id: int = Field(foreign_key="collections.id", index=True)
    ingest_id: int = Field(foreign_key="ingests.id", index=True)
    sampleid: Optional[str] = None
    taxon: Optional[str] = None
    phylum: Optional[str] = None
    class_: Optional[str] = Field(default=None, sa_column_kwargs={"name": "class"})
    order: Optional[str] = None
    family: Optional[str] = None
    subfamily: Optional[str] = None
    genus: Optional[str] = None
    species: Optional[str] = None
    dna_bin: Optional[str] = None
    dna_barcode: Optional[str] = None
    country: Optional[str] = None
    province_state: Optional[str] = None
    coord_lat: Optional[float] = None
    coord_lon: Optional[float] = None
    image_measurement_value: Optional[float] = None
    area_fraction: Optional[float] = None
    scale_factor: Optional[float] = None
    inferred_ranks: Optional[int] = None
    split: Optional[str] = None
    index_bioscan_1M_insect: Optional[int] = None
    chunk: Optional[str] = None
    image_path: Optional[str] = None
    source: Optional[str] = None
    line: Optional[int] = None
    #: Revision 0006: the cleaned barcode's length as submitted (NULL: not recorded, a row written before it),
    #: and the whole submitted read only where it is longer than ``dna_barcode`` (NULL otherwise: the
    #: ~658-nt barcodes that are nearly every row are not stored twice).
    submitted_barcode_length: Optional[int] = None
    submitted_barcode: Optional[str] = None


class Taxon(SQLModel, table=True):
    __tablename__ = "taxa"
    __table_args__ = (Index("ix_taxa_rank_name", "rank", "name"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    rank: str
    name: str
    parent_id: Optional[int] = Field(default=None, foreign_key="taxa.id", index=True)
    status: str = "accepted"
    source: Optional[str] = None
    proposal_id: Optional[int] = Field(default=None, foreign_key="proposals.id", index=True)
    created_at: str


class Run(SQLModel, table=True):
    __tablename__ = "runs"
    id: Optional[int] = Field(default=None, primary_key=True)
    kind: str
    parameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    model_fingerprint: Optional[str] = None
    status: str = "running"
    collection_id: Optional[int] = Field(default=None, foreign_key="collections.id")
    started_at: str
    heartbeat_at: str
    finished_at: Optional[str] = None
    done: int = 0
    total: Optional[int] = None
    message: Optional[str] = None
    pid: Optional[int] = None
    host: Optional[str] = None
    #: novelty probability at or above which this run's engine flagged a specimen novel (revision 0003)
    novelty_threshold: Optional[float] = None
    #: Revision 0004: what the finished run produced, machine-readable (e.g. ``{"triage_run_id": 7}``).
    result: Optional[dict[str, Any]] = Field(default=None, sa_column=Column(JSON, nullable=True))


class Assignment(SQLModel, table=True):
    """What one run said about one specimen."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("run_id", "processid", name="uq_assignments_run_processid"),
        Index("ix_assignments_processid", "processid"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id")
    processid: str
    specimen_id: Optional[int] = Field(default=None, foreign_key="specimens.id")
    deepest_rank: Optional[str] = None
    deepest_taxon: Optional[str] = None
    taxon_id: Optional[int] = Field(default=None, foreign_key="taxa.id")
    novelty: Optional[float] = None
    #: the engine's decision (revision 0003); not re-derivable: a fused DNA+image call may override it
    is_novel: Optional[bool] = None
    label_order: Optional[str] = None
    label_family: Optional[str] = None
    label_subfamily: Optional[str] = None
    label_genus: Optional[str] = None
    label_species: Optional[str] = None
    confidence_order: Optional[float] = None
    confidence_family: Optional[float] = None
    confidence_subfamily: Optional[float] = None
    confidence_genus: Optional[float] = None
    confidence_species: Optional[float] = None
    #: Revision 0005: what the specimen was named from (NULL in rows written before it).
    #: ``dna``, ``image``, ``dna+image`` or ``none`` (no usable barcode and no photograph call)
    modality: Optional[str] = None
    #: identity of the barcode to its best reference key over ``overlap`` informative bases both call
    #: (NULL when the barcode gave no call), and the key the call came from (by photograph for ``image``)
    identity: Optional[float] = None
    overlap: Optional[int] = None
    top_hit: Optional[str] = None
    #: why it was not named deeper (the engine's sentence), or a note such as a reversed read
    reason: Optional[str] = None


class Proposal(SQLModel, table=True):
    """A candidate species; one row per version-producing clustering."""

    __tablename__ = "proposals"
    __table_args__ = (
        Index("ix_proposals_status_size", "status", "size"),
        Index("ix_proposals_status_novelty", "status", "novelty"),
        Index("ix_proposals_status_identity", "status", "nearest_identity"),
        Index("ix_proposals_status_parent", "status", "parent_name"),
        Index("ix_proposals_parent_taxon", "parent_taxon_id", "status"),
        Index("ix_proposals_run", "run_id", "status"),
        Index("ix_proposals_lineage", "lineage"),
        # Revision 0002: one index per queue sort key, so "page 1 of everything, sorted" walks an index
        # in order and stops after a page instead of sorting 100k rows (index entries end in the rowid,
        # so ties come out in id order for free).
        Index("ix_proposals_size", "size"),
        Index("ix_proposals_novelty", "novelty"),
        Index("ix_proposals_identity", "nearest_identity"),
        Index("ix_proposals_parent_name", "parent_name"),
        Index("ix_proposals_provisional_name", "provisional_name"),
        Index("ix_proposals_updated", "updated_at"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id")
    lineage: Optional[int] = None
    version: int = 1
    status: str = "pending"
    parent_taxon_id: Optional[int] = Field(default=None, foreign_key="taxa.id")
    parent_rank: Optional[str] = None
    parent_name: Optional[str] = None
    provisional_name: Optional[str] = None
    size: int = 0
    novelty: Optional[float] = None
    nearest_species: Optional[str] = None
    nearest_identity: Optional[float] = None
    evidence: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    taxon_id: Optional[int] = Field(default=None, foreign_key="taxa.id")
    merged_into: Optional[int] = Field(default=None, foreign_key="proposals.id")
    superseded_by: Optional[int] = Field(default=None, foreign_key="proposals.id")
    created_at: str
    updated_at: str


class ProposalMember(SQLModel, table=True):
    __tablename__ = "proposal_members"
    __table_args__ = (Index("ix_proposal_members_processid", "processid"),)
    proposal_id: int = Field(foreign_key="proposals.id", primary_key=True)
    processid: str = Field(primary_key=True)
    specimen_id: Optional[int] = Field(default=None, foreign_key="specimens.id")
    probability: Optional[float] = None
    outlier_score: Optional[float] = None


class Review(SQLModel, table=True):
    """Append-only decision log; ``before``/``after`` are snapshots for undo."""

    __tablename__ = "reviews"
    id: Optional[int] = Field(default=None, primary_key=True)
    proposal_id: Optional[int] = Field(default=None, foreign_key="proposals.id", index=True)
    action: str
    reviewer: str
    created_at: str
    note: Optional[str] = None
    target_review_id: Optional[int] = Field(default=None, foreign_key="reviews.id", index=True)
    before: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    after: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class ProposalEdge(SQLModel, table=True):
    """History edge: ``source`` proposal → ``target`` (merge, split, recluster, move, …)."""

    __tablename__ = "proposal_edges"
    id: Optional[int] = Field(default=None, primary_key=True)
    kind: str
    source_id: Optional[int] = Field(default=None, foreign_key="proposals.id", index=True)
    target_id: Optional[int] = Field(default=None, foreign_key="proposals.id", index=True)
    review_id: Optional[int] = Field(default=None, foreign_key="reviews.id")
    run_id: Optional[int] = Field(default=None, foreign_key="runs.id")
    created_at: str
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Counter(SQLModel, table=True):
    """Never-reused sequences (e.g. ``provisional_name`` → BD-0007)."""

    __tablename__ = "counters"
    name: str = Field(primary_key=True)
    value: int = 0


assert all(f"label_{r}" in Assignment.model_fields for r in RANKS)
