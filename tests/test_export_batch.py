"""One export over several runs: a week's batch as one archive.

Found on real weekly batches (benchmarks/RESULTS-tui.md, "Weekly batches reviewed as a taxonomist would"): an
export over several runs did not exist (``export --run`` on the batch's id was refused, naming the triage runs to
export one by one), and a later run's archive held only its own specimens, so a candidate a reviewer merged across
weeks was published with the earlier week's members missing from its FASTA. Now ``--run`` repeats, a batch's id
stands for its collections' triage runs, and every format writes each specimen once (as the latest of the runs
named it, exactly the row that run's own export gives it), each live candidate once with all its members, and
which run and collection each specimen came from.

Real triage runs (``biodiscover run`` on three plates, then ``triage`` of one plate again) into real SQLite, the
real CLI in process (``main``, typer's app); the cross-week merge is built through the real review API.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from fixtures.batch import build_bundle_and_frame, write_collections

pytest.importorskip("biodiscover.workflows.triage", reason="E1's triage pipeline (workflows/triage.py) not present")

from biodiscover.cli.main import main
from biodiscover.storage.db import Database
from biodiscover.storage.records import Specimen
from biodiscover.workflows.batch import ITEM_RUN_KIND, BatchConfig, run_batch
from fixtures.db_views import runs
from fixtures.review_db import GONODONTA, merged_weeks

DATASET = ("datasetID", "datasetName")


@pytest.fixture(scope="module")
def week(tmp_path_factory) -> dict[str, Any]:
    """Three plates of 20 specimens triaged by one ``biodiscover run`` (plate-02 with a 40-nt read set aside too),
    then plate-00 triaged again."""
    root = tmp_path_factory.mktemp("week")
    bundle, meta = build_bundle_and_frame(root)
    plates = write_collections(meta, root / "week", 3, rows_per_collection=20)
    with plates[2].open("a", encoding="utf-8") as fh:
        fh.write("SHORT001,S-short," + "ACGT" * 10 + ",Canada,Ontario,43.0,-80.0\n")
    db = root / "week.sqlite"
    summary = run_batch(BatchConfig(collections=str(root / "week"), model=bundle, db=db))
    triage = [o.run_id for o in summary.outcomes]
    assert len(triage) == 3 and all(isinstance(r, int) for r in triage)
    assert main(["triage", "-i", str(plates[0]), "-m", str(bundle), "--db", str(db), "-q", "--again"]) == 0
    with Database.open(db, readonly=True) as database:
        again = max(r.id for r in runs(database))
        items = {Path(r.parameters["path"]).name: r.id for r in runs(database) if r.kind == ITEM_RUN_KIND}
    plate_of = {p: path.stem for path in plates for p in pd.read_csv(path)["processid"] if p != "SHORT001"}
    return {"root": root, "db": db, "batch": summary.batch_run_id, "triage": triage, "again": again,
            "items": items, "plate_of": plate_of, "bundle": bundle}


def _export(db: Path, run_ids: list[int], fmt: str, out: Path, *extra: str) -> int:
    args = ["export", "--db", str(db)]
    for r in run_ids:
        args += ["--run", str(r)]
    return main([*args, "-f", fmt, "-o", str(out), "--creator", "Ana Silva <ana@example.org>", "--licence",
                 "CC0-1.0", *extra])


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


def _archive(path: Path) -> tuple[dict[str, dict[str, str]], str, str]:
    """(occurrence rows by id, eml.xml, meta.xml) of a Darwin Core archive."""
    with zipfile.ZipFile(path) as zf:
        text = zf.read("occurrence.txt").decode("utf-8")
        eml, meta = zf.read("eml.xml").decode("utf-8"), zf.read("meta.xml").decode("utf-8")
    rows = csv.DictReader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE)
    return {r["id"]: r for r in rows}, eml, meta


def _package_id(eml: str) -> str:
    found = re.search(r'packageId="([^"]+)"', eml)
    assert found is not None
    return found.group(1)


def test_a_batchs_id_exports_its_plates_as_one_archive_with_each_specimens_run_and_collection(
        week: dict[str, Any], tmp_path: Path, capsys) -> None:
    """``export --run <batch>`` writes the three plates' runs as one: 60 specimens once each, every candidate of
    the three runs once with its members, each specimen's run and collection in assignments.csv (``run_id``,
    ``collection``) and in the archive (``datasetName`` = its plate, ``datasetID`` = its run's own archive's
    packageId), each occurrence row otherwise the row of its run's own archive; ``--run a --run b --run c`` is the
    same export."""
    db, (a, b, c) = week["db"], week["triage"]
    assert _export(db, [week["batch"]], "csv", tmp_path / "batch") == 0
    assert f"exported runs {a}, {b} and {c} as csv: 60 specimens" in capsys.readouterr().out
    assignments = _csv(tmp_path / "batch" / "assignments.csv")
    assert len(assignments) == 60 == len({r["processid"] for r in assignments})
    assert {(r["processid"], r["collection"]) for r in assignments} == \
        {(p, week["plate_of"][p]) for p in week["plate_of"]}
    by_plate = {f"plate-0{i}": str(r) for i, r in enumerate((a, b, c))}
    assert all(r["run_id"] == by_plate[r["collection"]] for r in assignments)

    single: dict[int, dict[str, Any]] = {}
    for r in (a, b, c):
        assert _export(db, [r], "csv", tmp_path / f"csv{r}") == 0
        assert _export(db, [r], "dwca", tmp_path / f"run{r}.zip") == 0
        occ, eml, _ = _archive(tmp_path / f"run{r}.zip")
        single[r] = {"occ": occ, "package": _package_id(eml),
                     "proposals": {p["proposal_id"] for p in _csv(tmp_path / f"csv{r}" / "proposals.csv")},
                     "members": {(m["proposal_id"], m["processid"])
                                 for m in _csv(tmp_path / f"csv{r}" / "members.csv")}}
    proposals = _csv(tmp_path / "batch" / "proposals.csv")
    assert len(proposals) == len({p["proposal_id"] for p in proposals}) > 0
    assert {(p["proposal_id"], p["run_id"], p["collection"]) for p in proposals} == \
        {(pid, str(r), f"plate-0{i}") for i, r in enumerate((a, b, c)) for pid in single[r]["proposals"]}
    assert {(m["proposal_id"], m["processid"]) for m in _csv(tmp_path / "batch" / "members.csv")} == \
        set().union(*(single[r]["members"] for r in (a, b, c)))
    columns = (tmp_path / "batch" / "columns.txt").read_text(encoding="utf-8")
    assert "collection — the collection (file) that run triaged" in columns
    # what each run's ingest set aside is said, naming the run (plate-02's 40-nt read)
    assert columns.splitlines()[1].startswith(f"This export: run {c}. 1 specimen of the collection was not triaged: ")

    capsys.readouterr()
    assert _export(db, [a, b, c], "csv", tmp_path / "each") == 0
    assert f"exported runs {a}, {b} and {c} as csv" in capsys.readouterr().out
    for name in ("assignments.csv", "proposals.csv", "members.csv", "columns.txt"):
        assert (tmp_path / "each" / name).read_bytes() == (tmp_path / "batch" / name).read_bytes(), name

    assert _export(db, [week["batch"]], "dwca", tmp_path / "week.zip") == 0
    occ, eml, meta = _archive(tmp_path / "week.zip")
    assert len(occ) == 60
    for r in (a, b, c):
        for pid, row in single[r]["occ"].items():
            assert (occ[pid]["datasetName"], occ[pid]["datasetID"]) == (week["plate_of"][pid], single[r]["package"])
            assert {k: v for k, v in occ[pid].items() if k not in DATASET} == row
    assert 'term="http://rs.tdwg.org/dwc/terms/datasetName"' in meta
    assert _package_id(eml).endswith(f"-runs-{a}-{b}-{c}")
    assert f"<title>biodiscover runs {a}, {b} and {c}: identifications and candidate species</title>" in eml
    assert "60 specimens of 3 collections (plate-00, plate-01 and plate-02)" in eml
    assert f"Run {c} of collection plate-02: 1 specimen of the collection was not triaged: " in eml
    assert (f"This dataset joins 3 triage runs of one biodiscover database: run {a} of collection plate-00 "
            f"(20 specimens), run {b} of collection plate-01 (20 specimens) and run {c} of collection plate-02 "
            "(20 specimens).") in eml
    # one procedure, one method step naming every run (not three copies of one paragraph)
    assert eml.count("<methodStep>") == 2
    assert f"(triage runs {a} of collection plate-00, {b} of collection plate-01 and {c} of collection plate-02, " \
           "model sha256:" in eml

    assert _export(db, [week["batch"]], "json", tmp_path / "week.json") == 0
    doc = json.loads((tmp_path / "week.json").read_text(encoding="utf-8"))
    assert [(r["id"], r["collection"], r["specimens"]) for r in doc["runs"]] == \
        [(a, "plate-00", 20), (b, "plate-01", 20), (c, "plate-02", 20)]
    assert doc["partial"] is False and len(doc["assignments"]) == 60
    assert {p["proposal_id"] for p in doc["proposals"]} == {int(p["proposal_id"]) for p in proposals}
    assert _export(db, [week["batch"]], "html", tmp_path / "week.html") == 0
    page = (tmp_path / "week.html").read_text(encoding="utf-8")
    assert f"<title>biodiscover runs {a}, {b} and {c}</title>" in page
    assert f"run {a}: plate-00, completed, 20 specimens" in page and f"run {c}: plate-02, completed" in page


def test_a_plate_triaged_again_is_given_once_as_its_latest_run_named_it(week: dict[str, Any], tmp_path: Path,
                                                                        capsys) -> None:
    """plate-00 triaged by the batch and again: exported with both runs, its 20 specimens are given once, each the
    row the later run's own archive gives it (its remarks naming that run), and the methods say the earlier run
    gives none; the earlier run's candidates the later one re-clustered are not candidates of the export."""
    db, (a, b, c), again = week["db"], week["triage"], week["again"]
    assert _export(db, [week["batch"], again], "dwca", tmp_path / "all.zip") == 0
    assert f"exported runs {a}, {b}, {c} and {again} as dwca: 60 specimens" in capsys.readouterr().out
    assert _export(db, [again], "dwca", tmp_path / "again.zip") == 0
    occ, eml, _ = _archive(tmp_path / "all.zip")
    latest, _, _ = _archive(tmp_path / "again.zip")
    assert len(occ) == 60 and set(latest) <= set(occ) and len(latest) == 20
    for pid, row in latest.items():
        assert {k: v for k, v in occ[pid].items() if k not in DATASET} == row
        assert occ[pid]["identificationRemarks"].startswith(f"method=biodiscover triage run {again};")
        assert occ[pid]["datasetName"] == "plate-00"
    # the earlier run gives none of its own: said as what became of them (it read "(0 specimens)", season review F11)
    assert f"run {a} of collection plate-00 (its 20 specimens triaged again by run {again}, given as that run's)" in eml
    assert f"run {again} of collection plate-00 (20 specimens)" in eml
    assert _export(db, [a, b, c, again], "csv", tmp_path / "all") == 0
    rows = _csv(tmp_path / "all" / "assignments.csv")
    assert {r["run_id"] for r in rows if r["collection"] == "plate-00"} == {str(again)}
    assert not [p for p in _csv(tmp_path / "all" / "proposals.csv") if p["run_id"] == str(a)]


