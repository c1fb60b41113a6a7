"""A later run's exports keep the reviewer's determination of specimens a reviewer decided in an earlier run.

Found on a real 5,300-specimen US batch (two weekly triages of one database): after week 1's review (candidates
accepted as ``Acrolophus sp. BD-0001``, assigned to *Renia fraternalis*, to *Chionodes dentella*, a described
species the reference lacks) the week-2 triage used their members as reference keys and named those same specimens
those same species, but its exports wrote all 328 of them ``identifiedBy = biodiscover``, ``unverified (machine
prediction)``: a GBIF archive would have credited the software with an expert's identification. Now a later run
that names a decided specimen the decided species writes the reviewer's determination (who, when, the status words
of the earlier export, a remark naming the run and candidate), the machine's row going to the identification
history; one that names it otherwise keeps the machine's row and puts the reviewer's in the history.

Real SQLite database, the real review API and the real CLI export.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from biodiscover.storage.db import Database
from biodiscover.storage.records import Specimen
from fixtures.inprocess import run_cli
from fixtures.review_db import GONODONTA, merged_weeks, one_run_db
from fixtures.run_export import export_dwca

GROUPS = {"accepted": ["A0", "A1", "A2"], "known": ["K0", "K1"], "described": ["N0", "N1"], "genus": ["G0", "G1"],
          "contradicted": ["C0"]}
#: the genus run 2 names the "contradicted" group's member: not the one its reviewer's species is in
OTHER_GENUS = {**GONODONTA, "genus": "Calyptra"}
#: the determination terms and the rank columns a later run must write as the run that decided
SAME = ("scientificName", "taxonRank", "identificationQualifier", "verbatimIdentification", "taxonConceptID",
        "identifiedBy", "dateIdentified", "identificationVerificationStatus", "family", "genus")


def _two_runs(path: Path) -> dict[str, Any]:
    """Run 1 proposes four candidates (named to genus Gonodonta); reviewers accept one, assign one to the known
    Gonodonta bidens, one to the described Gonodonta dentella they add, and accept the fourth. Run 2 names the first
    three candidates' members those species again, the fourth's only to genus, and one undecided specimen; a fifth
    candidate, assigned to Gonodonta bidens, run 2 names in another genus."""
    pids = [p for g in GROUPS.values() for p in g] + ["U0", "W0"]
    ids = one_run_db(path, [Specimen(processid=p, dna_barcode="ACGT" * 150, country="United States") for p in pids],
                     [{**GONODONTA, "species": "Gonodonta bidens"}],
                     [{"members": g, "parent_lineage": GONODONTA} for g in GROUPS.values()],
                     [{"processid": p, "deepest_rank": "genus", "deepest_taxon": "Gonodonta", "novelty": 0.9,
                       "labels": GONODONTA} for p in pids])
    a, k, n, g, c = ids
    with Database.open(path) as db:
        accepted = db.accept(a, db.proposal(a).version, reviewer="Test Taxonomist", note="genitalia checked")
        db.assign(k, db.proposal(k).version, "Gonodonta bidens", reviewer="Ana Silva")
        db.assign(n, db.proposal(n).version, None, reviewer="Test Taxonomist", new_species="Gonodonta dentella")
        db.accept(g, db.proposal(g).version, reviewer="Ben Ode")
        db.assign(c, db.proposal(c).version, "Gonodonta bidens", reviewer="Ana Silva")
        when = {r["proposal_id"]: r["created_at"][:10] for r in db.reviews() if r["action"] in ("accept", "assign")}
        run2 = db.start_run("triage", {}, backup=False)
        names = {"accepted": accepted.name, "known": "Gonodonta bidens", "described": "Gonodonta dentella"}
        rows = [{"processid": p, "deepest_rank": "species", "deepest_taxon": names[grp], "novelty": 0.02,
                 "labels": {**GONODONTA, "species": names[grp]}} for grp in names for p in GROUPS[grp]]
        rows += [{"processid": p, "deepest_rank": "genus", "deepest_taxon": "Gonodonta", "novelty": 0.3,
                  "labels": GONODONTA} for p in GROUPS["genus"] + ["U0"]]
        rows += [{"processid": p, "deepest_rank": "genus", "deepest_taxon": "Calyptra", "novelty": 0.3,
                  "labels": OTHER_GENUS} for p in GROUPS["contradicted"]]
        # a specimen no reviewer saw, which run 2 names the provisional species run 1's review accepted
        rows.append({"processid": "W0", "deepest_rank": "species", "deepest_taxon": accepted.name, "novelty": 0.02,
                     "labels": {**GONODONTA, "species": accepted.name}})
        db.write_assignments(run2, rows)
        db.write_proposals(run2, [])
        db.finish_run(run2, "completed")
    return {"ids": dict(zip(GROUPS, ids)), "run2": run2, "when": when, "bd": accepted.name}


def _exported(tmp_path: Path) -> tuple[dict[str, Any], dict[str, dict[str, str]], dict[str, dict[str, str]], str]:
    """:func:`_two_runs`, then both runs exported as Darwin Core archives: (the fixture's ids, run 1's occurrence
    rows, run 2's, run 2's identification history)."""
    fx = _two_runs(tmp_path / "weeks.sqlite")
    (tmp_path / "one").mkdir()
    first, _ = export_dwca(tmp_path / "weeks.sqlite", 1, tmp_path / "one")
    core, history = export_dwca(tmp_path / "weeks.sqlite", fx["run2"], tmp_path)
    return fx, first, core, history


def test_a_later_run_naming_decided_specimens_the_same_species_credits_the_reviewer(tmp_path: Path) -> None:
    fx, first, core, history = _exported(tmp_path)
    ids, when = fx["ids"], fx["when"]
    by_id = {r["identificationID"]: r for r in csv.DictReader(history.splitlines(), delimiter="\t",
                                                               quoting=csv.QUOTE_NONE)}
    who = {"accepted": "Test Taxonomist", "known": "Ana Silva", "described": "Test Taxonomist"}
    status = {"accepted": "identified by reviewer (provisional species)",
              "known": "identified by reviewer (known species)",
              "described": "identified by reviewer (described species, not in the reference)"}
    for grp in ("accepted", "known", "described"):
        for pid in GROUPS[grp]:
            row = core[pid]
            # the determination run 1's export wrote, term for term
            assert {t: row[t] for t in SAME} == {t: first[pid][t] for t in SAME}, pid
            assert (row["identifiedBy"], row["dateIdentified"], row["identificationVerificationStatus"]) == \
                (who[grp], when[ids[grp]], status[grp])
            assert f"candidate species {ids[grp]} of run 1" in row["identificationRemarks"]
            assert f"; run 2 named the specimen {row['verbatimIdentification']} again from the reviewer's " \
                   "determination" in row["identificationRemarks"]
            # the candidate is named once (the US batch's week-2 archive said "candidate species 2 of run 1 …;
            # determined by a reviewer in run 1 (candidate species 2)")
            remarks = row["identificationRemarks"]
            assert remarks.count(f"candidate species {ids[grp]}") == 1, remarks
            assert row["identificationRemarks"].startswith("method=biodiscover triage run 2;")
            # the machine's own row of run 2 is history
            machine = by_id[f"{pid}:run2"]
            assert (machine["identifiedBy"], machine["identificationVerificationStatus"]) == \
                ("biodiscover", "unverified (machine prediction)")
    assert core["A0"]["verbatimIdentification"] == fx["bd"] and core["A0"]["scientificName"] == "Gonodonta"
    assert 'reviewer notes: “genitalia checked” (Test Taxonomist, ' in core["A0"]["identificationRemarks"]
    assert core["K0"]["scientificName"] == "Gonodonta bidens" and core["N0"]["scientificName"] == "Gonodonta dentella"
    # an undecided specimen stays the machine's, with no history of a decision: the only row of run 2 is the
    # current one (the core's, repeated as GBIF's Identification History asks)
    assert core["U0"]["identifiedBy"] == "biodiscover"
    assert [(i, r["identificationRemarks"].startswith("current determination")) for i, r in by_id.items()
            if r["coreid"] == "U0" and not i.endswith(":provided")] == [("U0:run2", True)]

    # the CSV's determination is the archive's (one owner)
    out = tmp_path / "csv"
    proc = run_cli("export", "--db", str(tmp_path / "weeks.sqlite"), "--run", "2", "-f", "csv", "-o", str(out),
                   env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    with open(out / "assignments.csv", newline="", encoding="utf-8-sig") as fh:
        sheet = {r["processid"]: r for r in csv.DictReader(fh)}
    for pid in ("A1", "K1", "N1"):
        assert (sheet[pid]["identifiedBy"], sheet[pid]["identificationVerificationStatus"]) == \
            (core[pid]["identifiedBy"], core[pid]["identificationVerificationStatus"])
    assert sheet["C0"]["identifiedBy"] == "biodiscover"
    assert (sheet["G0"]["identifiedBy"], sheet["G0"]["verbatimIdentification"]) == \
        ("Ben Ode", core["G0"]["verbatimIdentification"])


def test_a_later_run_naming_a_decided_specimen_otherwise_keeps_the_decision_in_the_history(tmp_path: Path) -> None:
    fx, first, core, history = _exported(tmp_path)
    ids, when = fx["ids"], fx["when"]
    rows = list(csv.DictReader(history.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE))
    c = ids["contradicted"]
    for pid in GROUPS["contradicted"]:
        # run 2 named it in another genus than the reviewer's species: that is its determination, the machine's
        assert (core[pid]["scientificName"], core[pid]["taxonRank"], core[pid]["identifiedBy"],
                core[pid]["identificationVerificationStatus"]) == \
            ("Calyptra", "genus", "biodiscover", "unverified (machine prediction)")
        (kept,) = [r for r in rows if r["coreid"] == pid and r["identificationID"] == f"{pid}:run1:candidate{c}"]
        # the reviewer's determination of run 1, as run 1's export wrote it
        for t in ("scientificName", "taxonRank", "identificationQualifier", "verbatimIdentification",
                  "taxonConceptID", "identifiedBy", "dateIdentified", "identificationVerificationStatus"):
            assert kept[t] == first[pid][t], t
        assert (kept["identifiedBy"], kept["dateIdentified"]) == ("Ana Silva", when[c])
        assert kept["identificationRemarks"].startswith(
            f"determined by a reviewer in run 1 (candidate species {c}); run 2 named the specimen Calyptra sp. "
            "instead; ")
    # where run 2 named the decided species, the decision is the core's: in the history once, as the current row,
    # under the id it has where it is not current
    assert [r["identificationRemarks"].startswith("current determination") for r in rows
            if r["identificationID"].startswith("A0:run1:")] == [True]


def test_a_later_run_naming_a_decided_specimen_less_deep_on_its_lineage_keeps_the_reviewers_determination(
        tmp_path: Path) -> None:
    """The week-2 review (e35, finding 1): a reviewer assigned 10 specimens to *Tiaopsis* sp. BIOUG57720-B08; the
    re-triage of the week named them genus *Tiaopsis* only, and its exports wrote the machine's "Tiaopsis sp." as
    their determination — the reviewer's was dropped from the current record by a name that does not contradict
    it, only says less. Now the reviewer's determination stands, the remark says what the run named, and the
    machine's shallower row is history."""
    fx, first, core, history = _exported(tmp_path)
    ids, when = fx["ids"], fx["when"]
    g = ids["genus"]
    by_id = {r["identificationID"]: r for r in csv.DictReader(history.splitlines(), delimiter="\t",
                                                               quoting=csv.QUOTE_NONE)}
    for pid in GROUPS["genus"]:
        row = core[pid]
        assert {t: row[t] for t in SAME} == {t: first[pid][t] for t in SAME}, pid
        assert (row["identifiedBy"], row["dateIdentified"], row["identificationVerificationStatus"]) == \
            ("Ben Ode", when[g], "identified by reviewer (provisional species)")
        assert row["verbatimIdentification"].startswith("Gonodonta sp. ") and row["taxonConceptID"]
        assert "; run 2 named the specimen only to genus Gonodonta, which does not contradict the reviewer's " \
               f"determination {row['verbatimIdentification']}: it stands" in row["identificationRemarks"]
        machine = by_id[f"{pid}:run2"]
        assert (machine["scientificName"], machine["taxonRank"], machine["identifiedBy"]) == \
            ("Gonodonta", "genus", "biodiscover")
        # no row says run 2 overruled it
        assert f"{pid}:run1:candidate{g}" not in by_id or \
            "instead" not in by_id[f"{pid}:run1:candidate{g}"]["identificationRemarks"]


