"""Small parts of the storage floor at their edges: barcode distances, JSON conversion, record helpers.

Each asserts a value a caller relies on at a boundary no larger test reaches: an empty or all-``N`` read,
a numpy or pandas value stored as JSON, a filler rank name, where a record came from.
"""

from __future__ import annotations

import dataclasses
import math
import random
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biodiscover.storage.distance import (
    MIN_INFORMATIVE,
    cross_p_distance,
    divergence,
    identity,
    kmer_presence,
    p_distance,
    pairwise_p_distance,
    probe_index,
    shared_identity,
)
from biodiscover.storage.jsonable import jsonable
from biodiscover.storage.records import SPLITS, Specimen, candidate_name, is_filler_name, resolve_splits


def _barcode(n: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice("ACGT") for _ in range(n))


def _mutate(seq: str, every: int) -> str:
    return "".join(("A" if c != "A" else "C") if i % every == 0 else c for i, c in enumerate(seq))


def test_p_distance_counts_per_informative_column_and_is_infinite_when_nothing_can_be_compared() -> None:
    a = _barcode(400, 1)
    b = _mutate(a, 20)  # 20 substitutions over 400 columns
    assert p_distance(a, b) == 20 / 400
    assert p_distance(b, a) == 20 / 400  # the shorter one is the query either way
    assert p_distance(a[50:350], a) == 0.0  # a partial read inside a full one: overhang costs nothing
    assert p_distance("", a) == math.inf
    assert p_distance(a, _barcode(400, 2), max_distance=0.05) == math.inf  # stops early above the bound
    assert p_distance(a, b, max_distance=0.05) == 20 / 400  # a pair exactly at the bound is still measured
    assert p_distance(a, _mutate(a, 19), max_distance=0.05) == math.inf  # 22 differences: one past it
    short = a[:MIN_INFORMATIVE - 1]
    assert p_distance(short, a) == math.inf  # too short an overlap to call a distance
    assert p_distance(a[:150] + "N" * 250, a) == 0.0  # N columns are never evidence, and never a difference
    # a read's own Ns are not informative columns: 4 differences over its 200 called bases, not over 400
    assert p_distance(_mutate(a[:200], 50) + "N" * 200, a) == 4 / 200
    assert p_distance(a[:90] + "N" * 310, a) == math.inf  # 90 called bases: under the 100-column bar


def test_reads_from_primers_far_apart_are_compared_on_what_they_share() -> None:
    # one template read from two primer pairs: the second read starts 240 bases later and runs 240
    # past the first one's end, so the two share 360 of their 600 bases (60 %, more than a quarter off)
    template = _barcode(840, 7)
    first, second = template[:600], _mutate(template[240:], 40)  # 15 differences over its 600 bases
    shared_differences = sum(x != y for x, y in zip(first[240:], second[:360]))
    assert shared_differences == 9
    assert p_distance(first, second) == 9 / 360
    assert p_distance(second, first) in (9 / 360, 9 / 361)  # the mutated first base may align a column early
    # sharing just over half the shorter read is still measured; under half is too little to say anything
    assert p_distance(template[:600], template[290:]) == 0.0  # 310 of 550 shared
    assert p_distance(template[:600], template[380:]) == math.inf  # 220 of 460
    # the pairwise matrix clustering cuts reads the same distance
    assert pairwise_p_distance([first, second])[0, 1] == pytest.approx(9 / 360, abs=1e-4)


def test_identity_leaves_out_what_reads_from_other_primers_do_not_share() -> None:
    # the primers of the test above: 360 shared bases, 9 differences among them. End to end the same pair
    # reads 58.8 % (the overhangs charged as differences); over what the reads share, 97.5-97.8 %
    template = _barcode(840, 7)
    first, second = template[:600], _mutate(template[240:], 40)
    # the second read's start is found inside the first: the first's 240 bases before it, and the 4 next
    # to the boundary (an indel there would move it), are left out; 8 of the 9 differences remain
    assert shared_identity(first, second) == (1 - 8 / 356, 356)
    # the first read's end is found inside the second: the second's last 240 + 4 bases are left out
    assert shared_identity(second, first) == (1 - 9 / 356, 356)
    assert identity(first, second) == 1 - 8 / 356
    # an N in the shared part is no evidence: one base fewer to count over, no difference more
    assert shared_identity(first[:300] + "N" + first[301:], second) == (1 - 8 / 355, 355)
    # a read inside the other: nothing overhangs, every base of it counts
    assert shared_identity(template[100:400], template[:600]) == (1.0, 300)
    assert shared_identity(template[:600], template[290:]) == (1.0, 306)  # 310 shared, just over half of 550
    # a 300-base fragment sharing 246 bases with a 600-base read: most of the fragment, but under half of the
    # read, so measured end to end (the best of many keys measured on short overlaps is biased upward)
    fragment = shared_identity(template[350:650], template[:600])
    assert fragment[1] == 300 and fragment[0] < 0.9
    # under half the shorter read shared (220 of 460): too little to stand for the read, measured end to end
    over = shared_identity(template[:600], template[380:])
    assert over[1] == 460 and over[0] < 0.6
    assert shared_identity("", template) == (0.0, 0) and shared_identity("N" * 50, template) == (0.0, 0)


