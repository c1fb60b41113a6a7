"""The documented limits and thresholds of the data layer, pinned at their edges through the public API.

Mutation samples (RESULTS-safety.md, seeds 2612, 4817, 5309) kept finding survivors of one kind: a limit
or threshold moved by one (``MAX_JSON_DEPTH = 65``, ``n_total >= 21``, a header field read one byte off)
while every test passed, because the tests compared with the constant itself or stayed far from the edge.
Each test here states the documented number, and checks the last value accepted and the first refused,
for every such limit in ``storage/`` and ``workflows/export/`` (found by grepping for them, not from a
sample), plus the immutability the value objects promise. No monkeypatching of the limits: the real
ones are exercised (large files are sparse, so they cost no disk).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from biodiscover.storage.bundle import Bundle, parse_json
from biodiscover.storage.collections import read_collection
from biodiscover.storage.db.core import chunked
from biodiscover.storage.db.integrity import page_problems
from biodiscover.storage.errors import InputError, ModelBundleError
from biodiscover.storage.evidence import Evidence
from biodiscover.storage.splits import barcode_cap, species_test_quota, species_test_upper_bound
from biodiscover.storage.textlines import open_text_lines
from biodiscover.storage.validation import barcode_problems, shorten_raw
from biodiscover.workflows.export.safety import safe_member_name
from biodiscover.workflows.export.tables import model_description
from fixtures.db_views import plain_sqlite_file

MiB = 1 << 20


# -- IN lists ---------------------------------------------------------------------------------------------------

def test_in_lists_cover_every_id_once_in_order_and_stay_under_sqlites_parameter_limit() -> None:
    """Lookups by many ids (specimens by processid, a run's members and reviews) go in slices: together they
    are the ids, once each and in order, and no slice passes the 999 bound parameters old SQLite allows."""
    ids = [f"P{i:05d}" for i in range(2_501)]
    parts = [list(p) for p in chunked(ids)]
    assert [pid for part in parts for pid in part] == ids
    assert all(0 < len(part) <= 999 for part in parts) and len(parts) >= 3
    assert [list(p) for p in chunked(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunked([], 3)) == []


# -- value objects ----------------------------------------------------------------------------------------------

def _frozen_classes() -> list[type]:
    from biodiscover.storage import evidence, fasta, settings, splits, validation
    from biodiscover.storage.db import check, engine, ingest, proposals, reviews, runs, schema, taxonomy
    from biodiscover.workflows.export import metadata, registry, tables

    return [evidence.Spread, evidence.NearestKnown, evidence.MemberHit, evidence.NearestCandidate,
            evidence.BinEvidence, evidence.Geography, evidence.SizeStats, evidence.SizeSummary,
            evidence.RepresentativeImage, evidence.Evidence, evidence.Member, evidence.CandidateProposal,
            fasta.FastaRecord, settings.Reviewer, splits.SplitSummary, validation.QuarantinedRecord,
            check.CheckReport, engine.EngineConfig, ingest.IngestReport, proposals.ProposalSummary,
            proposals.MemberInfo, proposals.ProposalDetail, reviews.ReviewResult, runs.RunProgress,
            schema.RevisionState, taxonomy.TaxonNode, metadata.Person, metadata.DatasetMetadata,
            metadata.ExportOptions, registry.ExportFormat, tables.RunExport, tables.ExportResult,
            tables.ReviewTrail]


@pytest.mark.parametrize("cls", _frozen_classes(), ids=lambda c: f"{c.__module__.rsplit('.', 1)[-1]}.{c.__name__}")
def test_reports_configs_and_evidence_cannot_be_changed_once_built(cls: type) -> None:
    """What one layer hands another (an ingest report, a run's progress, a candidate's evidence, the engine
    settings used as a shared default argument) is immutable: no holder can change what another holds. The
    instance is made without ``__init__``: immutability is the class's, whatever the field values."""
    obj = object.__new__(cls)
    name = dataclasses.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, name, None)


def test_the_records_read_by_the_million_carry_no_per_instance_dict() -> None:
    """FASTA records, quarantined rows and specimens are made once per input line: slotted, no ``__dict__``."""
    from biodiscover.storage.fasta import FastaRecord
    from biodiscover.storage.records import Specimen
    from biodiscover.storage.validation import QuarantinedRecord

    for cls in (FastaRecord, QuarantinedRecord, Specimen):
        assert not hasattr(object.__new__(cls), "__dict__"), cls


# -- bundles ----------------------------------------------------------------------------------------------------