def test_a_specimen_a_later_run_names_to_an_accepted_provisional_species_carries_its_concept(tmp_path: Path) -> None:
    """The weekly-batch review: week 2's specimens the machine named *Hemiceras* sp. BD-0001 (accepted in week 1) had
    no taxonConceptID, while week 1's members carried the candidate's: GBIF could not join the weeks on the concept.
    Now the machine's name of an accepted provisional species carries that candidate's concept; the determination
    stays the machine's (nobody reviewed this specimen)."""
    fx, first, core, _ = _exported(tmp_path)
    row = core["W0"]
    assert (row["scientificName"], row["taxonRank"], row["verbatimIdentification"]) == ("Gonodonta", "genus", fx["bd"])
    assert row["taxonConceptID"] and row["taxonConceptID"] == first["A0"]["taxonConceptID"]
    assert (row["identifiedBy"], row["identificationVerificationStatus"]) == \
        ("biodiscover", "unverified (machine prediction)")
    assert core["U0"]["taxonConceptID"] == ""  # named to genus only: no concept


def test_the_report_names_the_provisional_species_a_later_run_named_with_counts(tmp_path: Path) -> None:
    """e35 week-2 review, finding 9: week 2's HTML report named none of the provisional species (BD-0001, BD-0003,
    BD-0004) that 11 of its specimens carry in the csv and the archive; its only example, "(… sp. BD-0002, … sp.
    BIOUG…)", was a species none of them carried. The line under the cards now names each provisional species the
    run named, with its count, from the determinations assignments.csv gives."""
    import html

    from biodiscover.workflows.export import export_run

    fx = _two_runs(tmp_path / "weeks.sqlite")
    export_run(tmp_path / "weeks.sqlite", fx["run2"], "html", tmp_path / "r.html")
    page = html.unescape((tmp_path / "r.html").read_text(encoding="utf-8"))
    # A0–A2 (the accepted candidate's members) and W0 (a specimen nobody reviewed) are named its species
    assert ("4 specimens the machine named to a provisional or interim species count at the rank the archive places "
            f"them in: 4 to species accepted in this database (4 {fx['bd']}).") in page, \
        page[page.find("after review"):][:600]
    assert "BD-0002" not in page


