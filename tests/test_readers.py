"""Readers: BIOSCAN-5M metadata with the loader's semantics, dataset roots, collections, FASTA."""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from biodiscover.storage.bioscan import (
    BioscanDataset,
    find_metadata,
    iter_metadata,
    load_metadata,
    load_specimens,
    reduce_repeated_barcodes,
)
from biodiscover.storage.collections import iter_collection, read_collection, sniff_format
from biodiscover.storage.errors import InputError
from biodiscover.storage.fasta import iter_fasta_lines, specimen_header, write_fasta
from biodiscover.storage.records import BIOSCAN_COLUMNS, COLUMN_DTYPES, SPLITS, Specimen

FIX = Path(__file__).resolve().parent / "fixtures" / "readers"
SAMPLE = FIX / "bioscan5m_sample.csv"


@pytest.fixture(scope="module")
def raw_sample() -> pd.DataFrame:
    """The sample file as plain strings, to compare the typed reader against."""
    return pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)


# -- BIOSCAN-5M metadata ----------------------------------------------------------------
def test_sample_has_official_columns_and_loader_dtypes() -> None:
    df = load_metadata(SAMPLE)
    assert list(df.columns[:23]) == list(BIOSCAN_COLUMNS)
    for col, dtype in COLUMN_DTYPES.items():
        got = df[col].dtype
        if dtype == "category":
            assert isinstance(got, pd.CategoricalDtype), col
        elif dtype == "float":
            assert got == "float64", col
        elif dtype == "str":
            assert pd.api.types.is_string_dtype(got), col
        else:
            assert str(got) == dtype, col
    assert df["index_bioscan_1M_insect"].iloc[0] == 1234 and df["index_bioscan_1M_insect"].iloc[3] == 98765
    assert df["index_bioscan_1M_insect"].isna().sum() == len(df) - 2
    assert df["image_measurement_value"].iloc[0] == pytest.approx(15324.0)


def test_barcodes_truncated_to_660_like_the_loader(raw_sample: pd.DataFrame) -> None:
    raw_long = raw_sample.loc[raw_sample["dna_barcode"].str.len() > 660, "dna_barcode"]
    assert len(raw_long) >= 1
    df = load_metadata(SAMPLE)
    assert df["dna_barcode"].str.len().max() == 660
    for idx, raw in raw_long.items():
        assert df.loc[idx, "dna_barcode"] == raw[:660]
    untouched = load_metadata(SAMPLE, max_nucleotides=None)
    assert untouched["dna_barcode"].str.len().max() == raw_sample["dna_barcode"].str.len().max() > 660


def test_index_columns_are_codes_over_the_whole_file(raw_sample: pd.DataFrame) -> None:
    test_only = load_metadata(SAMPLE, split="test")
    assert set(test_only["split"]) == {"test"}
    for rank in ("order", "family", "genus", "species", "dna_bin"):
        labels = sorted(set(raw_sample[rank]) - {""})
        assert list(test_only[rank].cat.categories) == labels
        for value, code in zip(test_only[rank], test_only[f"{rank}_index"]):
            assert code == (-1 if pd.isna(value) else labels.index(value))
    pretrain = load_metadata(SAMPLE, split="pretrain")
    assert (pretrain["species_index"] == -1).all()  # labels removed below family


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        ("seen", {"train", "val", "test"}),
        ("unseen", {"key_unseen", "val_unseen", "test_unseen"}),
        ("train+other_heldout", {"train", "other_heldout"}),
        ("all", set(SPLITS)),
        (None, set(SPLITS)),
    ],
)
def test_split_and_metasplit_selection(selection: str | None, expected: set[str], raw_sample: pd.DataFrame) -> None:
    df = load_metadata(SAMPLE, split=selection)
    assert set(df["split"]) == expected
    assert len(df) == raw_sample["split"].isin(expected).sum()


def test_unknown_split_is_a_clear_error() -> None:
    with pytest.raises(InputError, match="unknown split 'tarin'"):
        load_metadata(SAMPLE, split="tarin")


def test_iter_metadata_reads_in_bounded_chunks_with_file_row_numbers() -> None:
    chunks = list(iter_metadata(SAMPLE, chunksize=4))
    assert [len(c) for c in chunks] == [4, 4, 4, 4, 4, 4, 1]
    whole = pd.concat(chunks)
    assert list(whole.index) == list(range(25))
    assert whole["processid"].tolist() == load_metadata(SAMPLE)["processid"].tolist()
    seen = pd.concat(iter_metadata(SAMPLE, chunksize=4, splits="seen"))
    assert set(seen["split"]) == {"train", "val", "test"}
    full = load_metadata(SAMPLE)
    cats = {c: list(full[c].cat.categories) for c in ("order", "family", "genus", "species")}
    fixed = pd.concat(iter_metadata(SAMPLE, chunksize=4, categories=cats))
    assert (fixed["species"].cat.codes.to_numpy() == full["species_index"].to_numpy()).all()


