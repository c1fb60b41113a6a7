"""Species labels as collection databases write them (e31 F25): a reference read them verbatim, so half the keys
of *Coccinella septempunctata* written "Coccinella septempunctata (De Geer, 1774)" became a second species (none of
its 25 specimens reached species) and "Bembidion sp." / "Phyllotreta cf. cruciferae" became species. One function
(``storage.records.read_species_label``) reads them wherever a label enters: reference keys and calibration truths
at build-reference, a collection's taxa at ingest; the specimens table keeps the label as supplied."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from biodiscover.discovery.engine import DiscoveryModel, EngineConfig
from biodiscover.discovery.index import IndexConfig
from biodiscover.discovery.kmer import KmerConfig
from biodiscover.storage.bundle import Bundle
from biodiscover.storage.db import Database
from biodiscover.storage.records import BIOSCAN_COLUMNS, Specimen, read_species_label
from biodiscover.workflows.reference import build_reference
from fixtures.discovery import make_world


@pytest.mark.parametrize("label, read, rule", [
    ("Coccinella septempunctata (De Geer, 1774)", "Coccinella septempunctata", "author"),
    ("Coccinella septempunctata Linnaeus, 1758", "Coccinella septempunctata", "author"),
    ("Coccinella septempunctata Linnaeus", "Coccinella septempunctata", "author"),
    ("Carabus nemoralis O.F. Müller, 1764", "Carabus nemoralis", "author"),
    ("Amara aenea (Smith & Jones)", "Amara aenea", "author"),
    ("Amara aenea Smith et al., 2001", "Amara aenea", "author"),
    ("Aphodius rufipes van Dyke, 1920", "Aphodius rufipes", "author"),
    ("Aphodius rufipes (de Geer)", "Aphodius rufipes", "author"),
    # a trinomial stays one name, as it always did: only an author after it goes
    ("Carabus violaceus purpurascens", "Carabus violaceus purpurascens", None),
    ("Carabus violaceus purpurascens Fabricius, 1787", "Carabus violaceus purpurascens", "author"),
    ("Bembidion sp.", None, "sp."),
    ("Bembidion spp.", None, "sp."),
    ("Bembidion sp. 3", None, "sp."),
    ("Bembidion sp.3", None, "sp."),
    ("Bembidion sp. A", None, "sp."),
    ("Phyllotreta cf. cruciferae", None, "cf."),
    ("Amara aff. aenea", None, "cf."),
    ("Amara nr. aenea", None, "cf."),
    ("Amara near aenea", None, "cf."),
    ("Amara aenea s.l.", "Amara aenea", "s.l."),
    ("Amara aenea s. lat.", "Amara aenea", "s.l."),
    ("Amara aenea sensu lato", "Amara aenea", "s.l."),
    ("Amara aenea s. str.", "Amara aenea", "s.l."),
    ("Amara aenea s.s.", "Amara aenea", "s.l."),
    ("Culex pipiens agg.", "Culex pipiens", "s.l."),
    # as written: plain binomials, BOLD's interim names (one species each), and what is no Latin name at all
    ("Harpalus latus", "Harpalus latus", None),
    ("Zyeria sp. BIOUG63189-C12", "Zyeria sp. BIOUG63189-C12", None),
    ("Megaselia sp. BD-0007", "Megaselia sp. BD-0007", None),
    ("Ethmia Janzeni", "Ethmia Janzeni", None),
    ("Gen0 sp0", "Gen0 sp0", None),
    ("Ref sp", "Ref sp", None),
    (None, None, None),
])
def test_a_species_label_is_read_as_a_taxonomist_reads_it(label: str | None, read: str | None,
                                                          rule: str | None) -> None:
    assert read_species_label(label) == (read, rule)


GENERA = ("Amara", "Bembidion", "Carabus", "Dromius", "Elaphrus", "Harpalus", "Leistus", "Nebria")
EPITHETS = ("alpha", "beta", "gamma", "delta", "epsilon")


def _latin(s: Specimen) -> Specimen:
    """make_world's ``Gen3 sp1`` as a Latin binomial (``Dromius beta``), so the labels below parse."""
    g, sp = (s.species or "").split()
    genus = GENERA[int(g[3:])]
    s.genus, s.species = genus, f"{genus} {EPITHETS[int(sp[2:])]}"
    return s


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    """A reference as a collection database exports it: half of Amara alpha's rows with its author, every row of
    Bembidion alpha written "Bembidion sp." and of Carabus alpha "Carabus cf. alpha"."""
    path = tmp_path_factory.mktemp("ds") / "metadata.csv"
    rows = []
    for split, specs in make_world(seed=11).items():
        for i, s in enumerate(map(_latin, specs)):
            if s.species == "Amara alpha" and i % 2:
                s.species = "Amara alpha (De Geer, 1774)"
            elif s.species == "Bembidion alpha":
                s.species = "Bembidion sp."
            elif s.species == "Carabus alpha":
                s.species = "Carabus cf. alpha"
            row = {k: ("" if v is None else v) for k, v in s.to_row().items()}
            row.update(phylum="Arthropoda", **{"class": "Insecta"}, split=split, inferred_ranks=0)
            rows.append(row)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(BIOSCAN_COLUMNS))
        w.writeheader()
        w.writerows(rows)
    return path


