"""Renames, merges, splits and undos are in the exports, not only the decision in force.

Found reviewing the demo's export (FINDINGS F8): #2 was accepted as ``Thopliaus sp. BD-0001`` and renamed
``Thopliaus sp. Kruger-1``; the rename appeared in no export (not the DwC identification history, not
proposals.csv, not the JSON ``review`` object), nor did merges and splits. A name already on labels or in
letters could not be traced. Now the JSON review history lists every review with reviewer, time, action and
the name before and after; the DwC Identification History keeps each reviewer's name a later review replaced;
proposals.csv lists the previous names.

Real SQLite database, the real review API and the real CLI.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

from biodiscover.storage.db import Database
from fixtures.inprocess import run_cli
from fixtures.db_views import proposal_members
from fixtures.review_db import build_review_db


#: The terms of a determination the Identification History's current row repeats from the occurrence core.
DETERMINATION = ("scientificName", "taxonRank", "identificationQualifier", "verbatimIdentification",
                 "taxonConceptID", "identifiedBy", "dateIdentified", "identificationVerificationStatus")
CURRENT = "current determination (the occurrence core's); "


def _export(home: Path, db: Path, run: int, fmt: str, out: Path) -> None:
    proc = run_cli("export", "--db", str(db), "--run", str(run), "-f", fmt, "-o", str(out),
                   env={"XDG_CONFIG_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr


def test_every_review_of_a_candidate_is_in_the_json_dwca_and_csv_exports(tmp_path: Path) -> None:
    fx = build_review_db(tmp_path / "lab.sqlite", max_proposals=6)
    a, b, c, d, e = fx.proposal_ids[:5]
    db = Database.open(fx.path)
    try:
        working = db.proposal(a).name  # the name the review app showed before the acceptance
        accepted = db.accept(a, db.proposal(a).version, reviewer="Ana Silva")
        genus = accepted.name.split(" sp. ")[0]
        renamed = db.rename(a, db.proposal(a).version, f"{genus} sp. Kruger-1", reviewer="Ben Ode")
        merged = db.merge([b, c], {b: db.proposal(b).version, c: db.proposal(c).version}, reviewer="Ana Silva")
        split_members = proposal_members(db, d)[:1]
        split = db.split(d, db.proposal(d).version, split_members, reviewer="Cy Roe")
        rejected = db.reject(e, db.proposal(e).version, reviewer="Cy Roe")
        undone = db.undo(rejected.review_id, reviewer="Cy Roe")
        a_members = proposal_members(db, a)
        log = {r["id"]: r for r in db.reviews()}
    finally:
        db.close()
    kruger, bd = f"{genus} sp. Kruger-1", accepted.name

    _export(tmp_path, fx.path, fx.run_id, "json", tmp_path / "run.json")
    doc = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))
    history = {p["proposal_id"]: p["review"]["history"] for p in doc["proposals"] if p["review"]}
    acts = [(h["review_id"], h["action"], h["reviewer"], h["before_name"], h["after_name"]) for h in history[a]]
    assert acts[1:] == [(renamed.review_id, "rename", "Ben Ode", bd, kruger)]
    assert acts[0] == (accepted.review_id, "accept", "Ana Silva", working, bd)
    assert [h["at"] for h in history[a]] == [log[r.review_id]["created_at"] for r in (accepted, renamed)]
    # a merge is told on the candidate it kept, naming the one folded in; a split on both parts
    (m,) = history[b]
    assert (m["review_id"], m["action"], m["reviewer"]) == (merged.review_id, "merge", "Ana Silva")
    assert [o["proposal_id"] for o in m["others"]] == [c]
    assert [h["action"] for h in history[d]] == ["split"]
    assert [(h["action"], h["before_name"]) for h in history[split.new_proposal_id]] == [("split", None)]
    # a rejection undone: both reviews listed, the first marked as undone by the second
    assert [(h["review_id"], h["action"], h["undone_by"], h["undoes"]) for h in history[e]] == \
        [(rejected.review_id, "reject", undone.review_id, None), (undone.review_id, "undo", None, rejected.review_id)]

    _export(tmp_path, fx.path, fx.run_id, "dwca", tmp_path / "a.zip")
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        rows = list(csv.DictReader(io.StringIO(zf.read("identification.txt").decode("utf-8")), delimiter="\t",
                                   quoting=csv.QUOTE_NONE))
        core = {r["id"]: r for r in csv.DictReader(io.StringIO(zf.read("occurrence.txt").decode("utf-8")),
                                                   delimiter="\t", quoting=csv.QUOTE_NONE)}
    given = {r["coreid"]: r for r in rows if r["identificationID"].endswith(f":review{accepted.review_id}")}
    assert set(given) == set(a_members)
    for pid, r in given.items():
        assert core[pid]["verbatimIdentification"] == kruger  # the current name: the core's, and the current row
        assert (r["verbatimIdentification"], r["scientificName"], r["identificationQualifier"], r["identifiedBy"],
                r["dateIdentified"]) == (bd, genus, "sp.", "Ana Silva", log[accepted.review_id]["created_at"][:10])
        assert f"replaced by review {renamed.review_id}: rename {bd} → {kruger} (Ben Ode, " in \
            r["identificationRemarks"]
    assert {r["identificationRemarks"].startswith(CURRENT) for r in rows if r["verbatimIdentification"] == kruger} \
        == {True}

    _export(tmp_path, fx.path, fx.run_id, "csv", tmp_path / "csv")
    with open(tmp_path / "csv" / "proposals.csv", newline="", encoding="utf-8-sig") as fh:
        props = {int(p["proposal_id"]): p for p in csv.DictReader(fh)}
    assert props[a]["name"] == kruger and props[a]["previous_names"].split("; ")[-1] == bd


def _dwca_tables(path: Path) -> tuple[bytes, dict[str, dict[str, str]], list[dict[str, str]]]:
    with zipfile.ZipFile(path) as zf:
        raw = zf.read("identification.txt")
        core = {r["id"]: r for r in csv.DictReader(io.StringIO(zf.read("occurrence.txt").decode("utf-8")),
                                                   delimiter="\t", quoting=csv.QUOTE_NONE)}
    return raw, core, list(csv.DictReader(io.StringIO(raw.decode("utf-8")), delimiter="\t", quoting=csv.QUOTE_NONE))


def test_the_identification_history_lists_the_current_determination_too_and_keeps_its_id(tmp_path: Path) -> None:
    """A data manager's review of a real plate (F3): identification.txt held only superseded determinations, so a
    harvester reading the extension alone lost the current one and who made it; GBIF's Identification History
    says "All identifications including the most current one should be listed, while the current one should also
    be repeated in the Occurrence Core". Every specimen now has exactly one row marked current (its remarks begin
    :data:`CURRENT`) with the core's determination; the machine's is ``<id>:run<run>``, a reviewer's
    ``<id>:review<review>`` (the review in force that gave it): the ids that determination keeps once a later
    review replaces it, so the same identification keeps one id. A re-export is byte-identical."""
    fx = build_review_db(tmp_path / "lab.sqlite", max_proposals=6)
    a, r = fx.proposal_ids[:2]
    db = Database.open(fx.path)
    try:
        accepted = db.accept(a, db.proposal(a).version, reviewer="Ana Silva")
        rejected = db.reject(r, db.proposal(r).version, reviewer="Cy Roe")
        a_members, r_members = proposal_members(db, a), proposal_members(db, r)
    finally:
        db.close()
    _export(tmp_path, fx.path, fx.run_id, "dwca", tmp_path / "a.zip")
    _export(tmp_path, fx.path, fx.run_id, "dwca", tmp_path / "again.zip")
    raw, core, rows = _dwca_tables(tmp_path / "a.zip")
    assert _dwca_tables(tmp_path / "again.zip")[0] == raw
    current = {}
    for row in rows:
        if row["identificationRemarks"].startswith(CURRENT):
            assert row["coreid"] not in current, row["coreid"]
            current[row["coreid"]] = row
    assert set(current) == set(core)  # every specimen, the 1,038 unreviewed ones of the real plate included
    assert len({row["identificationID"] for row in rows}) == len(rows)
    for pid, row in current.items():
        assert {t: row[t] for t in DETERMINATION} == {t: core[pid][t] for t in DETERMINATION}
        assert row["identificationRemarks"] == CURRENT + core[pid]["identificationRemarks"]
    reviewed = set(a_members) | set(r_members)
    assert {current[p]["identificationID"] for p in core if p not in reviewed} == {
        f"{p}:run{fx.run_id}" for p in core if p not in reviewed}
    assert {p: current[p]["identificationID"] for p in a_members} == {
        p: f"{p}:review{accepted.review_id}" for p in a_members}
    # a rejection leaves the machine's name current, reviewed: a determination of its own, under the rejection's id
    # (the machine's row keeps what it said before the review: e32 review R9)
    assert {p: current[p]["identificationID"] for p in r_members} == {
        p: f"{p}:review{rejected.review_id}" for p in r_members}
    assert rejected.review_id and all(current[p]["identifiedBy"] == "biodiscover" for p in r_members)
    assert all(current[p]["identifiedBy"] == "Ana Silva" for p in a_members)

    db = Database.open(fx.path)
    try:
        genus = db.proposal(a).name.split(" sp. ")[0]
        renamed = db.rename(a, db.proposal(a).version, f"{genus} sp. Kruger-1", reviewer="Ben Ode")
    finally:
        db.close()
    _export(tmp_path, fx.path, fx.run_id, "dwca", tmp_path / "renamed.zip")
    _, core, rows = _dwca_tables(tmp_path / "renamed.zip")
    by_id = {row["identificationID"]: row for row in rows}
    for pid in a_members:  # the accepted name is history now, under the id it had as the current one
        was = current[pid]
        assert by_id[f"{pid}:review{accepted.review_id}"]["verbatimIdentification"] == was["verbatimIdentification"]
        now = by_id[f"{pid}:review{renamed.review_id}"]
        assert now["identificationRemarks"].startswith(CURRENT) and now["verbatimIdentification"] == \
            core[pid]["verbatimIdentification"] == f"{genus} sp. Kruger-1"
