"""Unit tests of the discovery engine's parts: k-mers, index, identity, hierarchy, novelty."""

from __future__ import annotations

import numpy as np
import pytest

from discovery.hierarchy import HierarchicalClassifier, JsonLogistic, RankEvidence, rank_evidence
from discovery.identity import candidate_identities, identity
from discovery.index import IndexConfig, ReferenceIndex
from discovery.kmer import KmerConfig, KmerEmbedder, kmer_codes
from discovery.novelty import FEATURES, NoveltyDetector
from storage.records import RANKS


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
    got = candidate_identities([a, None], [[0, 1], [0]], [a, b])
    assert got[0].tolist() == pytest.approx([1.0, 0.99]) and got[1].tolist() == [0.0]


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
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
    assert ReferenceIndex(IndexConfig(exact_max=10)).fit(keys).kind_ == "hnsw"
    with pytest.raises(ValueError, match="unknown index kind"):
        IndexConfig(kind="lsh")
    with pytest.raises(ValueError, match="shape"):
        ReferenceIndex().fit(keys).search(np.zeros((1, 3), np.float32), 2)


LINEAGES = [
    ("O", "F", None, "G1", "G1 a"),
    ("O", "F", None, "G1", "G1 b"),
    ("O", "F", None, "G2", "G2 a"),
]


def test_rank_evidence_labels_identity_and_margins() -> None:
    ev = rank_evidence([0, 1, 2], np.array([0.99, 0.95, 0.90]), None, LINEAGES)
    assert ev.labels["species"] == "G1 a" and ev.labels["genus"] == "G1" and ev.labels["subfamily"] is None
    assert ev.identity["species"] == pytest.approx(0.99)
    assert ev.margin["species"] == pytest.approx(0.04)  # vs G1 b
    assert ev.margin["genus"] == pytest.approx(0.09)  # vs G2 a
    assert ev.margin["order"] == pytest.approx(0.09)  # nothing disagrees: margin vs worst candidate
    assert rank_evidence([], np.array([]), None, LINEAGES).top_position == -1


def _ev(species_id: float, label: str = "G1 a") -> RankEvidence:
    lab = {"order": "O", "family": "F", "subfamily": None, "genus": label.split()[0], "species": label}
    return RankEvidence(lab, {r: species_id for r in RANKS}, {r: 0.02 for r in RANKS}, 0)


def test_threshold_bounds_overclassification_on_calibration() -> None:
    # 100 novel-species specimens with identities 0.900..0.999; 2% may pass
    novel = [_ev(0.9 + i / 1000) for i in range(100)]
    known = [_ev(1.0) for _ in range(50)]
    truths = [{"order": "O", "family": "F", "genus": "G1", "species": "G1 new"}] * 100 + \
             [{"order": "O", "family": "F", "genus": "G1", "species": "G1 a"}] * 50
    taxa = {"order": {"O"}, "family": {"F"}, "genus": {"G1"}, "species": {"G1 a"}}
    clf = HierarchicalClassifier(0.02).fit(novel + known, truths, taxa)
    t = clf.thresholds_["species"]
    assert 0.997 < t <= 0.998  # just above the 3rd-highest novel identity
    calls = clf.predict(novel + known)
    assert sum(c.deepest_rank == "species" for c in calls[:100]) == 2
    assert all(c.deepest_rank == "species" and c.deepest_label == "G1 a" for c in calls[100:])
    # genus has no absent examples → the default threshold (and never above species)
    assert clf.calibration_["genus"]["source"] == "default"
    assert clf.thresholds_["genus"] <= clf.thresholds_["species"]
    # confidence is higher for identical matches than for novel ones
    conf = clf.confidences(novel[:5] + known[:5])["species"]
    assert conf[5:].min() > conf[:5].max()
    again = HierarchicalClassifier.from_dict(clf.to_dict())
    assert [c.deepest_rank for c in again.predict(novel)] == [c.deepest_rank for c in calls[:100]]


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
