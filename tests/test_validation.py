"""Validation: one test per rule of issue 2 item 3, the quarantine CSV, and the ``validate`` verb."""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
from pathlib import Path

import pytest

from biodiscover.storage.bioscan import load_metadata
from biodiscover.storage.collections import read_collection
from biodiscover.storage.errors import InputError
from biodiscover.storage.validation import (
    QUARANTINE_COLUMNS,
    RowValidator,
    barcode_problems,
    check_image,
    clean_barcode,
)
from fixtures.inprocess import run_cli

REPO = Path(__file__).resolve().parent.parent
FIX = Path(__file__).resolve().parent / "fixtures" / "readers"
BAD = FIX / "bad_rows.csv"


@pytest.fixture(scope="module")
def bad_read():
    return read_collection(BAD)


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd or REPO)


# -- barcode cleaning ----------------------------------------------------------------------
def test_clean_barcode_uppercases_removes_gaps_trims_n_runs_and_truncates() -> None:
    assert clean_barcode("nnac-gt.ACnnTG nn") == "ACGTACNNTG"
    assert clean_barcode("NNNN") == ""
    assert clean_barcode(None) == ""
    assert clean_barcode("acgu-Uu") == "ACGTTT"  # RNA's U is DNA's T
    long = "A" * 659 + "N" * 5 + "C" * 10
    assert clean_barcode(long) == "A" * 659  # cut at 660 lands in the N run: trimmed again
    assert len(clean_barcode("ACGT" * 200)) == 660
    assert clean_barcode("ACGT" * 200, max_nucleotides=None) == "ACGT" * 200


def test_barcode_problems_reports_position_of_first_bad_character() -> None:
    problems = barcode_problems("AC-GTX" + "A" * 300)
    assert problems == [("barcode_chars", "barcode has characters outside IUPAC: 'X' (first at position 5)")]
    assert barcode_problems("acgtRYKMSWBDHVN" + "a" * 300) == []  # IUPAC codes, lower case, are fine


# -- one test per rule, on the fixture file ------------------------------------------------
@pytest.mark.parametrize(
    ("line", "processid", "kind", "fragment"),
    [
        (3, "BADCHAR001-24", "barcode_chars", "'*', 'J', 'X'"),
        (4, None, "empty_processid", "processid is empty"),
        (5, "GOOD001-24", "duplicate_processid", "first seen at line 2"),
        (6, "SHORT001-24", "short_barcode", "150 nt after trimming N runs"),
        (7, "COORD001-24", "coordinates", "coord-lat 95.5 is outside [-90, 90]"),
        (8, "COORD002-24", "coordinates", "coord-lon 'abc' is not a number"),
        (9, "SPLIT001-24", "unknown_split", "split 'training'"),
        (10, "IMGMISS001-24", "image_missing", "NOPE001-24.jpg does not exist"),
        (11, "IMGBAD001-24", "image_unreadable", "BROKEN001-24.jpg is not a readable image"),
    ],
)
def test_each_rule_quarantines_with_file_line_record_and_reason(bad_read, line, processid, kind, fragment) -> None:
    matches = [q for q in bad_read.quarantine if q.line == line]
    assert len(matches) == 1
    q = matches[0]
    assert (q.processid, q.kind) == (processid, kind)
    assert fragment in q.reason
    assert q.message.startswith(f"{BAD}:{line}")
    if processid:
        assert f"(processid {processid!r})" in q.message
    assert q.raw.startswith(f"{processid or ''},")


def test_valid_rows_go_on_cleaned(bad_read) -> None:
    # IMGBAD001-24 has a good barcode and an unreadable photo: kept without the photo (the photo is set aside)
    assert [(s.processid, s.line) for s in bad_read.specimens] == [("GOOD001-24", 2), ("IMGBAD001-24", 11),
                                                                   ("GOOD002-24", 12)]
    first, photo_less, second = bad_read.specimens
    assert photo_less.image_path is None and photo_less.dna_barcode
    (photo,) = [q for q in bad_read.quarantine if q.photo_only]
    assert (photo.line, photo.processid) == (11, "IMGBAD001-24")
    assert photo.reason.startswith("photo set aside, specimen kept without it: image file ")
    assert "-" not in first.dna_barcode and first.dna_barcode == first.dna_barcode.upper()
    assert len(second.dna_barcode) == 660 and not second.dna_barcode.startswith("N")
    assert second.coord_lat == 0.0 and second.split == "val"


def test_summary_counts_each_kind(bad_read) -> None:
    summary = bad_read.summary.as_dict()
    assert summary["rows"] == 11 and summary["ok"] == 3 and summary["quarantined"] == 8
    assert summary["photos_set_aside"] == 1
    assert summary["problems"] == {
        "barcode_chars": 1,
        "empty_processid": 1,
        "duplicate_processid": 1,
        "short_barcode": 1,
        "coordinates": 2,
        "image_missing": 1,
        "image_unreadable": 1,
        "unknown_split": 1,
    }


def test_quarantine_csv_keeps_every_bad_row_verbatim(bad_read, tmp_path: Path) -> None:
    out = bad_read.write_quarantine(tmp_path / "q" / "quarantine.csv")
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0].keys()) == QUARANTINE_COLUMNS
    assert len(rows) == 9
    source_lines = BAD.read_text().splitlines()
    for row in rows:
        assert row["raw"] == source_lines[int(row["line"]) - 1]
        assert row["file"] == str(BAD) and row["reason"]