def test_a_run_that_did_not_complete_is_refused_among_several_unless_partial_which_marks_it(
        week: dict[str, Any], tmp_path: Path, capsys) -> None:
    """A late plate whose triage failed after storing 2 specimens: with the week's runs, refused in one ``error:``
    line naming it; with ``--partial`` exported and marked (the command's line, JSON, eml.xml's abstract and
    methods). A batch's record of one plate is refused naming its triage run, an unknown id in one line."""
    db = tmp_path / "late.sqlite"
    db.write_bytes(week["db"].read_bytes())
    with Database.open(db) as database:
        database.ingest([Specimen(processid=f"LATE{i}", dna_barcode="ACGT" * 150, country="Kenya") for i in range(2)],
                        collection="plate-late", backup=False)
        late = database.start_run("triage", {}, model_fingerprint="sha256:1", total=5, backup=False)
        database.write_assignments(late, [{"processid": f"LATE{i}", "deepest_rank": "genus",
                                           "deepest_taxon": "Gonodonta", "novelty": 0.9, "labels": GONODONTA}
                                          for i in range(2)])
        database.finish_run(late, "failed", message="killed")
    a, b, c = week["triage"]
    capsys.readouterr()
    assert _export(db, [a, b, c, late], "json", tmp_path / "late.json") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: run {late} ")
    assert "did not complete (status failed" in err and "pass --partial" in err
    assert not (tmp_path / "late.json").exists()

    assert _export(db, [a, b, c, late], "json", tmp_path / "late.json", "--partial") == 0
    assert "as json (partial): 62 specimens" in capsys.readouterr().out
    doc = json.loads((tmp_path / "late.json").read_text(encoding="utf-8"))
    assert doc["partial"] is True
    assert [(r["id"], r["status"]) for r in doc["runs"]][-1] == (late, "failed")
    assert _export(db, [a, b, c, late], "dwca", tmp_path / "late.zip", "--partial") == 0
    occ, eml, _ = _archive(tmp_path / "late.zip")
    assert len(occ) == 62
    assert f"(triage runs {a}, {b}, {c} and {late}, models sha256:" in eml
    assert f"Run {late} did not complete (status failed). This dataset is partial." in eml
    assert f"Run {late} did not complete (status failed): it gives what it stored, and this dataset is partial." in eml
    assert f"The runs used different reference models: runs {a}, {b} and {c} model sha256:" in eml

    capsys.readouterr()
    item = week["items"]["plate-00.csv"]
    assert _export(week["db"], [a, item], "csv", tmp_path / "item") == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"error: run {item} is the batch record of plate-00\.csv, not a triage run: export its "
                        rf"triage run, --run {a}\n", err), err
    assert _export(week["db"], [a, 999], "csv", tmp_path / "nope") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: no run 999 in ")
    assert not (tmp_path / "item").exists() and not (tmp_path / "nope").exists()


