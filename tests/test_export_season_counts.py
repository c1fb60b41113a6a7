"""A season's export over several weekly runs: counts said one way, a rejection listed once, an accepted species'
season total (season review e29, F4 and F11).

Found exporting a reviewed season (four weekly plates, week 3 triaged twice) as one: the bad read a reviewer
rejected in week 3 (#10) and that the re-run recognised and rejected again (#13) was listed as two rejected
candidates, though the README promises "every candidate once" and the review queue counts it once; the command line
and eml.xml said "3 candidate species (1 accepted, 2 not yet)" where the report said "9 candidate species proposed
· 1 accepted · 2 awaiting · 2 assigned · 4 rejected"; the week-3 run its re-run replaced read "(0 specimens)"; the
JSON history gave a review id as ``17.0``. And "Smittia sp. BD-0001", accepted in week 1 with 30 members and named
by its keys to 41 more specimens in weeks 2–4, had 30 in its proposals.csv row, members.csv, its FASTA file, its
report section and its JSON record, while the archive named 71 as it: a taxonomist preparing its description or
BOLD upload took 30 of 71.

Real SQLite written through the storage and review API, the real CLI (in process).
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest

from biodiscover.storage.db import Database
from biodiscover.storage.records import Specimen
from fixtures.inprocess import run_cli
from fixtures.review_db import GONODONTA, one_run_db

REVIEWER = "Kari Nordmann"
REASON = "bad read: vial W3-40 is a flea beetle; re-sequence"


@pytest.fixture(scope="module")
def season(tmp_path_factory) -> dict[str, Any]:
    """Week 1 (run 1): candidate A (A0, A1) accepted as a new species; candidate X (X0, a bad read) rejected, after
    a note on it was written and undone. Week 2 (run 2): new specimens A2, A3 named by the machine as A's species
    from its keys, and X0 triaged again and proposed alone: the database recognises the rejection (rejected again)."""
    path = tmp_path_factory.mktemp("season") / "season.sqlite"
    pids = ["A0", "A1", "X0", "A2", "A3"]
    a, x = one_run_db(path, [Specimen(processid=p, dna_barcode="ACGT" * 150, country="Norway") for p in pids],
                      [{**GONODONTA, "species": "Gonodonta bidens"}],
                      [{"members": ["A0", "A1"], "parent_lineage": GONODONTA},
                       {"members": ["X0"], "parent_lineage": GONODONTA}],
                      [{"processid": p, "deepest_rank": "genus", "deepest_taxon": "Gonodonta", "novelty": 0.9,
                        "labels": GONODONTA} for p in ("A0", "A1", "X0")])
    with Database.open(path) as db:
        name = db.accept(a, db.proposal(a).version, reviewer=REVIEWER).name
        noted = db.note(x, "meant for another candidate", reviewer=REVIEWER).review_id
        db.undo(noted, reviewer=REVIEWER)
        db.reject(x, db.proposal(x).version, reviewer=REVIEWER, note=REASON)
        run2 = db.start_run("triage", {}, backup=False)
        db.write_assignments(run2, [
            *({"processid": p, "deepest_rank": "species", "deepest_taxon": name, "novelty": 0.01,
               "labels": {**GONODONTA, "species": name}} for p in ("A2", "A3")),
            {"processid": "X0", "deepest_rank": "genus", "deepest_taxon": "Gonodonta", "novelty": 0.9,
             "labels": GONODONTA}])
        (x2,) = db.write_proposals(run2, [{"members": ["X0"], "parent_lineage": GONODONTA}])
        db.finish_run(run2, "completed")
        assert db.proposal(x2).status == "rejected"
        queue = db.queue_counts()
    return {"db": path, "a": a, "x": x, "x2": x2, "run1": 1, "run2": run2, "name": name, "noted": noted,
            "queue": queue}


def _export(season: dict[str, Any], fmt: str, out: Path, *runs: int) -> str:
    args = ["export", "--db", str(season["db"])]
    for r in runs or (season["run1"], season["run2"]):
        args += ["--run", str(r)]
    done = run_cli(*args, "-f", fmt, "-o", str(out))
    assert done.returncode == 0, done.stderr
    return done.stdout


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


def _fasta_ids(path: Path) -> list[str]:
    return [line[1:].split(" ", 1)[0] for line in path.read_text().splitlines() if line.startswith(">")]


COUNTS = "2 candidate species proposed (1 accepted by a reviewer, 0 awaiting review, 1 rejected by a reviewer)"


def test_a_rejection_a_later_run_recognised_is_listed_once_and_every_format_counts_alike(season, tmp_path):
    """F11: the queue lists the rejected bad read once (as run 2's); so do proposals.csv, the JSON, the report and
    the command line, and the command line, eml.xml's abstract and the report's cards say one count, each figure
    labelled. The earlier rejection's history stays readable on the later one (JSON ``rejected_before``), and a
    review id in that history is an integer."""
    assert season["queue"]["rejected"] == 1
    line = _export(season, "csv", tmp_path / "csv")
    assert COUNTS in line, line
    rows = _csv(tmp_path / "csv" / "proposals.csv")
    assert sorted(int(r["proposal_id"]) for r in rows) == sorted([season["a"], season["x2"]])
    assert [r["status"] for r in rows if r["status"] == "rejected"] == ["rejected"]
    assert {r["proposal_id"] for r in _csv(tmp_path / "csv" / "members.csv")} == {str(season["a"]),
                                                                                  str(season["x2"])}

    _export(season, "dwca", tmp_path / "season.zip")
    with zipfile.ZipFile(tmp_path / "season.zip") as zf:
        eml = html.unescape(zf.read("eml.xml").decode("utf-8"))
    assert COUNTS + "." in eml
    # run 1's re-triaged specimen is said as given as run 2's, not dropped from a count without a word
    assert (f"run {season['run1']} (2 specimens; 1 more triaged again by run {season['run2']}, given as that "
            "run's)") in eml

    _export(season, "html", tmp_path / "season.html")
    page = (tmp_path / "season.html").read_text(encoding="utf-8")
    cards = dict((label, int(n)) for n, label in re.findall(r"<div class='card'><b>(\d+)</b>([^<]+)</div>", page))
    assert [cards[k] for k in ("candidate species proposed", "accepted by a reviewer", "awaiting review",
                               "rejected by a reviewer")] == [2, 1, 0, 1]
    assert f"cand-{season['x']}'" not in page and f"cand-{season['x2']}'" in page

    _export(season, "json", tmp_path / "season.json")
    doc = json.loads((tmp_path / "season.json").read_text(encoding="utf-8"))
    by_id = {p["proposal_id"]: p for p in doc["proposals"]}
    assert set(by_id) == {season["a"], season["x2"]}
    before = by_id[season["x2"]]["rejected_before"]
    assert [b["proposal_id"] for b in before] == [season["x"]]
    undo = [h for h in before[0]["history"] if h["action"] == "undo"]
    assert [h["undoes"] for h in undo] == [season["noted"]] and type(undo[0]["undoes"]) is int


def test_the_earlier_run_alone_still_lists_its_own_rejection(season, tmp_path):
    """Run 1's own export keeps its rejection (the later one is not in it), as ``review --run 1`` lists it."""
    _export(season, "csv", tmp_path / "r1", season["run1"])
    rows = _csv(tmp_path / "r1" / "proposals.csv")
    assert sorted(int(r["proposal_id"]) for r in rows) == sorted([season["a"], season["x"]])


def test_an_accepted_species_row_file_and_section_hold_the_specimens_later_runs_named_as_it(season, tmp_path):
    """F4: A (2 reviewed members) is named by run 2 to A2 and A3. Its proposals.csv row keeps ``size`` 2 and says 2
    more named by run 2; members.csv lists them after its members with ``named_by_run``; its FASTA file holds all 4,
    the later ones' membership field saying which run named them; the report says "2 reviewed + 2 named by run 2";
    the JSON lists them."""
    a, run2 = season["a"], season["run2"]
    _export(season, "csv", tmp_path / "csv")
    row = next(r for r in _csv(tmp_path / "csv" / "proposals.csv") if int(r["proposal_id"]) == a)
    assert (row["size"], row["named_later"], row["named_later_runs"]) == ("2", "2", str(run2))
    members = [r for r in _csv(tmp_path / "csv" / "members.csv") if int(r["proposal_id"]) == a]
    assert [(r["processid"], r["named_by_run"]) for r in members] == [
        ("A0", ""), ("A1", ""), ("A2", str(run2)), ("A3", str(run2))]
    assert "named_by_run" in (tmp_path / "csv" / "columns.txt").read_text(encoding="utf-8")

    _export(season, "fasta", tmp_path / "fasta")
    (own,) = [p for p in (tmp_path / "fasta").iterdir() if p.name.startswith(f"{a}_")]
    assert _fasta_ids(own) == ["A0", "A1", "A2", "A3"]
    assert re.findall(r"^>A2 \|[^|]*\|COI-5P\|\|(\d+)\|named by run (\d+)\|", own.read_text(), re.M) == [
        (str(a), str(run2))]

    _export(season, "html", tmp_path / "season.html")
    page = html.unescape((tmp_path / "season.html").read_text(encoding="utf-8"))
    assert f"2 reviewed + 2 named by run {run2}" in page
    assert f"run {run2}: 2 (A2, A3)" in page

    _export(season, "json", tmp_path / "season.json")
    doc = json.loads((tmp_path / "season.json").read_text(encoding="utf-8"))
    rec = next(p for p in doc["proposals"] if p["proposal_id"] == a)
    assert rec["size"] == 2 and rec["named_later"] == [{"processid": "A2", "run_id": run2},
                                                        {"processid": "A3", "run_id": run2}]


def test_a_single_run_export_of_the_accepted_species_is_as_before(season, tmp_path):
    """One run's export: no column, row or field added; the species' file holds its members."""
    _export(season, "csv", tmp_path / "csv", season["run1"])
    assert "named_later" not in _csv(tmp_path / "csv" / "proposals.csv")[0]
    assert list(_csv(tmp_path / "csv" / "members.csv")[0]) == ["proposal_id", "processid", "probability"]
    _export(season, "fasta", tmp_path / "fasta", season["run1"])
    (own,) = [p for p in (tmp_path / "fasta").iterdir() if p.name.startswith(f"{season['a']}_")]
    assert _fasta_ids(own) == ["A0", "A1"]
    _export(season, "json", tmp_path / "r1.json", season["run1"])
    doc = json.loads((tmp_path / "r1.json").read_text(encoding="utf-8"))
    assert all("named_later" not in p and "rejected_before" not in p for p in doc["proposals"])
