"""Discovery metrics on hand-checkable examples (every expected number worked out by hand)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from biodiscover.discovery.metrics import (
    bin_agreement,
    clustering_scores,
    fpr_at_tpr,
    hungarian_accuracy,
    novelty_auroc,
    novelty_scores,
    rank_errors,
    split_merge_rates,
)


# --- novelty ------------------------------------------------------------------------
def test_auroc_perfect_inverted_and_half() -> None:
    y = [0, 0, 1, 1]
    assert novelty_auroc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert novelty_auroc(y, [0.9, 0.8, 0.2, 0.1]) == 0.0
    # pairs (known, novel): (0.1,0.15)+ (0.1,0.9)+ (0.5,0.15)- (0.5,0.9)+  -> 3/4
    assert novelty_auroc(y, [0.1, 0.5, 0.15, 0.9]) == pytest.approx(0.75)


def test_fpr95_known_positive_by_hand() -> None:
    # 20 known with scores 0..19; 95% of 20 = 19 accepted -> threshold 18.
    known = np.arange(20, dtype=float)
    novel = np.array([5.0, 18.0, 18.5, 30.0])  # 5 and 18 are accepted as known
    y = np.r_[np.zeros(20), np.ones(4)]
    s = np.r_[known, novel]
    assert fpr_at_tpr(y, s, 0.95, "known") == pytest.approx(2 / 4)
    # novel positive: flag 95% of 4 novel = ceil(3.8)=4 -> threshold 5.0; known >= 5: 15 of 20
    assert fpr_at_tpr(y, s, 0.95, "novel") == pytest.approx(15 / 20)
    out = novelty_scores(y, s)
    assert out["n_known"] == 20 and out["n_novel"] == 4
    assert out["fpr95"] == pytest.approx(0.5)


def test_novelty_rejects_one_class_and_nan() -> None:
    with pytest.raises(ValueError, match="both known and novel"):
        novelty_auroc([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        novelty_auroc([0, 1], [0.1, float("nan")])
    with pytest.raises(ValueError, match="3 values"):
        novelty_auroc([0, 1, 1], [0.1, 0.2])


# --- deepest confident rank -----------------------------------------------------------
def test_rank_errors_tp_mc_uc_oc_tn() -> None:
    ref = {"genus": {"Aedes", "Culex"}, "species": {"Aedes aegypti", "Culex pipiens"}}
    truth = [
        {"genus": "Aedes", "species": "Aedes aegypti"},  # known species
        {"genus": "Aedes", "species": "Aedes aegypti"},  # known species
        {"genus": "Culex", "species": "Culex novus"},  # novel species, known genus
        {"genus": "Culex", "species": "Culex novus"},
        {"genus": "Newgenus", "species": "Newgenus x"},  # novel genus
        {"genus": "Aedes", "species": None},  # unlabelled at species
    ]
    pred = [
        {"genus": "Aedes", "species": "Aedes aegypti"},  # TP, TP
        {"genus": "Culex", "species": "Culex pipiens"},  # MC, MC
        {"genus": "Culex", "species": None},  # TP genus, TN species
        {"genus": "Culex", "species": "Culex pipiens"},  # TP genus, OC species
        {"genus": "Aedes", "species": ""},  # OC genus, TN species
        {"genus": None, "species": None},  # UC genus, not counted at species
    ]
    res = rank_errors(truth, pred, ref, ranks=("genus", "species"))
    g, s = res["genus"], res["species"]
    assert (g.tp, g.mc, g.uc, g.oc, g.tn) == (3, 1, 1, 1, 0)
    assert (s.tp, s.mc, s.uc, s.oc, s.tn) == (1, 1, 0, 1, 2)
    assert g.tp_rate == pytest.approx(3 / 5) and g.oc_rate == pytest.approx(1.0)
    assert s.oc_rate == pytest.approx(1 / 3) and s.mc_rate == pytest.approx(0.5)
    d = s.as_dict()
    assert d["n_known"] == 2 and d["n_novel"] == 3


def test_rank_errors_empty_denominator_is_nan() -> None:
    res = rank_errors([{"genus": "A"}], [{"genus": "A"}], {"genus": {"A"}}, ranks=("genus",))
    assert res["genus"].tp_rate == 1.0 and math.isnan(res["genus"].oc_rate)
    with pytest.raises(ValueError, match="1 truth lineages but 2"):
        rank_errors([{}], [{}, {}], {})


# --- clustering ----------------------------------------------------------------------
def test_perfect_clustering_scores_one_with_any_label_names() -> None:
    y_true = ["a", "a", "b", "b", "c"]
    y_pred = [7, 7, 3, 3, 9]
    out = clustering_scores(y_true, y_pred, old_classes={"a"})
    assert out["ami"] == pytest.approx(1.0) and out["ari"] == pytest.approx(1.0)
    assert out["hungarian_all"] == 1.0 and out["hungarian_old"] == 1.0 and out["hungarian_new"] == 1.0
    assert out["split_rate"] == 0.0 and out["merge_rate"] == 0.0 and out["exact_rate"] == 1.0


def test_hungarian_known_confusion() -> None:
    # classes: A x4, B x3, C x3; clusters: 0={A,A,A,B}, 1={A,B,B}, 2={C,C,C}
    y_true = ["A"] * 4 + ["B"] * 3 + ["C"] * 3
    y_pred = [0, 0, 0, 1, 0, 1, 1, 2, 2, 2]
    # best matching 0->A (3), 1->B (2), 2->C (3): 8/10
    h = hungarian_accuracy(y_true, y_pred, old_classes={"A", "B"})
    assert h["all"] == pytest.approx(0.8)
    assert h["old"] == pytest.approx(5 / 7)
    assert h["new"] == pytest.approx(1.0)


def test_hungarian_more_clusters_than_classes_and_noise() -> None:
    # all singletons: each class can match one cluster -> 2 of 4 correct
    y_true = ["A", "A", "B", "B"]
    assert hungarian_accuracy(y_true, [0, 1, 2, 3])["all"] == pytest.approx(0.5)
    # noise (-1) points become singletons, never one shared cluster
    h = hungarian_accuracy(y_true, [-1, -1, -1, -1], noise_label=-1)
    assert h["all"] == pytest.approx(0.5)
    h_merged = hungarian_accuracy(y_true, [-1, -1, -1, -1])
    assert h_merged["all"] == pytest.approx(0.5)  # one cluster matches one class of 2
    assert math.isnan(hungarian_accuracy(y_true, [0, 0, 1, 1])["old"])


def test_split_and_merge_rates_by_hand() -> None:
    # A split over clusters 0 and 1; B and C lumped in cluster 2; D alone and exact; E singleton
    y_true = ["A", "A", "A", "B", "B", "C", "C", "D", "D", "E"]
    y_pred = [0, 0, 1, 2, 2, 2, 2, 3, 3, 4]
    r = split_merge_rates(y_true, y_pred)
    # classes with >=2: A,B,C,D -> only A split
    assert r["split_rate"] == pytest.approx(1 / 4)
    # clusters with >=2: 0,2,3 -> only 2 mixed
    assert r["merge_rate"] == pytest.approx(1 / 3)
    # exact: D and E
    assert r["exact_rate"] == pytest.approx(2 / 5)
    assert r["n_classes"] == 5 and r["n_clusters"] == 5


def test_all_in_one_cluster_ami_zero() -> None:
    out = clustering_scores(["a", "a", "b", "b", "c", "c"], [0] * 6)
    assert out["ami"] == pytest.approx(0.0, abs=1e-9)
    assert out["ari"] == pytest.approx(0.0, abs=1e-9)
    assert out["merge_rate"] == 1.0 and out["split_rate"] == 0.0


def test_bin_agreement_skips_missing_bins() -> None:
    bins = ["BOLD:1", "BOLD:1", None, "BOLD:2", ""]
    pred = [0, 0, 5, 1, 6]
    out = bin_agreement(bins, pred)
    assert out["n_with_bin"] == 3 and out["ami"] == pytest.approx(1.0)
    assert bin_agreement([None, None], [0, 1]) == {"n_with_bin": 0}


def test_clustering_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="2 true labels but 1"):
        clustering_scores(["a", "b"], [0])
    with pytest.raises(ValueError, match="specimen 1 is missing"):
        clustering_scores(["a", None], [0, 1])
