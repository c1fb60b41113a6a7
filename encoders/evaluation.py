"""Evaluation protocols of BarcodeBERT, CLIBD and BIOSCAN-5M, reused by ``biodiscover evaluate``.

- BarcodeBERT probes: 1-NN genus accuracy of test_unseen against train keys;
  linear probe (logistic regression) of species trained on train, scored on test.
- CLIBD retrieval: top-1 accuracy, micro (per query) and macro (mean over
  classes), at every rank, for seen (test) and unseen (test_unseen) queries
  against keys = train + key_unseen, and their harmonic mean; directions
  DNA→DNA, image→image, image→DNA.
- BIOSCAN-5M zero-shot clustering: agglomerative clustering of embeddings with
  the true number of clusters, AMI against the labels at each rank.

Nearest neighbours come from pytorch-metric-learning's ``FaissKNN`` (exact FAISS
search); accuracy is counted here because PML's ``AccuracyCalculator`` drops
queries whose class is absent from the keys.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import torch

from biodiscover.storage.records import RANKS, Specimen

if TYPE_CHECKING:
    from biodiscover.encoders.embed import Encoders

log = logging.getLogger(__name__)

Label = str | None


def _encode_labels(*groups: Sequence[Label]) -> list[np.ndarray]:
    table: dict[str, int] = {}
    out = []
    for group in groups:
        out.append(np.array([table.setdefault(v, len(table)) if v is not None else -1 for v in group], dtype=np.int64))
    return out


def harmonic_mean(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def top1_accuracy(
    query: np.ndarray, query_labels: Sequence[Label], keys: np.ndarray, key_labels: Sequence[Label]
) -> dict[str, Any]:
    """Top-1 nearest-key label accuracy, micro (per query) and macro (mean per query class).

    Unlabelled queries and keys are left out. A query whose class is absent
    from the keys counts as WRONG (it cannot be retrieved) — pytorch-metric-
    learning's ``precision_at_1`` would silently drop it, overstating accuracy,
    so only its FAISS k-NN (``FaissKNN``) is used here.
    """
    from pytorch_metric_learning.utils.inference import FaissKNN

    q_lab, k_lab = _encode_labels(query_labels, key_labels)
    qm, km = q_lab >= 0, k_lab >= 0
    if qm.sum() == 0 or km.sum() == 0:
        return {"micro": None, "macro": None, "n": int(qm.sum())}
    q = torch.from_numpy(np.ascontiguousarray(query[qm], dtype=np.float32))
    k = torch.from_numpy(np.ascontiguousarray(keys[km], dtype=np.float32))
    _, nearest = FaissKNN()(q, 1, k, False)
    truth = q_lab[qm]
    correct = k_lab[km][nearest[:, 0].cpu().numpy()] == truth
    per_class = [correct[truth == c].mean() for c in np.unique(truth)]
    return {"micro": float(correct.mean()), "macro": float(np.mean(per_class)), "n": int(qm.sum())}


def retrieval_report(
    queries: Mapping[str, tuple[np.ndarray, Sequence[Mapping[str, Label]]]],
    keys: tuple[np.ndarray, Sequence[Mapping[str, Label]]],
    ranks: Sequence[str] = RANKS,
) -> dict[str, dict[str, Any]]:
    """CLIBD table for one direction: ``{rank: {seen: {...}, unseen: {...}, hm: {micro, macro}}}``."""
    key_emb, key_lin = keys
    report: dict[str, dict[str, Any]] = {}
    for rank in ranks:
        row: dict[str, Any] = {}
        for name, (emb, lin) in queries.items():
            row[name] = top1_accuracy(emb, [x.get(rank) for x in lin], key_emb, [x.get(rank) for x in key_lin])
        if "seen" in row and "unseen" in row:
            row["hm"] = {m: harmonic_mean(row["seen"][m], row["unseen"][m]) for m in ("micro", "macro")}
        report[rank] = row
    return report


def linear_probe(
    train_x: np.ndarray, train_y: Sequence[Label], test_x: np.ndarray, test_y: Sequence[Label], max_iter: int = 500
) -> dict[str, Any]:
    """BarcodeBERT's linear probe: logistic regression on frozen features; micro and macro accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    tr = np.array([y is not None for y in train_y])
    te = np.array([y is not None for y in test_y])
    if tr.sum() < 2 or te.sum() == 0:
        return {"micro": None, "macro": None, "n": int(te.sum())}
    ytr = np.array([y for y in train_y if y is not None])
    yte = np.array([y for y in test_y if y is not None])
    if len(set(ytr)) < 2:
        return {"micro": None, "macro": None, "n": int(te.sum())}
    scaler = StandardScaler().fit(train_x[tr])
    clf = LogisticRegression(max_iter=max_iter).fit(scaler.transform(train_x[tr]), ytr)
    pred = clf.predict(scaler.transform(test_x[te]))
    correct = pred == yte
    per_class = [correct[yte == c].mean() for c in np.unique(yte)]
    return {"micro": float(correct.mean()), "macro": float(np.mean(per_class)), "n": int(te.sum())}


