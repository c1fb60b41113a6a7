"""Candidate-species proposals with the evidence a taxonomist reviews.

Why a separate module: clustering decides *who goes together*; a reviewer needs
to see *why*, in the terms they already trust — a consensus barcode, how tight
the cluster is and how far from its neighbours, the nearest known species and
its identity, whether BOLD's BINs agree, where and how big the specimens were,
and a few photographs. :func:`build_proposals` turns a fitted
:class:`~biodiscover.discovery.clustering.CandidateSpeciesClusterer` into a list of
:class:`CandidateProposal` — plain, JSON-able dataclasses whose field names match
``storage.db.proposals.ProposalIn`` (``members``, ``parent_rank``,
``parent_name``, ``novelty``, ``nearest_species``, ``nearest_identity``,
``evidence``), so ``Database.write_proposals(run_id, proposals)`` stores them
as they are; ``evidence`` is the JSON the TUI shows.

Evidence keys (all JSON types; absent data → ``None`` or empty):

* ``size``, ``mean_probability``, ``hdbscan_agreement``;
* ``consensus_barcode`` (pyfamsa MSA of up to ``max_msa`` members, majority base
  per column, columns mostly gaps dropped), ``consensus_length``;
* ``within_distance``: ``{"mean", "max"}`` pairwise p-distance among members,
  and ``within_distances`` (a sample of those distances, for histograms);
* ``alignment``: ``{processid: aligned sequence}`` of the MSA members;
* ``between_distance``: ``{"nearest_candidate", "distance"}`` — consensus
  p-distance to the closest other candidate of the same parent group;
* ``nearest_known``: ``{"species", "genus", "processid", "identity",
  "top_distances"}`` — best reference barcode for the consensus (identity =
  1 - p-distance), and ``nearest_known_distances`` (the aligned top hits);
* ``bin``: ``{"counts", "dominant", "agreement", "n_with_bin", "shared_with"}``
  (agreement = share of members with a BIN that carry the dominant one;
  ``shared_with`` = other candidates holding that BIN: a hint of over-splitting);
* ``geography``: ``{"countries", "provinces", "n_with_coordinates", "lat_range",
  "lon_range", "centroid", "bbox"}`` (bbox = [lat min, lat max, lon min, lon max]);
* ``size_summary``: median / min / max of ``image_measurement_value``,
  ``area_fraction`` and ``scale_factor`` where present;
* ``representative_images``: up to ``max_images`` ``{"processid", "path"}``,
  members with the highest membership probability first.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Hashable, Mapping, Sequence

import numpy as np

from biodiscover.discovery.clustering import (
    BarcodeGapThreshold,
    CandidateSpeciesClusterer,
    ClusteringConfig,
    _kmer_presence,
    cross_p_distance,
    pairwise_p_distance,
)
from biodiscover.storage.records import RANKS, Specimen

log = logging.getLogger(__name__)

__all__ = ["CandidateProposal", "consensus_barcode", "align_members", "nearest_known", "build_proposals", "discover_candidates"]


@dataclass(frozen=True)
class CandidateProposal:
    """One candidate species, ready for ``Database.write_proposals``.

    ``members``: ``{"processid", "probability", "outlier_score"}`` dicts.
    ``parent_rank`` / ``parent_name``: the deepest confident parent taxon the
    members were grouped under (None when unknown). ``novelty``: mean novelty
    probability of the members when the caller supplied it.
    """

    members: tuple[dict[str, Any], ...]
    parent_rank: str | None = None
    parent_name: str | None = None
    parent_lineage: dict[str, str] | None = None
    novelty: float | None = None
    nearest_species: str | None = None
    nearest_identity: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.members)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (lists for tuples; NaN → None)."""
        return _jsonable(asdict(self))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


# ---------------------------------------------------------------------------------
# pieces of evidence
# ---------------------------------------------------------------------------------
def consensus_barcode(seqs: Sequence[str], max_msa: int = 50) -> str:
    """Majority-rule consensus of a pyfamsa multiple alignment.

    Columns where gaps are the majority are dropped (an insertion in a minority
    of reads is not part of the species' barcode); ``N`` never wins over a base.
    One sequence is its own consensus.
    """
    return align_members([f"s{i}" for i in range(len(seqs))], seqs, max_msa)[0]


