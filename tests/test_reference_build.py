"""The streaming reference build (issue 13): keys read row by row into compact columns give the very
reference, index and naming that fitting the same specimens held as objects gives, whatever the chunk size."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from biodiscover.discovery.engine import DiscoveryModel, EngineConfig
from biodiscover.discovery.index import IndexConfig
from biodiscover.discovery.kmer import KmerConfig
from biodiscover.discovery.reference import KeyColumns, StringStore
from biodiscover.storage.records import BIOSCAN_COLUMNS, RANKS, Specimen
from biodiscover.storage.bioscan import load_specimens
from biodiscover.workflows.reference import build_reference, sample
from fixtures.discovery import make_world

KEYS, CALIBRATION, OUTLIERS = "train+val", "val_unseen", "other_heldout"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A BIOSCAN-layout CSV whose rows are shuffled, so the two key splits interleave in the file."""
    path = tmp_path_factory.mktemp("ds") / "metadata.csv"
    rows = []
    for split, specs in make_world(seed=11).items():
        for s in specs:
            row = {k: ("" if v is None else v) for k, v in s.to_row().items()}
            row.update(phylum="Arthropoda", **{"class": "Insecta"}, split=split, inferred_ranks=0)
            rows.append(row)
    rows.append({**rows[0], "processid": "NOLABEL1", "order": "", "family": "", "genus": "", "species": "",
                 "split": "train"})  # a key row that cannot be a key: left out on both paths
    order = np.random.default_rng(0).permutation(len(rows))
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(BIOSCAN_COLUMNS))
        w.writeheader()
        w.writerows(rows[i] for i in order)
    return path


def _config(batch_size: int) -> EngineConfig:
    # ivfsq with a projection and few cells: training sample, cell sample and chunked adds all take part
    index = IndexConfig(kind="ivfsq", project_dim=24, ivf_nlist=4, ivf_nprobe=2, train_size=60)
    return EngineConfig(kmer=KmerConfig(ks=(5,)), index=index, n_search=40, max_candidates=15,
                        batch_size=batch_size)


def test_key_columns_say_how_many_specimens_could_not_be_keys(caplog: pytest.LogCaptureFixture) -> None:
    """A specimen without a usable barcode or a label is left out of the keys, and the log says how many; with
    none left out it says nothing (seed-1806 survivor: the warning's condition flipped; not re-scored)."""
    world = make_world(seed=2)
    keys = world["train"][:6]
    with caplog.at_level("WARNING", logger="biodiscover.discovery.engine"):
        assert len(DiscoveryModel().key_columns(keys)) == 6
        assert not [r for r in caplog.records if "left out" in r.getMessage()]
        bad = [dataclasses.replace(keys[0], dna_barcode="NNNN"), dataclasses.replace(keys[1], species=None,
               genus=None, subfamily=None, family=None, order=None)]
        assert len(DiscoveryModel().key_columns(keys[2:] + bad)) == 4
    said = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert said == ["2 reference specimens without a usable barcode or any label were left out"]


def test_key_columns_hold_what_lists_hold() -> None:
    world = make_world(seed=2)
    # where each key was collected, coded per column in the order first seen (the two columns' codes differ)
    places = ["Canada", None, "Peru", "Canada"]
    a = [dataclasses.replace(s, country=places[i % 4]) for i, s in enumerate(world["train"])]
    b = [dataclasses.replace(s, country=places[(i + 2) % 4]) for i, s in enumerate(world["val"])]
    model = DiscoveryModel()
    assert KeyColumns().countries() is None
    first, second = KeyColumns(), KeyColumns()
    for s in a:
        assert model.add_key(first, s)
    assert not model.add_key(second, Specimen(processid="X", dna_barcode="ACGT", genus="G"))  # too short
    for s in b:
        model.add_key(second, s)
    first.extend(second)
    ids, seqs, lineages = first.columns()
    want = a + b
    assert isinstance(ids, StringStore) and len(ids) == len(want) == len(first)
    assert list(ids) == [s.processid for s in want]
    assert list(seqs) == [s.dna_barcode for s in want]
    assert lineages == [tuple(getattr(s, r) or None for r in RANKS) for s in want]
    assert first.countries() == [s.country for s in want]
    # one str object per taxon name, not one per key
    assert len({id(lin[RANKS.index("genus")]) for lin in lineages}) == len({s.genus for s in want})


@pytest.fixture(scope="module")
def unstreamed(dataset) -> DiscoveryModel:
    """The path before streaming: every split read as Specimen objects, keys in the order the splits are
    named, one chunk for everything."""
    by_split = {sp: load_specimens(dataset, sp) for sp in ("train", "val", "val_unseen", "other_heldout")}
    keys = by_split["train"] + by_split["val"]
    return DiscoveryModel(_config(4096)).fit(keys, by_split["val_unseen"], sample(by_split["other_heldout"], 25, 0))


