"""Discovery metrics on hand-checkable examples (every expected number worked out by hand)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from biodiscover.discovery.metrics import (
    bin_agreement,
    calibration_bins,
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
    # a BIN is no species: the one-to-one matching of old and new species says nothing about BINs (seed 1806)
    assert not {"hungarian_old", "hungarian_new"} & set(out)
    assert bin_agreement([None, None], [0, 1]) == {"n_with_bin": 0}


def test_clustering_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="2 true labels but 1"):
        clustering_scores(["a", "b"], [0])
    with pytest.raises(ValueError, match="specimen 1 is missing"):
        clustering_scores(["a", None], [0, 1])


# --- brute-force oracles on random labelings ---------------------------------------------
def _random_labels(seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 13))
    truth = [f"t{x}" for x in rng.integers(0, rng.integers(1, 5), n)]
    pred = [f"c{x}" for x in rng.integers(0, rng.integers(1, 5), n)]
    return truth, pred


@pytest.mark.parametrize("seed", range(12))
def test_hungarian_accuracy_is_the_best_one_to_one_matching(seed: int) -> None:
    """All / Old / New from the best one-to-one matching of clusters to classes, found by trying every
    matching: the specimens of each class in the cluster matched to it count as right."""
    import itertools

    truth, pred = _random_labels(seed)
    classes, clusters = sorted(set(truth)), sorted(set(pred))
    count = {(c, k): sum(t == c and p == k for t, p in zip(truth, pred)) for c in classes for k in clusters}
    best_total, best_right = -1, {}
    slots = clusters + [None] * len(classes)  # a class may be matched to no cluster
    for chosen in itertools.permutations(slots, len(classes)):
        right = {c: count[(c, k)] if k is not None else 0 for c, k in zip(classes, chosen)}
        if sum(right.values()) > best_total:
            best_total, best_right = sum(right.values()), right
    old = set(classes[: len(classes) // 2])
    got = hungarian_accuracy(truth, pred, old_classes=old)
    assert got["all"] == pytest.approx(best_total / len(truth))

    def share(which: set[str]) -> float:
        n = sum(t in which for t in truth)
        return math.nan if n == 0 else sum(best_right[c] for c in which) / n

    # Old / New of one best matching: several matchings can tie on the total, so compare the sums
    for key, which in (("old", old), ("new", set(classes) - old)):
        want = share(which)
        assert math.isnan(got[key]) == math.isnan(want)
    n_old, n_new = sum(t in old for t in truth), sum(t not in old for t in truth)
    total = ((0 if math.isnan(got["old"]) else got["old"] * n_old)
             + (0 if math.isnan(got["new"]) else got["new"] * n_new))
    assert total == pytest.approx(best_total)
    assert math.isnan(hungarian_accuracy(truth, pred)["old"])  # no old classes: every class is New
    assert hungarian_accuracy(truth, pred)["new"] == pytest.approx(best_total / len(truth))


@pytest.mark.parametrize("seed", range(12))
def test_split_merge_and_exact_rates_follow_their_definitions(seed: int) -> None:
    truth, pred = _random_labels(seed)
    pred[0] = "noise"
    got = split_merge_rates(truth, pred, noise_label="noise")
    # every noise specimen is a cluster of its own
    clusters = [f"noise#{i}" if p == "noise" else p for i, p in enumerate(pred)]
    members = {k: [truth[i] for i, c in enumerate(clusters) if c == k] for k in set(clusters)}
    homes = {t: {clusters[i] for i, x in enumerate(truth) if x == t} for t in set(truth)}
    big_classes = [t for t in homes if truth.count(t) >= 2]
    big_clusters = [k for k, m in members.items() if len(m) >= 2]
    want_split = sum(len(homes[t]) > 1 for t in big_classes) / len(big_classes) if big_classes else math.nan
    want_merge = (sum(len(set(members[k])) > 1 for k in big_clusters) / len(big_clusters)
                  if big_clusters else math.nan)
    exact = sum(len(homes[t]) == 1 and set(members[next(iter(homes[t]))]) == {t} for t in homes)
    assert got["split_rate"] == pytest.approx(want_split, nan_ok=True)
    assert got["merge_rate"] == pytest.approx(want_merge, nan_ok=True)
    assert got["exact_rate"] == pytest.approx(exact / len(homes))
    assert (got["n_classes"], got["n_clusters"]) == (len(homes), len(members))


@pytest.mark.parametrize("seed", range(8))
def test_fpr_at_tpr_is_the_share_passed_at_the_first_threshold_that_passes_enough_positives(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 30))
    score = rng.integers(0, 8, n).astype(float)  # integer scores: ties at the threshold
    novel = rng.random(n) < 0.5
    novel[0], novel[1] = True, False
    for tpr in (0.5, 0.8, 0.95, 1.0):
        known_s, novel_s = score[~novel], score[novel]
        # "known" positive: the lowest cut accepting at least tpr of known specimens; novel ones accepted too
        cut = min(s for s in known_s if np.mean(known_s <= s) >= tpr)
        assert fpr_at_tpr(novel, score, tpr, "known") == pytest.approx(np.mean(novel_s <= cut))
        cut = max(s for s in novel_s if np.mean(novel_s >= s) >= tpr)
        assert fpr_at_tpr(novel, score, tpr, "novel") == pytest.approx(np.mean(known_s >= cut))
    # AUROC: the share of (novel, known) pairs ordered right, ties counting half
    pairs = [(a > b) + 0.5 * (a == b) for a in score[novel] for b in score[~novel]]
    assert novelty_auroc(novel, score) == pytest.approx(np.mean(pairs))


def test_fpr_at_tpr_when_one_positive_is_enough_cuts_at_the_first_one() -> None:
    """Where ``tpr`` of the positives is one specimen or fewer (one known specimen at 95 %, or 10 % of ten), the
    cut is the first positive's score: the lowest known score (``known``), the highest novel one (``novel``).
    Seed 6607's metrics.py:123 ``known[max(k, 0)]`` -> ``max(k, 1)`` survived (the property test above never
    drew so few known specimens): one known specimen was an IndexError, ten cut at the second-lowest score."""
    one = np.array([False, True, True, True])
    assert fpr_at_tpr(one, [2.0, 1.0, 2.0, 3.0], 0.95, "known") == pytest.approx(2 / 3)  # novel <= 2.0
    ten = np.array([False] * 10 + [True] * 4)
    score = np.r_[np.arange(10.0), [0.0, 0.5, 1.0, 9.0]]
    assert fpr_at_tpr(ten, score, 0.1, "known") == pytest.approx(1 / 4)  # cut 0.0: only the novel 0.0 passes
    assert fpr_at_tpr(ten, score, 0.2, "known") == pytest.approx(3 / 4)  # two known: cut 1.0
    assert fpr_at_tpr(~ten, -score, 0.1, "novel") == pytest.approx(1 / 4)  # the same, mirrored


@pytest.mark.parametrize("seed", range(6))
def test_rank_errors_count_each_query_by_the_definitions(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ranks = ("genus", "species")
    names = {"genus": ["Ga", "Gb", "Gc"], "species": ["Ga x", "Ga y", "Gb x", "Gc z"]}
    reference = {"genus": ["Ga", "Gb"], "species": ["Ga x", "Gb x"]}
    truth, pred = [], []
    for _ in range(40):
        truth.append({r: (str(rng.choice(names[r])) if rng.random() < 0.9 else None) for r in ranks})
        pred.append({r: (str(rng.choice(names[r])) if rng.random() < 0.6 else "") for r in ranks})
    got = rank_errors(truth, pred, reference, ranks)
    for r in ranks:
        want = {"tp": 0, "mc": 0, "uc": 0, "oc": 0, "tn": 0}
        for t, p in zip(truth, pred):
            if not t[r]:
                continue  # no truth at this rank: not scored
            if t[r] in reference[r]:
                want["uc" if not p[r] else "tp" if p[r] == t[r] else "mc"] += 1
            else:
                want["oc" if p[r] else "tn"] += 1
        e = got[r]
        assert (e.tp, e.mc, e.uc, e.oc, e.tn) == tuple(want.values())
        assert e.tp_rate == pytest.approx(want["tp"] / (want["tp"] + want["mc"] + want["uc"]))
        assert e.oc_rate == pytest.approx(want["oc"] / (want["oc"] + want["tn"]))


# --- reliability over given edges ---------------------------------------------------
def test_calibration_bins_hold_each_lower_edge_and_refuse_edges_that_do_not_span_0_to_1() -> None:
    """Each bin holds its lower edge up to, not including, its upper one; the last holds 1 too (the plot of
    ``evaluate`` bins the probabilities near 1 finely). Edges that do not rise from 0 to 1 are refused: a bin
    left out would drop its specimens from the plot unsaid (``calibration_bins`` had no test: found reading the
    diff of ``discovery/`` after the seed-7919 mutation sample)."""
    edges = [0.0, 0.5, 0.9, 0.99, 1.0]
    table = calibration_bins([0.2, 0.5, 0.9, 0.95, 0.99, 1.0, 1.0], [0, 1, 1, 0, 1, 1, 1], edges)
    assert [(b["lo"], b["hi"], b["n"]) for b in table] == [(0.0, 0.5, 1), (0.5, 0.9, 1), (0.9, 0.99, 2),
                                                           (0.99, 1.0, 3)]
    assert [b["mean_p"] for b in table] == pytest.approx([0.2, 0.5, 0.925, 0.99 / 3 + 2 / 3])
    assert [b["observed"] for b in table] == [0.0, 1.0, 0.5, 1.0]
    for bad in ([0.0], [0.1, 1.0], [0.0, 0.9], [0.0, 0.5, 0.5, 1.0], [0.0, 0.6, 0.4, 1.0]):
        with pytest.raises(ValueError, match="bin edges must increase from 0 to 1"):
            calibration_bins([0.5], [1], bad)