def test_a_candidate_merged_across_weeks_is_given_once_with_all_its_members(tmp_path: Path, capsys) -> None:
    """The weekly-batch review: week 1's candidate merged into week 2's and accepted. Week 2's own FASTA holds only
    its 2 specimens' barcodes (week 1's members are in week 1's export); the two weeks exported as one give the
    candidate once, its FASTA with all 5, every member's record its determination, and each week's model named
    (the weeks used different ones)."""
    path = tmp_path / "weeks.sqlite"
    weeks = merged_weeks(path, model_fingerprint="sha256:week2")
    first, second, new, run2 = weeks.first, weeks.second, weeks.new, weeks.run2
    assert _export(path, [run2], "fasta", tmp_path / "week2") == 0
    (alone,) = [f for f in (tmp_path / "week2").glob("*.fasta") if f.name != "all_specimens.fasta"]
    assert alone.read_text(encoding="utf-8").count(">") == 2
    assert _export(path, [1, run2], "fasta", tmp_path / "both") == 0
    (both,) = [f for f in (tmp_path / "both").glob("*.fasta") if f.name != "all_specimens.fasta"]
    assert sorted(h.split("|")[0] for h in re.findall(r"^>(\S+)", both.read_text(encoding="utf-8"), re.M)) == \
        sorted(first + second)
    assert _export(path, [1, run2], "csv", tmp_path / "csv") == 0
    (cand,) = _csv(tmp_path / "csv" / "proposals.csv")
    assert (cand["proposal_id"], cand["run_id"], cand["status"]) == (str(new), str(run2), "accepted")
    assert sorted(m["processid"] for m in _csv(tmp_path / "csv" / "members.csv")) == sorted(first + second)
    assert _export(path, [1, run2], "dwca", tmp_path / "both.zip") == 0
    occ, eml, _ = _archive(tmp_path / "both.zip")
    assert sorted(occ) == sorted(first + second)
    assert {(r["verbatimIdentification"], r["identifiedBy"], r["taxonConceptID"]) for r in occ.values()} == \
        {(weeks.name, "Kim Tax", occ["W2a"]["taxonConceptID"])}
    assert {p: r["datasetName"] for p, r in occ.items()} == {**dict.fromkeys(first, "run 1"),
                                                             **dict.fromkeys(second, f"run {run2}")}
    assert "The runs used different reference models: run 1 model unknown; run 2 model sha256:week2." in eml


