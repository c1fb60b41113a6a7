"""``json``: one document with the run, every assignment and every candidate (evidence, members, reviews).

Each ``assignments`` row is a row of assignments.csv (:func:`~biodiscover.workflows.export.csv.assignment_table`,
the one table both write: the machine's labels down to its deepest confident rank (null below: a best guess is
no determination), the candidate, the proposal it was proposed in and its status,
and the current determination in Darwin Core terms), its numbers unrounded: a script reading this export gets
what a reviewer decided without joining the proposals itself. Each candidate's ``review`` holds the trail in force
(decision, reviewers, notes) and ``history``: every review of it, undone ones included, with reviewer, time,
action and its name before and after. Its ``evidence`` is the stored record with every mapping keyed by data (a
member's processid, a reference key's, a country, a BIN) given as a list of records (:data:`KEYED_BY_DATA`), so
that ``pd.json_normalize`` gives a column per field, not per specimen.

The machine-readable export: what a script or another tool reads. A run that
did not complete is marked ``"partial": true``. An export over several runs adds ``runs`` (each run's own record;
``run`` describes them together; ``given_as``: how many of its specimens the export gives as which later run's), and
each assignment and candidate names its run and collection; a rejected candidate a later run of the export
proposed again and rejected again is given once, as the later one, whose ``rejected_before`` holds the earlier
rejection's id and history (as the review queue lists it); each candidate's ``named_later`` lists the specimens
the export's other runs named as it, an accepted species (``size`` and ``members`` stay what a reviewer decided on:
the season review's F4 had a species' 30 members and no word of the 41 its later weeks named). ``merges`` lists each
candidate a reviewer merged into another that touches the export's (either end), with both ends' run and
collection, who and when (``Database.merges``).
"""

from __future__ import annotations

import json
from typing import Any

from biodiscover.storage.jsonable import jsonable
from biodiscover.workflows.export.csv import assignment_table
from biodiscover.workflows.export.flags import assigned_identity
from biodiscover.workflows.export.metadata import ExportOptions
from biodiscover.workflows.export.registry import REGISTRY, ExportFormat
from biodiscover.workflows.export.tables import RunExport, candidate_label, json_records, nearest_below

#: The evidence's mappings keyed by data (a member's processid, a reference key's, a country, a BIN, a species), by
#: where they sit (a list's entries each hold one), with the names their key and value take as a record's fields.
#: Why: a script flattening the candidates (``pd.json_normalize(doc["proposals"])``) got a column per member and
#: per key, 2,654 columns for 65 candidates (e32 review R14); records give one column per field, and a per-member
#: table is ``pd.json_normalize(p["evidence"]["member_hits"])``. The database keeps its mappings (format 6).
KEYED_BY_DATA: dict[tuple[str, ...], tuple[str, str]] = {
    ("alignment",): ("processid", "aligned"), ("member_hits",): ("processid", "hit"),
    ("hit_barcodes",): ("processid", "barcode"), ("geography", "countries"): ("country", "specimens"),
    ("geography", "provinces"): ("province", "specimens"), ("bin", "counts"): ("bin", "specimens"),
    ("near_species", "countries"): ("country", "keys"), ("near_species", "members"): ("processid", "identity"),
    ("near_species", "apart"): ("species", "distance"), ("dropped_keys", "members"): ("processid", "identity")}


def evidence_records(evidence: Any) -> Any:
    """``evidence`` with each mapping of :data:`KEYED_BY_DATA` as a list of records (``{"GBDP1-19": "ACT…"}`` →
    ``[{"processid": "GBDP1-19", "aligned": "ACT…"}]``, in the stored order); anything else as stored."""
    if not isinstance(evidence, dict):
        return evidence
    out = dict(evidence)
    for path, (key, value) in KEYED_BY_DATA.items():
        head, *rest = path
        holders = out.get(head)
        if not rest:
            if isinstance(holders, dict):
                out[head] = [{key: k, value: v} for k, v in holders.items()]
            continue
        many = isinstance(holders, list)
        parts = [dict(h) if isinstance(h, dict) else h for h in (holders if isinstance(holders, list) else [holders])]
        for part in parts:
            if isinstance(part, dict) and isinstance(part.get(rest[0]), dict):
                part[rest[0]] = [{key: k, value: v} for k, v in part[rest[0]].items()]
        if holders is not None:
            out[head] = parts if many else parts[0]
    return out