def test_a_keys_run_of_n_is_no_shared_base_and_no_wildcard() -> None:
    """An N matches any base, so a key with a long run of them matched any read lying on it: on a real
    reference (LNAUY1385-19: 50 + 200 Ns in 658 bases) a shuffled 200-base window read 100 % to it, and the
    chance identity build-reference learned at 200 bases was 100 % (no 200-base read could be named)."""
    template = _barcode(658, 21)
    key = template[:200] + "N" * 250 + template[450:]  # 408 called bases
    read = _mutate(template, 10)  # 66 differences over 658 bases, 41 of them where the key calls its base
    differences = sum(x != y for x, y in zip(read, key) if y != "N")
    assert differences == 41
    # counted over the 408 bases both reads call: 90 %, not 1 - 41 / 658 = 93.8 %
    assert shared_identity(read, key) == (1 - 41 / 408, 408)
    assert shared_identity(read, template)[0] == pytest.approx(1 - 66 / 658)
    shuffled = list(template[300:500])
    random.Random(4).shuffle(shuffled)
    window = "".join(shuffled)
    assert shared_identity(window, template)[0] < 0.7
    assert shared_identity(window, key)[0] < 0.7  # was 1.0: the window lay on the Ns
    # a read half or more of whose bases fall on the key's Ns: the key cannot speak for it
    assert shared_identity(template[100:300], key) == (0.0, 100)
    assert shared_identity(template[50:280], key) == (1.0, 150)  # 150 of its 230 bases shared: measured on them
    # the reads' own Ns keep counting as before: a key without Ns reads the same
    assert shared_identity(key, template) == shared_identity(template, key) == (1.0, 408)


def test_the_probe_index_finds_what_a_substring_search_finds() -> None:
    """One read compared with many looks its probes up in ``probe_index`` instead of searching the read:
    the same first positions (a repeated stretch included), so the same identities."""
    base = _barcode(600, 9)
    read = base[:300] + base[100:140] + base[300:]  # bases 100-139 twice
    index = probe_index(read)
    for i in range(0, len(read) - 16, 5):
        assert index[read[i : i + 16]] == read.find(read[i : i + 16])
    assert index.get("A" * 16, -1) == read.find("A" * 16) == -1
    template = _barcode(900, 10)
    others = [template[:640], template[200:], _mutate(template[120:760], 30), read[50:], _barcode(640, 11)]
    for other in others:
        assert shared_identity(read, other, index) == shared_identity(read, other)
    one = template[150:790]
    probes = probe_index(one)
    assert [shared_identity(one, o, probes) for o in others] == [shared_identity(one, o) for o in others]


def test_identity_and_divergence_at_their_edges() -> None:
    a = _barcode(300, 3)
    b = _mutate(a, 10)  # 30 substitutions
    assert identity(a, b) == 1 - 30 / 300 and identity(b, a) == identity(a, b)
    assert divergence(a, b) == pytest.approx(30 / 300)
    assert identity("", a) == identity(a, "") == 0.0
    assert identity(a, a) == identity(a[50:250], a) == 1.0  # the same read, or a part of it: no difference at all
    assert identity("N" * 100, a) == 0.0  # nothing informative to compare
    assert math.isnan(divergence("", a)) and math.isnan(divergence(a, ""))
    far = _barcode(700, 4)
    assert 0.0 <= identity(a, far) < 0.8  # past the first bounded pass (more than a quarter of the read)


def test_an_evidence_record_without_a_coordinate_count_counts_none() -> None:
    from biodiscover.storage.evidence import Geography

    # an evidence record written before coordinates were counted: none, not one
    assert Geography.from_dict({"countries": {"Canada": 2}}).n_with_coordinates == 0


