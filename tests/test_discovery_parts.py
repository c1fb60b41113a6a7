"""Unit tests of the discovery engine's parts: k-mers, index, identity, hierarchy, novelty."""

from __future__ import annotations

import numpy as np
import pytest

from biodiscover.discovery.hierarchy import HierarchicalClassifier, JsonLogistic, RankEvidence, rank_evidence
from biodiscover.discovery.identity import candidate_identities
from biodiscover.storage.distance import identity
from biodiscover.discovery.index import IndexConfig, ReferenceIndex
from biodiscover.discovery.kmer import KmerConfig, KmerEmbedder, kmer_codes
from biodiscover.discovery.novelty import FEATURES, NoveltyDetector
from biodiscover.storage.records import RANKS


def test_kmer_codes_skip_ambiguous_bases() -> None:
    assert kmer_codes("ACGT", 2).tolist() == [1, 6, 11]  # AC=0*4+1, CG=1*4+2, GT=2*4+3
    assert kmer_codes("ACNGT", 2).tolist() == [1, 11]  # CN and NG dropped
    assert kmer_codes("A", 2).size == 0


def test_kmer_profile_is_unit_norm_and_counts_kmers() -> None:
    emb = KmerEmbedder(KmerConfig(ks=(1,)))
    v = emb.embed_dna(["AACG", None, "NNNN"])
    assert v.shape == (3, 4)
    np.testing.assert_allclose(v[0], np.array([2, 1, 1, 0]) / np.sqrt(6), rtol=1e-6)
    assert not v[1].any() and not v[2].any()
    multi = KmerEmbedder(KmerConfig(ks=(2, 3), sqrt=True))
    assert multi.dim == 16 + 64
    assert np.isclose(np.linalg.norm(multi.embed_dna(["ACGTTGCA"])[0]), 1.0)
    with pytest.raises(ValueError):
        KmerConfig(ks=())


def test_identity_counts_edits_and_tolerates_n_and_partial_reads() -> None:
    a = "ACGTACGTAC" * 10
    assert identity(a, a) == 1.0
    b = a[:50] + ("A" if a[50] != "A" else "C") + a[51:]
    assert identity(a, b) == pytest.approx(0.99)
    assert identity(a, a[:50].replace("G", "N")) == 1.0  # N matches anything
    assert identity(a[20:80], a) == 1.0  # a partial read is not penalised for what it lacks
    assert identity("", a) == 0.0
    # N counts for nothing: one mismatch among 10 informative bases is 90% identity, not 99%
    c = "N" * 90 + a[90:99] + ("A" if a[99] != "A" else "C")
    assert identity(c, a) == pytest.approx(0.9)
    assert identity("N" * 100, a) == 0.0
    got = candidate_identities([a, None], [[0, 1], [0]], [a, b])
    assert got[0].tolist() == pytest.approx([1.0, 0.99]) and got[1].tolist() == [0.0]


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf", "ivfsq"])
def test_index_matches_brute_force(kind: str, tmp_path) -> None:
    rng = np.random.default_rng(0)
    keys = rng.normal(size=(2000, 32)).astype(np.float32)
    keys /= np.linalg.norm(keys, axis=1, keepdims=True)
    queries = keys[:50] + 0.05 * rng.normal(size=(50, 32)).astype(np.float32)
    idx = ReferenceIndex(IndexConfig(kind=kind, ivf_nprobe=64)).fit(keys)
    sims, pos = idx.search(queries, 5)
    truth = np.argsort(-(queries @ keys.T), axis=1)[:, :5]
    recall = np.mean([len(set(p) & set(t)) / 5 for p, t in zip(pos, truth)])
    assert recall >= (1.0 if kind == "flat" else 0.9)
    assert idx.kind_ == kind
    idx.save(tmp_path)
    again = ReferenceIndex.load(tmp_path)
    assert again.kind_ == kind and again.ntotal_ == 2000
    np.testing.assert_array_equal(again.search(queries, 5)[1], pos)
    np.testing.assert_array_equal(ReferenceIndex.from_bytes(idx.to_bytes()).search(queries, 5)[1], pos)


