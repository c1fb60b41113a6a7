"""``csv``: a folder of three spreadsheets a taxonomist opens first.

* ``assignments.csv`` — one row per specimen: the machine's deepest confident rank
  and taxon, its label down to that rank (none below: :func:`unconfident_labels_blank`) and its confidence at
  every rank, novelty, the candidate it belongs
  to (its ``proposal_id`` and ``provisional_name``: a candidate species, or one a
  reviewer identified as a known species, whose name is then that species'; empty
  once a reviewer rejected the candidate, which groups nothing), then the proposal it
  was proposed in whatever became of it (``proposed_in``, ``candidate_status``) and
  its current determination in the Darwin Core core's own terms and values
  (``scientificName`` … ``identificationVerificationStatus``: the reviewer's where a
  reviewer decided, else the machine's; see ``dwca.determinations``);
* ``proposals.csv`` — one row per candidate: its one name and ``taxonConceptID`` (the archive's), placement, size,
  status, the run's order cut-off and whether the nearest known species lies below it (``order_cutoff``,
  ``nearest_below_order_cutoff``), the identity to the species a reviewer assigned it to (its ``nearest_species``
  stays the machine's evidence), the nearest species list and the report's flags in one cell each (to filter a
  spreadsheet on), what reviewers decided and noted, the names it had before (renames), and the evidence flattened into
  columns (distances, nearest known species, BINs, geography range / centroid /
  bounding box, body size);
* ``members.csv`` — candidate × specimen with the membership probability; of an export over several runs, an
  accepted species' row in proposals.csv says how many more specimens its later runs named as it from its keys
  (``named_later``), and members.csv lists them after its members with ``named_by_run`` (:func:`member_table`);
* ``columns.txt`` — what every column of the three files means, in the order written
  (:func:`column_description`, from :data:`COLUMNS` and :data:`EVIDENCE_COLUMNS`: the one list).

Numbers are rounded (:func:`rounded`: 4 decimals, coordinates 6; columns.txt says so): identities written with
16 decimals claimed a precision no barcode has. Text a spreadsheet would evaluate gets a leading apostrophe. The
CSVs are UTF-8 with a byte-order mark: Excel on Windows reads a CSV without one in the local code page (a
reason's "≈0.3%" and accented names came out garbled); pandas and Python's ``csv``
read it with ``encoding="utf-8-sig"``, biodiscover's own readers with or without it.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from biodiscover.storage.records import RANKS, is_filler_name, named_ranks
from biodiscover.workflows.export.dwca import concept_id, dataset_name, determinations
from biodiscover.workflows.export.flags import assigned_identity, candidate_flags, evidence_of
from biodiscover.workflows.export.metadata import ExportOptions
from biodiscover.workflows.export.registry import REGISTRY, ExportFormat
from biodiscover.workflows.export.safety import neutralise_frame
from biodiscover.workflows.export.tables import (NOT_CANDIDATES, ReviewAction, RunExport, candidate_label,
                                                  carried_text, merge_text, merged_into, nearest_below,
                                                  set_aside_text)

FILES: tuple[str, ...] = ("assignments.csv", "proposals.csv", "members.csv")
#: The column list written beside them.
COLUMNS_FILE = "columns.txt"

_RANK_COLUMN = re.compile(r"^(label|confidence)_(\w+)$")
#: What each column means, per file (the stored and derived columns; ``label_<rank>`` / ``confidence_<rank>`` and
#: the ``evidence_…`` columns are described by :func:`column_description`). A column written and not listed here
#: reads "not described" in columns.txt, and a test fails.
COLUMNS: dict[str, dict[str, str]] = {
    "assignments.csv": {
        "run_id": "the discovery run that named the specimen",
        "collection": "the collection (file) that run triaged: an export over several runs gives each specimen once, "
                      "from the latest of them that named it",
        "processid": "the specimen's process id, as in the collection file",
        "specimen_id": "the database's id of the specimen record named (internal)",
        "deepest_rank": "the deepest rank the machine named with confidence (order … species); empty: none",
        "deepest_taxon": "the taxon named at deepest_rank",
        "taxon_id": "always empty: the database keeps a column for the id of deepest_taxon in its taxonomy, which "
                    "no run writes (deepest_rank and deepest_taxon name the taxon)",
        "novelty": "probability (0-1) that the specimen's species is not in the reference",
        "is_novel": "the machine flagged the specimen as probably outside the reference (True/False)",
        "modality": "what it was named from: dna, image, dna+image, or none",
        "identity": "identity (0-1) of its barcode to its best key (top_hit)",
        "overlap": "bases its barcode shares with top_hit (a full COI-5P barcode has 658)",
        "top_hit": "process id of its best key: a reference barcode, or a member of a candidate a reviewer accepted "
                   "or assigned, which the run searched as a key of that species (top_hit_source says which)",
        "top_hit_source": "what top_hit is: 'reference', or which candidate it is a member of and what a reviewer "
                          "decided ('a member of run 1's #5, accepted as … sp. BD-0003 by …'), as the Darwin Core "
                          "archive's identificationRemarks say; empty: no key",
        "reason": "why the machine did not name it deeper (its rank, P(right) against the level, rivals); for a "
                  "photograph alone (modality image), its P(right) and the image score it was calibrated from (from a "
                  "bundle fitted before that calibration: the image classifier's threshold it was named at instead "
                  "of the level); where a photograph moved a barcode's P(right), the value stored",
        "proposal_id": "the candidate it belongs to (a candidate species, or one identified as a known species; "
                       "empty when none, or when a reviewer rejected its candidate)",
        "provisional_name": "that candidate's name (the known species' name once a reviewer identified it)",
        "proposed_in": "the proposal it was proposed in, whatever became of it (rejected ones included)",
        "candidate_status": "that proposal's status: pending, accepted, assigned (to a known species) or rejected",
        "scientificName": "its current determination, as the Darwin Core archive gives it: the taxon name",
        "taxonRank": "the rank of scientificName",
        "identificationQualifier": "sp. / gen. sp. for an undescribed species placed in scientificName",
        "verbatimIdentification": "the name as written (a candidate's provisional name)",
        "identifiedBy": "who determined it (assigned the name): biodiscover, or the reviewer who accepted or "
                        "assigned its candidate (a rejected candidate's members keep the machine's name, and "
                        "biodiscover)",
        "dateIdentified": "the day of that determination",
        "identificationVerificationStatus": "machine prediction, or what a reviewer decided",
    },
    "proposals.csv": {
        "proposal_id": "the candidate's id (members.csv and assignments.csv refer to it)",
        "run_id": "the run that proposed it (an export over several runs)",
        "collection": "the collection that run triaged (its members may come from other runs' collections too, where "
                      "a reviewer merged a candidate of another week into it)",
        "name": "its one name: the provisional name, else a working label '<parent> sp. cand<id>'",
        "taxonConceptID": "the identifier its members carry as taxonConceptID in the Darwin Core archive: this "
                          "database's identity and the candidate's id, the same in every re-export (a pending "
                          "candidate a later run re-clusters is a new candidate with a new one); empty once a "
                          "reviewer assigned or rejected it",
        "provisional_name": "the name a reviewer gave (the known species' once assigned); empty: none yet",
        "parent_rank": "the rank of the taxon it is placed in",
        "parent_taxon": "the taxon it is placed in",
        "parent_status": "that taxon's status: accepted (in the reference), provisional (a genus or family a reviewer "
                         "added under an interim name) or described (a published one a reviewer added, not in the "
                         "reference)",
        "parent_lineage": "the taxa it is placed under, order first (Coleoptera › Carabidae): where a taxon a "
                          "reviewer added sits (an order the reference lacks goes in the class, Insecta); empty: "
                          "unplaced",
        "status": "pending, accepted, assigned (identified as a known species) or rejected",
        "version": "its version (each review that changes it adds one)",
        "size": "how many specimens it holds (its members: what a reviewer saw and decided on)",
        "named_later": "an accepted species: how many more specimens other runs of this export named as it, from "
                       "its keys (not members; members.csv lists them with named_by_run; empty: not accepted)",
        "named_later_runs": "the runs that named them",
        "novelty": "the members' mean probability of a species outside the reference",
        "nearest_species": "the machine's nearest known species in the reference when it was proposed (its "
                           "evidence, kept as it was: not the species a reviewer assigned; see identity_to_assigned)",
        "nearest_identity": "identity (0-1) to that species' nearest barcode",
        "order_cutoff": "the identity (0-1) the run needed to name even an order (the order cut-off it recorded, as "
                        "the review's header gives it); empty: the reference learned its orders",
        "nearest_below_order_cutoff": "True where nearest_identity lies below order_cutoff: so far a species says "
                                      "nothing of the candidate's order, one the reference lacks (a moth at 82.8 % "
                                      "nearest to beetles) or a distant family or genus of its own orders; False at "
                                      "or above it; empty where either is empty",
        "assigned_provisional": "for a candidate a reviewer assigned to a species accepted in this database (a "
                                "provisional, undescribed one): the candidate whose acceptance made it; its members "
                                "carry that candidate's taxonConceptID and open-nomenclature name; 0: not found; "
                                "empty otherwise",
        "assigned_status": "for a candidate a reviewer assigned: that species' status: accepted (the reference's), "
                           "provisional (accepted in this database) or described (a published species the reviewer "
                           "added, not in the reference: its members are named as it, at species); empty otherwise",
        "carried_from": "for a candidate assigned because a reviewer decided the same specimens in an earlier run (a "
                        "later triage proposed exactly them again): that run's candidate, what the reviewer decided "
                        "and who ('run 1's #7, accepted by …'); empty otherwise",
        "identity_to_assigned": "for a candidate a reviewer assigned to a known species (status assigned): the best "
                                "identity (0-1) of any member to that species' reference keys, as the review screen "
                                "shows it; empty for any other, or where no member was aligned to one of its keys",
        "near_species": "the known species nearest the members, nearest first (up to 5, as the review screen "
                        "lists them; the JSON export has them all, with each member's identity): the closest "
                        "member's identity to its keys, how many keys the reference holds and where they were "
                        "collected; '; ' between species",
        "review_flags": "what to look at first, as the HTML report's flags line gives it (no barcode gap, a tie "
                        "among known species, a known species that may have been met from another part of its "
                        "range, partial reads, a short overlap), ' · ' between flags; empty: none. Read from the "
                        "evidence by the review's rules when exported (what reviewers assigned since included)",
        "twins": "the live candidates of other runs of the database (other weeks' collections) whose consensus "
                 "barcode lies within the species threshold of this one's: probably the same species, proposed "
                 "again; '#id (run, collection, distance)', nearest first, '; ' between them",
        "merged_in": "the candidates a reviewer merged into this one (they have no row of their own: their members are "
                     "this one's): '#id name (collection, run; specimens) by reviewer, day', '; ' between them",
        "decision": "the last decision in force: accept, reject or assign",
        "decided_by": "who made it",
        "decided_at": "when (UTC)",
        "reviewers": "everyone whose review of it is in force",
        "review_notes": "every note in force, quoted, with reviewer and day",
        "previous_names": "names it had before (renames, undone acceptances)",
    },
    "members.csv": {
        "proposal_id": "the candidate (proposals.csv)",
        "processid": "a specimen in it",
        "probability": "P(same species as the candidate's other members) at the specimen's distance from them, "
                       "calibrated on the reference's species (0-1; 1 for a candidate of one; runs stored before "
                       "evidence format 6 averaged it with HDBSCAN's soft membership)",
        "outlier_score": "how far the specimen lies from the rest of it (GLOSH, 0-1; high: an outlier)",
        "named_by_run": "empty for a member; else the run of this export that named the specimen as this accepted "
                        "species from its keys (not a member: no probability)",
    },
}
#: The ``evidence_…`` columns of proposals.csv, by the evidence key they flatten (the longest key that matches
#: wins; ``storage.evidence.Evidence`` documents each). ``{part}`` is what follows the key in the column name.
EVIDENCE_COLUMNS: dict[str, str] = {
    "size": "members when the evidence was computed",
    "candidate": "the clustering's number for the candidate (not a proposal id)",
    "mean_probability": "the members' mean membership probability (members.csv)",
    "hdbscan_agreement": "share of members HDBSCAN puts in the candidate's dominant cluster",
    "threshold": "the species threshold (p-distance) the candidates were cut at",
    "linkage": "the clustering's linkage",
    "consensus_barcode": "majority-rule consensus barcode of the aligned members (of their first 660 nt, what the "
                         "analysis compared; the DwC archive and FASTA carry each read as submitted)",
    "consensus_length": "its length",
    "within_distance_mean": "mean p-distance among the members",
    "within_distance_max": "largest p-distance among the members (pairs sharing too few bases left out)",
    "between_distance_nearest_candidate": "the clustering's number of the closest other candidate (the proposal id "
                                          "when it is another run's)",
    "between_distance_distance": "consensus p-distance to the closest other candidate, of this run or any other "
                                 "run of the database",
    "between_distance_member": "a specimen of the closest other candidate",
    "between_distance_proposal_id": "the proposal holding that specimen now (the closest candidate)",
    "between_distance_name": "that proposal's name",
    "between_distance_run_id": "the run that proposal belongs to (another run's: the same species met in another "
                               "collection, when within the threshold; see twins)",
    "between_distance_collection": "the collection that run triaged",
    "nearest_known_species": "the nearest known species in the reference",
    "nearest_known_genus": "its genus",
    "nearest_known_processid": "process id of its nearest reference barcode",
    "nearest_known_identity": "identity (0-1) to that barcode",
    "nearest_known_top_distances": "p-distances of its closest reference barcodes (up to four here; all in JSON)",
    "nearest_known_barcode": "that reference barcode",
    "nearest_known_image": "its photograph, where the reference has one",
    "nearest_known_not_named_because": "why the closest member was not named that species (the naming model)",
    "bin_dominant": "the members' most common BOLD BIN",
    "bin_agreement": "share of members with a BIN that carry it",
    "bin_n_with_bin": "members with a BIN",
    "bin_counts": "members per BIN",
    "bin_shared_with": "other candidates holding that BIN (clustering numbers)",
    "bin_shared_members": "a specimen of each of them",
    "geography_countries": "members per country",
    "geography_provinces": "members per province or state",
    "geography_n_with_coordinates": "members with coordinates",
    "geography_lat": "latitude range of the members ({part})",
    "geography_lon": "longitude range of the members ({part})",
    "geography_centroid": "the members' mean position ({part})",
    "geography_bbox": "bounding box of the members",
    "size_summary": "body size of the members, {part} (median, min, max over the members measured)",
    "format": "the evidence record's format version",
}


#: columns.txt's word on the id columns. Why: an id column with empty cells (``proposal_id`` of a specimen in no
#: candidate) reads in pandas as float, so one file printed 58.0 where the next printed 58 (e32 review R2). The ids
#: stay integers in the file (they join proposals.csv, members.csv and ``triage --results`` as numbers, and R's
#: ``read.csv`` reads them as integers with NA); pandas keeps them integers when asked, as said here.
ID_READING = ("Ids (proposal_id, proposed_in, run_id and the other *_id columns) are integers; empty: none. pandas "
              "reads an integer column with empty cells as float (58.0) unless asked not to: "
              "pd.read_csv(path, encoding=\"utf-8-sig\", dtype_backend=\"numpy_nullable\") keeps them integers "
              "(R's read.csv does so itself).")


def column_description(file: str, column: str) -> str:
    """What ``column`` of ``file`` means, in a sentence; says "not described" for a column nobody listed."""
    known = COLUMNS.get(file, {}).get(column)
    if known:
        return known
    rank = _RANK_COLUMN.match(column)
    if file == "assignments.csv" and rank:
        return (f"the machine's {rank[2]} for the specimen where it named one with confidence ({rank[2]} at or "
                f"above deepest_rank); empty below it: its best guess there is no determination (confidence_{rank[2]} "
                "says how likely it was, reason names the rivals)" if rank[1] == "label" else
                f"probability (0-1) that the machine's best guess at {rank[2]} is right (at every rank; the guess is "
                f"named in label_{rank[2]} only down to deepest_rank); for modality image calibrated from the image "
                "classifier's score, which reason gives (from a bundle fitted before that calibration: the score "
                "itself, not a probability, named at its own threshold)")
    if file == "proposals.csv" and column.startswith("evidence_"):
        rest = column[len("evidence_"):]
        key = max((k for k in EVIDENCE_COLUMNS if rest == k or rest.startswith(k + "_")), key=len, default=None)
        if key is not None:
            return EVIDENCE_COLUMNS[key].format(part=rest[len(key) + 1:].replace("_", " "))
    return "not described (see the JSON export)"


def columns_text(frames: dict[str, pd.DataFrame], run: Mapping[str, Any] | None = None,
                 runs: Sequence[Mapping[str, Any]] = ()) -> str:
    """columns.txt: per file, each column written and what it means; first, where the run's ingest set specimens
    aside, how many and why (:func:`~biodiscover.workflows.export.tables.set_aside_text`; ``runs``: of an export
    over several runs, each run's)."""
    said = [(r.get("id"), text) for r in (runs or ([run] if run is not None else []))
            if (text := set_aside_text(r)) is not None]
    lines = ["What each column of this CSV export means (biodiscover). The files are UTF-8 with a byte-order mark.",
             "Probabilities, identities and distances are fractions (0.95 = 95 %); p-distance = share of differing "
             f"bases. Numbers are rounded to {DECIMALS} decimals (0.0001 = 0.01 %; one base of a 658-base barcode is "
             f"0.0015), coordinates to {COORDINATE_DECIMALS} (about 0.1 m); the JSON export keeps them unrounded.",
             ID_READING, ""]
    for i, (run_id, set_aside) in enumerate(said):  # what the ingest set aside is in no file of the folder: first
        lines.insert(1 + i, f"This export: run {run_id}. {set_aside}.")
    for name, frame in frames.items():
        lines.append(name)
        lines += [f"  {c} — {column_description(name, c)}" for c in frame.columns]
        lines.append("")
    return "\n".join(lines)

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
                        out[col] = "; ".join(f"{round(float(x), DECIMALS):g}" for x in v2)
    return out


def assignment_table(data: RunExport) -> pd.DataFrame:
    """Assignments joined with the candidate each specimen belongs to and its current determination: the CSV's
    main table, and the JSON export's ``assignments`` (one table, so the two never list different columns)."""
    table = unconfident_labels_blank(data.assignments.drop(columns=["id"], errors="ignore"))  # id: internal
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
    if not data.merged.empty:
        # a member of a candidate a reviewer merged into another (another run's, or, in an export over several runs,
        # one its own run does not hold): it is that holder's member now, as its determination already says (e32
        # review R26: week 2's 13 such rows had the reviewer's name and an empty proposal_id and status)
        holder = {r["processid"]: r for r in data.merged.to_dict("records")}
        folded = table["proposal_id"].isna() & table["processid"].isin(holder.keys())
        for col, value in (("proposal_id", lambda r: r["proposal_id"]), ("provisional_name", candidate_label),
                           ("candidate_status", lambda r: r["status"])):
            if col in table:
                table.loc[folded, col] = [value(holder[x]) for x in table.loc[folded, "processid"]]
    if data.runs and "run_id" in table:  # an export over several runs: which collection each specimen came from
        collections = {r.get("id"): dataset_name(r) for r in data.runs}
        table.insert(table.columns.get_loc("run_id") + 1, "collection", table["run_id"].map(collections))
    return table


def unconfident_labels_blank(assignments: pd.DataFrame) -> pd.DataFrame:
    """``assignments`` with ``label_<rank>`` empty below each specimen's ``deepest_rank``
    (:func:`~biodiscover.storage.records.named_ranks`, the rule ``triage --results`` follows too); the
    ``confidence_<rank>`` columns as they are."""
    out = assignments.copy()
    if "deepest_rank" not in out:
        return out
    named = out["deepest_rank"].map(named_ranks)
    for rank in RANKS:
        col = f"label_{rank}"
        if col in out:
            out[col] = out[col].where(named.map(lambda ranks, r=rank: r in ranks), None)
    return out


REVIEW_COLUMNS: tuple[str, ...] = ("decision", "decided_by", "decided_at", "reviewers", "review_notes",
                                   "previous_names")


def previous_names(history: tuple[ReviewAction, ...], current: str) -> str | None:
    """Every other name the review log shows the candidate under, oldest first (a working name, a provisional
    name renamed since, one whose acceptance was undone): a name once on a label stays traceable."""
    # a part split off had no name before the split: the name its members were under is the candidate's it was
    # split from (a real plate's split part read previous_names empty, e27 F11)
    seen = dict.fromkeys(n for a in history for n in (
        (a.before_name, a.after_name) if a.before_name or a.action != "split" else (*(o for _, o in a.others),
                                                                                    a.after_name))
        if n and n != current)
    return "; ".join(seen) or None


#: Species of the nearest species list written in proposals.csv's ``near_species`` (the review screen lists as
#: many); a real plate's lists ran to 12, mostly other genera at 89-91 %. The JSON export has them all.
NEAR_SPECIES_LISTED = 5


def near_species_text(evidence: Any) -> str | None:
    """``Gonodonta bidens 99.1% (9 keys: Brazil 6, …); Gonodonta uxor 99.0% (1 key, no country)``: the first
    :data:`NEAR_SPECIES_LISTED` of the evidence's nearest species list in one cell (the key counts and countries as
    the review screen words them, :meth:`~biodiscover.storage.evidence.NearSpecies.keys_text`), then how many
    more; None for a record without one (before format 4)."""
    near = evidence_of(evidence).near_species
    text = "; ".join(f"{s.species}" + ("" if s.identity is None else f" {100 * s.identity:.1f}%")
                     + f" ({s.keys_text()})" for s in near[:NEAR_SPECIES_LISTED])
    more = len(near) - NEAR_SPECIES_LISTED
    return (text + (f"; {more} more in the JSON export" if more > 0 else "")) or None


def twins_text(twins: Any) -> str | None:
    """``#10 (run 6, 2026-w01-costa-rica, 0.2 %); #123 (run 19, …)``: the live candidates of other runs that are
    probably the candidate's species (``Database.twins``), nearest first, as the review's header names them."""
    return "; ".join(f"#{t.proposal.id} (run {t.proposal.run_id}" + (f", {t.collection}" if t.collection else "")
                     + f", {t.distance * 100:.1f} %)" for t in twins) or None


def lineage_text(lineage: Any) -> str | None:
    """``Coleoptera › Carabidae``: a placement's lineage (rank → name), order first, rank fillers left out."""
    if not isinstance(lineage, Mapping):
        return None
    return " › ".join(str(lineage[r]) for r in RANKS if lineage.get(r) and not is_filler_name(str(lineage[r]))) or None


def proposal_table(data: RunExport) -> pd.DataFrame:
    """Candidates with their one name, the review trail and the evidence flattened (the rest goes to JSON); the
    identity to an assigned candidate's own species, its nearest species list and the report's flags (their one
    owner, :mod:`~biodiscover.workflows.export.flags`) so a spreadsheet can filter on them."""
    # the placement's lineage as one cell (the dwca's rank columns): a family a reviewer added said nothing of the
    # order it went under (e33 review F1: Carabidae under a Coleoptera the reference lacked)
    props = data.proposals.drop(columns=["evidence"], errors="ignore").copy().reset_index(drop=True)
    records = data.proposals.to_dict("records")
    if "parent_lineage" in props:
        props["parent_lineage"] = [lineage_text(p.get("parent_lineage")) for p in records]
    props.insert(min(1, len(props.columns)), "name", [candidate_label(p) for p in records])
    props.insert(min(2, len(props.columns)), "taxonConceptID",
                 [None if p.get("status") in NOT_CANDIDATES else concept_id(data.run, p.get("proposal_id"))
                  for p in records])
    at = props.columns.get_loc("nearest_identity") + 1 if "nearest_identity" in props else len(props.columns)
    if "nearest_identity" in props:  # beside the identity it judges (e33 review F4)
        below = nearest_below(data)
        props.insert(at, "order_cutoff", pd.array([c for c, _ in below], dtype="Float64"))
        props.insert(at + 1, "nearest_below_order_cutoff", pd.array([b for _, b in below], dtype="boolean"))
        at += 2
    props.insert(at, "identity_to_assigned", pd.array([assigned_identity(p) for p in records], dtype="Float64"))
    if "carried_from" in props:  # the JSON has the record; a cell has its words
        props["carried_from"] = [carried_text(p) for p in records]
    props.insert(at + 1, "near_species", [near_species_text(p.get("evidence")) for p in records])
    props.insert(at + 2, "review_flags", [" · ".join(candidate_flags(p, data.met_here)) or None for p in records])
    props.insert(at + 3, "twins", [twins_text(data.twins.get(int(p["proposal_id"]), ())) for p in records])
    folded = merged_into(data)
    props.insert(at + 4, "merged_in", ["; ".join(merge_text(m, holder=True) for m in folded[p["proposal_id"]])
                                       if p["proposal_id"] in folded else None for p in records])
    trails, histories = data.trails(), data.histories()
    for col in REVIEW_COLUMNS:
        props[col] = None
    for i, p in enumerate(records):
        t = trails.get(p.get("proposal_id"))
        if t is not None:
            props.loc[i, list(REVIEW_COLUMNS[:5])] = [t.decision, t.decided_by, t.decided_at, "; ".join(t.reviewers),
                                                      t.review_text() or None]
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
    if data.runs:  # an export over several runs: an accepted species' specimens its later runs named (F4)
        at = props.columns.get_loc("size") + 1 if "size" in props else len(props.columns)
        later = [data.named_later.get(int(p["proposal_id"]), ()) for p in records]
        props.insert(at, "named_later", pd.array([len(x) if p.get("status") == "accepted" else None
                                                  for p, x in zip(records, later)], dtype="Int64"))
        props.insert(at + 1, "named_later_runs", ["; ".join(str(r) for r in sorted({r for _, r in x})) or None
                                                  for x in later])
    return props


def member_table(data: RunExport) -> pd.DataFrame:
    """members.csv: the candidates' members; of an export over several runs, after an accepted species' members,
    the specimens its later runs named as it (:func:`~biodiscover.workflows.export.dwca.named_later`), each with
    ``named_by_run`` and no probability (no grouping put it there: the run named it from the species' keys). Why
    they are rows here: a taxonomist takes an accepted species' specimens from this file (season review F4: 30 of
    71); why ``named_by_run`` sets them apart: its members are what the reviewer saw and decided on."""
    if not data.runs:
        return data.members
    members = data.members.assign(named_by_run=pd.array([None] * len(data.members), dtype="Int64"))
    later = pd.DataFrame([{"proposal_id": pid, "processid": specimen, "named_by_run": run}
                          for pid, rows in data.named_later.items() for specimen, run in rows],
                         columns=["proposal_id", "processid", "named_by_run"])
    if later.empty:
        return members
    later["named_by_run"] = later["named_by_run"].astype("Int64")
    out = pd.concat([members, later], ignore_index=True)
    order = {pid: i for i, pid in enumerate(dict.fromkeys(data.members["proposal_id"]))}
    out["_at"] = out["proposal_id"].map(lambda p: order.get(p, len(order)))
    return out.sort_values(["_at"], kind="stable").drop(columns="_at").reset_index(drop=True)


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
    run_id, collection = data.run.get("id"), data.run.get("collection")
    # of an export over several runs: the run and collection of each candidate (``combine_exports``)
    runs_of = (dict(zip(data.proposals["proposal_id"], zip(data.proposals["run_id"], data.proposals["collection"])))
               if data.runs and "run_id" in data.proposals else {})
    ids: list[Any] = []
    said: list[tuple[Any, Any, Any]] = []  # (name, run, collection) of each
    for own, member in zip(props["proposal_id"], props["evidence_between_distance_member"]):
        held = holders.get(member, []) if isinstance(member, str) else []
        mine = next((h for h in held if h != own), None)
        other = data.elsewhere.get(int(own)) if mine is None and own is not None else None
        if other is not None:  # another run's candidate (``Database.closest_elsewhere``)
            ids.append(other[0].id)
            said.append((other[0].name, other[0].run_id, other[1]))
        else:
            ids.append(mine)
            said.append((names.get(mine), *runs_of.get(mine, (run_id, collection))) if mine is not None
                        else (None, None, None))
    at = props.columns.get_loc("evidence_between_distance_member") + 1
    props.insert(at, "evidence_between_distance_proposal_id", pd.array(ids, dtype="Int64"))
    props.insert(at + 1, "evidence_between_distance_name", [s[0] for s in said])
    props.insert(at + 2, "evidence_between_distance_run_id", pd.array([s[1] for s in said], dtype="Int64"))
    props.insert(at + 3, "evidence_between_distance_collection", [s[2] for s in said])


#: Decimals written for fractions (identities, probabilities, distances, shares) and for coordinates: identities
#: printed with 16 decimals (``0.9095744490623474``) claimed a precision no barcode has, and were unreadable.
DECIMALS = 4
COORDINATE_DECIMALS = 6
_COORDINATE = re.compile(r"(^|_)(lat|lon)(_|$)|^coord")


def rounded(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every float rounded: coordinates (a column named ``…lat…`` / ``…lon…``) to
    :data:`COORDINATE_DECIMALS`, every other number to :data:`DECIMALS` (integers untouched)."""
    out = frame.copy()
    for col in out.columns:
        digits = COORDINATE_DECIMALS if _COORDINATE.search(str(col)) else DECIMALS
        if out[col].dtype.kind == "f" or str(out[col].dtype) == "Float64":
            out[col] = out[col].round(digits)
        elif out[col].dtype == object:
            out[col] = [round(float(v), digits) if isinstance(v, (float, np.floating)) else v for v in out[col]]
    return out


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """UTF-8 with a byte-order mark (see the module docstring: what Excel on Windows needs to read it as UTF-8)."""
    buf = io.StringIO()
    neutralise_frame(frame).to_csv(buf, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    return buf.getvalue().encode("utf-8-sig")


def render(data: RunExport, options: ExportOptions) -> dict[str, bytes]:
    frames = {"assignments.csv": assignment_table(data), "proposals.csv": proposal_table(data),
              "members.csv": member_table(data)}
    return {**{name: csv_bytes(rounded(frame)) for name, frame in frames.items()},
            COLUMNS_FILE: columns_text(frames, data.run, data.runs).encode("utf-8")}


FORMAT = REGISTRY.register(ExportFormat(
    "csv", "assignments.csv, proposals.csv (evidence and review notes), members.csv and columns.txt (what each "
    "column means)",
    "folder", render))