def test_kmer_presence_skips_short_reads_and_ambiguous_kmers_and_matrices_keep_their_shape() -> None:
    pres = kmer_presence(["ACGTAC", "ACG", "ACNTAC"], 4)
    assert pres.shape == (3, 256)
    assert pres[0].nnz == 3  # ACGT, CGTA, GTAC
    assert pres[1].nnz == 0  # shorter than k: an empty row, the next rows still in place
    assert pres[2].nnz == 0  # every 4-mer of ACNTAC holds the N
    assert pairwise_p_distance([]).shape == (0, 0)
    assert cross_p_distance([], ["ACGT"]).shape == (0, 1)
    a = _barcode(400, 5)
    b = _mutate(a, 40)
    d = pairwise_p_distance([a, b, a])
    assert d.shape == (3, 3) and d[0, 2] == 0.0 and d[0, 1] == d[1, 0] == np.float32(10 / 400)
    assert np.all(np.diag(d) == 0.0)
    far = _barcode(400, 6)
    assert pairwise_p_distance([a, far])[0, 1] >= 0.12  # never aligned: the k-mer estimate, at least the bound
    assert cross_p_distance([a], [b, far])[0, 0] == np.float32(10 / 400)


def test_jsonable_turns_numpy_and_pandas_values_into_plain_json() -> None:
    assert jsonable({1: np.arange(3), "f": np.float32(0.5), "b": np.bool_(True), "i": np.int64(7)}) == {
        "1": [0, 1, 2], "f": 0.5, "b": True, "i": 7}
    assert jsonable([np.float64("nan"), float("inf"), 2.5]) == [None, None, 2.5]
    assert jsonable((pd.NA, pd.NaT, {3}, frozenset())) == [None, None, [3], []]  # NaT is missing, not "NaT"
    assert jsonable(pd.Timestamp("2026-12-02 07:30")) == "2026-12-02 07:30:00"
    assert jsonable(date(2026, 12, 2)) == "2026-12-02" and jsonable(Path("/a/b")) == "/a/b"
    assert jsonable(np.str_("abc")) == "abc" and type(jsonable(np.str_("abc"))) is str
    assert jsonable(pd.Series([1, 2])) == [1, 2]  # anything with tolist()

    class Odd:
        def __str__(self) -> str:
            return "odd"

    assert jsonable(Odd()) == "odd"
    assert jsonable(True) is True and jsonable(None) is None


def test_record_helpers_name_fillers_lineages_and_where_a_record_came_from() -> None:
    assert is_filler_name("unassigned Sciaridae") and is_filler_name("  Unclassified Diptera")
    assert not is_filler_name("Megaselia") and not is_filler_name(None) and not is_filler_name(3)
    s = Specimen("BD1", genus="Megaselia", family="Phoridae")
    assert s.lineage() == {"order": None, "family": "Phoridae", "subfamily": None, "genus": "Megaselia",
                           "species": None}
    assert s.deepest_label == ("genus", "Megaselia")
    assert Specimen("BD2").deepest_label is None
    assert s.where == "<memory> (processid 'BD1')"
    assert Specimen("BD3", source="plate.csv", line=5).where == "plate.csv:5 (processid 'BD3')"
    assert Specimen("BD4", source="plate.csv").where == "plate.csv (processid 'BD4')"
    assert resolve_splits(None) == resolve_splits("") == SPLITS


def test_a_row_s_unknown_columns_and_its_own_source_or_line_cells_are_ignored() -> None:
    """A metadata row carries columns that are no specimen field (BIOSCAN-5M's ``split``, a lab's ``notes``): they
    are ignored, not an error; a cell named ``source`` or ``line`` never overrides where the record was read."""
    s = Specimen.from_row({"processid": "M1", "split": "train", "notes": "wing torn", "source": "forged.csv",
                           "line": "1", "class": "Insecta", "coord-lat": "45.5"}, source="plate.csv", line=7)
    assert (s.processid, s.class_, s.coord_lat, s.source, s.line) == ("M1", "Insecta", 45.5, "plate.csv", 7)


