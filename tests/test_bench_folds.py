"""``benchmarks/bench_folds.py``'s region fold on a hand-made table: what a collection from another country is.

The fold is how the naming model is measured on a fauna it was never fitted on (RESULTS-discovery.md, "A
collection from another country"); if its groups leaked a record of the country into the reference, or
called a species known that only the country holds, every figure it prints would flatter the model.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from types import ModuleType

import pandas as pd
import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    return load_benchmark("bench_folds")


def _row(pid: str, country: str, genus: str, species: str, split: str = "train") -> dict[str, str]:
    return {"processid": pid, "country": country, "order": "Diptera", "family": "Culicidae", "subfamily": "",
            "genus": genus, "species": species, "split": split, "dna_bin": "", "dna_barcode": "ACGT" * 60}


def test_a_region_fold_holds_the_country_out_of_the_reference_and_sorts_its_specimens(bench: ModuleType) -> None:
    rows = [_row("c1", "Canada", "Aedes", "Aedes vexans"),          # known: its species has keys in Peru
            _row("c2", "Canada", "Aedes", "Aedes canadensis"),      # absent species of a known genus
            _row("c3", "Canada", "Coquillettidia", "Coquillettidia perturbans"),  # absent genus
            _row("c4", "Canada", "Aedes", "", "pretrain"),          # unlabelled: never a query
            _row("c5", "Canada", "Aedes", "Aedes vexans", "test"),  # every split of the country is collection
            _row("p1", "Peru", "Aedes", "Aedes vexans"), _row("p2", "Peru", "Aedes", "Aedes aegypti", "key_unseen"),
            _row("g1", "Germany", "Culiseta", "Culiseta annulata", "test"), _row("x1", "", "Aedes", "Aedes vexans")]
    df = pd.DataFrame(rows)
    args = argparse.Namespace(seed=0, max_group=2500, max_heldout=600)
    folds = {f.name: f for f in bench.make_folds(df, ["region"], args)}
    assert set(folds) == {"region Canada", "region Germany"}  # no record of Costa Rica or Australia: no fold
    ca = folds["region Canada"]
    assert ca.kind == "region" and ca.info == {"region": "Canada"}
    assert sorted(ca.keys.processid) == ["g1", "p1", "p2", "x1"]  # every labelled split from elsewhere, test too
    assert {g: sorted(d.processid) for g, d in ca.groups.items()} == {
        "known": ["c1", "c5"], "absent_species": ["c2"], "absent_genus": ["c3"]}
    de = folds["region Germany"]
    assert "g1" not in set(de.keys.processid)
    assert {g: sorted(d.processid) for g, d in de.groups.items()} == {
        "known": [], "absent_species": [], "absent_genus": ["g1"]}  # no Culiseta elsewhere
    # the cap per group is the same seeded sample as the other folds'
    capped = {f.name: f for f in bench.make_folds(df, ["region"], argparse.Namespace(seed=0, max_group=1,
                                                                                     max_heldout=600))}
    assert len(capped["region Canada"].groups["known"]) == 1


def test_naming_settings_of_an_experiment_are_parsed_by_their_type(bench: ModuleType) -> None:
    """``--naming KEY=VALUE``: what a variant's run records is what its engine ran with."""
    args = argparse.Namespace(naming=["trees=150", "learning_rate=0.3", "collection_weight=null",
                                      "optional_ranks=[\"subfamily\", \"genus\"]", "alternatives=[[50, 0.2, 10]]"])
    cfg = bench.engine_config(args).naming
    assert (cfg.trees, cfg.learning_rate, cfg.collection_weight) == (150, 0.3, None)
    assert cfg.optional_ranks == ("subfamily", "genus") and cfg.alternatives == ((50, 0.2, 10),)
    assert bench.engine_config(argparse.Namespace(naming=["collection_weight=12"])).naming.collection_weight == 12.0
    with pytest.raises(AttributeError):
        bench.engine_config(argparse.Namespace(naming=["no_such_setting=1"]))


def test_the_forecast_table_sets_the_forecast_at_the_folds_shares_between_even_odds_and_measured(
        bench: ModuleType) -> None:
    """ML review M2: a fold's queries are decided at the fold's own estimated shares of absent taxa, so its measured
    figures are held to the forecast at those shares, not at even odds. A small generated world scored as a fold
    (no peers): the fold's record keeps that forecast, and the table's cell reads even odds / at shares / measured."""
    from biodiscover.storage.records import Specimen
    from fixtures.discovery import make_world

    world = make_world(seed=5)

    def frame(group: list[Specimen]) -> pd.DataFrame:
        return pd.DataFrame([{k: ("" if v is None else v) for k, v in s.to_row().items()} for s in group])

    fold = bench.Fold("stability small", "stability", frame(world["train"]), frame(world["val"]),
                      {"known": frame(world["test"]), "absent_species": frame(world["test_unseen"]),
                       "absent_genus": frame(world["other_heldout"])})
    out = bench.score_fold(fold, argparse.Namespace(skip_peers=True, naming=None))
    priors, level = out["ours_priors"], 0.98
    assert priors and out["predicted"] is not None
    model = bench.run_ours(fold, argparse.Namespace(naming=None))["model"]  # the same seeded fit
    assert out["predicted_at_share"] == model.naming_.expected_at(priors, level)
    row = bench.forecast_row(out)
    t = out["tools"]["ours"]
    cell = " / ".join(bench._f(v) for v in (out["predicted"]["absent_species_genus_right"]["rate"],
                                            out["predicted_at_share"]["absent_species_genus_right"]["rate"],
                                            t["absent_species"]["genus_right"]))
    assert row.split(" | ")[3] == cell, row
    assert row.startswith("| stability small | ") and row.split(" | ")[4] == "— / — / —"  # no order left out
    assert row in bench.markdown([out], None)