def test_a_provisional_species_above_genus_is_written_in_open_nomenclature_at_its_placed_rank() -> None:
    """A provisional species accepted under a family (``Tenebrionidae gen. sp. BD-0004`` on the US batch) that a
    later run names a specimen to is no binomial: it is written at its family, "gen. sp.", the accepted
    candidate's concept beside it (it was written as a species named "Tenebrionidae gen. sp. BD-0004")."""
    import dataclasses

    from biodiscover.workflows.export.dwca import concept_id, occurrence_rows
    from fixtures.run_export import make_run_export

    data = make_run_export(n_known=2, n_candidates=0)
    a = data.assignments.copy()
    name = "Tenebrionidae gen. sp. BD-0004"
    a.loc[0, ["deepest_rank", "deepest_taxon", "label_family", "label_subfamily", "label_genus", "label_species"]] = \
        ["species", name, "Tenebrionidae", None, None, name]
    a.loc[0, "label_order"] = "Coleoptera"
    data = dataclasses.replace(data, assignments=a, concepts={name: 4})
    occ, _, _ = occurrence_rows(data)
    row = next(r for r in occ if r["occurrenceID"] == a.loc[0, "processid"])
    assert (row["scientificName"], row["taxonRank"], row["identificationQualifier"], row["verbatimIdentification"]) \
        == ("Tenebrionidae", "family", "gen. sp.", name)
    assert row["taxonConceptID"] == concept_id(data.run, 4) and row["family"] == "Tenebrionidae"
    assert row["identifiedBy"] == "biodiscover"