def test_tsv_gzip_and_csv_read_identically(tmp_path: Path) -> None:
    tsv = tmp_path / "meta.tsv"
    pd.read_csv(SAMPLE, dtype=str, keep_default_na=False).to_csv(tsv, sep="\t", index=False)
    gz = tmp_path / "meta.csv.gz"
    gz.write_bytes(gzip.compress(SAMPLE.read_bytes()))
    tsv_as_csv = tmp_path / "really_tabs.csv"
    shutil.copy(tsv, tsv_as_csv)
    assert sniff_format(tsv) == sniff_format(tsv_as_csv) == "tsv"
    assert sniff_format(gz) == "csv"
    base = load_metadata(SAMPLE)
    for other in (tsv, gz, tsv_as_csv):
        pd.testing.assert_frame_equal(load_metadata(other), base)


def test_reduce_repeated_barcodes_matches_loader_rule(tmp_path: Path, raw_sample: pd.DataFrame) -> None:
    # Duplicate barcodes, some differing only by trailing Ns, across splits.
    dup = raw_sample.copy()
    dup.loc[1, "dna_barcode"] = dup.loc[0, "dna_barcode"] + "NNN"
    dup.loc[5, "dna_barcode"] = dup.loc[0, "dna_barcode"]
    dup.loc[9, "dna_barcode"] = dup.loc[7, "dna_barcode"]
    path = tmp_path / "dup.csv"
    dup.to_csv(path, index=False)
    got = load_metadata(path, reduce_repeated_barcodes=True, chunksize=3)
    reference = pd.read_csv(path, dtype=COLUMN_DTYPES)
    reference["dna_barcode"] = reference["dna_barcode"].str[:660]
    expected = reduce_repeated_barcodes(reference)
    unique = dup["dna_barcode"].str[:660].str.rstrip("N").nunique()
    assert len(got) == unique <= len(dup) - 3
    assert list(got.index) == list(expected.index)
    seen_only = load_metadata(path, reduce_repeated_barcodes=True, split="seen", chunksize=3)
    assert list(seen_only.index) == list(expected[expected["split"].isin(["train", "val", "test"])].index)


def test_image_path_column_follows_chunk_rules() -> None:
    df = load_metadata(SAMPLE)
    for pid, split, rel in zip(df["processid"], df["split"], df["image_path"]):
        md5 = hashlib.md5(pid.encode()).hexdigest()
        width = {"pretrain": 2, "train": 1, "other_heldout": 1}.get(split, 0)
        expected = f"{split}/{md5[:width]}/{pid}.jpg" if width else f"{split}/{pid}.jpg"
        assert rel == expected


def _make_root(tmp_path: Path, official: bool, with_images: list[int]) -> tuple[Path, pd.DataFrame]:
    raw = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    base = tmp_path / ("bioscan5m" if official else "")
    meta = base / "metadata" / ("csv/BIOSCAN_5M_Insect_Dataset_metadata.csv" if official
                                else "BIOSCAN_5M_Insect_Dataset_metadata.csv")
    meta.parent.mkdir(parents=True)
    shutil.copy(SAMPLE, meta)
    for i in with_images:
        row = raw.iloc[i]
        parts = [row["split"]] + ([row["chunk"]] if row["chunk"] else [])
        img = base / "images" / "cropped_256" / Path(*parts) / f"{row['processid']}.jpg"
        img.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 6), (i * 9 % 255, 80, 120)).save(img)
    return tmp_path, raw


@pytest.mark.parametrize("official", [False, True], ids=["our-layout", "bioscan5m-prefix"])
def test_dataset_root_finds_metadata_and_images(tmp_path: Path, official: bool) -> None:
    with_images = [0, 3, 9, 21]  # pretrain, train, test, other_heldout rows
    root, raw = _make_root(tmp_path, official, with_images)
    ds = BioscanDataset(root)
    assert ds.metadata_path == find_metadata(root)
    assert ds.image_dir is not None and ds.image_dir.name == "cropped_256"
    specimens = load_specimens(root)  # the one loader reads this layout
    assert len(specimens) == len(raw)
    with_img = {s.processid for s in specimens if s.image_path is not None}
    assert with_img == {raw.iloc[i]["processid"] for i in with_images}
    for s in specimens:
        if s.image_path is not None:
            assert s.image_path.is_file()
            assert s.image_path.parent.name == (s.chunk or s.split)
    seen = load_specimens(root, "seen")
    assert {s.split for s in seen} == {"train", "val", "test"}
    # the directory itself is accepted by read_collection
    assert len(read_collection(root).specimens) == len(raw)


