"""A read the triage would not name from (chimeric, or unrelated to every reference key) in the exports.

e32 review R21: a plate's chimera (EURAP164-22: a weevil's 5' third on a moth's 3' third) and four reads at 54.6 %
to every insect key went to GBIF as "evidence=no call (no usable barcode or photograph)" at class Insecta, their
reads in dna.txt as the specimens' DNA and in all_specimens.fasta as insect barcodes for a tree pipeline. Now the
archive's remark gives the triage's own reason; a read unrelated to every key asserts no class (kingdom Animalia,
unless the collection supplied the class); and neither read is sent as the specimen's sequence (dna.txt,
all_specimens.fasta): it is no barcode of that specimen. assignments.csv keeps the reason and the run's tables
keep the read.

Real SQLite database and the real CLI.
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import Any

from biodiscover.storage.db import Database
from biodiscover.storage.records import Specimen
from fixtures.inprocess import run_cli

#: the triage's reasons as discovery.engine writes them (_check_chimeras, the unrelated-read check)
CHIMERA = ("chimeric barcode: its first third matches Protapion trifolii (Brentidae, EURAP064-19) at 100.0 % "
           "identity, its last third Xylorycta assimilis (Xyloryctidae, AACTA1813-20) at 100.0 %, the whole read no "
           "key closer than 89.9 %: two specimens' DNA in one read (a PCR chimera or a mixed well); not named from "
           "DNA and not a candidate species — sequence it again")
UNRELATED = ("barcode unrelated to every reference key: 54.6 % identity at best (either strand), no closer than "
             "shuffled reference barcodes come (55.9 %): another gene region, a contaminant or a failed read; not "
             "named from DNA and not a candidate species")


def _db(path: Path) -> int:
    with Database.create(path) as db:
        db.ingest([Specimen(processid=p, dna_barcode=("ACGT" if p != "OK1" else "AGCT") * 150, country="Norway")
                   for p in ("CHIM1", "UNREL1", "OK1")], collection="plate", backup=False)
        run = db.start_run("triage", {}, backup=False)
        db.write_assignments(run, [
            {"processid": "CHIM1", "modality": "none", "reason": CHIMERA, "novelty": 0.5},
            {"processid": "UNREL1", "modality": "none", "reason": UNRELATED, "novelty": 0.5},
            {"processid": "OK1", "modality": "dna", "deepest_rank": "family", "deepest_taxon": "Chironomidae",
             "labels": {"order": "Diptera", "family": "Chironomidae"}, "confidences": {"order": 1.0, "family": 0.99},
             "identity": 0.93, "overlap": 600, "top_hit": "K1", "novelty": 0.2}])
        db.write_proposals(run, [])
        db.finish_run(run, "completed")
    return run


def _table(zf: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(zf.read(name).decode("utf-8")), delimiter="\t", quoting=csv.QUOTE_NONE))


def test_a_chimeric_or_unrelated_read_says_why_and_is_not_sent_as_the_specimens_barcode(tmp_path: Path) -> None:
    path = tmp_path / "plate.sqlite"
    run = _db(path)
    out = {f: tmp_path / name for f, name in (("dwca", "p.zip"), ("fasta", "fa"), ("csv", "csv"))}
    for fmt, where in out.items():
        proc = run_cli("export", "--db", str(path), "--run", str(run), "-f", fmt, "-o", str(where))
        assert proc.returncode == 0, proc.stderr
    with zipfile.ZipFile(out["dwca"]) as zf:
        occ = {r["id"]: r for r in _table(zf, "occurrence.txt")}
        dna = {r["coreid"] for r in _table(zf, "dna.txt")}
    chim, unrel = occ["CHIM1"], occ["UNREL1"]
    assert dna == {"OK1"}
    assert "no usable barcode" not in chim["identificationRemarks"] + unrel["identificationRemarks"]
    assert CHIMERA in chim["identificationRemarks"] and UNRELATED in unrel["identificationRemarks"]
    assert "not sent as its DNA sequence" in chim["identificationRemarks"]
    # both ends of a chimera are insects' DNA: the class stands; an unrelated read says nothing of the specimen
    assert (chim["scientificName"], chim["taxonRank"], chim["class"]) == ("Insecta", "class", "Insecta")
    assert (unrel["scientificName"], unrel["taxonRank"], unrel["kingdom"], unrel["class"], unrel["phylum"]) == \
        ("Animalia", "kingdom", "Animalia", "", "")
    headers = [line for line in (out["fasta"] / "all_specimens.fasta").read_text().splitlines()
               if line.startswith(">")]
    assert [h.split()[0] for h in headers] == [">OK1"]
    with open(out["csv"] / "assignments.csv", encoding="utf-8-sig", newline="") as f:
        sheet = {r["processid"]: r for r in csv.DictReader(f)}
    assert sheet["CHIM1"]["reason"] == CHIMERA and sheet["UNREL1"]["taxonRank"] == "kingdom"


def _a_candidate_of_no_usable_read() -> tuple[Any, list[str], list[str]]:
    """An export whose pending candidate 2 has no member read usable as COI, and whose candidate 4 has one unusable
    read of its 7: (export, candidate 2's members, candidate 4's)."""
    from dataclasses import replace

    from fixtures.run_export import make_run_export

    data = make_run_export(n_known=2, n_candidates=4)
    members = data.members.groupby("proposal_id")["processid"].apply(list).to_dict()
    junk, some = members[2], members[4]  # pending: one of 3 members, one of 7
    hit = {"identity": 0.605, "overlap": 618, "chance": 0.567}
    props = data.proposals.copy()
    props["evidence"] = [{**ev, "member_hits": {p: hit for p in junk}} if pid == 2 else
                         {**ev, "member_hits": {some[0]: hit, some[2]: {**hit, "identity": 0.93}}} if pid == 4 else ev
                         for pid, ev in zip(props["proposal_id"], props["evidence"])]
    props.loc[props["proposal_id"] == 2, "status"] = "pending"
    assign = data.assignments.copy().astype({"deepest_rank": object, "deepest_taxon": object})
    assign.loc[assign["processid"].isin(junk), ["deepest_rank", "deepest_taxon"]] = [None, None]
    return replace(data, proposals=props, assignments=assign), junk, some


def test_a_candidate_of_no_usable_read_is_not_counted_as_a_candidate_species(tmp_path: Path) -> None:
    """e32 review R13, what was left: the archive no longer publishes a candidate none of whose reads is usable COI
    as a species, yet the command line, eml.xml's abstract and the report's cards still counted it among the
    "68 candidate species proposed" (the batch's #40 and #56). They count it apart, in one wording; the JSON
    summary's figures add up to the proposals (``not_coi`` beside ``pending``)."""
    from biodiscover.workflows.export import write_export
    from biodiscover.workflows.export.tables import proposal_counts
    from biodiscover.workflows.report import summary_cards

    d, _, _ = _a_candidate_of_no_usable_read()
    counts = proposal_counts(d.proposals)
    assert counts["not_coi"] == 1 and counts["proposed"] == len(d.proposals) - 1
    said = (f"{counts['proposed']} candidate species proposed ({counts['accepted']} accepted by a reviewer, "
            f"{counts['pending']} awaiting review")
    apart = "; 1 candidate of reads not usable as COI, not counted as species (⚠COI in the review)"
    result = write_export(d, "dwca", tmp_path / "a.zip")
    assert result.counts_text().startswith(said) and result.counts_text().endswith(apart), result.counts_text()
    summary = result.to_json()
    assert summary["not_coi"] == 1 and summary["pending"] == counts["pending"]
    assert summary["proposals"] == sum(summary[k] for k in ("accepted", "pending", "not_coi", "rejected", "assigned"))
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        eml = zf.read("eml.xml").decode()
    assert result.counts_text().replace("⚠", "&#9888;") in eml or result.counts_text() in eml, eml
    cards = dict(summary_cards(d))  # the report's cards (its plots, seconds to draw, left out)
    assert cards["candidate species proposed"] == counts["proposed"] and cards["awaiting review"] == counts["pending"]
    assert cards["candidates of reads not usable as COI, not counted as species"] == 1


def test_a_candidate_none_of_whose_reads_is_usable_coi_is_not_published_as_one(tmp_path: Path) -> None:
    """e32 review R13: NOCLP1451-19 (#40), 77.2 % to its nearest key over 518 bases, nearer what unrelated sequences
    reach than identity, went to GBIF as a candidate new species of Insecta ("Unplaced sp. cand40", a concept id)
    while the report left it out of the gap plot as "not usable COI". A pending candidate none of whose members'
    reads is usable COI (``barcode_gap.gap_of``'s "not COI", as the report reads it) is not linked as a candidate
    in the archive; its members assert no class the machine did not name; and a read the evidence calls not
    usable as COI is not sent as a COI sequence (dna.txt, all_specimens.fasta, the candidate's file). A candidate
    with usable members stays one."""
    from biodiscover.workflows.export import write_export

    d, junk, some = _a_candidate_of_no_usable_read()
    write_export(d, "dwca", tmp_path / "a.zip")
    write_export(d, "fasta", tmp_path / "fa")
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        occ = {r["id"]: r for r in _table(zf, "occurrence.txt")}
        dna = {r["coreid"] for r in _table(zf, "dna.txt")}
    sequenced = [p for p in junk if isinstance(d.specimens.set_index("processid").loc[p, "dna_barcode"], str)]
    assert sequenced and not dna & set(junk) and some[0] not in dna and some[2] in dna
    for p in junk:
        row = occ[p]
        assert not row["taxonConceptID"] and "cand" not in row["verbatimIdentification"], row
        assert (row["scientificName"], row["taxonRank"], row["class"]) == ("Animalia", "kingdom", "")
        assert "grouped as candidate species 2 (pending), not published as one: none of its members' reads is " \
               "usable as COI" in row["identificationRemarks"]
    assert occ[some[0]]["taxonConceptID"].endswith(":candidate:4")  # a candidate with a usable read stays one
    assert "barcode not usable as COI" in occ[some[0]]["identificationRemarks"]
    fasta = (tmp_path / "fa" / "all_specimens.fasta").read_text()
    assert not any(f">{p} " in fasta for p in junk + [some[0]]) and f">{some[2]} " in fasta
    assert not [f for f in (tmp_path / "fa").iterdir() if f.name.startswith("2_")]