@pytest.mark.parametrize("batch_size", [7, 4096])
def test_streaming_build_equals_fitting_the_specimens(dataset, unstreamed, tmp_path, batch_size) -> None:
    """Streamed keys in chunks of 7 (embedding, sketches, index adds, searches) or in one chunk: the
    same keys in the same order, the same sketches, index hits, naming model and triage."""
    built = build_reference(dataset, tmp_path / "bundle", keys=KEYS, calibration=CALIBRATION,
                            outliers=OUTLIERS, max_outliers=25, config=_config(batch_size))
    want = unstreamed
    n_key_rows = len(load_specimens(dataset, KEYS))
    assert len(built.reference_) == n_key_rows - 1  # the unlabelled row left out
    assert list(built.ref_ids_) == list(want.ref_ids_)
    assert list(built.ref_seqs_) == list(want.ref_seqs_)
    assert built.ref_lineages_ == want.ref_lineages_
    assert built.index_.kind_ == "ivfsq"
    np.testing.assert_array_equal(np.asarray(built.reference_.sketches_), np.asarray(want.reference_.sketches_))
    q = list(want.ref_seqs_)[:30]
    np.testing.assert_array_equal(built.reference_.search(q, 10)[1], want.reference_.search(q, 10)[1])
    assert built.naming_.to_dict() == want.naming_.to_dict()
    queries = load_specimens(dataset, "test+test_unseen")
    expected = [r.to_dict() for r in want.triage(queries)]
    assert [r.to_dict() for r in built.triage(queries)] == expected
    # and what was saved is what was built
    assert [r.to_dict() for r in DiscoveryModel.load(tmp_path / "bundle").triage(queries)] == expected


def test_images_asked_for_without_encoders_is_one_clear_error(dataset, tmp_path) -> None:
    """The path that keeps key specimens as objects (the image classifier needs their image paths) still
    fits, then says what is missing instead of fitting images from nothing."""
    from biodiscover.storage.errors import InputError

    with pytest.raises(InputError, match="no trained encoders in the bundle"):
        build_reference(dataset, tmp_path / "bundle", keys=KEYS, calibration=CALIBRATION, outliers="",
                        config=_config(4096), images=True)
    assert DiscoveryModel.load(tmp_path / "bundle").index_.kind_ == "ivfsq"  # the DNA engine was saved first


def test_calibration_is_never_the_keys_and_empty_means_none(dataset, tmp_path) -> None:
    """``--calibration ''`` used to mean every split, keys included: the keys were searched against
    themselves as extra naming examples (100 % identity, always right). Now '' is none, and a key split
    named as calibration is left out of it."""
    import json

    def fingerprint(out: Path) -> dict:
        return json.loads((out / "bundle.json").read_text())["data_fingerprint"]

    n_val_unseen = len(load_specimens(dataset, "val_unseen"))
    build_reference(dataset, tmp_path / "none", keys=KEYS, calibration="", outliers="", config=_config(4096))
    fp = fingerprint(tmp_path / "none")
    assert fp["n_calibration"] == 0 and fp["calibration_splits"] == []
    said: list[str] = []
    build_reference(dataset, tmp_path / "overlap", keys=KEYS, calibration="train+val_unseen", outliers="",
                    config=_config(4096), progress=lambda stage, done, total=None, msg="": said.append(msg))
    fp = fingerprint(tmp_path / "overlap")
    assert fp["calibration_splits"] == ["val_unseen"] and fp["n_calibration"] == n_val_unseen > 0
    assert any("calibration splits train are key splits" in m for m in said), said


@pytest.mark.parametrize("n, train_size, trained, cells", [(400, 100, 160, 4), (400, 200, 200, 4), (120, 100, 120, 3),
                                                             (400, 3, 160, 4)])