def test_load_specimens_is_the_validating_reader_with_images_and_quarantine(tmp_path: Path) -> None:
    """The one loader (build-reference, train, demo, evaluate): cleaned barcodes, images, refused rows kept."""
    root, raw = _make_root(tmp_path, official=False, with_images=[3, 9])
    meta = find_metadata(root)
    first = raw.iloc[3]
    messy = raw.iloc[[3]].assign(processid="MESSY001-24", dna_barcode="nn" + first["dna_barcode"][:20].lower() + "-" +
                                 first["dna_barcode"][20:] + "NNN")
    bad = raw.iloc[[3]].assign(processid="BAD001-24", dna_barcode="ACGTXZ!!ACGT")
    pd.concat([raw, messy, bad]).to_csv(meta, index=False)
    set_aside: list = []
    got = load_specimens(root, "train", quarantine=set_aside)
    by_pid = {s.processid: s for s in got}
    assert set(by_pid) == set(raw.loc[raw["split"] == "train", "processid"]) | {"MESSY001-24"}
    assert by_pid["MESSY001-24"].dna_barcode == first["dna_barcode"].upper().strip("N")[:660].rstrip("N")
    assert by_pid[first["processid"]].image_path is not None and by_pid[first["processid"]].image_path.is_file()
    assert [q.processid for q in set_aside] == ["BAD001-24"]
    # the metadata file itself reads the same specimens; every split when none is named
    assert [s.processid for s in load_specimens(meta, "train")] == [s.processid for s in got]
    assert len(load_specimens(root)) == len(raw) + 1


def test_the_one_loader_checks_required_columns_and_splits_before_reading(tmp_path: Path, caplog) -> None:
    """What the reference and evaluate wrappers used to add is the loader's: a table without a column the
    caller needs, or an unknown split name, fails before a row is read; rows set aside are a warning only
    when the caller does not take them to report."""
    root, raw = _make_root(tmp_path, official=False, with_images=[])
    meta = find_metadata(root)
    raw.drop(columns=["split"]).to_csv(meta, index=False)
    assert len(load_specimens(root)) == len(raw)  # unsplit rows are valid specimens …
    with pytest.raises(InputError, match=r"has no 'split' column \(line 1\); needed here: split, dna_barcode"):
        load_specimens(root, require=("split", "dna_barcode"))  # … but not a reference
    raw.to_csv(meta, index=False)
    with pytest.raises(InputError, match="trian"):
        load_specimens(root, "trian")
    bad = raw.iloc[[0]].assign(processid="BAD001-24", dna_barcode="ACGTXZ!!ACGT")
    pd.concat([raw, bad]).to_csv(meta, index=False)
    with caplog.at_level("INFO", logger="biodiscover.storage.bioscan"):
        taken: list = []
        load_specimens(root, quarantine=taken)
        assert [q.processid for q in taken] == ["BAD001-24"]
        assert not [r for r in caplog.records if r.levelname == "WARNING"]
        load_specimens(root)
        assert [r.levelname for r in caplog.records if "set aside" in r.getMessage()] == ["INFO", "WARNING"]


def test_there_is_one_dataset_loader() -> None:
    """No product module wraps or re-implements the loader (three did, cleaning barcodes differently)."""
    repo = Path(__file__).resolve().parent.parent
    defining = sorted(str(p.relative_to(repo)) for area in ("storage", "discovery", "encoders", "workflows", "tui",
                                                          "cli")
                      for p in (repo / area).rglob("*.py") if re.search(r"^def (load|iter)_specimens\(",
                                                                          p.read_text(), re.M))
    assert defining == ["storage/bioscan.py"]


def test_dataset_root_without_metadata_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no metadata found"):
        BioscanDataset(tmp_path)


