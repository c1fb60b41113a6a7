"""Read the proposal evidence JSON into what the detail widgets draw.

Evidence is written by discovery (``discovery.proposals``) and stored as JSON by
storage; older runs or other producers may use slightly different keys, so each
reader tries the known spellings and degrades to "not recorded" rather than
failing. Nothing is computed here beyond picking and counting what is given.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

WITHIN_KEYS = ("within_distances", "within", "intra_distances")
NEAREST_KEYS = ("nearest_known_distances", "nearest_distances", "to_nearest_known")
CONSENSUS_KEYS = ("consensus_barcode", "consensus")


def _first(evidence: Mapping[str, Any], keys: Iterable[str]) -> Any:
    for k in keys:
        if k in evidence and evidence[k] is not None:
            return evidence[k]
    return None


def _numbers(value: Any) -> list[float]:
    """A list of distances, or the values of a {pair: distance} mapping; summaries are not samples."""
    if isinstance(value, Mapping):
        if "values" in value:
            return _numbers(value["values"])
        return []
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [float(v) for v in value if isinstance(v, (int, float))]
    return []


def distances(evidence: Mapping[str, Any]) -> tuple[list[float], list[float]]:
    """(within-candidate distances, distances to the nearest known species), fractions."""
    return _numbers(_first(evidence, WITHIN_KEYS)), _numbers(_first(evidence, NEAREST_KEYS))


def aligned_rows(evidence: Mapping[str, Any], members: Sequence[Any]) -> list[tuple[str, str]]:
    """(processid, sequence) rows for the DNA panel: the evidence's alignment when it has one
    (``alignment``: processid → aligned sequence), else the raw member barcodes."""
    alignment = evidence.get("alignment") or evidence.get("aligned_members")
    if isinstance(alignment, Mapping) and alignment:
        order = [m.processid for m in members if m.processid in alignment]
        order += [pid for pid in alignment if pid not in set(order)]
        return [(str(pid), str(alignment[pid])) for pid in order]
    return [(m.processid, m.dna_barcode) for m in members if m.dna_barcode]


def extra_lines(evidence: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) lines for what evidence adds beyond the histogram: BINs, neighbour, sizes."""
    out: list[tuple[str, str]] = []
    b = evidence.get("bin")
    if isinstance(b, Mapping) and b.get("dominant"):
        agree = b.get("agreement")
        text = f"{b['dominant']}" + (f", {agree * 100:.0f}% of members" if isinstance(agree, (int, float)) else "")
        if b.get("shared_with"):
            text += f"; also in #{', #'.join(str(x) for x in b['shared_with'])} (over-split?)"
        out.append(("BIN", text))
    elif isinstance(evidence.get("bin_agreement"), (int, float)):
        out.append(("BIN agreement", f"{evidence['bin_agreement'] * 100:.0f}%"))
    w = evidence.get("within_distance")
    if isinstance(w, Mapping) and w.get("mean") is not None:
        out.append(("within", f"mean {w['mean'] * 100:.2f}%, max {(w.get('max') or 0) * 100:.2f}%"))
    nb = evidence.get("between_distance")
    if isinstance(nb, Mapping) and nb.get("distance") is not None:
        out.append(("closest candidate", f"{nb['distance'] * 100:.1f}% away"))
    sizes = (evidence.get("size_summary") or {}).get("image_measurement_value")
    if isinstance(sizes, Mapping) and sizes.get("median") is not None:
        out.append(("body area (px in image)",
                    f"median {sizes['median']:.0f} (min {sizes['min']:.0f}, max {sizes['max']:.0f})"))
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


def barcode_gap(evidence: Mapping[str, Any], nearest_identity: Any = None) -> Gap:
    """:class:`Gap` from the evidence (and the summary's nearest identity as a fallback)."""
    within = _numbers(_first(evidence, WITHIN_KEYS))
    w = evidence.get("within_distance")
    within_max = None
    if isinstance(w, Mapping) and isinstance(w.get("max"), (int, float)):
        within_max = float(w["max"])
    elif within:
        within_max = max(within)
    near = _numbers(_first(evidence, NEAREST_KEYS))
    if near:
        nearest, source = min(near), "distances"
    else:
        ident = _fraction(nearest_identity)
        nearest, source = (None, "none") if ident is None else (max(0.0, 1.0 - ident), "identity")
    threshold = evidence.get("threshold")
    return Gap(within_max, nearest, source, float(threshold) if isinstance(threshold, (int, float)) else None)