def test_index_auto_switches_to_approximate_above_exact_max() -> None:
    keys = np.eye(8, dtype=np.float32).repeat(10, axis=0)
    assert ReferenceIndex(IndexConfig(exact_max=100)).fit(keys).kind_ == "flat"
    assert ReferenceIndex(IndexConfig(exact_max=10)).fit(keys).kind_ == "ivfsq"
    with pytest.raises(ValueError, match="unknown index kind"):
        IndexConfig(kind="lsh")
    with pytest.raises(ValueError, match="shape"):
        ReferenceIndex().fit(keys).search(np.zeros((1, 3), np.float32), 2)


LINEAGES = [
    ("O", "F", None, "G1", "G1 a"),
    ("O", "F", None, "G1", "G1 b"),
    ("O", "F", None, "G2", "G2 a"),
]


def test_rank_evidence_labels_identity_margins_and_agreement() -> None:
    ev = rank_evidence([0, 1, 2], np.array([0.99, 0.95, 0.90]), None, LINEAGES)
    assert ev.labels["species"] == "G1 a" and ev.labels["genus"] == "G1" and ev.labels["subfamily"] is None
    assert ev.identity["species"] == pytest.approx(0.99)
    assert ev.margin["species"] == pytest.approx(0.04)  # vs G1 b
    assert ev.margin["genus"] == pytest.approx(0.09)  # vs G2 a
    assert ev.margin["order"] == pytest.approx(0.09)  # nothing disagrees: margin vs worst candidate
    # a blank rank carries no evidence
    assert ev.margin["subfamily"] == 0.0 and ev.agreement["subfamily"] == 0.0
    # nothing else within the 2% window: the best hit agrees with itself
    assert ev.agreement["genus"] == 1.0 and ev.agreement["species"] == 1.0
    assert rank_evidence([], np.array([]), None, LINEAGES).top_position == -1


def test_rank_evidence_agreement_counts_species_once_and_ignores_blanks() -> None:
    lineages = [
        ("O", "F", "S1", "G1", "G1 a"),
        ("O", "F", "S1", "G1", "G1 a"),  # same species again: one vote
        ("O", "F", "S2", "G2", "G2 a"),
        ("O", "F", None, None, "X b"),  # blank genus: neither disagrees nor votes
        ("O", "F", "S1", "G1", "G1 c"),
    ]
    ev = rank_evidence([0, 1, 2, 3, 4], np.array([0.950, 0.949, 0.940, 0.948, 0.900]), None, lineages)
    # within 2% of 0.950: species G1 a, G2 a, X b; G1 c is outside the window
    assert ev.agreement["genus"] == pytest.approx(1 / 2)  # G1 vs G2 (X b has no genus)
    assert ev.agreement["species"] == pytest.approx(1 / 3)
    assert ev.margin["genus"] == pytest.approx(0.010)  # vs G2 a; the blank-genus 0.948 does not count
    assert ev.margin["species"] == pytest.approx(0.002)  # vs X b


RANK_NAMES = {"order": "O", "family": "F", "subfamily": "SF", "genus": "G1"}


def _ev(species_id: float, label: str = "G1 a", margin: float = 0.02, subfamily: str | None = "SF") -> RankEvidence:
    lab = {**RANK_NAMES, "subfamily": subfamily, "genus": label.split()[0], "species": label}
    return RankEvidence(lab, {r: species_id for r in RANKS}, {r: margin for r in RANKS}, 0,
                        {r: 1.0 for r in RANKS})


def _truth(species: str, genus: str = "G1") -> dict:
    return {**RANK_NAMES, "genus": genus, "species": species}