def test_the_reports_candidate_table_says_which_run_and_collection_each_candidate_came_from(
        week: dict[str, Any], tmp_path: Path) -> None:
    """The export of a week's batch (``export --run A --run B``) listed candidates of three plates in one table
    with nothing saying which plate each came from (RESULTS-tui, "A week's batch as one export"); proposals.csv had
    run_id and collection. Now the table has a column for them, as proposals.csv gives them; a one-run report
    has none (its run is in the header)."""
    import html as html_
    import re

    db = week["db"]
    assert _export(db, [week["batch"]], "html", tmp_path / "week.html") == 0
    assert _export(db, [week["batch"]], "csv", tmp_path / "batch") == 0
    page = (tmp_path / "week.html").read_text(encoding="utf-8")
    table = page[page.index("<table><thead><tr><th>#</th>"):]
    table = table[: table.index("</table>")]
    head = [html_.unescape(h) for h in re.findall(r"<th>(.*?)</th>", table)]
    assert head[:2] == ["#", "run (collection)"], head
    shown = {int(m.group(1)): html_.unescape(m.group(2))
             for m in re.finditer(r"<tr><td>(\d+)</td><td>(.*?)</td>", table)}
    sheet = {int(p["proposal_id"]): f"run {p['run_id']} ({p['collection']})" for p in _csv(tmp_path / "batch"
                                                                                         / "proposals.csv")}
    assert shown and len(set(shown.values())) > 1  # candidates of more than one plate
    assert shown == {pid: sheet[pid] for pid in shown}
    assert _export(db, [week["triage"][0]], "html", tmp_path / "one.html") == 0
    assert "run (collection)" not in (tmp_path / "one.html").read_text(encoding="utf-8")


