"""Exports from run tables: every format read back, hostile data kept inert, no overwrites."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from PIL import Image

from biodiscover.storage.errors import InputError
from fixtures.run_export import HOSTILE_NAMES, make_run_export
from biodiscover.workflows.export import (
    DNA_ROWTYPE,
    IDENTIFICATION_ROWTYPE,
    neutralise_cell,
    safe_join,
    safe_member_name,
    write_export,
)


@pytest.fixture(scope="module")
def data():
    return make_run_export()


# -- hostile-data helpers -----------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["=1+1", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_formula_cells_are_neutralised(cell: str) -> None:
    assert neutralise_cell(cell) == "'" + cell


def test_plain_cells_and_numbers_are_untouched() -> None:
    assert neutralise_cell("Megaselia") == "Megaselia"
    assert neutralise_cell(-80.5) == -80.5
    assert neutralise_cell(None) is None


@pytest.mark.parametrize("name", ["../../etc/passwd", "/abs/path", "..", "a/../../b", "C:\\win\\x", "CON",
                                  "nul.txt", "COM1", "lpt1.txt", "COM9", "\x00\x01", "", "☃" * 300])
def test_safe_member_names_stay_inside(tmp_path: Path, name: str) -> None:
    member = safe_member_name(name, suffix=".fasta")
    assert "/" not in member and "\\" not in member and not member.startswith(".")
    assert len(member) <= 106
    # every name Windows reserves, COM1 and LPT1 included, is made an ordinary one
    reserved = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
    assert member.split(".")[0].upper() not in reserved
    assert safe_join(tmp_path, member).parent == tmp_path.resolve()


def test_safe_join_refuses_escape(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="outside"):
        safe_join(tmp_path, "../x")


# -- formats ------------------------------------------------------------------------------------------------

def test_csv_export(tmp_path: Path, data) -> None:
    out = tmp_path / "csv"
    res = write_export(data, "csv", out)
    assert sorted(p.name for p in res.files) == ["assignments.csv", "columns.txt", "members.csv", "proposals.csv"]
    with open(out / "assignments.csv", newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(data.assignments)
    by_id = {r["processid"]: r for r in rows}
    # Novel members carry their candidate; known specimens carry none.
    first_member = data.members.iloc[0]
    assert by_id[first_member["processid"]]["proposal_id"] == str(first_member["proposal_id"])
    assert by_id["KN0000"]["proposal_id"] == ""
    # ... and its name: every member of candidate 5 is named as the candidate, a known specimen is not
    fifth = data.members[data.members["proposal_id"] == 5]["processid"]
    assert [by_id[p]["provisional_name"] for p in fifth] == ["Megaselia sp. BD-0007"] * len(fifth)
    assert by_id["KN0000"]["provisional_name"] == ""
    props = list(csv.DictReader(open(out / "proposals.csv", newline="", encoding="utf-8-sig")))
    assert len(props) == len(data.proposals)
    names = [p["provisional_name"] for p in props]
    for name in names:  # nothing a spreadsheet would evaluate
        assert not name.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert "'" + HOSTILE_NAMES[0] in names and "Megaselia sp. BD-0007" in names
    # Evidence scalars are flattened; the multi-line name survives quoting as one cell.
    assert "evidence_nearest_identity" in props[0]
    assert HOSTILE_NAMES[5] in names
    # Numbers stay numbers.
    frame = pd.read_csv(out / "assignments.csv")
    assert frame["novelty"].dtype.kind == "f"


def test_dwca_reads_back_with_python_dwca_reader(tmp_path: Path, data) -> None:
    from dwca.read import DwCAReader

    out = tmp_path / "run7.zip"
    write_export(data, "dwca", out)
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == sorted(["meta.xml", "eml.xml", "occurrence.txt", "identification.txt",
                                                "dna.txt"])
    with DwCAReader(str(out)) as dwca:
        rows = list(dwca)
        assert len(rows) == len(data.specimens)
        assert dwca.descriptor.core.type == "http://rs.tdwg.org/dwc/terms/Occurrence"
        ext_types = {e.type for e in dwca.descriptor.extensions}
        assert ext_types == {IDENTIFICATION_ROWTYPE, DNA_ROWTYPE}
        assert "biodiscover run 7" in dwca.metadata.find("dataset/title").text
        dwc = "http://rs.tdwg.org/dwc/terms/"
        by_id = {r.id: r for r in rows}
        # A candidate member: open nomenclature.
        member = data.members[data.members["proposal_id"] == 5].iloc[0]["processid"]
        rec = by_id[member]
        assert rec.data[dwc + "scientificName"] == "Megaselia"
        assert rec.data[dwc + "taxonRank"] == "genus"
        assert rec.data[dwc + "identificationQualifier"] == "sp."
        assert rec.data[dwc + "verbatimIdentification"] == "Megaselia sp. BD-0007"
        assert rec.data[dwc + "taxonConceptID"] == "biodiscover:run:7:candidate:5"
        remarks = rec.data[dwc + "identificationRemarks"]
        assert "model=sha256:abc123" in remarks and re.search(r"confidence=0\.\d{3} at genus", remarks)
        assert rec.data[dwc + "identificationVerificationStatus"] == "identified by reviewer (provisional species)"
        # A known specimen: named to species, no qualifier.
        known = by_id["KN0003"]
        assert known.data[dwc + "scientificName"] == "Megaselia k3"
        assert known.data[dwc + "taxonRank"] == "species"
        assert known.data[dwc + "identificationQualifier"] == ""
        assert float(known.data[dwc + "decimalLongitude"]) < 0
        # Identification History holds every determination (here the one provided with the collection), the
        # current one last, repeated from the core. DNA where sequenced.
        idents = [e for e in known.extensions if e.rowtype == IDENTIFICATION_ROWTYPE]
        assert [e.data[dwc + "identifiedBy"] for e in idents] == ["provided with the collection", "biodiscover"]
        assert known.data[dwc + "identifiedBy"] == "biodiscover"
        dna = [e for e in known.extensions if e.rowtype == DNA_ROWTYPE]
        assert len(dna) == 1
        assert dna[0].data["http://rs.gbif.org/terms/dna_sequence"] == \
            data.specimens.set_index("processid").loc["KN0003", "dna_barcode"]
        assert not [e for e in by_id["IMG0001"].extensions if e.rowtype == DNA_ROWTYPE]
        # Members of the rejected candidate 3 keep their plain genus-level name, not a candidate.
        rejected = by_id[data.members[data.members["proposal_id"] == 3].iloc[0]["processid"]]
        assert rejected.data[dwc + "taxonConceptID"] == ""
        assert rejected.data[dwc + "verbatimIdentification"] == "Megaselia sp."
        assert rejected.data[dwc + "identificationRemarks"].endswith(
            "; proposed in candidate species 3, rejected by a reviewer")
        # Hostile tab inside a value did not shift columns; formula-like ids neutralised.
        nv = by_id["NV0000"]
        assert nv.data[dwc + "stateProvince"] == "Guanacaste north"
        assert nv.data[dwc + "catalogNumber"].startswith("'=")
        assert dwca.orphaned_extension_rows() == {IDENTIFICATION_ROWTYPE: {}, DNA_ROWTYPE: {}} or \
            not any(dwca.orphaned_extension_rows().values())


def test_fasta_per_candidate(tmp_path: Path, data) -> None:
    out = tmp_path / "fasta"
    res = write_export(data, "fasta", out)
    assert out / "all_specimens.fasta" in res.files  # every sequenced specimen (tests/test_export_fasta_bold.py)
    files = [f for f in res.files if f.name != "all_specimens.fasta"]
    assert len(files) == int((data.proposals["status"] != "rejected").sum())
    for f in res.files:
        assert f.parent == out and f.suffix == ".fasta"
    # each file is named by its candidate's id and name (made safe): the accepted candidate 5 by its provisional name
    assert out / "5_Megaselia_sp._BD-0007.fasta" in res.files
    assert out / "1__HYPERLINK_http_evil.example_click.fasta" in res.files  # "=" and the quotes made safe
    text = "".join(f.read_text() for f in files)
    headers = [line[1:] for line in text.splitlines() if line.startswith(">")]
    with_barcode = data.specimens.set_index("processid")["dna_barcode"].dropna()
    live = data.members[data.members["proposal_id"] != 3]  # candidate 3 was rejected
    assert len(headers) == int(live["processid"].isin(with_barcode.index).sum())
    assert not [h for h in headers if h.split("|")[4] == "3"]
    for h in headers:  # BOLD's processid|identification|marker|accession, then candidate, membership, BIN, parent
        fields = h.split("|")
        assert len(fields) == 8, h
        assert fields[0].strip() in with_barcode.index and h.split()[0] == fields[0].strip()
        assert (fields[2], fields[3], fields[7]) == ("COI-5P", "", "Megaselia")
    hostile = [h for h in headers if h.split("|")[4] == "6"]
    assert hostile and all("\n" not in h and ">" not in h for h in hostile)
    # Sequences round-trip through the collection reader (what `triage --input x.fasta` reads).
    from biodiscover.storage.collections import read_collection

    for f in res.files:
        back = read_collection(f)
        assert back.ok and back.specimens
        for rec in back.specimens:
            assert rec.dna_barcode == with_barcode[rec.processid]


def test_a_fasta_header_leaves_a_missing_bin_empty(data) -> None:
    """A specimen without a BIN (``None`` from the database, ``NaN`` from pandas) gets an empty header field, never
    the words ``None`` or ``nan`` a BOLD upload would read as a BIN; a BIN present is written as it is."""
    import dataclasses

    from biodiscover.workflows.export.fasta import fasta_records

    pids = sorted(h.split()[0] for recs in fasta_records(data).values() for h, _ in recs)
    with_bin, with_none, with_nan = pids[:3]
    specimens = data.specimens.copy()
    specimens["dna_bin"] = specimens["dna_bin"].astype(object)
    specimens.loc[specimens["processid"] == with_bin, "dna_bin"] = "BOLD:AAA0001"
    specimens.loc[specimens["processid"] == with_none, "dna_bin"] = None
    specimens.loc[specimens["processid"] == with_nan, "dna_bin"] = float("nan")
    fields = {h.split()[0]: h.split("|")
              for recs in fasta_records(dataclasses.replace(data, specimens=specimens)).values() for h, _ in recs}
    assert (fields[with_bin][6], fields[with_none][6], fields[with_nan][6]) == ("BOLD:AAA0001", "", "")


def test_fasta_file_names_sort_in_candidate_order(tmp_path: Path) -> None:
    """Eleven candidates: ids are zero-padded (01_…, 10_…) so a plain file listing sorts 1, 2 … 10, 11."""
    many = make_run_export(n_known=20, n_candidates=11, seed=5)
    res = write_export(many, "fasta", tmp_path / "fa")
    names = sorted(f.name for f in res.files if f.name != "all_specimens.fasta")
    ids = [int(n.split("_", 1)[0]) for n in names]
    assert ids == sorted(ids) and max(ids) >= 10
    assert all(len(n.split("_", 1)[0]) == 2 for n in names), names


def test_html_report_has_five_plots_and_escapes(tmp_path: Path, data) -> None:
    out = tmp_path / "report.html"
    write_export(data, "html", out)
    page = out.read_text(encoding="utf-8")
    uris = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(uris) == 5
    for uri in uris:
        img = Image.open(io.BytesIO(base64.b64decode(uri)))
        assert img.size[0] > 500 and img.size[1] > 300
    assert "=HYPERLINK(&quot;" in page and "<script" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; Ünïcode näme ☃" in page
    for key in ("naming_depth", "novelty", "barcode_gap", "proposal_sizes", "sites"):
        assert f"id='{key}'" in page


def test_json_export(tmp_path: Path, data) -> None:
    out = tmp_path / "run.json"
    write_export(data, "json", out)
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["run"]["id"] == 7
    assert len(doc["assignments"]) == len(data.assignments)
    assert len(doc["proposals"]) == len(data.proposals)
    sizes = {p["proposal_id"]: len(p["members"]) for p in doc["proposals"]}
    assert sizes == data.members.groupby("proposal_id").size().to_dict()
    assert doc["proposals"][0]["evidence"]["nearest_known"]["species"] == "Megaselia k1"
    img = next(a for a in doc["assignments"] if a["processid"] == "IMG0001")
    assert img["deepest_rank"] is None
    assert doc["dataset"] == {"title": None, "licence": None, "creators": [], "contact": None}


def test_json_export_names_the_datasets_creators(tmp_path: Path, data) -> None:
    """Who made the dataset travels with the JSON export as eml.xml gives it: each creator's name parts,
    organisation, position, e-mail and ORCID, and the contact (eml.xml's metadata provider too). Found by mutation
    testing (no test looked at the creators), then by the export review (e27, F11): the JSON wrote "Name <e-mail>"
    strings, and the organisations, ORCID iDs and contact of --metadata were lost there while eml.xml kept them."""
    from biodiscover.workflows.export.metadata import DatasetMetadata, ExportOptions, Person, parse_person

    ada = Person(name="Ada Lovelace", organization="Natural History Museum", email="ada@example.org",
                 orcid="0000-0002-1825-0097")
    desk = Person(position="Collections desk", organization="Natural History Museum", email="desk@example.org")
    meta = DatasetMetadata(title="Malaise trap 4", licence="CC-BY-4.0",
                           creators=(ada, Person(given="Ana María", surname="Silva Pérez"),
                                     Person(organization="Centre for Biodiversity Genomics"),
                                     parse_person("Kari Nordmann <kari@example.org>")),
                           contact=desk)
    out = tmp_path / "run.json"
    write_export(data, "json", out, options=ExportOptions(meta))
    dataset = json.loads(out.read_text(encoding="utf-8"))["dataset"]
    none = dict.fromkeys(("name", "given", "surname", "organization", "position", "email", "orcid"))
    assert dataset == {"title": "Malaise trap 4", "licence": "CC-BY-4.0", "creators": [
        {**none, "name": "Ada Lovelace", "given": "Ada", "surname": "Lovelace",
         "organization": "Natural History Museum", "email": "ada@example.org",
         "orcid": "https://orcid.org/0000-0002-1825-0097"},
        {**none, "name": "Ana María Silva Pérez", "given": "Ana María", "surname": "Silva Pérez"},
        {**none, "name": "Centre for Biodiversity Genomics", "organization": "Centre for Biodiversity Genomics"},
        {**none, "name": "Kari Nordmann", "given": "Kari", "surname": "Nordmann", "email": "kari@example.org"}],
        "contact": {**none, "name": "Natural History Museum", "position": "Collections desk",
                    "organization": "Natural History Museum", "email": "desk@example.org"}}
    # eml.xml names the same people: the contact answers for the metadata, and the ORCID is the creator's userId
    write_export(data, "dwca", tmp_path / "a.zip", options=ExportOptions(meta))
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        eml = zf.read("eml.xml").decode("utf-8")
    assert '<userId directory="https://orcid.org/">0000-0002-1825-0097</userId>' in eml
    assert eml.count("<positionName>Collections desk</positionName>") == 2  # metadataProvider and contact


@pytest.mark.parametrize("fmt,name", [("json", "x.json"), ("dwca", "x.zip"), ("html", "x.html")])
def test_existing_output_needs_force(tmp_path: Path, data, fmt: str, name: str) -> None:
    out = tmp_path / name
    first = write_export(data, fmt, out)
    marker = first.files[0]
    again = write_export(data, fmt, out, force=True)  # its own, unchanged: replaced with --force
    assert sorted(again.files) == sorted(first.files)
    marker.write_bytes(b"edited by hand")
    with pytest.raises(InputError, match="already exists; pass --force"):
        write_export(data, fmt, out)
    # edited since: not replaced even with --force (as a folder export's edited file; e31 review F19)
    with pytest.raises(InputError, match="biodiscover did not write it \\(or it was changed since\\)"):
        write_export(data, fmt, out, force=True)
    assert marker.read_bytes() == b"edited by hand"


@pytest.mark.parametrize("fmt", ["csv", "fasta"])
def test_force_replaces_a_previous_folder_export_but_not_a_file_edited_since(tmp_path: Path, data, fmt: str) -> None:
    out = tmp_path / "x"
    first = write_export(data, fmt, out)
    with pytest.raises(InputError, match="already exists; pass --force"):
        write_export(data, fmt, out)
    again = write_export(data, fmt, out, force=True)  # untouched: replaced as a whole
    assert sorted(again.files) == sorted(first.files)
    marker = first.files[0]
    marker.write_bytes(b"edited by hand")
    with pytest.raises(InputError, match=rf"{marker.name} \(changed since biodiscover wrote it\)"):
        write_export(data, fmt, out, force=True)
    assert marker.read_bytes() == b"edited by hand"


@pytest.mark.parametrize("fmt", ["csv", "fasta"])
def test_force_never_deletes_a_folder_of_other_files(tmp_path: Path, data, fmt: str) -> None:
    """``--out ~/data --force`` used to delete the whole folder; it now refuses and names what it would delete."""
    home = tmp_path / "my-data"
    home.mkdir()
    (home / "notes.txt").write_text("years of work")
    (home / "old.fasta").write_text(">mine\nACGT\n")
    with pytest.raises(InputError, match=r"refusing to replace .*my-data: it holds files no .* export wrote "
                                         r"\(notes.txt, old.fasta\)"):
        write_export(data, fmt, home, force=True)
    assert (home / "notes.txt").read_text() == "years of work" and (home / "old.fasta").exists()
    # four or five: three are named, the rest counted (seed 5309's survivor output.py:176)
    for name, shown in (("a.txt", "a.txt, notes.txt, old.fasta"), ("b.txt", "a.txt, b.txt, notes.txt and 1 more"),
                        ("c.txt", "a.txt, b.txt, c.txt and 2 more")):
        (home / name).write_text("mine")
        with pytest.raises(InputError, match=rf"\({shown}\); choose a new or empty folder$"):
            write_export(data, fmt, home, force=True)
    # A file of one's own added to a previous export folder is kept too.
    out = tmp_path / "export"
    write_export(data, fmt, out)
    (out / "my-notes.txt").write_text("keep me")
    with pytest.raises(InputError, match=r"my-notes.txt"):
        write_export(data, fmt, out, force=True)
    assert (out / "my-notes.txt").read_text() == "keep me"


def test_file_and_folder_outputs_are_not_confused(tmp_path: Path, data) -> None:
    report = tmp_path / "report.html"
    report.write_text("<html>mine</html>")
    with pytest.raises(InputError, match="is a file; the csv export writes a folder"):
        write_export(data, "csv", report, force=True)
    assert report.read_text() == "<html>mine</html>"
    with pytest.raises(InputError, match="is a folder; the html export writes one file"):
        write_export(data, "html", tmp_path)


def test_a_file_export_named_without_its_ending_is_refused_with_the_name_to_use(tmp_path: Path, data) -> None:
    for given, hint in (("run7", "run7.zip"), ("run7.txt", "run7.zip")):
        with pytest.raises(InputError, match=rf"writes a \.zip file; name it {re.escape(hint)}$"):
            write_export(data, "dwca", tmp_path / given)
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_and_missing_folder(tmp_path: Path, data) -> None:
    with pytest.raises(InputError, match="unknown export format 'xlsx'"):
        write_export(data, "xlsx", tmp_path / "x")
    with pytest.raises(InputError, match="does not exist"):
        write_export(data, "json", tmp_path / "nope" / "x.json")


# -- report numbers -----------------------------------------------------------------------------------------

def test_barcode_gap_from_member_barcodes() -> None:
    from biodiscover.workflows.report import barcode_gap_distances

    import numpy as np

    a = "".join(np.random.default_rng(0).choice(list("ACGT"), 200))
    swap = {"A": "C", "C": "G", "G": "T", "T": "A"}
    b = "".join(swap[c] if i % 20 == 10 else c for i, c in enumerate(a))  # 10 spaced substitutions: p = 0.05
    a2 = a[:100] + swap[a[100]] + a[101:]  # 1 substitution: p = 0.005
    members = pd.DataFrame({"proposal_id": [1, 1, 2], "processid": ["x", "y", "z"]})
    barcodes = pd.Series({"x": a, "y": a2, "z": b})
    within, between = barcode_gap_distances(members, barcodes)
    assert within.tolist() == pytest.approx([0.005])
    assert sorted(between.tolist()) == pytest.approx([0.05, 0.05])


def test_barcode_gap_prefers_stored_evidence() -> None:
    from biodiscover.workflows.report import evidence_gap_distances, naming_depth_counts

    props = pd.DataFrame({"proposal_id": [1, 2, 3], "evidence": [
        {"within_distance": {"mean": 0.004, "max": 0.01}, "between_distance": {"distance": 0.08}},
        {"within_distance": None, "between_distance": {"distance": 0.11}},  # a singleton
        "not a dict"]})
    within, between = evidence_gap_distances(props)
    assert within.tolist() == [0.01] and between.tolist() == [0.08, 0.11]
    assert evidence_gap_distances(pd.DataFrame({"proposal_id": [1], "evidence": [{}]})) is None
    counts = naming_depth_counts(pd.DataFrame({"deepest_rank": ["species", "genus", None, "genus"],
                                               "novelty": [0.1, 0.9, 0.7, 0.2],
                                               "is_novel": [False, True, True, False]}))
    assert counts.loc["genus"].tolist() == [1, 1] and counts.loc["unnamed"].tolist() == [0, 1]
    assert int(counts.to_numpy().sum()) == 4


def test_the_barcode_gap_plot_draws_and_names_the_threshold_the_candidates_were_cut_at() -> None:
    """A taxonomist reading the real plate's report could not see where the learned species threshold lay; each
    candidate's gap sentence is judged against it (the most common one recorded, as a fraction)."""
    from biodiscover.workflows.report import evidence_threshold, plot_barcode_gap

    props = pd.DataFrame({"proposal_id": [1, 2, 3, 4], "evidence": [
        {"threshold": 0.028}, {"threshold": 0.028}, {"threshold": 0.03}, "not a dict"]})
    assert evidence_threshold(props) == 0.028
    assert evidence_threshold(pd.DataFrame({"proposal_id": [1], "evidence": [{}]})) is None
    plot = plot_barcode_gap([0.004, 0.01], [0.08, 0.11], per_candidate=True, threshold=0.028)
    assert plot.caption.endswith("Dashed: the species threshold learned from the reference, 2.8%.")
    assert "threshold" not in plot_barcode_gap([0.004], [0.08], per_candidate=True).caption


def test_open_nomenclature_for_interim_names_and_unnamed_candidates() -> None:
    from biodiscover.workflows.export import RunExport, occurrence_rows

    spec = pd.DataFrame({"processid": ["A", "B", "C"], "dna_barcode": ["ACGT" * 60] * 3,
                         "dna_bin": ["BOLD:AAA0001", None, None]})
    assign = pd.DataFrame({"processid": ["A", "B", "C"], "deepest_rank": ["species", "genus", "species"],
                           "deepest_taxon": ["Zyeria sp. BIOUG63189-C12", "Megaselia", "Apis mellifera"],
                           "novelty": [0.1, 0.9, 0.05], "confidence_species": [0.93, None, 0.99],
                           "confidence_genus": [0.99, 0.97, 1.0], "label_genus": ["Zyeria", "Megaselia", "Apis"]})
    props = pd.DataFrame({"proposal_id": [12], "provisional_name": [None], "parent_rank": ["genus"],
                          "parent_taxon": ["Megaselia"], "status": ["pending"], "version": [1], "size": [1],
                          "evidence": [{}]})
    members = pd.DataFrame({"proposal_id": [12], "processid": ["B"], "probability": [0.8]})
    run = {"id": 3, "kind": "triage", "model_fingerprint": None, "parameters": {"model": "bundles/small"}}
    occ, _, _ = occurrence_rows(RunExport(run, spec, assign, props, members))
    a, b, c = occ
    assert (a["scientificName"], a["taxonRank"], a["identificationQualifier"], a["verbatimIdentification"],
            a["taxonConceptID"]) == ("Zyeria", "genus", "sp.", "Zyeria sp. BIOUG63189-C12", "BOLD:AAA0001")
    assert (b["scientificName"], b["identificationQualifier"], b["verbatimIdentification"]) == \
        ("Megaselia", "sp.", "Megaselia sp. cand12")
    assert b["taxonConceptID"] == "biodiscover:run:3:candidate:12"
    assert (c["scientificName"], c["taxonRank"], c["identificationQualifier"]) == ("Apis mellifera", "species", None)
    assert "model=bundles/small" in c["identificationRemarks"] and "confidence=0.990 at species" in \
        c["identificationRemarks"]


def test_a_dwca_row_keeps_the_candidates_rank_the_reviewers_day_the_novelty_and_no_tab() -> None:
    """A candidate placed in a family whose member the machine named to genus is a family-level record;
    the reviewer's day, not the run's, dates the determination; the novelty score is in the remarks; a tab
    inside a value (no line break) becomes a space instead of shifting the archive's columns."""
    from biodiscover.workflows.export import RunExport, occurrence_rows
    from biodiscover.workflows.export.dwca import dwc_cell

    spec = pd.DataFrame({"processid": ["G"], "dna_barcode": ["ACGT" * 60]})
    assign = pd.DataFrame({"processid": ["G"], "deepest_rank": ["genus"], "deepest_taxon": ["Megaselia"],
                           "novelty": [0.875], "is_novel": [True], "label_order": ["Diptera"],
                           "label_family": ["Phoridae"], "label_genus": ["Megaselia"], "confidence_genus": [0.5]})
    props = pd.DataFrame({"proposal_id": [45], "provisional_name": [None], "parent_rank": ["family"],
                          "parent_taxon": ["Phoridae"], "status": ["accepted"], "version": [2], "size": [1],
                          "evidence": [{}]})
    members = pd.DataFrame({"proposal_id": [45], "processid": ["G"], "probability": [1.0]})
    reviews = pd.DataFrame([{"id": 1, "proposal_id": 45, "action": "accept", "reviewer": "ana",
                             "created_at": "2026-11-30T09:15:00+00:00", "note": None, "target_review_id": None}])
    run = {"id": 1, "kind": "triage", "started_at": "2026-11-23T06:00:00", "finished_at": "2026-11-23T06:05:00"}
    (g,), _, _ = occurrence_rows(RunExport(run, spec, assign, props, members, reviews))
    assert (g["scientificName"], g["taxonRank"], g["identificationQualifier"]) == ("Phoridae", "family", "gen. sp.")
    assert (g["identifiedBy"], g["dateIdentified"]) == ("ana", "2026-11-30")
    assert "novelty=0.875" in g["identificationRemarks"]
    assert dwc_cell("Guanacaste\tnorth") == "Guanacaste north"
    assert dwc_cell("a\t\tb\r\nc") == "a b c"
    assert [dwc_cell(f"two{c}lines") for c in "\t\n\r"] == ["two lines"] * 3  # each break alone too


def test_a_dwca_row_keeps_a_specimens_own_phylum_and_class_and_defaults_only_missing_ones() -> None:
    """Seed 5309's survivor dwca.py:144: with `and` for `or` a spider's class became Insecta, or a missing
    class or phylum stayed empty instead of the arthropod/insect default."""
    from biodiscover.workflows.export import RunExport, occurrence_rows

    spec = pd.DataFrame({"processid": ["SPIDER", "BARE"], "phylum": ["Arthropoda", None],
                         "class": ["Arachnida", None], "dna_barcode": ["ACGT" * 60] * 2})
    assign = pd.DataFrame({"processid": ["SPIDER", "BARE"], "deepest_rank": [None, None],
                           "deepest_taxon": [None, None], "novelty": [0.1, 0.1]})
    occ, _, _ = occurrence_rows(RunExport({"id": 1}, spec, assign, pd.DataFrame(), pd.DataFrame()))
    assert [(r["phylum"], r["class"]) for r in occ] == [("Arthropoda", "Arachnida"), ("Arthropoda", "Insecta")]


def test_the_identification_provided_with_a_collection_cites_its_source() -> None:
    """Seed 5309's survivor dwca.py:218: the history row of a provided identification lost its source."""
    from biodiscover.workflows.export import RunExport, occurrence_rows

    spec = pd.DataFrame({"processid": ["P1"], "genus": ["Megaselia"], "source": ["plate-1.csv"],
                         "dna_barcode": ["ACGT" * 60]})
    assign = pd.DataFrame({"processid": ["P1"], "deepest_rank": [None], "deepest_taxon": [None], "novelty": [0.1]})
    _, ident, _ = occurrence_rows(RunExport({"id": 1}, spec, assign, pd.DataFrame(), pd.DataFrame()))
    assert [(r["scientificName"], r.get("identificationReferences")) for r in ident] == [
        ("Megaselia", "plate-1.csv"), ("Insecta", "biodiscover model unknown")]  # the provided one, then the machine's


def test_an_empty_rank_cell_is_no_identification_provided_with_the_collection() -> None:
    """A RunExport built by a caller (not read from the database, where an empty name is NULL) may carry ``""``
    for a rank: the provided identification is the deepest rank that holds a name, never an empty one."""
    from biodiscover.workflows.export import RunExport, occurrence_rows

    spec = pd.DataFrame({"processid": ["P1", "P2"], "order": ["Diptera", ""], "genus": ["Megaselia", ""],
                         "species": ["", ""], "dna_barcode": ["ACGT" * 60] * 2})
    assign = pd.DataFrame({"processid": ["P1", "P2"], "deepest_rank": [None, None], "deepest_taxon": [None, None],
                           "novelty": [0.1, 0.1]})
    _, ident, _ = occurrence_rows(RunExport({"id": 1}, spec, assign, pd.DataFrame(), pd.DataFrame()))
    provided = [r for r in ident if r["identifiedBy"] != "biodiscover"]  # the current rows are the machine's
    assert [(r["id"], r["scientificName"], r["taxonRank"]) for r in provided] == [("P1", "Megaselia", "genus")]


def test_open_nomenclature_above_genus_is_gen_sp() -> None:
    """A candidate placed only in a family or subfamily has no genus: "Phoridae gen. sp.", not "Phoridae sp."."""
    from biodiscover.workflows.export import RunExport, candidate_label, occurrence_rows

    spec = pd.DataFrame({"processid": ["F", "S", "K"], "dna_barcode": ["ACGT" * 60] * 3})
    assign = pd.DataFrame({"processid": ["F", "S", "K"], "deepest_rank": ["family", "subfamily", "family"],
                           "deepest_taxon": ["Phoridae", "Metopininae", "Phoridae"], "novelty": [0.97, 0.9, 0.1],
                           "is_novel": [True, True, False], "label_order": ["Diptera"] * 3,
                           "label_family": ["Phoridae"] * 3,
                           "label_subfamily": [None, "Metopininae", None]})
    props = pd.DataFrame({"proposal_id": [45], "provisional_name": [None], "parent_rank": ["family"],
                          "parent_taxon": ["Phoridae"], "status": ["pending"], "version": [1], "size": [1],
                          "evidence": [{}]})
    members = pd.DataFrame({"proposal_id": [45], "processid": ["F"], "probability": [1.0]})
    occ, _, _ = occurrence_rows(RunExport({"id": 1}, spec, assign, props, members))
    f, s, k = occ
    assert (f["scientificName"], f["taxonRank"], f["identificationQualifier"], f["verbatimIdentification"]) == \
        ("Phoridae", "family", "gen. sp.", "Phoridae gen. sp. cand45")
    # Novel, in no candidate, placed in a subfamily: the same qualifier.
    assert (s["scientificName"], s["identificationQualifier"], s["verbatimIdentification"]) == \
        ("Metopininae", "gen. sp.", "Metopininae gen. sp.")
    # Known, just not named below family: no qualifier claims a new species.
    assert (k["scientificName"], k["identificationQualifier"], k["verbatimIdentification"]) == \
        ("Phoridae", None, "Phoridae")
    assert candidate_label({"proposal_id": 3, "parent_taxon": "Megaselia", "parent_rank": "genus"}) == \
        "Megaselia sp. cand3"


def test_a_settings_record_as_fingerprint_is_not_pasted_into_remarks(tmp_path: Path, data) -> None:
    """A JSON fingerprint becomes the bundle path + a short hash in remarks, DNA extension and abstract."""
    from dataclasses import replace

    from dwca.read import DwCAReader

    from biodiscover.workflows.export import model_description

    blob = '{"calibration": "val+val_unseen", "data": "/tmp/demo2/data", "seed": 0}'
    run = {**data.run, "model_fingerprint": blob, "parameters": {"model": "/tmp/demo2/model"}}
    desc = model_description(run)
    assert re.fullmatch(r"/tmp/demo2/model \(fingerprint sha256:[0-9a-f]{12}\)", desc)
    assert model_description({"model_fingerprint": blob}).startswith("fingerprint sha256:")
    assert model_description({"model_fingerprint": "sha256:abc123"}) == "sha256:abc123"
    out = tmp_path / "run.zip"
    write_export(replace(data, run=run), "dwca", out)
    with DwCAReader(str(out)) as dwca:
        abstract = dwca.metadata.find("dataset/abstract/para").text
        remarks = {r.data["http://rs.tdwg.org/dwc/terms/identificationRemarks"] for r in dwca}
    assert "{" not in abstract and desc in abstract
    assert all("{" not in r and f"model={desc}" in r for r in remarks)


def test_dwca_names_an_unplaced_candidate_by_its_deepest_higher_taxon(tmp_path: Path, data) -> None:
    """GBIF needs scientificName: members of a candidate placed nowhere, themselves not named below class,
    get Insecta at class ("gen. sp."), and keep the candidate's own name as verbatimIdentification."""
    from dataclasses import replace

    from biodiscover.workflows.export import candidate_label

    props = data.proposals.copy().astype({"parent_rank": object, "parent_taxon": object})
    props.loc[props["proposal_id"] == 1, ["parent_rank", "parent_taxon", "provisional_name"]] = [
        float("nan"), float("nan"), None]
    members = set(data.members.loc[data.members["proposal_id"] == 1, "processid"])
    assign = data.assignments.copy().astype({"deepest_rank": object, "deepest_taxon": object})
    assign.loc[assign["processid"].isin(members), ["deepest_rank", "deepest_taxon"]] = [None, None]
    d = replace(data, proposals=props, assignments=assign)
    out = tmp_path / "u.zip"
    write_export(d, "dwca", out)
    with zipfile.ZipFile(out) as zf:
        rows = list(csv.DictReader(io.StringIO(zf.read("occurrence.txt").decode("utf-8")), delimiter="\t"))
    mine = [r for r in rows if r["occurrenceID"] in members]
    assert mine and all(r["scientificName"] for r in rows)
    label = candidate_label(props[props["proposal_id"] == 1].iloc[0].to_dict())
    assert label == "Unplaced sp. cand1"
    assert {(r["scientificName"], r["taxonRank"], r["identificationQualifier"], r["verbatimIdentification"])
            for r in mine} == {("Insecta", "class", "gen. sp.", label)}


def test_rejected_proposals_are_not_counted_as_candidate_species(tmp_path: Path, data) -> None:
    from dwca.read import DwCAReader

    rejected = int((data.proposals["status"] == "rejected").sum())
    assert rejected == 1
    res = write_export(data, "dwca", tmp_path / "x.zip")
    assert (res.proposals, res.rejected) == (len(data.proposals) - 1, 1)
    summary = res.to_json()
    assert (summary["proposals"], summary["candidates"]) == (len(data.proposals), len(data.proposals) - 1)
    with DwCAReader(str(tmp_path / "x.zip")) as dwca:
        abstract = dwca.metadata.find("dataset/abstract/para").text
    # every proposal counted, each figure labelled: the command line's and the report's count (season review F11)
    assert f"; {len(data.proposals)} candidate species proposed (1 accepted by a reviewer" in abstract
    assert "1 rejected by a reviewer)" in abstract


def test_proposals_csv_flattens_nested_evidence(tmp_path: Path, data) -> None:
    from dataclasses import replace

    evidence = {"within_distance": {"mean": 0.004, "max": 0.011}, "between_distance": {"nearest_candidate": 2,
                "distance": 0.052}, "geography": {"countries": {"Canada": 4, "Peru": 2}, "bbox": [1, 2, 3, 4]},
                "within_distances": [0.0, 0.01], "threshold": 0.03, "alignment": {"NV0001": "ACGT", "NV0002": "ACGA"},
                "size_summary": {"image_measurement_value": {"n": 3, "median": 2100.0}},
                # four numbers that are not a bounding box: a plain list, never lat/lon words
                "nearest_known": {"species": "Aus bus", "top_distances": [0.05, 0.06, 0.07, 0.08]},
                "bin": {"shared_with": [2, 9]}}  # two numbers that are not a named pair
    props = data.proposals.copy()
    props["evidence"] = [evidence] + [{**evidence, "between_distance": None}] * (len(props) - 1)
    write_export(replace(data, proposals=props), "csv", tmp_path / "csv")
    row = next(csv.DictReader(open(tmp_path / "csv" / "proposals.csv", newline="", encoding="utf-8-sig")))
    assert (row["evidence_within_distance_max"], row["evidence_between_distance_distance"]) == ("0.011", "0.052")
    assert row["evidence_geography_countries"] == "Canada: 4; Peru: 2" and row["evidence_threshold"] == "0.03"
    assert not any(k.startswith(("evidence_within_distances", "evidence_alignment")) for k in row)
    assert row["evidence_geography_bbox"] == "lat 1 to 2; lon 3 to 4"
    assert row["evidence_nearest_known_top_distances"] == "0.05; 0.06; 0.07; 0.08"
    assert row["evidence_bin_shared_with"] == "2; 9" and "evidence_bin_lat_min" not in row
    assert row["evidence_size_summary_image_measurement_value"] == "n: 3; median: 2100"
    assert row["evidence_between_distance_nearest_candidate"] == "2"  # an id, not "2.0"


def test_report_reads_like_a_report(tmp_path: Path, data) -> None:
    """Human headers and names, rejected proposals last and out of the plots, no settings blob in the header."""
    from dataclasses import replace

    from biodiscover.workflows.report import candidate_table, nearest_known_gaps, plot_barcode_gap, render_plots

    props = data.proposals.copy()
    props["nearest_identity"] = [0.91, 1.0, 0.95, None, 0.9, 0.93, 0.97, 0.92][: len(props)]
    props["nearest_species"] = "Megaselia k1"
    props["novelty"] = 0.9
    props["evidence"] = [{"within_distance": {"max": 0.02}}] * len(props)
    run = {**data.run, "model_fingerprint": '{"seed": 0, "data": "/x"}', "started_at": "2026-11-23T06:00:00.5Z"}
    d = replace(data, proposals=props, run=run)
    table = candidate_table(d.proposals)
    assert list(table.columns) == ["#", "name", "placed in", "specimens", "nearest known species (or the one "
                                   "assigned)", "identity", "novelty", "status"]
    assert table["status"].iloc[-1] == "rejected" and (table["status"].iloc[:-1] != "rejected").all()
    first = table.set_index("#").loc[1]
    assert (first["identity"], first["placed in"], first["novelty"]) == ("91.0%", "genus Megaselia", "0.90")
    assert table.set_index("#").loc[4, "identity"] == ""  # no nearest known species recorded: blank, not "nan"
    assert list(table["specimens"].iloc[:-1]) == sorted(table["specimens"].iloc[:-1], reverse=True)
    within, nearest = nearest_known_gaps(d.proposals)
    assert len(nearest) == len(props) - 1 and nearest.max() == pytest.approx(0.10)
    plot = plot_barcode_gap([0.02], [0.05], per_candidate=True, nearest_known=(within, nearest))
    # Members up to 2% apart: only the candidate identical to a known species (0%) has no gap; 3% has one.
    assert "No barcode gap in 1 of 7 candidates: the nearest known species no farther away" in plot.caption
    sizes = next(p for p in render_plots(d) if p.key == "proposal_sizes")
    assert sizes.caption.startswith(f"{len(props) - 1} candidates")
    write_export(d, "html", tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "{&quot;seed" not in page and "fingerprint sha256:" in page and "started 2026-11-23 06:00 UTC" in page
    assert "<th>nearest known species (or the one assigned)</th>" in page and "<th>proposal_id</th>" not in page
    assert "Listed last: 1 proposal rejected by a reviewer." in page


def test_report_says_unplaced_and_names_the_assigned_species(tmp_path: Path, data) -> None:
    """A candidate with no parent reads "unplaced" (never "nan nan"); one a reviewer assigned to a known
    species names that species and is counted and listed last as assigned, not as rejected."""
    from dataclasses import replace

    from biodiscover.workflows.report import candidate_table

    props = data.proposals.copy()
    props["parent_rank"] = props["parent_rank"].astype(object)
    props["parent_taxon"] = props["parent_taxon"].astype(object)
    props.loc[props["proposal_id"] == 1, ["parent_rank", "parent_taxon"]] = [float("nan"), float("nan")]
    props.loc[props["proposal_id"] == 4, ["status", "provisional_name", "parent_rank", "parent_taxon"]] = [
        "assigned", "Megaselia scalaris", "genus", "Megaselia"]
    d = replace(data, proposals=props)
    table = candidate_table(d.proposals).set_index("#")
    assert table.loc[1, "placed in"] == "unplaced"
    assert table.loc[4, "placed in"] == "species Megaselia scalaris (assigned by a reviewer)"
    assert set(table.index[-2:]) == {3, 4}
    assert set(table["status"].iloc[-2:]) == {"assigned", "rejected"}
    write_export(d, "html", tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "nan nan" not in page and "<td>unplaced</td>" in page
    assert "<th>placed in</th><td>unplaced</td>" in page
    # its section, short: the species it was identified as (never its old placement as a candidate)
    assert "<th>identified as</th><td>Megaselia scalaris (a known species)</td>" in page
    assert "placed in</th><td>genus Megaselia</td></tr><tr><th>status</th><td>assigned" not in page
    assert "<td>nan</td>" not in page  # a member with no BIN
    assert "Listed last: 1 proposal rejected by a reviewer and 1 proposal assigned to a known species by a " \
        "reviewer." in page


def test_counts_of_one_are_singular() -> None:
    """One candidate / singleton / order taxon reads as one (the tester saw "1 candidates", "1 order taxa")."""
    from biodiscover.storage.records import plural
    from biodiscover.workflows.report import plot_proposal_sizes

    assert (plural(1, "specimen"), plural(0, "specimen"), plural(2, "member")) == \
        ("1 specimen", "0 specimens", "2 members")
    assert (plural(1, "order taxon", "order taxa"), plural(3, "order taxon", "order taxa")) == \
        ("1 order taxon", "3 order taxa")
    caption = plot_proposal_sizes(pd.DataFrame({"size": [1]})).caption
    assert caption == "1 candidate, 1 singleton (kept: a single specimen can be a new species)."
    assert plot_proposal_sizes(pd.DataFrame({"size": [1, 4]})).caption.startswith("2 candidates, 1 singleton ")
    from biodiscover.workflows.report import plot_barcode_gap, plot_naming_depth, plot_novelty, plot_sites

    one = pd.DataFrame({"processid": ["A1"], "novelty": [0.9], "is_novel": [True], "deepest_rank": ["genus"]})
    assert plot_naming_depth(one).caption.startswith("1 specimen by ")
    assert plot_novelty(one).caption == "1 of 1 specimen flagged novel."
    assert "No barcode gap in 1 of 1 candidate:" in plot_barcode_gap([0.02], [], nearest_known=([0.02], [0.01])).caption
    assert plot_sites(pd.DataFrame({"processid": ["A1"], "coord-lat": [9.9], "coord-lon": [-84.1]})).caption.startswith(
        "1 specimen with coordinates")


def test_the_novelty_caption_counts_every_specimen_the_report_counts() -> None:
    """e36 season review F10: the report said "1169 specimens" and under the novelty plot "349 of 1168 specimens
    flagged novel": the barcode unrelated to every reference key has no novelty score and was left out without a
    word. The caption says how many more have none, and why, so its total is the report's."""
    from biodiscover.workflows.report import plot_naming_depth, plot_novelty

    unrelated = ("barcode unrelated to every reference key: 54.5 % identity at best (either strand), no closer than "
                 "shuffled reference barcodes come (56.8 %): …; not named from DNA and not a candidate species")
    three = pd.DataFrame({"processid": ["A1", "A2", "X1"], "novelty": [0.9, 0.1, None],
                          "is_novel": [True, False, None], "deepest_rank": ["genus", "species", None],
                          "reason": ["", "", unrelated]})
    assert plot_naming_depth(three).caption.startswith("3 specimens by ")
    assert plot_novelty(three).caption == ("1 of 2 specimens flagged novel; 1 specimen more has no novelty score (its "
                                           "reason says why), 3 in all.")
    assert plot_novelty(pd.concat([three, three.tail(1)])).caption == (
        "1 of 2 specimens flagged novel; 2 specimens more have no novelty score (each one's reason says why), 4 in "
        "all.")
    assert plot_novelty(three.head(2)).caption == "1 of 2 specimens flagged novel."


def test_csv_export_headers_are_exactly_the_documented_columns_in_order(tmp_path: Path) -> None:
    """A spreadsheet or script reading the CSV export finds its columns by header: no stray index column,
    the candidate's one name second, the review trail after the stored fields, then one column per evidence
    value in the order the records first hold them — a scalar that is null still gets its column, a nested
    record that is null (no nearest candidate) none of its own, only its fields from the candidates that
    have it, a number pair its two named columns (empty when the pair is null), a list of one to four
    numbers one cell, and a longer list or one holding a null (a NaN stored) none: it stays in the JSON."""
    from dataclasses import replace

    data = make_run_export(n_known=3, n_candidates=2, seed=0)
    props = data.proposals.copy()
    props["evidence"] = [
        {"threshold": 0.03, "linkage": None, "between_distance": None,
         "bin": {"dominant": "BOLD:AAA1", "n_with_bin": 3}, "geography": {"lat_range": None, "centroid": [-12.5, 7]},
         "nearest_known": {"top_distances": [0.1]}},
        {"threshold": 0.02, "linkage": "average", "between_distance": {"nearest_candidate": 1, "distance": 0.05},
         "bin": {"dominant": None, "n_with_bin": 0}, "geography": {"lat_range": [-12, -11.5], "centroid": None,
                                                                   "bbox": [-12, None, 7, 7.5]},  # NaN stored
         "nearest_known": {"top_distances": [0.1, 0.2, 0.3, 0.4, 0.5]}}]  # five: left to the JSON export
    write_export(replace(data, proposals=props), "csv", tmp_path / "csv")

    def read(name: str) -> list[list[str]]:
        with open(tmp_path / "csv" / name, newline="", encoding="utf-8-sig") as fh:
            return list(csv.reader(fh))

    ranks = [f"{kind}_{rank}" for rank in ("order", "family", "subfamily", "genus", "species")
             for kind in ("label", "confidence")]
    assignments = read("assignments.csv")
    assert assignments[0] == ["processid", "deepest_rank", "deepest_taxon", "novelty", "is_novel", *ranks,
                              "proposal_id", "provisional_name", "proposed_in", "candidate_status", "scientificName",
                              "taxonRank", "identificationQualifier", "verbatimIdentification", "identifiedBy",
                              "dateIdentified", "identificationVerificationStatus"]
    proposals = read("proposals.csv")
    assert proposals[0] == ["proposal_id", "name", "taxonConceptID", "provisional_name", "parent_rank",
                            "parent_taxon", "status", "version", "size", "identity_to_assigned", "near_species",
                            "review_flags", "twins", "merged_in", "decision", "decided_by", "decided_at", "reviewers",
                            "review_notes", "previous_names", "evidence_threshold", "evidence_linkage",
                            "evidence_bin_dominant", "evidence_bin_n_with_bin", "evidence_geography_lat_min",
                            "evidence_geography_lat_max",
                            "evidence_geography_centroid_lat", "evidence_geography_centroid_lon",
                            "evidence_nearest_known_top_distances", "evidence_between_distance_nearest_candidate",
                            "evidence_between_distance_distance"]
    assert [row[20:] for row in proposals[1:]] == [
        ["0.03", "", "BOLD:AAA1", "3", "", "", "-12.5", "7.0", "0.1", "", ""],
        ["0.02", "average", "", "0", "-12.0", "-11.5", "", "", "", "1", "0.05"]]
    assert read("members.csv")[0] == ["proposal_id", "processid", "probability"]
    assert len(assignments) == 1 + len(data.assignments) and len(proposals) == 3


def test_a_specimen_in_two_candidates_counts_for_the_one_it_belongs_to_most_and_never_for_a_rejected_one() -> None:
    """``candidate_of`` (the CSV's ``proposal_id`` column): highest membership wins; a candidate a reviewer
    rejected or assigned to a known species holds nobody; a run whose status says nothing is complete."""
    from biodiscover.workflows.export.tables import RunExport

    members = pd.DataFrame({"proposal_id": [1, 2, 2, 3, 3, 4], "processid": ["A", "A", "B", "B", "C", "D"],
                            "probability": [0.4, 0.9, 0.3, 0.8, 1.0, 1.0]})
    proposals = pd.DataFrame({"proposal_id": [1, 2, 3, 4], "status": ["pending", "pending", "rejected", "assigned"]})
    data = RunExport(run={"id": 1}, specimens=pd.DataFrame(), assignments=pd.DataFrame(), proposals=proposals,
                     members=members)
    assert data.candidate_of() == {"A": 2, "B": 2}
    unreviewed = RunExport(**{**data.__dict__, "proposals": proposals[["proposal_id"]]})  # no status column
    assert unreviewed.candidate_of() == {"A": 2, "B": 3, "C": 3, "D": 4}
    assert RunExport(**{**data.__dict__, "members": members.iloc[:0]}).candidate_of() == {}
    assert not data.partial and RunExport(**{**data.__dict__, "run": {"id": 1, "status": "failed"}}).partial


def test_the_note_about_re_clustered_candidates_names_one_run_or_several() -> None:
    from biodiscover.workflows.export.tables import ExportResult

    def result(n: int, runs: tuple[int, ...]) -> ExportResult:
        return ExportResult("csv", Path("out"), (), 10, 3, partial=False, superseded=n, superseded_by=runs)

    assert result(0, ()).superseded_note(1) is None
    assert result(0, ()).to_json() == {"format": "csv", "out": "out", "files": [], "specimens": 10, "proposals": 3,
                                       "candidates": 3, "accepted": 0, "pending": 3, "not_coi": 0, "rejected": 0,
                                       "assigned": 0, "partial": False, "superseded": 0, "superseded_by": []}
    assert result(2, (4,)).superseded_note(1) == (
        "note: 2 candidate species of run 1 were re-clustered by later run 4 and are not in this export; "
        "export run 4 for the current grouping")
    assert result(5, (4, 6)).superseded_note(1) == (
        "note: 5 candidate species of run 1 were re-clustered by later runs 4, 6 and are not in this export; "
        "export runs 4, 6 for the current grouping")


def test_the_barcode_gap_plot_leaves_out_candidates_with_no_usable_coi_and_says_so(data) -> None:
    """A candidate none of whose members' reads is usable COI (every best hit nearer the identity unrelated sequence
    reaches than identity: ``storage.evidence.unusable_reads``) has no barcode gap to read: the report's candidate
    section says "data quality", and the plot must not draw it either — on the real US plate two such candidates,
    39.5 % from anything known, stretched the axis and were counted among the candidates with a gap. The caption
    says how many were left out and why; a candidate with only some unusable members stays."""
    from dataclasses import replace

    from biodiscover.workflows.export.tables import live_candidates
    from biodiscover.workflows.report import render_plots

    props = data.proposals.copy()
    live = [props.index.get_loc(i) for i in live_candidates(props).index]
    junk = {"within_distance": {"max": 0.30}, "between_distance": {"nearest_candidate": 2, "distance": 0.41},
            "nearest_known": {"species": "Simulium sp.", "identity": 0.605},
            "member_hits": {"J1": {"identity": 0.605, "overlap": 618, "chance": 0.567}}}
    some = {"within_distance": {"max": 0.01}, "between_distance": {"nearest_candidate": 1, "distance": 0.06},
            "member_hits": {"S1": {"identity": 0.60, "overlap": 600, "chance": 0.567},
                            "S2": {"identity": 0.93, "overlap": 600, "chance": 0.567}}}
    good = {"within_distance": {"max": 0.01}, "between_distance": {"nearest_candidate": 1, "distance": 0.06}}
    evidence = [good] * len(props)
    evidence[live[0]], evidence[live[1]] = junk, some
    props["evidence"] = evidence
    props["nearest_identity"] = [0.605 if i == live[0] else 0.93 for i in range(len(props))]
    gap = next(p for p in render_plots(replace(data, proposals=props)) if p.key == "barcode_gap")
    n_live = len(live)
    assert "Max within 1.0%, min between 6.0%." in gap.caption  # 30 % / 41 % are not drawn
    assert f"of {n_live - 1} candidates:" in gap.caption  # the nearest-known count leaves it out too
    assert ("1 candidate left out: none of its members' reads is usable COI (nearer chance than identity to every "
            "key; see its section)") in gap.caption
    clean = next(p for p in render_plots(replace(data, proposals=props.assign(evidence=[good] * len(props))))
                 if p.key == "barcode_gap")
    assert "left out" not in clean.caption


def test_a_candidate_whose_members_cannot_be_compared_is_flagged_and_counted_not_skipped(data) -> None:
    """The export review's F7: the reviewer merged two Norwegian beetles (NOCLP1451-19, 518 nt, and NOCLP1491-19,
    652 nt, ≈33 % apart by k-mers, sharing too little of the barcode region to align), and the merged candidate's
    evidence holds no within distance: proposals.csv's within columns were empty, its flags "none", and the
    report's plot counted "2 candidates" of 5 without a word — the one candidate to check first. It is flagged,
    and the barcode-gap caption says how many candidates it could not draw."""
    from dataclasses import replace

    from biodiscover.workflows.export.flags import candidate_flags
    from biodiscover.workflows.export.tables import live_candidates
    from biodiscover.workflows.report import render_plots

    hits = {"NOCLP1451-19": {"species": "Cryptocephalus fulvus", "identity": 0.99},
            "NOCLP1491-19": {"species": "Phyllotreta atra", "identity": 0.99}}
    apart = {"member_hits": hits, "consensus_barcode": "ACGT" * 150}
    want = ("members' barcodes share too little sequence to be compared with each other (no within-candidate "
            "distance): check that they are one species")
    assert want in candidate_flags({"evidence": apart, "size": 2})
    assert want not in candidate_flags({"evidence": {**apart, "within_distance": {"mean": 0.01, "max": 0.01}},
                                        "size": 2})
    from biodiscover.discovery.barcode_gap import gap_of

    # the review header's and the report's gap line: not "single specimen", and no gap read from nothing; the
    # nearest known distance is the members' best identity to a key (gap_of since e32 R19), not the argument
    def at(identity: float) -> dict[str, Any]:
        return {**apart, "threshold": 0.028, "member_hits": {k: {**h, "identity": identity} for k, h in hits.items()}}

    read = gap_of(at(0.95), 0.95)
    assert read.verdict == "unknown"
    assert read.sentence() == "no gap to read: members share too little sequence; nearest known 5.0% away"
    assert gap_of(at(0.98), 0.98).sentence() == \
        "no gap: nearest known 2.0% away ≤ threshold 2.8%; members not comparable"
    lone = {"member_hits": {"NOCLP1451-19": hits["NOCLP1451-19"]}}
    assert want not in candidate_flags({"evidence": lone, "size": 1})  # one barcode: nothing to compare
    props = data.proposals.copy()
    live = [props.index.get_loc(i) for i in live_candidates(props).index]
    good = {"within_distance": {"max": 0.01}, "between_distance": {"nearest_candidate": 1, "distance": 0.06}}
    evidence = [good] * len(props)
    evidence[live[0]] = apart
    gap = next(p for p in render_plots(replace(data, proposals=props.assign(evidence=evidence)))
               if p.key == "barcode_gap")
    assert ("1 candidate of several barcoded members has no within distance: its members' barcodes share too "
            "little sequence to be compared (see its flags).") in gap.caption, gap.caption


def test_dwca_members_are_readable_by_all_and_two_exports_of_the_same_data_are_the_same_zip(tmp_path: Path,
                                                                                           data) -> None:
    """The export review (e27, F11): the archive's members were stored mode 0600 (``zipinfo``: ``?rw-------``), so
    unzipped on a shared IPT or web host they were the owner's alone; and each carried the export's clock time, so
    two exports of unchanged data differed as zips. Now every member is a regular file, 0644, dated by the run."""
    import stat
    import subprocess

    first = write_export(data, "dwca", tmp_path / "a.zip").files[0]
    second = write_export(data, "dwca", tmp_path / "b.zip").files[0]
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as zf:
        infos = zf.infolist()
    assert infos and {oct(i.external_attr >> 16) for i in infos} == {oct(stat.S_IFREG | 0o644)}
    assert {i.date_time for i in infos} == {(2026, 11, 23, 6, 5, 0)}  # when the run finished
    out = tmp_path / "unzipped"
    subprocess.run(["unzip", "-q", str(first), "-d", str(out)], check=True, timeout=60)  # as a host unzips it
    assert {oct(p.stat().st_mode & 0o777) for p in out.iterdir()} == {oct(0o644)}


def test_report_counts_no_barcode_gap_as_the_flag_does_and_lists_those_whatever_their_size(tmp_path: Path, data,
                                                                                          monkeypatch) -> None:
    """e32 review R5: the caption said "No barcode gap in 0 of 146 candidates" while 4 singletons carried the flag
    "no barcode gap" (nearest known 1.4–2.4 % away, within the 2.8 % species threshold): the caption compared the
    nearest with the members' spread only (a singleton's taken as 0), the flag with the threshold. And the report
    listed the largest candidates only, so those 4 (one a real Erebia manto) appeared nowhere in it. One
    definition now (``BarcodeGap.no_gap``), and a candidate flagged to check first is listed in the table and in
    detail whatever its size."""
    from dataclasses import replace

    from biodiscover.workflows import report
    from biodiscover.workflows.export.flags import candidate_flags

    props = data.proposals.copy()
    props["nearest_identity"] = 0.91
    props["evidence"] = [{"within_distance": {"max": 0.01}, "threshold": 0.028}] * len(props)
    single = int(props.loc[(props["size"] == 1) & (props["status"] == "pending"), "proposal_id"].iloc[-1])
    at = props.index[props["proposal_id"] == single][0]
    props.at[at, "nearest_identity"] = 0.982  # 1.8 % from a known species: within the threshold
    props.at[at, "evidence"] = {"within_distance": None, "threshold": 0.028}
    d = replace(data, proposals=props)
    flagged = [p["proposal_id"] for p in props.to_dict("records") if "no barcode gap (nearest known within the "
               "species threshold)" in candidate_flags(p)]
    assert flagged == [single]
    gap = next(p for p in report.render_plots(d) if p.key == "barcode_gap")
    assert "No barcode gap in 1 of 7 candidates: the nearest known species no farther away than the species " \
        "threshold or than the members are from each other" in gap.caption, gap.caption  # 8, 1 rejected
    # the report lists 1 pending candidate in its table and in detail; the flagged singleton is listed as well
    monkeypatch.setattr(report, "TABLE_LIMIT", 1)
    monkeypatch.setattr(report, "DETAIL_LIMIT", 1)
    write_export(d, "html", tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert f"<tr><td>{single}</td>" in page and f"id='cand-{single}'" in page
    pending = int((props["status"] == "pending").sum())
    assert f"The other {pending - 2} pending candidates (the smallest, none flagged to check first)" in page


@pytest.fixture(scope="module")
def absent_order(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """``fixtures.review_db.absent_order_db`` (beetles nearest a moth at 82.8 % and 90.1 %, order cut-off 87.4 %)
    once for the module's tests that only read it: its path and the two candidates' ids."""
    from fixtures.review_db import absent_order_db

    path = tmp_path_factory.mktemp("f4") / "f4.sqlite"
    return path, absent_order_db(path)


def test_report_table_says_a_nearest_species_below_the_order_cut_off_is_of_no_order_the_reference_holds(
        tmp_path: Path, absent_order: tuple[Path, list[int]]) -> None:
    """e33 review F4: the report's candidate table listed a moth at 82.8 % as the nearest known species of beetles
    with no word that it lies below the run's order cut-off (87.4 %), so perhaps of an order the reference lacks."""
    from biodiscover.workflows.export.pipeline import load_run_export

    data = load_run_export(absent_order[0], 1)
    write_export(data, "html", tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert ("<td>82.8% (far from every key, under the order cut-off 87.4%: an order the reference lacks, or a "
            "distant family or genus of its own orders)</td>") in page
    assert "<td>90.1%</td>" in page


def test_report_says_no_order_may_be_lacking_of_a_candidate_the_machine_placed(tmp_path: Path) -> None:
    """e36 season review F4: the report printed "perhaps an order the reference lacks" beside a weevil candidate the
    machine had placed in genus Sitona (nearest key at 84.0 %, under the order cut-off 88.8 %). A placed candidate's
    table cell and section say how far its nearest key is and nothing of a lacking order."""
    from biodiscover.workflows.export.pipeline import load_run_export
    from biodiscover.workflows.report import candidate_sections
    from fixtures.review_db import absent_order_db

    path = tmp_path / "placed.sqlite"
    below, _ = absent_order_db(path, placed={"order": "Coleoptera", "family": "Curculionidae", "genus": "Sitona"})
    data = load_run_export(path, 1)
    write_export(data, "html", tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<td>82.8% (far from every key, under the order cut-off 87.4%)</td>" in page
    section = candidate_sections(data).split(f"id='cand-{below}'")[1].split("</section>")[0]
    assert ("<td>Cecrita daona at 82.8% identity, far from every key, under the order cut-off 87.4%</td>"
            in section), section
    assert "lacks" not in page and "lacks" not in section



def test_the_exports_say_whether_the_nearest_species_lies_below_the_runs_order_cut_off(
        tmp_path: Path, absent_order: tuple[Path, list[int]]) -> None:
    """e33 review F4: proposals.csv and the JSON gave beetles' nearest known species, a moth, at 0.828 and nothing to
    tell it from one at 0.95 by without reading the run's parameters. Both give the run's order cut-off beside the
    identity and whether the nearest species lies below it (empty / null where the reference learned its orders);
    columns.txt says what they mean; the JSON stays format version 6 (fields added, none changed)."""
    import dataclasses

    from biodiscover.workflows.export.pipeline import load_run_export

    data = load_run_export(absent_order[0], 1)
    write_export(data, "csv", tmp_path / "csv")
    rows = list(csv.DictReader(open(tmp_path / "csv" / "proposals.csv", newline="", encoding="utf-8-sig")))
    assert [(r["nearest_identity"], r["order_cutoff"], r["nearest_below_order_cutoff"]) for r in rows] == [
        ("0.828", "0.874", "True"), ("0.901", "0.874", "False")]
    header = list(rows[0])
    assert header.index("order_cutoff") == header.index("nearest_identity") + 1
    described = (tmp_path / "csv" / "columns.txt").read_text(encoding="utf-8")
    assert "nearest_below_order_cutoff — True where nearest_identity lies below order_cutoff" in described
    write_export(data, "json", tmp_path / "r.json")
    doc = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert doc["version"] == 6
    assert [(p["order_cutoff"], p["nearest_below_order_cutoff"]) for p in doc["proposals"]] == [
        (0.874, True), (0.874, False)]
    learned = dataclasses.replace(data, run={**data.run, "parameters": {}})  # no cut-off recorded
    write_export(learned, "json", tmp_path / "learned.json")
    doc = json.loads((tmp_path / "learned.json").read_text(encoding="utf-8"))
    assert {(p["order_cutoff"], p["nearest_below_order_cutoff"]) for p in doc["proposals"]} == {(None, None)}
    # an export over several runs: each candidate's own run's cut-off (the runs' parameters differ, so the
    # combined ``run`` holds none)
    limits = [{"naming_limits": {"fallback": {"order": cut}}} for cut in (0.874, 0.95)]
    batch = dataclasses.replace(learned, runs=({"id": 1, "parameters": limits[0]}, {"id": 2, "parameters": limits[1]}),
                                proposals=data.proposals.assign(run_id=[1, 2]))
    write_export(batch, "json", tmp_path / "batch.json")
    doc = json.loads((tmp_path / "batch.json").read_text(encoding="utf-8"))
    assert [(p["order_cutoff"], p["nearest_below_order_cutoff"]) for p in doc["proposals"]] == [
        (0.874, True), (0.95, True)]


def test_the_reports_candidate_section_says_a_nearest_species_below_the_order_cut_off(
        absent_order: tuple[Path, list[int]]) -> None:
    """e33 review F4: the report's table said it of a moth at 82.8 % for beetles, the candidate's own section (what
    a reader of one candidate reads) did not."""
    from biodiscover.workflows.export.pipeline import load_run_export
    from biodiscover.workflows.report import candidate_sections

    path, (below, above) = absent_order
    page = candidate_sections(load_run_export(path, 1))  # the HTML report's (no plots drawn)
    sections = {pid: page.split(f"id='cand-{pid}'")[1].split("</section>")[0] for pid in (below, above)}
    assert ("<th>nearest known species</th><td>Cecrita daona at 82.8% identity, far from every key, under the order "
            "cut-off 87.4%: an order the reference lacks, or a distant family or genus of its own orders</td>"
            ) in sections[below], sections[below]
    assert "<td>Cecrita daona at 90.1% identity</td>" in sections[above], sections[above]