def clustering_ami(
    embeddings: np.ndarray, lineages: Sequence[Mapping[str, Label]], ranks: Sequence[str] = RANKS,
    max_points: int = 5000, seed: int = 0
) -> dict[str, float | None]:
    """Zero-shot clustering (BIOSCAN-5M): Ward agglomerative with the true cluster count → AMI per rank."""
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import adjusted_mutual_info_score

    out: dict[str, float | None] = {}
    for rank in ranks:
        idx = [i for i, lin in enumerate(lineages) if lin.get(rank)]
        if len(idx) > max_points:
            idx = sorted(random.Random(seed).sample(idx, max_points))
        labels = [lineages[i][rank] for i in idx]
        n_true = len(set(labels))
        if len(idx) < 3 or n_true < 2 or n_true >= len(idx):
            out[rank] = None
            continue
        pred = AgglomerativeClustering(n_clusters=n_true, linkage="ward").fit_predict(embeddings[idx])
        out[rank] = float(adjusted_mutual_info_score(labels, pred))
    return out


def _cap(items: list[Specimen], n: int | None, seed: int) -> list[Specimen]:
    if n is None or len(items) <= n:
        return items
    return random.Random(seed).sample(items, n)


def evaluate_encoders(
    encoders: "Encoders", specimens: Sequence[Specimen], max_queries: int | None = 2000, seed: int = 0,
    with_clustering: bool = True
) -> dict[str, Any]:
    """Every encoder protocol that the splits present in ``specimens`` allow.

    Queries: seen = test (val when there is no test), unseen = test_unseen
    (val_unseen otherwise), each capped at ``max_queries`` (seeded sample).
    Keys: train + key_unseen. Returns a JSON-serialisable dict; protocols whose
    splits or modalities are absent are omitted.
    """
    by_split: dict[str, list[Specimen]] = {}
    for s in specimens:
        by_split.setdefault(s.split or "", []).append(s)
    seen_q = _cap(by_split.get("test") or by_split.get("val") or [], max_queries, seed)
    unseen_q = _cap(by_split.get("test_unseen") or by_split.get("val_unseen") or [], max_queries, seed)
    keys = by_split.get("train", []) + by_split.get("key_unseen", [])
    report: dict[str, Any] = {"n_keys": len(keys), "n_seen_queries": len(seen_q), "n_unseen_queries": len(unseen_q)}
    if not keys or not (seen_q or unseen_q):
        return report

    def emb(group: list[Specimen], modality: str) -> tuple[np.ndarray, list[dict[str, Label]]]:
        if modality == "dna":
            chosen = [s for s in group if s.dna_barcode]
            return encoders.embed_dna([s.dna_barcode or "" for s in chosen]), [s.lineage() for s in chosen]
        chosen = [s for s in group if s.image_path is not None]
        return encoders.embed_images([s.image_path for s in chosen]), [s.lineage() for s in chosen]

    cache: dict[tuple[str, str], tuple[np.ndarray, list[dict[str, Label]]]] = {}
    groups = {"seen": seen_q, "unseen": unseen_q, "keys": keys}
    for modality in ("dna", "image"):
        for name, group in groups.items():
            cache[(name, modality)] = emb(group, modality)

    retrieval: dict[str, Any] = {}
    for direction, (qm, km) in {"dna_to_dna": ("dna", "dna"), "image_to_image": ("image", "image"),
                                "image_to_dna": ("image", "dna")}.items():
        key = cache[("keys", km)]
        queries = {n: cache[(n, qm)] for n in ("seen", "unseen") if len(cache[(n, qm)][0])}
        if len(key[0]) and queries:
            retrieval[direction] = retrieval_report(queries, key)
    report["retrieval"] = retrieval

    # BarcodeBERT probes on the DNA encoder's own (unprojected) features.
    train = [s for s in by_split.get("train", []) if s.dna_barcode]
    probes: dict[str, Any] = {}
    if train:
        train_x = encoders.dna_features([s.dna_barcode or "" for s in train])
        tu = [s for s in _cap(by_split.get("test_unseen", []), max_queries, seed) if s.dna_barcode]
        if tu:
            tu_x = encoders.dna_features([s.dna_barcode or "" for s in tu])
            probes["genus_1nn_test_unseen"] = top1_accuracy(tu_x, [s.genus for s in tu], train_x,
                                                            [s.genus for s in train])
        te = [s for s in _cap(by_split.get("test", []), max_queries, seed) if s.dna_barcode]
        if te:
            te_x = encoders.dna_features([s.dna_barcode or "" for s in te])
            probes["species_linear_probe_test"] = linear_probe(train_x, [s.species for s in train], te_x,
                                                               [s.species for s in te])
            probes["species_1nn_test"] = top1_accuracy(te_x, [s.species for s in te], train_x,
                                                       [s.species for s in train])
    report["barcodebert_probes"] = probes

    if with_clustering:
        clustering: dict[str, Any] = {}
        for modality in ("dna", "image"):
            parts = [cache[("seen", modality)], cache[("unseen", modality)]]
            x = np.concatenate([p[0] for p in parts]) if any(len(p[0]) for p in parts) else np.zeros((0, 1))
            lin = [lab for p in parts for lab in p[1]]
            if len(x) >= 3:
                clustering[modality] = clustering_ami(x, lin, seed=seed)
        report["clustering_ami"] = clustering
    return report