def test_a_candidate_merged_into_another_weeks_is_said_where_it_went_in_every_export(tmp_path: Path) -> None:
    """e32 review R6 + R26: week 2's #29 merged into week 1's #2, then accepted. Week 2's export said "0 accepted",
    listed neither, and its 13 members carried the reviewer's name with an empty proposal_id and status; the batch's
    export had no word of the merges but the JSON history. Here week 1's candidate is merged into week 2's: week 1's
    report says where it went (with who and when), its members' rows name the holder and its status, the JSON lists
    the merge, and week 2's proposals.csv and section name what it took in."""
    import html as html_

    path = tmp_path / "weeks.sqlite"
    weeks = merged_weeks(path)
    old, new, run2 = weeks.old, weeks.new, weeks.run2
    went = (f"#{old} Gonodonta sp. cand{old} (run 1; 3 specimens) merged into #{new} {weeks.name} (run {run2}; "
            "accepted) by Kim Tax, ")
    assert _export(path, [1], "html", tmp_path / "w1.html") == 0
    page = html_.unescape((tmp_path / "w1.html").read_text(encoding="utf-8"))
    assert f"Besides these, 1 candidate of this export was merged by a reviewer into another candidate (#{old} " \
        f"into #{new}, accepted)" in page
    assert "<h3>Merged by a reviewer</h3>" in page and went in page
    assert _export(path, [1], "csv", tmp_path / "w1") == 0
    rows = {r["processid"]: r for r in _csv(tmp_path / "w1" / "assignments.csv")}
    assert {(r["proposal_id"], r["provisional_name"], r["candidate_status"], r["proposed_in"]) for r in rows.values()} \
        == {(str(new), weeks.name, "accepted", str(old))}
    assert _export(path, [1], "json", tmp_path / "w1.json") == 0
    (merge,) = json.loads((tmp_path / "w1.json").read_text(encoding="utf-8"))["merges"]
    assert (merge["source_id"], merge["source_run"], merge["source_size"], merge["into_id"], merge["into_run"],
            merge["into_status"], merge["reviewer"]) == (old, 1, 3, new, run2, "accepted", "Kim Tax")
    assert _export(path, [run2], "csv", tmp_path / "w2") == 0
    (cand,) = _csv(tmp_path / "w2" / "proposals.csv")
    assert cand["merged_in"].startswith(f"#{old} Gonodonta sp. cand{old} (run 1; 3 specimens) by Kim Tax, ")
    assert _export(path, [run2], "html", tmp_path / "w2.html") == 0
    page = html_.unescape((tmp_path / "w2.html").read_text(encoding="utf-8"))
    assert f"<th>merged in</th><td>#{old} Gonodonta sp. cand{old} (run 1; 3 specimens) by Kim Tax" in page
    assert "Besides these" not in page  # week 2's own candidates all stand
