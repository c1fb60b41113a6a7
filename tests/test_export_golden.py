"""Whole-output checks of the Darwin Core rows: every column of every row of a small, hand-made run.

The other export tests look at chosen cells of a large synthetic run; mutation samples kept finding
survivors where a cell nobody looked at changed (a default phylum, a reviewer's day, a qualifier, the
history extension's reference). Here six specimens cover each way a specimen can end up in the archive
— named to species by the machine, an interim BOLD name, a candidate a reviewer accepted (with notes,
one undone and redone), a rejected candidate, a candidate identified as a known species, a pending
candidate under a subfamily, an image-only record of another class — and each row is written out in
full, as a taxonomist reading the archive would expect it.
"""

from __future__ import annotations

import pandas as pd

from biodiscover.workflows.export import RunExport
from biodiscover.workflows.export.dwca import occurrence_rows
from biodiscover.workflows.export.tables import ReviewTrail, TrailNote, review_trails

RUN = {"id": 3, "kind": "triage", "status": "completed", "model_fingerprint": "sha256:0f1e",
       "started_at": "2026-11-20T08:00:00", "finished_at": "2026-11-20T08:30:00", "parameters": {}}
MACHINE_STATUS = "unverified (machine prediction)"
REJECTED = "candidate species rejected by reviewer (the machine's name stands)"
METHOD = "method=biodiscover triage run 3; model=sha256:0f1e"
LINEAGE = ("Diptera", "Phoridae", "Metopininae", "Megaselia")


def _assignment(pid: str, deepest: str | None, taxon: str | None, novelty: float, novel: bool,
                labels: tuple[str | None, ...], conf: float) -> dict[str, object]:
    row: dict[str, object] = {"processid": pid, "deepest_rank": deepest, "deepest_taxon": taxon,
                              "novelty": novelty, "is_novel": novel}
    for rank, label in zip(("order", "family", "subfamily", "genus", "species"), labels):
        row[f"label_{rank}"], row[f"confidence_{rank}"] = label, conf
    return row


def _specimen(pid: str, *, lat: float | None = None, lon: float | None = None, klass: str | None = None,
              **given: str) -> dict[str, object]:
    """A specimen row with every column the exports read; what is not given is missing (None)."""
    cols = ("sampleid", "phylum", "order", "family", "genus", "species", "dna_barcode", "dna_bin", "country",
            "province_state", "source")
    return {"processid": pid, **{c: given.get(c) for c in cols}, "class": klass, "coord-lat": lat, "coord-lon": lon}


