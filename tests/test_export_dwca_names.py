"""Darwin Core names a GBIF publisher can match: rank fillers and interim names are never published as taxa.

Found reviewing the demo's export (``biodiscover demo`` then ``export -f dwca``): specimens named down to a
subfamily shown as ``unassigned Gaeaxidae`` (a BIOSCAN-5M / BOLD rank filler, see
:func:`biodiscover.storage.records.is_filler_name`) went out with ``dwc:subfamily = unassigned Gaeaxidae``,
and three with ``scientificName = unassigned Gaeaxidae`` at ``taxonRank = subfamily``; and a candidate a
reviewer identified as the reference's interim species ``Tiaopsis sp. BIOUG57720-B08`` went out with that
interim name as a ``scientificName`` at ``taxonRank = species``, where the machine's own determination of
the same name is written in open nomenclature (genus + ``sp.``, the interim name verbatim).

Real SQLite database, the real review API and the real CLI.
"""

from __future__ import annotations

from pathlib import Path

from biodiscover.storage.db import Database
from biodiscover.storage.db.taxonomy import register_lineages
from biodiscover.storage.records import Specimen
from fixtures.run_export import export_dwca

LINEAGE = {"order": "Coleoptera", "family": "Gaeaxidae", "subfamily": "unassigned Gaeaxidae"}
INTERIM = "Craura sp. BIOUG1234-A01"


def _db(path: Path) -> tuple[Path, int, list[int]]:
    bases = "ACGT" * 150
    specimens = [Specimen(processid=f"FILL{i}-24", dna_barcode=bases, country="Peru") for i in range(4)]
    db = Database.create(path)
    try:
        db.ingest(specimens, collection="plate", backup=False)
        register_lineages(db, [{**LINEAGE, "genus": "Craura", "species": INTERIM}], source="reference:test")
        run = db.start_run("triage", {}, backup=False)
        labels = {**LINEAGE, "genus": None, "species": None}
        db.write_assignments(run, [
            # named to the filler "subfamily": the family is the deepest real taxon
            {"processid": "FILL0-24", "deepest_rank": "subfamily", "deepest_taxon": "unassigned Gaeaxidae",
             "labels": labels, "confidences": {"order": 1.0, "family": 0.99, "subfamily": 0.7}, "novelty": 0.1},
            # named to a genus below the filler: the genus stays, the filler leaves the subfamily column
            {"processid": "FILL1-24", "deepest_rank": "genus", "deepest_taxon": "Craura",
             "labels": {**LINEAGE, "genus": "Craura"},
             "confidences": {"order": 1.0, "family": 0.99, "subfamily": 0.99, "genus": 0.99}, "novelty": 0.2},
            *({"processid": f"FILL{i}-24", "deepest_rank": "genus", "deepest_taxon": "Craura",
               "labels": {**LINEAGE, "genus": "Craura"}, "is_novel": True,
               "confidences": {"order": 1.0, "family": 0.99, "subfamily": 0.99, "genus": 0.99}, "novelty": 0.99}
              for i in (2, 3))])
        ids = db.write_proposals(run, [{"members": ["FILL2-24"], "parent_lineage": {**LINEAGE, "genus": "Craura"}},
                                       {"members": ["FILL3-24"], "parent_lineage": {**LINEAGE, "genus": "Craura"}}])
        db.finish_run(run, "completed")
        (species_id, _), = db.known_species(INTERIM, limit=1)
        db.assign(ids[0], db.proposal(ids[0]).version, species_id, reviewer="Ana Silva")
    finally:
        db.close()
    return path, run, list(ids)


def _occurrences(tmp_path: Path) -> dict[str, dict[str, str]]:
    path, run, _ = _db(tmp_path / "lab.sqlite")
    rows, history = export_dwca(path, run, tmp_path)
    assert "unassigned" not in history
    return rows


def test_a_rank_filler_is_never_a_dwc_taxon(tmp_path: Path) -> None:
    rows = _occurrences(tmp_path)
    assert not any("unassigned" in r[t] for r in rows.values()
                   for t in ("order", "family", "subfamily", "genus", "scientificName"))
    only_filler = rows["FILL0-24"]
    assert (only_filler["scientificName"], only_filler["taxonRank"], only_filler["family"]) == \
        ("Gaeaxidae", "family", "Gaeaxidae")
    assert "confidence=0.990 at family" in only_filler["identificationRemarks"]
    below = rows["FILL1-24"]
    assert (below["scientificName"], below["taxonRank"], below["subfamily"], below["family"]) == \
        ("Craura", "genus", "", "Gaeaxidae")


def test_a_candidate_identified_as_an_interim_species_is_in_open_nomenclature(tmp_path: Path) -> None:
    row = _occurrences(tmp_path)["FILL2-24"]
    assert (row["scientificName"], row["taxonRank"], row["identificationQualifier"],
            row["verbatimIdentification"]) == ("Craura", "genus", "sp.", INTERIM)
    assert row["identifiedBy"] == "Ana Silva"
    assert row["identificationVerificationStatus"] == "identified by reviewer (known species)"


