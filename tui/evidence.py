"""Read a proposal's evidence record into what the detail widgets draw.

Evidence is produced by discovery (``discovery.proposals``) as the typed record
:class:`biodiscover.storage.evidence.Evidence`, stored by the database and handed
back as that record, so every reader here names a field instead of guessing
keys; what a record lacks reads as "not recorded". Nothing is computed here
beyond picking and counting what is given.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from biodiscover.storage.evidence import Evidence


def distances(evidence: Evidence) -> tuple[list[float], list[float]]:
    """(within-candidate distances, distances to the nearest known species), fractions."""
    return list(evidence.within_distances), list(evidence.nearest_known_distances)


def aligned_rows(evidence: Evidence, members: Sequence[Any]) -> list[tuple[str, str]]:
    """(processid, sequence) rows for the DNA panel: the evidence's alignment when it has one
    (processid → aligned sequence), else the raw member barcodes."""
    alignment = evidence.alignment
    if alignment:
        order = [m.processid for m in members if m.processid in alignment]
        order += [pid for pid in alignment if pid not in set(order)]
        return [(str(pid), str(alignment[pid])) for pid in order]
    return [(m.processid, m.dna_barcode) for m in members if m.dna_barcode]


def extra_lines(evidence: Evidence) -> list[tuple[str, str]]:
    """(label, value) lines for what evidence adds beyond the histogram: BINs, neighbour, sizes."""
    out: list[tuple[str, str]] = []
    b = evidence.bin
    if b is not None and b.dominant:
        text = f"{b.dominant}" + (f", {b.agreement * 100:.0f}% of members" if b.agreement is not None else "")
        if b.shared_with:
            text += f"; also in #{', #'.join(str(x) for x in b.shared_with)} (over-split?)"
        out.append(("BIN", text))
    w = evidence.within_distance
    if w is not None and w.mean is not None:
        out.append(("within", f"mean {w.mean * 100:.2f}%, max {(w.max or 0) * 100:.2f}%"))
    nb = evidence.between_distance
    if nb is not None:
        out.append(("closest candidate", f"{nb.distance * 100:.1f}% away"))
    sizes = evidence.size_summary.image_measurement_value if evidence.size_summary else None
    if sizes is not None:
        out.append(("body area (px in image)", f"median {sizes.median:.0f} (min {sizes.min:.0f}, max {sizes.max:.0f})"))
    return out


def _fraction(value: Any) -> float | None:
    """An identity or distance as a fraction (0–1): percentages (> 1) are divided by 100."""
    if not isinstance(value, (int, float)) or value != value:
        return None
    return float(value) / 100 if value > 1 else float(value)


@dataclass(frozen=True)
class Gap:
    """The barcode gap of one candidate: its widest within distance against its nearest known species.

    ``nearest`` comes from the evidence's distances to the nearest known species
    when it has them, else from the identity of the nearest known species
    (``1 − identity``, what ``nearest_from`` says). ``threshold`` is the
    clustering threshold the candidate was built with, when recorded.
    """

    within_max: float | None
    nearest: float | None
    nearest_from: str
    threshold: float | None

    @property
    def verdict(self) -> tuple[str, str]:
        """(one line a taxonomist reads at a glance, style) — the comparison only, never a decision."""
        if self.nearest is None:
            return "nearest known species not recorded: no barcode gap to read", "grey50"
        near = f"{self.nearest * 100:.1f}%"
        if self.within_max is not None:
            within = f"{self.within_max * 100:.1f}%"
            if self.nearest > self.within_max:
                return (f"barcode gap: members ≤ {within} apart, nearest known species {near} away", "green")
            return f"no barcode gap: nearest known species {near} away, members up to {within} apart", "yellow"
        if self.threshold is not None and self.nearest <= self.threshold:
            return (f"no gap: single specimen {near} from nearest known species (threshold "
                    f"{self.threshold * 100:.1f}%)", "yellow")
        return f"single specimen, nearest known species {near} away", "default"


def barcode_gap(evidence: Evidence, nearest_identity: Any = None) -> Gap:
    """:class:`Gap` from the evidence (and the summary's nearest identity as a fallback)."""
    within = evidence.within_distances
    within_max = None
    if evidence.within_distance is not None and evidence.within_distance.max is not None:
        within_max = evidence.within_distance.max
    elif within:
        within_max = max(within)
    near = evidence.nearest_known_distances
    if near:
        nearest, source = min(near), "distances"
    else:
        ident = _fraction(nearest_identity)
        nearest, source = (None, "none") if ident is None else (max(0.0, 1.0 - ident), "identity")
    return Gap(within_max, nearest, source, evidence.threshold)


def why_lines(evidence: Evidence, members: Sequence[Any]) -> list[tuple[str, str]]:
    """(label, value) lines saying why these specimens were proposed as one candidate species."""
    out: list[tuple[str, str]] = []
    nov = [m.novelty for m in members if isinstance(getattr(m, "novelty", None), (int, float))]
    if nov:
        out.append(("novelty", f"{min(nov):.2f}–{max(nov):.2f} across members (mean {sum(nov) / len(nov):.2f})"))
    parts = []
    t = evidence.threshold
    if t is not None:
        linkage = evidence.linkage
        parts.append(f"{linkage + ' linkage' if linkage else 'linked'} at ≤ {t * 100:.1f}% p-distance")
    if evidence.hdbscan_agreement is not None:
        parts.append(f"HDBSCAN agrees {evidence.hdbscan_agreement * 100:.0f}%")
    if evidence.mean_probability is not None:
        parts.append(f"mean membership {evidence.mean_probability:.2f}")
    if parts:
        out.append(("clustered", "; ".join(parts)))
    return out


def consensus(evidence: Evidence) -> str | None:
    return evidence.consensus_barcode or None


def places(evidence: Evidence, members: Sequence[Any]) -> tuple[list[tuple[str, int]], list[float] | None]:
    """(place, count) pairs and a lat/lon box: from the evidence's geography when present, else members."""
    geo = evidence.geography
    pairs: list[tuple[str, int]] = []
    bbox: list[float] | None = None
    if geo is not None:
        pairs = [(str(k), int(v)) for k, v in geo.countries.items()]
        if geo.bbox is not None:
            bbox = list(geo.bbox)
    if not pairs:
        counts = Counter(", ".join(x for x in (m.country, m.province_state) if x) or "unknown" for m in members)
        pairs = list(counts.items())
    if bbox is None:
        lats = [m.coord_lat for m in members if m.coord_lat is not None]
        lons = [m.coord_lon for m in members if m.coord_lon is not None]
        if lats and lons:
            bbox = [min(lats), max(lats), min(lons), max(lons)]
    return pairs, bbox


def images(members: Sequence[Any], evidence: Evidence, image_root: Path | None) -> list[tuple[str, Path]]:
    """(processid, path) of member images; representative images (evidence) first."""
    by_pid: dict[str, Path] = {}
    for m in members:
        if m.image_path:
            path = Path(m.image_path)
            if not path.is_absolute() and image_root is not None:
                path = image_root / path
            by_pid[m.processid] = path
    order: list[str] = []
    for r in evidence.representative_images:
        if r.path and r.processid not in by_pid:
            by_pid[r.processid] = Path(r.path) if image_root is None or Path(r.path).is_absolute() \
                else image_root / r.path
        if r.processid in by_pid and r.processid not in order:
            order.append(r.processid)
    order += [pid for pid in by_pid if pid not in order]
    return [(pid, by_pid[pid]) for pid in order]