def _run() -> RunExport:
    specimens = pd.DataFrame([
        _specimen("BIOUG001-24", sampleid="S1", order="Diptera", family="Phoridae", genus="Megaselia",
                  species="Megaselia scalaris", dna_barcode="ACGTACGTAA", dna_bin="BOLD:AAA0001", country="Canada",
                  province_state="Ontario", lat=43.5, lon=-80.25, source="plate1.csv"),
        _specimen("BIOUG002-24", sampleid="S2", order="Diptera", dna_bin="BOLD:ACX1234", country="Canada",
                  source="plate1.csv"),
        _specimen("NOVEL01", sampleid="S3", dna_barcode="ACGTTT", country="Costa Rica", province_state="Guanacaste",
                  lat=10.5, lon=-85.4),
        _specimen("NOVEL02", sampleid="S4", dna_bin="BOLD:ZZZ0002", country="Costa Rica"),
        _specimen("NOVEL03", sampleid="S5"),
        _specimen("NOVEL04", sampleid="S6", dna_bin="BOLD:ZZZ0004"),
        _specimen("IMG0001", phylum="Arthropoda", klass="Arachnida"),
    ])
    assignments = pd.DataFrame([
        _assignment("BIOUG001-24", "species", "Megaselia scalaris", 0.05, False, (*LINEAGE, "Megaselia scalaris"),
                    0.95),
        _assignment("BIOUG002-24", "species", "Megaselia sp. BIOUG63189-C12", 0.3, False,
                    (*LINEAGE, "Megaselia sp. BIOUG63189-C12"), 0.8),
        # labels below the deepest confident rank are the model's unconfident guesses: never written as names
        _assignment("NOVEL01", "genus", "Megaselia", 0.85, True, (*LINEAGE, "Megaselia k1"), 0.9),
        _assignment("NOVEL02", "family", "Phoridae", 0.9, True, (*LINEAGE, "Megaselia k2"), 0.75),
        _assignment("NOVEL03", "genus", "Megaselia", 0.6, True, (*LINEAGE, None), 0.7),
        _assignment("NOVEL04", "subfamily", "Metopininae", 0.95, True, (*LINEAGE, None), 0.65),
        {"processid": "IMG0001", "deepest_rank": None, "deepest_taxon": None, "novelty": 0.55, "is_novel": True},
    ])
    proposals = pd.DataFrame([
        {"proposal_id": 1, "provisional_name": "Megaselia sp. BD-0001", "parent_rank": "genus",
         "parent_taxon": "Megaselia", "status": "accepted", "version": 2, "size": 1},
        {"proposal_id": 2, "provisional_name": None, "parent_rank": "family", "parent_taxon": "Phoridae",
         "status": "rejected", "version": 2, "size": 1},
        {"proposal_id": 3, "provisional_name": "Megaselia scalaris", "parent_rank": "genus",
         "parent_taxon": "Megaselia", "status": "assigned", "version": 2, "size": 1},
        {"proposal_id": 4, "provisional_name": None, "parent_rank": "subfamily", "parent_taxon": "Metopininae",
         "status": "pending", "version": 1, "size": 1},
    ])
    members = pd.DataFrame([{"proposal_id": i, "processid": f"NOVEL0{i}", "probability": 0.9} for i in (1, 2, 3, 4)])
    log = [  # (id, proposal, action, reviewer, when, note, the review an undo takes back)
        (1, 1, "accept", "ana", "2026-11-21T10:00:00", None, None),
        (2, 1, "note", "ben", "2026-11-22T09:00:00", "wing venation differs", None),
        (3, 1, "undo", "ben", "2026-11-22T09:01:00", None, 2),
        (4, 1, "undo", "ben", "2026-11-22T09:02:00", None, 3),  # undoes the undo: the note is back
        (5, 2, "reject", "ana", "2026-11-21T11:00:00", "looks like contamination", None),
        (6, 1, "note", "ana", "2026-11-23T12:00:00", "checked genitalia", None),
        (7, 3, "assign", "ben", "2026-11-22T15:30:00", None, None),
        (8, 4, "reject", "ana", "2026-11-24T08:00:00", "too early", None),
        (9, 4, "undo", "ana", "2026-11-24T08:05:00", None, 8),
    ]
    reviews = pd.DataFrame(log, columns=["id", "proposal_id", "action", "reviewer", "created_at", "note",
                                         "target_review_id"])
    return RunExport(run=dict(RUN), specimens=specimens, assignments=assignments, proposals=proposals,
                     members=members, reviews=reviews)


def _base(pid: str, catalog: str | None, country: str | None, province: str | None, lat: float | None,
          lon: float | None, ranks: tuple[str | None, ...], *, klass: str = "Insecta") -> dict[str, object]:
    order, family, subfamily, genus = (*ranks, None, None, None, None)[:4]
    return {"occurrenceID": pid, "basisOfRecord": "PreservedSpecimen", "catalogNumber": catalog, "country": country,
            "stateProvince": province, "decimalLatitude": lat, "decimalLongitude": lon,
            "geodeticDatum": "WGS84" if lat is not None else None, "kingdom": "Animalia", "phylum": "Arthropoda",
            "class": klass, "order": order, "family": family, "subfamily": subfamily, "genus": genus,
            "identifiedBy": "biodiscover", "dateIdentified": "2026-11-20",
            "identificationVerificationStatus": MACHINE_STATUS}


DNA_METHOD = {"target_gene": "COI", "target_subfragment": "COI-5P",
              "otu_class_appr": "biodiscover triage (k-NN retrieval; P(right) per rank from a model trained on "
                                "queries simulated from the reference)",
              "otu_seq_comp_appr": "FAISS retrieval, pairwise identity of top hits",
              "otu_db": "biodiscover model sha256:0f1e"}


