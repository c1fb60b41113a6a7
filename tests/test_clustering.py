"""Candidate-species clustering on small synthetic barcodes with known truth."""

from __future__ import annotations

import numpy as np
import pytest

from biodiscover.discovery.clustering import (
    BarcodeDistances,
    BarcodeGapThreshold,
    ClassicalMDS,
    ClusteringConfig,
    EmbeddingDistances,
    cosine_distance,
)
from biodiscover.discovery.clustering_methods.threshold_hdbscan import CandidateSpeciesClusterer
from biodiscover.discovery.metrics import clustering_scores
from biodiscover.storage.distance import cross_p_distance, pairwise_p_distance
from fixtures.discovery import BASES, mutate




def synthetic_barcodes(n_genera: int, species_per_genus: int, per_species: tuple[int, int],
                       seed: int, length: int = 400) -> tuple[list[str], list[str], list[str]]:
    """Genus ancestors ~20% apart, species ~8% from their genus, specimens ~0.6% from their species."""
    rng = np.random.default_rng(seed)
    seqs, species, genera = [], [], []
    for g in range(n_genera):
        anc = rng.choice(BASES, length)
        for s in range(species_per_genus):
            sp = mutate(rng, anc, 0.10)
            for _ in range(int(rng.integers(per_species[0], per_species[1] + 1))):
                seqs.append("".join(mutate(rng, sp, 0.008)))
                species.append(f"G{g} s{s}")
                genera.append(f"G{g}")
    return seqs, species, genera


@pytest.fixture(scope="module")
def reference() -> tuple[list[str], list[str], list[str]]:
    return synthetic_barcodes(4, 5, (2, 6), seed=1)


@pytest.fixture(scope="module")
def gap(reference) -> BarcodeGapThreshold:
    seqs, species, genera = reference
    return BarcodeGapThreshold().fit(seqs, species, groups=genera)


def test_p_distance_exact_on_known_edits() -> None:
    rng = np.random.default_rng(0)
    a = "".join(rng.choice(BASES, 400))
    b = a[:100] + ("A" if a[100] != "A" else "C") + a[101:]  # one substitution
    d = pairwise_p_distance([a, b, a])
    assert d[0, 1] == pytest.approx(1 / 400) and d[0, 2] == 0.0 and d[1, 0] == d[0, 1]
    # N matches anything; a partial barcode inside a longer one costs nothing
    withn = a[:50] + "N" + a[51:]
    x = cross_p_distance([withn, a[40:160]], [a])
    assert x[0, 0] == 0.0 and x[1, 0] == 0.0
    # reads starting and ending at different places are compared on their overlap:
    # 300 shared bases with 3 substitutions -> 1%
    left = a[:350]
    right = list(a[50:])
    for pos in (10, 120, 250):
        right[pos] = "A" if right[pos] != "A" else "C"
    assert cross_p_distance([left], ["".join(right)])[0, 0] == pytest.approx(3 / 300)
    # unrelated sequences are not aligned but still come out far
    r = "".join(rng.choice(BASES, 400))
    assert cross_p_distance([r], [a])[0, 0] >= 0.12


def test_mostly_n_reads_do_not_chain_species(reference, gap) -> None:
    """N columns carry no information: a read that is mostly N is not at distance 0 from everything."""
    seqs, species, _ = reference
    a, b = seqs[0], next(s for s, sp in zip(seqs, species) if sp != species[0])
    mostly_n = "N" * 340 + a[340:]  # 60 informative bases, all from a
    assert cross_p_distance([mostly_n], [a, b]).min() >= 0.12  # too little left to compare
    # one substitution over 200 informative bases = 0.5%, not 1 / 400
    half = "N" * 200 + a[200:250] + ("A" if a[250] != "A" else "C") + a[251:]
    assert cross_p_distance([half], [a])[0, 0] == pytest.approx(1 / 200)
    # bridging reads made of species a's and b's informative halves do not merge the two species
    bridges = ["N" * 200 + a[200:], b[:200] + "N" * 200]
    labels = CandidateSpeciesClusterer(gap=gap).fit(BarcodeDistances([a, b] + bridges)).labels_
    assert labels[0] != labels[1]


def test_threshold_learned_inside_the_gap(gap: BarcodeGapThreshold) -> None:
    # within-species pairs ~1.6% apart, between species ~15%: the cut must fall between
    assert 0.02 <= gap.threshold_ <= 0.13
    assert gap.score_ > 0.95
    assert gap.within_q95_ < gap.between_q05_
    p = gap.same_species_proba(np.array([0.005, 0.3]))
    assert p[0] > 0.9 and p[1] < 0.1
    assert gap.linkage_ in ("single", "average")


