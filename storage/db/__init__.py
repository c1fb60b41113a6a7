"""The biodiscover database: SQLite through SQLModel, safe for concurrent writers.

Start with :class:`Database` (``Database.open(path)`` / ``Database.create(path)``
/ ``Database.open_or_create(path)``). The API, one module per concept:

* :mod:`storage.db.ingest` — idempotent, versioned ingest with provenance;
* :mod:`storage.db.runs` — runs, heartbeat, progress, assignments, run tables for export;
* :mod:`storage.db.proposals` — candidate species, the review queue, details;
* :mod:`storage.db.reviews` — accept / reject / merge / split / move / rename / note / undo;
* :mod:`storage.db.taxonomy` — the taxonomy as a networkx graph; provisional references;
* :mod:`storage.db.check` — integrity, foreign keys and orphan checks;
* :mod:`storage.db.backup`, :mod:`storage.db.schema` — backups and migrations.
"""

from storage.db.backup import backup_database
from storage.db.check import CheckReport, check_database
from storage.db.database import Database
from storage.db.engine import EngineConfig
from storage.db.ingest import IngestReport
from storage.db.proposals import MemberInfo, ProposalDetail, ProposalIn, ProposalSummary
from storage.db.reviews import ReviewResult
from storage.db.runs import RunProgress
from storage.db.taxonomy import TaxonomyGraph, TaxonNode

__all__ = [
    "CheckReport", "Database", "EngineConfig", "IngestReport", "MemberInfo", "ProposalDetail", "ProposalIn",
    "ProposalSummary", "ReviewResult", "RunProgress", "TaxonNode", "TaxonomyGraph", "backup_database",
    "check_database",
]