# -- new collections ----------------------------------------------------------------------
def test_collection_with_a_subset_of_columns_and_an_image_folder() -> None:
    result = read_collection(FIX / "collection_subset.csv", images=FIX / "images")
    by_pid = {s.processid: s for s in result.specimens}
    assert set(by_pid) == {"COLL001-24", "COLL002-24", "COLL003-24", "COLL004-24", "IMGONLY001-24"}
    assert by_pid["COLL001-24"].species == "Xylorycta assimilis"
    assert by_pid["COLL002-24"].species is None
    assert by_pid["COLL002-24"].coord_lat == pytest.approx(10.5)
    assert by_pid["COLL004-24"].dna_barcode == by_pid["COLL004-24"].dna_barcode.upper()
    assert by_pid["COLL001-24"].image_path is not None and by_pid["COLL001-24"].image_path.name == "COLL001-24.jpg"
    assert by_pid["COLL003-24"].image_path is None
    assert by_pid["IMGONLY001-24"].dna_barcode is None and by_pid["IMGONLY001-24"].image_path is not None
    # the broken image in the folder is quarantined, not attached
    assert [q.processid for q in result.quarantine] == ["BROKEN001-24"]
    assert result.quarantine[0].kind == "image_unreadable"


def test_tsv_collection() -> None:
    result = read_collection(FIX / "collection.tsv")
    assert result.format == "tsv"
    assert [s.processid for s in result.specimens] == ["TSV001-24", "TSV002-24", "TSV003-24"]
    assert result.specimens[1].family is None and result.specimens[1].country == "Costa Rica"
    assert result.specimens[0].line == 2 and result.specimens[2].line == 4


def test_fasta_collection_with_bold_headers() -> None:
    result = read_collection(FIX / "collection.fasta")
    assert result.format == "fasta" and result.ok
    by_pid = {s.processid: s for s in result.specimens}
    assert by_pid["FA001-24"].species == "Tuta absoluta" and by_pid["FA001-24"].genus == "Tuta"
    # a placeholder name is kept as the taxon, never split into invented ranks
    assert by_pid["FA002-24"].taxon == "Megaselia sp. BIOUG12345-A01" and by_pid["FA002-24"].species is None
    assert by_pid["FA003-24"].taxon == "Cecidomyiidae"
    assert by_pid["FA004-24"].taxon is None
    text = (FIX / "collection.fasta").read_text(encoding="utf-8").splitlines()
    raw = list(iter_fasta_lines(enumerate(text, start=1)))
    assert [r.line for r in raw] == [s.line for s in result.specimens]
    for r in raw:
        assert by_pid[r.processid].dna_barcode == r.sequence.upper()
        assert 600 <= len(r.sequence) <= 660


def test_a_two_field_fasta_header_is_processid_and_taxon() -> None:
    """``>PID|Genus species``, the shortest header that names a taxon (what many pipelines write), is read like
    BOLD's longer ``>PID|taxon|marker|BIN``; a header of one field names nothing and an empty taxon field neither."""
    text = [">TW001-24|Tuta absoluta", "ACGT" * 60, ">TW002-24|Cecidomyiidae", "ACGA" * 60, ">TW003-24", "ACGG" * 60,
            ">TW004-24||COI-5P", "ACGC" * 60]
    rows = [r.as_row() for r in iter_fasta_lines(enumerate(text, start=1))]
    assert rows[0] == {"processid": "TW001-24", "dna_barcode": "ACGT" * 60, "taxon": "Tuta absoluta",
                       "genus": "Tuta", "species": "Tuta absoluta"}
    assert rows[1] == {"processid": "TW002-24", "dna_barcode": "ACGA" * 60, "taxon": "Cecidomyiidae"}
    assert rows[2] == {"processid": "TW003-24", "dna_barcode": "ACGG" * 60}
    assert rows[3] == {"processid": "TW004-24", "dna_barcode": "ACGC" * 60}


def test_fasta_writer_round_trips(tmp_path: Path) -> None:
    specimens = read_collection(FIX / "collection.fasta").specimens
    specimens.append(Specimen(processid="NOSEQ-1", image_path=FIX / "images" / "COLL001-24.jpg"))
    out = tmp_path / "out.fasta"
    assert write_fasta(specimens, out, width=60) == 4  # the image-only record is skipped
    back = read_collection(out).specimens
    assert [(s.processid, s.dna_barcode) for s in back] == [(s.processid, s.dna_barcode) for s in specimens[:4]]
    assert specimen_header(specimens[0]) == "FA001-24|Tuta absoluta|COI-5P"
    assert max(len(line) for line in out.read_text().splitlines()) == 60


