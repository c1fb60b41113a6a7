"""The image classifier's rules (discovery.multimodal) on cases worked out by hand, in seconds.

``tests/test_multimodal.py`` trains real encoders (minutes) and checks the classifier end to end. Here the
classifier is read from a real bundle written with a hand-made reference: unit vectors at known angles in a real
FAISS index, per-rank confidence models with known coefficients. ``predict_embeddings`` (the documented entry
for embeddings already computed) then shows the neighbour votes, the top-down labels, the per-rank thresholds
and the deepest rank with numbers checkable on paper; the loader's checks and the fusion rules likewise.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from biodiscover.discovery.engine import TriageResult
from biodiscover.discovery.index import IndexConfig, ReferenceIndex
from biodiscover.discovery.multimodal import (DNA_INDEX_ARRAY, IMAGE_INDEX_ARRAY, MULTIMODAL_REFERENCE_TABLE,
                                              MULTIMODAL_TABLE, CrossModalClassifier, CrossModalConfig,
                                              ModalityCall, _softmax_weights, _threshold, fuse, fuse_rank,
                                              has_image_classifier)
from biodiscover.storage.bundle import Bundle
from biodiscover.storage.errors import ModelBundleError
from biodiscover.storage.records import RANKS

#: the reference: (processid, lineage, angle of its image in degrees, in the x-y plane)
KEYS = [("K0", ("O1", "F1", None, "G1", "G1 a"), 0.0),
        ("K1", ("O1", "F1", None, "G1", "G1 a"), 2.0),
        ("K2", ("O1", "F1", None, "G1", "G1 b"), 10.0),
        ("K3", ("O1", "F2", None, "G2", "G2 c"), 60.0),
        ("K4", ("O2", "F3", "S3", "G3", "G3 d"), 180.0)]
TEMPERATURE = 0.05
#: P(right) = sigmoid(10 * vote share - 7): share 0.8 → 0.73, share 1 → 0.95
CONFIDENCE = {"C": 1.0, "mean": [0.0] * 4, "scale": [1.0] * 4, "coef": [10.0, 0.0, 0.0, 0.0], "intercept": -7.0}


def _unit(deg: float) -> np.ndarray:
    return np.array([math.cos(math.radians(deg)), math.sin(math.radians(deg)), 0.0, 0.0], dtype=np.float32)


def _write(path: Path, *, k: int = 3, thresholds: dict[str, float] | None = None, dna: bool = False,
           **override: object) -> Path:
    """A bundle holding an image classifier with the hand-made reference above."""
    config = CrossModalConfig(k=k, temperature=TEMPERATURE, image_weight=1.0, dna_weight=0.5 if dna else 0.0)
    bundle = Bundle.create(path, config={})
    image_index = ReferenceIndex(config.index).fit(np.stack([_unit(a) for _, _, a in KEYS]))
    state = {"format": 1, "config": config.to_dict(), "weights": [1.0, 0.5 if dna else 0.0],
             "thresholds": thresholds or {r: 0.7 for r in RANKS}, "calibration": {},
             "confidence": {r: CONFIDENCE for r in RANKS}, "has_image_index": True, "has_dna_index": dna}
    ref = {"processid": [p for p, _, _ in KEYS], "ranks": list(RANKS), "lineage": [list(lin) for _, lin, _ in KEYS],
           "image_keys": list(range(len(KEYS))), "dna_keys": [4] if dna else []}
    for key, value in override.items():
        (ref if key in ref and key not in state else state)[key] = value
    bundle.save_table(MULTIMODAL_TABLE, state)
    bundle.save_table(MULTIMODAL_REFERENCE_TABLE, ref)
    bundle.save_array(IMAGE_INDEX_ARRAY, image_index.to_bytes())
    if dna:  # one DNA key (K4's barcode), placed where an image query at 170° finds it
        bundle.save_array(DNA_INDEX_ARRAY, ReferenceIndex(config.index).fit(_unit(170.0)[None, :]).to_bytes())
    return path


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_votes_labels_confidence_and_deepest_rank_by_hand(tmp_path: Path) -> None:
    clf = CrossModalClassifier.load(_write(tmp_path / "b"))
    assert has_image_classifier(tmp_path / "b") and clf.weights_ == (1.0, 0.0)
    call = clf.predict_embeddings(_unit(1.0)[None, :], ["Q"])[0]
    # neighbours K0, K1 (1° away) and K2 (9°): softmax of cosine / temperature
    sims = np.array([math.cos(math.radians(d)) for d in (1.0, 1.0, 9.0)])
    w = np.exp(sims / TEMPERATURE)
    w /= w.sum()
    share_a = w[0] + w[1]
    assert call.labels == {"order": "O1", "family": "F1", "subfamily": None, "genus": "G1", "species": "G1 a"}
    assert call.support["genus"] == pytest.approx(1.0) and call.support["species"] == pytest.approx(share_a, abs=1e-5)
    assert call.support["subfamily"] == 0.0  # no neighbour has one: no vote, and no stop either
    assert call.confidence["genus"] == pytest.approx(_sigmoid(3.0), abs=1e-5)
    assert call.confidence["species"] == pytest.approx(_sigmoid(10 * share_a - 7), abs=1e-4)
    assert call.confidence["subfamily"] == 0.0
    # thresholds 0.7: genus (P 0.95) is named; species (share 0.72, P 0.55) is not
    assert share_a == pytest.approx(0.718, abs=0.002)
    assert call.deepest_rank == "genus" and call.deepest_label == "G1"
    assert call.top_hit in ("K0", "K1") and call.top_similarity == pytest.approx(math.cos(math.radians(1.0)), abs=1e-5)
    assert call.modality == "image" and call.processid == "Q"
    # the top hit's similarity is its own, not the runner-up's (seed 5651: `order[0]` -> `order[1]` for the
    # similarity survived, the two nearest keys above being equally near; written after the sample, not re-scored)
    near = clf.predict_embeddings(_unit(0.5)[None, :], ["N"])[0]
    assert near.top_hit == "K0" and near.top_similarity == pytest.approx(math.cos(math.radians(0.5)), abs=1e-6)
    # a query between two families: labels are chosen top-down among neighbours consistent with those above
    mid = clf.predict_embeddings(_unit(35.0)[None, :], ["M"])[0]
    assert mid.labels["order"] == "O1"
    assert (mid.labels["family"], mid.labels["genus"]) in (("F1", "G1"), ("F2", "G2"))
    fam_of = {"G1": "F1", "G2": "F2"}
    assert fam_of[mid.labels["genus"]] == mid.labels["family"]
    assert mid.support["order"] == pytest.approx(1.0)


def test_the_margin_to_the_runner_up_label_is_a_feature_of_the_confidence(tmp_path: Path) -> None:
    """P(right) may read the vote share's margin over the runner-up label (the second feature): with two
    species among the neighbours it is the difference of their shares, with one label the share itself (an
    exploration found it unpinned: ``len(ranked) > 1`` -> ``> 2`` took a lone runner-up's share as 0)."""
    margin_only = {"C": 1.0, "mean": [0.0] * 4, "scale": [1.0] * 4, "coef": [0.0, 10.0, 0.0, 0.0], "intercept": -7.0}
    clf = CrossModalClassifier.load(_write(tmp_path / "b", confidence={r: margin_only for r in RANKS}))
    call = clf.predict_embeddings(_unit(1.0)[None, :], ["Q"])[0]
    sims = np.array([math.cos(math.radians(d)) for d in (1.0, 1.0, 9.0)])  # K0, K1 (G1 a) and K2 (G1 b)
    w = np.exp(sims / TEMPERATURE)
    w /= w.sum()
    assert call.confidence["species"] == pytest.approx(_sigmoid(10 * (w[0] + w[1] - w[2]) - 7), abs=1e-4)
    assert call.confidence["genus"] == pytest.approx(_sigmoid(3.0), abs=1e-5)  # one label: margin = share 1


def test_the_best_image_and_dna_similarity_of_the_label_are_features_of_the_confidence(tmp_path: Path) -> None:
    """P(right) may read the best image and the best DNA similarity among the neighbours holding the chosen
    label (the third and fourth features). A query at 172°: its image neighbour K4 (180°) and its DNA neighbour
    (K4's barcode, placed at 170°) agree, so both features are theirs (cos 8° and cos 2°). Written after the
    seed-3299 sample, where ``for s in (0, 1)`` -> ``(0, 2)`` (the DNA feature replaced by the floor) and
    ``best[0]`` -> ``best[1]`` survived (not re-scored)."""
    sims_only = {"C": 1.0, "mean": [0.0] * 4, "scale": [1.0] * 4, "coef": [0.0, 0.0, 10.0, 20.0], "intercept": -29.0}
    clf = CrossModalClassifier.load(_write(tmp_path / "b", dna=True, k=1,
                                           confidence={r: sims_only for r in RANKS}))
    call = clf.predict_embeddings(_unit(172.0)[None, :], ["Q"])[0]
    assert call.labels["species"] == "G3 d"
    image, dna = math.cos(math.radians(8.0)), math.cos(math.radians(2.0))
    for rank in ("order", "species"):
        assert call.confidence[rank] == pytest.approx(_sigmoid(10 * image + 20 * dna - 29), abs=1e-5)


def test_a_rank_below_its_threshold_stops_the_descent(tmp_path: Path) -> None:
    strict = {r: 0.7 for r in RANKS} | {"family": 0.99}
    clf = CrossModalClassifier.load(_write(tmp_path / "b", thresholds=strict))
    call = clf.predict_embeddings(_unit(0.5)[None, :], ["Q"])[0]
    # P(family) = sigmoid(3) = 0.95 < 0.99: named to order only, although genus passes its own threshold
    assert call.deepest_rank == "order" and call.deepest_label == "O1"
    assert call.named() == {"order": "O1", "family": None, "subfamily": None, "genus": None, "species": None}
    assert call.labels["genus"] == "G1"  # the label is still reported, only not named
    loose = CrossModalClassifier.load(_write(tmp_path / "c", thresholds={r: 0.5 for r in RANKS}))
    far = loose.predict_embeddings(np.stack([_unit(180.0), _unit(0.0)]), ["Q4", "Q0"])
    # alone at 180° with k=3, K4's neighbours include two far keys of another order, down-weighted to nothing
    assert far[0].labels["order"] == "O2" and far[0].labels["subfamily"] == "S3"
    assert far[0].deepest_rank == "species" and far[0].deepest_label == "G3 d"
    assert far[1].labels["species"] == "G1 a" and far[1].top_hit == "K0"


def test_cross_modal_votes_mix_in_with_their_weight(tmp_path: Path) -> None:
    clf = CrossModalClassifier.load(_write(tmp_path / "b", dna=True, k=1))
    assert clf.weights_ == (1.0, 0.5) and clf.dna_index_ is not None
    # an image at 100°: its nearest image key is K3 (60°, O1), its nearest DNA key K4 (170°, O2)
    call = clf.predict_embeddings(_unit(100.0)[None, :], ["Q"])[0]
    # one neighbour per index, each weight 1 within its index, mixed 1 : 0.5
    assert call.labels["order"] == "O1" and call.support["order"] == pytest.approx(1.0 / 1.5)
    assert call.labels["species"] == "G2 c" and call.top_hit == "K3"
    # the confidence model reads the label's best similarity per source: O1's image neighbour K3 (cos 40°) is an
    # image key, and it has no DNA neighbour, so its DNA feature is the floor, the query's lowest similarity (K4,
    # cos 70°) — seed 4909's multimodal.py:293, the image hits marked as DNA hits, survived
    _, feats, _ = clf._evidence(_unit(100.0)[None, :])
    order = RANKS.index("order")
    assert feats[0, order, 2] == pytest.approx(math.cos(math.radians(40.0)), abs=1e-5)
    assert feats[0, order, 3] == pytest.approx(math.cos(math.radians(70.0)), abs=1e-5)


@pytest.mark.parametrize("change, message", [
    ({"format": 2}, "newer than supported"),
    ({"ranks": ["order", "family", "genus", "species"]}, "ranks"),
    ({"image_keys": [0, 1, 2, 3, 5]}, "outside the 5 reference keys"),
    ({"image_keys": [-1, 0, 1, 2, 3]}, "outside the 5 reference keys"),
    ({"lineage": [["O1", "F1", None, "G1", "G1 a"]]}, "do not fit the reference"),
    ({"weights": [1.0]}, "malformed"),
])
def test_a_malformed_classifier_is_refused_with_the_reason(tmp_path: Path, change: dict, message: str) -> None:
    path = _write(tmp_path / "b", **change)
    with pytest.raises(ModelBundleError, match=message):
        CrossModalClassifier.load(path)


def test_an_unfitted_classifier_and_a_bundle_without_one() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        CrossModalClassifier().predict_embeddings(np.zeros((1, 4)), ["Q"])
    with pytest.raises(RuntimeError, match="not fitted"):
        CrossModalClassifier().save("nowhere")
    # predict too, even with encoders given and no photograph to embed: an unfitted classifier must not answer
    # "nothing to name" as if it had looked (seed 6263's multimodal.py:382, the check deleted, survived)
    from biodiscover.storage.records import Specimen

    with pytest.raises(RuntimeError, match="not fitted"):
        CrossModalClassifier().predict([Specimen(processid="P1", dna_barcode="ACGT" * 60)], encoders=object())


def test_config_refuses_impossible_settings_and_round_trips() -> None:
    for bad, message in (({"k": 0}, "k must be >= 1"), ({"temperature": 0.0}, "temperature must be > 0"),
                         ({"image_weight": 0.0, "dna_weight": 0.0}, "not both 0"),
                         ({"dna_weight": -1.0}, "must be >= 0")):
        with pytest.raises(ValueError, match=message):
            CrossModalConfig(**bad)
    cfg = CrossModalConfig(k=7, index=IndexConfig(kind="flat"))
    assert CrossModalConfig.from_dict(cfg.to_dict()) == cfg
    # the smallest settings it accepts: one neighbour, equal weights, one modality only (seed 3299:
    # `image_weight + dna_weight == 0` -> `image_weight - dna_weight == 0` survived, refusing equal weights)
    for fine in ({"k": 1}, {"image_weight": 0.5, "dna_weight": 0.5}, {"image_weight": 0.0, "dna_weight": 1.0}):
        assert CrossModalConfig(**fine).to_dict().items() >= fine.items()
    assert cfg.target("species") == 0.02 and cfg.target("genus") == 0.05 and cfg.target("order") == 0.05


def test_threshold_allows_the_target_share_of_absent_specimens() -> None:
    scores = np.array([0.1, 0.9, 0.5, 0.7, 0.3, 0.2, 0.8, 0.4, 0.6, 0.95])
    # 10 absent specimens, target 0.2: two may pass → the threshold sits just above the third highest (0.8)
    t = _threshold(scores, 0.2)
    assert t == np.nextafter(0.8, np.inf) and int((scores >= t).sum()) == 2
    assert int((scores >= _threshold(scores, 0.0)).sum()) == 0  # none may pass
    assert _threshold(scores, 1.0) == 0.1  # all may pass: the lowest score
    assert _threshold(scores, 0.05) == np.nextafter(0.95, np.inf)


def test_softmax_weights_over_valid_neighbours_only() -> None:
    sims = np.array([[0.9, 0.8, 0.99], [0.5, 0.5, 0.5]])
    valid = np.array([[True, True, False], [False, False, False]])
    w = _softmax_weights(sims, valid, 0.1)
    e = math.exp(-1.0)
    assert w[0].tolist() == pytest.approx([1 / (1 + e), e / (1 + e), 0.0])
    assert w[1].tolist() == [0.0, 0.0, 0.0]  # nothing found: no weight, no NaN
    assert _softmax_weights(sims[:1], np.ones((1, 3), bool), 100.0)[0] == pytest.approx([1 / 3] * 3, abs=1e-3)
    # a very sharp temperature is the nearest neighbour's vote alone, never exp overflowing into NaN
    sharp = _softmax_weights(sims[:1], np.ones((1, 3), bool), 0.001)
    assert sharp[0].tolist() == pytest.approx([0.0, 0.0, 1.0])


def test_fuse_rank_edge_cases() -> None:
    assert fuse_rank(None, 0.3, None, 0.9) == (None, 0.0)
    assert fuse_rank("A", 0.6, None, 0.9) == ("A", 0.6)
    label, p = fuse_rank("A", 0.6, "B", 0.9)  # the stronger label wins a disagreement, lowered
    assert label == "B" and p == pytest.approx(0.4 * 0.9 / (0.6 * 0.1 + 0.4 * 0.9 + 0.4 * 0.1))
    label, p = fuse_rank("A", 1.0, "A", 0.0)  # certainties are clipped, never 0/0
    assert label == "A" and 0.0 < p < 1.0 and p == pytest.approx(0.5)


def _call(labels: list[str | None], deepest: str | None, p: float = 0.9, modality: str = "dna") -> ModalityCall:
    lab = dict(zip(RANKS, labels))
    return ModalityCall("X", modality, lab, {r: p for r in RANKS}, deepest, lab[deepest] if deepest else None)


def test_modality_calls_from_engine_results_and_fusion_rules() -> None:
    none = TriageResult("N", "none", {r: None for r in RANKS}, {r: 0.0 for r in RANKS}, 0.0, None, None,
                        float("nan"), False, None, 0.0)
    assert ModalityCall.from_call("N", none).modality == "none"
    named = TriageResult("D", "dna", dict(zip(RANKS, ["O", "F", None, "G", "G s"])), {"order": 0.99}, 0.98,
                         "genus", "G", 0.1, False, "K7", 0.93)
    call = ModalityCall.from_call("D", named)
    assert (call.modality, call.deepest_rank, call.deepest_label, call.top_hit) == ("dna", "genus", "G", "K7")
    assert call.top_similarity == pytest.approx(0.93) and call.confidence["species"] == 0.0
    assert call.named() == {"order": "O", "family": "F", "subfamily": None, "genus": "G", "species": None}
    assert ModalityCall.none("Z").named() == {r: None for r in RANKS}
    # a blank subfamily in both calls does not stop the descent; a blank genus does
    dna = _call(["O", "F", None, "G", "G s"], "species", 0.95)
    img = _call(["O", "F", None, "G", "G s"], "species", 0.9, "image")
    fused = fuse(dna, img)
    assert fused.deepest_rank == "species" and fused.modality == "fused" and fused.processid == "X"
    assert fused.confidence["order"] == pytest.approx(0.95 * 0.9 / (0.95 * 0.9 + 0.05 * 0.1))
    assert fuse(_call(["O", "F", None, None, None], "family", 0.95), img).deepest_rank == "family"
    assert fuse(dna, img, processid="P1").processid == "P1"
    assert fuse(dna, None) == dna and fuse(dna, ModalityCall.none("X")) == dna
    # the image alone, where DNA gave nothing
    assert fuse(ModalityCall.none("X"), img) == img
    # a contradicting image call at family makes the fused family doubtful below min_confidence: stop at order
    doubt = fuse(_call(["O", "F", None, "G", "G s"], "species", 0.7),
                 _call(["O", "H", None, "J", "J t"], "genus", 0.75, "image"))
    assert doubt.deepest_rank == "order" and doubt.labels["family"] == "H"
    assert fuse(_call(["O", "F", None, "G", "G s"], "species", 0.7),
                _call(["O", "H", None, "J", "J t"], "genus", 0.75, "image"), min_confidence=0.3).deepest_rank == "order"

    # each modality's labels stay inside the taxon it won: the photograph's genus wins, so the barcode's species
    # (of another genus) is no fused species, and where the photograph's species loses nothing is below its genus
    split = fuse(_call(["O", "F", None, "G", "G s"], "family", 0.6),
                 _call(["O", "F", None, "J", "J t"], "family", 0.9, "image"))
    assert split.deepest_rank == "family" and (split.labels["genus"], split.labels["species"]) == ("J", "J t")
    # the photograph's species alone is no surer than the fused genus, which weighed the barcode's doubt
    genus = 0.9 * 0.4 / (0.9 * 0.4 + 0.1 * 0.6 + 0.1 * 0.4)  # fuse_rank's masses: J, G, a third genus
    assert split.confidence["species"] == split.confidence["genus"] == pytest.approx(genus)
    dna_species = ModalityCall("X", "dna", dict(zip(RANKS, ["O", "F", None, "G", "G s"])),
                               {"order": 0.99, "family": 0.99, "subfamily": 0.0, "genus": 0.5, "species": 0.95},
                               "family", "F")
    photo = ModalityCall("X", "image", dict(zip(RANKS, ["O", "F", None, "J", "J t"])),
                         {"order": 0.9, "family": 0.9, "subfamily": 0.0, "genus": 0.9, "species": 0.2}, "genus", "J")
    mixed = fuse(dna_species, photo)
    assert mixed.labels["genus"] == "J" and mixed.labels["species"] == "J t"  # was "G s", under genus G


def test_a_rank_the_barcodes_lineage_lacks_is_passed_over_by_the_fusion_as_by_the_dna_walk() -> None:
    """e34 attack R1: a candidate a reviewer placed in an order the reference lacks and accepted ("Odonata gen. sp.
    BD-0001", no family or genus) gave its members' barcodes as keys; the next plate's same specimens were named
    that species from their barcode alone (P 0.999) but only to the order with their photographs: the fusion
    stopped at the blank family the DNA walk passes over (``naming.deepest_confident``), and dropped the species.
    A photograph's family there lies in another lineage: it is not taken, and its deeper labels neither."""
    accepted = ModalityCall("X", "dna", {"order": "Odonata", "family": None, "subfamily": None, "genus": None,
                                         "species": "Odonata gen. sp. BD-0001"},
                            {"order": 0.999, "family": 0.0, "subfamily": 0.0, "genus": 0.0, "species": 0.998},
                            "species", "Odonata gen. sp. BD-0001")
    photo = _call(["Diptera", "Tiaopsisidae", None, "Tiaopsis", "Tiaopsis xua"], "genus", 0.8, "image")
    fused = fuse(accepted, photo)
    assert (fused.deepest_rank, fused.deepest_label) == ("species", "Odonata gen. sp. BD-0001")
    assert [fused.labels[r] for r in RANKS] == ["Odonata", None, None, None, "Odonata gen. sp. BD-0001"]
    assert fused.confidence["species"] <= fused.confidence["order"] < 0.999  # the photograph's doubt weighed
    # a photograph silent there: the same; a DNA call that stopped above the blank rank still stops there
    assert fuse(accepted, _call([None] * 5, None, 0.0, "image")).deepest_rank == "species"
    unsure = ModalityCall("X", "dna", dict(accepted.labels), {**accepted.confidence, "species": 0.5}, "order",
                          "Odonata")
    assert fuse(unsure, photo).deepest_rank == "order"


def test_the_image_classifier_takes_as_dna_keys_the_barcodes_the_engine_takes() -> None:
    """A specimen's barcode is a key for image identification exactly when it is one for the DNA engine (both
    at their defaults): 50 bases are, 49 are not. Otherwise one specimen would be "with barcode" on one path
    and "without" on the other (the classifier's ``min_barcode_length`` default was read by no test)."""
    from biodiscover.discovery.engine import DiscoveryModel
    from biodiscover.storage.records import Specimen

    rng = np.random.default_rng(3)
    classifier, engine = CrossModalClassifier(), DiscoveryModel()
    for n in (1, 49, 50, 51, 400):
        barcode = "".join(rng.choice(list("ACGT"), n))
        s = Specimen(processid=f"L{n}", order="O", dna_barcode=barcode)
        keys = engine.key_columns([s])
        assert classifier._usable_dna(s) == (len(keys) == 1) == (n >= 50), n
    assert not classifier._usable_dna(Specimen(processid="E", order="O"))


def test_a_photograph_only_call_from_a_bundle_without_the_map_says_the_image_threshold_not_the_level(
        tmp_path: Path) -> None:
    """e35 week-2 review F5: photograph-only specimens were named to species at image scores 0.657 / 0.821 under
    the level 0.98, with an empty reason. The image scores are not P(right) (on the demo's held-out photographs
    none reaches 0.95 at any rank, while 435 of 442 orders named at the thresholds are right). A bundle fitted
    before they were calibrated has no map (``p_right_`` None): the walk keeps the classifier's own thresholds
    and the reason says so: the rank named, its threshold and score, the level not applied, and why (the bundle
    predates the calibration), and the rank whose score under its threshold stopped it."""
    from biodiscover.discovery.multimodal import combine_results

    clf = CrossModalClassifier.load(_write(tmp_path / "b", thresholds={r: 0.7 for r in RANKS}))
    assert clf.p_right_ is None  # its table has no "p_right"
    call = clf.predict_embeddings(_unit(1.0)[None, :], ["Q"])[0]
    # genus: sigmoid(3) = 0.95 >= 0.7; species: share of G1 a 0.72 -> sigmoid(0.18) = 0.545 < 0.7
    assert call.deepest_rank == "genus" and call.confidence["species"] == pytest.approx(0.545, abs=0.002)
    none = TriageResult("Q", "none", {r: None for r in RANKS}, {r: 0.0 for r in RANKS}, 0.0, None, None,
                        float("nan"), False, None, 0.0)
    out = combine_results([none], [call], thresholds=clf.thresholds_, level=0.98)[0]
    assert (out.modality, out.deepest_rank, out.deepest_label) == ("image", "genus", "G1")
    assert max(out.confidence.values()) < 0.98  # named below the level, and the reason says why
    assert out.reason == ("photograph only: genus G1 named at the image classifier's threshold 0.70 (score 0.95), "
                          "not at the level 0.98: image scores are not P(right) in a bundle built before they were "
                          "calibrated (build-reference names at the level); species G1 a scored 0.55, under its "
                          "threshold 0.70")
    strict = CrossModalClassifier.load(_write(tmp_path / "c", thresholds={r: 0.99 for r in RANKS}))
    unnamed = strict.predict_embeddings(_unit(1.0)[None, :], ["Q"])
    said = combine_results([none], unnamed, thresholds=strict.thresholds_, level=0.95)[0].reason
    assert said == ("photograph only: not named: order O1 scored 0.95, under the image classifier's threshold 0.99 "
                    "(the level 0.95 does not apply: image scores are not P(right) in a bundle built before they "
                    "were calibrated (build-reference names at the level))")
    # a barcode's own reason (here: a read set apart) is kept, the photograph's said after it
    odd = dataclasses.replace(none, reason="chimeric barcode: …")
    assert combine_results([odd], [call], thresholds=clf.thresholds_, level=0.98)[0].reason.startswith(
        "chimeric barcode: …; photograph only: genus G1 named at")


def test_the_score_to_p_right_map_is_isotonic_and_reads_a_small_all_right_block_below_1() -> None:
    """The image classifier's map from a score to P(right) (``JsonIsotonic``): blocks of isotonic regression, each
    read as its Beta(1, 1) posterior mean (right + 1) / (n + 2). Plain isotonic regression read the demo's top
    species block, 3 of 3 right, as P(right) 1.000, and a photograph scoring there would pass any level; here 50
    of 50 read 51/52 = 0.981 and 3 of 3 read 0.80. A violator is pooled (0.7 wrong above 0.6 right), equal scores
    are one block, and a score reads the block at or under it (below every example: the lowest)."""
    import json

    from biodiscover.discovery.jsonmodels import JsonIsotonic

    top = JsonIsotonic().fit(np.r_[np.full(20, 0.2), np.linspace(0.8, 0.9, 50)], np.r_[np.zeros(20), np.ones(50)])
    assert top.edges_.tolist() == [0.8] and top.p_.tolist() == pytest.approx([1 / 22, 51 / 52])
    assert top.predict_proba([0.0, 0.79, 0.8, 0.85, 1.0]).tolist() == pytest.approx([1 / 22] * 2 + [51 / 52] * 3)
    small = JsonIsotonic().fit([0.1] * 10 + [0.9] * 3, [0] * 10 + [1] * 3)
    assert small.predict_proba(0.95).tolist() == pytest.approx([0.8])  # 3 of 3 right: not 1.000
    pooled = JsonIsotonic().fit([0.5, 0.6, 0.7, 0.8, 0.8], [0, 1, 0, 1, 1])
    # 0.6 right, 0.7 wrong: one block of 1 of 2 (0.5), then 0.8 twice right: one block (3/4)
    assert pooled.edges_.tolist() == [0.6, 0.8] and pooled.n_.tolist() == [1, 2, 2]
    assert pooled.p_.tolist() == pytest.approx([1 / 3, 2 / 4, 3 / 4]) and np.all(np.diff(pooled.p_) > 0)
    assert JsonIsotonic().fit([], []).predict_proba([0.3, 0.99]).tolist() == [0.5, 0.5]  # no data: the prior
    back = JsonIsotonic.from_dict(json.loads(json.dumps(pooled.to_dict())))
    assert back.predict_proba([0.55, 0.65, 0.9]).tolist() == pooled.predict_proba([0.55, 0.65, 0.9]).tolist()
    with pytest.raises(ValueError, match="one value in"):
        JsonIsotonic.from_dict({**pooled.to_dict(), "p": [0.2, 1.5, 0.9]})


#: a calibrated map as ``fit`` stores it: 30 calibration photographs scoring 0.3 all wrong, 60 scoring 0.9 all
#: right (read 1/32 and 61/62 = 0.984); at species 10 at 0.2 wrong and 3 at 0.5 right (read 1/12 and 0.80)
def _map(low: float, wrong: int, high: float, right: int) -> dict:
    from biodiscover.discovery.jsonmodels import JsonIsotonic

    return JsonIsotonic().fit([low] * wrong + [high] * right, [0] * wrong + [1] * right).to_dict()


P_RIGHT = {**{r: _map(0.3, 30, 0.9, 60) for r in RANKS}, "species": _map(0.2, 10, 0.5, 3)}


def test_a_photograph_only_call_is_named_at_the_level_by_the_p_right_calibrated_from_its_scores(
        tmp_path: Path) -> None:
    """The product names each specimen to the deepest rank whose P(right) passes the level; a photograph alone was
    named at the image classifier's own thresholds instead (demo: 26 of 122 held-out species names wrong, 15 of 137
    photographs of species the keys lack named to a species). With the bundle's calibrated map, the walk reads
    each rank's score as P(right) and stops at the first under the level; the confidence columns hold that
    P(right) and the reason gives it with the score it was calibrated from. The thresholds no longer name: the
    same call at thresholds 0.99 is named to genus at the level 0.98."""
    from biodiscover.discovery.multimodal import combine_results

    clf = CrossModalClassifier.load(_write(tmp_path / "b", thresholds={r: 0.99 for r in RANKS}, p_right=P_RIGHT))
    assert set(clf.p_right_) == set(RANKS)
    call = clf.predict_embeddings(_unit(1.0)[None, :], ["Q"])[0]
    # the call itself is unchanged (fusion weighs it): scores 0.95 down to genus, species 0.545, at the thresholds
    assert call.deepest_rank is None and call.confidence["genus"] == pytest.approx(_sigmoid(3.0), abs=1e-5)
    none = TriageResult("Q", "none", {r: None for r in RANKS}, {r: 0.0 for r in RANKS}, 0.0, None, None,
                        float("nan"), False, None, 0.0)

    def alone(level: float) -> TriageResult:
        return combine_results([none], [call], thresholds=clf.thresholds_, level=level, p_right=clf.p_right_)[0]

    out = alone(0.98)
    assert (out.modality, out.deepest_rank, out.deepest_label) == ("image", "genus", "G1")
    assert out.confidence == pytest.approx({"order": 61 / 62, "family": 61 / 62, "subfamily": 0.0,
                                            "genus": 61 / 62, "species": 0.8})
    assert out.reason == ("photograph only: genus G1 P(right) 0.984 (calibrated from the image score 0.95) passes "
                          "the level 0.98; species G1 a P(right) 0.80 (calibrated from the image score 0.55) below "
                          "the level 0.98")
    # a level above every block: not named, and the first rank's P(right) says why
    higher = alone(0.99)
    assert higher.deepest_rank is None and higher.reason == (
        "photograph only: not named: order O1 P(right) 0.98 (calibrated from the image score 0.95) below the level "
        "0.99")
    # the species block passes a level under 0.80: named to species by the same call
    assert alone(0.75).deepest_rank == "species"


def _dna(conf: dict[str, float], deepest: str | None, reason: str | None = None) -> TriageResult:
    lin = dict(zip(RANKS, ["O", "F", None, "G", "G s"]))
    return TriageResult("D", "dna", lin, {r: conf.get(r, 0.0) for r in RANKS}, 1.0, deepest,
                        lin[deepest] if deepest else None, 0.0, False, "K1", 1.0, reason=reason)


def test_a_barcode_and_photograph_reason_says_the_value_stored_where_the_photograph_moved_it() -> None:
    """e35 week-2 review F8: the reason read "P(right) 0.36 below the level" from the barcode alone while
    confidence_species held 0.189, the value fused with the photograph. Where the photograph moved the P(right)
    the reason speaks of, or stopped the naming above the barcode's rank, or left a rank named from the barcode
    with a stored value under the level, the reason says what was stored and why."""
    from biodiscover.discovery.multimodal import combine_results

    def combined(dna: TriageResult, photo: ModalityCall) -> TriageResult:
        return combine_results([dna], [photo], thresholds={r: 0.5 for r in RANKS}, level=0.98)[0]

    why = "species G s at 100.0% identity: P(right) 0.36 below the level 0.98"
    sure = {"order": 0.999, "family": 0.999, "genus": 0.99}
    same = ["O", "F", None, "G", "G s"]
    photo = ModalityCall("D", "image", dict(zip(RANKS, same)), {**{r: 0.9 for r in RANKS}, "species": 0.29},
                         "genus", "G")
    low = combined(_dna({**sure, "species": 0.36}, "genus", why), photo)
    stored = 0.36 * 0.29 / (0.36 * 0.29 + 0.64 * 0.71)  # naive Bayes: 0.187
    assert low.confidence["species"] == pytest.approx(stored) and low.deepest_rank == "genus"
    assert low.reason == (why + "; the photograph, scoring the same species 0.29, moved P(right) of species G s "
                          "from 0.36 to 0.19 (the value stored)")
    # raised past the level, yet not named: a photograph never names below the barcode's deepest rank
    up = combined(_dna({**sure, "species": 0.979}, "genus", why.replace("0.36", "0.979")),
                  dataclasses.replace(photo, confidence={**photo.confidence, "species": 0.63}))
    assert up.deepest_rank == "genus" and up.confidence["species"] >= 0.98
    assert up.reason.endswith("moved P(right) of species G s from 0.979 to 0.988 (the value stored); a photograph "
                              "names no rank below the barcode's own")
    # a species named from the barcode, stored under the level once the photograph's doubt is weighed
    named = combined(_dna({**sure, "species": 0.99}, "species"),
                     dataclasses.replace(photo, confidence={**photo.confidence, "species": 0.2}))
    assert named.deepest_rank == "species" and named.confidence["species"] < 0.98
    assert named.reason == ("the photograph, scoring the same species 0.20, moved P(right) of species G s from "
                            "0.990 to 0.96 (the value stored); named from the barcode, whose P(right) alone passes "
                            "the level")
    # a confident photograph of another family stops the naming at the order: the reason was empty
    other = ModalityCall("D", "image", dict(zip(RANKS, ["O", "H", None, "J", "J t"])),
                         {r: 0.999 for r in RANKS}, "species", "J t")
    stopped = combined(_dna({**sure, "family": 0.98, "species": 0.99}, "species"), other)
    assert stopped.deepest_rank == "order"
    assert stopped.reason == ("the photograph, scoring family H 1.00, outweighed the barcode's family F (P(right) "
                              "0.980): stored is H at 0.95, so it is named to order only")
    # nothing moved that the reason reads: the reason stays the barcode's
    agree = combined(_dna({**sure, "species": 0.36}, "genus", why),
                     dataclasses.replace(photo, confidence={**photo.confidence, "species": 0.5}))
    assert agree.reason == why