def render(data: RunExport, options: ExportOptions) -> bytes:
    members = data.members.groupby("proposal_id") if not data.members.empty else None
    trails, histories = data.trails(), data.histories()
    proposals = []
    below = nearest_below(data)
    for i, row in enumerate(json_records(data.proposals)):
        pid = row.get("proposal_id")
        # the run's order cut-off and whether the nearest known species lies below it (proposals.csv's columns)
        row["order_cutoff"], row["nearest_below_order_cutoff"] = below[i]
        row["name"] = candidate_label(row)
        # an assigned candidate's ``nearest_species`` stays the machine's evidence: the identity to the species a
        # reviewer named is its own field (proposals.csv's column of the same name)
        row["identity_to_assigned"] = assigned_identity(row)
        row["evidence"] = evidence_records(row.get("evidence"))  # read above as stored; written as records
        if members is not None and pid in members.groups:
            row["members"] = json_records(members.get_group(pid).drop(columns=["proposal_id"]))
        else:
            row["members"] = []
        if data.runs:  # an accepted species' specimens the export's later runs named as it (not members)
            row["named_later"] = [{"processid": x, "run_id": r} for x, r in data.named_later.get(int(str(pid)), ())]
            # the earlier rejections of the same specimens this one stands for (listed once, as the later one)
            row["rejected_before"] = [
                {"proposal_id": i, "history": [jsonable(a.as_json()) for a in histories.get(i, ())]}
                for i, later in sorted(data.rejected_again.items()) if pid in later]
        t, acts = trails.get(pid), histories.get(pid, ())
        # ``history``: every review (renames, merges, splits, moves, undos), not only the ones in force: a name
        # accepted and renamed since may already be on labels
        row["review"] = None if t is None and not acts else {
            "decision": t.decision if t else None, "decided_by": t.decided_by if t else None,
            "decided_at": t.decided_at if t else None, "reviewers": list(t.reviewers) if t else [],
            "notes": [{"at": n.at, "reviewer": n.reviewer, "text": n.text, "written_on": n.on} for n in t.notes]
            if t else [],
            # reviews a later run carried here (the database's actions; each in ``history`` with its source)
            "carried": [{"at": at or None, "action": what} for at, what, _ in t.carried] if t else [],
            "history": [jsonable(a.as_json()) for a in acts]}
        proposals.append(row)
    meta = options.metadata
    # version 3: assignments rows are assignments.csv's (the determination added, the database's row id gone);
    # 4: their label_<rank> null below deepest_rank; 5: creators and the contact as eml.xml names them (objects,
    # ``Person.as_json``), not "Name <e-mail>" strings; 6: the evidence's mappings keyed by data (a member's
    # processid, a key's, a country) lists of records (``KEYED_BY_DATA``)
    answers = meta.answers
    doc = {"format": "biodiscover-run-export", "version": 6, "partial": data.partial, "run": jsonable(data.run),
           "dataset": {"title": meta.title, "licence": meta.licence,
                       "creators": [c.as_json() for c in meta.creators],
                       "contact": answers.as_json() if answers is not None else None},
           "assignments": json_records(assignment_table(data)), "proposals": proposals,
           # the merges touching its candidates (``RunExport.merges``): a merged candidate is in no list above
           "merges": json_records(data.merges) if not data.merges.empty else []}
    if data.runs:  # an export over several runs: each run's own record (``run`` describes them together)
        doc = {**doc, "runs": [jsonable(dict(r)) for r in data.runs]}
    # No indent: the C encoder is ~5x faster, and 100k-specimen runs are common.
    return json.dumps(doc, ensure_ascii=False, allow_nan=False).encode("utf-8")


FORMAT = REGISTRY.register(ExportFormat(
    "json", "run, assignments and candidates with evidence, members and reviews",
    "file", render, suffix=".json"))