def test_every_darwin_core_row_in_full() -> None:
    occ, ident, dna = occurrence_rows(_run())
    by_id = {r["occurrenceID"]: r for r in occ}
    assert list(by_id) == ["BIOUG001-24", "BIOUG002-24", "NOVEL01", "NOVEL02", "NOVEL03", "NOVEL04", "IMG0001"]

    # named to species by the machine; its barcode is in the DNA extension (no BOLD record is claimed: nothing the
    # ingest keeps says the record came from BOLD)
    assert by_id["BIOUG001-24"] == {
        **_base("BIOUG001-24", "S1", "Canada", "Ontario", 43.5, -80.25, LINEAGE),
        "scientificName": "Megaselia scalaris", "taxonRank": "species", "identificationQualifier": None,
        "verbatimIdentification": "Megaselia scalaris", "taxonConceptID": None,
        "identificationRemarks": f"{METHOD}; confidence=0.950 at species; novelty=0.050"}
    # a BOLD interim name is not a binomial: the genus, "sp.", the name verbatim, its BIN as the concept
    assert by_id["BIOUG002-24"] == {
        **_base("BIOUG002-24", "S2", "Canada", None, None, None, LINEAGE),
        "scientificName": "Megaselia", "taxonRank": "genus", "identificationQualifier": "sp.",
        "verbatimIdentification": "Megaselia sp. BIOUG63189-C12", "taxonConceptID": "BOLD:ACX1234",
        "identificationRemarks": f"{METHOD}; confidence=0.800 at species; novelty=0.300"}
    # a candidate a reviewer accepted: the reviewer's determination, their day, every note in force
    assert by_id["NOVEL01"] == {
        **_base("NOVEL01", "S3", "Costa Rica", "Guanacaste", 10.5, -85.4, LINEAGE),
        "scientificName": "Megaselia", "taxonRank": "genus", "identificationQualifier": "sp.",
        "verbatimIdentification": "Megaselia sp. BD-0001", "taxonConceptID": "biodiscover:run:3:candidate:1",
        "identificationRemarks": f"{METHOD}; confidence=0.900 at genus; novelty=0.850; candidate species 1 "
                                 "(status accepted, version 2); reviewer notes: “wing venation differs” "
                                 "(ben, 2026-11-22); “checked genitalia” (ana, 2026-11-23)",
        "identifiedBy": "ana", "dateIdentified": "2026-11-21",
        "identificationVerificationStatus": "identified by reviewer (provisional species)"}
    # a novel specimen placed in a family whose candidate was rejected: "Phoridae gen. sp.", the BIN, why, and
    # who rejected it when (the machine's name stands, reviewed)
    assert by_id["NOVEL02"] == {
        **_base("NOVEL02", "S4", "Costa Rica", None, None, None, ("Diptera", "Phoridae")),
        "scientificName": "Phoridae", "taxonRank": "family", "identificationQualifier": "gen. sp.",
        "verbatimIdentification": "Phoridae gen. sp.", "taxonConceptID": "BOLD:ZZZ0002",
        "identificationRemarks": f"{METHOD}; confidence=0.750 at family; novelty=0.900; proposed in candidate "
                                 "species 2, rejected by ana on 2026-11-21; reviewer notes: "
                                 "“looks like contamination” (ana, 2026-11-21)",
        # identifiedBy is who assigned the name: the machine's stands (the rejection is in the remarks)
        "identifiedBy": "biodiscover", "dateIdentified": "2026-11-20",
        "identificationVerificationStatus": REJECTED}
    # a candidate a reviewer identified as a known species: that species, by that reviewer
    assert by_id["NOVEL03"] == {
        **_base("NOVEL03", "S5", None, None, None, None, LINEAGE),
        "scientificName": "Megaselia scalaris", "taxonRank": "species", "identificationQualifier": None,
        "verbatimIdentification": "Megaselia scalaris", "taxonConceptID": None,
        "identificationRemarks": f"{METHOD}; confidence=0.700 at genus; novelty=0.600; candidate species 3 "
                                 "identified by a reviewer as a known species",
        "identifiedBy": "ben", "dateIdentified": "2026-11-22",
        "identificationVerificationStatus": "identified by reviewer (known species)"}
    # a pending candidate under a subfamily (its rejection undone): a working label, still the machine's
    assert by_id["NOVEL04"] == {
        **_base("NOVEL04", "S6", None, None, None, None, LINEAGE[:3]),
        "scientificName": "Metopininae", "taxonRank": "subfamily", "identificationQualifier": "gen. sp.",
        "verbatimIdentification": "Metopininae gen. sp. cand4", "taxonConceptID": "biodiscover:run:3:candidate:4",
        "identificationRemarks": f"{METHOD}; confidence=0.650 at subfamily; novelty=0.950; candidate species 4 "
                                 "(status pending, version 1)"}
    # nothing named below class: the specimen's own class (a spider is no insect), no confidence to give
    assert by_id["IMG0001"] == {
        **_base("IMG0001", None, None, None, None, None, (), klass="Arachnida"),
        "scientificName": "Arachnida", "taxonRank": "class",
        "identificationRemarks": f"{METHOD}; novelty=0.550; not named below class with confidence"}

    # history: what came with the collection (citing its file), and the machine's call a reviewer replaced
    machine_novel01 = {"scientificName": "Megaselia", "taxonRank": "genus", "identificationQualifier": "sp.",
                       "verbatimIdentification": "Megaselia sp.", "taxonConceptID": None,
                       "identifiedBy": "biodiscover", "dateIdentified": "2026-11-20",
                       "identificationRemarks": f"{METHOD}; confidence=0.900 at genus; novelty=0.850",
                       "identificationVerificationStatus": MACHINE_STATUS,
                       "identificationReferences": "biodiscover model sha256:0f1e"}

    def current(pid: str, identification_id: str) -> dict:
        """The current determination's row: the core's terms (asserted in full above), marked current."""
        core = by_id[pid]
        return {"id": pid, "identificationID": identification_id,
                **{t: core.get(t) for t in ("scientificName", "taxonRank", "identificationQualifier",
                                            "verbatimIdentification", "taxonConceptID", "identifiedBy",
                                            "dateIdentified", "identificationVerificationStatus")},
                "identificationRemarks": "current determination (the occurrence core's); "
                                         + core["identificationRemarks"],
                # the machine's cites what it named from (the run recorded no reference file: the model alone)
                "identificationReferences": "biodiscover model sha256:0f1e" if core["identifiedBy"] == "biodiscover"
                else None}

    # the current determination last, under the id it keeps once superseded: the machine's <id>:run3, one a
    # reviewer's decision made <id>:review<the review in force that decided> (1 accept, 5 reject, 7 assign; NOVEL04's
    # rejection was undone: the machine's)
    assert ident == [
        {"id": "BIOUG001-24", "identificationID": "BIOUG001-24:provided", "scientificName": "Megaselia scalaris",
         "taxonRank": "species", "identificationQualifier": None, "verbatimIdentification": "Megaselia scalaris",
         "identifiedBy": "provided with the collection",
         "identificationVerificationStatus": "as supplied", "identificationReferences": "plate1.csv"},
        current("BIOUG001-24", "BIOUG001-24:run3"),
        {"id": "BIOUG002-24", "identificationID": "BIOUG002-24:provided", "scientificName": "Diptera",
         "taxonRank": "order", "identificationQualifier": None, "verbatimIdentification": "Diptera",
         "identifiedBy": "provided with the collection",
         "identificationVerificationStatus": "as supplied", "identificationReferences": "plate1.csv"},
        current("BIOUG002-24", "BIOUG002-24:run3"),
        {"id": "NOVEL01", "identificationID": "NOVEL01:run3", **machine_novel01},
        current("NOVEL01", "NOVEL01:review1"),
        # the machine's name, current: the rejection let it stand, reviewed; under the rejection's id, the machine's
        # row as it was before the review (e32 review R9)
        {"id": "NOVEL02", "identificationID": "NOVEL02:run3", "scientificName": "Phoridae", "taxonRank": "family",
         "identificationQualifier": "gen. sp.", "verbatimIdentification": "Phoridae gen. sp.",
         "taxonConceptID": "BOLD:ZZZ0002", "identifiedBy": "biodiscover", "dateIdentified": "2026-11-20",
         "identificationRemarks": f"{METHOD}; confidence=0.750 at family; novelty=0.900",
         "identificationVerificationStatus": "unverified (machine prediction)",
         "identificationReferences": "biodiscover model sha256:0f1e"},
        current("NOVEL02", "NOVEL02:review5"),
        {"id": "NOVEL03", "identificationID": "NOVEL03:run3", **machine_novel01,
         "identificationRemarks": f"{METHOD}; confidence=0.700 at genus; novelty=0.600"},
        current("NOVEL03", "NOVEL03:review7"),
        current("NOVEL04", "NOVEL04:run3"),
        current("IMG0001", "IMG0001:run3"),
    ]
    assert dna == [{"id": "BIOUG001-24", "DNA_sequence": "ACGTACGTAA", **DNA_METHOD},
                   {"id": "NOVEL01", "DNA_sequence": "ACGTTT", **DNA_METHOD}]


