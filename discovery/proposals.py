"""Candidate-species proposals with the evidence a taxonomist reviews.

Why a separate module: clustering decides *who goes together*; a reviewer needs
to see *why*, in the terms they already trust — a consensus barcode, how tight
the cluster is and how far from its neighbours, the nearest known species and
its identity, whether BOLD's BINs agree, where and how big the specimens were,
and a few photographs.

Discovery hands out *finished* proposals: :func:`candidate_species` clusters the
specimens triage flagged novel under their parent taxon and fills each
proposal's parent lineage and nearest known species from the engine's results,
so a workflow only reads, writes and reports. The proposal and its evidence are
the typed, versioned records of :mod:`biodiscover.storage.evidence`
(:class:`~biodiscover.storage.evidence.CandidateProposal`,
:class:`~biodiscover.storage.evidence.Evidence`), which the database stores and
the TUI and exports read; see that module for every field.

* :func:`build_proposals` — evidence for every candidate of a fitted clusterer;
* :func:`compute_evidence` — the evidence of one member list (what a review
  that splits or merges candidates recomputes);
* :func:`discover_candidates` — cluster barcodes and build their proposals;
* :func:`candidate_species` — the same from triage results (parents and nearest
  known species from the engine).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any, Callable, Collection, Hashable, Mapping, Sequence

import numpy as np

from biodiscover.discovery.clustering import (BarcodeDistances, BarcodeGapThreshold, ClusteringConfig, SpeciesClusterer,
                                              make_clusterer)
from biodiscover.storage.distance import (cross_p_distance, kmer_presence, mash_distance, p_distance,
                                          pairwise_p_distance)
from biodiscover.storage.evidence import (
    BinEvidence,
    CandidateProposal,
    DroppedKey,
    Evidence,
    Geography,
    Member,
    MemberHit,
    NearSpecies,
    NearestCandidate,
    NearestKnown,
    RepresentativeImage,
    SizeStats,
    SizeSummary,
    Spread,
    best_identity,
    short_reads,
    twin_threshold, nearest_first)
from biodiscover.storage.errors import NotFittedError
from biodiscover.storage.records import RANKS, Specimen, determination, placement

if TYPE_CHECKING:
    from biodiscover.discovery.engine import TriageResult

log = logging.getLogger(__name__)

__all__ = [
    "CandidateProposal",
    "align_members",
    "build_proposals",
    "candidate_species",
    "compute_evidence",
    "congeners_apart",
    "consensus_barcode",
    "discover_candidates",
    "dropped_keys",
    "near_species",
    "nearest_candidates",
    "nearest_in_database",
    "nearest_known",
    "novel_parent",
    "recompute_evidence",
    "regroup_near_species",
]


#: members a candidate's consensus barcode is aligned from (pyfamsa): evenly spread over a bigger candidate,
#: since a consensus of 50 barcodes of one species is settled and the alignment's cost grows with every one
MAX_MSA = 50
#: the other candidates, nearest by their k-mer estimate, whose consensus is aligned to find a candidate's closest
#: (``nearest_candidates``)
NEAREST_ALIGNED = 10
#: how much farther than the nearest another run's candidate may lie and still be taken as the closest for being
#: the earlier (``nearest_candidates``' ``same_within``): what two consensus barcodes of one species differ by, a few
#: bases of 658. Why no more: with the whole species threshold (2.75 %), a week-3 *Memphis ada* was linked to week 1's
#: *M. beatrix* at 1.8 % instead of week 2's *M. ada* at 0.0 % (3 such pairs in three real weeks, against 1)
CONSENSUS_NOISE = 0.005


# ---------------------------------------------------------------------------------
# pieces of evidence
# ---------------------------------------------------------------------------------
def consensus_barcode(seqs: Sequence[str], max_msa: int = MAX_MSA) -> str:
    """Majority-rule consensus of a pyfamsa multiple alignment.

    Columns where gaps are the majority are dropped (an insertion in a minority
    of reads is not part of the species' barcode); ``N`` never wins over a base.
    One sequence is its own consensus.
    """
    return align_members([f"s{i}" for i in range(len(seqs))], seqs, max_msa)[0]


def align_members(ids: Sequence[str], seqs: Sequence[str], max_msa: int = MAX_MSA) -> tuple[str, dict[str, str]]:
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

    # one thread: these MSAs are of a few barcodes, where FAMSA's default thread pool (every core) costs
    # more than it saves (~15 % of the CPU); the alignment is the same (integer scores, same order of work)
    ali = pyfamsa.Aligner(guide_tree="upgma", threads=1).align(
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
        out.append(max(sorted(bases), key=lambda b: bases[b]).decode() if bases else "N")
    return "".join(out), aligned


def nearest_known(queries: Sequence[str], reference: Sequence[Specimen], top: int = 20,
                  k: int = 8) -> list[NearestKnown | None]:
    """Best reference barcode per query: k-mer cosine picks ``top`` hits,
    alignment (p-distance) ranks them. ``top_distances``: p-distances of the
    aligned top hits, ascending; None where the reference has no barcode."""
    refs = [r for r in reference if r.dna_barcode]
    if not refs or not queries:
        return [None] * len(queries)
    ref_seqs = [(r.dna_barcode or "").upper() for r in refs]
    a = kmer_presence([q.upper() for q in queries], k)
    b = kmer_presence(ref_seqs, k)
    # cosine of k-mer sets ranks candidates (containment would favour short references)
    inter = np.asarray((a @ b.T).todense(), dtype=np.float32)
    norm = np.sqrt(np.asarray(a.sum(axis=1)).reshape(-1, 1) * np.asarray(b.sum(axis=1)).reshape(1, -1))
    sim = inter / np.maximum(norm, 1.0)
    out: list[NearestKnown | None] = []
    for i, q in enumerate(queries):
        cand = np.argsort(-sim[i], kind="stable")[:top]
        d = cross_p_distance([q], [ref_seqs[j] for j in cand], max_aligned=0.3)[0]
        r = refs[int(cand[int(np.argmin(d))])]
        out.append(NearestKnown(species=r.species, genus=r.genus, processid=r.processid,
                                identity=float(1.0 - d.min()), top_distances=tuple(sorted(float(x) for x in d))))
    return out


def _stats(values: Sequence[float | None]) -> SizeStats | None:
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if v.size == 0:
        return None
    return SizeStats(n=int(v.size), median=float(np.median(v)), min=float(v.min()), max=float(v.max()))


def _geography(members: Sequence[Specimen]) -> Geography:
    coords = [(m.coord_lat, m.coord_lon) for m in members if m.coord_lat is not None and m.coord_lon is not None]
    geo = Geography(countries=dict(Counter(m.country for m in members if m.country).most_common()),
                    provinces=dict(Counter(m.province_state for m in members if m.province_state).most_common()),
                    n_with_coordinates=len(coords))
    if coords:
        lat = np.array([c[0] for c in coords], dtype=float)
        lon = np.array([c[1] for c in coords], dtype=float)
        geo = dataclasses.replace(
            geo, lat_range=(float(lat.min()), float(lat.max())), lon_range=(float(lon.min()), float(lon.max())),
            centroid=(float(lat.mean()), float(lon.mean())),
            bbox=(float(lat.min()), float(lat.max()), float(lon.min()), float(lon.max())))
    return geo


#: pairs of members the distance matrix estimated at or above this (not aligned) are measured exactly (``_within``)
WITHIN_ALIGNED = 0.12


def _within(seqs: Sequence[str], max_members: int = 200, max_values: int = 500
            ) -> tuple[Spread, tuple[float, ...]] | None:
    """(mean and max, a sample of the pairwise p-distances) among members."""
    if len(seqs) < 2:
        return None
    if len(seqs) > max_members:
        seqs = [seqs[i] for i in np.linspace(0, len(seqs) - 1, max_members).astype(int)]
    d = pairwise_p_distance(list(seqs), max_aligned=WITHIN_ALIGNED)
    rows, cols = np.triu_indices(len(seqs), k=1)
    values = d[rows, cols].astype(float)
    # The matrix keeps the k-mer estimate (or its floor) for pairs it did not align: right for clustering's
    # "far apart", wrong as a within distance when the pair is two partial reads sharing a few dozen bases —
    # a real candidate of one species read "members ≤ 18.1 % apart: no gap" from a 266-base read and two 407-base
    # 3' fragments. Those pairs are aligned exactly; a pair with too little in common to compare is left out.
    # (``float32``: the matrix's floor of 0.12 is 0.11999999731779099 in double, and compared with the double
    # ``WITHIN_ALIGNED`` those pairs were kept as measured: six of the 20k review run's candidates, each of one
    # species, read "members ≤ 12.0 % apart"). Measured strictly: two partial reads sharing under the floor are
    # not compared on the columns the floor forced on them (``p_distance``'s ``strict``).
    for i in np.nonzero(values >= np.float32(WITHIN_ALIGNED))[0].tolist():
        values[i] = p_distance(seqs[rows[i]], seqs[cols[i]], 1.0, strict=True)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    sample = values[np.linspace(0, values.size - 1, min(values.size, max_values)).astype(int)]
    return Spread(mean=float(values.mean()), max=float(values.max())), tuple(float(v) for v in sample)


def _bins(members: Sequence[Specimen], candidate: int | None,
          holders: Mapping[str, Collection[int]] | None,
          holder_members: Mapping[tuple[str, int], str] | None = None) -> BinEvidence:
    """BIN counts of the members; ``holders``: BIN → ids of candidates holding it (this one may be among them);
    ``holder_members``: (BIN, id) → one of that candidate's specimens with the BIN (what says later which
    proposal holds it)."""
    bins = Counter(s.dna_bin for s in members if s.dna_bin)
    dominant = bins.most_common(1)[0][0] if bins else None
    shared: list[int] = []
    if dominant is not None and holders is not None:
        shared = sorted(int(x) for x in holders.get(dominant, ()) if x != candidate)
    who = holder_members or {}
    return BinEvidence(counts=dict(bins.most_common()), dominant=dominant,
                       agreement=(bins[dominant] / sum(bins.values())) if dominant else None,
                       n_with_bin=int(sum(bins.values())), shared_with=tuple(shared),
                       shared_members=tuple(who[(dominant, x)] for x in shared if dominant and (dominant, x) in who))


def _assemble(members: Sequence[Specimen], probabilities: np.ndarray, *, consensus: str,
              alignment: Mapping[str, str], nearest: NearestKnown | None, between: NearestCandidate | None,
              bins: BinEvidence, candidate: int | None, threshold: float | None, linkage: str | None,
              hdbscan_agreement: float | None, dna: bool, max_images: int) -> Evidence:
    """One :class:`Evidence` from its computed pieces (the one place its fields are filled)."""
    order = np.argsort(-probabilities, kind="stable")
    images = [RepresentativeImage(members[j].processid, str(members[j].image_path))
              for j in order if members[j].image_path is not None][:max_images]
    within = _within([s.dna_barcode for s in members if s.dna_barcode]) if dna else None
    return Evidence(
        candidate=candidate,
        size=len(members),
        # a candidate of one holds its member wholly, whatever figure the member had among others (a split)
        mean_probability=(1.0 if len(members) == 1 else float(probabilities.mean())) if len(members) else None,
        hdbscan_agreement=hdbscan_agreement,
        threshold=threshold,
        linkage=linkage,
        consensus_barcode=consensus or None,
        consensus_length=len(consensus),
        within_distance=within[0] if within else None,
        within_distances=within[1] if within else (),
        nearest_known_distances=nearest.top_distances if nearest else (),
        alignment=dict(alignment) if len(alignment) > 1 else {},
        between_distance=between,
        nearest_known=nearest,
        bin=bins,
        geography=_geography(members),
        size_summary=SizeSummary(
            image_measurement_value=_stats([s.image_measurement_value for s in members]),
            area_fraction=_stats([s.area_fraction for s in members]),
            scale_factor=_stats([s.scale_factor for s in members])),
        representative_images=tuple(images),
    )


def nearest_candidate(consensus: str, neighbours: Mapping[int, str] | None,
                      neighbour_members: Mapping[int, str] | None = None, candidate: int | None = None
                      ) -> NearestCandidate | None:
    """The candidate of ``neighbours`` (consensus barcodes by id, ``candidate`` itself left out) whose consensus
    is nearest ``consensus`` by p-distance, with one of its specimens from ``neighbour_members``; None when
    there is no consensus or no other candidate to compare."""
    others = {c: seq for c, seq in (neighbours or {}).items() if c != candidate}
    return nearest_candidates([consensus], others, neighbour_members)[0]


def nearest_candidates(consensuses: Sequence[str], neighbours: Mapping[int, str] | None,
                       neighbour_members: Mapping[int, str] | None = None,
                       same_within: Sequence[float | None] | None = None) -> list[NearestCandidate | None]:
    """:func:`nearest_candidate` of each of ``consensuses`` among the same ``neighbours`` (the k-mer sketches of
    the neighbours are made once, not once a query). ``same_within[i]``: a distance within which query *i* and a
    neighbour are one species; among such neighbours no more than :data:`CONSENSUS_NOISE` farther than the
    nearest, the one with the lowest id is taken (see :func:`nearest_in_database`)."""
    others = {c: seq for c, seq in (neighbours or {}).items() if seq}
    out: list[NearestCandidate | None] = [None] * len(consensuses)
    asked = [i for i, seq in enumerate(consensuses) if seq]
    if not others or not asked:
        return out
    ids = list(others)
    seqs = [others[c].upper() for c in ids]
    # the nearest few by their k-mer estimate are aligned, not every pair within 12 %: a week's 100 candidates
    # against 200 of earlier weeks aligned 22,000 pairs of one fauna's congeners (3 s); the nearest by
    # p-distance is among the nearest by estimate (``storage.distance.mash_distance``)
    rough = mash_distance(kmer_presence([consensuses[i].upper() for i in asked], 8), kmer_presence(seqs, 8), 8)
    for row, i in enumerate(asked):
        near = np.argsort(rough[row], kind="stable")[:NEAREST_ALIGNED]
        d = cross_p_distance([consensuses[i]], [seqs[j] for j in near])[0]
        cut = same_within[i] if same_within is not None else None
        same = [k for k in range(len(near)) if cut is not None and d[k] <= min(cut, float(d.min()) + CONSENSUS_NOISE)]
        k = min(same, key=lambda x: ids[int(near[x])]) if same else int(np.argmin(d))
        if np.isfinite(d[k]):
            j = int(near[k])
            out[i] = NearestCandidate(nearest_candidate=int(ids[j]), distance=float(d[k]),
                                      member=(neighbour_members or {}).get(ids[j]))
    return out


def nearest_in_database(proposals: Sequence[CandidateProposal], others: Mapping[int, str],
                        other_members: Mapping[int, str]) -> list[CandidateProposal]:
    """``proposals`` (a run's, evidence computed) with each one's closest candidate looked for among ``others``
    too: the consensus barcodes of the live candidates of the database's other runs, by proposal id, with one
    specimen of each (``other_members``, what says later which proposal holds it). Where one of those is at
    least as near as the run's own closest candidate, it is the closest candidate: ``nearest_candidate`` is then
    that proposal's id and its run is the holder's (``Database.proposal_detail``, ``Database.twins``). Among those
    within the species threshold (``storage.evidence.twin_threshold``: one species) and as near as the nearest
    (within :data:`CONSENSUS_NOISE`), the earliest (lowest id) is taken: the candidate the species was first
    proposed as, which stays when a middle week is triaged again (re-triaging week 2 while week 3 was stored
    linked week 2's candidates to week 3's, whose re-triage then left 14 of week 1's 106 without a twin on a real
    batch).

    Why: weekly batches of one fauna propose the same new species every week. The clustering compares a run's
    candidates with each other only, so week 2's *Adelpha* read "closest candidate: #148, 6.8 % away" while
    week 1's #10 was 0.2 % away; 101 of 104 week-2 candidates of a real Costa Rican batch had such a twin, and
    accepting both made two provisional names for one species. Consensus barcodes only, not members."""
    asked = [p.evidence.consensus_barcode or "" for p in proposals]
    found = nearest_candidates(asked, others, other_members,
                               [twin_threshold(p.evidence.threshold) for p in proposals])
    out = list(proposals)
    for i, near in enumerate(found):
        own = out[i].evidence.between_distance
        if near is not None and (own is None or near.distance <= own.distance
                                 or near.distance <= twin_threshold(out[i].evidence.threshold)):
            out[i] = dataclasses.replace(out[i], evidence=dataclasses.replace(out[i].evidence, between_distance=near))
    return out


def compute_evidence(
    members: Sequence[Specimen],
    probabilities: Sequence[float] | None = None,
    *,
    candidate: int | None = None,
    reference: Sequence[Specimen] | None = None,
    nearest: NearestKnown | None = None,
    neighbours: Mapping[int, str] | None = None,
    neighbour_members: Mapping[int, str] | None = None,
    bin_holders: Mapping[str, Collection[int]] | None = None,
    threshold: float | None = None,
    linkage: str | None = None,
    hdbscan_agreement: float | None = None,
    max_images: int = 3,
    max_msa: int = MAX_MSA,
) -> Evidence:
    """The evidence of one candidate from its member specimens alone.

    Why apart from :func:`build_proposals`: a reviewer who splits or merges
    candidates changes the member lists, and the new candidates need evidence
    computed exactly as discovery computes it, without a clusterer.
    ``probabilities``: membership per member (default 1.0); ``nearest``: the
    nearest known species when the caller knows it (else looked up in
    ``reference`` by the consensus barcode, else none); ``neighbours``: other
    candidates' consensus barcodes by id (for ``between_distance``); ``neighbour_members``: one specimen of
    each, by the same id (what says later which proposal holds that candidate);
    ``bin_holders``: BIN → ids of other candidates holding it; ``threshold``,
    ``linkage``, ``hdbscan_agreement``: the clustering facts to record.
    """
    if not members:
        raise ValueError("evidence needs at least one member")
    probs = np.ones(len(members)) if probabilities is None else np.asarray(probabilities, dtype=float)
    if probs.shape != (len(members),):
        raise ValueError(f"{probs.size} probabilities for {len(members)} members")
    consensus, alignment = align_members([m.processid for m in members], [m.dna_barcode or "" for m in members],
                                         max_msa)
    if nearest is None and reference is not None and consensus:
        nearest = nearest_known([consensus], reference)[0]
    between = nearest_candidate(consensus, neighbours, neighbour_members, candidate)
    return _assemble(members, probs, consensus=consensus, alignment=alignment, nearest=nearest, between=between,
                     bins=_bins(members, candidate, bin_holders), candidate=candidate, threshold=threshold,
                     linkage=linkage, hdbscan_agreement=hdbscan_agreement,
                     dna=any(m.dna_barcode for m in members), max_images=max_images)


# ---------------------------------------------------------------------------------
# assembling proposals
# ---------------------------------------------------------------------------------
def build_proposals(
    specimens: Sequence[Specimen],
    clusterer: SpeciesClusterer,
    *,
    parents: Sequence[tuple[str, str] | None] | None = None,
    lineages: Sequence[Mapping[str, str]] | None = None,
    reference: Sequence[Specimen] | None = None,
    novelty: Sequence[float] | None = None,
    max_images: int = 3,
    max_msa: int = MAX_MSA,
    evidence: bool = True,
) -> list[CandidateProposal]:
    """Evidence for every candidate of a clusterer fitted on ``specimens`` (same order).

    ``parents[i]``: (rank, name) of specimen *i*'s deepest confident parent
    taxon (what it was grouped under); ``lineages[i]``: its whole determination above species
    (:func:`~biodiscover.storage.records.determination`; default: its parent alone), from which a candidate is
    placed (:func:`~biodiscover.storage.records.placement`); ``reference``: labelled specimens to find
    the nearest known species in; ``novelty[i]``: its novelty probability.
    Proposals come out largest first. ``evidence=False``: members, parent and
    novelty only, with an empty :class:`Evidence` (no consensus MSA, no
    distances): for a caller that writes no evidence (``triage --results``
    without a database names each specimen's candidate and nothing more);
    such proposals are not for storing or review.
    """
    if not clusterer.is_fitted:
        raise NotFittedError("the clusterer is not fitted; call fit() first")
    labels = clusterer.labels_
    n = len(specimens)
    if labels.shape[0] != n:
        raise ValueError(f"clusterer was fitted on {labels.shape[0]} specimens, got {n}")
    for name, seq in (("parents", parents), ("lineages", lineages), ("novelty", novelty)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{name} has {len(seq)} entries for {n} specimens")
    by_cand: dict[int, list[int]] = defaultdict(list)
    for i, c in enumerate(labels.tolist()):
        by_cand[c].append(i)
    cands = sorted(by_cand, key=lambda c: (-len(by_cand[c]), c))
    dna = clusterer.config.metric == "p"

    if not evidence:
        return [_proposal([specimens[i] for i in by_cand[c]], by_cand[c], clusterer,
                          _determinations(by_cand[c], parents, lineages), novelty) for c in cands]

    consensus: dict[int, str] = {}
    alignment: dict[int, dict[str, str]] = {}
    for c in cands:
        mem = [specimens[i] for i in by_cand[c]]
        consensus[c], alignment[c] = align_members([m.processid for m in mem], [m.dna_barcode or "" for m in mem],
                                                   max_msa)

    # nearest other candidate of the same group, by consensus p-distance
    between: dict[int, NearestCandidate | None] = {c: None for c in cands}
    by_group: dict[Hashable, list[int]] = defaultdict(list)
    for c in cands:
        if consensus[c]:
            by_group[clusterer.candidate_group_.get(c)].append(c)
    for group in by_group.values():
        if len(group) < 2:
            continue
        d = pairwise_p_distance([consensus[c] for c in group])
        np.fill_diagonal(d, np.inf)
        for r, c in enumerate(group):
            j = int(np.argmin(d[r]))
            between[c] = NearestCandidate(nearest_candidate=int(group[j]), distance=float(d[r, j]),
                                          member=specimens[by_cand[group[j]][0]].processid)

    nearest: dict[int, NearestKnown | None] = {c: None for c in cands}
    if reference is not None:
        with_seq = [c for c in cands if consensus[c]]
        for c, hit in zip(with_seq, nearest_known([consensus[c] for c in with_seq], reference)):
            nearest[c] = hit

    bin_holders: dict[str, set[int]] = defaultdict(set)
    bin_members: dict[tuple[str, int], str] = {}
    for c in cands:
        for i in by_cand[c]:
            bin_id = specimens[i].dna_bin
            if bin_id:
                bin_holders[bin_id].add(c)
                bin_members.setdefault((bin_id, int(c)), specimens[i].processid)

    out: list[CandidateProposal] = []
    for c in cands:
        idx = by_cand[c]
        mem = [specimens[i] for i in idx]
        near = nearest[c]
        found = _assemble(
            mem, clusterer.probabilities_[idx], consensus=consensus[c], alignment=alignment[c], nearest=near,
            between=between[c], bins=_bins(mem, c, bin_holders, bin_members), candidate=int(c),
            threshold=float(clusterer.threshold_), linkage=clusterer.linkage_,
            hdbscan_agreement=float(clusterer.agreement_.get(c, 1.0)), dna=dna, max_images=max_images)
        out.append(_proposal(mem, idx, clusterer, _determinations(idx, parents, lineages), novelty, near=near,
                             evidence=found))
    return out


def _determinations(idx: Sequence[int], parents: Sequence[tuple[str, str] | None] | None,
                    lineages: Sequence[Mapping[str, str]] | None) -> list[Mapping[str, str]]:
    """The determinations of members ``idx``: their lineages, else their parent taxa alone (none: unnamed)."""
    if lineages is not None:
        return [lineages[i] for i in idx]
    given = [parents[i] if parents is not None else None for i in idx]
    return [{p[0]: p[1]} if p else {} for p in given]


def _proposal(mem: Sequence[Specimen], idx: list[int], clusterer: SpeciesClusterer,
              determinations: Sequence[Mapping[str, str]], novelty: Sequence[float] | None, *,
              near: NearestKnown | None = None, evidence: Evidence | None = None) -> CandidateProposal:
    """One candidate's proposal: members (membership, outlier score), parent where more than half its members are
    named and none elsewhere (:func:`~biodiscover.storage.records.placement`), mean novelty; ``evidence`` None = an
    empty :class:`Evidence` (``build_proposals(evidence=False)``)."""
    prob = clusterer.probabilities_[idx]
    members = tuple(Member(s.processid, float(p), float(clusterer.outlier_scores_[i]))
                    for s, p, i in zip(mem, prob, idx))
    placed = placement(determinations)
    parent = list(placed.items())[-1] if placed else None
    return CandidateProposal(
        members=members,
        parent_rank=parent[0] if parent else None,
        parent_name=parent[1] if parent else None,
        parent_lineage={**(_shared_lineage(mem, parent) or {}), **placed} if parent else None,
        novelty=float(np.mean([novelty[i] for i in idx])) if novelty is not None else None,
        nearest_species=near.species if near else None,
        nearest_identity=near.identity if near else None,
        evidence=evidence if evidence is not None else Evidence(),
    )


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
    lineages: Sequence[Mapping[str, str]] | None = None,
    threshold: BarcodeGapThreshold | None = None,
    config: ClusteringConfig = ClusteringConfig(),
    reference: Sequence[Specimen] | None = None,
    novelty: Sequence[float] | None = None,
    evidence: bool = True,
) -> tuple[SpeciesClusterer, list[CandidateProposal]]:
    """Cluster novel specimens within their parent taxon and build their proposals.

    The one call the engine needs: ``config`` chooses the method
    (``discovery.clustering.make_clusterer``), ``threshold`` is the learned barcode
    gap. Specimens without a barcode cannot be placed by DNA and are refused
    with their processids named. ``evidence=False``: see :func:`build_proposals`.
    """
    if config.metric != "p":
        raise ValueError("discover_candidates clusters barcodes; fit a clusterer on EmbeddingDistances for embeddings")
    missing = [s.processid for s in specimens if not s.dna_barcode]
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise ValueError(f"{len(missing)} specimen(s) have no barcode to cluster: {shown}")
    groups = [tuple(p) if p is not None else None for p in parents] if parents is not None else None
    clusterer = make_clusterer(config, threshold)
    # without evidence only the partition is read (members, parent, order): a method may skip the rest
    clusterer.partition_only = not evidence
    clusterer.fit(BarcodeDistances([s.dna_barcode or "" for s in specimens]), groups)
    proposals = build_proposals(specimens, clusterer, parents=parents, lineages=lineages, reference=reference,
                                novelty=novelty,
                                evidence=evidence)
    log.info("%d specimens → %d candidate species", len(specimens), len(proposals))
    return clusterer, proposals


# ---------------------------------------------------------------------------------
# from triage results to finished proposals
# ---------------------------------------------------------------------------------
def novel_parent(r: TriageResult) -> tuple[str, str] | None:
    """The taxon a novel specimen is grouped under: its deepest confident rank above species."""
    if not r.deepest_rank:
        return None
    for rank in reversed(RANKS[:-1]):
        label = r.labels.get(rank)
        if RANKS.index(rank) <= RANKS.index(r.deepest_rank) and label:
            return rank, label
    return None


def candidate_species(specimens: Sequence[Specimen], results: Sequence[TriageResult],
                      threshold: BarcodeGapThreshold | None = None,
                      config: ClusteringConfig = ClusteringConfig(), *,
                      reference_barcode: "Callable[[str], str | None] | None" = None,
                      reference_image: "Callable[[str], str | None] | None" = None,
                      reference_lineage: "Callable[[str], Sequence[str | None] | None] | None" = None,
                      species_keys: "SpeciesKeys | None" = None,
                      chance_identity: "Callable[[int], float | None] | None" = None,
                      species_apart: "SpeciesApart | None" = None,
                      dropped_matches: "DroppedMatches | None" = None,
                      evidence: bool = True) -> list[CandidateProposal]:
    """Finished proposals for the specimens triage flagged novel (with a barcode and a DNA call).

    Clustered under their parent taxon (:func:`novel_parent`); each proposal's
    parent lineage and nearest known species come from the engine's results
    (:func:`with_engine_evidence`). ``threshold``: the bundle's learned
    ``BarcodeGapThreshold`` (``DiscoveryModel.barcode_gap_``); None = the
    clustering's default cut. ``config``: the clustering method and settings
    (record them with the run: ``discovery.clustering.run_record``). ``evidence=False``: the same
    candidates (members, parent, novelty) without the evidence a database stores and a reviewer reads
    (:func:`build_proposals`) — for ``triage --results`` without a database, which writes only each
    specimen's candidate name. ``species_keys``: a species → (its reference keys, their countries) lookup
    (``DiscoveryModel.species_keys``), for the evidence's nearest species. ``chance_identity``: the identity
    unrelated sequences reach over so many bases (``DiscoveryModel.null_floor``); ``species_apart``: the reference's
    distance between two species (``DiscoveryModel.species_apart``); ``dropped_matches``: the records the reference
    refused or set aside that specimens match (``DiscoveryModel.dropped_matches``, asked once for every novel one).
    """
    novel = [(s, r) for s, r in zip(specimens, results) if r.is_novel and s.dna_barcode and "dna" in r.modality]
    if not novel:
        return []
    _, proposals = discover_candidates([s for s, _ in novel], parents=[novel_parent(r) for _, r in novel],
                                       lineages=[determination(r.labels, r.deepest_rank, r.deepest_label)
                                                 for _, r in novel],
                                       novelty=[r.novelty for _, r in novel], threshold=threshold, config=config,
                                       evidence=evidence)
    if not evidence:
        return proposals
    by_pid = {s.processid: r for s, r in novel}
    dropped = dropped_matches([(s.processid, s.dna_barcode or "", r.identity) for s, r in novel]) \
        if dropped_matches is not None else {}
    return [with_engine_evidence(p, [by_pid[m.processid] for m in p.members if m.processid in by_pid],
                                 reference_barcode=reference_barcode, reference_image=reference_image,
                                 reference_lineage=reference_lineage, species_keys=species_keys,
                                 chance_identity=chance_identity, species_apart=species_apart,
                                 dropped={m.processid: dropped[m.processid] for m in p.members
                                          if m.processid in dropped})
            for p in proposals]


def with_engine_evidence(p: CandidateProposal, results: Sequence[TriageResult], *,
                         reference_barcode: "Callable[[str], str | None] | None" = None,
                         reference_image: "Callable[[str], str | None] | None" = None,
                         reference_lineage: "Callable[[str], Sequence[str | None] | None] | None" = None,
                         species_keys: "SpeciesKeys | None" = None,
                         chance_identity: "Callable[[int], float | None] | None" = None,
                         species_apart: "SpeciesApart | None" = None,
                         dropped: "Mapping[str, Sequence[DroppedMatch]] | None" = None) -> CandidateProposal:
    """Fill a proposal's parent lineage and nearest known species from the members' engine results.

    A new collection carries no identifications, so the members' own labels say
    nothing about the parent's order and family; the engine's labels (down to the
    parent rank, where every member agrees) do, and the taxonomy graph needs them
    to place the candidate. The engine also aligned every member to its best
    reference, which is the nearest known species the reviewer is shown.

    That species and genus are the best key's own (``reference_lineage``: a key's processid → its lineage
    over ``RANKS``), not the result's labels: a photograph's call folded into the DNA call
    (``multimodal.combine_results``) changes the labels at the ranks the DNA did not name, and the
    reviewer was then shown one species' name beside another's barcode and identity (17 of the demo's 22
    candidates). Without the lookup, the labels stand in: a DNA result's labels are its best key's lineage.

    ``near_species``: every species the members were aligned to (each result's ``near``, and its best key's),
    with its keys' count and countries from ``species_keys`` (:func:`near_species`), and how far apart the
    first few congeners' keys lie (``species_apart``, :func:`congeners_apart`). Each member's hit records the
    identity unrelated sequences reach over the bases it shares (``chance_identity``): what marks a read that is
    not usable as COI (``storage.evidence.unusable_reads``). ``dropped``: member → the refused or set-aside
    reference records it matches (:func:`dropped_keys`).
    """
    if not results:
        return p
    changes: dict[str, Any] = {}
    if p.parent_rank in RANKS:
        lineage: dict[str, str] = {}
        for rank in RANKS[: RANKS.index(p.parent_rank) + 1]:
            names = {r.labels.get(rank) for r in results}
            name = names.pop() if len(names) == 1 else None
            if name is not None:
                lineage[rank] = name
        if p.parent_name:
            lineage[p.parent_rank] = p.parent_name
        changes["parent_lineage"] = {**lineage, **(p.parent_lineage or {})}
    def key_names(r: TriageResult) -> tuple[str | None, str | None]:
        """(species, genus) of the key ``r`` was measured against."""
        lineage = reference_lineage(r.top_hit) if reference_lineage is not None and r.top_hit else None
        if lineage is None:
            return r.labels.get("species"), r.labels.get("genus")
        return lineage[RANKS.index("species")], lineage[RANKS.index("genus")]

    # Each member's own best hit, so a reviewer's split or merge can say which species is nearest to the new
    # member set (recompute_evidence); the nearest one's barcode and photo for the review's side-by-side views.
    hits = {r.processid: MemberHit(*key_names(r), r.top_hit, r.identity, r.overlap or None,
                                   chance_identity(r.overlap) if chance_identity is not None and r.overlap else None)
            for r in results}
    short = short_reads(hits)
    # the candidate's identity to the nearest known species: a full-length member's where one was read (a short
    # read's identity runs high: ``storage.evidence.best_identity``)
    best = max([r for r in results if r.processid not in short] or results, key=lambda r: r.identity)
    best_species, best_genus = key_names(best)
    if p.nearest_species is None:
        changes.update(nearest_species=best_species, nearest_identity=best.identity)
    near = p.evidence.nearest_known
    if near is None:
        near = NearestKnown(species=best_species, genus=best_genus,
                            processid=best.top_hit, identity=best.identity,
                            top_distances=tuple(sorted(1.0 - r.identity for r in results)),
                            not_named_because=getattr(best, "reason", None))
    # every hit key's barcode (each looked up once), so a split or merge whose nearest species is another
    # member's hit still shows it; the nearest key's among them
    keys = sorted({h.processid for h in hits.values() if h.processid})
    found = {pid: reference_barcode(pid) for pid in keys} if reference_barcode is not None else {}
    if near.processid and near.barcode is None and reference_barcode is not None:
        barcode = found[near.processid] if near.processid in found else reference_barcode(near.processid)
        near = dataclasses.replace(near, barcode=barcode)
    if near.processid and near.image is None and reference_image is not None:
        near = dataclasses.replace(near, image=reference_image(near.processid))
    if near.processid and near.barcode:
        found[near.processid] = near.barcode
    aligned: dict[str, list[tuple[str, str | None, float]]] = {}
    for r in results:
        species, genus = key_names(r)
        pairs = [(str(sp), g, float(i)) for sp, g, _, i in getattr(r, "near", None) or () if sp]
        if species and r.top_hit and all(sp != species for sp, _, _ in pairs):
            pairs.insert(0, (species, genus, float(r.identity)))
        aligned[r.processid] = pairs
    listed = near_species(aligned, species_keys, short=short)
    changes["evidence"] = dataclasses.replace(p.evidence, nearest_known=near,
                                              nearest_known_distances=near.top_distances, member_hits=hits,
                                              hit_barcodes={pid: b for pid, b in sorted(found.items()) if b},
                                              near_species=congeners_apart(listed, species_apart)
                                              if species_apart is not None else listed,
                                              dropped_keys=dropped_keys(dropped or {}))
    return dataclasses.replace(p, **changes)


#: (species a, species b, limit) → the reference's p-distance between their closest keys, None beyond ``limit``
SpeciesApart = Callable[[str, str, float], "float | None"]
#: one dropped record a specimen matches: (record, its species, why it was dropped, identity, bases shared)
DroppedMatch = tuple[str, "str | None", str, float, int]
#: (processid, barcode, identity to its best key kept) of each specimen → processid → the records it matches
DroppedMatches = Callable[[Sequence[tuple[str, str, float]]], Mapping[str, Sequence[DroppedMatch]]]
#: listed species whose keys' distances to each other are measured (the review's Evidence tab lists 5)
APART_SHOWN = 5


def congeners_apart(near: Sequence[NearSpecies], species_apart: SpeciesApart,
                    shown: int = APART_SHOWN) -> tuple[NearSpecies, ...]:
    """``near`` with each of its first ``shown`` species' ``apart``: the other listed species of its genus whose keys
    lie within the members' distance to either of the two (``species_apart``), and how far. What
    ``storage.evidence.indistinct_congeners`` reads; each pair is measured once."""
    def genus(s: NearSpecies) -> str:
        return s.genus or s.species.split()[0]

    out = list(near)
    measured: dict[frozenset[str], float | None] = {}
    for i, a in enumerate(near[:shown]):
        apart: dict[str, float] = {}
        for b in near[:shown]:
            if b.species == a.species or genus(a) != genus(b) or a.identity is None or b.identity is None:
                continue
            pair = frozenset((a.species, b.species))
            if pair not in measured:
                measured[pair] = species_apart(a.species, b.species, max(1.0 - a.identity, 1.0 - b.identity))
            d = measured[pair]
            if d is not None:
                apart[b.species] = d
        out[i] = dataclasses.replace(a, apart=apart)
    return tuple(out)


def dropped_keys(matches: Mapping[str, Sequence[DroppedMatch]]) -> tuple[DroppedKey, ...]:
    """The dropped records a member set matches (member → its matches), each with every member that matches it and
    the best member's identity and shared bases; the record most members match first."""
    found: dict[str, DroppedKey] = {}
    for pid, records in matches.items():
        for rec, species, why, identity, overlap in records:
            k = found.get(rec) or DroppedKey(rec, species, why)
            if k.identity is None or identity > k.identity:
                k = dataclasses.replace(k, identity=float(identity), overlap=int(overlap))
            found[rec] = dataclasses.replace(k, members={**k.members, pid: float(identity)})
    return tuple(sorted(found.values(), key=lambda k: (-len(k.members), -(k.identity or 0.0), k.processid)))


def regroup_dropped(sources: Sequence[Evidence], keep: Collection[str]) -> tuple[DroppedKey, ...]:
    """The dropped records a member set a reviewer made still matches, from the ``sources``' lists: each with the
    members kept (one none of them matches is dropped); the best identity is the kept members' best, its shared
    bases as the source recorded them."""
    found: dict[str, DroppedKey] = {}
    for ev in sources:
        for k in ev.dropped_keys:
            members = {**(found[k.processid].members if k.processid in found else {}),
                       **{pid: i for pid, i in k.members.items() if pid in keep}}
            if members:
                found[k.processid] = dataclasses.replace(k, members=members, identity=max(members.values()))
    return tuple(sorted(found.values(), key=lambda k: (-len(k.members), -(k.identity or 0.0), k.processid)))


#: a species → (its keys in the reference, {country: keys} or None where the reference records no country)
SpeciesKeys = Callable[[str], "tuple[int, dict[str, int] | None] | None"]


def near_species(aligned: Mapping[str, Sequence[tuple[str, str | None, float]]],
                 species_keys: SpeciesKeys | None = None, short: Collection[str] = ()) -> tuple[NearSpecies, ...]:
    """The known species nearest a member set, nearest first (ties by name), from what each member was aligned
    to: ``aligned``: member processid → (species, genus, identity to that species' best key it met).

    Each species' identity is its best over the members read at full length (``short``: the others;
    :func:`~biodiscover.storage.evidence.best_identity`), and ``members`` keeps every member's, so a split or
    merge recomputes the list from the members it keeps (:func:`regroup_near_species`). ``species_keys`` adds
    its keys' count and countries (None: not known to this caller)."""
    best: dict[str, NearSpecies] = {}
    for pid, pairs in aligned.items():
        for species, genus, identity in pairs:
            s = best.get(species) or NearSpecies(species, genus, None)
            members = {**s.members, pid: max(identity, s.members.get(pid, identity))}
            best[species] = dataclasses.replace(s, genus=s.genus or genus, identity=best_identity(members, short),
                                                members=members)
    out = []
    for s in best.values():
        keys = species_keys(s.species) if species_keys is not None else None
        if keys is not None:
            s = dataclasses.replace(s, n_keys=int(keys[0]), countries=None if keys[1] is None else dict(keys[1]))
        out.append(s)
    return nearest_first(out, short)


def regroup_near_species(sources: Sequence[Evidence], keep: Collection[str]) -> tuple[NearSpecies, ...]:
    """The nearest species of a member set a reviewer made from the ``sources``' lists: each species' identity
    over the members kept (a species none of them met is dropped), its keys as the sources recorded them."""
    merged: dict[str, NearSpecies] = {}
    short = frozenset().union(*(ev.short_reads for ev in sources))
    for ev in sources:
        for s in ev.near_species:
            members = {pid: i for pid, i in s.members.items() if pid in keep}
            if not members:
                continue
            had = merged.get(s.species)
            if had is not None:
                members = {**had.members, **members}
            merged[s.species] = dataclasses.replace(s, identity=best_identity(members, short), members=members)
    return nearest_first(list(merged.values()), short)


def recompute_evidence(members: Sequence[Specimen], probabilities: Sequence[float] | None,
                       sources: Sequence[Evidence], *, neighbours: Mapping[int, str] | None = None,
                       neighbour_members: Mapping[int, str] | None = None, candidate: int | None = None
                       ) -> Evidence:
    """The evidence of a member list a reviewer made (split or merge) from the evidence it came from.

    Everything a member list decides is recomputed by :func:`compute_evidence`
    (consensus, alignment, within distances, BINs, places, sizes, photos). The
    nearest known species is the best of the members' own reference hits
    (``member_hits`` of the ``sources``, exactly how triage chose it), with its
    barcode and photo when a source recorded them; the clustering facts
    (threshold, linkage) are the sources' — the cut the candidates were made with.
    """
    keep = {m.processid for m in members}
    hits: dict[str, MemberHit] = {}
    barcodes: dict[str, str] = {}
    images: dict[str, str] = {}
    for ev in sources:
        hits.update({pid: h for pid, h in ev.member_hits.items() if pid in keep})
        barcodes.update(ev.hit_barcodes)
        nk = ev.nearest_known
        if nk is not None and nk.processid:
            if nk.barcode:
                barcodes[nk.processid] = nk.barcode
            if nk.image:
                images[nk.processid] = nk.image
    nearest: NearestKnown | None = None
    scored = [(h.identity, h) for h in hits.values() if h.identity is not None]
    if scored:
        # a full-length member's hit where one was read, as triage chose it (``storage.evidence.best_identity``)
        short = short_reads(hits)
        full = [(h.identity, h) for pid, h in hits.items() if h.identity is not None and pid not in short]
        top, best = max(full or scored, key=lambda ih: (ih[0], ih[1].processid or ""))
        # the naming's reason for not naming the nearest key's species, where a source's nearest key is that
        # key (its reason was its closest member's): a split dropped the only clue that a known species sat
        # 0.4 % away (FINDINGS F11)
        why = next((ev.nearest_known.not_named_because for ev in sources if ev.nearest_known is not None
                    and ev.nearest_known.processid == best.processid and ev.nearest_known.not_named_because), None)
        nearest = NearestKnown(species=best.species, genus=best.genus, processid=best.processid,
                               identity=top, top_distances=tuple(sorted(1.0 - i for i, _ in scored)),
                               barcode=barcodes.get(best.processid or ""), image=images.get(best.processid or ""),
                               not_named_because=why)
    else:  # older records carry no per-member hits: the sources' nearest species, as recorded
        known = [ev.nearest_known for ev in sources if ev.nearest_known is not None]
        nearest = max(known, key=lambda n: n.identity or 0.0) if known else None
    first = sources[0] if sources else Evidence()
    ev = compute_evidence(members, probabilities, candidate=candidate, nearest=nearest, neighbours=neighbours,
                          neighbour_members=neighbour_members,
                          threshold=first.threshold, linkage=first.linkage)
    used = {h.processid for h in hits.values() if h.processid}
    return dataclasses.replace(ev, member_hits=hits,
                               hit_barcodes={pid: b for pid, b in sorted(barcodes.items()) if pid in used},
                               near_species=regroup_near_species(sources, keep),
                               dropped_keys=regroup_dropped(sources, keep))