def test_threshold_round_trips_through_json(gap: BarcodeGapThreshold) -> None:
    import json

    again = BarcodeGapThreshold.from_dict(json.loads(json.dumps(gap.to_dict())))
    assert again.threshold_ == gap.threshold_ and again.linkage_ == gap.linkage_
    d = np.array([0.0, 0.02, 0.1])
    assert np.allclose(again.same_species_proba(d), gap.same_species_proba(d))
    with pytest.raises(ValueError, match="not a saved"):
        BarcodeGapThreshold.from_dict({"threshold": 0.03})


def test_candidates_recover_novel_species(gap: BarcodeGapThreshold) -> None:
    seqs, species, genera = synthetic_barcodes(3, 4, (1, 7), seed=7)
    cl = CandidateSpeciesClusterer(gap=gap).fit(BarcodeDistances(seqs), groups=genera)
    scores = clustering_scores(species, cl.labels_)
    assert scores["ami"] > 0.95, scores
    n = len(seqs)
    assert cl.labels_.shape == (n,) and (cl.labels_ >= 0).all()
    assert set(cl.labels_.tolist()) == set(range(cl.n_candidates_))
    assert ((cl.probabilities_ >= 0) & (cl.probabilities_ <= 1)).all()
    assert np.median(cl.probabilities_) > 0.5
    # every candidate lies within one parent group
    for cand in range(cl.n_candidates_):
        members = {genera[i] for i in np.nonzero(cl.labels_ == cand)[0]}
        assert members == {cl.candidate_group_[cand]}
    # singletons are candidates of their own with probability 1
    sizes = np.bincount(cl.labels_)
    singles = np.nonzero(sizes[cl.labels_] == 1)[0]
    assert (cl.probabilities_[singles] == 1.0).all()
    assert cl.outlier_scores_.shape == (n,) and np.isfinite(cl.outlier_scores_).all()


def test_a_specimen_read_from_other_primers_joins_its_species(gap: BarcodeGapThreshold) -> None:
    """Three new species of one genus; one specimen of the first was read 150 bases further along (250 of its
    400 bases shared with its species' reads). Over what it shares it is as close to them as they are to each
    other (0.4–0.8 %), so it joins their candidate; padding a quarter of the read, it stood 20 % off, alone."""
    seqs, species, _ = synthetic_barcodes(1, 3, (5, 5), seed=11)
    rng = np.random.default_rng(12)
    moved = seqs[0][150:] + "".join(rng.choice(BASES, 150))
    cl = CandidateSpeciesClusterer(gap=gap).fit(BarcodeDistances(seqs[1:] + [moved]))
    assert clustering_scores(species[1:] + [species[0]], cl.labels_)["exact_rate"] == 1.0
    assert cl.n_candidates_ == 3


def test_singleton_species_kept_and_far_outlier_alone(gap: BarcodeGapThreshold) -> None:
    seqs, _species, _ = synthetic_barcodes(1, 3, (4, 4), seed=3)
    rng = np.random.default_rng(9)
    stranger = "".join(rng.choice(BASES, 400))
    cl = CandidateSpeciesClusterer(gap=gap).fit(BarcodeDistances(seqs + [stranger]))
    assert np.sum(cl.labels_ == cl.labels_[-1]) == 1
    assert cl.n_candidates_ == 4


def test_predict_places_late_specimens(gap: BarcodeGapThreshold) -> None:
    seqs, _species, genera = synthetic_barcodes(2, 3, (4, 6), seed=11)
    cl = CandidateSpeciesClusterer(gap=gap).fit(BarcodeDistances(seqs), groups=genera)
    rng = np.random.default_rng(5)
    late = ["".join(mutate(rng, np.array(list(s)), 0.004)) for s in seqs[:6]]
    stranger = "".join(rng.choice(BASES, 400))
    labels, probs = cl.predict(BarcodeDistances(late + [stranger]), groups=genera[:6] + [genera[0]])
    assert (labels[:6] == cl.labels_[:6]).all()
    assert labels[6] == -1 and probs[6] == 0.0
    assert (probs[:6] > 0.3).all()
    # a group never seen at fit time gives new singletons
    labels2, _ = cl.predict(BarcodeDistances(seqs[:2]), groups=["unknown", "unknown"])
    assert (labels2 == -1).all()


