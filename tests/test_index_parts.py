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
    assert sims.shape == pos.shape == (0, 3) and sims.dtype == np.float32 and pos.dtype == np.int64


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
    # a header FAISS reads far enough to fail on (an impossible dimension) gets a first line of C++ signature
    # and source path over 200 characters (236 with faiss-cpu 1.15.1): the one-line error keeps its first 200
    # (seed 2027's index.py:413 200 -> 201 survived while the sample ran)
    import faiss

    damaged = np.frombuffer(b"IwFl" + b"\xff" * 100, np.uint8)
    with pytest.raises(RuntimeError) as raw:
        faiss.deserialize_index(damaged)
    first = str(raw.value).strip().splitlines()[0]
    assert len(first) > 200  # else this payload no longer tests the cut: find one FAISS says more about
    with pytest.raises(ModelBundleError) as err:
        ReferenceIndex.from_bytes(damaged, where="here")
    assert str(err.value) == f"here: not a readable FAISS index ({first[:200]})"


def test_reading_back_applies_the_configured_search_settings() -> None:
    ivf = ReferenceIndex(IndexConfig(kind="ivf", ivf_nlist=4, ivf_nprobe=1)).fit(_keys(200))
    blob = ivf.to_bytes()
    assert faiss.extract_index_ivf(ReferenceIndex.from_bytes(blob)._fitted()).nprobe == 1  # as saved
    assert faiss.extract_index_ivf(ReferenceIndex.from_bytes(blob, IndexConfig(ivf_nprobe=3))._fitted()).nprobe == 3
    assert faiss.extract_index_ivf(ReferenceIndex.from_bytes(blob, IndexConfig(ivf_nprobe=99))._fitted()).nprobe == 4
    hnsw = ReferenceIndex(IndexConfig(kind="hnsw", hnsw_ef_search=16)).fit(_keys(50))
    again = ReferenceIndex.from_bytes(hnsw.to_bytes(), IndexConfig(hnsw_ef_search=77))
    assert again.kind_ == "hnsw" and faiss.downcast_index(again._fitted()).hnsw.efSearch == 77