def test_missing_cells_control_characters_and_fasta_header_fields() -> None:
    from biodiscover.storage.fasta import specimen_header
    from biodiscover.storage.safetext import escape_controls, safe_text_cell

    s = Specimen.from_row({"processid": "M1", "country": float("nan"), "genus": "  ", "family": pd.NA,
                           "order": "Diptera"})
    assert (s.country, s.genus, s.family, s.order) == (None, None, None, "Diptera")
    assert escape_controls("a\nb\x00c\u202e") == "a\\x0ab\\x00c\\u202e"
    assert escape_controls("a\nb\x00", keep_newlines=True) == "a\nb\\x00"
    assert safe_text_cell("=SUM(A1)\x07") == "'=SUM(A1)\\x07" and safe_text_cell(-12.5) == -12.5
    assert safe_text_cell(None) is None
    assert specimen_header(Specimen("P\x001|x", genus="Megaselia")) == "P\\x001 x|Megaselia|COI-5P"
    assert specimen_header(Specimen("P2")) == "P2||COI-5P"
    assert specimen_header(Specimen("P3"), extra=("COI-5P", None)) == "P3||COI-5P|"  # a missing field is empty


# -- paths no other test walks (found from the coverage of the mutation pool, not from any mutant) ----------
def test_split_lists_placeholders_evidence_and_proposal_names() -> None:
    from biodiscover.storage.db.proposals import ProposalSummary
    from biodiscover.storage.errors import InputError
    from biodiscover.storage.evidence import Evidence
    from biodiscover.storage.layout import wanted_splits
    from biodiscover.storage.splits import is_placeholder_species

    assert wanted_splits(["train", "val_unseen"]) == ("train", "val_unseen")
    assert wanted_splits(("key_unseen+test", "val")) == ("key_unseen", "test", "val")
    assert wanted_splits(None) is None and wanted_splits("all") is None
    with pytest.raises(InputError, match="nope"):
        wanted_splits(["train", "nope"])
    assert is_placeholder_species("Megaselia rufipes", "Malaise Trap Genus")  # a malaise genus, typo-tolerant too
    assert is_placeholder_species("Megaselia rufipes", "melaize")
    assert not is_placeholder_species("Megaselia rufipes", "Megaselia")
    ev = Evidence.from_dict({"threshold": 0.03})
    assert Evidence.from_dict(ev) is ev
    fields = {f.name: None for f in dataclasses.fields(ProposalSummary)}
    named = ProposalSummary(**{**fields, "id": 7, "provisional_name": None, "parent_name": "Megaselia",
                               "parent_rank": "genus"})
    assert named.name == candidate_name(None, "Megaselia", "genus", 7) != ""


def test_an_empty_selection_of_metadata_keeps_its_columns(tmp_path: Path) -> None:
    from biodiscover.storage.bioscan import load_metadata

    path = tmp_path / "meta.csv"
    path.write_text("processid,species,dna_barcode,split\nT1,Megaselia sp1," + "ACGT" * 60 + ",train\n")
    empty = load_metadata(path, split="test", columns=["processid", "species", "split"])
    assert len(empty) == 0 and list(empty.columns)[:3] == ["processid", "species", "split"]
    assert len(load_metadata(path, split="test")) == 0


def test_a_bundle_array_whose_shape_disagrees_with_its_bytes_names_both(tmp_path: Path) -> None:
    """A forged array whose manifest checksum is right but whose header claims more data than it holds."""
    import json
    import struct

    from safetensors.numpy import save

    from biodiscover.storage.bundle import Bundle
    from biodiscover.storage.errors import ModelBundleError

    raw = save({"data": np.zeros((4, 3), dtype=np.float32)})
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header["data"]["shape"] = [5, 3]  # 60 bytes claimed, 48 stored
    text = json.dumps(header, separators=(",", ":")).encode()
    assert len(text) <= n
    forged = raw[:8] + text.ljust(n) + raw[8 + n:]
    bundle = Bundle.create(tmp_path / "b", config={})
    bundle._store("arrays", "keys", forged)  # listed with its own (matching) checksum
    with pytest.raises(ModelBundleError, match=r"not a bundle array \(shape \(5, 3\) of F32 does not match 48 data "
                                               r"bytes\)"):
        Bundle.open(tmp_path / "b").load_array("keys")


def test_a_file_ending_inside_a_multibyte_character_is_not_all_utf8(tmp_path: Path) -> None:
    from biodiscover.storage.textlines import _all_utf8

    whole, cut = tmp_path / "whole.csv", tmp_path / "cut.csv"
    whole.write_bytes("processid\nÜ-24\n".encode())
    cut.write_bytes("processid\nÜ-24\n".encode() + "é".encode()[:1])  # the last character's first byte only
    assert (_all_utf8(whole), _all_utf8(cut)) == (True, False)