def test_row_with_two_problems_counts_under_both_kinds() -> None:
    v = RowValidator()
    spec, q = v.validate(
        {"processid": "X1", "dna_barcode": "ACGU" * 20 + "Z", "coord-lat": "-91"}, source="mem.csv", line=7
    )
    assert spec is None and q is not None
    assert q.kind == "barcode_chars"
    assert "outside [-90, 90]" in q.reason and "shorter than 200" in q.reason
    assert v.summary.problems == {"barcode_chars": 1, "short_barcode": 1, "coordinates": 1}
    assert v.summary.quarantined == 1


def test_missing_image_is_quarantined_when_images_are_required(tmp_path: Path) -> None:
    result = read_collection(FIX / "collection_subset.csv", images=FIX / "images", require_images=True)
    missing = sorted(q.processid for q in result.quarantine if q.kind == "image_missing")
    assert missing == ["COLL003-24", "COLL004-24"]
    assert all("no image for" in q.reason for q in result.quarantine if q.kind == "image_missing")


def test_check_image_on_missing_unreadable_and_good_files(tmp_path: Path) -> None:
    assert check_image(FIX / "images" / "COLL001-24.jpg") is None
    assert check_image(tmp_path / "nope.jpg")[0] == "image_missing"
    assert check_image(FIX / "images" / "BROKEN001-24.jpg")[0] == "image_unreadable"
    # a JPEG cut in half passes a header sniff but not a full decode
    from PIL import Image

    good = tmp_path / "big.jpg"
    Image.effect_noise((256, 256), 40).convert("RGB").save(good, quality=95)
    half = tmp_path / "half.jpg"
    half.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert check_image(good) is None
    assert check_image(half)[0] == "image_unreadable"


def test_wrong_field_count_is_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    seq = "ACGT" * 60
    path.write_text(f"processid,dna_barcode,country\nR1,{seq},Canada\nR2,{seq}\nR3,{seq},Peru,extra\n")
    result = read_collection(path)
    assert [s.processid for s in result.specimens] == ["R1"]
    assert [(q.line, q.processid, q.kind) for q in result.quarantine] == [
        (3, "R2", "malformed_row"),
        (4, "R3", "malformed_row"),
    ]


# -- encodings and broken files ------------------------------------------------------------
def test_a_non_utf8_file_is_refused_naming_its_first_line() -> None:
    """A Latin-1 line is the file's encoding, not one row's problem: the file is refused before any row is
    read (no row is set aside one by one), naming the line and the fix."""
    with pytest.raises(InputError) as err:
        read_collection(FIX / "non_utf8.csv")
    assert str(err.value) == (f"{FIX / 'non_utf8.csv'}: not UTF-8 (looks like Latin-1/cp1252); re-save as UTF-8 — "
                              "first at line 3: 'México' read as cp1252")


def test_a_non_utf8_fasta_is_refused_too(tmp_path: Path) -> None:
    seq = "ACGT" * 60
    path = tmp_path / "bad.fasta"
    path.write_bytes(f">F1|Tuta absoluta\n{seq}\n>F2|Caf".encode() + b"\xe9\n" + f"{seq}\n>F3|\n{seq}\n".encode())
    with pytest.raises(InputError, match=r"bad\.fasta: not UTF-8 \(looks like Latin-1/cp1252\); re-save as UTF-8 "
                                         r"— first at line 3: '>F2\|Café' read as cp1252"):
        read_collection(path)


def test_load_metadata_names_the_non_utf8_line() -> None:
    with pytest.raises(InputError, match=r"non_utf8\.csv: line 3 is not valid UTF-8"):
        load_metadata(FIX / "non_utf8.csv")


def test_truncated_gzip_keeps_rows_read_before_and_says_how_many() -> None:
    result = read_collection(FIX / "truncated.csv.gz")
    n = len(result.specimens)
    assert 100 < n < 400
    assert [s.processid for s in result.specimens] == [f"TRUNC{i:04d}-24" for i in range(n)]
    assert all(len(s.dna_barcode) >= 600 for s in result.specimens)  # no half row slipped through
    (q,) = result.quarantine
    assert q.kind == "truncated_gzip" and q.processid is None
    assert f"the {n} rows read before are kept" in q.reason
    assert q.message.startswith(str(FIX / "truncated.csv.gz"))
    assert result.summary.problems["truncated_gzip"] == 1



