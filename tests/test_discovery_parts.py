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
    # a sequence exactly k bases long has its one k-mer, one base shorter none (seed 5651: `n <= 0` -> `n <= 1`
    # survived; written after the sample, not re-scored)
    for k in (1, 2, 6, 10):
        seq = "ACGTTGCAAC"[:k]
        assert kmer_codes(seq, k).tolist() == [int("".join(str("ACGT".index(b)) for b in seq), 4)]  # base-4 digits
        assert kmer_codes(seq[:-1], k).size == 0


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
            res = edlib.align(short, long_, mode="HW", task="locations",
                              additionalEqualities=[("N", x) for x in "ACGT"])
            d, (start, end) = res["editDistance"], res["locations"][0]
            called = len(short) - short.count("N")
            # the bases both reads call: the shorter one's, less the longer one's Ns where it lies (none
            # when the longer read holds no N); where those Ns cover half of it or more, nothing to compare
            shared = called - long_[start : end + 1].count("N")
            expected = max(0.0, 1 - d / shared) if shared * 2 > called else 0.0
            assert identity(a, b) == pytest.approx(expected, abs=1e-12)
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
    recall = np.mean([len(set(p) & set(t)) / 5 for p, t in zip(pos, truth, strict=True)])
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


# -- the reference audit against a loop over every pair of conspecific barcodes ------------------------------
def test_the_audit_lists_exactly_the_keys_whose_nearest_conspecific_is_below_the_cut() -> None:
    """``audit_reference`` against brute force: a key is listed when its species has another barcode, no key
    of the species shares its barcode, and every other barcode of the species is below the family cut-off
    (``own_identity`` the best of them; ``reversed_identity`` the best of its reverse complement); keys
    without a species are not audited; the species checked are those with two keys or more; most distant
    first, then by processid. ``nearest_other_species`` fills the closest key of another species from the
    candidates it is given."""
    from biodiscover.discovery.audit import AUDIT_IDENTITY, audit_reference, nearest_other_species
    from biodiscover.storage.distance import identity, reverse_complement

    rng = np.random.default_rng(40)
    ids, seqs, lins = [], [], []

    def key(pid: str, seq: np.ndarray | str, species: str | None) -> None:
        ids.append(pid)
        seqs.append(seq if isinstance(seq, str) else "".join(seq))
        lins.append(("O", "F", None, "G", species))

    for s in range(5):
        sp = rng.choice(list("ACGT"), 300)
        for i in range(3):
            key(f"S{s}-{i}", np.where(rng.random(300) < 0.01, rng.choice(list("ACGT"), 300), sp), f"G s{s}")
        key(f"S{s}-far", rng.choice(list("ACGT"), 300), f"G s{s}")  # a stranger filed under the species
    key("S0-copy", seqs[3], "G s0")  # the stranger of species 0 twice: an identical copy, not listed
    key("S1-rev", reverse_complement(seqs[4]), "G s1")  # a key of species 1 stored reversed
    pair = rng.choice(list("ACGT"), 300)
    key("P-a", pair, "G pair")
    key("P-b", rng.choice(list("ACGT"), 300), "G pair")  # two keys, far apart: both listed
    key("L-1", pair, "G lone")  # one key: nothing to compare
    key("U-1", pair, None)  # not labelled to species
    key("U-2", rng.choice(list("ACGT"), 300), None)  # another, far from it: still not a species to audit
    suspects, checked, _ = audit_reference(ids, seqs, lins)
    want = []
    for j, (pid, seq, lin) in enumerate(zip(ids, seqs, lins)):
        own = [seqs[i] for i in range(len(ids)) if i != j and lins[i][-1] == lin[-1]] if lin[-1] else []
        others = {x for x in own if x != seq}
        if not others or seq in own:
            continue
        best = max(identity(seq, x) for x in others)
        if best < AUDIT_IDENTITY:
            back = max(identity(reverse_complement(seq), x) for x in others)
            want.append((pid, lin[-1], best, len(own), back))
    want.sort(key=lambda w: (w[2], w[0]))
    assert [(s.processid, s.species, s.own_identity, s.conspecific_keys, s.reversed_identity) for s in suspects] \
        == want
    assert {"S1-far", "S2-far", "S3-far", "S4-far", "P-a", "P-b", "S1-rev"} == {w[0] for w in want}
    assert next(s for s in suspects if s.processid == "S1-rev").reversed_identity >= AUDIT_IDENTITY
    assert checked == 5 + 1  # five species of 4-6 keys and the pair; the lone key and the unlabelled one not
    # the nearest key of another species among the candidates a search would give
    where = {pid: j for j, pid in enumerate(ids)}

    def candidates(queries: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for q in queries:
            order = sorted(range(len(ids)), key=lambda j: -identity(q, seqs[j]))[:6]
            out.append((np.array(order), np.array([identity(q, seqs[j]) for j in order])))
        return out

    filled = nearest_other_species(suspects, where, seqs, lins, candidates)
    for s, f in zip(suspects, filled, strict=True):
        pos, idv = candidates([seqs[where[s.processid]]])[0]
        rivals = [(float(v), lins[int(j)][-1]) for j, v in zip(pos, idv)
                  if lins[int(j)][-1] and lins[int(j)][-1] != s.species]
        best = max(rivals, key=lambda r: r[0], default=(0.0, None))
        assert (f.nearest_other, f.nearest_other_identity) == (best[1], best[0])
        assert (f.processid, f.own_identity, f.reversed_identity) == (s.processid, s.own_identity, s.reversed_identity)
    assert nearest_other_species([], where, seqs, lins, candidates) == []
    # what build-reference and info print: the five most distant by default, each with what it resembles
    from biodiscover.discovery.audit import describe_audit

    lines = describe_audit({"species_checked": checked, "suspects": len(filled), "min_identity": AUDIT_IDENTITY,
                            "worst": [f.to_dict() for f in filled]})
    assert len(lines) == 1 + 5 + 1
    assert lines[-1].strip() == f"… and {len(filled) - 5} more: `biodiscover info BUNDLE --audit` lists every one"
    for f, line in zip(filled, lines[1:6]):
        assert line.strip().startswith(f"{f.processid} ({f.species}): {100 * f.own_identity:.1f} % identity")
        if f.reversed_identity >= AUDIT_IDENTITY:
            assert "stored reversed" in line
        elif f.nearest_other:
            assert line.strip().endswith(f"{100 * f.nearest_other_identity:.1f} % to {f.nearest_other}")


# -- k-mers against a plain loop over the windows -------------------------------------------------------------
def _loop_codes(seq: str, k: int) -> list[int]:
    value = {"A": 0, "C": 1, "G": 2, "T": 3, "U": 3}
    out = []
    for i in range(len(seq) - k + 1):
        window = seq[i : i + k].upper()
        if all(c in value for c in window):
            code = 0
            for c in window:
                code = code * 4 + value[c]
            out.append(code)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_kmer_codes_profiles_and_presence_equal_a_loop_over_the_windows(seed: int) -> None:
    from collections import Counter

    rng = np.random.default_rng(seed)
    seq = "".join(rng.choice(list("ACGTACGTACGTNacgtUu-"), int(rng.integers(0, 80))))
    for k in (1, 2, 3, 5):
        assert kmer_codes(seq, k).tolist() == _loop_codes(seq, k)
    for cfg in (KmerConfig(ks=(2,)), KmerConfig(ks=(1, 3), sqrt=True), KmerConfig(ks=(3,), max_length=20)):
        emb = KmerEmbedder(cfg)
        cut = seq if cfg.max_length is None else seq[: cfg.max_length]
        blocks = []
        for k in cfg.ks:
            counts = np.zeros(4**k)
            for code, n in Counter(_loop_codes(cut, k)).items():
                counts[code] = np.sqrt(n) if cfg.sqrt else n
            blocks.append(counts / np.linalg.norm(counts) if counts.any() else counts)
        want = np.concatenate(blocks)
        want = want / np.linalg.norm(want) if want.any() else want
        np.testing.assert_allclose(emb.profile(seq), want, atol=1e-6)
        offsets = np.cumsum([0] + [4**k for k in cfg.ks])
        present = sorted({int(c) + int(offsets[j]) for j, k in enumerate(cfg.ks) for c in _loop_codes(cut, k)})
        assert emb.present(seq).tolist() == present


def test_kmer_sizes_from_1_to_10_are_counted_and_others_refused() -> None:
    """The k-mer sizes a reference may be built with are 1..10 (a 10-mer profile is 4**10 ~ a million features):
    both ends are counted like a loop over the windows, 0 and 11 are refused (an exploration found the range
    unpinned: ``k > 10`` -> ``k > 11`` survived)."""
    rng = np.random.default_rng(2)
    seq = "".join(rng.choice(list("ACGT"), 40))
    for k in (1, 10):
        emb = KmerEmbedder(KmerConfig(ks=(k,)))
        assert emb.dim == 4**k
        assert emb.present(seq).tolist() == sorted(set(_loop_codes(seq, k)))
    for bad in ((0,), (11,), (6, 11), ()):
        with pytest.raises(ValueError, match=r"k-mer sizes must be in 1\.\.10"):
            KmerConfig(ks=bad)


def test_the_default_profile_is_of_6_mers_counted_over_the_first_660_bases() -> None:
    """The BIOSCAN-5M loader's cut (660 nt) and 6-mers: what the reference's sketches and the benchmarks use."""
    rng = np.random.default_rng(1)
    head = "".join(rng.choice(list("ACGT"), 660))
    emb = KmerEmbedder()
    assert emb.dim == 4096 and not emb.config.sqrt
    np.testing.assert_array_equal(emb.profile(head + "ACGT" * 30), emb.profile(head))
    counts = np.bincount(_loop_codes(head, 6), minlength=4096).astype(float)
    np.testing.assert_allclose(emb.profile(head), counts / np.linalg.norm(counts), atol=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_bootstrap_wins_are_each_candidates_share_of_100_draws_of_32_kmers(seed: int) -> None:
    """SINTAX's bootstrap (32 k-mers a draw, 100 draws): in each draw the candidates holding the most of the
    drawn k-mers share the win; a candidate's result is its share."""
    from biodiscover.discovery.kmer import bootstrap_wins

    rng = np.random.default_rng(seed)
    present = np.sort(rng.choice(64, 20, replace=False))
    held = [set(rng.choice(present, int(rng.integers(5, 20)), replace=False).tolist()) for _ in range(4)]
    rows = np.zeros((4, 64), dtype=bool)
    for r, h in enumerate(held):
        rows[r, list(h)] = True
    sketches = np.packbits(rows, axis=1)
    draws = np.random.default_rng(seed + 100).integers(0, len(present), size=(100, 32))
    want = np.zeros(4)
    for d in draws:
        hits = np.array([sum(int(present[i]) in h for i in d) for h in held])
        best = hits == hits.max()
        want += best / best.sum() / 100
    np.testing.assert_allclose(bootstrap_wins(present, sketches, seed=seed + 100), want, atol=1e-12)
    assert bootstrap_wins(present[:0], sketches).tolist() == [0.0] * 4
    assert bootstrap_wins(present, sketches[:0]).size == 0
