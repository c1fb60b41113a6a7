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