def test_fasta_writer_closes_its_file_when_the_records_fail_midway(tmp_path: Path) -> None:
    """A reader that fails part-way (a damaged input) must not leave the FASTA it was feeding open and
    unflushed while the error is handled: the records written before the failure are on disk at once."""
    def records():
        yield ("KEPT-1|Megaselia sp1", "ACGT")
        raise InputError("input.csv: line 3: unreadable")

    out = tmp_path / "partial.fasta"
    with pytest.raises(InputError) as caught:  # ``caught`` keeps the writer's frame (and any open file) alive
        write_fasta(records(), out)
    assert out.read_text() == ">KEPT-1|Megaselia sp1\nACGT\n", caught.value


def test_iter_collection_streams_and_reports_quarantine(tmp_path: Path) -> None:
    got = []
    reader = iter_collection(FIX / "bad_rows.csv", on_quarantine=got.append)
    first = next(iter(reader))
    assert first.processid == "GOOD001-24"
    rest = list(reader)
    assert [s.processid for s in rest] == ["IMGBAD001-24", "GOOD002-24"]  # the first kept without its bad photo
    assert reader.quarantine == []  # streamed to the callback, not kept
    assert len(got) == 9 and reader.summary.quarantined == 8 and reader.summary.photos_set_aside == 1


# -- real data (skipped without ../shared) -------------------------------------------------
REAL_SPLIT_COUNTS = {
    "train": 21_332,
    "val": 2_759,
    "test": 7_197,
    "key_unseen": 12_321,
    "val_unseen": 3_081,
    "test_unseen": 1_676,
    "other_heldout": 25_134,
    "pretrain": 24_936,
}


def test_real_dev_file_rows_and_split_counts(real_dev_csv: Path) -> None:
    df = load_metadata(real_dev_csv, columns=["processid", "species", "genus", "dna_barcode", "split", "chunk"])
    assert len(df) == 98_436
    assert df["split"].value_counts().to_dict() == REAL_SPLIT_COUNTS
    assert df["dna_barcode"].str.len().max() == 660
    assert df.loc[df["split"] == "pretrain", "species_index"].eq(-1).all()
    unseen = load_metadata(real_dev_csv, split="unseen", columns=["processid", "species", "split"])
    assert len(unseen) == 12_321 + 3_081 + 1_676
    assert unseen["species"].nunique() == 139
    # stable codes: the same species has the same index whichever split is loaded
    full = df.drop_duplicates("species").set_index("species")["species_index"]
    for name, code in unseen.drop_duplicates("species").set_index("species")["species_index"].items():
        assert full[name] == code


def test_real_images_are_readable(real_images_dir: Path) -> None:
    result = read_collection(real_images_dir)
    assert result.ok
    assert len(result.specimens) == 20
    sizes = set()
    for s in result.specimens:
        assert s.image_path is not None
        with Image.open(s.image_path) as img:
            sizes.add(img.size)
    assert (2880, 2160) in sizes and (341, 256) in sizes


def test_gzipped_fasta_reads_like_the_plain_file(tmp_path: Path) -> None:
    gz = tmp_path / "collection.fasta.gz"
    gz.write_bytes(gzip.compress((FIX / "collection.fasta").read_bytes()))
    assert sniff_format(gz) == "fasta"
    plain = read_collection(FIX / "collection.fasta").specimens
    packed = read_collection(gz).specimens
    assert [(s.processid, s.dna_barcode, s.taxon) for s in packed] \
        == [(s.processid, s.dna_barcode, s.taxon) for s in plain]


def test_dataset_root_quarantines_missing_and_broken_images_when_asked(tmp_path: Path) -> None:
    root, raw = _make_root(tmp_path, official=False, with_images=[3, 4, 5])
    broken = BioscanDataset(root).image_path(raw.iloc[4]["processid"], raw.iloc[4]["split"], raw.iloc[4]["chunk"])
    assert broken is not None
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    reader = BioscanDataset(root).reader("train", check_images=True, require_images=True)
    ok = [s.processid for s in reader]
    assert ok == [raw.iloc[3]["processid"], raw.iloc[5]["processid"]]
    kinds = {q.processid: q.kind for q in reader.quarantine}
    assert kinds[raw.iloc[4]["processid"]] == "image_unreadable"
    n_train = int((raw["split"] == "train").sum())
    assert list(kinds.values()).count("image_missing") == n_train - 3


