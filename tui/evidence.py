"""Read the proposal evidence JSON into what the detail widgets draw.

Evidence is written by discovery (``discovery.proposals``) and stored as JSON by
storage; older runs or other producers may use slightly different keys, so each
reader tries the known spellings and degrades to "not recorded" rather than
failing. Nothing is computed here beyond picking and counting what is given.
"""

from __future__ import annotations

from collections import Counter
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
        out.append(("size", f"median {sizes['median']:.0f} (min {sizes['min']:.0f}, max {sizes['max']:.0f})"))
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