def test_a_truncated_gzip_with_old_mac_line_breaks_keeps_the_rows_before_the_cut(tmp_path: Path) -> None:
    """A file whose lines end in a lone ``\\r`` is read a block at a time: a gzip cut short still keeps every row
    before the cut, as many as the same file with ``\\n`` keeps."""
    import random

    rng = random.Random(5)
    rows = [f"TR{i:04d},Diptera,{''.join(rng.choices('ACGT', k=500))}" for i in range(1500)]
    kept = {}
    for end in ("\n", "\r"):
        data = gzip.compress(end.join(["processid,taxon,dna_barcode", *rows, ""]).encode())
        path = tmp_path / f"cut{len(end)}{ord(end)}.csv.gz"
        path.write_bytes(data[: len(data) // 2])
        result = read_collection(path)
        kept[end] = [s.processid for s in result.specimens]
        assert [q.kind for q in result.quarantine] == ["truncated_gzip"]
    assert 500 < len(kept["\r"]) < 1000 and kept["\r"] == kept["\n"]

def test_truncated_gzip_in_the_metadata_reader(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"truncated\.csv\.gz: gzip stream is truncated after \d+ rows"):
        load_metadata(FIX / "truncated.csv.gz", chunksize=50)
    kept = load_metadata(FIX / "truncated.csv.gz", chunksize=50, on_truncated="warn")
    streamed = read_collection(FIX / "truncated.csv.gz").specimens
    # every complete row before the cut, and not the half row at the cut
    assert kept["processid"].tolist() == [s.processid for s in streamed]
    assert kept["dna_barcode"].str.len().min() >= 600


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("not_csv.bin", "binary content, not a CSV/TSV/FASTA text file"),
        ("prose.txt", "has no 'processid' column"),
    ],
)
def test_a_file_that_is_not_csv_is_one_clear_error(name: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        read_collection(FIX / name)
    with pytest.raises(InputError, match=message):
        load_metadata(FIX / name)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_a_utf16_table_is_named_as_utf16_not_binary(tmp_path: Path, encoding: str) -> None:
    """Excel's "Unicode Text" and some LIMS exports write UTF-16 (with a byte-order mark, or without one): it was
    refused as "binary content, not a CSV/TSV/FASTA text file", which sent the user looking for a broken file."""
    src = tmp_path / "plate.tsv"
    src.write_text("processid\tcountry\nML1\tPerú\n", encoding=encoding)
    for read in (read_collection, load_metadata):
        with pytest.raises(InputError, match=r"plate\.tsv: UTF-16 text \(Excel's 'Unicode Text'\?\); save it as "
                                             r"UTF-8 \(CSV UTF-8\) and try again$"):
            read(src)


def test_gzip_of_binary_and_zip_are_rejected(tmp_path: Path) -> None:
    gz = tmp_path / "x.csv.gz"
    gz.write_bytes(gzip.compress(bytes(range(256)) * 4))
    with pytest.raises(InputError, match="binary content"):
        read_collection(gz)
    zp = tmp_path / "meta.csv"
    zp.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(InputError, match="zip archive"):
        read_collection(zp)
    import bz2
    import lzma

    for name, packed in (("plate.csv.bz2", bz2.compress(b"processid\nA-24\n")),
                         ("plate.csv.xz", lzma.compress(b"processid\nA-24\n"))):
        (tmp_path / name).write_bytes(packed)
        with pytest.raises(InputError, match=r"compressed with bzip2/xz; only plain or gzip \(\.gz\) files"):
            read_collection(tmp_path / name)


# -- the CLI -------------------------------------------------------------------------------
def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the console entry point in-process (same code path as the script, no start-up cost)."""
    from biodiscover.cli.main import main

    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_exit_codes_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    code, out, err = _main(capsys, "validate", str(FIX / "collection.tsv"))
    assert code == 0, err
    assert "3 records, 3 valid, 0 quarantined" in out

    q = tmp_path / "quarantine.csv"
    code, out, err = _main(capsys, "validate", str(BAD), "--quarantine", str(q))
    assert code == 1, err
    assert f"{BAD} (csv): 11 records, 3 valid, 8 quarantined, 1 photo set aside" in out, out
    assert "coordinates out of range" in out
    assert f"{BAD}:3 (processid 'BADCHAR001-24')" in out
    with q.open(newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 9

    # the default report goes beside the input (where the rows get fixed), named in full — not into the cwd
    import shutil

    (tmp_path / "in").mkdir()
    (tmp_path / "elsewhere").mkdir()
    copy = Path(shutil.copy(BAD, tmp_path / "in" / BAD.name))
    shutil.copytree(FIX / "images", tmp_path / "in" / "images")
    monkeypatch.chdir(tmp_path / "elsewhere")
    code, out, err = _main(capsys, "validate", str(copy), "--json")
    assert code == 1
    payload = json.loads(out)
    assert payload["quarantined"] == 8 and payload["photos_set_aside"] == 1
    assert payload["problems"]["coordinates"] == 2
    assert payload["quarantine_file"] == str(tmp_path / "in" / "bad_rows.quarantine.csv")
    assert (tmp_path / "in" / "bad_rows.quarantine.csv").is_file() and not any((tmp_path / "elsewhere").iterdir())


@pytest.mark.parametrize("name", ["not_csv.bin", "prose.txt", "does-not-exist.csv"])
def test_cli_unusable_input_is_one_line_exit_2(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = _main(capsys, "validate", str(FIX / name))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and name in lines[0]


def test_cli_script_on_a_non_csv_file_has_no_traceback() -> None:
    """End to end through a real process: exit code 2, one line, no traceback."""
    result = _cli("validate", str(FIX / "not_csv.bin"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: {FIX / 'not_csv.bin'}: binary content, not a CSV/TSV/FASTA text file"


def test_cli_truncated_gzip_reports_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _main(capsys, "validate", str(FIX / "truncated.csv.gz"), "--quarantine", str(tmp_path / "q.csv"))
    assert code == 1
    assert "truncated gzip" in out and "rows read before are kept" in out


def test_ingest_of_a_truncated_gzip_says_so_once_and_counts_no_row_for_it(tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The cut is a problem of the file: one `error:` line naming the file and where it ends, the rows before it
    ingested, and "N rows set aside" not counting the cut (it set no row aside)."""
    read = read_collection(FIX / "truncated.csv.gz")
    assert read.specimens and not [q for q in read.quarantine if not q.whole_file]  # only the cut
    code, out, err = _main(capsys, "ingest", "--input", str(FIX / "truncated.csv.gz"), "--db", str(tmp_path / "t.db"),
                           "--quarantine", str(tmp_path / "q.csv"))
    assert code == 0, err
    assert f"{len(read.specimens)} records, {len(read.specimens)} new" in out and "set aside" not in out, out
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {FIX / 'truncated.csv.gz'}:"), err
    assert "gzip stream ends before its end marker" in lines[0]
    code, out, err = _main(capsys, "ingest", "--input", str(FIX / "truncated.csv.gz"), "--db", str(tmp_path / "t.db"),
                           "--quarantine", str(tmp_path / "q.csv"))
    assert code == 0 and "already ingested" in out and "set aside" not in out, out  # the same said again


def test_a_stray_nul_byte_quarantines_its_row_not_the_file(tmp_path: Path) -> None:
    seq = "ACGT" * 60
    path = tmp_path / "nul.csv"
    path.write_bytes(f"processid,dna_barcode\nA1,{seq}\nA2,{seq}\x00\nA3,{seq}\n".encode())
    result = read_collection(path)
    assert [s.processid for s in result.specimens] == ["A1", "A3"]
    assert [(q.line, q.processid, q.kind) for q in result.quarantine] == [(3, "A2", "barcode_chars")]


def test_number_columns_are_checked_and_a_record_with_nothing_to_compare_is_set_aside() -> None:
    v = RowValidator()
    good, q = v.validate({"processid": "N1", "dna_barcode": "ACGT" * 60, "area_fraction": "0.25",
                          "inferred_ranks": "3.0"}, source="m.csv", line=2)
    assert q is None and good is not None
    assert (good.area_fraction, good.inferred_ranks) == (0.25, 3)
    spec, q = v.validate({"processid": "N2", "dna_barcode": "ACGT" * 60, "area_fraction": "a quarter",
                          "inferred_ranks": "2.5"}, source="m.csv", line=3)
    assert spec is None and q is not None and q.kind == "bad_value"
    assert q.reason == "area_fraction 'a quarter' is not a number; inferred_ranks '2.5' is not an integer"
    spec, q = v.validate({"processid": "N3", "country": "Canada"}, source="m.csv", line=4)
    assert spec is None and q is not None
    assert (q.kind, q.reason) == ("no_data", "record has neither a DNA barcode nor an image")
    assert v.summary.problems == {"bad_value": 2, "no_data": 1} and v.summary.quarantined == 2  # per problem


def test_a_photo_in_pils_warning_zone_is_refused_not_decoded(tmp_path: Path, monkeypatch) -> None:
    """Between PIL's pixel limit and twice it PIL only warns; such a photo is refused all the same.
    (The limit is lowered so the photo is small; PIL's own default is 89.5 Mpx.)"""
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    near = tmp_path / "near.png"
    Image.new("L", (120, 120)).save(near)  # 14,400 px: past the limit, under twice it
    kind, reason = check_image(near)
    assert kind == "image_unreadable" and "is refused" in reason and "decompression bomb" in reason.lower()
    Image.new("L", (100, 100)).save(tmp_path / "fine.png")  # at the limit: a photo
    assert check_image(tmp_path / "fine.png") is None


def test_a_processid_seen_three_times_names_its_first_line_each_time(tmp_path: Path) -> None:
    barcode = "ACGT" * 60
    src = tmp_path / "three.csv"
    src.write_text("processid,dna_barcode\n" + "".join(f"P1-24,{barcode}\n" for _ in range(3)), encoding="utf-8")
    read = read_collection(src, check_images=False)
    assert [s.processid for s in read.specimens] == ["P1-24"]
    assert [(q.line, q.kind) for q in read.quarantine] == [(3, "duplicate_processid"), (4, "duplicate_processid")]
    assert all("first seen at line 2" in q.reason for q in read.quarantine), [q.reason for q in read.quarantine]


def test_a_processid_given_twice_by_rows_that_differ_sets_both_aside_and_an_exact_repeat_only_the_later(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A processid given twice with another specimen's barcode on its first row kept that first row as "the
    duplicate rule's" specimen, silently, and the database then stored its barcode as the current one (e34 attack
    Q2). Which of two rows that disagree is right cannot be known: both are set aside, each saying on what they
    disagree and where; an exact repeat is set aside alone, as before. validate, ingest and a FASTA say it alike."""
    one, other = "ACGT" * 60, "ACGA" * 60
    plate = tmp_path / "plate.csv"
    plate.write_text("processid,species,dna_barcode,notes\n"
                     f"A1,,{other},\nOK1,,{one},\nA1,,{one},\n"  # another barcode: lines 2 and 4
                     f"S1,Aedes aegypti,{one},x\nS1,Aedes albopictus,{one},y\n"  # other taxonomy: lines 5, 6
                     f"R1,,{one},x\nR1,,{one},y\nT1,,{one},\nT1,,{other},\nT1,,{one},\n")  # R1: alike; T1: 3 rows
    read = read_collection(plate, check_images=False)
    assert [s.processid for s in read.specimens] == ["OK1", "R1"]
    reasons = {(q.line, q.processid): q.reason for q in read.quarantine}
    two = "processid {!r} is given twice with different {} (lines {} and {}): both set aside"
    assert reasons == {
        (2, "A1"): two.format("A1", "barcodes", 2, 4), (4, "A1"): two.format("A1", "barcodes", 2, 4),
        (5, "S1"): two.format("S1", "taxonomy", 5, 6), (6, "S1"): two.format("S1", "taxonomy", 5, 6),
        (8, "R1"): "processid 'R1' is a duplicate (first seen at line 7)",  # the notes column is read by nobody
        **{(n, "T1"): "processid 'T1' is given 3 times with different barcodes (lines 9, 10 and 11): all of them "
                      "set aside" for n in (9, 10, 11)}}
    assert {q.kind for q in read.quarantine} == {"duplicate_processid"}

    code, out, err = _main(capsys, "validate", str(plate))
    assert code == 1 and "11 records" not in out and "10 records, 2 valid, 8 quarantined" in out, out
    assert f"  {plate}:2 (processid 'A1'): {two.format('A1', 'barcodes', 2, 4)}\n" in out, out
    with (tmp_path / "plate.quarantine.csv").open(newline="") as fh:
        assert [(r["line"], r["processid"]) for r in csv.DictReader(fh)] == [
            ("2", "A1"), ("4", "A1"), ("5", "S1"), ("6", "S1"), ("8", "R1"), ("9", "T1"), ("10", "T1"), ("11", "T1")]
    code, out, err = _main(capsys, "ingest", "--input", str(plate), "--db", str(tmp_path / "lab.sqlite"), "--json")
    assert code == 0 and json.loads(out)["quarantined"] == 8, (out, err)

    fasta = tmp_path / "plate.fasta"
    fasta.write_text(f">F1\n{one}\n>F2\n{one}\n>F1\n{other}\n")
    got = read_collection(fasta, check_images=False)
    assert [s.processid for s in got.specimens] == ["F2"]
    assert [(q.line, q.reason) for q in got.quarantine] == [
        (n, two.format("F1", "barcodes", 1, 5)) for n in (1, 5)]


def test_an_image_path_is_found_beside_the_metadata_then_in_the_image_folder(tmp_path: Path) -> None:
    """A relative image_path: beside the metadata file first, then under --images with its folders, then by
    its file name in --images; one found nowhere is quarantined naming where it was looked for."""
    import shutil

    photo = FIX / "images" / "COLL001-24.jpg"
    meta, imgs = tmp_path / "meta", tmp_path / "imgs"
    for target in (meta / "pics" / "a.jpg", imgs / "sub" / "b.jpg", imgs / "c.jpg", tmp_path / "abs.jpg"):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, target)
    source = str(meta / "plate.csv")
    v = RowValidator(images=imgs)
    found = {}
    for pid, rel in (("A", "pics/a.jpg"), ("B", "sub/b.jpg"), ("C", "elsewhere/c.jpg"),
                     ("D", str(tmp_path / "abs.jpg"))):
        spec, q = v.validate({"processid": pid, "image_path": rel}, source=source, line=2)
        assert q is None and spec is not None, q
        found[pid] = spec.image_path
    assert found == {"A": meta / "pics" / "a.jpg", "B": imgs / "sub" / "b.jpg", "C": imgs / "c.jpg",
                     "D": tmp_path / "abs.jpg"}
    spec, q = v.validate({"processid": "E", "image_file": "nope/e.jpg"}, source=source, line=3)
    assert spec is None and q is not None and q.kind == "image_missing"
    assert q.reason == f"image file {meta / 'nope' / 'e.jpg'} does not exist"
    alone = RowValidator()  # no --images: beside the metadata file, found or not
    spec, q = alone.validate({"processid": "F", "image_path": "sub/b.jpg"}, source=source, line=4)
    assert q is not None and q.reason == f"image file {meta / 'sub' / 'b.jpg'} does not exist"


def test_a_quarantine_report_that_cannot_be_written_is_one_error_and_leaves_nothing(tmp_path: Path) -> None:
    from biodiscover.storage.validation import QuarantinedRecord, is_quarantine_report, write_quarantine

    rec = QuarantinedRecord(file="m.csv", line=2, processid="X", kind="no_data", reason="nothing", raw="X,,")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(InputError, match="cannot write the quarantine report"):
        write_quarantine([rec], blocker / "q.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
    written = write_quarantine([rec], tmp_path / "q.csv")
    assert is_quarantine_report(written)
    assert not is_quarantine_report(tmp_path) and not is_quarantine_report(tmp_path / "missing.csv")
    assert not is_quarantine_report(blocker)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "q.csv"]  # no partial file left


# -- paths no other test walks (found from the coverage of the mutation pool, not from any mutant) ----------
def _photo_plate(tmp_path: Path) -> tuple[Path, Path]:
    import shutil

    images = tmp_path / "photos"
    images.mkdir()
    for pid in ("P1", "P2", "P3"):
        shutil.copy(FIX / "images" / "BROKEN001-24.jpg", images / f"{pid}.jpg")
    good = "ACGT" * 60
    table = tmp_path / "plate.csv"
    table.write_text(f"processid,dna_barcode\nP1,ACGTACGT\nP2,{good}\nP3,{good}\n")
    return table, images


def test_a_bad_photo_on_a_record_set_aside_anyway_is_named_with_it_and_never_counted_twice(tmp_path: Path) -> None:
    table, images = _photo_plate(tmp_path)
    read = read_collection(table, images=images)
    assert [s.processid for s in read.specimens] == ["P2", "P3"]
    assert all(s.image_path is None and s.dna_barcode for s in read.specimens)
    whole, *photos = read.quarantine
    assert (whole.processid, whole.kind, whole.photo_only) == ("P1", "short_barcode", False)
    assert "shorter than" in whole.reason and "P1.jpg is not a readable image" in whole.reason
    assert [(p.processid, p.kind, p.photo_only) for p in photos] == [("P2", "image_unreadable", True),
                                                                       ("P3", "image_unreadable", True)]
    summary = read.summary.as_dict()
    assert (summary["rows"], summary["ok"], summary["quarantined"], summary["photos_set_aside"]) == (3, 2, 1, 2)
    assert summary["problems"] == {"short_barcode": 1, "image_unreadable": 3}


def test_with_require_images_a_bad_photo_sets_its_record_aside_whole(tmp_path: Path) -> None:
    table, images = _photo_plate(tmp_path)
    read = read_collection(table, images=images, require_images=True)
    assert read.specimens == [] and read.summary.photos_set_aside == 0
    assert [(q.processid, q.kind, q.photo_only) for q in read.quarantine] == [
        ("P1", "short_barcode", False), ("P2", "image_unreadable", False), ("P3", "image_unreadable", False)]


def test_a_quarantine_report_that_cannot_be_renamed_into_place_is_one_error_and_leaves_nothing(
        tmp_path: Path, monkeypatch) -> None:
    import errno
    import os

    from biodiscover.storage.validation import QuarantinedRecord, write_quarantine

    def disk_full(src: str, dst: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    rec = QuarantinedRecord(file="plate.csv", line=2, processid="P1", kind="short_barcode", reason="short")
    with pytest.raises(InputError, match=r"q\.csv: cannot write the quarantine report \(No space left on device\)$"):
        write_quarantine([rec], tmp_path / "q.csv")
    assert list(tmp_path.iterdir()) == []  # no half-written .partial file left beside it

    def odd_failure(src: str, dst: object) -> None:
        raise OSError("rename refused")  # no strerror: the exception's own text is shown

    monkeypatch.setattr(os, "replace", odd_failure)
    with pytest.raises(InputError, match=r"cannot write the quarantine report \(rename refused\)$"):
        write_quarantine([rec], tmp_path / "q.csv")


def test_header_names_in_any_case_and_a_corrupt_gzip_is_refused_as_binary(tmp_path: Path) -> None:
    from biodiscover.storage.collections import sniff_format

    shouting = tmp_path / "plate.csv"
    shouting.write_text("ProcessID,DNA_Barcode,Country\nC1," + "ACGT" * 60 + ",Peru\n")
    (spec,) = read_collection(shouting).specimens
    assert (spec.processid, spec.country, len(spec.dna_barcode or "")) == ("C1", "Peru", 240)
    broken = tmp_path / "plate2.csv.gz"  # gzip magic, then not a gzip stream
    broken.write_bytes(b"\x1f\x8b" + b"processid,dna_barcode\nZ1,ACGT\n")
    for read in (sniff_format, read_collection):  # judged on its raw bytes when the stream cannot be opened
        with pytest.raises(InputError, match=r"plate2\.csv\.gz: binary content, not a CSV/TSV/FASTA text file$"):
            read(broken)


def test_a_header_line_that_is_not_utf8_is_refused_naming_line_1(tmp_path: Path) -> None:
    src = tmp_path / "plate.csv"
    src.write_bytes(b"processid,dna_\xff\xfebarcode\nA-24," + b"ACGT" * 60 + b"\n")
    with pytest.raises(InputError) as err:
        read_collection(src, check_images=False)
    assert str(err.value) == f"{src}: line 1 (the header): line is not valid UTF-8 (byte b'\\xff' at column 15)"


def test_write_quarantine_replaces_only_its_own_report_unless_forced(tmp_path: Path) -> None:
    """``write_quarantine`` is called from the API as well as after the CLI's own check: it must itself refuse
    a user's file of that name (left byte for byte), replace a report biodiscover wrote, and a user's file
    only with ``force``."""
    from biodiscover.storage.validation import QuarantinedRecord, is_quarantine_report, write_quarantine

    rec = QuarantinedRecord(file="plate.csv", line=2, processid="P1", kind="short_barcode", reason="short")
    user = tmp_path / "q.csv"
    user.write_bytes(b"my own spreadsheet\n")
    with pytest.raises(InputError, match=r"q\.csv: already exists and was not written by biodiscover; use --force"):
        write_quarantine([rec], user)
    assert user.read_bytes() == b"my own spreadsheet\n"
    own = write_quarantine([rec], tmp_path / "own.csv")
    assert write_quarantine([rec, rec], own) == own and len(own.read_text().splitlines()) == 3
    assert write_quarantine([rec], user, force=True) == user and is_quarantine_report(user)


def test_only_an_empty_line_is_skipped_a_line_of_one_cell_or_one_comma_is_set_aside(tmp_path: Path) -> None:
    """Every physical line is a record, set aside, or blank (empty or only white space): a line with one cell
    and no delimiter, or one comma, is a broken record (reported), never skipped as if it were blank."""
    seq = "ACGT" * 60
    path = tmp_path / "plate.csv"
    path.write_text(f"processid,dna_barcode\nA1,{seq}\nLONELY\n,\n\n   \nA2,{seq}\n")
    got = read_collection(path)
    assert [s.processid for s in got.specimens] == ["A1", "A2"]
    assert [(q.line, q.kind, q.reason) for q in got.quarantine] == [
        (3, "malformed_row", "row has 1 fields, the header has 2"), (4, "empty_processid", "processid is empty")]


def test_a_validator_opens_each_photo_unless_told_not_to(tmp_path: Path) -> None:
    """By default the row validator decodes every photo it finds, so a damaged one sets its record aside
    (``image_unreadable``, the record kept without it); ``check_images=False`` only checks the file is there."""
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    row = {"processid": "A", "dna_barcode": "ACGT" * 60, "image_path": "bad.jpg"}
    source = str(tmp_path / "plate.csv")
    spec, q = RowValidator().validate(row, source=source, line=2)
    assert q is not None and q.kind == "image_unreadable" and spec is not None and spec.image_path is None
    spec, q = RowValidator(check_images=False).validate(row, source=source, line=2)
    assert q is None and spec is not None and spec.image_path == tmp_path / "bad.jpg"


@pytest.mark.parametrize("header", ["processid,dna_barcode,dna_barcode", "processid,dna_barcode,Sequence",
                                    "processid,process_id,dna_barcode"])
def test_a_column_named_twice_is_refused_not_read_from_one_of_the_two(header: str, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Two header cells for one column (the same name twice, or a name and its alias) left the reader taking the
    last one silently: a specimen was named from one of two barcodes, or filed under one of two ids, and nobody
    was told which. The file is refused in one line that names both columns."""
    path = tmp_path / "plate.csv"
    path.write_text(f"{header}\n" + "".join(f"D{i},{'ACGT' * 60},{'TTGCA' * 50}\n" for i in range(3)))
    with pytest.raises(InputError, match=r"plate\.csv: the header \(line 1\) names column '(processid|dna_barcode)' "
                                         r"twice \(columns [0-9] and [0-9]\); keep one"):
        read_collection(path)
    if header.endswith("dna_barcode,dna_barcode"):  # a reference table: pandas kept the first, silently
        twice = r"plate\.csv: the header \(line 1\) names column 'dna_barcode' twice"
        with pytest.raises(InputError, match=twice):
            load_metadata(path)
    code, out, err = _main(capsys, "validate", str(path))
    assert code == 2 and out == "" and not (tmp_path / "plate.quarantine.csv").exists()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: the header (line 1) names column"), err


def test_two_inputs_of_one_name_keep_two_quarantine_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            monkeypatch) -> None:
    """``plate.csv.gz`` and ``plate.fasta.gz`` in one folder both defaulted to ``plate.quarantine.csv``, and the
    second run replaced the first's report without a word: the record of what the first set aside was gone. The
    first keeps the short name; the second's report is named after its whole file; each re-run replaces only its
    own; ``ingest`` (the same default) follows; a third input that would land on both is refused, naming the report's
    input."""
    from biodiscover.storage.validation import quarantine_path_for

    seq = "ACGT" * 60
    with gzip.open(tmp_path / "plate.csv.gz", "wt") as fh:
        fh.write(f"processid,dna_barcode\nC1,{seq}\nC2,ACGT\n")
    with gzip.open(tmp_path / "plate.fasta.gz", "wt") as fh:
        fh.write(f">F1\n{seq}\n>F2\nACGTX{seq}\n")
    short, whole = tmp_path / "plate.quarantine.csv", tmp_path / "plate.fasta.gz.quarantine.csv"

    code, out, err = _main(capsys, "validate", str(tmp_path / "plate.csv.gz"))
    assert code == 1 and f"quarantine written to {short}" in out, err
    first = short.read_bytes()
    assert b"C2" in first
    code, out, err = _main(capsys, "validate", str(tmp_path / "plate.fasta.gz"))
    assert code == 1 and f"quarantine written to {whole}" in out, (out, err)
    assert short.read_bytes() == first and b"F2" in whole.read_bytes() and b"C2" not in whole.read_bytes()
    for again, report in (("plate.csv.gz", short), ("plate.fasta.gz", whole)):  # a re-run finds its own report
        code, out, _ = _main(capsys, "validate", str(tmp_path / again), "--json")
        assert code == 1 and json.loads(out)["quarantine_file"] == str(report)
    assert short.read_bytes() == first

    code, out, err = _main(capsys, "ingest", "--input", str(tmp_path / "plate.fasta.gz"),
                           "--db", str(tmp_path / "lab.sqlite"), "--json")
    assert code == 0 and json.loads(out)["quarantine_file"] == str(whole), err
    assert short.read_bytes() == first

    (tmp_path / "plate.tsv.quarantine.csv").write_bytes(first)  # plate.csv.gz's report under both of its names
    (tmp_path / "plate.tsv").write_text(f"processid\tdna_barcode\nT1\t{seq}\n")
    with pytest.raises(InputError, match=r"plate\.tsv\.quarantine\.csv: holds the quarantine report of "
                                         r".*plate\.csv\.gz, not of .*plate\.tsv; move or rename that report"):
        quarantine_path_for(tmp_path / "plate.tsv")
    monkeypatch.chdir(tmp_path)  # a relative input is the same input
    assert quarantine_path_for(Path("plate.csv.gz")) == short