def test_review_trails_leave_out_undone_reviews_and_put_back_an_undone_undo() -> None:
    trails = review_trails(_run().reviews)
    assert trails == {
        1: ReviewTrail(decision="accept", decided_by="ana", decided_at="2026-11-21T10:00:00",
                       reviewers=("ana", "ben"),
                       notes=(TrailNote("2026-11-22T09:00:00", "ben", "wing venation differs"),
                              TrailNote("2026-11-23T12:00:00", "ana", "checked genitalia"))),
        2: ReviewTrail(decision="reject", decided_by="ana", decided_at="2026-11-21T11:00:00", reviewers=("ana",),
                       notes=(TrailNote("2026-11-21T11:00:00", "ana", "looks like contamination"),)),
        3: ReviewTrail(decision="assign", decided_by="ben", decided_at="2026-11-22T15:30:00", reviewers=("ben",)),
    }
    assert trails[1].notes_text() == ('“wing venation differs” (ben, 2026-11-22); '
                                       '“checked genitalia” (ana, 2026-11-23)')
    assert review_trails(pd.DataFrame()) == {} and review_trails(pd.DataFrame([{"id": 1}])) == {}


def test_undo_redo_undo_leaves_the_review_undone_however_long_the_chain() -> None:
    """Undo in the review app undoes the last review, so pressing it again and again alternates: after an odd
    number of undos in a chain the first review is not in force, after an even number it is."""
    base = [(1, 1, "accept", "ana", "2026-11-21T10:00:00", None, None),
            (2, 1, "note", "ben", "2026-11-22T09:00:00", "wing venation differs", None)]
    columns = ["id", "proposal_id", "action", "reviewer", "created_at", "note", "target_review_id"]
    for n_undos in range(1, 6):
        chain = [(3 + i, 1, "undo", "ben", f"2026-11-22T10:0{i}:00", None, 2 + i) for i in range(n_undos)]
        trail = review_trails(pd.DataFrame(base + chain, columns=columns))[1]
        in_force = n_undos % 2 == 0
        assert trail.notes == ((TrailNote("2026-11-22T09:00:00", "ben", "wing venation differs"),) if in_force
                               else ()), \
            n_undos
        assert trail.reviewers == (("ana", "ben") if in_force else ("ana",)) and trail.decision == "accept"