def _novel_and_known() -> tuple[list[RankEvidence], list[dict]]:
    # 10 absent species x 10 specimens, identities 0.900 .. 0.999; 50 known at 1.0
    novel = [_ev(0.9 + i / 1000, margin=0.005) for i in range(100)]
    known = [_ev(1.0, margin=0.04) for _ in range(50)]
    truths = [_truth(f"G1 new{i % 10}") for i in range(100)] + [_truth("G1 a")] * 50
    return novel + known, truths


TAXA = {"order": {"O"}, "family": {"F"}, "subfamily": {"SF"}, "genus": {"G1"}, "species": {"G1 a"}}


def test_species_threshold_bounds_overclassification_on_calibration() -> None:
    evidence, truths = _novel_and_known()
    clf = HierarchicalClassifier(0.02).fit(evidence, truths, TAXA)
    assert clf.kind_["species"] == "confidence"
    cal = clf.calibration_["species"]
    assert cal["source"] == "calibration" and cal["n_absent"] == 100 and cal["n_absent_taxa"] == 10
    assert cal["overclassification"] <= 0.02
    calls = clf.predict(evidence)
    assert sum(c.deepest_rank == "species" for c in calls[:100]) == 2  # floor(2% of 100)
    assert all(c.deepest_rank == "species" and c.deepest_label == "G1 a" for c in calls[100:])
    # genus has no absent examples → the default identity threshold
    assert clf.calibration_["genus"]["source"] == "default" and clf.kind_["genus"] == "identity"
    assert all(c.deepest_rank in ("genus", "species") for c in calls)  # identities >= 0.90
    # confidence is higher for identical matches than for novel ones
    conf = clf.confidences(evidence[:5] + evidence[100:105])["species"]
    assert conf[5:].min() > conf[:5].max()
    again = HierarchicalClassifier.from_dict(clf.to_dict())
    assert [c.deepest_rank for c in again.predict(evidence)] == [c.deepest_rank for c in calls]


def test_too_few_absent_taxa_fall_back_to_the_default() -> None:
    evidence, truths = _novel_and_known()
    truths = [_truth("G1 new") for _ in range(100)] + truths[100:]  # one absent species only
    clf = HierarchicalClassifier(0.02, min_absent_taxa=5).fit(evidence, truths, TAXA)
    assert clf.kind_["species"] == "identity" and clf.thresholds_["species"] == 0.97
    assert clf.calibration_["species"]["n_absent_taxa"] == 1


def test_blank_and_optional_ranks_do_not_stop_genus() -> None:
    evidence, truths = _novel_and_known()
    clf = HierarchicalClassifier(0.02).fit(evidence, truths, TAXA)
    ev = _ev(0.95, margin=0.005)
    assert clf.predict([ev])[0].deepest_rank == "genus"
    # a blank subfamily in the reference is skipped, not a gate
    assert clf.predict([_ev(0.95, margin=0.005, subfamily=None)])[0].deepest_rank == "genus"
    # a subfamily that fails its threshold does not stop genus (optional rank) ...
    clf.kind_["subfamily"], clf.thresholds_["subfamily"] = "confidence", 2.0
    call = clf.predict([ev])[0]
    assert call.deepest_rank == "genus" and call.labels["subfamily"] == "SF"
    # ... unless the classifier is told every rank gates
    strict = HierarchicalClassifier.from_dict({**clf.to_dict(), "optional_ranks": []})
    assert strict.predict([ev])[0].deepest_rank == "family"


