"""A later run's candidate assigned by the carry of a reviewer's decision on an earlier run says so, in every export.

Found reviewing a real Norwegian plate (e27, F6/F11): run 1's #7 was accepted as "Harpalinae gen. sp. Ødegaard-1";
the re-triage (run 2) proposed its specimen again as #12, which the database assigned to that species because of
the reviewer's word on #7. Run 2's report listed #12 as "assigned by a reviewer" with an empty identity: nothing
said that the assignment was carried from run 1's #7, by whom, nor on what identity it rests. And the same
determination read "accepted by reviewer (provisional species)" in run 1's archive and "identified by reviewer
(provisional species)" in run 2's.

Real SQLite database, the real review API and the real export.
"""

from __future__ import annotations

import csv
import html
import re
from pathlib import Path
from typing import Any

from biodiscover.storage.db import Database
from biodiscover.storage.evidence import NearSpecies
from biodiscover.storage.records import Specimen
from biodiscover.workflows.export import export_run
from fixtures.review_db import GONODONTA, one_run_db, plate_evidence
from fixtures.run_export import export_dwca

REVIEWER = "Kari Nordmann"
SICHEAS = NearSpecies("Gonodonta sicheas", "Gonodonta", 0.9512, 11, {"Mexico": 3}, {"A0": 0.9512, "A1": 0.95})
BIDENS = NearSpecies("Gonodonta bidens", "Gonodonta", 0.9931, 9, {"Brazil": 9}, {"K0": 0.9931, "K1": 0.99})


def _carried(path: Path) -> dict[str, Any]:
    """Run 1 proposes A (nearest known Gonodonta sicheas, 95.1 %) and K (Gonodonta bidens, 99.3 %); a reviewer accepts
    A and assigns K to G. bidens. Run 2 proposes the same two groups again: the database assigns both by carry. Run
    2's evidence of A's members holds no identity to the provisional species (its keys are these very specimens)."""
    pids = ["A0", "A1", "K0", "K1"]
    a, k = one_run_db(path, [Specimen(processid=p, dna_barcode="ACGT" * 150, country="Norway") for p in pids],
                      [{**GONODONTA, "species": s.species} for s in (SICHEAS, BIDENS)],
                      [{"members": ["A0", "A1"], "parent_lineage": GONODONTA, "nearest_species": SICHEAS.species,
                        "nearest_identity": SICHEAS.identity, "evidence": plate_evidence((SICHEAS,), ["A0", "A1"])},
                       {"members": ["K0", "K1"], "parent_lineage": GONODONTA, "nearest_species": BIDENS.species,
                        "nearest_identity": BIDENS.identity, "evidence": plate_evidence((BIDENS,), ["K0", "K1"])}],
                      [{"processid": p, "deepest_rank": "genus", "deepest_taxon": "Gonodonta", "novelty": 0.9,
                        "labels": GONODONTA} for p in pids])
    with Database.open(path) as db:
        name = db.accept(a, db.proposal(a).version, reviewer=REVIEWER).name
        db.assign(k, db.proposal(k).version, BIDENS.species, reviewer=REVIEWER)
        run2 = db.start_run("triage", {}, backup=False)
        db.write_assignments(run2, [{"processid": p, "deepest_rank": "genus", "deepest_taxon": "Gonodonta",
                                     "novelty": 0.9, "labels": GONODONTA} for p in pids])
        a2, k2 = db.write_proposals(run2, [
            {"members": ["A0", "A1"], "parent_lineage": GONODONTA, "nearest_species": SICHEAS.species,
             "nearest_identity": SICHEAS.identity, "evidence": plate_evidence((SICHEAS,), ["A0", "A1"])},
            {"members": ["K0", "K1"], "parent_lineage": GONODONTA, "nearest_species": BIDENS.species,
             "nearest_identity": BIDENS.identity, "evidence": plate_evidence((BIDENS,), ["K0", "K1"])}])
        db.finish_run(run2, "completed")
        assert (db.proposal(a2).status, db.proposal(k2).status) == ("assigned", "assigned")
    return {"a": a, "k": k, "a2": a2, "k2": k2, "run2": run2, "name": name}