def _eml_head(run_id: int) -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<eml:eml xmlns:eml="eml://ecoinformatics.org/eml-2.1.1" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xsi:schemaLocation="eml://ecoinformatics.org/eml-2.1.1 '
            'http://rs.gbif.org/schema/eml-gbif-profile/1.1/eml.xsd" '
            f'packageId="biodiscover-run-{run_id}" system="biodiscover" scope="system" xml:lang="en">\n  <dataset>\n')


def test_the_dataset_metadata_in_full_with_and_without_what_a_publisher_needs() -> None:
    """eml.xml names every creator part by part (given and surname, organisation, e-mail, ORCID), the metadata
    provider and the contact (the same party, as GBIF's IPT writes them), the licence GBIF knows, the counts of
    candidates (accepted or not) and says when the run did not finish; without creators the machine is named,
    without a licence the text says to set one. (The metadataProvider lines are new: exports before it had none.)"""
    import importlib.metadata
    from datetime import UTC, datetime

    from biodiscover.workflows.export.dwca import eml_xml
    from biodiscover.workflows.export.metadata import DatasetMetadata, Person

    today = datetime.now(UTC).date().isoformat()
    candidates = _run().proposals[lambda p: ~p["status"].isin(["rejected", "assigned"])]
    meta = DatasetMetadata(title="Plate 42 & friends", abstract="Malaise trap, 2026.", licence="CC-BY-4.0",
                           creators=(Person("Ana M. Silva", "INBio", "ana@example.org", "0000-0002-1825-0097"),
                                     Person(organization="Museo <Nacional>")),
                           contact=Person("Desk", email="desk@example.org"))
    run = {**RUN, "status": "failed"}
    # the methods of a run that recorded no settings (coverage: no occurrences given; both are in
    # tests/test_export_publish.py)
    methods = ("    <methods>\n      <methodStep><description><para>Specimens were named with biodiscover "
               f"{importlib.metadata.version('biodiscover')} (triage run 3, model sha256:0f1e). How it named and "
               "grouped them is not recorded with this run.</para></description></methodStep>\n    </methods>\n")
    assert eml_xml(run, 7, candidates, meta, partial=True) == _eml_head(3) + (
        "    <title>Plate 42 &amp; friends</title>\n"
        "    <creator><individualName><givenName>Ana M.</givenName><surName>Silva</surName></individualName>"
        "<organizationName>INBio</organizationName><electronicMailAddress>ana@example.org</electronicMailAddress>"
        '<userId directory="https://orcid.org/">0000-0002-1825-0097</userId></creator>\n'
        "    <creator><organizationName>Museo &lt;Nacional&gt;</organizationName></creator>\n"
        "    <metadataProvider><individualName><surName>Desk</surName></individualName>"
        "<electronicMailAddress>desk@example.org</electronicMailAddress></metadataProvider>\n"
        f"    <pubDate>{today}</pubDate>\n    <language>en</language>\n"
        "    <abstract><para>Malaise trap, 2026.</para><para>7 specimens named to their deepest confident rank by "
        "biodiscover "
        "(triage run 3, model sha256:0f1e); 2 candidate species proposed (1 accepted by a reviewer, 1 awaiting "
        "review). The candidate species accepted or awaiting review are in open nomenclature (provisional names, "
        "not described species). The run did not complete (status failed): this dataset is partial.</para>"
        "</abstract>\n"
        '    <intellectualRights><para>This work is licensed under a <ulink '
        'url="http://creativecommons.org/licenses/by/4.0/legalcode"><citetitle>Creative Commons Attribution '
        "(CC-BY) 4.0 License</citetitle></ulink>.</para></intellectualRights>\n"
        "    <contact><individualName><surName>Desk</surName></individualName>"
        "<electronicMailAddress>desk@example.org</electronicMailAddress></contact>\n"
        + methods + "  </dataset>\n</eml:eml>\n")
    bare = eml_xml(RUN, 7, candidates.iloc[0:0], DatasetMetadata())
    assert bare == _eml_head(3) + (
        "    <title>biodiscover run 3: identifications and candidate species</title>\n"
        "    <creator><organizationName>biodiscover</organizationName></creator>\n"
        "    <metadataProvider><organizationName>biodiscover</organizationName></metadataProvider>\n"
        f"    <pubDate>{today}</pubDate>\n    <language>en</language>\n"
        "    <abstract><para>7 specimens named to their deepest confident rank by biodiscover (triage run 3, model "
        "sha256:0f1e); 0 candidate species proposed.</para></abstract>\n"
        "    <intellectualRights><para>No licence given: set one with --licence or --metadata before publishing."
        "</para></intellectualRights>\n"
        "    <contact><organizationName>biodiscover</organizationName></contact>\n"
        + methods + "  </dataset>\n</eml:eml>\n")
    # with creators but no contact, the first creator is the contact and the metadata provider
    first = DatasetMetadata(creators=(Person("Ana Silva", email="ana@example.org"),))
    for tag in ("metadataProvider", "contact"):
        assert f"<{tag}><individualName><givenName>Ana</givenName><surName>Silva</surName></individualName>" \
               f"<electronicMailAddress>ana@example.org</electronicMailAddress></{tag}>" in \
               eml_xml(RUN, 1, candidates, first)
    # a name's parts as given (two surnames), a mononym, and a role that is no person: none split at a space
    parted = DatasetMetadata(creators=(Person("Ana María Silva Pérez", given="Ana María", surname="Silva Pérez"),
                                       Person(surname="Aristotle")),
                             contact=Person(organization="INBio", position="Collections desk"))
    text = eml_xml(RUN, 1, candidates, parted)
    assert ("    <creator><individualName><givenName>Ana María</givenName><surName>Silva Pérez</surName>"
            "</individualName></creator>\n"
            "    <creator><individualName><surName>Aristotle</surName></individualName></creator>\n"
            "    <metadataProvider><organizationName>INBio</organizationName><positionName>Collections desk"
            "</positionName></metadataProvider>\n") in text
    assert ("    <contact><organizationName>INBio</organizationName><positionName>Collections desk</positionName>"
            "</contact>\n") in text


