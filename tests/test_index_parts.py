"""The reference index's choices and guards (discovery.index), on small unit vectors in real FAISS indexes:
which kind and how many cells it builds, when it projects, how searches leave keys out, how it splits into
shards, and what it refuses (wrong shapes, an unfitted index, a damaged or mismatched serialised index).
"""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from biodiscover.discovery.index import MAX_CELLS, IndexConfig, ReferenceIndex
from biodiscover.storage.errors import BiodiscoverError, ModelBundleError, NotFittedError


def _keys(n: int, d: int = 16, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_config_refuses_unknown_kinds_and_projections() -> None:
    with pytest.raises(ValueError, match="project_dim must be >= 1"):
        IndexConfig(project_dim=0)
    assert IndexConfig(project_dim=1).project_dim == 1
    cfg = IndexConfig(kind="hnsw", ivf_nprobe=7)
    assert IndexConfig.from_dict({**cfg.to_dict(), "removed_setting": 1}) == cfg


def test_cells_scale_with_keys_up_to_the_cap() -> None:
    index = ReferenceIndex()
    assert index.cells_for(100) == 1 and index.cells_for(399) == 1 and index.cells_for(400) == 2
    assert index.cells_for(200 * 10_000) == MAX_CELLS
    assert ReferenceIndex(IndexConfig(ivf_nlist=9)).cells_for(100) == 9
    # the cells trained are limited by the vectors there are to train them: 39 a cell
    ivf = ReferenceIndex(IndexConfig(kind="ivf", ivf_nlist=50, ivf_nprobe=4)).fit(_keys(200))
    inner = faiss.extract_index_ivf(ivf._fitted())
    assert inner.nlist == 200 // 39 and inner.nprobe == 4
    assert ReferenceIndex(IndexConfig(kind="ivf", ivf_nlist=50, ivf_nprobe=40)).fit(_keys(200)) \
        ._fitted().nprobe == 5  # never more cells probed than there are


def test_product_quantiser_subquantisers_divide_the_dimension() -> None:
    index = ReferenceIndex(IndexConfig(kind="ivfpq", pq_m=64)).fit(_keys(300, d=24))
    pq = faiss.downcast_index(index._fitted())
    assert index.kind_ == "ivfpq" and pq.pq.M == 8  # 64 → 32 → 16 → 8: the first that divides 24


def test_projection_only_with_enough_keys_and_never_for_an_exact_auto_index() -> None:
    keys = _keys(100, d=32)
    few = ReferenceIndex(IndexConfig(kind="flat", project_dim=50)).fit(keys)  # 50 ≥ 32: nothing to reduce
    assert few.stored_dim == 32 and few.exact
    short = ReferenceIndex(IndexConfig(kind="flat", project_dim=8)).fit(keys[:16])  # 16 keys ≤ 2 × 8
    assert short.stored_dim == 32 and short.exact
    enough = ReferenceIndex(IndexConfig(kind="flat", project_dim=8)).fit(keys[:17])
    assert enough.stored_dim == 8 and not enough.exact and enough.dim_ == 32
    # queries are given in the original space and still find their key
    assert enough.search(keys[:3], 1)[1][:, 0].tolist() == [0, 1, 2]
    auto = ReferenceIndex(IndexConfig(kind="auto", project_dim=8)).fit(keys)
    assert auto.kind_ == "flat" and auto.stored_dim == 32 and auto.exact
    above = ReferenceIndex(IndexConfig(kind="auto", project_dim=8, exact_max=50)).fit(keys)
    assert above.kind_ == "ivfsq" and above.stored_dim == 8


def test_a_large_reference_is_trained_on_a_sample() -> None:
    keys = _keys(120)
    index = ReferenceIndex(IndexConfig(kind="ivf", train_size=60, ivf_nprobe=8)).fit(keys)
    assert index.ntotal_ == 120  # every key is added, whatever was sampled to train
    sims, pos = index.search(keys[:5], 1)
    assert pos[:, 0].tolist() == [0, 1, 2, 3, 4] and sims[:, 0] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfsq"])
def test_searches_leave_out_keys_and_pad_short_answers(kind: str) -> None:
    keys = _keys(80)
    index = ReferenceIndex(IndexConfig(kind=kind, project_dim=8 if kind == "ivfsq" else None)).fit(keys)
    allowed = np.ones(80, dtype=bool)
    allowed[:40] = False
    sims, pos = index.search(keys[:10], 5, allowed=allowed)
    assert sims.shape == pos.shape == (10, 5)
    assert (pos >= 40).all()  # the first half is never returned, not even for its own vectors
    only = np.zeros(80, dtype=bool)
    only[[7, 9]] = True
    _, pos = index.search(keys[:2], 4, allowed=only)
    assert sorted(pos[0][:2].tolist()) == [7, 9] and pos[0][2:].tolist() == [-1, -1]
    with pytest.raises(ValueError, match="allowed mask has 79 entries for 80 keys"):
        index.search(keys[:1], 3, allowed=allowed[:-1])


def test_search_clamps_k_and_answers_no_queries() -> None:
    index = ReferenceIndex(IndexConfig(kind="flat")).fit(_keys(4))
    sims, pos = index.search(_keys(2, seed=1), 10)
    assert pos.shape == (2, 4) and sorted(pos[0].tolist()) == [0, 1, 2, 3]
    assert (np.diff(sims, axis=1) <= 1e-6).all()  # best first
    assert index.search(_keys(1), 0)[1].shape == (1, 1)
    sims, pos = index.search(np.zeros((0, 16), np.float32), 3)
    assert sims.shape == (0, 3) and pos.dtype == np.int64


def test_unfitted_and_misshapen_input_is_refused(tmp_path) -> None:
    empty = ReferenceIndex()
    for call in (lambda: empty.add(_keys(2)), lambda: empty.stored_dim, lambda: empty.search(_keys(2), 1),
                 lambda: empty.search(_keys(2), 1, allowed=np.ones(2, bool)), lambda: empty.exact,
                 lambda: empty.shards(2), lambda: empty.save(tmp_path), lambda: empty.to_bytes()):
        # the project's error (one `error:` line at the CLI), never an AttributeError on a fitted attribute
        with pytest.raises(NotFittedError, match=r"(not fitted|unfitted).*call fit\(\) or load\(\) first") as err:
            call()
        assert isinstance(err.value, BiodiscoverError) and isinstance(err.value, RuntimeError)
    with pytest.raises(ValueError, match="non-empty 2-D"):
        ReferenceIndex().fit(np.zeros((0, 4), np.float32))
    with pytest.raises(ValueError, match="non-empty 2-D"):
        ReferenceIndex().train(np.zeros(4, np.float32))
    index = ReferenceIndex(IndexConfig(kind="flat")).fit(_keys(5))
    with pytest.raises(ValueError, match=r"keys must have shape \(n, 16\)"):
        index.add(_keys(2, d=8))
    assert index.add(np.zeros((0, 16), np.float32)).ntotal_ == 5
    assert index.add(_keys(3, seed=4)).ntotal_ == 8
    with pytest.raises(FileNotFoundError, match="no reference index"):
        ReferenceIndex.load(tmp_path / "none")


def test_shards_are_contiguous_blocks_that_merge_to_the_whole() -> None:
    keys = _keys(10)
    flat = ReferenceIndex(IndexConfig(kind="flat")).fit(keys)
    parts = flat.shards(3)
    assert [p.ntotal_ for p, _ in parts] == [3, 3, 4] and [off for _, off in parts] == [0, 3, 6]
    assert len(flat.shards(50)) == 10 and len(flat.shards(0)) == 1
    for shard, offset in parts:  # a key found in its own shard at its global position
        _, pos = shard.search(keys[offset:offset + 1], 1)
        assert pos[0, 0] + offset == offset
    ivf = ReferenceIndex(IndexConfig(kind="ivf", ivf_nprobe=8)).fit(_keys(100))
    blocks = ivf.shards(2)
    assert [p.ntotal_ for p, _ in blocks] == [50, 50] and [off for _, off in blocks] == [0, 0]  # global ids


def test_a_damaged_or_mismatched_index_is_a_bundle_error() -> None:
    index = ReferenceIndex(IndexConfig(kind="flat")).fit(_keys(6))
    blob = index.to_bytes()
    with pytest.raises(ModelBundleError, match="here: not a readable FAISS index"):
        ReferenceIndex.from_bytes(np.frombuffer(b"not an index at all", np.uint8), where="here")
    with pytest.raises(ModelBundleError, match="holds 6 keys where the bundle lists 7"):
        ReferenceIndex.from_bytes(blob, ntotal=7)
    with pytest.raises(ModelBundleError, match="dimension 16 where 8 is expected"):
        ReferenceIndex.from_bytes(blob, ntotal=6, dim=8)
    back = ReferenceIndex.from_bytes(blob, ntotal=6, dim=16)
    assert (back.kind_, back.ntotal_, back.dim_) == ("flat", 6, 16)


def test_reading_back_applies_the_configured_search_settings() -> None:
    ivf = ReferenceIndex(IndexConfig(kind="ivf", ivf_nlist=4, ivf_nprobe=1)).fit(_keys(200))
    blob = ivf.to_bytes()
    assert faiss.extract_index_ivf(ReferenceIndex.from_bytes(blob)._fitted()).nprobe == 1  # as saved
    assert faiss.extract_index_ivf(ReferenceIndex.from_bytes(blob, IndexConfig(ivf_nprobe=3))._fitted()).nprobe == 3
    assert faiss.extract_index_ivf(ReferenceIndex.from_bytes(blob, IndexConfig(ivf_nprobe=99))._fitted()).nprobe == 4
    hnsw = ReferenceIndex(IndexConfig(kind="hnsw", hnsw_ef_search=16)).fit(_keys(50))
    again = ReferenceIndex.from_bytes(hnsw.to_bytes(), IndexConfig(hnsw_ef_search=77))
    assert again.kind_ == "hnsw" and faiss.downcast_index(again._fitted()).hnsw.efSearch == 77