def test_a_candidate_merged_into_a_later_weeks_keeps_the_reviewers_determination_in_its_own_runs_export(
        tmp_path: Path) -> None:
    """The weekly-batch review: week 1's #10 (11 *Adelpha*) merged into week 2's #162 (4 more), accepted as *Adelpha*
    sp. BD-0004: week 1's archive then wrote the 11 as "Limenitidinae, unverified (machine prediction)", no concept,
    and week 2's archive holds only its own specimens — the reviewer's determination of 11 specimens was published
    nowhere. Now a run's specimens whose candidate was merged into another run's carry that candidate's
    determination (who, when, the concept), and the remark says where it went."""
    path = tmp_path / "weeks.sqlite"
    weeks = merged_weeks(path)
    first, second, old, new, run2 = weeks.first, weeks.second, weeks.old, weeks.new, weeks.run2
    with Database.open(path) as db:
        # the review's members table: week 1's members show what week 1 named them (they showed "?: ?")
        shown = {m.processid: (m.deepest_rank, m.deepest_taxon) for m in db.proposal_detail(new).members}
        assert shown == {p: ("genus", "Gonodonta") for p in first + second}
    (tmp_path / "one").mkdir()
    core1, _ = export_dwca(path, 1, tmp_path / "one")
    core2, _ = export_dwca(path, run2, tmp_path)
    for pid in first:
        row = core1[pid]
        assert (row["verbatimIdentification"], row["identifiedBy"], row["identificationVerificationStatus"]) == \
            (weeks.name, "Kim Tax", "identified by reviewer (provisional species)"), row
        assert row["taxonConceptID"] == core2[second[0]]["taxonConceptID"] != ""
        assert f"candidate species {old}" in row["identificationRemarks"]
        assert f"merged into candidate species {new} of run {run2}" in row["identificationRemarks"]