def test_a_specimen_the_engine_did_not_call_novel_is_named_plainly_at_its_rank() -> None:
    """Without the engine's novelty decision (``is_novel`` missing: an older run) a specimen placed in a family
    is that family, not "Phoridae gen. sp." with its BIN as a new species' concept."""
    specimens = pd.DataFrame([_specimen("OLD0001", dna_bin="BOLD:AAB0001")])
    row = _assignment("OLD0001", "family", "Phoridae", 0.4, False, ("Diptera", "Phoridae", None, None, None), 0.9)
    row["is_novel"] = None
    data = RunExport(run=dict(RUN), specimens=specimens, assignments=pd.DataFrame([row]), proposals=pd.DataFrame(),
                     members=pd.DataFrame())
    (occ,), ident, dna = occurrence_rows(data)
    assert (occ["scientificName"], occ["taxonRank"], occ["identificationQualifier"], occ["verbatimIdentification"],
            occ["taxonConceptID"]) == ("Phoridae", "family", None, "Phoridae", None)
    assert [r["identificationID"] for r in ident] == ["OLD0001:run3"] and dna == []  # the current one only


def test_every_fasta_file_in_full() -> None:
    """The fasta export, byte for byte: BOLD's ``processid|identification|marker|accession`` first (the marker
    third, where BOLD and our own reader read it; no GenBank accession to give), then the candidate id, the
    membership, the BIN and the parent taxon. Only the accepted candidate 1 has a barcoded member: the rejected
    and the assigned are no candidate species, the pending one's member has no barcode. Exports before the
    marker moved to the third field wrote ``NOVEL01|Megaselia sp. BD-0001|Megaselia|1|0.900|``."""
    from biodiscover.workflows.export.fasta import render
    from biodiscover.workflows.export.metadata import ExportOptions

    # all_specimens.fasta: every barcoded specimen once, under its current determination (the machine's species for
    # BIOUG001-24, with its BIN), a candidate's member as in its candidate's file
    assert render(_run(), ExportOptions()) == {
        "1_Megaselia_sp._BD-0001.fasta": b">NOVEL01 |Megaselia sp. BD-0001|COI-5P||1|0.900||Megaselia\nACGTTT\n",
        "all_specimens.fasta": b">BIOUG001-24 |Megaselia scalaris|COI-5P||||BOLD:AAA0001|\nACGTACGTAA\n"
                               b">NOVEL01 |Megaselia sp. BD-0001|COI-5P||1|0.900||Megaselia\nACGTTT\n"}


