"""The Darwin Core archive names the reference data a run named from (e32 review R22).

dna.txt's ``otu_db`` (MIxS: the reference database and its version) read only "model sha256:4e2d664d…", and
identification.txt declared ``identificationReferences`` but left all 1,255 rows empty: a GBIF user could not tell
which barcodes the specimens were compared with. Both now name the reference file (its name, never the lab's path),
the split used as keys and how many, then the model. A reviewer's determination cites none (it is theirs).
"""

from __future__ import annotations

from dataclasses import replace

from biodiscover.workflows.export.dwca import occurrence_rows
from fixtures.run_export import make_run_export

WANT = "reference barcodes ref_train_val.csv (train split, 21,280 barcodes); biodiscover model sha256:abc123"


def test_otu_db_and_the_machines_identification_references_name_the_reference_barcodes() -> None:
    data = make_run_export(n_known=3, n_candidates=5)
    run = {**data.run, "parameters": {"data": {"data": "/home/lab/refs/ref_train_val.csv", "keys": "train",
                                               "n_keys": 21280}}}
    _, ident, dna = occurrence_rows(replace(data, run=run))
    assert dna and {r["otu_db"] for r in dna} == {WANT}
    machine = [r for r in ident if r["identifiedBy"] == "biodiscover"]
    assert machine and {r["identificationReferences"] for r in machine} == {WANT}
    assert all(not r.get("identificationReferences") for r in ident if r["identifiedBy"] not in ("biodiscover",
                                                                                                "provided with the "
                                                                                                "collection"))
    # a run that recorded no reference file still names its model
    _, _, bare = occurrence_rows(data)
    assert {r["otu_db"] for r in bare} == {"biodiscover model sha256:abc123"}
