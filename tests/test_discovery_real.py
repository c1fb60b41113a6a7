"""The engine on a sample of the real BOLD dev set (skips where ../shared is absent)."""

from __future__ import annotations

import numpy as np
import pytest

from biodiscover.discovery.engine import DiscoveryModel, EngineConfig
from biodiscover.discovery.metrics import novelty_auroc
from biodiscover.workflows.reference import load_specimens, sample


@pytest.mark.slow
def test_real_barcodes_known_named_novel_flagged(real_dev_csv) -> None:
    specs = [s for s in load_specimens(real_dev_csv, "train+val+val_unseen+test+test_unseen+other_heldout")
             if s.dna_barcode and len(s.dna_barcode.strip("N")) >= 200]
    by: dict[str, list] = {}
    for s in specs:
        by.setdefault(s.split, []).append(s)
    model = DiscoveryModel(EngineConfig(n_search=100, max_candidates=30)).fit(
        by["train"], sample(by["val"], 300, 0) + sample(by["val_unseen"], 300, 0), sample(by["other_heldout"], 200, 0))
    known = sample(by["test"], 150, 1)
    novel = sample(by["test_unseen"], 150, 1)
    rk, rn = model.triage(known), model.triage(novel)
    assert np.mean([r.labels["species"] == s.species for r, s in zip(rk, known)]) >= 0.97
    assert np.mean([r.deepest_rank == "species" for r in rn]) <= 0.08
    assert np.mean([r.labels["genus"] == s.genus for r, s in zip(rn, novel)]) >= 0.7
    assert novelty_auroc([0] * len(rk) + [1] * len(rn), [r.novelty for r in rk + rn]) >= 0.97