def _bundle(tmp_path: Path) -> Bundle:
    b = Bundle.create(tmp_path / "b", config={"name": "t"})
    b.save_table("small", {"a": 1})
    b.save_array("arr", np.arange(3, dtype=np.float32))
    return b


def _relist(bundle_dir: Path, kind: str, name: str, path: Path) -> None:
    """List ``path`` in the manifest with its true size and checksum (a bundle someone built that way)."""
    manifest = json.loads((bundle_dir / "bundle.json").read_text())
    with path.open("rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    manifest["files"][kind][name] = {"sha256": digest, "bytes": path.stat().st_size}
    (bundle_dir / "bundle.json").write_text(json.dumps(manifest))


def test_bundle_json_may_nest_64_levels_and_not_65() -> None:
    assert parse_json(b"[" * 64 + b"]" * 64, "t.json") is not None
    assert parse_json(b'{"a":' * 64 + b"1" + b"}" * 64, "t.json") is not None
    with pytest.raises(ModelBundleError, match=r"t\.json: JSON nested deeper than 64 levels"):
        parse_json(b"[" * 65 + b"]" * 65, "t.json")
    with pytest.raises(ModelBundleError, match="JSON nested deeper than 64 levels"):
        parse_json(b'{"a":' * 65 + b"1" + b"}" * 65, "t.json")


def test_a_manifest_past_16_mib_is_refused_unread(tmp_path: Path) -> None:
    _bundle(tmp_path)
    manifest = tmp_path / "b" / "bundle.json"
    with manifest.open("r+b") as fh:
        fh.truncate((16 << 20) + 1)  # sparse: the size is checked before a byte is read
    with pytest.raises(ModelBundleError, match=r"bundle.json: 16777217 bytes, more than a manifest may hold "
                                               r"\(16777216\)"):
        Bundle.open(tmp_path / "b")


def test_a_table_past_512_mib_is_refused_before_it_is_hashed_or_read(tmp_path: Path) -> None:
    _bundle(tmp_path)
    table = tmp_path / "b" / "tables" / "big.json"
    with table.open("wb") as fh:
        fh.truncate((512 << 20) + 1)
    manifest = json.loads((tmp_path / "b" / "bundle.json").read_text())
    manifest["files"]["tables"]["big"] = {"sha256": "0" * 64, "bytes": (512 << 20) + 1}
    (tmp_path / "b" / "bundle.json").write_text(json.dumps(manifest))
    b = Bundle.open(tmp_path / "b")
    assert b.load_table("small") == {"a": 1}
    with pytest.raises(ModelBundleError, match=r"big.json: 536870913 bytes, more than a bundle table may hold "
                                               r"\(536870912\)"):
        b.load_table("big")


def test_an_array_header_may_take_1_mib_and_not_a_byte_more(tmp_path: Path) -> None:
    """A safetensors header longer than 1 MiB is refused before it is parsed (it would be read into memory)."""
    _bundle(tmp_path)
    for n, name in (((1 << 20) + 1, "over"), (1 << 20, "edge")):
        path = tmp_path / "b" / "arrays" / f"{name}.safetensors"
        header = json.dumps({"data": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
        with path.open("wb") as fh:
            fh.write(struct.pack("<Q", n) + header + b" " * (n - len(header)) + b"\0\0\0\0")
        _relist(tmp_path / "b", "arrays", name, path)
    b = Bundle.open(tmp_path / "b")
    with pytest.raises(ModelBundleError, match=r"over.safetensors: not a bundle array \(header length 1048577 "
                                               r"does not fit the file\)"):
        b.load_array("over")
    assert b.load_array("edge").tolist() == [0.0]


def test_an_array_header_with_a_negative_or_fractional_dimension_is_refused_before_use(tmp_path: Path) -> None:
    """A tampered array header whose dimensions multiply to the right number of elements ((-2) × (-2) = 4,
    2.0 × 2 = 4.0 for 16 bytes of float32), or whose data starts before its data section (offset -4) or at a
    fractional offset, must still be refused as malformed, not handed to numpy."""
    _bundle(tmp_path)
    for name, dims, offsets in (("negative", [-2, -2], [0, 16]), ("fractional", [2.0, 2], [0, 16]),
                                ("before_data", [4], [-4, 12]), ("fractional_offset", [4], [0.0, 16])):
        path = tmp_path / "b" / "arrays" / f"{name}.safetensors"
        header = json.dumps({"data": {"dtype": "F32", "shape": dims, "data_offsets": offsets}}).encode()
        path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
        _relist(tmp_path / "b", "arrays", name, path)
    b = Bundle.open(tmp_path / "b")
    for name in ("negative", "fractional", "before_data", "fractional_offset"):
        with pytest.raises(ModelBundleError, match=rf"{name}\.safetensors: not a bundle array \(malformed shape or "
                                                   r"data offsets\)$"):
            b.load_array(name)


# -- barcodes, records, lines -----------------------------------------------------------------------------------

def test_a_barcode_of_200_bases_is_usable_and_one_of_199_is_set_aside() -> None:
    assert barcode_problems("ACGT" * 50) == []
    (kind, reason), = barcode_problems("ACGT" * 49 + "ACG")
    assert kind == "short_barcode" and "199" in reason and "shorter than 200" in reason
    # N runs at the ends do not count towards the 200
    assert [k for k, _ in barcode_problems("NN" + "ACGT" * 49 + "ACG" + "NN")] == ["short_barcode"]


def test_a_raw_barcode_of_5000_characters_is_read_and_one_of_5001_is_set_aside_as_too_long() -> None:
    assert barcode_problems("ACGT" * 1250) == []
    (kind, reason), = barcode_problems("ACGT" * 1250 + "A")
    assert kind == "long_barcode"
    assert reason.startswith("barcode is 5,001 characters long, more than the 5,000 of any COI barcode")
    assert barcode_problems("AC-GT" * 1250) == []  # 5,000 bases once the 1,250 gaps are removed


def test_a_quarantine_report_keeps_20000_characters_of_a_raw_record_and_says_how_many_it_left_out() -> None:
    assert shorten_raw("x" * 20_000) == "x" * 20_000
    assert shorten_raw("x" * 20_001) == "x" * 20_000 + "…[1 more characters; see the file and line]"
    assert shorten_raw("y" * 23_456) == "y" * 20_000 + "…[3,456 more characters; see the file and line]"


HEADER = "processid,order,family,genus,species,dna_barcode,country,remarks"


def _row(i: int, remarks: str = "dry") -> str:
    bases = "ACGT"
    seq = "".join(bases[(i * 7 + k * k) % 4] for k in range(420))
    return f"ML{i:03d},Diptera,Phoridae,Megaselia,Megaselia sp{i % 2},{seq},Canada,{remarks}"


def test_a_quoted_note_may_span_50_lines_and_one_of_51_is_cut_off(tmp_path: Path) -> None:
    """A record spanning lines (a spreadsheet's multi-line note) is read up to 50 physical lines; past that
    its first line is set aside and reading resumes on the next line, so a stray quote never swallows a file."""
    fifty = '"' + "\n".join(f"note line {k}" for k in range(50)) + '"'
    fifty_one = '"' + "\n".join(f"note line {k}" for k in range(51)) + '"'
    src = tmp_path / "notes.csv"
    src.write_text("\n".join([HEADER, _row(0), _row(1, fifty), _row(2)]) + "\n")
    read = read_collection(src, check_images=False)
    assert [s.processid for s in read.specimens] == ["ML000", "ML001", "ML002"] and not read.quarantine
    src.write_text("\n".join([HEADER, _row(0), _row(1, fifty_one), _row(2)]) + "\n")
    read = read_collection(src, check_images=False)
    assert [s.processid for s in read.specimens][:1] == ["ML000"] and "ML002" in [s.processid for s in read.specimens]
    first = read.quarantine[0]
    assert (first.line, first.processid) == (3, "ML001")
    assert "still open 50 lines" in first.reason


def test_a_cell_far_longer_than_the_csv_modules_default_field_limit_is_read(tmp_path: Path) -> None:
    """Python's csv refuses fields over 131,072 characters unless told otherwise; a 300,000-character note is
    a valid record (lines are bounded at 16 MiB instead)."""
    src = tmp_path / "long-note.csv"
    src.write_text("\n".join([HEADER, _row(0, "n" * 300_000), _row(1)]) + "\n")
    read = read_collection(src, check_images=False)
    assert [s.processid for s in read.specimens] == ["ML000", "ML001"] and not read.quarantine


@pytest.mark.parametrize("end", ["\n", "\r"])
def test_a_line_of_16_mib_is_read_and_one_byte_more_is_set_aside_unread(tmp_path: Path, end: str) -> None:
    """The same with an old Mac's lone ``\\r`` ending each line (read a block at a time, not by ``readline``)."""
    path = tmp_path / "lines.csv"
    with path.open("wb") as fh:
        fh.write(f"a,b{end}".encode() + b"x" * (16 * MiB) + end.encode() + b"y" * (16 * MiB + 1)
                 + f"{end}last{end}".encode())
    got = list(open_text_lines(path))
    assert [(n, len(text), problem) for n, text, problem in got[:2]] == [(1, 4, None), (2, 16 * MiB + 1, None)]
    n, text, problem = got[2]
    assert (n, text) == (3, "\n") and problem is not None
    assert problem == ("line is 16,777,218 bytes long, more than the 16,777,216 a record may take "
                       "(a file without line breaks?)")
    assert problem.kind == "malformed_row"
    assert got[3][:2] == (4, f"last{end}") and len(got) == 4


# -- BIOSCAN-5M's split rules -----------------------------------------------------------------------------------

def test_the_bioscan_5m_test_quota_per_species_follows_its_published_formula() -> None:
    """``min(25, floor(4 + (n - 8)/4))`` test records from a species of n ≥ 8 (none below 8)."""
    assert [species_test_quota(n) for n in (0, 7, 8, 11, 12, 15, 16, 87, 88, 91, 92, 200)] == \
        [0, 0, 4, 4, 5, 5, 6, 23, 24, 24, 25, 25]


def test_the_upper_bound_on_a_species_test_records_is_floor_4_plus_n_minus_8_over_3() -> None:
    assert [species_test_upper_bound(n) for n in (7, 8, 10, 11, 14, 100)] == [0, 4, 4, 5, 6, 34]


def test_at_most_floor_1_plus_b_minus_2_over_3_barcodes_of_a_species_go_to_test() -> None:
    assert [barcode_cap(b) for b in (0, 1, 2, 4, 5, 7, 8, 20)] == [0, 0, 1, 1, 2, 2, 3, 7]


# -- formats and headers ----------------------------------------------------------------------------------------

def test_evidence_records_are_format_6_and_a_format_7_record_is_refused_as_newer() -> None:
    assert Evidence.from_dict({"format": 2}).format == 6
    assert Evidence.from_dict({}).format == 6
    # a record of format 2 has no hit barcodes; format 3 keeps them; format 3 has no nearest species, 4 keeps them
    assert Evidence.from_dict({"format": 2}).hit_barcodes == {}
    assert Evidence.from_dict({"format": 3, "hit_barcodes": {"K1": "ACGT"}}).hit_barcodes == {"K1": "ACGT"}
    assert Evidence.from_dict({"format": 3}).near_species == ()
    assert [s.species for s in Evidence.from_dict({"format": 4, "near_species": [{"species": "A b"}]}).near_species] \
        == ["A b"]
    # format 4 has no chance level, congeners' distances or dropped records; 5 keeps them
    four = Evidence.from_dict({"format": 4, "member_hits": {"M": {"identity": 0.6, "overlap": 600}},
                               "near_species": [{"species": "A b"}]})
    assert four.member_hits["M"].chance is None and four.near_species[0].apart == {} and four.dropped_keys == ()
    five = Evidence.from_dict({"format": 5, "member_hits": {"M": {"identity": 0.6, "overlap": 600, "chance": 0.567}},
                               "dropped_keys": [{"processid": "K9", "why": "quarantined", "members": {"M": 0.99}}]})
    assert five.member_hits["M"].chance == 0.567 and five.dropped_keys[0].members == {"M": 0.99}
    # format 5's mean membership averaged HDBSCAN's soft membership in; 6's is the calibrated one alone
    assert Evidence.from_dict({"format": 5, "mean_probability": 0.49}).mean_probability is None
    assert Evidence.from_dict({"format": 6, "mean_probability": 0.97}).mean_probability == 0.97
    with pytest.raises(ValueError, match=r"evidence format 7 is newer than this biodiscover reads \(6\)"):
        Evidence.from_dict({"format": 7})


def test_an_export_member_name_is_cut_at_100_characters_before_its_suffix() -> None:
    assert safe_member_name("a" * 150, suffix=".fasta") == "a" * 100 + ".fasta"
    assert safe_member_name("b" * 100) == "b" * 100
    assert [safe_member_name(n) for n in ("COM1", "com9.txt", "LPT1", "LPT9", "COM10", "LPT10", "LPT0")] == \
        ["_COM1", "_com9.txt", "_LPT1", "_LPT9", "COM10", "LPT10", "LPT0"]


def test_a_model_fingerprint_of_80_characters_is_shown_whole_and_a_longer_one_as_a_12_digit_hash() -> None:
    edge, over = "f" * 80, "f" * 81
    assert model_description({"model_fingerprint": edge, "parameters": {}}) == edge
    digest = hashlib.sha256(over.encode()).hexdigest()[:12]
    assert model_description({"model_fingerprint": over, "parameters": {"model": "m.bundle"}}) == \
        f"m.bundle (fingerprint sha256:{digest})"


@pytest.mark.parametrize("page_size", [512, 1024, 4096, 65536])
def test_every_sqlite_page_size_passes_the_page_count_check_and_a_cut_file_does_not(tmp_path: Path,
                                                                                     page_size: int) -> None:
    """The header's page size (bytes 16–17; 65,536 is stored as 1) and page count (bytes 28–31, trusted when
    the change counters at 24 and 92 agree) are read as SQLite's file format defines them."""
    path = plain_sqlite_file(tmp_path / "t.sqlite", page_size=page_size, rows=40)
    head = path.read_bytes()[:100]
    pages = int.from_bytes(head[28:32], "big")
    assert pages >= 2 and path.stat().st_size == pages * page_size
    assert page_problems(path) == []
    with path.open("r+b") as fh:
        fh.truncate((pages - 1) * page_size)
    assert page_problems(path) == [f"the file holds {pages - 1:,} pages but its header says {pages:,} (cut short)"]
    with path.open("r+b") as fh:
        fh.truncate((pages - 1) * page_size + 7)
    assert page_problems(path)[0] == (f"the file is {(pages - 1) * page_size + 7:,} bytes, not a whole number of "
                                      f"{page_size}-byte pages (cut short or appended to)")



# -- what nothing has happened to yet ---------------------------------------------------------------------------

def test_a_value_nothing_has_happened_to_yet_counts_zero_and_claims_nothing(tmp_path: Path) -> None:
    """Defaults are what a report says when nobody filled a field in (and what a row gets when an INSERT leaves
    its column out): zero counts, no skip, no metadata promised, version 1 of a current specimen."""
    from biodiscover.storage.collections import CollectionReader
    from biodiscover.storage.db.ingest import IngestReport
    from biodiscover.storage.db.models import Counter, Ingest, Proposal, Run, SpecimenRow
    from biodiscover.storage.evidence import BinEvidence, Geography
    from biodiscover.storage.validation import ValidationSummary
    from biodiscover.workflows.export.registry import ExportFormat
    from biodiscover.workflows.export.tables import ExportResult

    ev = Evidence()
    assert (ev.size, ev.consensus_length, ev.format, ev.near_species, ev.dropped_keys) == (0, 0, 6, (), ())
    assert BinEvidence().n_with_bin == 0 and Geography().n_with_coordinates == 0
    summary = ValidationSummary()
    assert (summary.rows, summary.ok, summary.quarantined, summary.photos_set_aside) == (0, 0, 0, 0)
    report = IngestReport("plate", 1, 2, "plate.csv", None, 3, 3, 0, 0)
    assert (report.skipped, report.backup, report.quarantined, report.quarantine_file, report.photos_set_aside) == \
        (False, None, 0, None, 0)
    assert ExportResult("csv", tmp_path, (), 4, 2, partial=False, superseded=0).rejected == 0
    fmt = ExportFormat("x", "an export", "file", render=lambda data, options: b"")
    assert (fmt.suffix, fmt.publishes_metadata, fmt.requires_suffix) == (None, False, False)
    (tmp_path / "plate.csv").write_text(HEADER + "\n" + _row(0) + "\n")
    reader = CollectionReader(tmp_path / "plate.csv", require_images=False)
    assert (reader.check_images, reader.keep_quarantine, reader.quarantine) == (True, True, [])
    ingest = Ingest()
    assert (ingest.n_records, ingest.n_new, ingest.n_changed, ingest.n_unchanged, ingest.n_quarantined) == (0,) * 5
    specimen = SpecimenRow()
    assert (specimen.version, specimen.current) == (1, True)
    proposal = Proposal()
    assert (proposal.version, proposal.size, proposal.status) == (1, 0, "pending")
    assert (Run().done, Run().status, Counter().value) == (0, "running", 0)


# -- outputs into folders that do not exist yet -----------------------------------------------------------------

def test_every_writer_creates_the_missing_folders_of_its_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    """A bundle, a backup, a quarantine report, a split list and the export key may be asked for two folders
    down from anything that exists: each creates them (a missing parent is not an error to hand the user)."""
    from biodiscover.storage.db import Database
    from biodiscover.storage.db.backup import backup_database
    from biodiscover.storage.splits import split_collection
    from biodiscover.storage.validation import QuarantinedRecord, write_quarantine
    from biodiscover.workflows.export.output import export_key

    b = Bundle.create(tmp_path / "new" / "deeper" / "model.bundle", config={"name": "t"})
    b.save_table("t", [1])
    assert Bundle.open(tmp_path / "new" / "deeper" / "model.bundle").load_table("t") == [1]

    report = write_quarantine([QuarantinedRecord("plate.csv", 3, "ML001", "short_barcode", "too short", "raw")],
                              tmp_path / "q1" / "q2" / "quarantine.csv")
    assert report.read_text().splitlines()[1].startswith("plate.csv,3,ML001,short_barcode")

    db_path = tmp_path / "bd.sqlite"
    Database.open_or_create(db_path).close()
    backup = backup_database(db_path, tmp_path / "b1" / "b2" / "copy.sqlite")
    assert backup == tmp_path / "b1" / "b2" / "copy.sqlite" and page_problems(backup) == []

    src = tmp_path / "plate.csv"
    src.write_text("\n".join([HEADER] + [_row(i) for i in range(12)]) + "\n")
    summary, _read = split_collection(src, tmp_path / "s1" / "s2" / "splits.csv")
    assert (tmp_path / "s1" / "s2" / "splits.csv").is_file() and summary is not None

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "c1" / "c2"))
    key = export_key()
    assert key is not None and len(key) == 64 and (tmp_path / "c1" / "c2" / "biodiscover" / "export.key").is_file()
    assert export_key() == key  # the folder exists now: the same key is read back, not replaced


# -- messages: how many are shown of many ----------------------------------------------------------------------

def _refusal(call: Callable[..., object], *args: object, **kwargs: object) -> str:
    """The one-line InputError ``call`` raises."""
    with pytest.raises(InputError) as caught:
        call(*args, **kwargs)
    return str(caught.value)


def test_a_barcode_names_its_first_8_foreign_characters_and_where_the_first_one_is() -> None:
    (kind, reason), = barcode_problems("ACGT" * 60 + "9876543210")
    assert kind == "barcode_chars"
    assert reason == ("barcode has characters outside IUPAC: '0', '1', '2', '3', '4', '5', '6', '7' "
                      "(first at position 241)")


def test_a_text_cell_of_200_characters_is_read_and_one_of_201_is_set_aside_as_too_long(tmp_path: Path) -> None:
    """A 10,000-character country (a note pasted into the wrong column) was kept and reached the triage summary,
    the evidence's places, the review and every export; the longest real cell of the dev data is 43 characters.
    Every text field is bounded at 200: the row is set aside naming the field, like a barcode past 5,000."""
    src = tmp_path / "plate.csv"
    rows = [_row(0).replace("Canada", "C" * 200), _row(1).replace("Canada", "C" * 201),
            _row(2).replace("ML002", "P" * 201), _row(3).replace("Megaselia sp1", "G" * 10_000), _row(4)]
    src.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    read = read_collection(src, check_images=False)
    assert [s.processid for s in read.specimens] == ["ML000", "ML004"]
    assert read.specimens[0].country == "C" * 200
    assert [(q.line, q.kind, q.reason) for q in read.quarantine] == [
        (3, "long_value", "country is 201 characters long, more than the 200 a text cell may hold "
                          "(a note in the wrong column?)"),
        (4, "long_value", "processid is 201 characters long, more than the 200 a text cell may hold "
                          "(a note in the wrong column?)"),
        (5, "long_value", "species is 10,000 characters long, more than the 200 a text cell may hold "
                          "(a note in the wrong column?)")]
    assert read.summary.as_dict()["problems"] == {"long_value": 3}


def test_control_characters_in_a_kept_field_are_named_four_at_most(tmp_path: Path) -> None:
    src = tmp_path / "plate.csv"
    src.write_text(HEADER + "\n" + _row(0).replace("Canada", "Can\x01\x02\x03\x04\x05ada") + "\n" + _row(1) + "\n")
    read = read_collection(src, check_images=False)
    assert [s.processid for s in read.specimens] == ["ML001"]
    assert read.quarantine[0].reason == r"country holds control characters ('\x01', '\x02', '\x03', '\x04')"


def test_a_header_without_processid_names_its_first_six_cells(tmp_path: Path) -> None:
    from biodiscover.storage.bioscan import read_header

    src = tmp_path / "table.csv"
    src.write_text("a,b,c,d,e,f,g,h\n1,2,3,4,5,6,7,8\n")
    found = "(found 'a', 'b', 'c', 'd', 'e', 'f')"
    assert _refusal(read_collection, src, check_images=False) == \
        f"{src}: not a specimen table: the header (line 1) has no 'processid' column {found}"
    assert _refusal(read_header, src) == f"{src}: not BIOSCAN-5M metadata: line 1 has no 'processid' column {found}"


def test_a_folder_of_tables_without_photos_names_three_of_them(tmp_path: Path) -> None:
    folder = tmp_path / "plates"
    folder.mkdir()
    for name in ("d.csv", "a.tsv", "c.csv.gz", "b.fasta", ".hidden.csv", "notes.txt"):
        (folder / name).write_text("x\n")
    assert _refusal(read_collection, folder, check_images=False) == (
        f"{folder}: a folder without <processid>.jpg/.jpeg/.png images; give its collection file "
        "(a.tsv, b.fasta, c.csv.gz) with --images for the photographs")


def test_a_dataset_with_several_metadata_files_names_five_of_them(tmp_path: Path) -> None:
    from biodiscover.storage.layout import find_metadata

    (tmp_path / "metadata").mkdir()
    for i in range(7):
        (tmp_path / "metadata" / f"part{i}.csv").write_text("processid\n")
    assert _refusal(find_metadata, tmp_path) == (
        f"{tmp_path / 'metadata'}: several metadata files (part0.csv, part1.csv, part2.csv, part3.csv, part4.csv); "
        "pass the one to read")


def test_a_latin1_file_is_refused_quoting_at_most_80_characters_of_the_word(tmp_path: Path) -> None:
    from biodiscover.storage.textlines import first_non_utf8_line

    src = tmp_path / "latin1.csv"
    word = "Qu" + "\xe9" + "bec" * 40  # 123 characters, no separator in it
    src.write_bytes(b"processid,province\nML1," + word.encode("cp1252") + b"\n")
    assert first_non_utf8_line(src) == ("not UTF-8 (looks like Latin-1/cp1252); re-save as UTF-8 — first at line 2: "
                                        f"{word[:80]!r} read as cp1252")


def test_a_file_mixing_utf8_and_latin1_lines_says_so_instead_of_re_save_as_utf8(tmp_path: Path) -> None:
    """Two exports pasted into one file: line 2 UTF-8 ("Perú"), line 3 cp1252 ("Québec"). "Looks like Latin-1;
    re-save as UTF-8" sent the user to convert the whole file from cp1252, which turns the UTF-8 "Perú" into
    "PerÃº": the message names both lines, the UTF-8 one after the cp1252 one too, and what not to do."""
    from biodiscover.storage.textlines import first_non_utf8_line

    expected = ("mixes UTF-8 and Latin-1/cp1252 lines (UTF-8 at line {utf}: {u!r}; cp1252 first at line {cp}: "
                "{c!r}); re-encode the cp1252 lines as UTF-8 (converting the whole file from cp1252 would garble the "
                "UTF-8 ones)")
    src = tmp_path / "mixed.csv"
    src.write_bytes(b"processid,country\nML1," + "Perú".encode() + b"\nML2," + "Québec".encode("cp1252") + b"\n")
    assert first_non_utf8_line(src) == expected.format(utf=2, u="Perú", cp=3, c="Québec")
    src.write_bytes(b"processid,country\nML2," + "Québec".encode("cp1252") + b"\nML1,x\nML3," + "Perú".encode() + b"\n")
    assert first_non_utf8_line(src) == expected.format(utf=4, u="Perú", cp=2, c="Québec")


def _distinct_barcode(i: int) -> str:
    """A 420-base barcode no other index shares (the index written in base 4 inside it)."""
    digits = ""
    while True:
        i, r = divmod(i, 4)
        digits = "ACGT"[r] + digits
        if i == 0:
            break
    return (digits.rjust(8, "A") + "ACGTTGCA" * 52)[:420]


def test_the_bioscan_5m_split_counts_follow_its_rules_whatever_the_draw() -> None:
    """With one barcode per record every quota is met exactly, so each species' count per split follows from
    the published rules alone: seen species give min(25, ⌊4 + (n−8)/4⌋) records to test (at most ⌊1 + (b−2)/3⌋
    barcodes), 5 % of n to val from 20 records on, and 5 % of the 7–19-record tail's mass to val; placeholder
    species of a seen genus with 8 or more records are unseen (the same test rule, ⌊0.2 n⌋ of the rest to
    val_unseen); every other named record is held out, an unnamed one is pretraining."""
    from collections import Counter

    import pandas as pd

    from biodiscover.storage.splits import assign_splits

    plan = [("Megaselia alpha", "Megaselia", 40), ("Megaselia beta", "Megaselia", 20),
            ("Megaselia gamma", "Megaselia", 10), ("Megaselia delta", "Megaselia", 7),
            ("Megaselia epsilon", "Megaselia", 5), ("Megaselia sp. BIOUG01", "Megaselia", 12),
            ("Megaselia sp. BIOUG02", "Megaselia", 5), ("Dohrniphora sp. BIOUG03", "Dohrniphora", 9),
            (None, "Megaselia", 3)]
    rows = []
    for species, genus, n in plan:
        for _ in range(n):
            rows.append({"processid": f"P{len(rows):04d}", "species": species, "genus": genus,
                         "dna_barcode": _distinct_barcode(len(rows))})
    frame = pd.DataFrame(rows)
    for seed in (1, 7):
        split = assign_splits(frame, seed=seed)
        counts = Counter(zip(frame["species"].fillna("-"), split))
        tail_val = counts[("Megaselia gamma", "val")] + counts[("Megaselia delta", "val")]
        assert tail_val == 1  # round(0.05 × (10 + 7)): one record from the 7–19 tail, from either species
        assert {k: v for k, v in counts.items() if k[1] != "val" or k[0] not in ("Megaselia gamma",
                                                                                  "Megaselia delta")} == {
            ("Megaselia alpha", "test"): 12, ("Megaselia alpha", "val"): 2, ("Megaselia alpha", "train"): 26,
            ("Megaselia beta", "test"): 7, ("Megaselia beta", "val"): 1, ("Megaselia beta", "train"): 12,
            ("Megaselia gamma", "test"): 3, ("Megaselia gamma", "train"): 7 - counts[("Megaselia gamma", "val")],
            ("Megaselia delta", "train"): 7 - counts[("Megaselia delta", "val")],
            ("Megaselia epsilon", "train"): 5,
            ("Megaselia sp. BIOUG01", "test_unseen"): 4, ("Megaselia sp. BIOUG01", "val_unseen"): 1,
            ("Megaselia sp. BIOUG01", "key_unseen"): 7,
            ("Megaselia sp. BIOUG02", "other_heldout"): 5, ("Dohrniphora sp. BIOUG03", "other_heldout"): 9,
            ("-", "pretrain"): 3,
        }


def test_the_page_count_is_read_as_the_whole_four_byte_field(tmp_path: Path) -> None:
    """A header claiming 2**24 + 2 pages (a 64 GiB database) on a 2-page file is a cut file, and says so with
    the number the header holds (reading three of its four bytes would see 2 pages and pass it)."""
    path = plain_sqlite_file(tmp_path / "t.sqlite")
    data = bytearray(path.read_bytes())
    pages = len(data) // int.from_bytes(data[16:18], "big")
    assert pages == 2 and page_problems(path) == []
    data[28:32] = (2**24 + 2).to_bytes(4, "big")
    path.write_bytes(bytes(data))
    assert page_problems(path) == ["the file holds 2 pages but its header says 16,777,218 (cut short)"]


def test_each_unseen_species_gives_exactly_a_fifth_of_its_remaining_records_to_val_unseen() -> None:
    """⌊0.2 n⌋ of an unseen species' records left after test_unseen go to val_unseen, each record once: on
    species of 60–90 records a draw that could pick a record twice would fall short of the count."""
    from collections import Counter

    import pandas as pd

    from biodiscover.storage.splits import assign_splits

    plan = [("Megaselia alpha", 40), ("Megaselia sp. BIOUG11", 60), ("Megaselia sp. BIOUG12", 75),
            ("Megaselia sp. BIOUG13", 90)]
    names = [sp for sp, n in plan for _ in range(n)]
    frame = pd.DataFrame({"processid": [f"U{i:04d}" for i in range(len(names))], "species": names,
                          "genus": "Megaselia", "dna_barcode": [_distinct_barcode(i) for i in range(len(names))]})
    for seed in (1, 7):
        counts = Counter(zip(frame["species"], assign_splits(frame, seed=seed)))
        for species, n in plan[1:]:
            rest = n - counts[(species, "test_unseen")]
            assert counts[(species, "val_unseen")] == rest // 5 and rest // 5 >= 8
            assert counts[(species, "key_unseen")] == rest - rest // 5