def test_wrong_parent_is_merged_back_across_groups(gap: BarcodeGapThreshold) -> None:
    seqs, species, genera = synthetic_barcodes(2, 3, (4, 6), seed=13)
    wrong = list(genera)
    wrong[0] = "G1"  # a G0 specimen filed under the other genus
    merged = CandidateSpeciesClusterer(gap=gap).fit(BarcodeDistances(seqs), groups=wrong)
    assert clustering_scores(species, merged.labels_)["ami"] == pytest.approx(1.0)
    assert merged.labels_[0] == merged.labels_[1]
    # only the joined candidate is listed, with the groups it was joined from
    assert list(merged.merged_across_groups_) == [int(merged.labels_[0])]
    assert sorted(merged.merged_across_groups_[int(merged.labels_[0])]) == sorted({genera[1], wrong[0]})
    kept = CandidateSpeciesClusterer(ClusteringConfig(merge_across_groups=False), gap).fit(
        BarcodeDistances(seqs), groups=wrong)
    assert kept.labels_[0] != kept.labels_[1] and not kept.merged_across_groups_
    # predict still works on the relabelled candidates
    labels, _ = merged.predict(BarcodeDistances(seqs[1:3]), groups=wrong[1:3])
    assert (labels == merged.labels_[1:3]).all()


def test_cosine_embeddings_and_fixed_threshold() -> None:
    rng = np.random.default_rng(2)
    centers = rng.normal(size=(6, 32))
    truth = np.repeat(np.arange(6), 8)
    x = centers[truth] + 0.05 * rng.normal(size=(truth.size, 32))
    cfg = ClusteringConfig(metric="cosine", linkage="average", distance_threshold=0.2)
    cl = CandidateSpeciesClusterer(cfg).fit(EmbeddingDistances(x))
    assert clustering_scores(truth, cl.labels_)["ami"] > 0.99
    labels, _ = cl.predict(EmbeddingDistances(x[:3] + 0.01))
    assert (labels == cl.labels_[:3]).all()
    d = cosine_distance(x[:2])
    assert d[0, 0] == 0.0 and d.shape == (2, 2)


def test_mds_out_of_sample_reproduces_training_points() -> None:
    rng = np.random.default_rng(4)
    pts = rng.normal(size=(20, 3))
    dist = np.linalg.norm(pts[:, None] - pts[None], axis=2)
    mds = ClassicalMDS(3)
    coords = mds.fit_transform(dist)
    again = mds.transform(dist[:5])
    assert np.allclose(coords[:5], again, atol=1e-6)
    # euclidean input is recovered up to rotation: distances preserved
    rec = np.linalg.norm(coords[:, None] - coords[None], axis=2)
    assert np.allclose(rec, dist, atol=1e-6)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="no specimens"):
        CandidateSpeciesClusterer().fit(BarcodeDistances([]))
    with pytest.raises(ValueError, match="2 specimens but 1 group"):
        CandidateSpeciesClusterer().fit(BarcodeDistances(["ACGT" * 60, "ACGT" * 60]), groups=["a"])
    with pytest.raises(ValueError, match="linkage"):
        ClusteringConfig(linkage="ward")
    with pytest.raises(ValueError, match=">= 2 species"):
        BarcodeGapThreshold().fit(["ACGT" * 60] * 3, ["a", "a", "a"])
    with pytest.raises(RuntimeError, match="not fitted"):
        CandidateSpeciesClusterer().predict(BarcodeDistances(["ACGT"]))


def test_classical_mds_on_a_degenerate_group_of_identical_barcodes() -> None:
    """Real plates hold dozens of identical barcodes per species (a rank-deficient, highly degenerate
    distance matrix); MDS must still embed them so that distances are preserved."""
    import numpy as np

    from biodiscover.discovery.clustering import ClassicalMDS

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 4)) * 0.02
    points = np.repeat(centres, [120, 80, 1], axis=0)  # 201 points, three distinct positions
    dist = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))
    coords = ClassicalMDS(n_components=16).fit_transform(dist)
    assert coords.shape[0] == 201 and np.isfinite(coords).all()
    back = np.sqrt(((coords[:, None, :] - coords[None, :, :]) ** 2).sum(-1))
    assert np.abs(back - dist).max() < 1e-6