def test_a_byte_order_mark_a_bad_header_byte_and_a_folder_for_a_file(tmp_path: Path) -> None:
    """Spreadsheet exports start with a byte-order mark: the header still names processid. A header line that
    is not UTF-8 is one error naming line 1; a folder given with --images is named as a folder."""
    bom = tmp_path / "excel.csv"
    bom.write_bytes(b"\xef\xbb\xbfprocessid,dna_barcode,country\r\nB1," + b"ACGT" * 60 + b",Canada\r\n")
    assert sniff_format(bom) == "csv"
    result = read_collection(bom)
    assert [(s.processid, s.country, s.line) for s in result.specimens] == [("B1", "Canada", 2)]
    bom_tsv = tmp_path / "excel.tsv"
    bom_tsv.write_bytes(b"\xef\xbb\xbfprocessid\tdna_barcode\nT1\t" + b"ACGT" * 60 + b"\n")
    assert sniff_format(bom_tsv) == "tsv" and [s.processid for s in read_collection(bom_tsv).specimens] == ["T1"]
    latin = tmp_path / "latin1.csv"
    latin.write_bytes(b"processid,dna_barcode,pa\xefs\nL1," + b"ACGT" * 60 + b",x\n")
    with pytest.raises(InputError, match=r"latin1.csv: line 1 \(the header\): "):
        read_collection(latin)
    folder = tmp_path / "plates"
    folder.mkdir()
    shutil.copy(bom, folder / "excel.csv")
    with pytest.raises(InputError, match="is a directory; give the metadata file and --images DIR"):
        read_collection(folder, images=tmp_path)


def test_fasta_comments_before_the_first_record_are_skipped_and_sequence_before_a_header_is_refused(
        tmp_path: Path) -> None:
    def read_fasta(path: Path) -> list:
        return list(iter_fasta_lines(enumerate(path.read_text().splitlines(keepends=True), start=1)))

    ok = tmp_path / "c.fasta"
    ok.write_text("; made by hand\n\n>F1|Megaselia\nACGT\nACGT\n")
    assert [(r.header, r.sequence, r.line) for r in read_fasta(ok)] == [("F1|Megaselia", "ACGTACGT", 3)]
    bad = tmp_path / "b.fasta"
    bad.write_text("ACGT\n>F1\nACGT\n")
    with pytest.raises(ValueError, match="line 1: sequence data before the first '>' header"):
        read_fasta(bad)
    empty_head = tmp_path / "h.fasta"
    empty_head.write_text(">\nACGT\n")
    assert [(r.header, r.sequence) for r in read_fasta(empty_head)] == [("", "ACGT")]


def test_metadata_columns_asked_for_must_exist_an_empty_selection_keeps_them_and_a_bad_number_is_named(
        tmp_path: Path) -> None:
    from biodiscover.storage.layout import find_metadata

    with pytest.raises(InputError, match="columns not in the header: colour, size"):
        load_metadata(SAMPLE, columns=["processid", "colour", "size"])
    raw = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    raw[raw["split"] == "train"].to_csv(tmp_path / "train.csv", index=False)
    empty = load_metadata(tmp_path / "train.csv", split="test", columns=["processid", "split", "coord-lat"])
    assert len(empty) == 0 and {"processid", "split", "coord-lat"} <= set(empty.columns)
    bad = raw.copy()
    bad.loc[1, "coord-lat"] = "forty-five"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputError, match=r"bad\.csv: cannot read rows 2–\d+ with the BIOSCAN-5M dtypes .*"
                                         r"run `biodiscover validate"):
        load_metadata(tmp_path / "bad.csv")
    root = tmp_path / "root"
    (root / "metadata").mkdir(parents=True)
    for name in ("plate_a.csv", "plate_b.csv"):
        shutil.copy(SAMPLE, root / "metadata" / name)
    with pytest.raises(InputError, match=r"several metadata files \(plate_a\.csv, plate_b\.csv\); pass the one"):
        find_metadata(root)
    shutil.copy(SAMPLE, root / "metadata" / "BIOSCAN_metadata_v2.csv")  # one says "metadata": that one
    assert find_metadata(root) == root / "metadata" / "BIOSCAN_metadata_v2.csv"