def test_one_input_named_through_dotdot_or_a_linked_folder_keeps_one_report_naming_it_normalised(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``sub/../plate.csv`` (or ``plate.csv`` through a linked folder) was taken for another input of the same name:
    a second report ``plate.csv.quarantine.csv`` beside the first, its ``file`` column and every warning line
    naming ``.../sub/../plate.csv`` (e34 attack Q1). The same file is one input however it is spelled: one report,
    replaced by each read, and every location printed resolved."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path, target_is_directory=True)
    plate = tmp_path / "plate.csv"
    plate.write_text(f"processid,dna_barcode\nC1,{'ACGT' * 60}\nC2,ACGT\n")
    report = tmp_path / "plate.quarantine.csv"
    for spelling in (plate, tmp_path / "sub" / ".." / "plate.csv", tmp_path / "alias" / "plate.csv"):
        code, out, err = _main(capsys, "validate", str(spelling))
        assert code == 1 and f"quarantine written to {report}\n" in out, (spelling, out, err)
        assert f"  {plate}:3 (processid 'C2'): barcode is 4 nt" in out, out
        assert ".." not in out.split("\n", 1)[1] and "alias" not in out.split("\n", 1)[1], out
        with report.open(newline="") as fh:
            assert [row["file"] for row in csv.DictReader(fh)] == [str(plate)]
    assert sorted(p.name for p in tmp_path.glob("*.quarantine.csv")) == ["plate.quarantine.csv"]


def test_a_blank_header_line_and_a_semicolon_separated_file_say_what_is_wrong(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file of blank lines was refused with "(found )", and a ``;``-separated export (as many European
    spreadsheets save CSV) quoted its header without saying why it is one cell: each refusal now names the
    cause and the fix, in ``validate`` and in ``build-reference`` (the reference reader) alike."""
    blank = tmp_path / "blank.csv"
    blank.write_text("\n\n\n")
    code, out, err = _main(capsys, "validate", str(blank))
    assert code == 2 and out == ""
    assert err.strip() == (f"error: {blank}: not a specimen table: the file has no header line (line 1 is blank; "
                           "the column names, processid among them, go on line 1)")

    hint = "are the columns separated by ';'? save the file comma- or tab-separated"
    semi = tmp_path / "semicolon.csv"
    semi.write_text(f"processid;order;dna_barcode\nP1;Diptera;{'ACGT' * 60}\n")
    code, out, err = _main(capsys, "validate", str(semi))
    assert code == 2 and err.strip() == (f"error: {semi}: not a specimen table: the header (line 1) has no "
                                         f"'processid' column (found 'processid;order;dna_barcode'): {hint}")
    code, out, err = _main(capsys, "build-reference", "--data", str(semi), "--out", str(tmp_path / "model"), "-q")
    assert code == 2 and err.strip().endswith(f"line 1 has no 'processid' column "
                                              f"(found 'processid;order;dna_barcode'): {hint}"), err
    piped = tmp_path / "piped.csv"
    piped.write_text(f"Process_ID|dna_barcode\nP1|{'ACGT' * 60}\n")  # an alias of processid counts too
    with pytest.raises(InputError, match=r"\(found 'Process_ID\|dna_barcode'\): are the columns separated by '\|'"):
        read_collection(piped)
    other = tmp_path / "other.csv"  # no processid under any separator: no guess
    other.write_text("a;b\n1;2\n")
    with pytest.raises(InputError, match=r"\(found 'a;b'\)$"):
        read_collection(other)


def test_a_message_quotes_at_most_forty_characters_of_a_value(tmp_path: Path) -> None:
    """e31 review F14: ``validate`` of a bare sequence (no '>' line) printed the whole 600-nt read as the header it
    found, and a 500-character processid was printed whole: a message quotes 40 characters and says how long the
    value is; the file and line point at the rest."""
    from fixtures.inprocess import run_cli

    read = ("AACTTTATATTTTATTTTTGG" * 30)[:600]
    bare = tmp_path / "noheader.fasta"
    bare.write_text(read + "\n")
    out = run_cli("validate", str(bare))
    assert out.returncode == 2
    assert out.stderr.strip() == (f"error: {bare}: not a specimen table: the header (line 1) has no 'processid' "
                                  f"column (found {read[:40]!r}… (600 characters))"), out.stderr
    table = tmp_path / "long.csv"
    pid = "P" * 500
    table.write_text(f"processid,dna_barcode\n{pid},ACGT\n")
    out = run_cli("validate", str(table))
    line = next(x for x in out.stdout.splitlines() + out.stderr.splitlines() if "long.csv:2" in x)
    assert f"long.csv:2 (processid {'P' * 40!r}… (500 characters)): " in line and 'P' * 41 not in line, line
