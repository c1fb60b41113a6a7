"""The biodiscover database: SQLite through SQLModel, safe for concurrent writers.

Start with :class:`Database` (``Database.open(path)`` / ``Database.create(path)``
/ ``Database.open_or_create(path)``). The API, one module per concept:

* :mod:`biodiscover.storage.db.ingest` — idempotent, versioned ingest with provenance;
* :mod:`biodiscover.storage.db.runs` — runs, heartbeat, progress, assignments, run tables for export;
* :mod:`biodiscover.storage.db.proposals` — candidate species, the review queue, details;
* :mod:`biodiscover.storage.db.reviews` — accept / reject / merge / split / move / rename / note / undo;
* :mod:`biodiscover.storage.db.taxonomy` — the taxonomy as a networkx graph; provisional references;
* :mod:`biodiscover.storage.db.check` — integrity, foreign keys and orphan checks (``db check``);
* :mod:`biodiscover.storage.db.integrity` — the quick check every writer runs first; damage vs permissions;
* :mod:`biodiscover.storage.db.backup`, :mod:`biodiscover.storage.db.schema` — backups and migrations.
"""

from biodiscover.storage.db.backup import backup_database
from biodiscover.storage.db.check import CheckReport, check_database
from biodiscover.storage.db.database import Database
from biodiscover.storage.db.engine import EngineConfig
from biodiscover.storage.db.ingest import IngestReport
from biodiscover.storage.db.proposals import MemberInfo, ProposalDetail, ProposalIn, ProposalSummary, QueueMark, Twin
from biodiscover.storage.db.reviews import ReviewResult
from biodiscover.storage.db.runs import RunProgress
from biodiscover.storage.db.taxonomy import TaxonomyGraph, TaxonNode

__all__ = [
    "CheckReport", "Database", "EngineConfig", "IngestReport", "MemberInfo", "ProposalDetail", "ProposalIn",
    "ProposalSummary", "QueueMark", "ReviewResult", "RunProgress", "TaxonNode", "TaxonomyGraph", "Twin",
    "backup_database",
    "check_database",
]