def test_a_database_that_cannot_be_opened_is_a_problem_listed_and_a_permission_one_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``quick_problems`` decides whether a writing verb may touch a file and whether a backup is good: an
    open that fails for a reason other than permissions (an I/O error on a failing disk, injected here: no
    test can make a real disk fail) is a problem named in one line, so the file is refused or the backup
    counted bad; a permission failure is an error saying "permissions, not damage" (its advice differs)."""
    import sqlite3

    from biodiscover.storage.db import integrity
    from biodiscover.storage.errors import DatabaseError
    from fixtures.db_views import plain_sqlite_file

    path = plain_sqlite_file(tmp_path / "t.sqlite")
    assert integrity.quick_problems(path) == []

    def failing(error: str) -> object:
        def connect(*args: object, **kwargs: object) -> sqlite3.Connection:
            raise sqlite3.OperationalError(error)
        return connect

    monkeypatch.setattr(integrity, "connect_readonly", failing("disk I/O error"))
    assert integrity.quick_problems(path) == ["the file cannot be opened: disk I/O error"]
    monkeypatch.setattr(integrity, "connect_readonly", failing("unable to open database file"))
    with pytest.raises(DatabaseError, match="permissions, not damage"):
        integrity.quick_problems(path)


def test_two_specimens_are_equal_when_their_data_is_whatever_line_or_file_they_came_from() -> None:
    """``source`` and ``line`` say where a record was read, not what it is: the same record read from two files
    compares equal, and any field of its data makes it differ."""
    from biodiscover.storage.records import Specimen

    row = {"processid": "A1", "dna_barcode": "ACGT" * 60, "country": "Canada", "coord-lat": "45.5"}
    a = Specimen.from_row(row, source="plate-1.csv", line=2)
    b = Specimen.from_row(row, source="plate-2.tsv", line=90)
    assert (a.source, a.line, b.source, b.line) == ("plate-1.csv", 2, "plate-2.tsv", 90)
    assert a == b
    assert a != Specimen.from_row({**row, "country": "Peru"}, source="plate-1.csv", line=2)
    assert a != Specimen.from_row({**row, "coord-lat": "45.6"}, source="plate-1.csv", line=2)


@pytest.mark.parametrize("entry", [{"dtype": "Q8", "shape": [4, 3], "data_offsets": [0, 48]}, None, "data"],
                         ids=["unknown-dtype", "null", "a-string"])
def test_a_bundle_array_without_a_data_tensor_of_a_known_dtype_is_one_bundle_error(tmp_path: Path, entry) -> None:
    """A forged array header (checksum right) whose ``data`` entry names a dtype safetensors does not have, or is
    no entry at all, is refused with the one bundle error, not a KeyError or AttributeError traceback."""
    import json
    import struct

    from safetensors.numpy import save

    from biodiscover.storage.bundle import Bundle
    from biodiscover.storage.errors import ModelBundleError

    raw = save({"data": np.zeros((4, 3), dtype=np.float32)})
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header["data"] = entry
    text = json.dumps(header, separators=(",", ":")).encode()
    assert len(text) <= n
    bundle = Bundle.create(tmp_path / "b", config={})
    bundle._store("arrays", "keys", raw[:8] + text.ljust(n) + raw[8 + n:])
    with pytest.raises(ModelBundleError, match=r"not a bundle array \(no 'data' tensor of a known dtype\)"):
        Bundle.open(tmp_path / "b").load_array("keys")


def test_a_p_distance_needs_half_the_shorter_reads_called_bases_to_overlap_called_bases() -> None:
    """The module's second bar besides 100 columns: a pair is compared only over at least half of the shorter
    read's called (non-N) bases. Leading and trailing Ns are no bases at all: a 400-base read whose first 201
    are N is the 199-base read it carries, wholly inside the full one."""
    a = _barcode(400, 3)
    b = _mutate(a, 40)
    assert p_distance(a, "N" * 200 + b[200:]) == 5 / 200  # b's differences at 200, 240, ..., 360
    assert p_distance(a, "N" * 201 + b[201:]) == p_distance(a, b[201:]) == 4 / 199
    tail = _barcode(300, 4)
    assert p_distance(a, b[250:] + tail[:150]) == 3 / 150  # half of the 300-base read shared: measured
    assert p_distance(a, b[280:] + tail[:180]) == math.inf  # 120 of 300: not compared