def _row(page: str, pid: int) -> list[str]:
    table = page[page.index("<table><thead><tr><th>#</th>"):]
    row = re.search(rf"<tr><td>{pid}</td>(.*?)</tr>", table[: table.index("</table>")], re.S)
    assert row, pid
    return [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td>(.*?)</td>", row.group(1), re.S)]


def test_a_carried_assignment_says_from_which_run_candidate_reviewer_and_identity(tmp_path: Path) -> None:
    fx = _carried(tmp_path / "lab.sqlite")
    out = tmp_path / "r.html"
    export_run(tmp_path / "lab.sqlite", fx["run2"], "html", out)
    page = out.read_text(encoding="utf-8")
    # table: name, placed in, specimens, species, identity, novelty, status
    a_row, k_row = _row(page, fx["a2"]), _row(page, fx["k2"])
    assert a_row[1] == f"species {fx['name']} (carried from run 1's #{fx['a']}, accepted by {REVIEWER})", a_row
    assert k_row[1] == f"species {BIDENS.species} (carried from run 1's #{fx['k']}, assigned by {REVIEWER})", k_row
    # the identity it rests on: to the species assigned where this run's evidence holds it (K); for a provisional
    # species (its keys are its own members) the one the acceptance rested on, the nearest known species' (A)
    assert k_row[4] == "99.3%", k_row
    assert a_row[4] == f"95.1% to {SICHEAS.species} (nearest known, on #{fx['a']})", a_row
    start = page.index(f"id='cand-{fx['a2']}'")
    section = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page[start: page.index("</section>", start)])).split())
    assert f"carried from run 1's #{fx['a']}, accepted by {REVIEWER}: a later triage proposed its specimens again" \
        in section, section
    assert f"95.1% to {SICHEAS.species} (nearest known, on #{fx['a']})" in section
    # the CSV names the source too
    export_run(tmp_path / "lab.sqlite", fx["run2"], "csv", tmp_path / "csv")
    with open(tmp_path / "csv" / "proposals.csv", newline="", encoding="utf-8-sig") as fh:
        rows = {int(r["proposal_id"]): r for r in csv.DictReader(fh)}
    assert rows[fx["a2"]]["carried_from"] == f"run 1's #{fx['a']}, accepted by {REVIEWER}"
    assert rows[fx["k2"]]["carried_from"] == f"run 1's #{fx['k']}, assigned by {REVIEWER}"


def test_a_provisional_species_reads_the_same_in_the_run_that_accepted_it_and_the_run_that_carried_it(
        tmp_path: Path) -> None:
    fx = _carried(tmp_path / "lab.sqlite")
    (tmp_path / "one").mkdir()
    first, _ = export_dwca(tmp_path / "lab.sqlite", 1, tmp_path / "one")
    second, _ = export_dwca(tmp_path / "lab.sqlite", fx["run2"], tmp_path)
    for pid in ("A0", "A1"):
        assert first[pid]["identificationVerificationStatus"] == second[pid]["identificationVerificationStatus"] \
            == "identified by reviewer (provisional species)"


def _season(path: Path) -> dict[str, Any]:
    """Week 1 (collection ``week1``): #A, two *Harpalus* a reviewer renames and notes (vials W1-A1, A2), and #R, one
    bad read she rejects with a reason. Week 3's re-triage of the same specimens (run 2) proposes both groupings
    again: the rename and the note are carried to #A's successor, the rejection to #R's."""
    harpalus = {"order": "Coleoptera", "family": "Carabidae", "genus": "Harpalus"}
    db = Database.create(path)
    try:
        db.ingest([Specimen(processid=p, genus="Harpalus", dna_barcode="ACGT" * 150, country="Norway")
                   for p in ("H1", "H2", "B1")], collection="week1", backup=False)
        groups = [{"members": ["H1", "H2"], "parent_lineage": harpalus},
                  {"members": ["B1"], "parent_lineage": harpalus}]
        named = [{"processid": p, "deepest_rank": "genus", "deepest_taxon": "Harpalus", "labels": harpalus}
                 for p in ("H1", "H2", "B1")]
        run1 = db.start_run("triage", {}, backup=False)
        db.write_assignments(run1, named)
        a, r = db.write_proposals(run1, groups)
        db.finish_run(run1, "completed")
        db.rename(a, db.proposal(a).version, "Harpalus sp. NOR-A", reviewer=REVIEWER)
        db.note(a, "W1: 2 ex., vials W1-A1..A2", reviewer=REVIEWER)
        db.reject(r, db.proposal(r).version, reviewer=REVIEWER, note="contaminant: vial W1-B1")
        run2 = db.start_run("triage", {}, backup=False)
        db.write_assignments(run2, named)
        a2, r2 = db.write_proposals(run2, groups)
        db.finish_run(run2, "completed")
        assert (db.proposal(a2).provisional_name, db.proposal(r2).status) == ("Harpalus sp. NOR-A", "rejected")
        said = {r["action"]: r for r in db.reviews(a)}
        return {"a": a, "r": r, "a2": a2, "r2": r2, "run2": run2, "noted": said["note"]["created_at"],
                "renamed": said["rename"]["created_at"][:10],
                "carried_on": db.proposal(a2).created_at[:10]}
    finally:
        db.close()