def align_members(ids: Sequence[str], seqs: Sequence[str], max_msa: int = 50) -> tuple[str, dict[str, str]]:
    """(consensus, {id: aligned sequence}) from a pyfamsa MSA of up to ``max_msa``
    members (evenly spread over the list, so the choice is deterministic)."""
    pairs = [(i, s.upper()) for i, s in zip(ids, seqs) if s]
    if not pairs:
        return "", {}
    if len(pairs) > max_msa:
        pairs = [pairs[i] for i in np.linspace(0, len(pairs) - 1, max_msa).astype(int)]
    if len({s for _, s in pairs}) == 1:
        return pairs[0][1], dict(pairs)
    import pyfamsa

    ali = pyfamsa.Aligner(guide_tree="upgma").align(
        [pyfamsa.Sequence(str(k).encode(), s.encode()) for k, (_, s) in enumerate(pairs)]
    )
    aligned = {pairs[int(g.id.decode())][0]: g.sequence.decode() for g in ali}
    rows = np.array([np.frombuffer(a.encode(), dtype="S1") for a in aligned.values()])
    out = []
    for col in rows.T:
        counts = Counter(col.tolist())
        gaps = counts.pop(b"-", 0)
        if gaps * 2 >= len(col):
            continue
        bases = {b: n for b, n in counts.items() if b in (b"A", b"C", b"G", b"T")}
        out.append(max(sorted(bases), key=bases.get).decode() if bases else "N")
    return "".join(out), aligned


def nearest_known(queries: Sequence[str], reference: Sequence[Specimen], top: int = 20,
                  k: int = 8) -> list[dict[str, Any] | None]:
    """Best reference barcode per query: k-mer cosine picks ``top`` hits,
    alignment (p-distance) ranks them. Returns ``{"species", "genus",
    "processid", "identity", "top_distances"}`` (p-distances of the aligned
    top hits, ascending) or None where the reference has no barcode."""
    refs = [r for r in reference if r.dna_barcode]
    if not refs or not queries:
        return [None] * len(queries)
    ref_seqs = [r.dna_barcode.upper() for r in refs]
    a = _kmer_presence([q.upper() for q in queries], k)
    b = _kmer_presence(ref_seqs, k)
    # cosine of k-mer sets ranks candidates (containment would favour short references)
    inter = np.asarray((a @ b.T).todense(), dtype=np.float32)
    norm = np.sqrt(np.asarray(a.sum(axis=1)).reshape(-1, 1) * np.asarray(b.sum(axis=1)).reshape(1, -1))
    sim = inter / np.maximum(norm, 1.0)
    out: list[dict[str, Any] | None] = []
    for i, q in enumerate(queries):
        cand = np.argsort(-sim[i], kind="stable")[:top]
        d = cross_p_distance([q], [ref_seqs[j] for j in cand], max_aligned=0.3)[0]
        best = int(cand[int(np.argmin(d))])
        r = refs[best]
        out.append({"species": r.species, "genus": r.genus, "processid": r.processid,
                    "identity": float(1.0 - d.min()), "top_distances": sorted(float(x) for x in d)})
    return out


def _stats(values: Sequence[float | None]) -> dict[str, Any] | None:
    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if v.size == 0:
        return None
    return {"n": int(v.size), "median": float(np.median(v)), "min": float(v.min()), "max": float(v.max())}


def _geography(members: Sequence[Specimen]) -> dict[str, Any]:
    coords = [(m.coord_lat, m.coord_lon) for m in members if m.coord_lat is not None and m.coord_lon is not None]
    geo: dict[str, Any] = {
        "countries": dict(Counter(m.country for m in members if m.country).most_common()),
        "provinces": dict(Counter(m.province_state for m in members if m.province_state).most_common()),
        "n_with_coordinates": len(coords),
        "lat_range": None, "lon_range": None, "centroid": None, "bbox": None,
    }
    if coords:
        lat = np.array([c[0] for c in coords])
        lon = np.array([c[1] for c in coords])
        geo.update(lat_range=[float(lat.min()), float(lat.max())], lon_range=[float(lon.min()), float(lon.max())],
                   centroid=[float(lat.mean()), float(lon.mean())],
                   bbox=[float(lat.min()), float(lat.max()), float(lon.min()), float(lon.max())])
    return geo


