"""``csv``: a folder of three spreadsheets a taxonomist opens first.

* ``assignments.csv`` — one row per specimen: the machine's deepest confident rank
  and taxon, label and confidence at every rank, novelty, the candidate it belongs
  to (its ``proposal_id`` and ``provisional_name``: a candidate species, or one a
  reviewer identified as a known species, whose name is then that species'; empty
  once a reviewer rejected the candidate, which groups nothing), then the proposal it
  was proposed in whatever became of it (``proposed_in``, ``candidate_status``) and
  its current determination in the Darwin Core core's own terms and values
  (``scientificName`` … ``identificationVerificationStatus``: the reviewer's where a
  reviewer decided, else the machine's; see ``dwca.determinations``);
* ``proposals.csv`` — one row per candidate: its one name, placement, size,
  status, what reviewers decided and noted, the names it had before (renames), and the evidence flattened into
  columns (distances, nearest known species, BINs, geography range / centroid /
  bounding box, body size);
* ``members.csv`` — candidate × specimen with the membership probability.

Text a spreadsheet would evaluate gets a leading apostrophe.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Mapping

import numpy as np
import pandas as pd

from biodiscover.workflows.export.dwca import determinations
from biodiscover.workflows.export.metadata import ExportOptions
from biodiscover.workflows.export.registry import REGISTRY, ExportFormat
from biodiscover.workflows.export.safety import neutralise_frame
from biodiscover.workflows.export.tables import ReviewAction, RunExport, candidate_label

FILES: tuple[str, ...] = ("assignments.csv", "proposals.csv", "members.csv")

_SCALAR = (str, int, float, bool)
#: Evidence entries that are small records (flattened one level into CSV columns). Others that are
#: mappings are keyed by data (``alignment``: processid → sequence) and stay in the JSON export.
FLAT_EVIDENCE = ("within_distance", "between_distance", "nearest_known", "bin", "geography", "size_summary")
#: Two-number lists of the evidence, as named columns (``lat_range`` → ``lat_min``, ``lat_max``).
PAIRS: dict[str, tuple[str, str]] = {"lat_range": ("lat_min", "lat_max"), "lon_range": ("lon_min", "lon_max"),
                                     "centroid": ("centroid_lat", "centroid_lon")}


def _counts_text(value: Mapping[str, Any]) -> str:
    return "; ".join(f"{a}: {b:g}" if isinstance(b, (int, float)) else f"{a}: {b}" for a, b in value.items())


def _flat_evidence(ev: Mapping[str, Any]) -> dict[str, Any]:
    """One CSV row of evidence: scalars as they are, the records of :data:`FLAT_EVIDENCE` one level
    deep (``within_distance`` → ``evidence_within_distance_mean`` / ``_max``), a mapping of counts or
    statistics as ``"Canada: 4; Peru: 2"``, number pairs as two columns and a bounding box as
    ``lat -5.1 to -4.9; lon 145.4 to 145.9``; long lists (distances) and alignments stay in the JSON export."""
    out: dict[str, Any] = {}
    for k, v in ev.items():
        if isinstance(v, _SCALAR) or (v is None and k not in FLAT_EVIDENCE):
            out[f"evidence_{k}"] = v
        elif k in FLAT_EVIDENCE and isinstance(v, Mapping):
            for k2, v2 in v.items():
                col = f"evidence_{k}_{k2}"
                if isinstance(v2, _SCALAR) or v2 is None:
                    if k2 in PAIRS and v2 is None:
                        out.update({f"evidence_{k}_{n}": None for n in PAIRS[k2]})
                    else:
                        out[col] = v2
                elif isinstance(v2, Mapping) and v2 and all(isinstance(x, _SCALAR) for x in v2.values()):
                    out[col] = _counts_text(v2)
                elif isinstance(v2, (list, tuple)) and all(isinstance(x, (int, float)) for x in v2):
                    if k2 in PAIRS and len(v2) == 2:
                        out.update({f"evidence_{k}_{n}": float(x) for n, x in zip(PAIRS[k2], v2)})
                    elif k2 == "bbox" and len(v2) == 4:  # words first: a cell starting "-33.7" reads as a formula
                        out[col] = f"lat {v2[0]:.6g} to {v2[1]:.6g}; lon {v2[2]:.6g} to {v2[3]:.6g}"
                    elif 0 < len(v2) <= 4:
                        out[col] = "; ".join(f"{float(x):.6g}" for x in v2)
    return out


def assignment_table(data: RunExport) -> pd.DataFrame:
    """Assignments joined with the candidate each specimen belongs to (the CSV's main table)."""
    table = data.assignments.drop(columns=["id"], errors="ignore")  # the row id is internal to the database
    cand = data.candidate_of()
    # the current determination: the DwC core's (one owner), so the two never disagree about a specimen
    det = determinations(data).set_index("processid")
    # A candidate a reviewer identified as a known species still groups its members (the decision, notes and
    # evidence are its row of proposals.csv): they keep its id. A rejected one groups nothing (``proposed_in``).
    assigned = det.loc[det["candidate_status"] == "assigned", "proposed_in"].to_dict()
    ids = pd.Series([cand.get(p, assigned.get(p)) for p in table["processid"]], index=table.index, dtype=object)
    if ids.notna().any() and all(isinstance(v, (int, np.integer)) for v in ids.dropna()):
        ids = ids.astype("Int64")  # keep integer ids integer next to the NaNs of uncandidated rows
    table["proposal_id"] = ids
    if not data.proposals.empty:
        names = {p["proposal_id"]: candidate_label(p) for p in data.proposals.to_dict("records")}
        table["provisional_name"] = table["proposal_id"].map(names)
    else:
        table["provisional_name"] = None
    for col in det.columns:
        table[col] = table["processid"].map(det[col]).astype(det[col].dtype)
    return table


REVIEW_COLUMNS: tuple[str, ...] = ("decision", "decided_by", "decided_at", "reviewers", "review_notes",
                                   "previous_names")


def previous_names(history: tuple[ReviewAction, ...], current: str) -> str | None:
    """Every other name the review log shows the candidate under, oldest first (a working name, a provisional
    name renamed since, one whose acceptance was undone): a name once on a label stays traceable."""
    seen = dict.fromkeys(n for a in history for n in (a.before_name, a.after_name) if n and n != current)
    return "; ".join(seen) or None


def proposal_table(data: RunExport) -> pd.DataFrame:
    """Candidates with their one name, the review trail and the evidence flattened (the rest goes to JSON)."""
    props = data.proposals.drop(columns=["evidence"], errors="ignore").copy().reset_index(drop=True)
    records = data.proposals.to_dict("records")
    props.insert(min(1, len(props.columns)), "name", [candidate_label(p) for p in records])
    trails, histories = data.trails(), data.histories()
    for col in REVIEW_COLUMNS:
        props[col] = None
    for i, p in enumerate(records):
        t = trails.get(p.get("proposal_id"))
        if t is not None:
            props.loc[i, list(REVIEW_COLUMNS[:5])] = [t.decision, t.decided_by, t.decided_at, "; ".join(t.reviewers),
                                                      t.notes_text() or None]
        props.loc[i, "previous_names"] = previous_names(histories.get(p.get("proposal_id"), ()), candidate_label(p))
    if "evidence" in data.proposals:
        rows = [_flat_evidence(ev if isinstance(ev, Mapping) else {}) for ev in data.proposals["evidence"]]
        flat = pd.DataFrame(rows)
        for col in flat.columns:  # ids and counts stay integers next to the gaps of other candidates
            values = [r[col] for r in rows if r.get(col) is not None]
            if values and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
                flat[col] = pd.array([r.get(col) for r in rows], dtype="Int64")
        props = pd.concat([props, flat], axis=1)
    if "evidence_between_distance_member" in props:
        _name_nearest_candidate(props, data)
    return props


def _name_nearest_candidate(props: pd.DataFrame, data: RunExport) -> None:
    """Add the proposal id and name of each candidate's closest other candidate after
    ``evidence_between_distance_member``.

    ``evidence_between_distance_nearest_candidate`` is a number of the clustering that made the run (or the
    proposal a split part came from), not a proposal id (:class:`biodiscover.storage.evidence.NearestCandidate`):
    read as one it names another candidate. The member it records says which proposal holds it now, as the review
    app resolves it: the lowest-numbered other proposal of the run holding that specimen."""
    holders: dict[str, list[Any]] = {}
    if not data.members.empty:
        for pid, prop in sorted(data.members[["processid", "proposal_id"]].itertuples(index=False, name=None),
                                key=lambda t: t[1]):
            holders.setdefault(pid, []).append(prop)
    names = {p["proposal_id"]: candidate_label(p) for p in data.proposals.to_dict("records")}
    ids: list[Any] = []
    for own, member in zip(props["proposal_id"], props["evidence_between_distance_member"]):
        held = holders.get(member, []) if isinstance(member, str) else []
        ids.append(next((h for h in held if h != own), None))
    at = props.columns.get_loc("evidence_between_distance_member") + 1
    props.insert(at, "evidence_between_distance_proposal_id", pd.array(ids, dtype="Int64"))
    props.insert(at + 1, "evidence_between_distance_name", [names.get(i) if i is not None else None for i in ids])


def csv_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    neutralise_frame(frame).to_csv(buf, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    return buf.getvalue().encode("utf-8")


def render(data: RunExport, options: ExportOptions) -> dict[str, bytes]:
    return {"assignments.csv": csv_bytes(assignment_table(data)), "proposals.csv": csv_bytes(proposal_table(data)),
            "members.csv": csv_bytes(data.members)}


FORMAT = REGISTRY.register(ExportFormat(
    "csv", "assignments.csv, proposals.csv (evidence and review notes) and members.csv",
    "folder", render))
