"""Unit tests of the discovery engine's parts: k-mers, index, identity, JSON models (naming: test_naming.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from biodiscover.discovery.jsonmodels import JsonLogistic
from biodiscover.discovery.identity import candidate_identities
from biodiscover.storage.distance import identity
from biodiscover.discovery.index import IndexConfig, ReferenceIndex
from biodiscover.discovery.kmer import KmerConfig, KmerEmbedder, kmer_codes


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


def test_identity_equals_edlibs_unbounded_distance_near_and_far() -> None:
    """identity() aligns in two bounded passes; the distance is edlib's exact one at every divergence,
    including reads farther apart than the first pass's bound and reads of different lengths."""
    import edlib

    rng = np.random.default_rng(3)
    base = "".join(rng.choice(list("ACGT"), 658))
    # with and without N in the reads: identity() sets up the N equalities only where an N is present
    for rate, letters in ((0.0, "ACGTN"), (0.02, "ACGTN"), (0.1, "ACGTN"), (0.3, "ACGTN"), (0.6, "ACGTN"),
                          (0.02, "ACGT"), (0.1, "ACGT"), (0.3, "ACGT")):
        other = "".join(c if rng.random() > rate else str(rng.choice(list(letters))) for c in base)
        for a, b in ((base, other), (other[40:500], base), ("ACGT" * 10, other)):
            short, long_ = (a, b) if len(a) <= len(b) else (b, a)
            d = edlib.align(short, long_, mode="HW", task="distance",
                            additionalEqualities=[("N", x) for x in "ACGT"])["editDistance"]
            informative = len(short) - short.count("N")
            assert identity(a, b) == pytest.approx(max(0.0, 1 - d / informative), abs=1e-12)
    # a memoised repeat gives the same value as the first alignment
    got = candidate_identities([base, base, other], [[0, 1, 0], [1], [1]], [other, base])
    assert got[0][0] == got[0][2] == np.float32(identity(base, other)) and got[1][0] == 1.0
    assert got[2][0] == np.float32(identity(other, base))


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf", "ivfsq"])
def test_index_matches_brute_force(kind: str, tmp_path) -> None:
    rng = np.random.default_rng(0)
    keys = rng.normal(size=(2000, 32)).astype(np.float32)
    keys /= np.linalg.norm(keys, axis=1, keepdims=True)
    queries = keys[:50] + 0.05 * rng.normal(size=(50, 32)).astype(np.float32)
    idx = ReferenceIndex(IndexConfig(kind=kind, ivf_nprobe=64)).fit(keys)
    _sims, pos = idx.search(queries, 5)
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


def test_json_logistic_constant_when_one_class() -> None:
    m = JsonLogistic().fit(np.ones((5, 2)), np.ones(5))
    assert np.all(m.predict_proba(np.zeros((3, 2))) > 0.99)


def _used(record: Any, use: Any) -> Any:
    use(record)
    return record


def _frozen_records() -> dict[str, Any]:
    """A real instance of every frozen dataclass of discovery/, each made through its own module's code
    (``__post_init__``, a classmethod, a search), so that the test runs a line of that module."""
    from biodiscover.discovery.audit import SuspectKey
    from biodiscover.discovery.barcode_gap import BarcodeGap
    from biodiscover.discovery.clustering import BarcodeDistances, ClusteringConfig, EmbeddingDistances
    from biodiscover.discovery.engine import EngineConfig, TriageResult
    from biodiscover.discovery.metrics import rank_errors
    from biodiscover.discovery.multimodal import CrossModalConfig, ModalityCall
    from biodiscover.discovery.naming import Hits, NamingConfig
    from biodiscover.discovery.reference import Reference

    ref = Reference.build(["K1", "K2"], ["ACGTTGCAAC" * 6, "TTGCAACGTA" * 6], LINEAGES[:2], kmer=KmerConfig(ks=(3,)),
                          index=IndexConfig(kind="flat"))
    result = TriageResult("P1", "dna", {"species": "G s"}, {"species": 0.9}, 0.99, "species", "G s", 0.1, False,
                          "K1", 0.9)
    return {
        "SuspectKey": SuspectKey.from_dict({"processid": "K1", "species": "G s", "own_identity": 0.9,
                                            "conspecific_keys": 3}),
        "BarcodeGap": _used(BarcodeGap(0.01, 0.05, 0.03), BarcodeGap.sentence),
        "BarcodeDistances": BarcodeDistances(["ACGT"]).subset([0]),
        "EmbeddingDistances": EmbeddingDistances(np.eye(2)).subset([1]),
        "ClusteringConfig": ClusteringConfig(), "EngineConfig": EngineConfig(),
        "TriageResult": _used(result, TriageResult.to_dict),
        "RankErrors": rank_errors([{"species": "G s"}], [{"species": "G s"}], {"species": ["G s"]})["species"],
        "CrossModalConfig": CrossModalConfig(), "ModalityCall": ModalityCall.none("P1"),
        "Hits": Hits.empty(3), "NamingConfig": NamingConfig(),
        "Candidates": ref.candidates(["ACGTTGCAAC" * 6], n_search=2, per_taxon=1, max_candidates=2)[0],
        "IndexConfig": IndexConfig(), "KmerConfig": KmerConfig(),
    }


@pytest.mark.parametrize("name", ["SuspectKey", "BarcodeGap", "BarcodeDistances", "EmbeddingDistances",
                                  "ClusteringConfig", "EngineConfig", "TriageResult", "RankErrors",
                                  "CrossModalConfig", "ModalityCall", "Hits", "NamingConfig", "Candidates",
                                  "IndexConfig", "KmerConfig"])
def test_settings_and_results_refuse_assignment(name: str) -> None:
    """Every setting (checked once, in ``__post_init__``, and recorded with the run) and every result handed
    out (shared by the evidence, the database and the review) is read-only: assigning to a field raises, so no
    caller can bypass a config's checks or change a default instance that every later call shares
    (``config: ClusteringConfig = ClusteringConfig()``)."""
    import dataclasses

    record = _frozen_records()[name]
    assert type(record).__name__ == name
    for field in dataclasses.fields(record):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, field.name, None)