def test_thresholds_are_calibrated_on_the_walk_and_extra_clade_examples() -> None:
    """Family: no absent family in the calibration data → the clade-exclusion examples calibrate it;
    genus: the 5% budget of absent genera is spent on those that pass family."""
    evidence, truths = _novel_and_known()
    # 6 absent genera x 10; half of them far (identity 0.80: stopped at family)
    absent_genus = [_ev(0.80 if i < 30 else 0.88 + (i - 30) / 1000, label=f"G1 x{i % 6}", margin=0.001)
                    for i in range(60)]
    absent_truth = [_truth(f"H{i % 6} x", genus=f"H{i % 6}") for i in range(60)]
    # clade exclusion: 6 families left out, identities 0.70 .. 0.87
    fam = [_ev(0.70 + i / 350, label="G1 z", margin=0.0) for i in range(60)]
    fam_truth = [{**_truth("Q z", genus="Q"), "family": f"F{i % 6}"} for i in range(60)]
    clf = HierarchicalClassifier(0.02, rank_targets={"genus": 0.05, "family": 0.05}).fit(
        evidence + absent_genus, truths + absent_truth, TAXA, extra={"family": (fam, fam_truth)})
    assert clf.calibration_["family"]["source"] == "clade-exclusion"
    assert clf.calibration_["family"]["n_absent_taxa"] == 6
    assert clf.calibration_["family"]["overclassification"] <= 0.05
    gen = clf.calibration_["genus"]
    assert gen["source"] == "calibration" and gen["n_absent"] == 60
    assert gen["overclassification"] <= 0.05
    calls = clf.predict(absent_genus)
    assert all(c.deepest_rank == "order" for c in calls[:30])  # the far half stops above family
    assert sum(c.deepest_rank in ("genus", "species") for c in calls[30:]) == 3  # floor(5% of 60), all near


def test_legacy_bundle_classifier_loads() -> None:
    """A format-1 bundle: identity thresholds at every rank, two-feature confidence models."""
    model = JsonLogistic().fit(np.array([[0.9, 0.0], [1.0, 0.05], [0.92, 0.01], [0.99, 0.04]]), np.array([0, 1, 0, 1]))
    legacy = {"target_overclassification": 0.02, "min_absent": 20, "rank_targets": {},
              "default_thresholds": {"order": 0.8, "family": 0.85, "subfamily": 0.87, "genus": 0.9, "species": 0.97},
              "thresholds": {"order": 0.8, "family": 0.91, "subfamily": 0.939, "genus": 0.939, "species": 0.98},
              "calibration": {}, "confidence": {r: model.to_dict() for r in RANKS}}
    clf = HierarchicalClassifier.from_dict(legacy)
    calls = clf.predict([_ev(0.99), _ev(0.95), _ev(0.93)])
    assert [c.deepest_rank for c in calls] == ["species", "genus", "family"]
    assert 0 < calls[0].confidence["species"] <= 1


def test_novelty_detector_separates_and_roundtrips() -> None:
    rng = np.random.default_rng(1)
    known = np.column_stack([rng.uniform(0.98, 1.0, 300), rng.uniform(0.02, 0.1, 300), rng.uniform(0.05, 0.2, 300),
                             rng.uniform(0.9, 1, 300), rng.uniform(0.8, 1, 300), np.full(300, 0.5)])
    novel = np.column_stack([rng.uniform(0.85, 0.97, 300), rng.uniform(0.0, 0.03, 300), rng.uniform(0, 0.1, 300),
                             rng.uniform(0.6, 0.9, 300), rng.uniform(0, 0.5, 300), np.full(300, 0.5)])
    X = np.vstack([known, novel])
    y = np.r_[np.zeros(300), np.ones(300)]
    det = NoveltyDetector().fit(X, y)
    p = det.predict_proba(X)
    assert p[300:].mean() > 0.9 and p[:300].mean() < 0.1
    assert det.predict(X).mean() == pytest.approx(0.5, abs=0.05)
    assert det.brier_ < 0.05
    again = NoveltyDetector.from_dict(det.to_dict())
    np.testing.assert_allclose(again.predict_proba(X), p)
    with pytest.raises(ValueError, match="both"):
        NoveltyDetector().fit(X[:10], np.zeros(10))
    with pytest.raises(ValueError, match=str(len(FEATURES))):
        NoveltyDetector().fit(X[:, :3], y)


def test_json_logistic_constant_when_one_class() -> None:
    m = JsonLogistic().fit(np.ones((5, 2)), np.ones(5))
    assert np.all(m.predict_proba(np.zeros((3, 2))) > 0.99)