def test_without_a_chunk_column_photos_are_found_in_bioscan5m_chunk_folders(tmp_path: Path) -> None:
    """BIOSCAN-5M keeps ``pretrain`` photos in folders named by the first two hex digits of the processid's
    md5, ``train`` and ``other_heldout`` by the first one, the other splits unchunked. A metadata file
    without the ``chunk`` column (an older or hand-made export) must still find them there; the folder
    names below are written out from that rule, not computed with the code under test."""
    raw = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False).drop(columns=["chunk"])
    (tmp_path / "metadata").mkdir()
    raw.to_csv(tmp_path / "metadata" / "BIOSCAN_5M_Insect_Dataset_metadata.csv", index=False)
    placed = {"AACTA1807-20": "pretrain/5f", "AACTA1813-20": "train/3", "ABINP065-21": "other_heldout/b",
              "AACTA5863-20": "test"}
    for pid, folder in placed.items():
        img = tmp_path / "images" / "cropped_256" / folder / f"{pid}.jpg"
        img.parent.mkdir(parents=True)
        Image.new("RGB", (8, 6), (10, 80, 120)).save(img)
    found = {s.processid: s.image_path for s in load_specimens(tmp_path) if s.image_path is not None}
    assert {pid: p.parent.relative_to(tmp_path / "images" / "cropped_256").as_posix()
            for pid, p in found.items()} == placed


def test_a_chunk_that_cannot_be_read_is_named_by_its_line_range(tmp_path: Path) -> None:
    """The message sends the user to lines of the file: data rows start on line 2, so with chunks of 3 rows
    the second chunk is lines 5–7, and a bad value on line 6 must be inside the range named."""
    raw = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    raw.loc[4, "coord-lat"] = "forty-five"  # the fifth row: line 6
    raw.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputError) as err:
        load_metadata(tmp_path / "bad.csv", chunksize=3)
    assert re.match(r".*bad\.csv: cannot read rows 5–7 with the BIOSCAN-5M dtypes \(.*\); run `biodiscover "
                    r"validate .*bad\.csv` to find the bad records$", str(err.value))


def test_a_fasta_line_that_cannot_be_used_sets_aside_its_own_record_only(tmp_path: Path) -> None:
    """A FASTA record spans its header up to the next header (or the end of the file): a line refused as
    too long (16 MiB and a byte more) on the last line of a record must set aside that record, not the
    next one or none, whether another record follows or the file ends."""
    seq, long = "ACGT" * 60, b"A" * (16 * 1024 * 1024 + 1)
    path = tmp_path / "long.fasta"
    path.write_bytes(f">F1|Tuta absoluta\n{seq}\n>F2|Tuta absoluta\n{seq}\n".encode() + long
                     + f"\n>F3|Tuta absoluta\n{seq}\n>F4|Tuta absoluta\n{seq}\n".encode() + long + b"\n")
    got = read_collection(path)
    assert [s.processid for s in got.specimens] == ["F1", "F3"]
    assert [(q.line, q.processid) for q in got.quarantine] == [(3, "F2"), (8, "F4")]
    assert all(q.reason.startswith("line is 16,777,218 bytes long, more than the 16,777,216 a record may take")
               for q in got.quarantine)


def test_reading_one_split_still_counts_other_splits_processids_and_reports_their_broken_rows(
        tmp_path: Path) -> None:
    """``BioscanDataset.reader("train")`` reads the train rows only, but a row of another split still takes its
    processid (a train row reusing it later is a duplicate, set aside), and a broken row is reported whatever
    split its cells name: a malformed line is never passed over as "not wanted here"."""
    root, raw = _make_root(tmp_path, official=False, with_images=[])
    meta = find_metadata(root)
    header = meta.read_text(encoding="utf-8").splitlines()[0].split(",")
    val = raw[raw["split"] == "val"].iloc[0]
    reused = dict(raw[raw["split"] == "train"].iloc[0], processid=val["processid"])
    broken = dict(raw[raw["split"] == "val"].iloc[1], processid="BROKEN1-26")
    with meta.open("a", encoding="utf-8") as fh:
        fh.write(",".join(reused[c] for c in header) + "\n")
        fh.write(",".join(broken[c] for c in header) + ",one cell too many\n")
    n_lines = len(raw) + 3  # the header, the sample's rows, the two added
    reader = BioscanDataset(root).reader("train")
    kept = [s.processid for s in reader]
    assert kept == raw[raw["split"] == "train"]["processid"].tolist()
    assert [(q.line, q.processid, q.kind) for q in reader.quarantine] == [
        (n_lines - 1, val["processid"], "duplicate_processid"), (n_lines, "BROKEN1-26", "malformed_row")]