def test_carried_reviews_are_exported_as_the_databases_actions_and_her_note_says_what_it_was_written_on(
        tmp_path: Path) -> None:
    """A season's #12 read “(on #2) carried: its specimens came back in a later triage” twice in the report and in
    proposals.csv, signed "Kari Nordmann" and backdated to her own times: the database's carry of her rename and
    move quoted as her words; and her note about week 1's five vials read as written on #12's two specimens of week 3
    (e29 F9). Each carried review is now the database's action, dated when carried, in every format; her note keeps
    her text, name and time and says which candidate and specimens she wrote it on."""
    fx = _season(tmp_path / "lab.sqlite")
    a, a2, r, r2, run2, day = fx["a"], fx["a2"], fx["r"], fx["r2"], fx["run2"], fx["carried_on"]
    on_a = f"on #{a}: 2 specimens of week1"
    note = f"“W1: 2 ex., vials W1-A1..A2” ({REVIEWER}, {fx['noted'][:10]}, {on_a})"
    export_run(tmp_path / "lab.sqlite", run2, "csv", tmp_path / "csv")
    with open(tmp_path / "csv" / "proposals.csv", newline="", encoding="utf-8-sig") as fh:
        rows = {int(x["proposal_id"]): x for x in csv.DictReader(fh)}
    assert rows[a2]["review_notes"] == (f"{note}; rename carried from #{a} by run {run2} (biodiscover, {day}; "
                                        f"{REVIEWER}'s, {fx['renamed']}, {on_a})")
    assert rows[a2]["reviewers"] == REVIEWER  # hers, not the database's that carried it
    # the reason is hers, written on #r; the rejection the database's repetition of it; the decision hers
    assert rows[r2]["review_notes"] == (f"“contaminant: vial W1-B1” ({REVIEWER}, {rows[r2]['decided_at'][:10]}, "
                                        f"on #{r}: 1 specimen of week1); reject carried from #{r} by run {run2} "
                                        f"(biodiscover, {day}; {REVIEWER}'s, {rows[r2]['decided_at'][:10]}, on #{r}: "
                                        "1 specimen of week1)")
    assert rows[r2]["decided_by"] == REVIEWER
    assert "came back in a later triage" not in " ".join(x["review_notes"] for x in rows.values())

    export_run(tmp_path / "lab.sqlite", run2, "html", tmp_path / "r.html")
    page = tmp_path.joinpath("r.html").read_text(encoding="utf-8")
    start = page.index(f"id='cand-{a2}'")
    section = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page[start: page.index("</section>", start)])).split())
    assert f"“W1: 2 ex., vials W1-A1..A2” {REVIEWER}, {fx['noted'][:10]}" in section and on_a in section, section
    assert f"rename carried from #{a} by run {run2} biodiscover, {day}" in section, section
    assert "“rename carried" not in section and "“(on #" not in section

    export_run(tmp_path / "lab.sqlite", run2, "json", tmp_path / "r.json")
    doc = __import__("json").loads(tmp_path.joinpath("r.json").read_text(encoding="utf-8"))
    review = next(p for p in doc["proposals"] if p["proposal_id"] == a2)["review"]
    (renamed,) = [h for h in review["history"] if h["action"] == "rename"]
    assert (renamed["reviewer"], renamed["at"][:10], renamed["note"]) == ("biodiscover", day, None)
    assert {k: renamed["carried"][k] for k in ("words", "from_proposal", "by_run", "reviewer")} == {
        "words": f"rename carried from #{a} by run {run2}", "from_proposal": a, "by_run": run2, "reviewer": REVIEWER}
    assert [(n["reviewer"], n["text"], n["written_on"]) for n in review["notes"]] == [
        (REVIEWER, "W1: 2 ex., vials W1-A1..A2", on_a)]

    # the archive (a pending candidate's members carry no review remarks): the rejected read's
    core, _history = export_dwca(tmp_path / "lab.sqlite", run2, tmp_path)
    remarks = core["B1"]["identificationRemarks"]
    assert remarks.endswith(f"; reviewer notes: “contaminant: vial W1-B1” ({REVIEWER}, "
                            f"{rows[r2]['decided_at'][:10]}, on #{r}: 1 specimen of week1); reject carried from #{r} "
                            f"by run {run2} (biodiscover, {day}; {REVIEWER}'s, {rows[r2]['decided_at'][:10]}, on "
                            f"#{r}: 1 specimen of week1)"), remarks
    assert f"rejected by {REVIEWER} on {rows[r2]['decided_at'][:10]}" in remarks, remarks


