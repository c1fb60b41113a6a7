"""The taxonomy as a networkx DiGraph (parent → child), built from ``taxa``.

API::

    graph = db.taxonomy()                 # or TaxonomyGraph.load(db)
    graph.graph                           # nx.DiGraph; node = taxon id; attrs rank, name, status, source, proposal_id
    graph.node(taxon_id) -> TaxonNode
    graph.lineage(taxon_id) -> list[TaxonNode]        # root … taxon
    graph.children(taxon_id) / graph.roots() -> list[TaxonNode]
    graph.find(name, rank=None) -> list[TaxonNode]
    graph.provisional() -> list[TaxonNode]
    provisional_references(db) -> list[Specimen]      # members of accepted / assigned proposals, named as their taxon
    register_lineages(db, lineages, source=...) -> int  # the reference's taxa (known species), added once

Why a graph object and not SQL only: the TUI draws the tree and discovery walks
lineages many times per run; a DiGraph answers lineage and children queries in
memory. The graph is a read-only snapshot: taxa change only through the review
API (which logs every change) and :func:`register_lineages`.

``provisional_references`` lets the next run treat accepted candidates as known
species: each member specimen comes back with its lineage filled from the
graph and ``species`` = the provisional name (e.g. ``Megaselia sp. BD-0007``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Protocol

import networkx as nx
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from biodiscover.storage.db.core import table
from biodiscover.storage.db.models import Proposal, ProposalMember, Taxon
from biodiscover.storage.records import DESCRIBED, RANKS, Specimen, is_filler_name



class Database(Protocol):
    """What this module needs of :class:`biodiscover.storage.db.database.Database` (named here, not imported:
    the database imports this module, and an import back would make a circle)."""

    def _read(self) -> ContextManager[Connection]: ...

    def _write(self, fn: Callable[[Connection], Any], what: str) -> Any: ...

    def taxonomy(self) -> "TaxonomyGraph": ...

log = logging.getLogger(__name__)
TAXA = table(Taxon)
_ATTRS = ("rank", "name", "parent_id", "status", "source")


@dataclass(frozen=True)
class TaxonNode:
    id: int
    rank: str
    name: str
    status: str
    source: str | None
    proposal_id: int | None
    parent_id: int | None

    @property
    def provisional(self) -> bool:
        return self.status == "provisional"

    @property
    def described(self) -> bool:
        """A published taxon a reviewer added that the reference lacks (``Aedes aegypti`` on a plate whose
        reference held no key of it): named as described, never provisional."""
        return self.status == DESCRIBED


class TaxonomyGraph:
    """A snapshot of ``taxa`` as a DiGraph; see the module docstring."""

    def __init__(self, graph: nx.DiGraph) -> None:
        self.graph = graph

    @classmethod
    def load(cls, db: "Database", include_rejected: bool = False) -> "TaxonomyGraph":
        g = nx.DiGraph()
        with db._read() as conn:
            q = sa.select(TAXA)
            if not include_rejected:
                q = q.where(TAXA.c.status != "rejected")
            for r in conn.execute(q).mappings():
                attrs = {k: r[k] for k in _ATTRS}
                attrs["proposal_id"] = r["proposal_id"]
                g.add_node(r["id"], **attrs)
        for tid, attrs in list(g.nodes(data=True)):
            if attrs["parent_id"] is not None and attrs["parent_id"] in g:
                g.add_edge(attrs["parent_id"], tid)
        return cls(g)

    # -- queries --------------------------------------------------------------------------------------------
    def __contains__(self, taxon_id: int) -> bool:
        return taxon_id in self.graph

    def __len__(self) -> int:
        return int(self.graph.number_of_nodes())

    def node(self, taxon_id: int) -> TaxonNode:
        if taxon_id not in self.graph:
            raise KeyError(f"no taxon {taxon_id}")
        a = self.graph.nodes[taxon_id]
        return TaxonNode(taxon_id, a["rank"], a["name"], a["status"], a.get("source"), a.get("proposal_id"),
                         a.get("parent_id"))

    def lineage(self, taxon_id: int) -> list[TaxonNode]:
        """Root … ``taxon_id`` (inclusive)."""
        out = [self.node(taxon_id)]
        seen = {taxon_id}
        while True:
            preds = list(self.graph.predecessors(out[-1].id))
            if not preds or preds[0] in seen:
                break
            seen.add(preds[0])
            out.append(self.node(preds[0]))
        return list(reversed(out))

    def lineage_dict(self, taxon_id: int) -> dict[str, str]:
        return {n.rank: n.name for n in self.lineage(taxon_id)}

    def children(self, taxon_id: int) -> list[TaxonNode]:
        return sorted((self.node(c) for c in self.graph.successors(taxon_id)), key=lambda n: n.name)

    def roots(self) -> list[TaxonNode]:
        return sorted((self.node(n) for n, d in self.graph.in_degree() if d == 0), key=lambda n: n.name)

    def find(self, name: str, rank: str | None = None) -> list[TaxonNode]:
        return [self.node(n) for n, a in self.graph.nodes(data=True)
                if a["name"] == name and (rank is None or a["rank"] == rank)]

    def provisional(self) -> list[TaxonNode]:
        return [self.node(n) for n, a in self.graph.nodes(data=True) if a["status"] == "provisional"]

    def described(self) -> list[TaxonNode]:
        """The described taxa reviewers added (:attr:`TaxonNode.described`)."""
        return [self.node(n) for n, a in self.graph.nodes(data=True) if a["status"] == DESCRIBED]


def provisional_references(db: "Database") -> list[Specimen]:
    """Members of accepted proposals as reference records named by their provisional species, and
    members a reviewer assigned to a known species named as that species (a described species a reviewer added
    too: the next run names its like ``Aedes aegypti``, under its genus)."""
    from biodiscover.storage.db.ingest import row_to_specimen
    from biodiscover.storage.db.models import SpecimenRow

    graph = db.taxonomy()
    P, M, S = table(Proposal), table(ProposalMember), table(SpecimenRow)
    out: list[Specimen] = []
    with db._read() as conn:
        rows = conn.execute(
            sa.select(P.c.taxon_id, S).select_from(P).join(M, M.c.proposal_id == P.c.id)
            .join(S, sa.and_(S.c.processid == M.c.processid, S.c.current.is_(True)))
            .where(P.c.status.in_(("accepted", "assigned"))).order_by(P.c.id, S.c.processid)).mappings().all()
    for r in rows:
        if r["taxon_id"] not in graph:
            continue
        spec = row_to_specimen(r)
        lineage = graph.lineage_dict(r["taxon_id"])
        for rank in RANKS:
            setattr(spec, rank, lineage.get(rank))
        out.append(spec)
    return out


def lineage_labels(conn: Connection, taxon_ids: set[int]) -> dict[int, str]:
    """taxon id → ``"Phoridae › Megaselia"`` (its parent, then the taxon: higher to lower, the order the
    review screens' headers use): what tells two same-named species or genera apart in a pick list."""
    out: dict[int, str] = {}
    for tid in taxon_ids:
        names: list[str] = []
        cur: int | None = tid
        while cur is not None and len(names) < 2:
            r = conn.execute(sa.select(TAXA.c.name, TAXA.c.parent_id).where(TAXA.c.id == cur)).first()
            if r is None:
                break
            if not is_filler_name(r.name):  # "unassigned Gaeaxidae" names no taxon
                names.append(r.name)
            cur = r.parent_id
        if names:
            out[tid] = " › ".join(reversed(names))
    return out


def register_lineages(db: "Database", lineages: Any, *, source: str) -> int:
    """Add the taxa of ``lineages`` (rank → name mappings, or tuples in ``RANKS`` order) that the
    taxonomy lacks, status accepted; returns how many distinct lineages were registered.

    Why: the reference a run searched names thousands of known species the
    database never saw (a new collection carries no identifications). Registered,
    they appear in the taxonomy tree and a reviewer can assign a candidate to one.
    One transaction; lineages already present cost a lookup each.
    """
    from biodiscover.storage.db.ingest import ensure_lineage

    unique: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
    for lin in lineages:
        d = dict(zip(RANKS, lin)) if isinstance(lin, (tuple, list)) else dict(lin)
        clean = {r: str(d[r]) for r in RANKS if d.get(r)}
        if clean:
            unique.setdefault(tuple(clean.items()), clean)
    if not unique:
        return 0

    def _do(conn: Connection) -> int:
        cache: dict[tuple[str, str, int | None], int] = {}
        for r in conn.execute(sa.select(TAXA.c.id, TAXA.c.rank, TAXA.c.name, TAXA.c.parent_id)):
            cache.setdefault((r.rank, r.name, r.parent_id), r.id)
        added: dict[tuple[str, str, int | None], int] = {}
        for lineage in unique.values():
            ensure_lineage(conn, lineage, cache, added, source)  # it looks in ``added`` as well as the cache
        return len(unique)

    return int(db._write(_do, "register reference taxa"))
