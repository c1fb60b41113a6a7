"""Realistic run tables for export tests, including hostile values (helpers, no tests here).

Built as plain DataFrames in the shape :class:`biodiscover.workflows.export.RunExport`
expects, so the writers are exercised without a database; the DB round-trip
tests fill a real SQLite file through the storage API instead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from biodiscover.storage.records import RANKS
from biodiscover.workflows.export import RunExport

HOSTILE_NAMES = [
    "=HYPERLINK(\"http://evil.example\",\"click\")",
    "../../../etc/passwd",
    "CON",
    "+cmd|' /C calc'!A0",
    "Megaselia sp. BD-0007",
    "tab\there\nnewline|pipe>gt",
    "@SUM(1+1)",
    "<script>alert('x')</script> Ünïcode näme ☃",
]


def _mutate(rng: np.random.Generator, seq: str, k: int) -> str:
    s = list(seq)
    for i in rng.choice(len(s), size=k, replace=False):
        s[i] = "ACGT"[(("ACGT".index(s[i])) + int(rng.integers(1, 4))) % 4]
    return "".join(s)


def make_run_export(n_known: int = 40, n_candidates: int = 8, seed: int = 0) -> RunExport:
    """A run with known specimens named to species and novel ones grouped in candidates."""
    rng = np.random.default_rng(seed)
    root = "".join(rng.choice(list("ACGT"), size=620, p=[0.33, 0.17, 0.15, 0.35]))
    spec_rows, assign_rows, members, proposals = [], [], [], []
    for i in range(n_known):
        pid = f"KN{i:04d}"
        seq = _mutate(rng, root, 60 + (i % 5) * 10)
        spec_rows.append({"processid": pid, "sampleid": f"S-{i}", "order": "Diptera", "family": "Phoridae",
                          "genus": "Megaselia", "species": f"Megaselia k{i % 5}", "dna_barcode": seq,
                          "dna_bin": f"BOLD:AAA{i % 5:04d}", "country": "Canada", "province_state": "Ontario",
                          "coord-lat": 43.0 + rng.normal(0, 2), "coord-lon": -80.0 + rng.normal(0, 3)})
        row = {"processid": pid, "deepest_rank": "species", "deepest_taxon": f"Megaselia k{i % 5}",
               "novelty": float(rng.uniform(0, 0.2)), "is_novel": False}
        for r, lab in zip(RANKS, ["Diptera", "Phoridae", "Metopininae", "Megaselia", f"Megaselia k{i % 5}"]):
            row[f"label_{r}"], row[f"confidence_{r}"] = lab, float(rng.uniform(0.9, 1.0))
        assign_rows.append(row)
    n = 0
    for c in range(n_candidates):
        anc = _mutate(rng, root, 70)
        size = 1 + (c % 4) * 2
        name = HOSTILE_NAMES[c % len(HOSTILE_NAMES)]
        proposals.append({"proposal_id": c + 1, "provisional_name": name, "parent_rank": "genus",
                          "parent_taxon": "Megaselia", "status": {4: "accepted", 2: "rejected"}.get(c, "pending"),
                          "version": 1, "size": size,
                          "evidence": {"consensus_barcode": anc[:50], "within_distance": {"max": 0.01},
                                       "nearest_known": {"species": "Megaselia k1", "identity": 0.91},
                                       # keys the evidence record does not know travel in its ``extra``
                                       "nearest_identity": 0.91, "sites": ["=1+1", "Ontario"]}})
        for j in range(size):
            pid = f"NV{n:04d}"
            n += 1
            spec_rows.append({"processid": pid, "sampleid": f"=cmd|{n}" if j == 0 else f"S-n{n}",
                              "order": "Diptera", "dna_barcode": _mutate(rng, anc, 3) if j != 1 else None,
                              "dna_bin": None, "country": "Costa Rica", "province_state": "Guanacaste\tnorth",
                              "coord-lat": 10.5 + rng.normal(0, 0.5), "coord-lon": -85.4 + rng.normal(0, 0.5)})
            row = {"processid": pid, "deepest_rank": "genus", "deepest_taxon": "Megaselia",
                   "novelty": float(rng.uniform(0.7, 1.0)), "is_novel": True}
            for r, lab in zip(RANKS, ["Diptera", "Phoridae", "Metopininae", "Megaselia", "Megaselia k1"]):
                row[f"label_{r}"], row[f"confidence_{r}"] = lab, float(rng.uniform(0.2, 1.0))
            assign_rows.append(row)
            members.append({"proposal_id": c + 1, "processid": pid, "probability": float(rng.uniform(0.5, 1))})
    # One unnamed specimen with no coordinates and no barcode (image-only).
    spec_rows.append({"processid": "IMG0001", "order": None})
    assign_rows.append({"processid": "IMG0001", "deepest_rank": None, "deepest_taxon": None, "novelty": 0.55,
                        "is_novel": True})
    run = {"id": 7, "kind": "triage", "status": "completed", "model_fingerprint": "sha256:abc123",
           "started_at": "2026-11-23T06:00:00", "finished_at": "2026-11-23T06:05:00", "parameters": {"k": 20},
           "novelty_threshold": 0.5}
    return RunExport(run=run, specimens=pd.DataFrame(spec_rows), assignments=pd.DataFrame(assign_rows),
                     proposals=pd.DataFrame(proposals), members=pd.DataFrame(members))