def test_a_candidates_rank_columns_are_where_it_is_placed() -> None:
    """A reviewer's placement (a move, a new genus, an assignment's genus) is the rank columns of its members; the
    machine's labels stay only where the export table records no lineage (an older table)."""
    from biodiscover.workflows.export.dwca import _placed_ranks

    machine = {"order": "Lepidoptera", "family": "Noctuidae", "subfamily": None, "genus": "Ponometia"}
    row = dict(machine)
    _placed_ranks(row, {"parent_lineage": {"order": "Lepidoptera", "family": "Erebidae", "subfamily": "Arctiinae",
                                           "genus": "Clemensia"}})
    assert row == {"order": "Lepidoptera", "family": "Erebidae", "subfamily": "Arctiinae", "genus": "Clemensia"}
    row = dict(machine)
    _placed_ranks(row, {"parent_lineage": {"order": "Lepidoptera", "family": "unassigned Lepidoptera"}})
    assert row == {"order": "Lepidoptera", "family": None, "subfamily": None, "genus": None}  # placed at order
    row = dict(machine)
    _placed_ranks(row, {"parent_lineage": None})
    assert row == machine


SUPPLIED = {"SUP1": ("Harpalus", "Harpalus sp.", ("Harpalus", "genus", "sp.")),
            "SUP2": ("Pterostichus", "Pterostichus sp. 3", ("Pterostichus", "genus", "sp.")),
            "SUP3": ("Carabus", "Carabus cf. granulatus", ("Carabus granulatus", "species", "cf.")),
            "SUP4": ("Amara", "Amara aff. aenea", ("Amara aenea", "species", "aff.")),
            "SUP5": ("Culex", "Culex pipiens s.l.", ("Culex pipiens", "species", "s.l.")),
            "SUP6": ("Abax", "Abax parallelepipedus", ("Abax parallelepipedus", "species", "")),
            "SUP7": ("Aus", "Aus bus (Linnaeus, 1758)", ("Aus bus (Linnaeus, 1758)", "species", ""))}


def test_names_supplied_in_open_nomenclature_are_split_as_the_machines_own(tmp_path: Path) -> None:
    """e31 F13: names supplied with a collection ("Harpalus sp.", "Carabus cf. granulatus", "Culex pipiens s.l.")
    went into identification.txt whole as scientificName at taxonRank species (GBIF matches "Harpalus sp." to
    nothing); the machine's own interim names were already split. Now the genus or species, its rank and the
    qualifier, the name as supplied in verbatimIdentification."""
    import csv
    import io

    path = tmp_path / "lab.sqlite"
    db = Database.create(path)
    try:
        db.ingest([Specimen(processid=pid, order="Coleoptera", family="Carabidae", genus=genus, species=species,
                            dna_barcode="ACGT" * 150) for pid, (genus, species, _) in SUPPLIED.items()],
                  collection="plate", backup=False)
        run = db.start_run("triage", {}, backup=False)
        db.write_assignments(run, [{"processid": pid, "deepest_rank": "family", "deepest_taxon": "Carabidae",
                                    "labels": {"order": "Coleoptera", "family": "Carabidae"},
                                    "confidences": {"order": 1.0, "family": 0.99}, "novelty": 0.1}
                                   for pid in SUPPLIED])
        db.finish_run(run, "completed")
    finally:
        db.close()
    _rows, history = export_dwca(path, run, tmp_path)
    provided = {r["coreid"]: r for r in csv.DictReader(io.StringIO(history), delimiter="\t", quoting=csv.QUOTE_NONE)
                if r["identificationID"].endswith(":provided")}
    assert {pid: (r["scientificName"], r["taxonRank"], r["identificationQualifier"])
            for pid, r in provided.items()} == {pid: want for pid, (_, _, want) in SUPPLIED.items()}
    assert {pid: r["verbatimIdentification"] for pid, r in provided.items()} == {
        pid: species for pid, (_, species, _) in SUPPLIED.items()}


def test_the_reports_count_after_review_says_why_the_machines_interim_names_count_below_species(
        tmp_path: Path) -> None:
    """e31 review F16: "1015 named to species by the machine", then "after review … 1003 specimens are named to
    species": review seemed to have un-named 12, who were named by the machine to an accepted provisional species,
    which the archive writes at its parent's rank (an interim name alike). The sentence says so."""
    import html

    from biodiscover.workflows.export import export_run

    path = tmp_path / "lab.sqlite"
    db = Database.create(path)
    try:
        db.ingest([Specimen(processid=f"N{i}", dna_barcode="ACGT" * 150, country="Peru") for i in range(2)],
                  collection="plate", backup=False)
        register_lineages(db, [{**LINEAGE, "genus": "Craura", "species": s} for s in (INTERIM, "Craura alba")],
                          source="reference:test")
        run = db.start_run("triage", {}, backup=False)
        db.write_assignments(run, [
            {"processid": f"N{i}", "deepest_rank": "species", "deepest_taxon": name,
             "labels": {**LINEAGE, "genus": "Craura", "species": name},
             "confidences": {"order": 1.0, "family": 0.99, "subfamily": 0.99, "genus": 0.99, "species": 0.99},
             "novelty": 0.01} for i, name in enumerate((INTERIM, "Craura alba"))])
        db.finish_run(run, "completed")
    finally:
        db.close()
    export_run(path, run, "html", tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<div class='card'><b>2</b>named to species by the machine</div>" in page
    assert html.escape("after review (the determinations of the archive and assignments.csv) 1 specimen is named "
                       "to species; 1 specimen the machine named to a provisional or interim species counts at "
                       "the rank the archive places it in: 1 to the reference's interim species "
                       f"(1 {INTERIM}).") in page, page[-3000:]
