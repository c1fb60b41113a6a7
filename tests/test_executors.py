"""Executors: local and Ray give the same answers as a plain in-process computation.

The Ray tests start a real local Ray instance (1 CPU, no dashboard) and skip
cleanly where the ``ray`` extra is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest

from biodiscover.discovery.index import IndexConfig, ReferenceIndex
from biodiscover.storage.errors import InputError
from biodiscover.workflows.executors import (
    ExecutorConfig,
    LocalExecutor,
    ShardSearcher,
    make_executor,
    merge_topk,
    ray_available,
)


def _kmer_like(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.random((n, d), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _embed(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A real per-row computation: GC content and a 2-D 'embedding' of each barcode."""
    seqs = batch["dna"]
    gc = np.array([(s.count("G") + s.count("C")) / max(len(s), 1) for s in seqs], dtype=np.float32)
    emb = np.stack([[s.count(b) for b in "ACGT"] for s in seqs]).astype(np.float32)
    return {"processid": batch["processid"], "gc": gc, "embedding": emb}


def _columns(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    seqs = np.array(["".join(rng.choice(list("ACGT"), size=int(rng.integers(50, 80)))) for _ in range(n)], dtype=object)
    return {"processid": np.array([f"P{i:05d}" for i in range(n)], dtype=object), "dna": seqs}


def test_local_map_batches_matches_single_call_and_keeps_order() -> None:
    cols = _columns(257)
    expected = _embed(cols)
    with LocalExecutor() as ex:
        out = ex.map_batches(_embed, cols, batch_size=16, stage="embed")
    assert list(out["processid"]) == list(cols["processid"])
    np.testing.assert_allclose(out["gc"], expected["gc"])
    np.testing.assert_array_equal(out["embedding"], expected["embedding"])
    assert out["embedding"].shape == (257, 4)
    assert ex.timings[-1].stage == "embed" and ex.timings[-1].rows == 257


def test_map_batches_rejects_wrong_row_count_and_ragged_input() -> None:
    ex = LocalExecutor()
    with pytest.raises(ValueError, match="stage 'bad'"):
        ex.map_batches(lambda b: {"x": np.zeros(1)}, _columns(10), batch_size=4, stage="bad")
    with pytest.raises(InputError, match="differ in length"):
        ex.map_batches(_embed, {"a": np.zeros(3), "b": np.zeros(4)})


def _index(kind: str, n: int = 500, d: int = 32, seed: int = 1) -> ReferenceIndex:
    """A fitted reference index as the engine builds it (``ivfsq``: projection + shared cells)."""
    cfg = IndexConfig(kind=kind, project_dim=16 if kind == "ivfsq" else None, ivf_nlist=8, ivf_nprobe=3)
    return ReferenceIndex(cfg).fit(_kmer_like(n, d, seed))


def _local_sharded(index: ReferenceIndex, n_shards: int, queries: np.ndarray, k: int):
    """What ``ShardedSearch`` does over Ray, in-process: each shard in the actor's class, merged."""
    parts = [ShardSearcher(shard.to_bytes(), offset).search(queries, k) for shard, offset in index.shards(n_shards)]
    return merge_topk(parts, k)


@pytest.mark.parametrize("kind", ["flat", "ivfsq"])
@pytest.mark.parametrize("n_shards", [1, 3, 7])
def test_sharded_reference_index_equals_the_whole_index(kind: str, n_shards: int) -> None:
    index = _index(kind)
    queries = _kmer_like(40, 32, seed=2)
    want_s, want_i = index.search(queries, 5)
    shards = index.shards(n_shards)
    assert len(shards) == n_shards and sum(s.ntotal_ for s, _ in shards) == 500
    got_s, got_i = _local_sharded(index, n_shards, queries, 5)
    np.testing.assert_array_equal(got_i, want_i)
    np.testing.assert_allclose(got_s, want_s, rtol=1e-5)


def test_merge_topk_orders_by_similarity_and_pads() -> None:
    a = (np.array([[0.5, 0.2]], np.float32), np.array([[10, 11]]))
    b = (np.array([[0.9]], np.float32), np.array([[20]]))
    s, i = merge_topk([a, b], 4)
    assert i.tolist() == [[20, 10, 11, -1]]
    assert s[0, :3].tolist() == pytest.approx([0.9, 0.5, 0.2])
    assert np.isnan(s[0, 3])
    with pytest.raises(InputError, match="no shard results"):
        merge_topk([], 3)


def test_sharded_search_with_more_k_than_keys() -> None:
    index = _index("flat", n=6, d=8, seed=3)
    queries = _kmer_like(2, 8, seed=3)
    _want_s, want_i = index.search(queries, 6)
    _s, i = _local_sharded(index, 4, queries, 10)  # shards of 1-2 keys each
    np.testing.assert_array_equal(i[:, :6], want_i)
    assert (i[:, 6:] == -1).all() and sorted(i[0, :6].tolist()) == list(range(6))


def test_unknown_executor_is_a_clear_error() -> None:
    with pytest.raises(InputError, match="unknown executor 'spark'"):
        make_executor("spark")


ray_only = pytest.mark.skipif(not ray_available(), reason='ray extra not installed (pip install -e ".[ray]")')


@pytest.fixture(scope="module")
def ray_executor():
    import sys

    from ray import cloudpickle

    # Ray workers cannot import the tests package; ship this module's functions by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ex = make_executor(ExecutorConfig(kind="ray", num_cpus=1))
    yield ex
    ex.close()


@ray_only
def test_ray_map_batches_matches_local(ray_executor) -> None:
    cols = _columns(300)
    local = LocalExecutor().map_batches(_embed, cols, batch_size=64)
    remote = ray_executor.map_batches(_embed, cols, batch_size=64, stage="embed")
    assert list(remote["processid"]) == list(cols["processid"])
    np.testing.assert_allclose(remote["gc"], local["gc"])
    np.testing.assert_array_equal(remote["embedding"], local["embedding"])


@ray_only
@pytest.mark.parametrize("kind", ["flat", "ivfsq"])
def test_ray_shard_actors_equal_the_whole_index(ray_executor, kind: str) -> None:
    """The product's Ray search: shard actors (``shard_reference``) behind ``ShardedSearch``."""
    from biodiscover.workflows.executors import ShardedSearch, shard_reference

    index = _index(kind, n=400, d=16, seed=4)
    queries = _kmer_like(25, 16, seed=5)
    search = ShardedSearch(shard_reference(index, 3))
    assert len(search.actors) == 3
    got = search(queries, 7)
    want = index.search(queries, 7)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    with pytest.raises(InputError, match="leave-clade-out"):
        search(queries, 7, allowed=np.ones(400, bool))


# -- the discovery engine through an executor ---------------------------------------------------------------

@pytest.fixture(scope="module")
def fitted_engine():
    """A real DiscoveryModel fitted on a small synthetic BIOSCAN-like set, and query specimens."""
    from biodiscover.discovery.engine import DiscoveryModel
    from biodiscover.storage.records import Specimen
    from biodiscover.storage.synth import SynthConfig, generate_frame

    meta, _ = generate_frame(SynthConfig(n_species=30, n_specimens=700, images=False, seed=5))

    def sp(*splits: str) -> list:
        return [Specimen.from_row(r) for r in meta[meta["split"].isin(splits)].to_dict("records")]

    model = DiscoveryModel().fit(sp("train", "key_unseen"), sp("val", "val_unseen"), sp("other_heldout"))
    queries = sp("test", "test_unseen") + [Specimen(processid="NOSEQ1")] + sp("pretrain")[:40]
    return model, queries


def _same_results(got, want) -> None:
    assert [r.processid for r in got] == [r.processid for r in want]
    for a, b in zip(got, want):
        assert a.deepest_rank == b.deepest_rank and a.labels == b.labels and a.is_novel == b.is_novel
        assert a.top_hit == b.top_hit
        if b.novelty == b.novelty:
            assert a.novelty == pytest.approx(b.novelty, abs=1e-5)  # float32 sums differ by batch
        else:
            assert a.novelty != a.novelty  # NaN for a specimen without a barcode


def test_triage_with_local_executor_matches_engine(fitted_engine) -> None:
    from biodiscover.workflows.executors import triage_with

    model, queries = fitted_engine
    want = model.triage(queries)
    got = triage_with(LocalExecutor(), model, queries, batch_size=17)
    _same_results(got, want)
    assert any(r.is_novel for r in want) and any(r.deepest_rank == "species" for r in want)


@ray_only
def test_triage_with_ray_executor_matches_engine(ray_executor, fitted_engine) -> None:
    from biodiscover.workflows.executors import triage_with

    model, queries = fitted_engine
    got = triage_with(ray_executor, model, queries, batch_size=25)
    _same_results(got, model.triage(queries))


def test_executor_model_delegates_and_matches(fitted_engine) -> None:
    from biodiscover.workflows.executors import ExecutorModel

    model, queries = fitted_engine
    wrapped = ExecutorModel(model, LocalExecutor(), batch_size=10)
    assert wrapped.config is model.config and wrapped.ref_ids_ is model.ref_ids_
    _same_results(wrapped.triage(queries), model.triage(queries))


@ray_only
def test_ray_shards_the_reference_index_and_matches_local(ray_executor) -> None:
    """An approximate (IVF) index cut into 3 shard actors: workers search the shards, the merged pool is the
    whole index's, so every call equals the in-process engine's — top hit included."""
    from biodiscover.discovery.engine import DiscoveryModel, EngineConfig
    from biodiscover.discovery.index import IndexConfig
    from biodiscover.storage.records import Specimen
    from biodiscover.storage.synth import SynthConfig, generate_frame
    from biodiscover.workflows.executors import ExecutorModel, ShardedSearch

    meta, _ = generate_frame(SynthConfig(n_species=30, n_specimens=700, images=False, seed=6))

    def sp(*splits: str) -> list:
        return [Specimen.from_row(r) for r in meta[meta["split"].isin(splits)].to_dict("records")]

    config = EngineConfig(index=IndexConfig(kind="ivfsq", project_dim=48, ivf_nlist=8, ivf_nprobe=3),
                          n_search=40, max_candidates=20)
    model = DiscoveryModel(config).fit(sp("train", "key_unseen"), sp("val", "val_unseen"), sp("other_heldout"))
    assert model.index_.kind_ == "ivfsq"
    queries = sp("test", "test_unseen", "pretrain")
    want = model.triage(queries)
    plain = model.triage(queries, collection=False)  # each specimen at the simulation's odds
    wrapped = ExecutorModel(model, ray_executor, batch_size=40, shards=3)
    search = model.reference_.remote_search
    assert isinstance(search, ShardedSearch) and len(search.actors) == 3
    _same_results(wrapped.triage(queries), want)
    # specimen by specimen through the shards, exactly (a subset adapted alone would read its own odds)
    assert [r.to_dict() for r in wrapped.triage(queries[:50], collection=False)] == [r.to_dict() for r in plain[:50]]