def test_an_ivf_reference_says_how_many_keys_its_cells_were_trained_on(n: int, train_size: int, trained: int,
                                                                       cells: int) -> None:
    """The build's progress line states the keys the IVF cells were learned from: the projection's sample
    (``train_size``) topped up to 40 keys a cell (four cells here) from the other keys, never more keys than
    there are, and how long it took. Seed 3299 left ``want - len(take)`` -> ``want + len(take)`` (cells trained
    on more keys than asked) "harmless", and seed 11 the 40 -> 41 of the same line: no test read that sample."""
    import re
    import time

    from biodiscover.discovery.reference import Reference

    rng = np.random.default_rng(12)
    seqs = ["".join(rng.choice(list("ACGT"), 120)) for _ in range(n)]
    said: list[str] = []
    t = time.perf_counter()
    ref = Reference.build([f"K{i}" for i in range(n)], seqs, [("O", "F", None, "G", f"G s{i}") for i in range(n)],
                          kmer=KmerConfig(ks=(3,)), index=IndexConfig(kind="ivf", ivf_nlist=4, train_size=train_size),
                          progress=said.append)
    wall = time.perf_counter() - t
    assert ref.index_.kind_ == "ivf" and len(ref.ids) == n
    (line,) = [x for x in said if x.startswith("trained the ")]
    m = re.fullmatch(r"trained the ivf index on (\d+) of (\d+) keys in ([\d.]+)s", line)
    assert m and (int(m[1]), int(m[2])) == (trained, n) and float(m[3]) <= wall + 0.05
    # the cells are learned from those keys, at least 39 a cell (ReferenceIndex.train): 3 or 100 sampled keys
    # alone would make one or two cells, the top-up four; every key is then found again (seed 5651: the top-up's
    # chunks sliced `start - batch_size`, so the cells saw none of it, survived; written after the sample, not
    # re-scored)
    import faiss

    assert faiss.extract_index_ivf(ref.index_._fitted()).nlist == cells
    _sims, pos = ref.index_.search(ref._vectors(ref.embedder.embed_dna(seqs[:20])), 1)
    assert pos[:, 0].tolist() == list(range(20))


def test_keys_stored_reversed_are_turned_in_place_the_first_and_the_last_included() -> None:
    """``KeyColumns.reverse_complement``: each barcode at the given positions becomes its whole reverse
    complement, its neighbours' bytes untouched (seed 2027's ``reference.py:284`` ``else 0`` -> ``else 1``
    survived while the sample ran: the first key turned from its second base on, its first base left where
    it was, so an audit's flip of key 0 indexed a barcode that is neither strand)."""
    from biodiscover.storage.distance import reverse_complement

    keys = KeyColumns()
    seqs = ["AACCGGTTAC", "GGGTTTAAAC", "CATGCATGCA", "TTTTACGTAA"]
    for i, s in enumerate(seqs):
        keys.append(f"K{i}", s, ("Ord", None, None, None, f"Gen sp{i}"))
    keys.reverse_complement([0, 3])
    ids, barcodes, lineages = keys.columns()
    assert barcodes[:] == [reverse_complement(seqs[0]), seqs[1], seqs[2], reverse_complement(seqs[3])]
    assert ids[:] == ["K0", "K1", "K2", "K3"] and [lin[-1] for lin in lineages] == [f"Gen sp{i}" for i in range(4)]


def test_the_rows_a_build_refuses_travel_in_the_bundle_and_an_older_bundle_says_nothing(dataset, tmp_path) -> None:
    """A real US plate's *Pyrausta pseudonythesalis* had one reference key, ZYPAN924-10 (146 nt), quarantined for
    length: its 20 specimens were proposed as new with nothing saying the reference had held the species. The
    build keeps such rows in the bundle (table ``reference_refused``, JSON like every table), the triage that loads
    it matches them; a bundle built before, without the table, loads and matches nothing."""
    import shutil

    from biodiscover.discovery.engine import REFUSED_TABLE
    from biodiscover.storage.bundle import Bundle
    from fixtures.usa_plate import PLATE, REFERENCE

    species, short = REFERENCE["ZYPAN924-10"]
    with dataset.open() as fh:
        rows = list(csv.DictReader(fh))
    refused = {**rows[0], "processid": "ZYPAN924-10", "genus": "Pyrausta", "species": species, "dna_barcode": short,
               "split": "train"}
    data = tmp_path / "metadata.csv"
    with data.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows([*rows, refused, {**refused, "processid": "EMPTY1", "dna_barcode": "NNNN"}])
    built = build_reference(data, tmp_path / "bundle", keys=KEYS, calibration="", outliers="", config=_config(4096))
    assert [(r.processid, r.species, r.genus, r.barcode) for r in built.refused_] == \
        [("ZYPAN924-10", species, "Pyrausta", short)]  # the row without a barcode matches nothing: not kept
    assert built.refused_[0].why == "barcode is 146 nt after trimming N runs, shorter than 200"
    loaded = DiscoveryModel.load(tmp_path / "bundle")
    assert loaded.refused_ == built.refused_
    member = PLATE["BBLSX247-09"]
    assert [(m[0], m[1], round(m[3], 3), m[4]) for m in loaded.dropped_matches([("BBLSX247-09", member, 0.915)])[
        "BBLSX247-09"]] == [("ZYPAN924-10", species, 0.993, 146)]
    old = tmp_path / "old"
    shutil.copytree(tmp_path / "bundle", old)
    assert Bundle.open(old).remove("tables", REFUSED_TABLE)
    before = DiscoveryModel.load(old)
    assert before.refused_ == [] and before.dropped_matches([("BBLSX247-09", member, 0.915)]) == {}