def test_a_fasta_file_saved_with_a_byte_order_mark_is_still_fasta(tmp_path: Path) -> None:
    """An editor that writes a byte-order mark before ``>`` leaves a FASTA file: the mark is skipped, the rest
    of the first line read whole (its ``>`` included)."""
    bom = tmp_path / "plate.fasta"
    bom.write_bytes(b"\xef\xbb\xbf>F1\n" + b"ACGT" * 60 + b"\n>F2\n" + b"ACGA" * 60 + b"\n")
    assert sniff_format(bom) == "fasta"
    assert [s.processid for s in read_collection(bom).specimens] == ["F1", "F2"]


def test_a_missing_metadata_path_is_named_as_either_a_file_or_a_folder(tmp_path: Path) -> None:
    """``--data`` takes a metadata file or a dataset folder; a path that is neither says so, whichever the user
    meant (a missing ``keys.csv`` was told "no such dataset directory")."""
    for missing in (tmp_path / "keys.csv", tmp_path / "collection"):
        with pytest.raises(InputError, match=r"^.*: no such metadata file or dataset directory$"):
            find_metadata(missing)


_SEQ1, _SEQ2 = "ACGT" * 60, "ACGA" * 60
#: one file in three formats: two good records, one with a control character in its taxon (a NUL in the FASTA:
#: not on line 1, so the file is not binary), one barcode too short, a blank line
_LINE_BREAK_FILES = {
    "fasta": [">M1|Diptera", _SEQ1[:120], _SEQ1[120:], ">M2|Dip\x00tera", _SEQ2, "", ">M3|Diptera", "ACGT",
              ">M4|Diptera", _SEQ2],
    "csv": ["processid,taxon,dna_barcode", f"M1,Diptera,{_SEQ1}", f"M2,Dip\atera,{_SEQ2}", "",
            "M3,Diptera,ACGT", f'M4,"Diptera",{_SEQ2}'],
    "tsv": ["processid\ttaxon\tdna_barcode", f"M1\tDiptera\t{_SEQ1}", f"M2\tDip\atera\t{_SEQ2}", "",
            "M3\tDiptera\tACGT", f"M4\tDiptera\t{_SEQ2}"],
}


@pytest.mark.parametrize("fmt", sorted(_LINE_BREAK_FILES))
def test_a_file_saved_with_old_mac_line_breaks_reads_like_the_same_file_with_unix_or_windows_ones(
        tmp_path: Path, fmt: str) -> None:
    """An old Mac program ends lines with a lone ``\\r`` ("CSV (Macintosh)"). Read by ``\\n`` alone, a FASTA file
    was one record whose taxon held every ``\\r`` (set aside as control characters) and a CSV a traceback: the
    file must give the records, the set-aside reasons and the line numbers of the same file saved with ``\\n`` or
    ``\\r\\n``, plain or gzipped."""
    got = {}
    for name, ending in (("unix", "\n"), ("windows", "\r\n"), ("mac", "\r")):
        data = ending.join(_LINE_BREAK_FILES[fmt]).encode() + ending.encode()
        for packed in (False, True):
            path = tmp_path / f"{name}{'-gz' if packed else ''}.{fmt}{'.gz' if packed else ''}"
            path.write_bytes(gzip.compress(data) if packed else data)
            assert sniff_format(path) == fmt
            read = read_collection(path)
            got[path.name] = ([(s.processid, s.taxon, s.dna_barcode, s.line) for s in read.specimens],
                              [(q.line, q.processid, q.kind, q.reason) for q in read.quarantine])
    first_line = {"fasta": (1, 9), "csv": (2, 6), "tsv": (2, 6)}[fmt]
    kept, set_aside = got[f"unix.{fmt}"]
    assert [(pid, line) for pid, _, _, line in kept] == [("M1", first_line[0]), ("M4", first_line[1])]
    assert [(line, pid, kind) for line, pid, kind, _ in set_aside] == (
        [(4, "M2", "control_chars"), (7, "M3", "short_barcode")] if fmt == "fasta"
        else [(3, "M2", "control_chars"), (5, "M3", "short_barcode")])
    assert kept[0][2] == _SEQ1 and ("'\\x00'" if fmt == "fasta" else "'\\x07'") in set_aside[0][3]
    assert all(result == got[f"unix.{fmt}"] for result in got.values()), got


def test_bioscan_5m_metadata_saved_with_old_mac_line_breaks_loads_like_the_original(tmp_path: Path) -> None:
    """The metadata reader stands on the same lines: a lone ``\\r`` per line raised the csv module's
    "new-line character seen in unquoted field" as a traceback."""
    mac = tmp_path / "metadata.csv"
    mac.write_bytes(SAMPLE.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r"))
    pd.testing.assert_frame_equal(load_metadata(mac), load_metadata(SAMPLE))