def test_a_carried_assignment_is_not_written_as_the_decision_a_later_run_named_otherwise(tmp_path: Path) -> None:
    """A reviewer assigned a singleton to *Gonodonta bidens*; a later run named the specimen only to genus and
    proposed it again, and the assignment was carried to its candidate: the specimen's determination is still the
    reviewer's. Its identification history said "run 2 named the specimen Gonodonta bidens instead" — the same name,
    and nothing 'instead': the carried decision is the current row, so no second row claims the run disagreed."""
    path = tmp_path / "carried.sqlite"
    (one,) = one_run_db(path, [Specimen(processid="H0", dna_barcode="ACGT" * 150, country="Norway")],
                        [{**GONODONTA, "species": "Gonodonta bidens"}],
                        [{"members": ["H0"], "parent_lineage": GONODONTA}],
                        [{"processid": "H0", "deepest_rank": "genus", "deepest_taxon": "Gonodonta", "novelty": 0.9,
                          "labels": GONODONTA}])
    with Database.open(path) as db:
        db.assign(one, db.proposal(one).version, "Gonodonta bidens", reviewer="Kari Nordmann")
        run2 = db.start_run("triage", {}, backup=False)
        db.write_assignments(run2, [{"processid": "H0", "deepest_rank": "genus", "deepest_taxon": "Gonodonta",
                                     "novelty": 0.9, "labels": GONODONTA}])
        (again,) = db.write_proposals(run2, [{"members": ["H0"], "parent_lineage": GONODONTA}])
        assert db.proposal(again).status == "assigned"  # carried
        db.finish_run(run2, "completed")
    core, history = export_dwca(path, run2, tmp_path)
    assert (core["H0"]["scientificName"], core["H0"]["identifiedBy"]) == ("Gonodonta bidens", "Kari Nordmann")
    rows = list(csv.DictReader(history.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE))
    assert not [r["identificationRemarks"] for r in rows if "instead" in r["identificationRemarks"]], rows
    # one row of the reviewer's determination (the current one), none filed as run 1's decision overruled
    assert len([r for r in rows if r["scientificName"] == "Gonodonta bidens"]) == 1
    assert not [r for r in rows if r["identificationID"] == f"H0:run1:candidate{one}"]