# -- searches against brute force, and the settings each kind is built with ---------------------------------
def _brute(keys: np.ndarray, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> np.ndarray:
    sims = queries @ keys.T
    if allowed is not None:
        sims[:, ~allowed] = -np.inf
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def test_an_ivf_search_probes_its_configured_cells_and_a_masked_one_probes_every_cell() -> None:
    """IVF: a plain search scans ``ivf_nprobe`` cells (one cell of eight misses true neighbours; all eight
    find every one); a search with a key mask scans every cell whatever ``ivf_nprobe`` says, so a crowded
    clade left out never hides the rest: its answer is the brute-force top-k over the allowed keys."""
    keys, queries = _keys(400, seed=2), _keys(40, seed=3)
    truth = _brute(keys, queries, 10)
    one = ReferenceIndex(IndexConfig(kind="ivf", ivf_nlist=8, ivf_nprobe=1)).fit(keys)
    assert faiss.extract_index_ivf(one._fitted()).nlist == 8
    _, pos = one.search(queries, 10)
    assert np.mean([len(set(p) & set(t)) / 10 for p, t in zip(pos, truth, strict=True)]) < 0.9
    every = ReferenceIndex(IndexConfig(kind="ivf", ivf_nlist=8, ivf_nprobe=8)).fit(keys)
    np.testing.assert_array_equal(every.search(queries, 10)[1], truth)
    allowed = np.random.default_rng(4).random(400) < 0.6
    for mask in (np.ones(400, dtype=bool), allowed):
        sims, pos = one.search(queries, 10, allowed=mask)
        np.testing.assert_array_equal(pos, _brute(keys, queries, 10, mask))
        np.testing.assert_allclose(sims, np.take_along_axis(queries @ keys.T, pos, axis=1), atol=1e-5)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_a_masked_search_is_the_brute_force_top_k_over_the_allowed_keys(kind: str) -> None:
    keys, queries = _keys(300, seed=5), _keys(25, seed=6)
    index = ReferenceIndex(IndexConfig(kind=kind, hnsw_ef_search=16)).fit(keys)
    allowed = np.random.default_rng(7).random(300) < 0.3
    sims, pos = index.search(queries, 8, allowed=allowed)
    np.testing.assert_array_equal(pos, _brute(keys, queries, 8, allowed))
    assert (np.diff(sims, axis=1) <= 1e-6).all()


def test_the_documented_defaults_are_what_the_indexes_are_built_with() -> None:
    """The settings the scale benchmark measured (benchmarks/RESULTS-scale.md) are the defaults a build uses:
    exact up to 500,000 keys; about 200 keys an IVF cell, at most 4,096 cells, 32 of them probed; HNSW
    graphs of 32 links searched 256 deep; product quantisation of 64 sub-quantisers where they divide the
    dimension; seed 0 for every sampled choice (a default build is the same build every time)."""
    auto = ReferenceIndex()
    assert auto._choose_kind(500_000) == "flat" and auto._choose_kind(500_001) == "ivfsq"
    assert auto.cells_for(200 * 5_000) == 4096 and auto.cells_for(200 * 4_095) == 4095
    ivf = ReferenceIndex(IndexConfig(kind="ivf", ivf_nlist=40)).fit(_keys(40 * 39, d=8))
    assert faiss.extract_index_ivf(ivf._fitted()).nprobe == 32
    built = ReferenceIndex(IndexConfig(kind="hnsw")).fit(_keys(50))  # kept: the downcast does not own the index
    hnsw = faiss.downcast_index(built._fitted())
    assert hnsw.hnsw.nb_neighbors(1) == 32 and hnsw.hnsw.efSearch == 256
    built = ReferenceIndex(IndexConfig(kind="ivfpq")).fit(_keys(300, d=64))
    assert faiss.downcast_index(built._fitted()).pq.M == 64
    # above 20,000 keys a projection is learned from 20,000 of them
    many = _keys(20_001, d=16, seed=14)
    sampled = ReferenceIndex(IndexConfig(kind="flat", project_dim=4, train_size=20_000)).fit(many).to_bytes()
    assert np.array_equal(ReferenceIndex(IndexConfig(kind="flat", project_dim=4)).fit(many).to_bytes(), sampled)
    assert not np.array_equal(
        ReferenceIndex(IndexConfig(kind="flat", project_dim=4, train_size=20_001)).fit(many).to_bytes(), sampled)
    keys = _keys(200, d=32, seed=8)
    default = ReferenceIndex(IndexConfig(kind="flat", project_dim=8)).fit(keys).to_bytes()
    assert np.array_equal(default, ReferenceIndex(IndexConfig(kind="flat", project_dim=8, seed=0)).fit(keys).to_bytes())
    assert not np.array_equal(default,
                              ReferenceIndex(IndexConfig(kind="flat", project_dim=8, seed=1)).fit(keys).to_bytes())


def test_ivf_cells_are_learned_from_the_extra_cell_sample_too() -> None:
    """``train(sample, cell_sample=...)``: the cells are k-means over the sample *and* the extra keys (39 a
    cell), so a region only the extra keys cover still gets its cell."""
    rng = np.random.default_rng(9)
    centres = np.eye(16, dtype=np.float32)[:4]

    def around(c: np.ndarray, n: int) -> np.ndarray:
        x = c + 0.05 * rng.normal(size=(n, 16)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    for regions in (2, 4):  # one chunk of extra keys, then three
        extra = [around(centres[r], 40) for r in range(1, regions)]
        index = ReferenceIndex(IndexConfig(kind="ivf", ivf_nlist=regions)).train(
            around(centres[0], 40), n_total=40 * regions, cell_sample=iter(extra))
        inner = faiss.extract_index_ivf(index._fitted())
        cells = faiss.rev_swig_ptr(faiss.downcast_index(inner.quantizer).get_xb(), regions * 16).reshape(regions, 16)
        # each region has a cell centred on it
        assert sorted(np.argmax(cells @ centres[:regions].T, axis=1).tolist()) == list(range(regions))
        assert index.ntotal_ == 0  # trained, nothing added yet


def test_the_gpu_is_used_only_with_gpu_support_a_device_and_a_kind_it_can_hold(monkeypatch) -> None:
    """Which index searches, on a machine without a GPU (CI's): faiss is made to report GPU support and a
    device count, and its CPU-to-GPU transfer is replaced by a marker that keeps the CPU index (no device
    here to move it to). A GPU is used only with GPU support *and* a device, never for HNSW (no GPU version),
    never with ``use_gpu=False``; a key added later makes the moved copy stale, so the next search moves it
    again."""
    from biodiscover.discovery.index import gpu_available

    devices = {"n": 0}
    moved: list[object] = []
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: devices["n"])
    monkeypatch.delattr(faiss, "StandardGpuResources", raising=False)
    devices["n"] = 2
    assert not gpu_available()  # a device, but a faiss without GPU support
    monkeypatch.setattr(faiss, "StandardGpuResources", object, raising=False)
    assert gpu_available()
    devices["n"] = 0
    assert not gpu_available()  # GPU support, no device

    def to_gpu(index: faiss.Index) -> faiss.Index:
        moved.append(index)
        return index

    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", to_gpu)
    keys = _keys(60)
    for use_gpu, n_devices, kind, want in ((None, 1, "flat", 1), (True, 1, "ivf", 1), (None, 0, "flat", 0),
                                           (True, 0, "flat", 0), (False, 1, "flat", 0), (None, 1, "hnsw", 0),
                                           (True, 1, "hnsw", 0)):
        devices["n"] = n_devices
        moved.clear()
        index = ReferenceIndex(IndexConfig(kind=kind, use_gpu=use_gpu, ivf_nlist=1)).fit(keys)
        assert index.search(keys[:3], 1)[1][:, 0].tolist() == [0, 1, 2]
        assert len(moved) == want, (use_gpu, n_devices, kind)
        index.search(keys[:3], 1)
        assert len(moved) == want  # moved once, then reused
        index.add(_keys(2, seed=9))
        index.search(keys[:3], 1)
        assert len(moved) == 2 * want  # the added keys made the copy stale


def test_ivf_cells_behind_a_projection_are_trained_on_unit_projected_keys() -> None:
    """Behind a learned projection the index receives projected keys scaled to unit length
    (``NormalizationTransform``); the IVF cells are trained on the same (``_project``), not on the shorter
    raw projections."""
    from biodiscover.discovery.index import _project, _projection

    keys = _keys(120, d=32, seed=10)
    transform = _projection(keys, 8, seed=0)
    raw = np.asarray(transform.apply(keys))
    got = _project(transform, keys)
    assert (np.linalg.norm(raw, axis=1) < 0.99).all()  # a projection keeps only part of each key's length
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(got, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-5)


def test_what_a_build_is_trained_on_the_sample_the_total_and_a_basis_no_wider_than_its_sample() -> None:
    """``fit`` trains on ``train_size`` sampled keys above that many (approximate kinds, and any projection):
    40 sampled keys train one IVF cell (39 a cell) where all 120 train three; 16 sampled keys are too few
    for an 8-d projection (more than twice its dimension needed) where 17 learn it. ``train(sample,
    n_total)`` chooses the kind and the cells for ``n_total`` keys, not for the sample. A basis learned from
    fewer keys than dimensions asked has one dimension a key."""
    from biodiscover.discovery.index import _projection

    keys = _keys(120, seed=11)
    for train_size, nlist in ((40, 1), (120, 3)):
        ivf = ReferenceIndex(IndexConfig(kind="ivf", ivf_nlist=3, train_size=train_size)).fit(keys)
        assert faiss.extract_index_ivf(ivf._fitted()).nlist == nlist and ivf.ntotal_ == 120
    wide = _keys(100, d=32, seed=12)
    assert ReferenceIndex(IndexConfig(kind="flat", project_dim=8, train_size=16)).fit(wide).stored_dim == 32
    assert ReferenceIndex(IndexConfig(kind="flat", project_dim=8, train_size=17)).fit(wide).stored_dim == 8
    assert ReferenceIndex(IndexConfig(kind="flat", project_dim=8)).fit(wide).stored_dim == 8  # 100 ≤ 20,000
    big = ReferenceIndex(IndexConfig(exact_max=100)).train(_keys(50, seed=13), n_total=1000)
    assert big.kind_ == "ivfsq" and big.ntotal_ == 0
    assert ReferenceIndex(IndexConfig(exact_max=100)).train(_keys(50, seed=13)).kind_ == "flat"
    assert ReferenceIndex(IndexConfig(exact_max=100)).train(_keys(150, seed=13)).kind_ == "ivfsq"  # 150 keys, 16-d
    # 39 training vectors a cell: 78 train two
    assert faiss.extract_index_ivf(ReferenceIndex(IndexConfig(kind="ivf", ivf_nlist=50)).fit(_keys(78))._fitted()
                                   ).nlist == 2
    # fit = the streaming build: train on ``train_size`` distinct keys drawn with the seed, then add them all
    cfg = IndexConfig(kind="flat", project_dim=4, train_size=50, seed=3)
    take = np.sort(np.random.default_rng(3).choice(120, 50, replace=False))
    streamed = ReferenceIndex(cfg).train(keys[take], n_total=120).add(keys)
    assert np.array_equal(ReferenceIndex(cfg).fit(keys).to_bytes(), streamed.to_bytes())
    assert _projection(wide[:3], 8, seed=0).d_out == 3 and _projection(wide[:1], 8, seed=0).d_out == 1
    assert _projection(wide, 8, seed=0).d_out == 8


def test_empty_or_flat_keys_and_queries_are_refused() -> None:
    with pytest.raises(ValueError, match="non-empty 2-D"):
        ReferenceIndex().train(np.zeros((0, 4), np.float32))
    index = ReferenceIndex(IndexConfig(kind="flat")).fit(_keys(5))
    with pytest.raises(ValueError, match=r"queries must have shape \(n, 16\)"):
        index.search(_keys(1)[0], 1)  # one query given as a flat vector
    with pytest.raises(ValueError, match=r"queries must have shape \(n, 16\)"):
        index.search(_keys(1, d=8), 1)


def test_an_index_without_keys_is_one_shard_and_saves_into_new_nested_folders(tmp_path) -> None:
    empty = ReferenceIndex(IndexConfig(kind="flat")).train(_keys(4))
    parts = empty.shards(3)
    assert len(parts) == 1 and parts[0][0].ntotal_ == 0 and parts[0][1] == 0
    full = ReferenceIndex(IndexConfig(kind="flat")).fit(_keys(6))
    path = full.save(tmp_path / "a" / "b")
    assert path == tmp_path / "a" / "b" / ReferenceIndex.FILENAME
    assert ReferenceIndex.load(tmp_path / "a" / "b").ntotal_ == 6
    assert full.save(tmp_path / "a" / "b") == path  # into the folder it made: replaced, not refused