def why_lines(evidence: Mapping[str, Any], members: Sequence[Any]) -> list[tuple[str, str]]:
    """(label, value) lines saying why these specimens were proposed as one candidate species."""
    out: list[tuple[str, str]] = []
    nov = [m.novelty for m in members if isinstance(getattr(m, "novelty", None), (int, float))]
    if nov:
        out.append(("novelty", f"{min(nov):.2f}–{max(nov):.2f} across members (mean {sum(nov) / len(nov):.2f})"))
    parts = []
    t = evidence.get("threshold")
    if isinstance(t, (int, float)):
        linkage = evidence.get("linkage")
        parts.append(f"{linkage + ' linkage' if isinstance(linkage, str) else 'linked'} at ≤ {t * 100:.1f}% "
                     "p-distance")
    agree = evidence.get("hdbscan_agreement")
    if isinstance(agree, (int, float)):
        parts.append(f"HDBSCAN agrees {agree * 100:.0f}%")
    prob = evidence.get("mean_probability")
    if isinstance(prob, (int, float)):
        parts.append(f"mean membership {prob:.2f}")
    if parts:
        out.append(("clustered", "; ".join(parts)))
    return out


def consensus(evidence: Mapping[str, Any]) -> str | None:
    value = _first(evidence, CONSENSUS_KEYS)
    return value if isinstance(value, str) and value else None


def places(evidence: Mapping[str, Any], members: Sequence[Any]) -> tuple[list[tuple[str, int]], list[float] | None]:
    """(place, count) pairs and a lat/lon box: from evidence["geography"] when present, else members."""
    geo = evidence.get("geography")
    pairs: list[tuple[str, int]] = []
    bbox: list[float] | None = None
    if isinstance(geo, Mapping):
        countries = geo.get("countries") or geo.get("places") or {}
        if isinstance(countries, Mapping):
            pairs = [(str(k), int(v)) for k, v in countries.items()]
        elif isinstance(countries, Sequence):
            pairs = [(str(x.get("place") or x.get("country")), int(x.get("count", 0)))
                     for x in countries if isinstance(x, Mapping)]
        box = geo.get("bbox")
        if isinstance(box, Sequence) and len(box) == 4:
            bbox = [float(v) for v in box]
    if not pairs:
        counts = Counter(", ".join(x for x in (m.country, m.province_state) if x) or "unknown" for m in members)
        pairs = list(counts.items())
    if bbox is None:
        lats = [m.coord_lat for m in members if m.coord_lat is not None]
        lons = [m.coord_lon for m in members if m.coord_lon is not None]
        if lats and lons:
            bbox = [min(lats), max(lats), min(lons), max(lons)]
    return pairs, bbox


def images(members: Sequence[Any], evidence: Mapping[str, Any], image_root: Path | None) -> list[tuple[str, Path]]:
    """(processid, path) of member images; representative images (evidence) first."""
    by_pid: dict[str, Path] = {}
    for m in members:
        if m.image_path:
            path = Path(m.image_path)
            if not path.is_absolute() and image_root is not None:
                path = image_root / path
            by_pid[m.processid] = path
    reps = evidence.get("representative_images") or evidence.get("images") or []
    order: list[str] = []
    for r in reps if isinstance(reps, Sequence) and not isinstance(reps, str) else []:
        pid = r.get("processid") if isinstance(r, Mapping) else None
        if isinstance(r, Mapping) and pid and r.get("path") and pid not in by_pid:
            by_pid[pid] = Path(r["path"]) if image_root is None or Path(r["path"]).is_absolute() \
                else image_root / r["path"]
        if pid in by_pid and pid not in order:
            order.append(pid)
    order += [pid for pid in by_pid if pid not in order]
    return [(pid, by_pid[pid]) for pid in order]