def test_every_specimens_determination_in_assignments_csv_in_full() -> None:
    """assignments.csv says per specimen what the DwC core says (the same terms, the same values, from
    ``dwca.determinations``), plus the proposal it was proposed in and that proposal's status, rejected and
    assigned ones included (``proposal_id``: the live candidate species, and a candidate identified as a known
    species, whose members it still groups; not a rejected one). These columns
    are new: older exports ended at ``provisional_name``."""
    import csv
    import io

    from biodiscover.workflows.export.csv import render
    from biodiscover.workflows.export.metadata import ExportOptions

    text = render(_run(), ExportOptions())["assignments.csv"].decode("utf-8-sig")
    columns = ("processid", "proposal_id", "provisional_name", "proposed_in", "candidate_status", "scientificName",
               "taxonRank", "identificationQualifier", "verbatimIdentification", "identifiedBy", "dateIdentified",
               "identificationVerificationStatus")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0])[-10:] == list(columns[2:])
    machine = ("biodiscover", "2026-11-20", MACHINE_STATUS)
    assert [tuple(r[c] for c in columns) for r in rows] == [
        ("BIOUG001-24", "", "", "", "", "Megaselia scalaris", "species", "", "Megaselia scalaris", *machine),
        ("BIOUG002-24", "", "", "", "", "Megaselia", "genus", "sp.", "Megaselia sp. BIOUG63189-C12", *machine),
        ("NOVEL01", "1", "Megaselia sp. BD-0001", "1", "accepted", "Megaselia", "genus", "sp.",
         "Megaselia sp. BD-0001", "ana", "2026-11-21", "identified by reviewer (provisional species)"),
        ("NOVEL02", "", "", "2", "rejected", "Phoridae", "family", "gen. sp.", "Phoridae gen. sp.",
         "biodiscover", "2026-11-20", REJECTED),
        ("NOVEL03", "3", "Megaselia scalaris", "3", "assigned", "Megaselia scalaris", "species", "",
         "Megaselia scalaris", "ben", "2026-11-22", "identified by reviewer (known species)"),
        ("NOVEL04", "4", "Metopininae gen. sp. cand4", "4", "pending", "Metopininae", "subfamily", "gen. sp.",
         "Metopininae gen. sp. cand4", *machine),
        ("IMG0001", "", "", "", "", "Arachnida", "class", "", "", *machine),
    ]