def test_a_review_carried_twice_names_whose_it_was_when_and_the_candidate_she_made_it_on(tmp_path: Path) -> None:
    """A season's week 2, triaged three times: her rename of #43 was carried to #144 by run 9, then from #144 to #179
    by run 10; proposals.csv and the report said "rename carried from #144 by run 10 (biodiscover, …)" alone, where
    the review app's history said whose it was, when, and on #43 (e31 F4). Every export now says it as the app does
    (:meth:`~biodiscover.storage.review_log.Carried.origin`)."""
    fx = _season(tmp_path / "lab.sqlite")
    a, a2, r, day = fx["a"], fx["a2"], fx["r"], fx["carried_on"]
    with Database.open(tmp_path / "lab.sqlite") as db:
        rejected = next(x for x in db.reviews(r) if x["action"] == "reject")["created_at"][:10]
        named = [{"processid": p, "deepest_rank": "genus", "deepest_taxon": "Harpalus",
                  "labels": {"order": "Coleoptera", "family": "Carabidae", "genus": "Harpalus"}}
                 for p in ("H1", "H2", "B1")]
        run3 = db.start_run("triage", {}, backup=False)
        db.write_assignments(run3, named)
        a3, r3 = db.write_proposals(run3, [{"members": ["H1", "H2"], "parent_lineage": named[0]["labels"]},
                                           {"members": ["B1"], "parent_lineage": named[0]["labels"]}])
        db.finish_run(run3, "completed")
        assert db.proposal(a3).provisional_name == "Harpalus sp. NOR-A"
    hers = f"{REVIEWER}'s, {fx['renamed']}, on #{a}: 2 specimens of week1"
    export_run(tmp_path / "lab.sqlite", run3, "csv", tmp_path / "csv")
    with open(tmp_path / "csv" / "proposals.csv", newline="", encoding="utf-8-sig") as fh:
        rows = {int(x["proposal_id"]): x for x in csv.DictReader(fh)}
    carried = f"; rename carried from #{a2} by run {run3} (biodiscover, {day}; {hers})"
    assert rows[a3]["review_notes"].endswith(carried), rows[a3]["review_notes"]
    assert rows[r3]["review_notes"].endswith(f"; reject carried from #{r} by run {run3} (biodiscover, {day}; "
                                             f"{REVIEWER}'s, {rejected}, on #{r}: 1 specimen of week1)"), \
        rows[r3]["review_notes"]
    export_run(tmp_path / "lab.sqlite", run3, "html", tmp_path / "r.html")
    page = tmp_path.joinpath("r.html").read_text(encoding="utf-8")
    start = page.index(f"id='cand-{a3}'")
    section = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page[start: page.index("</section>", start)])).split())
    assert f"rename carried from #{a2} by run {run3} biodiscover, {day}" in section, section
    assert f"; {hers}" in section, section