def _within(seqs: Sequence[str], max_members: int = 200, max_values: int = 500
            ) -> tuple[dict[str, float], list[float]] | None:
    """({"mean", "max"}, a sample of the pairwise p-distances) among members."""
    if len(seqs) < 2:
        return None
    if len(seqs) > max_members:
        seqs = [seqs[i] for i in np.linspace(0, len(seqs) - 1, max_members).astype(int)]
    d = pairwise_p_distance(list(seqs))
    values = d[np.triu_indices(len(seqs), k=1)]
    sample = values[np.linspace(0, values.size - 1, min(values.size, max_values)).astype(int)]
    return {"mean": float(values.mean()), "max": float(values.max())}, [float(v) for v in sample]


# ---------------------------------------------------------------------------------
# assembling proposals
# ---------------------------------------------------------------------------------
def build_proposals(
    specimens: Sequence[Specimen],
    clusterer: CandidateSpeciesClusterer,
    *,
    parents: Sequence[tuple[str, str] | None] | None = None,
    reference: Sequence[Specimen] | None = None,
    novelty: Sequence[float] | None = None,
    max_images: int = 3,
    max_msa: int = 50,
) -> list[CandidateProposal]:
    """Evidence for every candidate of a clusterer fitted on ``specimens`` (same order).

    ``parents[i]``: (rank, name) of specimen *i*'s deepest confident parent
    taxon (what it was grouped under); ``reference``: labelled specimens to find
    the nearest known species in; ``novelty[i]``: its novelty probability.
    Proposals come out largest first.
    """
    clusterer._check_fitted()
    n = len(specimens)
    if clusterer.labels_.shape[0] != n:
        raise ValueError(f"clusterer was fitted on {clusterer.labels_.shape[0]} specimens, got {n}")
    for name, seq in (("parents", parents), ("novelty", novelty)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{name} has {len(seq)} entries for {n} specimens")
    by_cand: dict[int, list[int]] = defaultdict(list)
    for i, c in enumerate(clusterer.labels_.tolist()):
        by_cand[c].append(i)
    cands = sorted(by_cand, key=lambda c: (-len(by_cand[c]), c))
    dna = clusterer.config.metric == "p"

    consensus: dict[int, str] = {}
    alignment: dict[int, dict[str, str]] = {}
    for c in cands:
        mem = [specimens[i] for i in by_cand[c]]
        consensus[c], alignment[c] = align_members([m.processid for m in mem], [m.dna_barcode or "" for m in mem],
                                                   max_msa)

    # nearest other candidate of the same group, by consensus p-distance
    between: dict[int, dict[str, Any] | None] = {c: None for c in cands}
    by_group: dict[Hashable, list[int]] = defaultdict(list)
    for c in cands:
        if consensus[c]:
            by_group[clusterer.candidate_group_.get(c)].append(c)
    for members in by_group.values():
        if len(members) < 2:
            continue
        d = pairwise_p_distance([consensus[c] for c in members])
        np.fill_diagonal(d, np.inf)
        for r, c in enumerate(members):
            j = int(np.argmin(d[r]))
            between[c] = {"nearest_candidate": int(members[j]), "distance": float(d[r, j])}

    nearest: dict[int, dict[str, Any] | None] = {c: None for c in cands}
    if reference is not None:
        with_seq = [c for c in cands if consensus[c]]
        for c, hit in zip(with_seq, nearest_known([consensus[c] for c in with_seq], reference)):
            nearest[c] = hit

    bin_holders: dict[str, set[int]] = defaultdict(set)
    for c in cands:
        for i in by_cand[c]:
            if specimens[i].dna_bin:
                bin_holders[specimens[i].dna_bin].add(c)

    out: list[CandidateProposal] = []
    for c in cands:
        idx = by_cand[c]
        mem = [specimens[i] for i in idx]
        prob = clusterer.probabilities_[idx]
        members = tuple(
            {"processid": s.processid, "probability": float(p), "outlier_score": float(clusterer.outlier_scores_[i])}
            for s, p, i in zip(mem, prob, idx)
        )
        bins = Counter(s.dna_bin for s in mem if s.dna_bin)
        dominant = bins.most_common(1)[0][0] if bins else None
        bin_ev = {
            "counts": dict(bins.most_common()), "dominant": dominant,
            "agreement": (bins[dominant] / sum(bins.values())) if dominant else None,
            "n_with_bin": int(sum(bins.values())),
            "shared_with": sorted(int(x) for x in bin_holders.get(dominant, set()) - {c}) if dominant else [],
        }
        order = np.argsort(-prob, kind="stable")
        images = [{"processid": mem[j].processid, "path": str(mem[j].image_path)}
                  for j in order if mem[j].image_path is not None][:max_images]
        parent = _parent_of(idx, parents)
        lineage = _shared_lineage(mem, parent)
        near = nearest[c]
        within = _within([s.dna_barcode for s in mem if s.dna_barcode]) if dna else None
        evidence = {
            "candidate": int(c),
            "size": len(idx),
            "mean_probability": float(prob.mean()),
            "hdbscan_agreement": float(clusterer.agreement_.get(c, 1.0)),
            "threshold": float(clusterer.threshold_),
            "linkage": clusterer.linkage_,
            "consensus_barcode": consensus[c] or None,
            "consensus_length": len(consensus[c]),
            "within_distance": within[0] if within else None,
            "within_distances": within[1] if within else [],
            "nearest_known_distances": near["top_distances"] if near else [],
            "alignment": alignment[c] if len(alignment[c]) > 1 else {},
            "between_distance": between[c],
            "nearest_known": near,
            "bin": bin_ev,
            "geography": _geography(mem),
            "size_summary": {
                "image_measurement_value": _stats([s.image_measurement_value for s in mem]),
                "area_fraction": _stats([s.area_fraction for s in mem]),
                "scale_factor": _stats([s.scale_factor for s in mem]),
            },
            "representative_images": images,
        }
        nov = float(np.mean([novelty[i] for i in idx])) if novelty is not None else None
        out.append(CandidateProposal(
            members=members,
            parent_rank=parent[0] if parent else None,
            parent_name=parent[1] if parent else None,
            parent_lineage=lineage,
            novelty=nov,
            nearest_species=near["species"] if near else None,
            nearest_identity=near["identity"] if near else None,
            evidence=_jsonable(evidence),
        ))
    return out


def _parent_of(idx: Sequence[int], parents: Sequence[tuple[str, str] | None] | None) -> tuple[str, str] | None:
    if parents is None:
        return None
    votes = Counter(tuple(parents[i]) for i in idx if parents[i] is not None)
    return votes.most_common(1)[0][0] if votes else None


def _shared_lineage(members: Sequence[Specimen], parent: tuple[str, str] | None) -> dict[str, str] | None:
    """Ranks down to the parent rank on which every member with a label agrees."""
    if parent is None:
        return None
    rank, name = parent
    depth = RANKS.index(rank) if rank in RANKS else -1
    lineage: dict[str, str] = {}
    for r in RANKS[: depth + 1]:
        names = {getattr(m, r) for m in members if getattr(m, r)}
        if len(names) == 1:
            lineage[r] = names.pop()
    lineage[rank] = name
    return lineage


def discover_candidates(
    specimens: Sequence[Specimen],
    *,
    parents: Sequence[tuple[str, str] | None] | None = None,
    threshold: BarcodeGapThreshold | None = None,
    config: ClusteringConfig = ClusteringConfig(),
    reference: Sequence[Specimen] | None = None,
    novelty: Sequence[float] | None = None,
) -> tuple[CandidateSpeciesClusterer, list[CandidateProposal]]:
    """Cluster novel specimens within their parent taxon and build their proposals.

    The one call the engine needs: specimens without a barcode cannot be placed
    by DNA and are refused with their processids named.
    """
    if config.metric != "p":
        raise ValueError("discover_candidates clusters barcodes; use CandidateSpeciesClusterer for embeddings")
    missing = [s.processid for s in specimens if not s.dna_barcode]
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise ValueError(f"{len(missing)} specimen(s) have no barcode to cluster: {shown}")
    groups = [tuple(p) if p is not None else None for p in parents] if parents is not None else None
    clusterer = CandidateSpeciesClusterer(config).fit([s.dna_barcode for s in specimens], groups, threshold)
    proposals = build_proposals(specimens, clusterer, parents=parents, reference=reference, novelty=novelty)
    log.info("%d specimens → %d candidate species", len(specimens), len(proposals))
    return clusterer, proposals
