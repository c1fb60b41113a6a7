"""The discovery engine end to end on a tiny world with known truth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from biodiscover.discovery.engine import DiscoveryModel, EngineConfig
from biodiscover.discovery.kmer import KmerConfig
from biodiscover.discovery.metrics import novelty_auroc
from biodiscover.storage.bundle import Bundle
from biodiscover.storage.errors import InputError, ModelBundleError
from biodiscover.storage.records import Specimen
from fixtures.discovery import make_world


@pytest.fixture(scope="module")
def world() -> dict[str, list[Specimen]]:
    return make_world(seed=3)


@pytest.fixture(scope="module")
def model(world) -> DiscoveryModel:
    cfg = EngineConfig(kmer=KmerConfig(ks=(5,)), n_search=60, max_candidates=20)
    return DiscoveryModel(cfg).fit(world["train"], world["val"] + world["val_unseen"], world["other_heldout"][:20])


def test_known_species_are_named_and_novel_ones_stop_at_genus_flagged(model, world) -> None:
    """The first test of the module, and so the one a mutation tool that attributes each line to the test
    that ran it sees running the fit (the fixture): it checks both sides of what the fit learned."""
    known = model.triage(world["test"])
    assert len(known) == len(world["test"])
    correct = [r.deepest_rank == "species" and r.deepest_label == s.species
               for r, s in zip(known, world["test"], strict=True)]
    assert np.mean(correct) >= 0.95
    assert np.mean([r.is_novel for r in known]) <= 0.1
    assert all(r.top_hit is not None and r.identity > 0.97 for r in known)
    res = model.triage(world["test_unseen"])
    assert np.mean([r.deepest_rank == "species" for r in res]) <= 0.1
    assert np.mean([r.labels["genus"] == s.genus for r, s in zip(res, world["test_unseen"], strict=True)]) >= 0.9
    assert np.mean([r.is_novel for r in res]) >= 0.8
    auroc = novelty_auroc([0] * len(known) + [1] * len(res), [r.novelty for r in known + res])
    assert auroc >= 0.95


def test_specimen_without_barcode_gets_no_call(model) -> None:
    res = model.triage([Specimen(processid="X1"), Specimen(processid="X2", dna_barcode="ACGT")])
    assert [r.modality for r in res] == ["none", "none"]
    assert res[0].deepest_rank is None and np.isnan(res[0].novelty)


def test_bundle_roundtrip_gives_identical_results(model, world, tmp_path) -> None:
    path = model.save(tmp_path / "bundle")
    manifest = json.loads((path / "bundle.json").read_text())
    assert manifest["discovery"]["reference_keys"] == len(world["train"])
    again = DiscoveryModel.load(path)
    a = model.triage(world["test_unseen"] + world["test"][:5])
    b = again.triage(world["test_unseen"] + world["test"][:5])
    assert [x.to_dict() for x in a] == [x.to_dict() for x in b]
    # a bundle with only encoders and no discovery engine is refused with a clear message
    Bundle.create(tmp_path / "enc", config={"kind": "encoders"})
    with pytest.raises(ModelBundleError, match="no discovery engine"):
        DiscoveryModel.load(tmp_path / "enc")


def test_keys_holding_the_unseen_species_name_them(world) -> None:
    """Keys = train + unseen species (the product default): those species are then named, not novel."""
    cfg = EngineConfig(kmer=KmerConfig(ks=(5,)), n_search=60, max_candidates=20)
    keys = world["train"] + world["val_unseen"]
    m = DiscoveryModel(cfg).fit(keys, world["val"], world["other_heldout"][:20])
    assert len(m.ref_ids_) == len(keys)
    res = m.triage(world["test"][:10])
    assert np.mean([r.deepest_rank == "species" for r in res]) >= 0.9
    nov = m.triage(world["test_unseen"])  # absent from these keys: flagged, not named to species
    assert np.mean([r.is_novel and r.deepest_rank != "species" for r in nov]) >= 0.8


def test_fit_refuses_unusable_input(world) -> None:
    with pytest.raises(InputError, match="reference"):
        DiscoveryModel().fit([Specimen(processid="a", species="x")], world["val"])
    # no calibration split at all: the naming model learns from the reference alone
    alone = DiscoveryModel(EngineConfig(kmer=KmerConfig(ks=(5,)), n_search=60, max_candidates=20)).fit(
        world["train"], [Specimen(processid="b")])
    res = alone.triage(world["test"])
    assert np.mean([r.deepest_rank == "species" and r.deepest_label == s.species
                    for r, s in zip(res, world["test"], strict=True)]) >= 0.9


def test_the_fit_counts_each_kind_of_twin_the_simulation_made() -> None:
    """`build-reference` and `info` say how many present queries met their species from another country and how
    many left-out species met their relatives from elsewhere: each count is its own kind, recounted here from the
    same plan. A symmetric world made the two equal, so counting the absent twins as present ones survived
    (seed 4909, engine.py:320); here a third of the keys are Peruvian, a few have no country."""
    import dataclasses

    from fixtures.discovery import make_tree_world

    from biodiscover.discovery.naming import plan_simulation

    w = make_tree_world(seed=1, per_species=4)
    where = ("Peru", "Canada", "Canada", None, "Canada", "Peru", "Canada")
    keys = [dataclasses.replace(s, country=where[i % len(where)]) for i, s in enumerate(w["keys"])]
    cfg = EngineConfig(kmer=KmerConfig(ks=(5,)), n_search=60, max_candidates=20)
    model = DiscoveryModel(cfg).fit(keys)
    assert len(model.ref_ids_) == len(keys) and not model.set_aside_  # the plan below sees the same keys
    plan, _ = plan_simulation(model.naming_lineages_, model.ref_seqs_, cfg.naming, [s.country for s in keys])
    present = sum(q.elsewhere and q.scenario == "present" for q in plan)
    away = sum(q.elsewhere and q.scenario != "present" for q in plan)
    assert present > 0 and away > 0 and present != away
    support = model.naming_.support_["species"]
    assert (support["met_elsewhere"], support["absent_met_elsewhere"]) == (present, away)