def test_a_later_weeks_candidate_merged_into_an_earlier_ones_has_that_candidates_history(tmp_path: Path) -> None:
    """e32 review R16: week 3's #49 merged into week 1's #2 (Chironomidae), which was then moved to Chironominae and
    accepted. Each merged-in specimen's history had a phantom "determined by a reviewer in run 3 … run 7 named the
    specimen <the same accepted name> instead" row (it was never in run 3), so the same determination twice, the
    current row filed under the merge's review id, and no row for the move that week 1's members get. Now it has
    the candidate's history from the merge on (the move's name superseded, the accept current), its own run's
    machine row, and a remark saying which review merged it."""
    erebidae = {"order": "Lepidoptera", "family": "Erebidae"}
    first, second = ["E1a", "E1b"], ["E2a", "E2b"]
    (old,) = one_run_db(path := tmp_path / "weeks.sqlite",
                        [Specimen(processid=p, dna_barcode="ACGT" * 150, country="Norway") for p in first + second],
                        [{**GONODONTA, "species": "Gonodonta bidens"}],
                        [{"members": first, "parent_lineage": erebidae}],
                        [{"processid": p, "deepest_rank": "family", "deepest_taxon": "Erebidae", "novelty": 0.9,
                          "labels": erebidae} for p in first])
    with Database.open(path) as db:
        run2 = db.start_run("triage", {}, backup=False)
        db.write_assignments(run2, [{"processid": p, "deepest_rank": "family", "deepest_taxon": "Erebidae",
                                     "novelty": 0.9, "labels": erebidae} for p in second])
        (new,) = db.write_proposals(run2, [{"members": second, "parent_lineage": erebidae}])
        db.finish_run(run2, "completed")
        merge = db.merge([old, new], {old: db.proposal(old).version, new: db.proposal(new).version},
                         reviewer="Kim Tax")
        move = db.move(old, db.proposal(old).version, "Calpinae", reviewer="Kim Tax")
        accept = db.accept(old, db.proposal(old).version, "Calpinae gen. sp. Tromso-A", reviewer="Kim Tax")
    rows_of: dict[str, list[dict[str, str]]] = {}
    for run in (1, run2):
        (tmp_path / str(run)).mkdir()
        _, history = export_dwca(path, run, tmp_path / str(run))
        for r in csv.DictReader(history.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE):
            rows_of.setdefault(r["coreid"], []).append(r)
    # week 1's member and week 2's have the same reviewer's rows: the move's name superseded, the accept current
    # (the machine's row: its own rank and the candidate it proposed the specimen in, as before any review)
    for pid, run, proposed in (("E1a", 1, old), ("E2a", run2, new)):
        rows = rows_of[pid]
        assert [r["identificationID"] for r in rows] == \
            [f"{pid}:review{move.review_id}", f"{pid}:run{run}", f"{pid}:review{accept.review_id}"], rows
        assert [r["verbatimIdentification"] for r in rows] == \
            [f"Calpinae gen. sp. cand{old}", f"Erebidae gen. sp. cand{proposed}", "Calpinae gen. sp. Tromso-A"]
        assert not [r for r in rows if "instead" in r["identificationRemarks"]]
    assert f"proposed in candidate species {new} (run {run2}), merged into candidate species {old} of run 1 " \
           f"(review {merge.review_id}: merge (Kim Tax, " in rows_of["E2a"][-1]["identificationRemarks"]