def test_build_reference_reads_authors_and_open_nomenclature_and_says_how_many_keys(labelled, tmp_path) -> None:
    said: list[str] = []
    config = EngineConfig(kmer=KmerConfig(ks=(5,)), index=IndexConfig(kind="flat"), n_search=40, max_candidates=15)
    build_reference(labelled, tmp_path / "bundle", keys="train", calibration="val", outliers="", config=config,
                    progress=lambda stage, done, total=None, message="": said.append(message))
    assert [m for m in said if "labels" in m] == [
        'species labels written with their author: 2 keys of 1 label ("Amara alpha (De Geer, 1774)" 2) read as '
        "1 species without it",
        'open-nomenclature labels "sp.": 5 keys of 1 label ("Bembidion sp." 5) name no species: keys of their '
        "genus only",
        'labels "cf."/"aff."/"nr.": 5 keys of 1 label ("Carabus cf. alpha" 5) name no species (compared with one, '
        "not determined as it): keys of their genus only"]
    model = DiscoveryModel.load(tmp_path / "bundle")
    keys = [tuple(lin) for lin in model.ref_lineages_]
    species = {lin[-1] for lin in keys}
    assert "Amara alpha" in species and not {"Amara alpha (De Geer, 1774)", "Bembidion sp.",
                                             "Carabus cf. alpha"} & species
    assert sum(lin[-1] == "Amara alpha" for lin in keys) == 5  # both spellings: one species
    assert [lin for lin in keys if lin[3] == "Bembidion" and lin[-1] is None] == \
        [("Ord", "Fam1", None, "Bembidion", None)] * 5  # keys of the genus, no species
    assert Bundle.open(tmp_path / "bundle").data_fingerprint["species_labels_read"] == \
        "author 2 keys (1 label); sp. 5 keys (1 label); cf. 5 keys (1 label)"


def test_ingest_registers_the_species_read_and_keeps_the_label_as_supplied(tmp_path: Path) -> None:
    labels = ["Coccinella septempunctata (De Geer, 1774)", "Coccinella septempunctata", "Bembidion sp.",
              "Phyllotreta cf. cruciferae"]
    genera = ["Coccinella", "Coccinella", "Bembidion", "Phyllotreta"]
    rng = np.random.default_rng(0)
    specimens = [Specimen(processid=f"C{i}", order="Coleoptera", genus=g, species=label,
                          dna_barcode="".join(rng.choice(list("ACGT"), 600))) for i, (g, label) in
                 enumerate(zip(genera, labels))]
    with Database.create(tmp_path / "bd.sqlite") as db:
        db.ingest(specimens, collection="plate", backup=False)
    conn = sqlite3.connect(tmp_path / "bd.sqlite")
    assert conn.execute("SELECT name FROM taxa WHERE rank = 'species'").fetchall() == [("Coccinella septempunctata",)]
    assert sorted(conn.execute("SELECT species FROM specimens").fetchall()) == sorted((label,) for label in labels)


def test_open_nomenclature_has_one_owner_that_the_analysis_and_the_darwin_core_export_both_read_with() -> None:
    """Open nomenclature was written twice, here and in the Darwin Core export (``open_name``), each with its own
    copy of sp./cf./aff./nr./s.l./agg.: a qualifier added to one would be read by one reader only. Its parts are
    ``storage.records``'s, and every form of them is read by both: a determination compared with a species is no
    species here and that species with its qualifier there; a species in a wide or strict sense is the species in
    both; "Genus sp." is no species here and the genus there."""
    from biodiscover.storage.records import COMPARED_WORDS, OPEN_CF, OPEN_SP, SENSU_LATO
    from biodiscover.workflows.export.dwca import open_name

    assert COMPARED_WORDS == ("cf", "aff", "nr")
    for q in COMPARED_WORDS:
        assert read_species_label(f"Carabus {q}. granulatus") == (None, OPEN_CF)
        assert open_name(f"Carabus {q}. granulatus") == ("Carabus granulatus", "species", f"{q}.")
    for form, said in (("s.l.", "s.l."), ("s. l.", "s.l."), ("s. str.", "s.str."), ("s.s.", "s.str."),
                       ("sensu lato", "s.l."), ("sensu stricto", "s.str."), ("agg.", "agg.")):
        assert read_species_label(f"Culex pipiens {form}") == ("Culex pipiens", SENSU_LATO)
        assert open_name(f"Culex pipiens {form}") == ("Culex pipiens", "species", said)
    for name in ("Harpalus sp.", "Harpalus sp. 3"):
        assert read_species_label(name) == (None, OPEN_SP) and open_name(name) == ("Harpalus", "genus", "sp.")