def test_a_new_clustering_method_is_one_new_file(tmp_path, monkeypatch, gap: BarcodeGapThreshold) -> None:
    """A method is one module exposing a SpeciesClusterer; the config names it, discovery uses it,
    and nothing else is edited."""
    import textwrap

    from biodiscover.discovery.clustering import available_methods, make_clusterer
    from biodiscover.discovery.proposals import discover_candidates
    from biodiscover.storage.records import Specimen

    (tmp_path / "one_per_parent.py").write_text(textwrap.dedent('''
        import numpy as np
        from biodiscover.discovery.clustering import SpeciesClusterer

        class Clusterer(SpeciesClusterer):
            """Every parent group is one candidate (a deliberately crude method)."""

            def fit(self, distances, groups=None):
                keys = self._check_input(distances, groups)
                ids = {g: i for i, g in enumerate(dict.fromkeys(keys))}
                self.labels_ = np.array([ids[g] for g in keys], dtype=np.int64)
                self.probabilities_ = np.full(len(keys), 0.5)
                self._finish(keys)
                return self
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    seqs, species, genera = synthetic_barcodes(2, 3, (3, 3), seed=21)
    specimens = [Specimen(processid=f"S{i}", dna_barcode=s) for i, s in enumerate(seqs)]
    parents = [("genus", g) for g in genera]
    config = ClusteringConfig(method="one_per_parent:Clusterer")
    clusterer, props = discover_candidates(specimens, parents=parents, threshold=gap, config=config)
    assert type(clusterer).__module__ == "one_per_parent"
    assert sorted(p.size for p in props) == [9, 9] and {p.parent_name for p in props} == {"G0", "G1"}
    assert all(m.probability == 0.5 for p in props for m in p.members)
    assert props[0].evidence.threshold == gap.threshold_  # the facts it had no opinion on: defaults
    # the built-in methods are the modules of discovery/clustering_methods; the default is unchanged
    assert available_methods() == ["threshold", "threshold_hdbscan"]
    assert type(make_clusterer(ClusteringConfig(), gap)) is CandidateSpeciesClusterer
    plain, _ = discover_candidates(specimens, parents=parents, threshold=gap,
                                   config=ClusteringConfig(method="threshold"))
    assert clustering_scores(species, plain.labels_)["ami"] == pytest.approx(1.0)
    assert (plain.outlier_scores_ == 0).all() and set(plain.agreement_.values()) == {1.0}
    with pytest.raises(ValueError, match=r"unknown clustering method 'kmeans'.*threshold_hdbscan"):
        make_clusterer(ClusteringConfig(method="kmeans"))
    with pytest.raises(ValueError, match="cannot be loaded"):
        make_clusterer(ClusteringConfig(method="one_per_parent:Nope"))
    # the same file dropped into discovery/clustering_methods (its search path stands in for the folder here,
    # so the test writes nothing into the source tree) is a built-in method by its module name: no other edit
    import sys

    from biodiscover.discovery import clustering_methods

    builtin = tmp_path / "methods"
    builtin.mkdir()
    (builtin / "one_per_parent.py").write_text((tmp_path / "one_per_parent.py").read_text())
    monkeypatch.setattr(clustering_methods, "__path__", [*clustering_methods.__path__, str(builtin)])
    monkeypatch.delitem(sys.modules, "biodiscover.discovery.clustering_methods.one_per_parent", raising=False)
    assert available_methods() == ["one_per_parent", "threshold", "threshold_hdbscan"]
    by_name, named_props = discover_candidates(specimens, parents=parents, threshold=gap,
                                               config=ClusteringConfig(method="one_per_parent"))
    assert type(by_name).__module__ == "biodiscover.discovery.clustering_methods.one_per_parent"
    assert sorted(p.size for p in named_props) == [9, 9]


def test_clustering_config_is_recorded_as_json(gap: BarcodeGapThreshold) -> None:
    import json

    from biodiscover.discovery.clustering import run_record

    config = ClusteringConfig(method="threshold", linkage="average", merge_across_groups=False)
    assert ClusteringConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    record = json.loads(json.dumps(run_record(config, gap)))
    assert record["method"] == "threshold" and record["learned_gap"]["threshold"] == gap.threshold_
    with pytest.raises(ValueError, match="unknown clustering setting"):
        ClusteringConfig.from_dict({"colour": 1})


def test_default_cut_without_a_learned_gap_separates_close_congeners() -> None:
    """No learned gap: the 3 % default cut (COI's usual species gap) keeps specimens ~0.6 % apart
    together and two congeners ~5 % apart separate; a cut ten times wider merges them, one ten
    times narrower splits a species."""
    rng = np.random.default_rng(11)
    anc = rng.choice(BASES, 500)
    a = mutate(rng, anc, 0.025)
    b = mutate(rng, anc, 0.025)  # a and b: ~5 % apart
    seqs = ["".join(mutate(rng, sp, 0.004)) for sp in (a, b) for _ in range(6)]
    truth = ["a"] * 6 + ["b"] * 6
    cl = CandidateSpeciesClusterer().fit(BarcodeDistances(seqs))
    assert cl.threshold_ == pytest.approx(0.03)
    assert clustering_scores(truth, cl.labels_)["ami"] == pytest.approx(1.0)
    assert cl.n_candidates_ == 2
